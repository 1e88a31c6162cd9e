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
