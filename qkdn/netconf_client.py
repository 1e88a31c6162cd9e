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
