"""``qkdn demo``: bring the paper's network up, show it through NETCONF, tear it down."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lxml import etree

from qkdn.bringup import bring_down, bring_up
from qkdn.namespaces import ETSI_NODE_NS
from qkdn.netconf_client import connect
from qkdn.state_files import StateDir

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


def run_demo(*, topology: Path = PAPER_TOPOLOGY, state_dir: Path | None = None,
             keep: bool = False, out=print) -> int:
    tmp = None
    if state_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="qkdn-demo-")
        state_dir = Path(tmp.name)
    state = StateDir(state_dir.resolve())
    started = time.monotonic()
    out(f"bringing up {topology.name} in {state.root} ...")
    endpoints = bring_up(topology, state)
    out(f"up in {time.monotonic() - started:.1f} s")
    try:
        id_to_name = {node["qkdn_id"]: name for name, node in endpoints["nodes"].items()}
        for name, node in endpoints["nodes"].items():
            nc = node["netconf"]
            summary = fetch_summary(nc)
            out(f"\nnode {name}  netconf {nc['host']}:{nc['port']} (user {nc['username']})")
            out(f"  qkdn_id {summary.qkdn_id}  status {summary.status}  "
                f"interfaces {summary.interfaces}  applications {summary.applications}")
            for link in summary.links:
                peer = id_to_name.get(link.remote_qkdn_id, link.remote_qkdn_id)
                skr = f"{link.skr_bps} bit/s" if link.skr_bps is not None else "-"
                out(f"  link {link.link_type} -> node {peer:<3} {link.qkdl_id}  "
                    f"status {link.status:<8} skr {skr}")
    finally:
        if keep:
            out(f"\nleft running; stop with: qkdn down --state-dir {state.root}")
        else:
            bring_down(state)
            out("\nnetwork stopped")
            if tmp is not None:
                tmp.cleanup()
    return 0
