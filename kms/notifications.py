"""RFC 7951 JSON bodies of the notifications the KM emits through the agent (pure builders).

ETSI 015 names for application events; ``yang/qkdn-key-manager.yang`` for the
``km_request`` augment of ``sdqkdn_application_new`` and for session-state and key-request
notifications.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any

from kms.forwarding import KM_MODULE, TYPES_MODULE

ETSI = "etsi-qkd-sdn-node"


class ApplicationInterface(str, Enum):
    ETSI_014 = "etsi-014"
    ETSI_004 = "etsi-004"


class KeyRequestOutcome(str, Enum):
    DELIVERED = "delivered"
    RATE_LIMITED = "rate-limited"
    INSUFFICIENT_KEY = "insufficient-key"
    TIMEOUT = "timeout"
    REFUSED = "refused"


def application_new(server_app_id: str, client_app_ids: list[str], local_qkdn_id: str,
                    priority: int = 0, qos: dict[str, Any] | None = None, *,
                    interface: ApplicationInterface = ApplicationInterface.ETSI_014,
                    key_stream_id: str | None = None,
                    etsi004_qos: dict[str, Any] | None = None,
                    request_id: str | None = None) -> dict:
    """``sdqkdn_application_new``: an application asks this node for service (no app_id yet).

    ``server_app_id`` is the SAE the KM authenticated from its client certificate;
    ``request_id`` names the waiting request in a refusal from the controller.
    """
    app: dict[str, Any] = {
        "app_type": f"{TYPES_MODULE}:CLIENT",
        "server_app_id": server_app_id,
        "client_app_id": list(client_app_ids),
        "app_priority": priority,
        "local_qkdn_id": local_qkdn_id,
    }
    if qos:
        app["app_qos"] = dict(qos)
    request: dict[str, Any] = {"authenticated_sae_id": server_app_id,
                               "application_interface": interface.value}
    if request_id:
        request["request_id"] = request_id
    if key_stream_id:
        request["key_stream_id"] = key_stream_id
    if etsi004_qos:
        request["etsi004_qos"] = dict(etsi004_qos)
    app[f"{KM_MODULE}:km_request"] = request
    return {f"{ETSI}:sdqkdn_application_new": {"qkd_application": app}}


def application_disconnected(app_id: str) -> dict:
    return {f"{ETSI}:sdqkdn_application_disconnected": {"qkd_application": {"app_id": app_id}}}


def session_state(app_id: str, state: str, reason: str | None = None) -> dict:
    body: dict[str, Any] = {"app_id": app_id, "state": state}
    if reason:
        body["reason"] = reason
    return {f"{KM_MODULE}:km_session_state_change": body}


def provenance_counters(counts: Mapping[str, Any]) -> dict[str, str]:
    """``provenance-counters`` grouping from provenance -> (keys, bits) (counter64: strings)."""
    out: dict[str, str] = {}
    for provenance in ("qkd", "hybrid", "pqc"):
        if provenance in counts:
            keys, bits = counts[provenance][0], counts[provenance][1]
            out[f"{provenance}_keys"] = str(keys)
            out[f"{provenance}_bits"] = str(bits)
    return out


def key_request(app_id: str, number: int, bits: int, outcome: KeyRequestOutcome, *,
                delivered: Mapping[str, Any] | None = None) -> dict:
    body: dict[str, Any] = {"app_id": app_id, "number_of_keys": number,
                            "bits": str(bits),  # uint64: a JSON string (RFC 7951)
                            "outcome": outcome.value}
    if delivered:
        body["delivered"] = provenance_counters(delivered)
    return {f"{KM_MODULE}:km_key_request": body}


def key_mode_change(app_id: str, mode: str, previous: str | None, reason: str = "") -> dict:
    """``km_key_mode_change``: the session switched to hybrid/pqc keys, or back to qkd."""
    body: dict[str, Any] = {"app_id": app_id, "mode": mode}
    if previous:
        body["previous_mode"] = previous
    if reason:
        body["reason"] = reason
    return {f"{KM_MODULE}:km_key_mode_change": body}


def qos_to_app_qos(max_bps: int | None, min_bps: int | None, jitter: int | None,
                   ttl: int | None) -> dict[str, int]:
    """004 QoS → 015 ``app_qos`` (the mapping in ETSI 015)."""
    pairs = {"max_bandwidth": max_bps, "min_bandwidth": min_bps, "jitter": jitter, "ttl": ttl}
    return {k: int(v) for k, v in pairs.items() if v is not None}
