"""ETSI GS QKD 015 payloads for a module's link state and events (RFC 7951 JSON, pure).

The only place in the twin that spells ETSI wire names. The node runtime passes the results
to ``QkdAgent.notify`` (notifications) and merges :func:`link_performance_json` into its
operational data for ``qkd_links/qkd_link[qkdl_id]``. Rates are bit/s (uint32, clamped);
the QBER ``phys_perf`` value is a fraction with 3 decimals (decimal64 fraction-digits 3).
"""

from __future__ import annotations

from qkd_twin.module import LinkEvent, LinkEventKind, LinkState, LinkStatus

NODE_MODULE = "etsi-qkd-sdn-node"
TYPES_MODULE = "etsi-qkd-node-types"
_UINT32_MAX = 2**32 - 1


def _rate(value: float) -> int:
    return max(0, min(_UINT32_MAX, round(value)))


def _qber_text(qber: float) -> str:
    return f"{min(max(qber, 0.0), 1.0):.3f}"


def link_status_identity(status: LinkStatus) -> str:
    return f"{TYPES_MODULE}:{status.value}"


def link_performance_json(state: LinkState) -> dict:
    """``qkdl_performance`` content (config false) for one link."""
    return {
        "skr": _rate(state.skr),
        "eskr": _rate(state.eskr),
        "phys_perf": [{"perf_type": f"{TYPES_MODULE}:QBER", "value": _qber_text(state.qber)}],
    }


def link_operational_json(qkdl_id: str, state: LinkState) -> dict:
    """One ``qkd_link`` entry's operational leaves (status and performance)."""
    return {"qkdl_id": qkdl_id, "qkdl_status": link_status_identity(state.status),
            "qkdl_performance": link_performance_json(state)}


def link_perf_update(qkdl_id: str, state: LinkState) -> dict:
    return {f"{NODE_MODULE}:sdqkdn_link_perf_update": {
        "qkd_link": {"qkdl_id": qkdl_id, "performance": link_performance_json(state)}}}


def link_down(qkdl_id: str, reason: str) -> dict:
    return {f"{NODE_MODULE}:sdqkdn_link_down": {
        "qkd_link": {"qkdl_id": qkdl_id, "reason": reason}}}


def link_alarm(qkdl_id: str, state: LinkState, message: str, *, major: bool,
               informational: bool = False) -> dict:
    """``alarm`` (or ``event`` when informational) about a link."""
    name = "event" if informational else "alarm"
    return {f"{NODE_MODULE}:{name}": {"link": {
        "qkdl_id": qkdl_id,
        "qkdl_status": link_status_identity(state.status),
        "message": message,
        "severity": f"{TYPES_MODULE}:{'MAJOR' if major else 'MINOR'}",
    }}}


def notifications_for(event: LinkEvent) -> list[dict]:
    """The ETSI 015 notifications one module event gives rise to."""
    kind, qkdl_id, state = event.kind, event.qkdl_id, event.state
    if kind is LinkEventKind.PERF_UPDATE:
        return [link_perf_update(qkdl_id, state)]
    if kind is LinkEventKind.LINK_DOWN:
        return [link_down(qkdl_id, event.message or "link down"),
                link_alarm(qkdl_id, state, event.message or "link down", major=True)]
    if kind is LinkEventKind.BLOCK_ABORTED:
        return [link_alarm(qkdl_id, state, event.message, major=False)]
    if kind is LinkEventKind.QBER_ALARM:
        return [link_alarm(qkdl_id, state, event.message, major=True)]
    if kind in (LinkEventKind.LINK_UP, LinkEventKind.QBER_CLEARED):
        return [link_alarm(qkdl_id, state, event.message, major=False, informational=True)]
    return []
