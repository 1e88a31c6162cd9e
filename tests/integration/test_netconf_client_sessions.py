"""qkdn's ncclient sessions against a real agent on loopback: event-driven, so a request is
sent at once and an idle session's thread sleeps (no 1 ms polling tick)."""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path

import pytest

from qkd_agent.agent import AgentConfig, AgentThread, QkdAgent
from qkd_agent.datastore import Datastore
from qkd_agent.yang_context import load_context
from qkdn.namespaces import ETSI_NODE_NS
from qkdn.netconf_client import connect

pytestmark = pytest.mark.integration

NODE = "etsi-qkd-sdn-node:qkd_node"
NODE_ID = "11111111-1111-4111-8111-111111111111"
PASSWORD = "nc-client-pw"
FILTER = ("subtree", f'<qkd_node xmlns="{ETSI_NODE_NS}"/>')


@pytest.fixture
def agent_port(tmp_path: Path):
    ctx = load_context()
    datastore = Datastore(ctx, {NODE: {"qkdn_id": NODE_ID}})
    config = AgentConfig(password=PASSWORD, host_key=tmp_path / "host_key")
    agent = QkdAgent(config, datastore, dict, ctx=ctx)
    with AgentThread(agent) as thread:
        yield thread.port


def _session_thread(manager) -> threading.Thread:
    return manager._session   # ncclient's Session is the thread that reads and writes


def _wakeups(thread: threading.Thread) -> int:
    """Voluntary context switches of a thread so far (each sleep-then-wake counts one)."""
    status = Path(f"/proc/self/task/{thread.native_id}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines()
                    if line.startswith("voluntary_ctxt_switches")))


def test_requests_are_sent_at_once(agent_port):
    with connect("127.0.0.1", agent_port, "admin", PASSWORD) as m:
        m.get(filter=FILTER)
        took = []
        for _ in range(10):
            started = time.perf_counter()
            reply = m.get(filter=FILTER)
            took.append(time.perf_counter() - started)
            assert NODE_ID in reply.xml
        # ncclient's own loop waits up to its 100 ms tick before sending a request
        assert statistics.median(took) < 0.05, took


def test_idle_session_thread_sleeps(agent_port):
    with connect("127.0.0.1", agent_port, "admin", PASSWORD) as m:
        m.get(filter=FILTER)
        thread = _session_thread(m)
        before = _wakeups(thread)
        time.sleep(1.5)
        # a 1 ms polling tick would wake it ~1,500 times; event-driven: the 1 s safety net
        assert _wakeups(thread) - before <= 5


def test_concurrent_requests_from_several_threads(agent_port):
    with connect("127.0.0.1", agent_port, "admin", PASSWORD) as m:
        errors: list[BaseException] = []

        def worker() -> None:
            try:
                for _ in range(5):
                    assert NODE_ID in m.get(filter=FILTER).xml
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not errors


def test_session_thread_ends_when_closed(agent_port):
    m = connect("127.0.0.1", agent_port, "admin", PASSWORD)
    thread = _session_thread(m)
    m.close_session()
    thread.join(5)
    assert not thread.is_alive()
    assert getattr(thread, "_qkdn_wake", None) is None   # wake-up pipe closed


def _record_writers(session) -> list[str]:
    """Names of the threads that write to the session's channel from now on."""
    writers: list[str] = []
    write = session._transport_write

    def recording_write(data: bytes) -> int:
        writers.append(threading.current_thread().name)
        return write(data)

    session._transport_write = recording_write
    return writers


def test_requests_are_written_by_the_calling_thread(agent_port):
    with connect("127.0.0.1", agent_port, "admin", PASSWORD) as m:
        writers = _record_writers(m._session)
        for _ in range(3):
            assert NODE_ID in m.get(filter=FILTER).xml
        # no hand-over to the session thread: the caller framed and wrote each request
        assert writers and set(writers) == {threading.current_thread().name}


def test_a_request_waits_in_the_queue_while_the_window_cannot_take_it(agent_port):
    with connect("127.0.0.1", agent_port, "admin", PASSWORD) as m:
        session = m._session
        writers = _record_writers(session)
        channel = session._channel
        with channel.lock:                     # as if the agent's window were full
            window, channel.out_window_size = channel.out_window_size, 0
        reply: list[str] = []
        caller = threading.Thread(target=lambda: reply.append(m.get(filter=FILTER).xml),
                                  name="caller")
        caller.start()
        time.sleep(0.2)
        assert not reply and not writers and not session._q.empty()   # queued, not sent
        with channel.lock:                     # the window opens: the session thread sends
            channel.out_window_size += window
        caller.join(10)
        assert reply and NODE_ID in reply[0]
        assert writers and "caller" not in writers
