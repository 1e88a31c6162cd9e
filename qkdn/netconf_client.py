"""NETCONF client sessions (ncclient) as qkdn's tools and controller open them.

ncclient's session thread waits ``TICK`` seconds (0.1 s) in ``select`` before it sends a
queued request, which adds about 100 ms to every RPC. qkdn lowers that tick once, here, for
every client it opens.
"""

from __future__ import annotations

import logging
from typing import Any

#: Seconds ncclient's session loop waits in select() between looking at its send queue.
NCCLIENT_TICK_S = 0.001
#: select() wake-ups per second that all of one process's ncclient sessions may spend together
#: (each session's thread wakes once per tick even when idle).
NCCLIENT_WAKEUP_BUDGET_HZ = 10_000


def tick_for_sessions(sessions: int, *, budget_hz: float = NCCLIENT_WAKEUP_BUDGET_HZ) -> float:
    """The send tick for a process holding ``sessions`` ncclient sessions: 1 ms up to ten
    sessions, then longer, so that idle sessions together wake at most ``budget_hz`` times a
    second (100 agents: 10 ms; 1 ms would be 100,000 wake-ups a second, a core of CPU).

    >>> tick_for_sessions(6), tick_for_sessions(100)
    (0.001, 0.01)
    """
    return max(NCCLIENT_TICK_S, sessions / budget_hz)


def lower_ncclient_tick(tick: float = NCCLIENT_TICK_S) -> None:
    from ncclient.transport import session

    session.TICK = tick


def connect(host: str, port: int, username: str, password: str, *,
            timeout: float = 10.0) -> Any:
    """An ncclient Manager for an agent (host keys of loopback agents are not verified)."""
    from ncclient import manager

    lower_ncclient_tick()
    logging.getLogger("ncclient").setLevel(logging.WARNING)
    return manager.connect(host=host, port=port, username=username, password=password,
                           hostkey_verify=False, allow_agent=False, look_for_keys=False,
                           timeout=timeout)
