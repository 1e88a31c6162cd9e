"""Fork server: forked children behave like the supervisor's Popen children."""

import os
import signal
import sys
import time

import pytest

from qkdn.fork_server import (
    ForkedProcess,
    ForkEntry,
    LibraryPrefetch,
    fork_child,
    fork_enabled,
    preload,
)


def _print_and_return(text: str, code: int) -> int:
    print(text, sys.argv[0])
    return code


def _raise() -> int:
    raise RuntimeError("boom in the child")


def _sleep_forever() -> int:
    while True:
        time.sleep(1)


def test_child_output_goes_to_its_log_and_its_return_value_is_the_exit_code(tmp_path):
    log = tmp_path / "child.log"
    child = fork_child(ForkEntry(_print_and_return, ("hello", 3), ("qkdn-child",)), log)
    assert child.wait(timeout=20) == 3
    assert child.poll() == 3
    assert log.read_text() == "hello qkdn-child\n"
    assert sys.argv[0] != "qkdn-child"          # the parent's argv is untouched


def test_an_exception_in_the_child_is_logged_and_exits_1(tmp_path):
    log = tmp_path / "child.log"
    child = fork_child(ForkEntry(_raise), log)
    assert child.wait(timeout=20) == 1
    assert "RuntimeError: boom in the child" in log.read_text()


def test_terminate_reports_the_signal_like_popen(tmp_path):
    child = fork_child(ForkEntry(_sleep_forever), tmp_path / "child.log")
    assert child.poll() is None
    child.terminate()
    assert child.wait(timeout=20) == -signal.SIGTERM
    child.kill()                                  # harmless once it has ended


def test_wait_times_out_like_popen(tmp_path):
    import subprocess

    child = fork_child(ForkEntry(_sleep_forever), tmp_path / "child.log")
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            child.wait(timeout=0.05)
    finally:
        child.kill()
        child.wait(timeout=20)


def _middle(pid_file: str) -> int:
    """A forking parent: forks a grandchild, records its pid, then waits to be killed."""
    grandchild = fork_child(ForkEntry(_sleep_forever), pid_file + ".log")
    with open(pid_file + ".tmp", "w") as handle:
        handle.write(str(grandchild.pid))
    os.replace(pid_file + ".tmp", pid_file)
    return _sleep_forever()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_forked_child_dies_when_its_parent_is_killed(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    middle = fork_child(ForkEntry(_middle, (str(pid_file),)), tmp_path / "middle.log")
    deadline = time.monotonic() + 20
    while not pid_file.exists():
        assert time.monotonic() < deadline, (tmp_path / "middle.log").read_text()
        time.sleep(0.01)
    grandchild = int(pid_file.read_text())
    assert _alive(grandchild)
    os.kill(middle.pid, signal.SIGKILL)            # like a kill -9 of the supervisor
    assert middle.wait(timeout=20) == -signal.SIGKILL
    while _alive(grandchild):                      # PR_SET_PDEATHSIG: SIGTERM to the orphan
        assert time.monotonic() < deadline, "the orphaned child kept running"
        time.sleep(0.01)


def test_preload_imports_and_skips_what_is_missing():
    took = preload(["json", "qkdn_no_such_module_here"])
    assert "json" in took and "qkdn_no_such_module_here" not in took
    assert os.environ["OPENBLAS_NUM_THREADS"]


def test_no_fork_switch(monkeypatch):
    monkeypatch.setenv("QKDN_NO_FORK", "1")
    assert not fork_enabled()
    monkeypatch.delenv("QKDN_NO_FORK")
    assert fork_enabled()


def test_a_child_reaped_elsewhere_counts_as_ended():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    assert ForkedProcess(pid).poll() is not None


def test_library_prefetch_answers_as_find_library_and_leaves_no_thread(monkeypatch):
    import ctypes.util
    import threading

    asked: list[str] = []
    release = threading.Event()

    def slow_find_library(name: str) -> str | None:
        asked.append(name)
        if name == "slow":
            release.wait(5)                      # the prefetch thread waits here
        return {"slow": None, "present": "libpresent.so.1"}.get(name, f"lib{name}.so")

    monkeypatch.setattr(ctypes.util, "find_library", slow_find_library)
    threads_before = threading.active_count()
    with LibraryPrefetch(["slow", "present"]) as prefetch:
        assert ctypes.util.find_library == prefetch.find_library
        assert ctypes.util.find_library("other") == "libother.so"   # not prefetched: asked
        release.set()
        assert ctypes.util.find_library("slow") is None               # the thread's answers
        assert ctypes.util.find_library("present") == "libpresent.so.1"
    assert asked.count("slow") == 1 and asked.count("present") == 1
    assert ctypes.util.find_library is slow_find_library               # restored
    assert threading.active_count() == threads_before                 # joined before a fork


def test_preload_prefetches_the_libraries_it_is_given(monkeypatch):
    import ctypes.util

    asked: list[str] = []
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: asked.append(name))
    preload(["json"], ["qkdn-no-such-lib"])
    assert asked == ["qkdn-no-such-lib"]


def test_preload_can_cache_bytecode_when_the_environment_says_not_to(tmp_path, monkeypatch):
    for name in ("qkdn_preload_probe_a", "qkdn_preload_probe_b"):
        (tmp_path / f"{name}.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.setattr(sys, "pycache_prefix", None)
    try:
        preload(["qkdn_preload_probe_a"])
        assert not (tmp_path / "__pycache__").exists()      # as the environment says
        preload(["qkdn_preload_probe_b"], write_bytecode=True)
        cached = [p.name for p in (tmp_path / "__pycache__").iterdir()]
        assert [n for n in cached if n.startswith("qkdn_preload_probe_b.")] and not [
            n for n in cached if n.startswith("qkdn_preload_probe_a.")]
        assert sys.dont_write_bytecode is True                 # restored after the preload
    finally:
        for name in ("qkdn_preload_probe_a", "qkdn_preload_probe_b"):
            sys.modules.pop(name, None)
