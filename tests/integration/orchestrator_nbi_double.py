"""A stand-in for the controller's north-bound NETCONF server, for the orchestrator's tests:
a real qkd_agent NETCONF server (SSH, RFC 6242, libyang-validated datastore) preloaded with
the ``qkd_network`` / ``qkd_access`` configuration of a topology file, a state provider for
the ``config false`` parts (statuses, live performance, service links), handlers for the two
RPCs of qkdn-sdn-inventory, and notifications sent the way docs/controller-nbi.md describes.

Link status follows the digital twin's fault files when a state directory is given, so a
fault injected through the orchestrator shows up in the topology it reads back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lxml import etree

from qkd_agent.agent import AgentConfig, AgentThread, QkdAgent
from qkd_agent.datastore import Datastore
from qkd_agent.operations import OPERATIONS
from qkd_agent.rpc_error import ErrorTag, ErrorType, RpcError
from qkd_agent.yang_context import load_context
from qkd_twin.faults import DEFAULT_BLOCK_SECONDS, fault_file, fault_state_at, read_faults
from qkdn import namespaces as ns
from qkdn.topology import Topology, load_topology

TOPO = ns.QKDN_TOPO_MODULE
INV = ns.QKDN_INV_MODULE
ACC = ns.QKDN_ACC_MODULE
TYPES = ns.ETSI_TYPES_MODULE
NETWORK_ID = "99999999-9999-4999-8999-999999999999"
PASSWORD = "nbi-secret"


def access_config(topology: Topology) -> dict[str, Any]:
    return {
        "sla_profiles": {"sla_profile": [
            {"name": s.name, "max_bandwidth": s.max_bps, "min_bandwidth": s.min_bps,
             "max_priority": s.max_priority, "max_sessions": s.max_sessions,
             "idle_timeout": s.idle_timeout_s} for s in topology.slas]},
        "users": {"user": [{"name": u.name, "sla_profile": u.sla} for u in topology.users]},
        "applications": {"application": [
            {"sae_id": a.sae_id, "user": a.user, "qkdn_id": topology.node(a.node).qkdn_id}
            for a in topology.saes]},
    }


def network_config(topology: Topology) -> dict[str, Any]:
    """RFC 7951 JSON of the configuration the controller would hold for ``topology``."""
    nodes = [{
        "qkdn_id": node.qkdn_id, "qkdn_name": node.name,
        "qkd_interfaces": {"qkd_interface": [
            {"qkdi_id": topology.interface_id(node.name, link)}
            for link in topology.links_of(node.name)]},
        f"{INV}:qkdn_details": {"qkdn_location_id": node.location or node.name},
    } for node in topology.nodes]
    links = [{
        "qkdl_id": link.qkdl_id,
        "qkdl_local": {"qkdn_id": topology.node(link.a).qkdn_id,
                       "qkdi_id": topology.interface_id(link.a, link)},
        "qkdl_remote": {"qkdn_id": topology.node(link.b).qkdn_id,
                        "qkdi_id": topology.interface_id(link.b, link)},
        f"{INV}:phys_link_details": {"qkdl_enable": True,
                                     "phys_length": f"{link.length_km:.3f}"},
    } for link in topology.links]
    return {
        f"{TOPO}:qkd_network": {
            "qkd_network_id": NETWORK_ID, "qkd_network_name": topology.name,
            "sdqkd_nodes": {"sdqkd_node": nodes},
            "qkd_links": {"phys_links": {"phys_link": links}},
        },
        f"{ACC}:qkd_access": access_config(topology),
        # the agent's own ETSI 015 tree has a mandatory qkdn_id; the controller has none
        f"{ns.ETSI_NODE_MODULE}:qkd_node": {"qkdn_id": NETWORK_ID},
    }


class NbiDouble:
    """Live state behind the double's ``config false`` data."""

    def __init__(self, topology: Topology, state_dir: Path | None = None) -> None:
        self.topology = topology
        self.state_dir = state_dir
        self.sessions: dict[str, dict[str, Any]] = {}
        self.closed: list[tuple[str, str]] = []
        self.agent: QkdAgent | None = None
        self._down: dict[str, bool] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ state
    def link_down(self, link) -> bool:
        if self.state_dir is None:
            return False
        records = read_faults(fault_file(self.state_dir, link.a, link.b))
        return fault_state_at(records, int(time.time() // DEFAULT_BLOCK_SECONDS)).down

    def add_session(self, qkdl_id: str, a: str, b: str, via: list[str] | None = None,
                    state: str = "active") -> None:
        names = [a, *(via or []), b]
        hops = []
        for i, name in enumerate(names):
            hop = {"hop_index": i, "qkdn_id": self.topology.node(name).qkdn_id}
            if i + 1 < len(names):
                hop["phys_link"] = self._link_between(name, names[i + 1]).qkdl_id
            hops.append(hop)
        sae_a = self.topology.saes_of(a)[0]
        sae_b = self.topology.saes_of(b)[0]
        self.sessions[qkdl_id] = {
            "qkdl_id": qkdl_id,
            "qkdl_local": {"qkdn_id": self.topology.node(a).qkdn_id},
            "qkdl_remote": {"qkdn_id": self.topology.node(b).qkdn_id},
            "qkdl_status": f"{TYPES}:ACTIVE",
            "paths": {"path": [{"path_index": 0, "hop": hops}]},
            f"{INV}:svc_link_details": {
                "local_app": {"sae_id": sae_a.sae_id, "user": sae_a.user},
                "remote_app": {"sae_id": sae_b.sae_id, "user": sae_b.user},
                "session_state": state, "bandwidth": 8192, "requested_bandwidth": 8192,
                "priority": 2, "idle_timeout": 60, "restorations": 0,
                "qkdl_performance": {"skr": 120000, "eskr": 110000,
                                     "key_requests": "3", "keys_delivered": "12",
                                     "bits_delivered": "3072"},
            },
        }

    def _link_between(self, a: str, b: str):
        for link in self.topology.links:
            if {link.a, link.b} == {a, b}:
                return link
        raise KeyError((a, b))

    def operational(self) -> dict[str, Any]:
        nodes = [{"qkdn_id": n.qkdn_id, "qkdn_status": f"{TYPES}:OPERATING",
                  "qkd_interfaces": {"qkd_interface": [
                      {"qkdi_id": self.topology.interface_id(n.name, link),
                       "qkdi_status": f"{TYPES}:ENABLED"} for link in self.topology.links_of(n.name)]},
                  f"{INV}:qkdn_details": {"qkdn_version": "0.1.0"}}
                 for n in self.topology.nodes]
        links = []
        for index, link in enumerate(self.topology.links):
            down = self.link_down(link)
            skr = 0 if down else 100_000 + 20_000 * index
            links.append({
                "qkdl_id": link.qkdl_id,
                "qkdl_status": f"{TYPES}:{'OFF' if down else 'ACTIVE'}",
                f"{INV}:phys_link_details": {"qkdl_performance": {
                    "skr": skr, "eskr": int(skr * 0.9),
                    "phys_perf": [{"perf_type": f"{TYPES}:QBER",
                                   "value": "0.000" if down else f"0.0{index + 1}0"}],
                    "key_store": {"stored_key_bits": str(262144 * (index + 1)),
                                  "capacity_bits": "8388608"},
                    "svc_link_count": 0, "overloaded": False}},
            })
        with self._lock:
            svc = list(self.sessions.values())
        network: dict[str, Any] = {"sdqkd_nodes": {"sdqkd_node": nodes},
                                   "qkd_links": {"phys_links": {"phys_link": links}}}
        if svc:
            network["qkd_links"]["svc_links"] = {"svc_link": svc}
        return {f"{TOPO}:qkd_network": network}

    # ------------------------------------------------------------------ RPCs
    def close_svc_link(self, op: etree._Element, call: Any) -> None:
        qkdl_id = op.findtext(f"{{{ns.QKDN_INV_NS}}}qkdl_id") or ""
        reason = op.findtext(f"{{{ns.QKDN_INV_NS}}}reason") or ""
        with self._lock:
            known = self.sessions.pop(qkdl_id, None)
        if known is None:
            raise RpcError(ErrorTag.INVALID_VALUE, f"no service link {qkdl_id}",
                           type=ErrorType.APPLICATION, app_tag="unknown-svc-link")
        self.closed.append((qkdl_id, reason))
        self.notify({f"{INV}:qkdn_resource_removed": {"svc_link": {"qkdl_id": qkdl_id},
                                                      "reason": "closed"}})

    def restore_svc_link(self, op: etree._Element, call: Any) -> etree._Element:
        qkdl_id = op.findtext(f"{{{ns.QKDN_INV_NS}}}qkdl_id") or ""
        with self._lock:
            session = self.sessions.get(qkdl_id)
        if session is None:
            raise RpcError(ErrorTag.INVALID_VALUE, f"no service link {qkdl_id}",
                           type=ErrorType.APPLICATION, app_tag="unknown-svc-link")
        inv = ns.QKDN_INV_NS
        paths = etree.Element(f"{{{inv}}}paths", nsmap={None: inv})
        for p in session["paths"]["path"]:
            path = etree.SubElement(paths, f"{{{inv}}}path")
            etree.SubElement(path, f"{{{inv}}}path_index").text = str(p["path_index"])
            for h in p["hop"]:
                hop = etree.SubElement(path, f"{{{inv}}}hop")
                etree.SubElement(hop, f"{{{inv}}}hop_index").text = str(h["hop_index"])
                etree.SubElement(hop, f"{{{inv}}}qkdn_id").text = h["qkdn_id"]
                if "phys_link" in h:
                    etree.SubElement(hop, f"{{{inv}}}phys_link").text = h["phys_link"]
        return paths

    def notify(self, body: dict[str, Any]) -> None:
        assert self.agent is not None
        self.agent.notify(body)


@contextmanager
def running_nbi_double(topology_path: Path, state_dir: Path | None = None,
                       monkeypatch: Any = None) -> Iterator[tuple[NbiDouble, dict[str, Any]]]:
    """Start the double on 127.0.0.1 (ephemeral port); yields it and its endpoint entry
    (``{"host", "port", "username", "password"}`` as endpoints.json's ``controller.nbi``)."""
    topology = load_topology(topology_path)
    double = NbiDouble(topology, state_dir)
    ctx = load_context()
    datastore = Datastore(ctx, network_config(topology))
    agent = QkdAgent(AgentConfig(username="orchestrator", password=PASSWORD), datastore,
                     double.operational)
    double.agent = agent
    keys = [(ns.QKDN_INV_NS, "close_svc_link"), (ns.QKDN_INV_NS, "restore_svc_link")]
    saved = {k: OPERATIONS.get(k) for k in keys}
    OPERATIONS[keys[0]] = double.close_svc_link
    OPERATIONS[keys[1]] = double.restore_svc_link
    try:
        with AgentThread(agent) as running:
            yield double, {"host": "127.0.0.1", "port": running.port,
                           "username": "orchestrator", "password": PASSWORD}
    finally:
        for key, value in saved.items():
            if value is None:
                OPERATIONS.pop(key, None)
            else:
                OPERATIONS[key] = value
