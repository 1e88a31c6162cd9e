"""Warm start of element processes: import the heavy modules once, then fork each element.

A node process imports libyang, asyncssh, numpy, cryptography, Flask and cheroot
before it serves (about a second of CPU each time); seven such processes starting at once on
two cores took most of the eight seconds from ``qkdn up`` to the first key. The supervisor
instead imports those modules once (:func:`preload`) and *forks* every node from itself
(:func:`fork_child`): a child starts with the modules already in memory (shared copy-on-write)
and does only its own work.

The forked children stay the supervisor's direct children, so nothing else changes:

* :class:`ForkedProcess` offers the part of :class:`subprocess.Popen` the supervisor uses
  (``pid``, ``poll``, ``wait``, ``terminate``, ``kill``, ``returncode``) on top of
  ``waitpid``, so exits are seen and restarted exactly as before;
* the child sets ``PR_SET_PDEATHSIG`` (SIGTERM) and exits at once if its parent is already
  gone, so even a ``kill -9`` of the supervisor leaves no element running;
* the child gets its own stdin (``/dev/null``), stdout and stderr (its log file), default
  signal dispositions and its own ``sys.argv``, and ends with ``os._exit`` with the entry's
  return value (1 with a traceback in the log when it raises).

Rules for the forking process (the supervisor): no threads of its own when it forks (a thread
holding a lock at ``fork()`` leaves that lock held forever in the child), and preloaded
modules must not start threads at import — numpy's OpenBLAS pool is limited to one thread
(:data:`SINGLE_THREAD_ENV`) before numpy is imported. Nothing that opens sockets, files or
event loops at import time belongs in the preload list.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

log = logging.getLogger("qkdn.fork_server")

#: Set (when unset) before numpy is imported in a forking process: its BLAS thread
#: pools would otherwise exist at ``fork()`` time. The nodes' numerical work (Cascade,
#: Toeplitz FFT) is single-threaded anyway.
SINGLE_THREAD_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

#: Environment switch: ``QKDN_NO_FORK=1`` makes the supervisor start every element with a
#: fresh interpreter (``subprocess.Popen``) as before (for comparison and debugging).
NO_FORK_ENV = "QKDN_NO_FORK"

#: Whether a supervisor, its preload and the elements it starts cache bytecode even when
#: the environment sets ``PYTHONDONTWRITEBYTECODE`` (as the development machines do):
#: without a cache every ``qkdn up`` compiled the project's own modules — ~15,000 lines for
#: a node, 0.2–0.3 s of CPU, a fifth of the preload, on the path to the first key (and more
#: in the controller and the orchestrator). Python writes ``__pycache__`` next to the
#: sources (ignored by git), atomically, and checks it against the source's mtime and size;
#: a read-only tree is simply not cached. Installed packages have their bytecode already.
WRITE_BYTECODE = True
NO_BYTECODE_ENV = "PYTHONDONTWRITEBYTECODE"

_PR_SET_PDEATHSIG = 1


def fork_enabled() -> bool:
    """False when the environment asks for fresh interpreters (``QKDN_NO_FORK=1``)."""
    return os.environ.get(NO_FORK_ENV, "").strip() not in ("1", "true", "yes")


@dataclass(frozen=True)
class ForkEntry:
    """What a forked child runs: ``function(*args)`` returning its exit code, with
    ``argv`` as the child's ``sys.argv`` (for its log lines and tracebacks)."""

    function: Callable[..., int | None]
    args: tuple[object, ...] = ()
    argv: tuple[str, ...] = ()


class LibraryPrefetch:
    """Looks up shared libraries with :func:`ctypes.util.find_library` in a thread while
    this process imports, and answers those names from the results meanwhile.

    On Linux, looking up a library that is not installed runs ``ldconfig``, ``gcc`` and
    ``ld`` one after the other (0.04–0.1 s of waiting per name); asyncssh does so at import
    for liboqs (``oqs``, ``liboqs``: its optional post-quantum key exchange). Done in a
    thread, those lookups wait for their subprocesses while the main thread imports numpy
    and the rest. The answers are ``find_library``'s own; other names go to it unchanged. A
    context manager: the thread is joined and ``find_library`` restored on exit (a forking
    process must have no thread of its own at ``fork()``)."""

    def __init__(self, names: Iterable[str]) -> None:
        import ctypes.util

        self._util = ctypes.util
        self._original = ctypes.util.find_library
        self.names = tuple(names)
        self.results: dict[str, str | None] = {}
        self._thread = threading.Thread(target=self._look_up, name="find-library",
                                        daemon=True)

    def _look_up(self) -> None:
        for name in self.names:
            try:
                self.results[name] = self._original(name)
            except Exception:  # the caller's own lookup then decides
                log.debug("find_library(%r) failed in the prefetch", name, exc_info=True)

    def find_library(self, name: str) -> str | None:
        """``ctypes.util.find_library`` while the prefetch is active."""
        if name in self.names:
            self._thread.join()
            if name in self.results:
                return self.results[name]
        return self._original(name)

    def __enter__(self) -> Self:
        if self.names:
            self._thread.start()
            self._util.find_library = self.find_library
        return self

    def __exit__(self, *exc: object) -> None:
        if self.names:
            self._thread.join()
            self._util.find_library = self._original


def preload(modules: Iterable[str], libraries: Iterable[str] = (), *,
            write_bytecode: bool = False) -> dict[str, float]:
    """Import ``modules`` into this process; returns seconds per module (a module that fails
    to import is logged and skipped: the child then imports it itself, or fails loudly).
    ``libraries``: names the modules look up with ``ctypes.util.find_library`` at import,
    looked up in a thread meanwhile (:class:`LibraryPrefetch`). ``write_bytecode``: cache
    the bytecode of what is compiled (``__pycache__``) even when ``PYTHONDONTWRITEBYTECODE``
    is set, for the duration of the preload (see :data:`WRITE_BYTECODE`)."""
    for name, value in SINGLE_THREAD_ENV.items():
        os.environ.setdefault(name, value)
    took: dict[str, float] = {}
    dont_write = sys.dont_write_bytecode
    if write_bytecode:
        sys.dont_write_bytecode = False
    with contextlib.ExitStack() as restore, LibraryPrefetch(libraries):
        restore.callback(setattr, sys, "dont_write_bytecode", dont_write)
        for name in modules:
            started = time.perf_counter()
            try:
                importlib.import_module(name)
            except Exception:  # a missing optional plane must not stop the others
                log.warning("preload of %s failed; children import it themselves", name,
                            exc_info=True)
                continue
            took[name] = time.perf_counter() - started
    return took


class ForkedProcess:
    """A forked child, seen through the :class:`subprocess.Popen` calls the supervisor uses."""

    def __init__(self, pid: int, args: Sequence[str] = ()) -> None:
        self.pid = pid
        self.args = list(args)
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """The exit code once the child has ended (negative: killed by that signal)."""
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: it has ended
                self.returncode = -signal.SIGKILL
                return self.returncode
            if pid == self.pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
            time.sleep(0.01)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def _die_with_parent(parent: int) -> None:
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass
    if os.getppid() != parent:  # the parent died before prctl: nobody would stop us
        os._exit(1)


def _redirect_stdio(log_path: Path) -> None:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    out = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(null)
    os.close(out)
    # the parent's sys.stdout/sys.stderr objects may not write to fds 1 and 2 (a test runner's
    # capture, say): give the child its own, and point the logging handlers at them
    old = {id(sys.stdout): "stdout", id(sys.stderr): "stderr"}
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 (lives as long as the child)
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    for handler in logging.getLogger().handlers:
        stream = getattr(handler, "stream", None)
        if isinstance(handler, logging.StreamHandler) and id(stream) in old:
            handler.setStream(getattr(sys, old[id(stream)]))


def _run_child(entry: ForkEntry, log_path: Path, parent: int) -> None:
    """In the child; never returns."""
    code = 1
    try:
        _die_with_parent(parent)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
        _redirect_stdio(log_path)
        if entry.argv:
            sys.argv = list(entry.argv)
        result = entry.function(*entry.args)
        code = int(result or 0)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 (the child must end here, never in the parent's loop)
        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def fork_child(entry: ForkEntry, log_path: Path) -> ForkedProcess:
    """Fork a child that runs ``entry`` with stdout and stderr appended to ``log_path``."""
    sys.stdout.flush()
    sys.stderr.flush()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        _run_child(entry, Path(log_path), parent)
    return ForkedProcess(pid, entry.argv)
