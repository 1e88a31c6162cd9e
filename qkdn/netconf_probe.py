"""A readiness probe: does a NETCONF server answer a hello at this address?"""

from __future__ import annotations

import logging


def probe_netconf(host: str, port: int, username: str, password: str,
                  timeout: float = 3.0) -> bool:
    """True if an SSH NETCONF session can be opened and closed cleanly."""
    from ncclient import manager
    from ncclient.transport.errors import TransportError
    from ncclient.operations.errors import TimeoutExpiredError

    logging.getLogger("ncclient").setLevel(logging.WARNING)
    try:
        with manager.connect(host=host, port=port, username=username, password=password,
                             hostkey_verify=False, allow_agent=False, look_for_keys=False,
                             timeout=timeout):
            return True
    except (TransportError, TimeoutExpiredError, OSError, EOFError):
        return False
