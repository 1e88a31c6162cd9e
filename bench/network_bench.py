"""Benchmark of a whole network brought up by ``qkdn up`` (separate processes, loopback).

Rows:

* ``network.up_s`` — ``qkdn up`` of the paper topology until every agent answers;
* ``twin.first_key_s`` — from the start of ``qkdn up`` until every link's key store, at both
  ends, holds key (read through each agent's NETCONF ``get``), target 2 s;
* ``network.node_rss_mib`` — resident memory of a node process (agent + KM + modules);
* ``network.fault_to_notification_s`` — ``link-down`` fault recorded to the
  ``sdqkdn_link_down`` notification at an end, target 1 s.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from lxml import etree

from bench.report import row
from qkdn.bringup import bring_down, bring_up, network_status
from qkdn.namespaces import ETSI_NODE_NS, QKDN_KM_NS
from qkdn.netconf_client import connect
from qkdn.state_files import StateDir

REPO = Path(__file__).resolve().parent.parent
PAPER = REPO / "topologies" / "paper.yaml"
NS = {"n": ETSI_NODE_NS, "km": QKDN_KM_NS}


def _stores_filled(sessions: dict) -> bool:
    for session in sessions.values():
        data = session.get(filter=("subtree", f'<qkd_node xmlns="{ETSI_NODE_NS}"><qkd_links/>'
                                              f'</qkd_node>')).data_ele
        levels = data.findall(".//km:key_store/km:stored_key_bits", NS)
        links = data.findall(".//n:qkd_link", NS)
        if not links or len(levels) < len(links) or any(int(x.text) == 0 for x in levels):
            return False
    return True


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _one_run(workdir: Path) -> dict[str, float]:
    state = StateDir(workdir)
    started = time.monotonic()
    endpoints = bring_up(PAPER, state, timeout=120)
    try:
        up_s = time.monotonic() - started
        sessions = {}
        for name, node in endpoints["nodes"].items():
            nc = node["netconf"]
            sessions[name] = connect(nc["host"], nc["port"], nc["username"], nc["password"])
        while not _stores_filled(sessions):
            if time.monotonic() - started > 120:
                raise RuntimeError("links did not deliver key within 120 s")
            time.sleep(0.05)
        first_key_s = time.monotonic() - started
        rss = [_rss_mib(p["pid"]) for p in network_status(state)["processes"]]

        from qkd_twin.faults import FaultKind, append_fault

        node_a = sessions["4"]
        node_a.create_subscription()
        record = append_fault(state.root, "4", "5", FaultKind.LINK_DOWN, None)
        note = node_a.take_notification(block=True, timeout=10)
        while note is not None and "sdqkdn_link_down" not in note.notification_xml:
            note = node_a.take_notification(block=True, timeout=10)
        fault_s = time.time() - record.effective_time if note is not None else float("nan")
        for session in sessions.values():
            session.close_session()
        return {"up": up_s, "first_key": first_key_s, "rss": statistics.median(rss),
                "fault": fault_s}
    finally:
        bring_down(state)


def run(quick: bool = False) -> list[dict]:
    runs = 1 if quick else 3
    results = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="qkdn-bench-") as tmp:
            results.append(_one_run(Path(tmp)))
    up = [r["up"] for r in results]
    first = [r["first_key"] for r in results]
    rss = [r["rss"] for r in results]
    fault = [r["fault"] for r in results]
    return [
        row("network.up_s", statistics.median(up), "s", samples=up),
        row("twin.first_key_s", statistics.median(first), "s", target="<= 2",
            meets=statistics.median(first) <= 2.0, samples=first),
        row("network.node_rss_mib", statistics.median(rss), "MiB", samples=rss),
        row("network.fault_to_notification_s", statistics.median(fault), "s", target="<= 1",
            meets=statistics.median(fault) <= 1.0, samples=fault),
    ]


if __name__ == "__main__":
    from bench.report import format_table

    print(format_table(run(quick=True)))
