"""qkdn's libssh NETCONF sessions (``qkdn.netconf_libssh``) against a real agent on
loopback: hello, RPCs, notifications, sends from the calling thread, a message larger than
the agent's SSH window, many threads at once on one libssh session, an idle thread that
sleeps, host-key pinning, and no descriptor left behind."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from qkd_agent.agent import AgentConfig, AgentThread, QkdAgent
from qkd_agent.datastore import Datastore
from qkd_agent.yang_context import load_context
from qkdn.namespaces import ETSI_NODE_NS, NETCONF_BASE_NS
from qkdn.netconf_libssh import available, connect
from sdn_controller.errors import PushError
from sdn_controller.netconf_pipeline import send_edit_config

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not available(), reason="ssh-python not installed")]

NODE = "etsi-qkd-sdn-node:qkd_node"
NODE_ID = "22222222-2222-4222-8222-222222222222"
LINK = "00000000-0000-4000-8000-0000000000aa"
PASSWORD = "libssh-test-pw"
FILTER = ("subtree", f'<qkd_node xmlns="{ETSI_NODE_NS}"/>')
EMPTY_EDIT = f'<config xmlns="{NETCONF_BASE_NS}"/>'
BAD_EDIT = f'<config xmlns="{NETCONF_BASE_NS}"><bogus xmlns="urn:example:none"/></config>'
LINK_DOWN = {"etsi-qkd-sdn-node:sdqkdn_link_down": {"qkd_link": {"qkdl_id": LINK,
                                                                "reason": "test"}}}


@pytest.fixture
def agent(tmp_path: Path):
    ctx = load_context()
    datastore = Datastore(ctx, {NODE: {"qkdn_id": NODE_ID}})
    config = AgentConfig(password=PASSWORD, host_key=tmp_path / "host_key")
    with AgentThread(QkdAgent(config, datastore, dict, ctx=ctx)) as thread:
        yield thread


def _connect(agent, **kwargs):
    return connect("127.0.0.1", agent.port, "admin", PASSWORD, **kwargs)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _fds_back_to(baseline: int, timeout_s: float = 3.0) -> bool:
    """Whether this process's descriptors return to ``baseline`` or fewer (the in-process
    agent closes its end of a connection a moment after the client; an earlier test's
    leftovers may close meanwhile)."""
    deadline = time.monotonic() + timeout_s
    while _open_fds() > baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    return _open_fds() <= baseline


def test_rpcs_and_notifications(agent):
    with _connect(agent) as m:
        assert "urn:ietf:params:netconf:base:1.1" in m.server_capabilities
        assert NODE_ID in m.get(filter=FILTER).xml
        m.create_subscription()
        agent.agent.notify(LINK_DOWN)
        notification = m.take_notification(block=True, timeout=5)
        assert notification is not None and LINK in notification.notification_xml
        send_edit_config(m._session, "n", EMPTY_EDIT).wait()
        with pytest.raises(PushError):
            send_edit_config(m._session, "n", BAD_EDIT).wait()


def test_requests_are_written_by_the_calling_thread(agent):
    with _connect(agent) as m:
        m.create_subscription()
        session = m._session
        writers: list[str] = []
        write_now = session._write_now

        def recording(data: bytes) -> bool:
            writers.append(threading.current_thread().name)
            return write_now(data)

        session._write_now = recording
        for _ in range(3):
            send_edit_config(session, "n", EMPTY_EDIT).wait()
        assert writers == [threading.current_thread().name] * 3


def test_a_message_larger_than_the_window_goes_out_as_the_window_opens(agent):
    """The agent's window (asyncssh: 2 MB) cannot take a 3 MB request at once: the caller
    queues it, the session thread writes it as window adjusts arrive, the reply comes."""
    with _connect(agent) as m:
        m.create_subscription()
        session = m._session
        with session._io_lock:
            window = session._channel.window_size()
        padding = "x" * (window + 1024 * 1024)
        big = f'<config xmlns="{NETCONF_BASE_NS}"><!-- {padding} --></config>'
        pending = send_edit_config(session, "n", big, timeout_s=30)
        pending.wait()
        send_edit_config(session, "n", EMPTY_EDIT).wait()   # and the session goes on


def test_many_threads_on_one_session_each_get_their_own_reply(agent):
    """libssh sessions are not thread-safe: four threads pipelining RPCs while the agent
    sends notifications and the session thread reads; every RPC gets its own outcome (ok
    or the agent's error, alternately) and every notification arrives."""
    with _connect(agent) as m:
        m.create_subscription()
        session = m._session
        failures: list[str] = []

        def worker(worker_id: int) -> None:
            try:
                for batch in range(5):
                    pendings = [(i % 2, send_edit_config(session, f"w{worker_id}",
                                                         BAD_EDIT if i % 2 else EMPTY_EDIT))
                                for i in range(6)]
                    for bad, pending in pendings:
                        try:
                            pending.wait()
                            if bad:
                                failures.append(f"{worker_id}/{batch}: bad edit accepted")
                        except PushError as exc:
                            if not bad:
                                failures.append(f"{worker_id}/{batch}: {exc}")
            except BaseException as exc:  # noqa: BLE001 - reported below
                failures.append(repr(exc))

        def notifier() -> None:
            for _ in range(30):
                agent.agent.notify(LINK_DOWN)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        threads.append(threading.Thread(target=notifier))
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not failures
        received = 0
        while m.take_notification(block=True, timeout=5 if received < 30 else 0.2):
            received += 1
        assert received == 30
        assert NODE_ID in m.get(filter=FILTER).xml


def test_idle_session_thread_sleeps(agent):
    with _connect(agent) as m:
        m.create_subscription()
        session = m._session
        status = Path(f"/proc/self/task/{session.native_id}/status")

        def wakeups() -> int:
            return int(next(line.split()[1] for line in status.read_text().splitlines()
                            if line.startswith("voluntary_ctxt_switches")))

        before, cpu_before = wakeups(), time.process_time()
        time.sleep(1.5)
        assert wakeups() - before <= 5   # the 1 s safety net, no polling
        assert time.process_time() - cpu_before < 0.1


def test_closing_ends_the_thread_and_leaves_no_descriptor(agent):
    m = _connect(agent)
    m.close_session()   # the first session loads what stays loaded
    baseline = _open_fds()
    for _ in range(3):
        m = _connect(agent)
        thread = m._session
        assert NODE_ID in m.get(filter=FILTER).xml
        m.close_session()
        thread.join(5)
        assert not thread.is_alive()
    assert _fds_back_to(baseline)


def test_a_wrong_password_fails_and_leaves_no_descriptor(agent):
    from ncclient.transport.errors import AuthenticationError

    _connect(agent).close_session()
    baseline = _open_fds()
    for _ in range(2):
        with pytest.raises(AuthenticationError):
            connect("127.0.0.1", agent.port, "admin", "wrong", timeout=5)
    assert _fds_back_to(baseline)


def test_refused_connection_is_an_ssh_error():
    import socket

    from ncclient.transport.errors import SSHError

    with socket.socket() as probe:   # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(SSHError):
        connect("127.0.0.1", port, "admin", PASSWORD, timeout=2)


def test_host_key_pinning(agent, tmp_path: Path):
    import asyncssh
    from ncclient.transport.errors import SSHUnknownHostError

    key = asyncssh.read_private_key(tmp_path / "host_key")
    pinned = key.export_public_key().decode().split()[1]
    with _connect(agent, hostkey_b64=pinned) as m:
        assert NODE_ID in m.get(filter=FILTER).xml
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    with pytest.raises(SSHUnknownHostError):
        _connect(agent, hostkey_b64=other.split()[1])


def test_agent_gone_ends_the_session(agent):
    m = _connect(agent)   # no close-session at the end: there is no session left to close
    m.create_subscription()
    session = m._session
    agent.stop()
    session.join(10)
    assert not session.is_alive() and not m.connected
    with pytest.raises(PushError, match="session lost|Not connected"):
        send_edit_config(session, "n", EMPTY_EDIT).wait(5)
