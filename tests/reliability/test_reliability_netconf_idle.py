"""Idle and half-open clients cannot hold an agent's resources for ever: a TCP connection that
never authenticates is dropped after the SSH login timeout, and a NETCONF channel whose client
never completes its hello after the hello timeout (both 30 s in the agent)."""

from __future__ import annotations

import asyncio
import socket
import time

import asyncssh
import pytest

from . import netconf_fuzz as fuzz

pytestmark = [pytest.mark.integration, pytest.mark.slow]

AGENT_TIMEOUT = 30.0  # AgentConfig.hello_timeout and the SSH login_timeout
GRACE = 15.0


def _idle_tcp_client(port: int) -> float:
    """Seconds until the agent closes a TCP connection that only reads the SSH banner."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=AGENT_TIMEOUT + GRACE) as sock:
        assert sock.recv(256).startswith(b"SSH-2.0-")
        while sock.recv(4096):
            pass
    return time.monotonic() - started


async def _silent_channels(port: int) -> list[float]:
    """Seconds until the agent closes a channel with no hello, and one with half a hello."""
    async with asyncssh.connect("127.0.0.1", port, username=fuzz.USERNAME,
                                password=fuzz.PASSWORD, known_hosts=None, client_keys=None,
                                agent_path=None) as conn:
        silent = await fuzz.RawSession.open(conn, fuzz.Channel.EOM, send_hello=False)
        half = await fuzz.RawSession.open(conn, fuzz.Channel.EOM, send_hello=False)
        await half.send(fuzz.hello(fuzz.BASE_1_0)[:40])
        started = time.monotonic()

        async def closed_after(session: fuzz.RawSession) -> float:
            assert await session.wait_closed(timeout=AGENT_TIMEOUT + GRACE) == b""
            return time.monotonic() - started

        return list(await asyncio.gather(closed_after(silent), closed_after(half)))


@pytest.mark.timeout(120)
def test_idle_clients_are_dropped(tmp_path):
    agent = fuzz.AgentProcess(tmp_path)
    try:
        loop = asyncio.new_event_loop()
        try:
            tcp = loop.run_in_executor(None, _idle_tcp_client, agent.port)
            channels = loop.run_until_complete(_silent_channels(agent.port))
            tcp_seconds = loop.run_until_complete(tcp)
        finally:
            loop.close()
        for seconds in [tcp_seconds, *channels]:
            assert AGENT_TIMEOUT - 1 <= seconds <= AGENT_TIMEOUT + GRACE
        assert agent.alive()
    finally:
        agent.stop()
