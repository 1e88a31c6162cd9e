"""Start order of a forking supervisor: the orchestrator (no key waits for it) starts only
once every node has written its ready file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

SCRIPT = textwrap.dedent("""
    import json, os, sys, time
    from pathlib import Path
    from qkdn.fork_server import ForkEntry
    from qkdn.state_files import StateDir
    from qkdn.supervisor import ChildSpec, Supervisor

    root = Path(sys.argv[1])

    def node(name, delay):
        time.sleep(delay)
        (root / f"{name}.ready").write_text(str(time.time()))
        time.sleep(60)

    def spec(name, delay):
        return ChildSpec(name, "node", ("node", name), root / f"{name}.log",
                         root / f"{name}.ready", None, ForkEntry(node, (name, delay), ()))

    orchestrator = ChildSpec(
        "orchestrator", "orchestrator",
        (sys.executable, "-c", "import pathlib, sys, time; "
         "pathlib.Path(sys.argv[1]).write_text(repr(time.time())); time.sleep(60)",
         str(root / "orchestrator.started")),
        root / "orchestrator.log", root / "orchestrator.ready")
    import qkdn.supervisor as supervisor
    supervisor.log.disabled = True
    import qkdn.node_runtime
    qkdn.node_runtime.PRELOAD_MODULES = ()      # nothing to preload in this test
    qkdn.node_runtime.PRELOAD_LIBRARIES = ()
    sys.exit(Supervisor(StateDir(root), [spec("a", 0.2), spec("b", 0.8), orchestrator]).run())
""")


def test_orchestrator_starts_after_every_node_is_ready(tmp_path: Path):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[3]))
    env.pop("QKDN_NO_FORK", None)
    process = subprocess.Popen([sys.executable, "-c", SCRIPT, str(tmp_path)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        started = tmp_path / "orchestrator.started"
        deadline = time.monotonic() + 30
        while not started.exists() and time.monotonic() < deadline:
            assert process.poll() is None, process.stderr.read().decode()
            time.sleep(0.02)
        time.sleep(0.1)
        orchestrator_at = float(started.read_text())
        ready_at = [float((tmp_path / f"{n}.ready").read_text()) for n in ("a", "b")]
        assert orchestrator_at >= max(ready_at)
        table = json.loads((tmp_path / "supervisor.json").read_text())
        assert table["children"]["orchestrator"]["running"]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)


NEEDS_SCRIPT = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from qkdn.fork_server import ForkEntry
    from qkdn.state_files import StateDir
    from qkdn.supervisor import ChildSpec, Supervisor

    root = Path(sys.argv[1])

    def node():
        (root / "node.tmp").write_text(repr(time.time()))
        (root / "node.tmp").rename(root / "node.started")   # whole, never seen half-written
        time.sleep(60)

    spec = ChildSpec("a", "node", ("node", "a"), root / "a.log", root / "a.ready", None,
                     ForkEntry(node, (), ()), needs=(root / "pki.json",))
    import qkdn.supervisor as supervisor
    supervisor.log.disabled = True
    import qkdn.node_runtime
    qkdn.node_runtime.PRELOAD_MODULES = ()
    qkdn.node_runtime.PRELOAD_LIBRARIES = ()
    (root / "supervisor.running").write_text("")
    sys.exit(Supervisor(StateDir(root), [spec]).run())
""")


def _run_supervisor(script: str, root: Path, *, no_fork: bool) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[3]))
    env.pop("QKDN_NO_FORK", None)
    if no_fork:
        env["QKDN_NO_FORK"] = "1"
    return subprocess.Popen([sys.executable, "-c", script, str(root)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_a_node_starts_only_once_the_files_it_needs_exist(tmp_path: Path):
    process = _run_supervisor(NEEDS_SCRIPT, tmp_path, no_fork=False)
    try:
        time.sleep(1.0)                       # preload (none here) done; pki.json missing
        assert process.poll() is None, process.stderr.read().decode()
        assert not (tmp_path / "node.started").exists()
        written = time.time()
        (tmp_path / "pki.json").write_text("{}")
        deadline = time.monotonic() + 20
        while not (tmp_path / "node.started").exists():
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.01)
        assert float((tmp_path / "node.started").read_text()) >= written
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)


def test_a_supervisor_stopped_while_waiting_for_inputs_exits_cleanly(tmp_path: Path):
    process = _run_supervisor(NEEDS_SCRIPT, tmp_path, no_fork=True)
    try:
        deadline = time.monotonic() + 20
        while not (tmp_path / "supervisor.running").exists():
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.01)
        time.sleep(0.5)                       # in its wait for pki.json
        assert process.poll() is None
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        assert not (tmp_path / "node.started").exists()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=20)
