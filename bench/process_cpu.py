"""CPU time a process (or one of its threads) has used so far, from Linux's
``/proc/<pid>/stat``: the figure the benchmarks report next to wall-clock times."""

from __future__ import annotations

import os
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def stat_cpu_ticks(stat: str) -> int:
    """utime + stime (clock ticks) of a ``/proc/.../stat`` line. The command name in
    parentheses may hold spaces and parentheses, so the fields count from the last ``)``.

    >>> stat_cpu_ticks("42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0")
    10
    """
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def cpu_ticks(stat_path: Path) -> int:
    """utime + stime (clock ticks) from a ``/proc/.../stat`` file; 0 when it is gone."""
    try:
        text = stat_path.read_text()
    except OSError:
        return 0
    return stat_cpu_ticks(text)


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far; 0 when it is gone."""
    return cpu_ticks(Path(f"/proc/{pid}/stat")) / CLOCK_TICKS
