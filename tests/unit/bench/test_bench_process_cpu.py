"""bench.process_cpu: utime + stime from /proc/<pid>/stat lines."""

import os
import time
from pathlib import Path

from bench.process_cpu import CLOCK_TICKS, cpu_ticks, process_cpu_s, stat_cpu_ticks


def test_fields_count_from_the_last_parenthesis():
    line = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0"
    assert stat_cpu_ticks(line) == 10
    assert stat_cpu_ticks(line.replace("(a (b) c)", "(python)")) == 10


def test_own_process_cpu_grows_and_a_missing_file_counts_zero(tmp_path):
    before = process_cpu_s(os.getpid())
    deadline = time.process_time() + 3 / CLOCK_TICKS
    while time.process_time() < deadline:
        pass
    assert process_cpu_s(os.getpid()) > before
    assert cpu_ticks(Path(f"/proc/{os.getpid()}/stat")) >= round(before * CLOCK_TICKS)
    assert cpu_ticks(tmp_path / "gone" / "stat") == 0
    assert process_cpu_s(2 ** 22 + 12345) == 0.0     # no such process
