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


def session_state_value(state: SessionState) -> str:
    """The ``qkdn-key-manager`` km-session-state enum value of a session state."""
    return state.value.replace("_", "-")


def build_operational_state(sessions: Mapping[str, KmSession], table: ForwardingTable,
                            levels: Iterable[StoreLevels], pool_counts: Mapping[str, int]) -> dict:
    """``config false`` data per ``yang/qkdn-key-manager.yang`` (64-bit values as strings,
    RFC 7951 §6.1). ``pool_counts`` is kept for the caller's metrics; the model has no leaf."""
    apps = []
    for app_id in table.sessions:
        session = sessions.get(app_id)
        if session is None:
            continue
        entry: dict = {"app_id": app_id,
                       f"{KM_MODULE}:km_session": {"state": session_state_value(session.state)}}
        status = app_status(session)
        if status:
            entry["app_status"] = f"{TYPES_MODULE}:{status}"
        apps.append(entry)
    links = [{
        "qkdl_id": lv.qkdl_id,
        "qkdl_performance": {f"{KM_MODULE}:key_store": {
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
