"""North-bound ``/qkdn-sdn-topology:qkd_network``: nodes, interfaces and physical links as RFC
7951 JSON (with the ``qkdn-sdn-inventory`` details), from the topology file (configuration)
and the controller's topology database (state: statuses, live performance).

Pure: every function takes values and returns a JSON document; nothing is read here. Service
links (the sessions) are :mod:`sdn_controller.nbi_service_links`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from qkdn.namespaces import ETSI_TYPES_MODULE, QKDN_INV_MODULE, QKDN_TOPO_MODULE
from qkdn.topology import Topology, derive_id
from sdn_controller.link_metrics import LinkMetrics
from sdn_controller.topology_db import InterfaceInfo, NodeInfo

NETWORK = f"{QKDN_TOPO_MODULE}:qkd_network"
NODE_DETAILS = f"{QKDN_INV_MODULE}:qkdn_details"
IFACE_DETAILS = f"{QKDN_INV_MODULE}:qkdi_details"
LINK_DETAILS = f"{QKDN_INV_MODULE}:phys_link_details"

UINT32_MAX = 2**32 - 1
#: ``qkdn_status`` of a node whose agent the controller has no session with
NODE_OUT = "OUT"


@dataclass(frozen=True)
class NodeEndpoints:
    """Where a node's key manager and agent are reached (from ``endpoints.json``)."""

    etsi014_url: str | None = None
    etsi004_url: str | None = None
    netconf_host: str | None = None
    netconf_port: int | None = None


def identity(name: str | None, module: str = ETSI_TYPES_MODULE) -> str | None:
    """A module-qualified identity (``etsi-qkd-node-types:ACTIVE``) from an agent's value
    with or without a prefix; None stays None."""
    if not name:
        return None
    return f"{module}:{str(name).rpartition(':')[2]}"


def date_and_time(epoch_s: float) -> str:
    """``yang:date-and-time`` in UTC (milliseconds)."""
    moment = datetime.fromtimestamp(epoch_s, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def decimal3(value: float) -> str:
    """A ``decimal64`` with 3 fraction digits, as RFC 7951 spells it (a string)."""
    return f"{value:.3f}"


def uint32(value: int) -> int:
    return max(0, min(int(value), UINT32_MAX))


def network_id(topology: Topology) -> str:
    """The network's ``qkd_network_id``: a UUID derived from the topology's name."""
    return derive_id(topology.name, "qkd_network")


def network_config(topology: Topology) -> dict[str, Any]:
    """The configuration part of ``qkd_network`` for a topology file: its nodes with one
    interface per link end (015 ``qkdi_id`` as the agents number them) and its physical
    links (ends, fibre length, enabled)."""
    nodes = []
    for node in topology.nodes:
        entry: dict[str, Any] = {
            "qkdn_id": node.qkdn_id, "qkdn_name": node.name,
            "qkd_interfaces": {"qkd_interface": [
                {"qkdi_id": topology.interface_id(node.name, link)}
                for link in topology.links_of(node.name)]}}
        if node.location:
            entry[NODE_DETAILS] = {"qkdn_location_id": node.location}
        nodes.append(entry)
    links = []
    for link in topology.links:
        links.append({
            "qkdl_id": link.qkdl_id,
            "qkdl_local": {"qkdn_id": topology.node(link.a).qkdn_id,
                           "qkdi_id": topology.interface_id(link.a, link)},
            "qkdl_remote": {"qkdn_id": topology.node(link.b).qkdn_id,
                            "qkdi_id": topology.interface_id(link.b, link)},
            LINK_DETAILS: {"qkdl_enable": True, "phys_length": decimal3(link.length_km)}})
    return {NETWORK: {"qkd_network_id": network_id(topology), "qkd_network_name": topology.name,
                      "sdqkd_nodes": {"sdqkd_node": nodes},
                      "qkd_links": {"phys_links": {"phys_link": links}}}}


def link_performance(link: LinkMetrics, svc_link_count: int) -> dict[str, Any]:
    """``qkdl_performance`` of a physical link (``phys_link_details``)."""
    perf: dict[str, Any] = {"expected_consumption": uint32(link.expected_consumption),
                            "skr": uint32(link.skr), "eskr": uint32(link.eskr)}
    if link.qber is not None:
        perf["phys_perf"] = [{"perf_type": f"{ETSI_TYPES_MODULE}:QBER",
                              "value": decimal3(link.qber)}]
    if link.stored_bits is not None:
        perf["key_store"] = {"stored_key_bits": str(max(0, link.stored_bits))}
    perf["svc_link_count"] = uint32(svc_link_count)
    perf["overloaded"] = link.overloaded
    if link.updated_at:
        perf["updated"] = date_and_time(link.updated_at)
    return perf


def network_state(nodes: Iterable[NodeInfo], interfaces: Iterable[InterfaceInfo],
                  links: Iterable[LinkMetrics], *, connected: Mapping[str, bool],
                  endpoints: Mapping[str, NodeEndpoints],
                  svc_links_by_link: Mapping[str, int]) -> dict[str, Any]:
    """The ``config false`` part of ``qkd_network`` (without service links): node and
    interface statuses and details, link statuses and live performance.

    ``connected`` says, per ``qkdn_id``, whether the controller holds a NETCONF session with
    the node's agent (a node without one is ``OUT``); ``svc_links_by_link`` counts the
    sessions routed over each physical link."""
    by_node: dict[str, list[InterfaceInfo]] = {}
    for iface in interfaces:
        by_node.setdefault(iface.qkdn_id, []).append(iface)
    node_entries = []
    for node in nodes:
        status = node.status if connected.get(node.qkdn_id, False) and node.status else NODE_OUT
        entry: dict[str, Any] = {"qkdn_id": node.qkdn_id,
                                 "qkdn_status": identity(status)}
        details: dict[str, Any] = {}
        if node.version:
            details["qkdn_version"] = node.version
        kme = _kme(endpoints.get(node.qkdn_id))
        if kme:
            details["kme"] = kme
        if node.last_seen:
            details["last_seen"] = date_and_time(node.last_seen)
        if details:
            entry[NODE_DETAILS] = details
        ifaces = [_interface(i) for i in by_node.get(node.qkdn_id, [])]
        if ifaces:
            entry["qkd_interfaces"] = {"qkd_interface": ifaces}
        node_entries.append(entry)
    link_entries = []
    for link in links:
        link_entries.append({
            "qkdl_id": link.qkdl_id, "qkdl_status": identity(link.status.value),
            LINK_DETAILS: {"qkdl_performance": link_performance(
                link, svc_links_by_link.get(link.qkdl_id, 0))}})
    return {NETWORK: {"sdqkd_nodes": {"sdqkd_node": node_entries},
                      "qkd_links": {"phys_links": {"phys_link": link_entries}}}}


def _kme(endpoints: NodeEndpoints | None) -> dict[str, Any]:
    if endpoints is None:
        return {}
    kme: dict[str, Any] = {}
    if endpoints.etsi014_url:
        kme["etsi014_url"] = endpoints.etsi014_url
    if endpoints.etsi004_url:
        kme["etsi004_url"] = endpoints.etsi004_url
    if endpoints.netconf_host:
        kme["netconf_host"] = endpoints.netconf_host
    if endpoints.netconf_port:
        kme["netconf_port"] = int(endpoints.netconf_port)
    return kme


def _interface(iface: InterfaceInfo) -> dict[str, Any]:
    entry: dict[str, Any] = {"qkdi_id": int(iface.qkdi_id)}
    if iface.status:
        entry["qkdi_status"] = identity(iface.status)
    details: dict[str, Any] = {}
    if iface.model:
        details["qkdi_model"] = iface.model
    if iface.qkdi_type:
        details["qkdi_type"] = identity(iface.qkdi_type)
    if iface.role:
        details["qkdi_capabilities"] = {"role_support": identity(iface.role)}
    if details:
        entry[IFACE_DETAILS] = details
    return entry
