"""qkdn.process_liveness.pid_alive: running, never started, exited-but-unreaped, reaped."""

import os
import subprocess
import sys
import time

from qkdn.process_liveness import pid_alive


def test_own_process_is_alive_and_no_pid_is_not():
    assert pid_alive(os.getpid())
    assert not pid_alive(None)
    assert not pid_alive(0)
    assert not pid_alive(2 ** 22 + 12345)   # above pid_max: no such process


def test_an_exited_child_is_dead_before_and_after_it_is_reaped():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while pid_alive(child.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not pid_alive(child.pid)      # a zombie until wait() below
    assert child.wait(5) == 0
    assert not pid_alive(child.pid)
