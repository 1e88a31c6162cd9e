"""``qkdn demo``: the paper's network and experiment end to end, on this machine.

Brings up ``topologies/paper.yaml`` (six node processes with the twin's physics on every
link, the SDN controller), shows each node through NETCONF, runs the paper's scenario —
parallel ETSI 014 and ETSI 004 key requests between the applications on nodes 0–1, 2–3 and
4–5 — and reports each pair's path and whether both ends got the same keys. Shows progress
while it runs, then the event timeline every KM recorded (request arrival, authentication,
path configuration, QKD key available, relay hop received, key returned — as in Fig. 4),
optionally as a plot. Exits 0 only if every pair matched.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from lxml import etree

from qkdn.bringup import BringUpError, bring_down, bring_up
from qkdn.event_log import Event, EventKind, collect_events
from qkdn.namespaces import ETSI_NODE_NS
from qkdn.netconf_client import connect
from qkdn.paper_scenario import FlowResult, run_paper_scenario
from qkdn.state_files import StateDir, read_json
from qkdn.timeline import format_timeline, report_events
from qkdn.topology import load_topology

PAPER_TOPOLOGY = Path(__file__).resolve().parent.parent / "topologies" / "paper.yaml"
QKD_NODE_FILTER = f'<qkd_node xmlns="{ETSI_NODE_NS}"/>'


@dataclass(frozen=True)
class LinkSummary:
    qkdl_id: str
    link_type: str
    status: str
    remote_qkdn_id: str
    skr_bps: int | None


@dataclass(frozen=True)
class NodeSummary:
    qkdn_id: str
    status: str
    interfaces: int
    links: tuple[LinkSummary, ...]
    applications: int


def summarise_qkd_node(data: etree._Element) -> NodeSummary:
    """The facts of a ``get`` reply's ``qkd_node`` that an operator looks at first."""
    ns = {"n": ETSI_NODE_NS}
    node = data.find(".//n:qkd_node", ns)
    if node is None:
        raise ValueError("the reply holds no qkd_node")

    def text(element: etree._Element | None, path: str, default: str = "") -> str:
        found = element.find(path, ns) if element is not None else None
        return (found.text or default) if found is not None else default

    links = []
    for link in node.findall("n:qkd_links/n:qkd_link", ns):
        skr = text(link, "n:qkdl_performance/n:skr")
        links.append(LinkSummary(
            text(link, "n:qkdl_id"), text(link, "n:qkdl_type").split(":")[-1],
            text(link, "n:qkdl_status", "-").split(":")[-1],
            text(link, "n:qkdl_remote/n:qkdn_id"), int(skr) if skr else None))
    return NodeSummary(
        qkdn_id=text(node, "n:qkdn_id"),
        status=text(node, "n:qkdn_status", "-").split(":")[-1],
        interfaces=len(node.findall("n:qkd_interfaces/n:qkd_interface", ns)),
        links=tuple(links),
        applications=len(node.findall("n:qkd_applications/n:qkd_app", ns)),
    )


def fetch_summary(netconf: dict[str, Any]) -> NodeSummary:
    with connect(netconf["host"], netconf["port"], netconf["username"],
                 netconf["password"]) as session:
        reply = session.get(filter=("subtree", QKD_NODE_FILTER))
        return summarise_qkd_node(reply.data_ele)


def session_paths(state: StateDir) -> dict[frozenset[str], list[str]]:
    """Node path of each SAE pair's session, from the controller's session table."""
    try:
        sessions = read_json(state.controller_dir / "sessions.json")["sessions"]
    except (OSError, ValueError, KeyError):
        return {}
    paths: dict[frozenset[str], list[str]] = {}
    for session in sessions:
        if not session.get("responder") or not session.get("paths"):
            continue
        pair = frozenset({session["initiator"]["sae_id"], session["responder"]["sae_id"]})
        paths[pair] = list(session["paths"][0]["nodes"])
    return paths


def build_report(results: list[FlowResult], paths: dict[frozenset[str], list[str]],
                 events: list[Event] | None = None, t0: float | None = None
                 ) -> dict[str, Any]:
    """The report: pairs (path, whether keys match, key ids — never keys), the time to the
    first key, and every KM's events with ``t`` in seconds from ``t0`` (``started_at``)."""
    pairs = []
    for r in results:
        pairs.append({"a": r.a, "b": r.b, "api": r.api,
                      "path": paths.get(frozenset({f"sae-{r.a}", f"sae-{r.b}"}), []),
                      "keys_match": r.keys_match, "key_ids": r.key_ids,
                      **({"error": r.error} if r.error else {})})
    firsts = [r.first_key_s for r in results if r.first_key_s is not None]
    report: dict[str, Any] = {"pairs": pairs,
                              "time_to_first_key_s": min(firsts) if firsts else None,
                              "events": report_events(events or [], t0 or 0.0)}
    if t0 is not None:
        report["started_at"] = t0
    return report


def node_dirs(state: StateDir) -> dict[str, Path]:
    """Each node's state folder (where its KM writes ``events.jsonl``)."""
    return {node.name: state.node_dir(node.name) for node in load_topology(state.topology).nodes}


class Progress:
    """Polls ``status()`` every ``interval`` seconds while open; prints its text when its
    state changed, or every ``heartbeat`` seconds while it does not (so a slow step still
    shows that the demo is alive). ``status()`` returns (state, text)."""

    def __init__(self, out: Callable[[str], None], status: Callable[[], tuple[object, str]],
                 interval: float = 0.5, heartbeat: float = 5.0) -> None:
        self._out, self._status, self._interval = out, status, interval
        self._heartbeat = heartbeat
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-progress", daemon=True)

    def _run(self) -> None:
        last_state: object = None
        last_print = time.monotonic()
        while not self._stop.wait(self._interval):
            try:
                state, text = self._status()
            except (OSError, ValueError):  # a file being rewritten: next tick
                continue
            now = time.monotonic()
            if state != last_state or now - last_print >= self._heartbeat:
                last_state, last_print = state, now
                self._out(text)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


def bringup_status(state: StateDir, nodes: list[str], started: float) -> tuple[object, str]:
    serving = sum(1 for n in nodes if state.node_ready(n).exists())
    connected = state.controller_ready.exists()
    controller = " · controller connected" if connected else ""
    return (serving, connected), (f"  ... {time.monotonic() - started:4.1f} s: {serving}/"
                                  f"{len(nodes)} nodes serving{controller}")


def scenario_status(state: StateDir, since: float) -> tuple[object, str]:
    """What the KMs have recorded since ``since`` (epoch s), as one progress line."""
    counts: dict[EventKind, int] = {}
    for event in collect_events(node_dirs(state), since=since):
        counts[event.event] = counts.get(event.event, 0) + 1
    return sorted(counts.items()), (
            f"  ... {time.time() - since:4.1f} s: {counts.get(EventKind.REQUEST, 0)} requests, "
            f"{counts.get(EventKind.AUTHENTICATED, 0)} authenticated, "
            f"{counts.get(EventKind.PATH_CONFIGURED, 0)} path configurations, "
            f"{counts.get(EventKind.RELAY_HOP_RECEIVED, 0)} relay hops, "
            f"{counts.get(EventKind.KEY_RETURNED, 0)} keys returned")


def access_help(endpoints: dict[str, Any], state: StateDir) -> list[str]:
    """How to reach a network left running (``--keep``) and how to stop it."""
    lines = [f"\nleft running (state {state.root}); endpoints: {state.endpoints}"]
    for name, node in endpoints["nodes"].items():
        nc = node["netconf"]
        lines.append(f"  node {name}: netconf {nc['host']}:{nc['port']} (user {nc['username']})"
                     f"  014 {node['etsi014']}  metrics {node.get('metrics_url', '-')}")
    controller = endpoints.get("controller") or {}
    if controller:
        lines.append(f"  controller: log {controller.get('log')}  metrics "
                     f"{controller.get('metrics_url', '-')}")
    lines += [(f"  events: {state.root}/nodes/<n>/events.jsonl   sessions: qkdn sessions "
               f"--state-dir {state.root}"),
              f"  SAE certificates: {state.root}/pki/   CA: {endpoints['ca_cert']}",
              f"stop with: qkdn down --state-dir {state.root}"]
    return lines


def _show_network(endpoints: dict[str, Any], out) -> None:
    id_to_name = {node["qkdn_id"]: name for name, node in endpoints["nodes"].items()}
    for name, node in endpoints["nodes"].items():
        nc = node["netconf"]
        summary = fetch_summary(nc)
        out(f"node {name}  {summary.status:<9} netconf {nc['host']}:{nc['port']}  "
            f"ETSI 014 {node['etsi014']}")
        for link in summary.links:
            peer = id_to_name.get(link.remote_qkdn_id, link.remote_qkdn_id)
            skr = f"{link.skr_bps / 1e6:.2f} Mbit/s" if link.skr_bps is not None else "-"
            out(f"    link {link.link_type} to node {peer:<2} {link.status:<8} skr {skr}")


def run_demo(*, topology: Path = PAPER_TOPOLOGY, state_dir: Path | None = None,
             keep: bool = False, report_path: Path | None = None,
             plot_path: Path | None = None, out=print) -> int:
    tmp = None
    if state_dir is None:
        if keep:  # a network left running keeps its folder
            state_dir = Path(tempfile.mkdtemp(prefix="qkdn-demo-"))
        else:
            tmp = tempfile.TemporaryDirectory(prefix="qkdn-demo-")
            state_dir = Path(tmp.name)
    state = StateDir(state_dir.resolve())
    started = time.monotonic()
    bringup_epoch = time.time()
    out(f"bringing up {topology.name} in {state.root} (one process per node + controller) ...")
    names = [node.name for node in load_topology(topology).nodes]
    try:
        with Progress(out, lambda: bringup_status(state, names, started)):
            endpoints = bring_up(topology, state)
    except BringUpError as exc:   # bring_up has stopped whatever it started
        out(f"bring-up failed: {exc}")
        if tmp is not None:
            tmp.cleanup()
        return 1
    out(f"up in {time.monotonic() - started:.1f} s\n")
    try:
        _show_network(endpoints, out)
        out("\nthe paper's scenario: parallel key requests 0-1, 2-3, 4-5 over ETSI 004 and 014")
        paths: dict[frozenset[str], list[str]] = {}

        def note_paths() -> None:
            time.sleep(0.6)  # the controller writes its session table every tick
            for pair, path in session_paths(state).items():
                paths.setdefault(pair, path)

        t0 = time.time()
        with Progress(out, lambda: scenario_status(state, t0)):
            results = run_paper_scenario(endpoints, after_each_api=note_paths)
        events = collect_events(node_dirs(state), since=bringup_epoch)
        report = build_report(results, paths, events, t0)
        for pair in report["pairs"]:
            verdict = "keys match" if pair["keys_match"] else f"FAILED {pair.get('error', '')}"
            path = "-".join(pair["path"]) or "?"
            out(f"  ETSI {pair['api']}  sae-{pair['a']} <-> sae-{pair['b']}  path {path:<7} "
                f"{len(pair['key_ids'])} keys  {verdict}")
        if report["time_to_first_key_s"] is not None:
            out(f"first key delivered {report['time_to_first_key_s']:.2f} s after the requests")
        out("")
        for line in format_timeline(events, t0):
            out(line)
        if report_path is not None:
            report_path.write_text(json.dumps(report, indent=2) + "\n")
            out(f"report: {report_path}")
        if plot_path is not None:
            from qkdn.timeline_plot import plot_timeline

            plot_timeline(events, t0, plot_path)
            out(f"timeline plot: {plot_path}")
        ok = all(pair["keys_match"] for pair in report["pairs"])
        out("\nall pairs got matching keys" if ok else "\nsome pairs did NOT get matching keys")
        return 0 if ok else 1
    finally:
        if keep:
            for line in access_help(endpoints, state):
                out(line)
        else:
            bring_down(state)
            out("network stopped")
            if tmp is not None:
                tmp.cleanup()
