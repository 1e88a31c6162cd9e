"""A readiness probe: does a NETCONF server answer a hello at this address?"""

from __future__ import annotations

from qkdn.netconf_client import connect


def probe_netconf(host: str, port: int, username: str, password: str,
                  timeout: float = 3.0) -> bool:
    """True if an SSH NETCONF session can be opened and closed cleanly."""
    from ncclient.operations.errors import TimeoutExpiredError
    from ncclient.transport.errors import TransportError

    try:
        with connect(host, port, username, password, timeout=timeout):
            return True
    except (TransportError, TimeoutExpiredError, OSError, EOFError):
        return False
