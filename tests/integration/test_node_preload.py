"""A node started after the supervisor's preload imports nothing more until its first key
blocks and first operational read: whatever it imported would be imported again, after the
fork, by each of the six nodes at once (docs/twin.md, "From qkdn up to the first key")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import importlib, json, sys, time
    from pathlib import Path
    import qkdn.supervisor
    from qkdn.node_runtime import PRELOAD_MODULES, NodeRuntime
    for name in PRELOAD_MODULES:
        importlib.import_module(name)
    from qkdn.bringup import NodeProcessConfig, prepare_state_dir
    from qkdn.state_files import StateDir
    from qkdn.structured_logging import configure_logging

    state = StateDir(Path(sys.argv[1]))
    prepare_state_dir(Path(sys.argv[2]), state)
    config = NodeProcessConfig.load(state.node_config("3"))   # its link 0-3: protocol mode
    before = set(sys.modules)
    configure_logging("3")
    node = NodeRuntime(config).__enter__()
    try:
        module = next(iter(node.modules.values()))
        deadline = time.monotonic() + 90
        while module.blocks_done < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        node.operational_state()
        print(json.dumps({"blocks": module.blocks_done,
                          "new": sorted(set(sys.modules) - before)}))
    finally:
        node.__exit__(None, None, None)
""")


def test_a_node_imports_nothing_beyond_the_preload_until_its_first_blocks(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "net"), str(REPO / "topologies" /
                                                                 "paper.yaml")],
        env=env, capture_output=True, text=True, timeout=240, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["blocks"] >= 2
    assert result["new"] == []
