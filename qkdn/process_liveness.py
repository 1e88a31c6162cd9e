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
    try:  # a zombie is not alive (bytes, no text wrapper: the twin's pairing asks per batch)
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
    except OSError:
        return False
    try:
        stat = os.read(fd, 4096)
    except OSError:
        return False
    finally:
        os.close(fd)
    fields = stat.rsplit(b")", 1)
    return len(fields) == 2 and fields[1].split()[:1] != [b"Z"]
