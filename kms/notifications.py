"""RFC 7951 JSON bodies of the notifications the KM emits through the agent (pure builders).

ETSI 015 names for application events; our ``qkdn-key-manager`` module for session-state and
key-request events (names aligned with ``yang/qkdn-key-manager.yang``).
"""

from __future__ import annotations

import uuid
from typing import Any

from kms.forwarding import KM_MODULE, TYPES_MODULE

ETSI = "etsi-qkd-sdn-node"


def application_new(server_app_id: str, client_app_ids: list[str], local_qkdn_id: str,
                    priority: int = 0, qos: dict[str, Any] | None = None) -> dict:
    """``sdqkdn_application_new``: an application asks this node for service (no app_id yet)."""
    app: dict[str, Any] = {
        "app_type": f"{TYPES_MODULE}:CLIENT",
        "server_app_id": server_app_id,
        "client_app_id": list(client_app_ids),
        "app_priority": priority,
        "local_qkdn_id": local_qkdn_id,
    }
    if qos:
        app["app_qos"] = dict(qos)
    return {f"{ETSI}:sdqkdn_application_new": {"qkd_application": app}}


def application_disconnected(app_id: str) -> dict:
    return {f"{ETSI}:sdqkdn_application_disconnected": {"qkd_application": {"app_id": app_id}}}


def _is_app_id(app_id: str) -> bool:
    """Only sessions with an app_id (a UUID) are reported; a session still waiting for the
    controller is known to it through ``sdqkdn_application_new`` instead."""
    try:
        uuid.UUID(app_id)
    except ValueError:
        return False
    return True


def session_state(app_id: str, old: str, event: str, new: str) -> dict:
    """``km_session_state_change`` (empty for a session without an app_id yet)."""
    if not _is_app_id(app_id):
        return {}
    return {f"{KM_MODULE}:km_session_state_change": {
        "app_id": app_id, "state": new.replace("_", "-"),
        "reason": f"{event.replace('_', '-')} (was {old.replace('_', '-')})"}}


def key_request(app_id: str, sae_id: str, number: int, size: int,
                outcome: str = "delivered") -> dict:
    """``km_key_request``: key-request activity of a session (resets the controller's idle
    timer). ``sae_id`` is not part of the notification: the session identifies the pair."""
    if not _is_app_id(app_id):
        return {}
    return {f"{KM_MODULE}:km_key_request": {"app_id": app_id, "number_of_keys": number,
                                            "bits": str(number * size), "outcome": outcome}}


def qos_to_app_qos(max_bps: int | None, min_bps: int | None, jitter: int | None,
                   ttl: int | None) -> dict[str, int]:
    """004 QoS → 015 ``app_qos`` (the mapping in ETSI 015)."""
    pairs = {"max_bandwidth": max_bps, "min_bandwidth": min_bps, "jitter": jitter, "ttl": ttl}
    return {k: int(v) for k, v in pairs.items() if v is not None}
