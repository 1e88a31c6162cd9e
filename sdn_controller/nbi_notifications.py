"""North-bound notifications (module ``qkdn-sdn-inventory``) as RFC 7951 JSON bodies, built
from the controller's events, link updates and agent connection changes.

Pure builders; :class:`~sdn_controller.nbi_server.NbiServer` decides when to send them and
the agent's server validates each one with libyang before it reaches a subscriber.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from qkdn.namespaces import QKDN_INV_MODULE
from sdn_controller.admission_control import SessionView
from sdn_controller.link_metrics import LinkMetrics
from sdn_controller.monitoring import AlarmEvent, AlarmKind
from sdn_controller.nbi_network import identity, link_performance, uint32
from sdn_controller.nbi_service_links import path_performance, paths_json

INV = QKDN_INV_MODULE

#: the north-bound alarm type of each monitoring alarm, and whether it clears one
ALARM_TYPES: dict[AlarmKind, tuple[str, bool]] = {
    AlarmKind.QBER_HIGH: ("QBER-HIGH", False),
    AlarmKind.QBER_CLEARED: ("QBER-HIGH", True),
    AlarmKind.LINK_DOWN: ("LINK-DOWN", False),
    AlarmKind.LINK_RESTORED: ("LINK-DOWN", True),
    AlarmKind.LINK_OVERLOADED: ("LINK-OVERLOADED", False),
    AlarmKind.AGENT_ALARM: ("NODE-ALARM", False),
}


def resource_new(kind: str, **keys: Any) -> dict[str, Any]:
    """``qkdn_resource_new`` for a ``sdqkd_node``, ``qkd_interface``, ``phys_link`` or
    ``svc_link`` with its keys (``qkdn_id=...``, ``qkdl_id=...``)."""
    return {f"{INV}:qkdn_resource_new": {kind: dict(keys)}}


def resource_removed(kind: str, reason: str, **keys: Any) -> dict[str, Any]:
    """``qkdn_resource_removed`` of a resource, with why (``closed``, ``idle-timeout`` ...)."""
    return {f"{INV}:qkdn_resource_removed": {kind: dict(keys), "reason": reason}}


def phys_link_perf_update(link: LinkMetrics) -> dict[str, Any]:
    perf = link_performance(link, 0)
    for leaf in ("svc_link_count", "overloaded", "updated"):
        perf.pop(leaf, None)
    return {f"{INV}:phys_link_perf_update": {
        "qkdl_id": link.qkdl_id, "qkdl_status": identity(link.status.value),
        "qkdl_performance": perf}}


def phys_link_overloaded(link: LinkMetrics, sessions: Iterable[str]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "qkdl_id": link.qkdl_id,
        "qkdl_performance": {"expected_consumption": uint32(link.expected_consumption),
                             "skr": uint32(link.skr), "eskr": uint32(link.eskr)}}
    affected = sorted(sessions)
    if affected:
        body["svc_link"] = affected
    return {f"{INV}:phys_link_overloaded": body}


def svc_link_perf_update(view: SessionView, links: dict[str, LinkMetrics]) -> dict[str, Any]:
    status = "ACTIVE" if view.state.value == "active" else (
        "OFF" if view.state.value == "terminated" else "PENDING")
    body: dict[str, Any] = {"qkdl_id": view.session_id, "qkdl_status": identity(status),
                            "session_state": view.state.value}
    perf = path_performance(view.route, links)
    if perf:
        body["qkdl_performance"] = perf
    return {f"{INV}:svc_link_perf_update": body}


def svc_link_path_update(view: SessionView, reason: str) -> dict[str, Any]:
    return {f"{INV}:svc_link_path_update": {
        "qkdl_id": view.session_id, "reason": reason, "bandwidth": uint32(view.rate_bps),
        "paths": paths_json(view)}}


def link_alarm(alarm: AlarmEvent, link: LinkMetrics | None,
               affected: Iterable[str]) -> dict[str, Any]:
    """``alarm`` on a physical link from a monitoring decision."""
    kind, cleared = ALARM_TYPES[alarm.kind]
    body: dict[str, Any] = {"alarm_type": f"{INV}:{kind}",
                            "severity": identity(alarm.severity.value),
                            "cleared": cleared, "phys_link": {"qkdl_id": alarm.qkdl_id},
                            "message": alarm.message}
    if link is not None:
        body["qkdl_status"] = identity(link.status.value)
    sessions = sorted(affected)
    if sessions:
        body["affected_svc_link"] = sessions
    return {f"{INV}:alarm": body}


def node_alarm(qkdn_id: str, name: str | None, *, reachable: bool,
               message: str) -> dict[str, Any]:
    """``NODE-UNREACHABLE`` raised (MAJOR) or cleared (MINOR) for a node's agent."""
    node: dict[str, Any] = {"qkdn_id": qkdn_id}
    if name:
        node["qkdn_name"] = name
    return {f"{INV}:alarm": {
        "alarm_type": f"{INV}:NODE-UNREACHABLE",
        "severity": identity("MINOR" if reachable else "MAJOR"),
        "cleared": reachable, "sdqkd_node": node, "message": message}}


def restoration_failed(session_id: str, message: str) -> dict[str, Any]:
    return {f"{INV}:alarm": {
        "alarm_type": f"{INV}:RESTORATION-FAILED", "severity": identity("MAJOR"),
        "svc_link": {"qkdl_id": session_id}, "message": message,
        "affected_svc_link": [session_id]}}
