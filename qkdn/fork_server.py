"""Start node processes by ``fork`` from a supervisor that has already imported their code.

A node process imports numpy, scipy, libyang, asyncssh, cryptography, Flask, cheroot, lxml
and the qkdn packages before it serves: about a second of CPU and ~80 MiB of private memory
each when every node starts its own interpreter. The supervisor instead imports them once
(:func:`preload`) and forks one child per node (:func:`fork_child`): the child skips the
imports and shares the parent's pages copy-on-write (what a child later writes, it copies).
On a 100-node network that is the difference between minutes and seconds of bring-up on two
cores, and between ~130 and ~50 MiB of proportional memory (PSS) per node.

The child is the same program as ``python -m qkdn.cli node --config …``: :func:`fork_child`
runs ``main(argv)`` of the ``-m`` module named in the child's argv, with stdin from
``/dev/null``, stdout and stderr to its log, default signal handlers and
``PR_SET_PDEATHSIG`` (it gets SIGTERM when the supervisor dies), then ``os._exit``.
:class:`ForkedProcess` gives the supervisor the part of :class:`subprocess.Popen` it uses.

The parent must be single-threaded when it forks (the supervisor is; preloading numpy with
``OPENBLAS_NUM_THREADS=1`` keeps OpenBLAS from starting its thread pool). Set
``QKDN_FORK_SERVER=0`` to start every child with ``exec`` instead.
"""

from __future__ import annotations

import ctypes
import importlib
import logging
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger("qkdn.fork_server")

#: Modules a node process imports; loaded once in the supervisor.
NODE_PRELOAD = (
    "numpy", "scipy.optimize", "lxml.etree", "libyang", "asyncssh", "cryptography.x509",
    "flask", "cheroot.wsgi", "requests", "yaml",
    "qkdn.cli", "qkdn.bringup_cli", "qkdn.node_runtime", "qkdn.node_model",
    "qkd_agent.agent", "qkd_agent.datastore", "qkd_agent.yang_context",
    "kms.key_manager", "kms.app", "kms.https_server", "kms.key_stream",
    "kms.operational_state", "qkd_twin.module", "qkd_twin.pairing", "qkd_twin.physics",
    "qkd_twin.link_notifications", "qkd_twin.faults",
)

ENV_SWITCH = "QKDN_FORK_SERVER"


def enabled(environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """Whether children are forked (default) rather than exec'd (``QKDN_FORK_SERVER=0``)."""
    return environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


def preload(modules: Sequence[str] = NODE_PRELOAD) -> list[str]:
    """Import ``modules`` in this process; returns those that failed (children import them
    themselves then)."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    failed = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:
            failed.append(name)
            log.warning("preload of %s failed; children import it themselves", name,
                        exc_info=True)
    return failed


def module_argv(argv: Sequence[str]) -> tuple[str, list[str]]:
    """``(module, args)`` of an argv of the form ``python -m MODULE ARGS…``.

    >>> module_argv(["/usr/bin/python3", "-m", "qkdn.cli", "node", "--config", "n.json"])
    ('qkdn.cli', ['node', '--config', 'n.json'])
    """
    if len(argv) < 3 or argv[1] != "-m":
        raise ValueError("a forked child's argv must be: python -m MODULE [ARGS...]")
    return argv[2], list(argv[3:])


class ForkedProcess:
    """The part of :class:`subprocess.Popen` the supervisor uses, for a forked child."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def _reap(self, flags: int) -> int | None:
        if self.returncode is not None:
            return self.returncode
        try:
            pid, status = os.waitpid(self.pid, flags)
        except ChildProcessError:
            self.returncode = -1   # reaped elsewhere; its status is lost
            return self.returncode
        if pid == 0:
            return None
        self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def poll(self) -> int | None:
        return self._reap(os.WNOHANG)

    def wait(self, timeout: float | None = None) -> int:
        if timeout is None:
            code = self._reap(0)
            assert code is not None
            return code
        deadline = time.monotonic() + timeout
        while True:
            code = self.poll()
            if code is not None:
                return code
            if time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout)
            time.sleep(0.02)

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


def fork_child(argv: Sequence[str], log_path: Path) -> ForkedProcess:
    """Fork a child that runs ``main(args)`` of the ``-m`` module of ``argv`` (module
    imported already, or imported by the child) with its output in ``log_path``."""
    module, args = module_argv(argv)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    out = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    pid = os.fork()
    if pid:
        os.close(out)
        return ForkedProcess(pid)
    code = 1
    try:  # the child: never returns into the supervisor's code
        _become_child(out)
        sys.argv = [f"{module}"] + args
        code = int(importlib.import_module(module).main(args) or 0)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - report, then exit non-zero
        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _become_child(out: int) -> None:
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(signum, signal.SIG_DFL)
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: die with the supervisor
        libc.prctl(15, b"qkdn-node", 0, 0, 0)  # PR_SET_NAME: 'qkdn-node' in top / ps -o comm
    except OSError:
        pass
    if os.getppid() == 1:  # the supervisor died before the prctl
        os._exit(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(out)
    # streams on the new descriptors (the parent's sys.stdout may not write to fd 1)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 - lives as long as the child
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
