"""Whether a process id names a running process: the probe the supervisor's status, ``qkdn
down`` and the twin's link pairing (is the peer end still there?) share."""

from __future__ import annotations

import os


def pid_alive(pid: int | None) -> bool:
    """True while ``pid`` runs: it exists (``kill(pid, 0)``; one of another user counts) and
    is not a zombie (exited, not yet reaped). None or 0 is never alive."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
