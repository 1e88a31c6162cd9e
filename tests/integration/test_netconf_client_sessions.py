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
