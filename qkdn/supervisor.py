"""The supervisor of a network brought up by ``qkdn up``: one detached process that starts
every element (node processes now; controller and orchestrator as they land) as a child,
restarts a child that dies with exponential back-off, keeps the live process table in
``DIR/supervisor.json`` and stops everything on SIGTERM.

Children get ``PR_SET_PDEATHSIG`` so that even a ``kill -9`` of the supervisor leaves no
element running.

Node processes are forked from the supervisor once it has imported their heavy modules
(:mod:`qkdn.fork_server`): the controller starts first as a fresh interpreter, the supervisor
preloads the node modules meanwhile, then forks every node (``QKDN_NO_FORK=1``: every element
is a fresh interpreter, as before).
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from qkdn.errors import QkdnError
from qkdn.fork_server import (
    NO_BYTECODE_ENV,
    WRITE_BYTECODE,
    ForkedProcess,
    ForkEntry,
    fork_child,
    fork_enabled,
    preload,
)
from qkdn.state_files import StateDir, read_json, write_json_atomic
from qkdn.topology import load_topology

log = logging.getLogger("qkdn.supervisor")


class SupervisorError(QkdnError):
    """A fault action names an element the supervisor does not run."""

POLL_INTERVAL_S = 0.1
STOP_GRACE_S = 5.0
BACKOFF_FIRST_S = 0.2
BACKOFF_MAX_S = 5.0
HEALTHY_AFTER_S = 30.0  #: a child up this long gets its back-off reset
#: How long the supervisor waits for the files its children need (ChildSpec.needs) before
#: it gives up (exit 1); ``qkdn up`` writes them within a fraction of a second.
NEEDS_TIMEOUT_S = 60.0
NEEDS_POLL_S = 0.005
#: Fresh-interpreter elements a forking supervisor starts once every node is ready rather
#: than before its preload: no key waits for them, and their ~1 s of imports each would take
#: a core from the nodes' start (the controller connects to agents that are up; the
#: orchestrator needs the controller's north-bound interface) (docs/twin.md, start-up timeline).
DEFERRED_KINDS = frozenset({"orchestrator", "controller"})
#: ... or this long after the nodes were forked, whichever comes first.
DEFERRED_START_S = 10.0


@dataclass(frozen=True)
class ChildSpec:
    """What to run for one element, and where its output goes."""

    name: str
    kind: str  #: node | controller | orchestrator
    argv: tuple[str, ...]
    log_path: Path
    ready_path: Path | None = None
    hold_path: Path | None = None  #: while it exists the child is kept stopped
    #: run by forking the warm supervisor instead of ``argv`` (see :mod:`qkdn.fork_server`)
    fork_entry: ForkEntry | None = None
    #: files that must exist before the child first starts (a node: ``pki.json``, which
    #: ``qkdn up`` writes last of the nodes' inputs while the supervisor starts)
    needs: tuple[Path, ...] = ()


@dataclass
class Child:
    spec: ChildSpec
    process: subprocess.Popen[bytes] | ForkedProcess | None = None
    started_at: float = 0.0
    restarts: int = 0
    consecutive_failures: int = 0
    next_start_at: float = 0.0
    last_exit: int | None = None
    history: list[dict[str, object]] = field(default_factory=list)


def restart_delay(consecutive_failures: int) -> float:
    """Back-off before restarting a child that has failed ``consecutive_failures`` times."""
    if consecutive_failures <= 0:
        return 0.0
    return min(BACKOFF_FIRST_S * 2 ** (consecutive_failures - 1), BACKOFF_MAX_S)


def run_node_entry(config_path: str) -> int:
    """A forked node's entry: what ``qkdn node --config PATH`` runs."""
    from qkdn.node_runtime import run_node

    return run_node(Path(config_path))


def node_spec(state: StateDir, name: str) -> ChildSpec:
    """The child spec of node ``name``: ``qkdn node --config DIR/nodes/<name>/node.json``."""
    argv = (sys.executable, "-m", "qkdn.cli", "node", "--config", str(state.node_config(name)))
    return ChildSpec(name, "node", argv, state.node_log(name), state.node_ready(name),
                     state.node_hold(name),
                     ForkEntry(run_node_entry, (str(state.node_config(name)),), argv),
                     needs=(state.pki,))


def child_specs(state: StateDir) -> list[ChildSpec]:
    """Every element of the network in ``state``, in start order."""
    topology = load_topology(state.topology)
    specs = [node_spec(state, node.name) for node in topology.nodes]
    try:
        with_controller = bool(read_json(state.network).get("controller", True))
    except (OSError, ValueError):
        with_controller = True
    if with_controller:
        specs.append(controller_spec(state))
        # the orchestrator talks to the controller's north-bound interface: started after it
        specs.append(orchestrator_spec(state))
    return specs


def controller_spec(state: StateDir) -> ChildSpec:
    """The controller's child spec, the same as ``sdn_controller.daemon.controller_child_spec``
    (a unit test keeps them equal) without importing the controller package here: its
    networkx import cost 0.6 s before the first element started."""
    return ChildSpec("controller", "controller",
                     (sys.executable, "-m", "qkdn.cli", "controller", "--state-dir",
                      str(state.root)),
                     state.controller_dir / "controller.log", state.controller_ready)


def orchestrator_spec(state: StateDir) -> ChildSpec:
    """The orchestrator's child spec, the same as
    ``orchestrator.daemon.orchestrator_child_spec`` (a unit test keeps them equal) without
    importing the orchestrator (Flask, ncclient) into the supervisor."""
    folder = state.root / "orchestrator"
    return ChildSpec("orchestrator", "orchestrator",
                     (sys.executable, "-m", "qkdn.cli", "orchestrator", "--state-dir",
                      str(state.root)),
                     folder / "orchestrator.log", folder / "ready.json")


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the supervisor goes away."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Supervisor:
    def __init__(self, state: StateDir, specs: list[ChildSpec]):
        self.state = state
        self.children = [Child(spec) for spec in specs]
        self._stopping = False

    # --- life cycle -------------------------------------------------------------------
    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        forking = self._forking()
        # fresh interpreters first: they import on another core while this one preloads —
        # except those no key waits for (the orchestrator): they start once every node is
        # ready (or DEFERRED_START_S after the forks), not competing with the nodes' start
        deferred = [c for c in self.children
                    if forking and c.spec.kind in DEFERRED_KINDS and not c.spec.fork_entry]
        if not forking and not self._await_needs():
            return 0 if self._stopping else 1
        for child in self.children:
            if not (forking and child.spec.fork_entry) and all(child is not d for d in deferred):
                self._start(child)
        if forking:
            self._preload()
            if not self._await_needs():
                return 0 if self._stopping else 1
            for child in self.children:
                if child.spec.fork_entry and not self._stopping:
                    self._start(child)
        deferred_until = time.monotonic() + DEFERRED_START_S
        self._write_table()
        while not self._stopping:
            if deferred and (self._nodes_ready() or time.monotonic() >= deferred_until):
                for child in deferred:
                    self._start(child)
                deferred = []
                self._write_table()
            if self._poll(skip=deferred):
                self._write_table()
            time.sleep(POLL_INTERVAL_S / 4 if deferred else POLL_INTERVAL_S)
        self._stop_all()
        self._write_table(stopped=True)
        return 0

    def _await_needs(self, timeout: float = NEEDS_TIMEOUT_S) -> bool:
        """Wait until every file a child needs exists (False: not within ``timeout``, or
        asked to stop meanwhile)."""
        needs = {path for child in self.children for path in child.spec.needs}
        deadline = time.monotonic() + timeout
        while not self._stopping:
            missing = sorted(str(path) for path in needs if not path.exists())
            if not missing:
                return True
            if time.monotonic() >= deadline:
                log.error("gave up after %.0f s waiting for %s", timeout, ", ".join(missing))
                return False
            time.sleep(NEEDS_POLL_S)
        return False

    def _nodes_ready(self) -> bool:
        """True when every node child has written its ready file."""
        return all(c.spec.ready_path is None or c.spec.ready_path.exists()
                   for c in self.children if c.spec.kind == "node")

    def _forking(self) -> bool:
        return fork_enabled() and any(c.spec.fork_entry for c in self.children)

    def _preload(self) -> None:
        from qkdn.node_runtime import PRELOAD_LIBRARIES, PRELOAD_MODULES

        started, cpu = time.perf_counter(), time.process_time()
        took = preload(PRELOAD_MODULES, PRELOAD_LIBRARIES, write_bytecode=WRITE_BYTECODE)
        slowest = ", ".join(f"{name} {seconds:.2f}" for name, seconds
                            in sorted(took.items(), key=lambda item: -item[1])[:4])
        log.info("preloaded the node modules in %.2f s (%.2f s CPU; slowest: %s)",
                 time.perf_counter() - started, time.process_time() - cpu, slowest)

    def _on_stop_signal(self, signum: int, _frame: object) -> None:
        log.info("signal %d: stopping every element", signum)
        self._stopping = True

    def _start(self, child: Child) -> None:
        spec = child.spec
        if spec.ready_path is not None:
            spec.ready_path.unlink(missing_ok=True)
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        if spec.fork_entry is not None and fork_enabled():
            child.process = fork_child(spec.fork_entry, spec.log_path)
        else:
            with open(spec.log_path, "ab") as out:
                child.process = subprocess.Popen(
                    spec.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    preexec_fn=_die_with_parent, close_fds=True,  # noqa: PLW1509 (no threads)
                )
        child.started_at = time.time()
        log.info("started %s %s (pid %d)", spec.kind, spec.name, child.process.pid)

    def _poll(self, skip: list[Child] | None = None) -> bool:
        """Restart children that exited (not those in ``skip``, not started yet); True when
        the table changed."""
        changed = False
        now = time.time()
        for child in self.children:
            if skip and any(child is other for other in skip):
                continue
            held = child.spec.hold_path is not None and child.spec.hold_path.exists()
            if child.process is None:
                if now >= child.next_start_at and not held:
                    self._start(child)
                    changed = True
                continue
            code = child.process.poll()
            if code is None:
                if child.consecutive_failures and now - child.started_at > HEALTHY_AFTER_S:
                    child.consecutive_failures = 0
                continue
            child.last_exit = code
            if held:
                log.warning("%s %s (pid %d) stopped (exit %s) and held by an operator",
                            child.spec.kind, child.spec.name, child.process.pid, code)
                child.history.append({"at": now, "exit": code, "pid": child.process.pid,
                                      "held": True})
                child.process = None
                changed = True
                continue
            child.restarts += 1
            child.consecutive_failures += 1
            delay = restart_delay(child.consecutive_failures)
            child.history.append({"at": now, "exit": code, "pid": child.process.pid})
            log.warning("%s %s (pid %d) exited with %s; restart #%d in %.1f s",
                        child.spec.kind, child.spec.name, child.process.pid, code,
                        child.restarts, delay)
            child.process = None
            child.next_start_at = now + delay
            changed = True
        return changed

    def _stop_all(self) -> None:
        running = [c for c in self.children if c.process is not None]
        for child in running:
            assert child.process is not None
            child.process.terminate()
        deadline = time.time() + STOP_GRACE_S
        for child in running:
            assert child.process is not None
            try:
                child.process.wait(timeout=max(0.0, deadline - time.time()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0f s; killing", child.spec.name, STOP_GRACE_S)
                child.process.kill()
                child.process.wait()
            child.last_exit = child.process.returncode
            child.process = None

    # --- process table ----------------------------------------------------------------
    def _write_table(self, *, stopped: bool = False) -> None:
        table = {
            "pid": os.getpid(),
            "state": "stopped" if stopped else ("stopping" if self._stopping else "running"),
            "updated_at": time.time(),
            "children": {
                child.spec.name: {
                    "kind": child.spec.kind,
                    "pid": child.process.pid if child.process else None,
                    "running": child.process is not None,
                    "held": bool(child.spec.hold_path and child.spec.hold_path.exists()),
                    "started_at": child.started_at,
                    "restarts": child.restarts,
                    "last_exit": child.last_exit,
                    "log": str(child.spec.log_path),
                    "history": child.history[-10:],
                }
                for child in self.children
            },
        }
        write_json_atomic(self.state.supervisor, table)


def kill_node(state_dir: Path, node: str) -> str:
    """Fault injection: kill ``node``'s process (SIGKILL) and keep it down until
    :func:`restart_node`. Its durable state stays in its folder."""
    state = StateDir(Path(state_dir).resolve())
    table = read_table(state) or {}
    child = (table.get("children") or {}).get(node)
    if child is None:
        raise SupervisorError(f"no element named {node!r} in {state.root}")
    state.node_hold(node).touch()
    pid = child.get("pid")
    if pid:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return f"node {node} killed (pid {pid}); held down until 'qkdn fault node-restart {node}'"


def restart_node(state_dir: Path, node: str) -> str:
    """Fault injection: let the supervisor start ``node`` again (after :func:`kill_node`),
    or kill it so that it restarts at once if it is running."""
    state = StateDir(Path(state_dir).resolve())
    table = read_table(state) or {}
    child = (table.get("children") or {}).get(node)
    if child is None:
        raise SupervisorError(f"no element named {node!r} in {state.root}")
    hold = state.node_hold(node)
    if hold.exists():
        hold.unlink()
        return f"node {node} released; the supervisor starts it again"
    pid = child.get("pid")
    if pid:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return f"node {node} (pid {pid}) killed; the supervisor restarts it"


def read_table(state: StateDir) -> dict | None:
    try:
        return read_json(state.supervisor)
    except (OSError, ValueError):
        return None


def cache_bytecode() -> None:
    """This process and the elements it starts cache their bytecode (``__pycache__``), even
    when the environment says not to (``qkdn.fork_server.WRITE_BYTECODE``)."""
    sys.dont_write_bytecode = False
    os.environ.pop(NO_BYTECODE_ENV, None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qkdn.supervisor")
    parser.add_argument("--state-dir", required=True, type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if WRITE_BYTECODE:
        cache_bytecode()
    state = StateDir(args.state_dir.resolve())
    return Supervisor(state, child_specs(state)).run()


if __name__ == "__main__":
    sys.exit(main())
