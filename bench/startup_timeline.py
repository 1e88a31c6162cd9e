"""Timeline of one ``qkdn up`` of the paper network, from the call to the first key.

``python -m bench.startup_timeline [--keep DIR]`` brings the paper topology up once with the
benchmark's first-key watcher (:mod:`bench.network_bench`) and prints, in seconds after the
call of ``bring_up``, when each step happened — read from the elements' own logs and files:

* ``supervisor``: its log lines (controller, orchestrator, node starts; the preload);
* per node: the agent listening, the KM listening, the node ready (``node.log``), its link
  ends' module start (the end record ``DIR/twin/links/<qkdl_id>/<node>.json``) and the first
  key block its KM got from each link (``qkd_twin.pairing`` logs it once per end);
* the controller's and the orchestrator's ready files;
* the watcher: each node's NETCONF session open, and the moment every store held key
  (``twin.first_key_s``); ``bring_up`` returning (``network.up_s``);
* the CPU seconds each process had used when every store held key and when ``bring_up``
  returned (``/proc/<pid>/stat``; the benchmark process's own from ``time.process_time``).

Log timestamps are wall-clock (``time.time``) and have millisecond resolution.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.network_bench import PAPER, _FirstKeyWatcher
from bench.process_cpu import process_cpu_s
from qkdn.bringup import bring_down, bring_up
from qkdn.state_files import StateDir, read_json
from qkdn.topology import load_topology

_SUPERVISOR_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ qkdn\.supervisor: (.*)$")
_NODE_EVENTS = (
    ("agent listening", re.compile(r"NETCONF agent listening")),
    ("KM listening", re.compile(r"HTTPS \(mTLS\) listening")),
    ("node ready", re.compile(r"serving NETCONF on")),
)
_FIRST_BLOCK = re.compile(r"link (\S+): first key block (\d+) delivered")


def _supervisor_events(state: StateDir) -> list[tuple[float, str]]:
    events = []
    for line in state.supervisor_log.read_text().splitlines():
        match = _SUPERVISOR_LINE.match(line)
        if match:
            stamp = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            events.append((stamp, f"supervisor: {match.group(2)}"))
    return events


def _node_events(state: StateDir, name: str, link_names: dict[str, str]) -> list[tuple[float, str]]:
    events = []
    for line in state.node_log(name).read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        stamp = datetime.strptime(record["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=UTC).timestamp()
        message = record.get("msg", "")
        for label, pattern in _NODE_EVENTS:
            if pattern.search(message):
                events.append((stamp, f"node {name}: {label}"))
        first = _FIRST_BLOCK.search(message)
        if first:
            link = link_names.get(first.group(1), first.group(1))
            events.append((stamp, f"node {name}: first key block of link {link}"))
    for qkdl_id, link in link_names.items():
        record = state.root / "twin" / "links" / qkdl_id / f"{name}.json"
        if record.exists() and name in link.split("-"):
            events.append((record.stat().st_mtime, f"node {name}: module of link {link} started"))
    return events


def element_cpu(state: StateDir) -> dict[str, float]:
    """CPU seconds each element of the network (and the supervisor) has used so far."""
    table = read_json(state.supervisor)
    cpu = {"supervisor": process_cpu_s(table["pid"])}
    for name, child in table["children"].items():
        if child.get("pid"):
            with contextlib.suppress(OSError):
                cpu[f"{child['kind']} {name}" if child["kind"] == "node" else name] = (
                    process_cpu_s(child["pid"]))
    return cpu


def timeline(workdir: Path) -> tuple[list[tuple[float, str]], dict[str, float]]:
    """Bring the paper network up in ``workdir`` once; the events (seconds after the call of
    ``bring_up``, label) and the two benchmark figures."""
    state = StateDir(workdir)
    topology = load_topology(PAPER)
    link_names = {link.qkdl_id: f"{link.a}-{link.b}" for link in topology.links}
    wall0, started, cpu0 = time.time(), time.monotonic(), time.process_time()
    watcher = _FirstKeyWatcher(state, started)
    watcher.start()
    at_first_key: dict[str, float] = {}

    def sample_at_first_key() -> None:   # each process's CPU when every store held key
        watcher.join()
        with contextlib.suppress(OSError, ValueError, KeyError):
            at_first_key.update(element_cpu(state))
            at_first_key["bench process"] = time.process_time() - cpu0

    sampler = threading.Thread(target=sample_at_first_key, daemon=True)
    sampler.start()
    events = [(wall0, "qkdn up called")]
    try:
        bring_up(PAPER, state, timeout=120)
        up_s = time.monotonic() - started
        watcher.join(60)
        figures = {"network.up_s": up_s, "twin.first_key_s": watcher.first_key_s or float("nan")}
        sampler.join(10)
        figures.update({f"cpu_s at first key: {name}": round(value, 2)
                        for name, value in at_first_key.items()})
        figures["cpu_s at first key: total"] = round(sum(at_first_key.values()), 2)
        figures.update({f"cpu_s at up: {name}": round(value, 2)
                        for name, value in element_cpu(state).items()})
        figures["cpu_s at up: bench process"] = round(time.process_time() - cpu0, 2)
        for label, path in (("controller ready file", state.controller_ready),
                            ("orchestrator ready file",
                             state.root / "orchestrator" / "ready.json")):
            if path.exists():
                events.append((path.stat().st_mtime, label))
    finally:
        watcher.stop.set()
        bring_down(state)
    events.append((wall0 + up_s, "bring_up returned (network.up_s)"))
    if watcher.first_key_s is not None:
        events.append((wall0 + watcher.first_key_s,
                       "watcher: every store holds key (twin.first_key_s)"))
    for name, at in watcher.connected_at.items():
        events.append((wall0 + at, f"watcher: NETCONF session to node {name} open"))
    events += _supervisor_events(state)
    for node in topology.nodes:
        events += _node_events(state, node.name, link_names)
    return sorted((at - wall0, label) for at, label in events), figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.startup_timeline")
    parser.add_argument("--keep", type=Path, help="bring the network up in DIR and keep it")
    args = parser.parse_args(argv)
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="qkdn-timeline-"))
    try:
        events, figures = timeline(workdir)
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    for at, label in events:
        print(f"{at:7.3f}  {label}")
    print(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
