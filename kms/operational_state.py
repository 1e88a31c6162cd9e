"""RFC 7951 JSON of the KM's ``config false`` data, merged by the agent into ``get`` (pure).

Shapes follow ``etsi-qkd-sdn-node`` (``app_status``) and ``yang/qkdn-key-manager.yang``
(``km_session/state``, ``km_session/counters``, ``qkdl_performance/key_store``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from kms.forwarding import EXT_KEY_STORE, EXT_SESSION, NODE, TYPES_MODULE, ForwardingTable
from kms.key_store import StoreLevels
from kms.notifications import provenance_counters
from kms.session import KmSession, SessionEvent, SessionState

_APP_STATUS = {
    SessionState.OPERATIVE: "ON",
    SessionState.KEY_EXCHANGING: "ON",
    SessionState.TERMINATED: "DISCONNECTED",
}


def app_status(session: KmSession) -> str | None:
    """ETSI 015 app_status of a session (OUT-OF-TIME when its idle timer expired)."""
    if session.state is SessionState.TERMINATED and session.history and \
            session.history[-1].event is SessionEvent.EXPIRED:
        return "OUT-OF-TIME"
    return _APP_STATUS.get(session.state)


def build_operational_state(sessions: Mapping[str, KmSession], table: ForwardingTable,
                            levels: Iterable[StoreLevels], *,
                            delivered: Mapping[str, Mapping[str, list[int]]] | None = None,
                            modes: Mapping[str, str] | None = None) -> dict:
    """Apps configured on this node (with their KM session state) and link key-store levels."""
    apps = []
    for app_id in table.sessions:
        session = sessions.get(app_id)
        if session is None:
            continue
        counters: dict = {"key_requests": str(session.key_requests)}
        per = (delivered or {}).get(app_id)
        if per:
            counters["keys_delivered"] = str(sum(v[0] for v in per.values()))
            counters["bits_delivered"] = str(sum(v[1] for v in per.values()))
            counters["provenance"] = provenance_counters(per)
        entry: dict = {"app_id": app_id, EXT_SESSION: {
            "state": session.state.value,
            "counters": counters,
        }}
        if modes and app_id in modes:
            entry[EXT_SESSION]["key_mode"] = modes[app_id]
        status = app_status(session)
        if status:
            entry["app_status"] = f"{TYPES_MODULE}:{status}"
        apps.append(entry)
    links = [{
        "qkdl_id": lv.qkdl_id,
        "qkdl_performance": {EXT_KEY_STORE: {
            "stored_key_bits": str((lv.outgoing_bytes + lv.incoming_bytes) * 8),
            "capacity_bits": str(lv.capacity_bytes * 8),
            "consumed_key_bits": str(lv.consumed_bytes * 8),
        }},
    } for lv in levels]
    node: dict = {}
    if apps:
        node["qkd_applications"] = {"qkd_app": apps}
    if links:
        node["qkd_links"] = {"qkd_link": links}
    return {NODE: node}
