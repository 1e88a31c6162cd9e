"""RFC 7951 JSON of the KM's ``config false`` data, merged by the agent into ``get`` (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from kms.forwarding import KM_MODULE, NODE, TYPES_MODULE, ForwardingTable
from kms.key_store import StoreLevels
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
                            levels: Iterable[StoreLevels], pool_counts: Mapping[str, int]) -> dict:
    apps = []
    for app_id in table.sessions:
        session = sessions.get(app_id)
        if session is None:
            continue
        entry: dict = {"app_id": app_id, f"{KM_MODULE}:km_session_state": session.state.value}
        status = app_status(session)
        if status:
            entry["app_status"] = f"{TYPES_MODULE}:{status}"
        apps.append(entry)
    links = [{
        "qkdl_id": lv.qkdl_id,
        f"{KM_MODULE}:key_store": {
            "outgoing_bits": lv.outgoing_bytes * 8,
            "incoming_bits": lv.incoming_bytes * 8,
            "capacity_bits": lv.capacity_bytes * 8,
            "consumed_bits": lv.consumed_bytes * 8,
            "blocks_delivered": lv.blocks_delivered,
        },
    } for lv in levels]
    node: dict = {}
    if apps:
        node["qkd_applications"] = {"qkd_app": apps}
    if links:
        node["qkd_links"] = {"qkd_link": links}
    node[f"{KM_MODULE}:key_pool"] = {
        "ready_keys": int(pool_counts.get("ready", 0)),
        "pending_keys": int(pool_counts.get("pending", 0)),
    }
    return {NODE: node}
