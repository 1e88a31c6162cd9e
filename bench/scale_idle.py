"""Idle CPU of a running network, per process and per thread (scale work, issues 4 and 7).

``python -m bench.scale_idle --topology topologies/paper.yaml --window 60``
``python -m bench.scale_idle --grid 4x5 --window 60``

Brings the network up exactly as ``qkdn up`` does (supervisor, one process per node,
controller, orchestrator), lets it settle, then reads every process's and every thread's
``utime + stime`` (``/proc/<pid>/task/<tid>/stat``) at the start and the end of a window in
which nothing asks anything of the network. Node threads are named from the ``threads.json``
each node writes when ``QKDN_THREAD_NAMES`` is set (set here). Prints one JSON document:
per kind of process the mean CPU in % of one core, and for the nodes the threads (grouped by
name) that spend it. The network is always torn down.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.process_cpu import CLOCK_TICKS, cpu_ticks


def thread_ticks(pid: int) -> dict[int, int]:
    """{tid: utime+stime} of every thread of ``pid``."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        out[int(tid)] = cpu_ticks(Path(f"/proc/{pid}/task/{tid}/stat"))
    return out


def thread_group(name: str) -> str:
    """A thread name without its per-instance suffix (``qkd-module-1a2b3c4d`` → ``qkd-module``)."""
    name = re.sub(r"-[0-9a-f]{8}$", "", name)
    name = re.sub(r"\(.*\)$", "", name)
    name = re.sub(r"-[^-]+-tick$", "-tick", name)
    name = re.sub(r"[-_ ]?\d+ ?$", "", name)
    return name or "?"


def measure(state_root: Path, window_s: float) -> dict[str, Any]:
    """CPU per process kind and per node thread group over ``window_s`` seconds."""
    from qkdn.state_files import read_json

    table = read_json(state_root / "supervisor.json")
    procs = {name: (child["kind"], child["pid"]) for name, child in table["children"].items()}
    procs["supervisor"] = ("supervisor", table["pid"])
    load_before = os.getloadavg()
    before = {name: thread_ticks(pid) for name, (_, pid) in procs.items()}
    t0 = time.monotonic()
    time.sleep(window_s)
    elapsed = time.monotonic() - t0
    after = {name: thread_ticks(pid) for name, (_, pid) in procs.items()}
    per_kind: dict[str, list[float]] = defaultdict(list)
    groups: dict[str, float] = defaultdict(float)
    node_count = 0
    for name, (kind, _) in procs.items():
        ticks = sum(after[name].get(t, 0) - before[name].get(t, 0) for t in after[name])
        per_kind[kind].append(100.0 * ticks / CLOCK_TICKS / elapsed)
        if kind != "node":
            continue
        node_count += 1
        try:
            names = read_json(state_root / "nodes" / name / "threads.json")
        except (OSError, ValueError):
            names = {}
        for tid, ticks_after in after[name].items():
            delta = ticks_after - before[name].get(tid, 0)
            label = "main" if tid == procs[name][1] else thread_group(names.get(str(tid), "?"))
            groups[label] += 100.0 * delta / CLOCK_TICKS / elapsed
    link_ends = 0
    try:
        from qkdn.topology import load_topology
        link_ends = 2 * len(load_topology(state_root / "topology.yaml").links)
    except (OSError, ValueError, KeyError):
        pass
    # the emulated QKD modules: one thread per link end ("qkd-module-<link>") before session
    # 6, one per node ("qkd-modules") since
    module_pct = sum(v for k, v in groups.items() if k.startswith("qkd-module"))
    return {
        "window_s": round(elapsed, 1),
        "link_ends": link_ends,
        "module_ms_per_link_end_s": (round(10.0 * module_pct / link_ends, 4)
                                     if link_ends else None),
        "loadavg_before": [round(v, 2) for v in load_before],
        "loadavg_after": [round(v, 2) for v in os.getloadavg()],
        "cpu_pct_of_core": {kind: {"mean": round(statistics.fmean(v), 3),
                                   "max": round(max(v), 3), "processes": len(v)}
                            for kind, v in sorted(per_kind.items())},
        "node_threads_pct_per_node": {label: round(total / max(1, node_count), 3)
                                      for label, total in sorted(groups.items(),
                                                                 key=lambda kv: -kv[1])},
    }


def main(argv: list[str] | None = None) -> int:
    from bench.scale_topology import grid_yaml
    from qkdn.bringup import bring_down, bring_up
    from qkdn.node_runtime import THREAD_NAMES_ENV
    from qkdn.state_files import StateDir

    parser = argparse.ArgumentParser(prog="python -m bench.scale_idle")
    parser.add_argument("--topology", type=Path, help="a topology file")
    parser.add_argument("--grid", help="ROWSxCOLS: a grid made by bench.scale_topology")
    parser.add_argument("--window", type=float, default=60.0, help="seconds measured")
    parser.add_argument("--settle", type=float, default=15.0,
                        help="seconds between 'up' and the window")
    args = parser.parse_args(argv)
    os.environ[THREAD_NAMES_ENV] = "1"
    base = Path(tempfile.mkdtemp(prefix="qkdn-idle-"))
    try:
        if args.grid:
            rows, cols = (int(v) for v in args.grid.lower().split("x"))
            topology = base / f"grid{rows}x{cols}.yaml"
            topology.write_text(grid_yaml(rows, cols))
        elif args.topology:
            topology = args.topology.resolve()
        else:
            parser.error("--topology or --grid")
        state = StateDir((base / "net").resolve())
        started = time.monotonic()
        bring_up(topology, state, timeout=900)
        up_s = time.monotonic() - started
        try:
            print(f"up in {up_s:.1f} s; settling {args.settle:.0f} s, measuring "
                  f"{args.window:.0f} s", file=sys.stderr, flush=True)
            time.sleep(args.settle)
            result = measure(state.root, args.window)
            result["topology"] = topology.name
            result["up_s"] = round(up_s, 1)
            print(json.dumps(result, indent=1))
        finally:
            bring_down(state)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
