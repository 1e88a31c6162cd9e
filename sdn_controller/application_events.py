"""Application and key-session events from the KMs, read from their agents' notifications.

- ``sdqkdn_application_new`` (ETSI 015, plus our ``qkdn-km:km_request`` augment) →
  :class:`ApplicationRequest`: the SAE the KM verified from its client certificate
  (``km_request/authenticated_sae_id``; ``server_app_id`` when the KM sent no augment), the peer
  (first ``client_app_id``), the node, QoS (``app_qos`` + ``app_priority`` + 004 fields) and
  the KSID the application proposed.
- ``sdqkdn_application_disconnected`` → :class:`ApplicationClosed`.
- ``sdqkdn_application_qos_update`` → :class:`ApplicationQosUpdate`.
- ``qkdn-km:km_key_request`` → :class:`KeyRequestEvent` (resets the session timer).
- ``qkdn-km:km_session_state_change`` → :class:`KmSessionStateEvent`.

Pure parsing into frozen values; wire names stay in this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lxml import etree

from qkdn.namespaces import NETCONF_NOTIFICATION_NS, QKDN_KM_NS
from sdn_controller.errors import TopologyDataError
from sdn_controller.identifiers import NodeId, SaeId, SessionId
from sdn_controller.qkd_node_data import (
    NOTIFICATION_LIST_NODES,
    bare_name,
    element_to_dict,
    normalise_json,
    notification_from_message,
    parse_xml,
)
from sdn_controller.session_config import QoS

KM_NOTIFICATIONS = frozenset({"km_key_request", "km_session_state_change",
                              "km_key_mode_change"})


@dataclass(frozen=True)
class ApplicationRequest:
    node_id: NodeId
    sae_id: SaeId                 #: identity verified by the KM (client certificate)
    claimed_sae_id: SaeId         #: ``server_app_id`` as sent
    peer_sae_id: SaeId
    qos: QoS
    session_id: SessionId | None  #: KSID proposed by the application (004), if any
    interface: str | None         #: etsi-014 | etsi-004
    #: ``km_request/request_id``: names the waiting request in a refusal (km_refusals)
    request_id: str | None = None


@dataclass(frozen=True)
class ApplicationClosed:
    node_id: NodeId
    session_id: SessionId


@dataclass(frozen=True)
class ApplicationQosUpdate:
    node_id: NodeId
    session_id: SessionId
    qos: QoS


@dataclass(frozen=True)
class KeyRequestEvent:
    node_id: NodeId
    session_id: SessionId
    outcome: str | None
    bits: int | None
    #: provenance -> (keys, bits) the request delivered (hybrid work, ADR 0009)
    delivered: Mapping[str, tuple[int, int]] | None = None


@dataclass(frozen=True)
class KeyModeChangeEvent:
    """``km_key_mode_change``: a session's keys switched provenance at ``node_id``'s KM."""

    node_id: NodeId
    session_id: SessionId
    mode: str
    previous_mode: str
    reason: str


@dataclass(frozen=True)
class KmSessionStateEvent:
    node_id: NodeId
    session_id: SessionId
    state: str
    reason: str


ApplicationEvent = (ApplicationRequest | ApplicationClosed | ApplicationQosUpdate
                    | KeyRequestEvent | KmSessionStateEvent | KeyModeChangeEvent)


def _uint(value: Any, what: str) -> int:
    if value in (None, ""):
        return 0
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise TopologyDataError(f"{what}: {value!r} is not an integer") from None
    if not 0 <= number <= 0xFFFFFFFF:
        raise TopologyDataError(f"{what}: {number} out of range")
    return number


def _delivered(counters: Any) -> dict[str, tuple[int, int]] | None:
    """``provenance-counters`` → provenance -> (keys, bits)."""
    if not isinstance(counters, Mapping):
        return None
    out = {}
    for provenance in ("qkd", "hybrid", "pqc"):
        keys, bits = counters.get(f"{provenance}_keys"), counters.get(f"{provenance}_bits")
        if keys not in (None, "") or bits not in (None, ""):
            out[provenance] = (int(keys or 0), int(bits or 0))
    return out or None


def _qos(app: Mapping[str, Any]) -> QoS:
    qos = app.get("app_qos") or {}
    extra = ((app.get("km_request") or {}).get("etsi004_qos") or {})
    return QoS(max_bps=_uint(qos.get("max_bandwidth"), "max_bandwidth"),
               min_bps=_uint(qos.get("min_bandwidth"), "min_bandwidth"),
               priority=_uint(app.get("app_priority"), "app_priority"),
               jitter_ms=_uint(qos.get("jitter"), "jitter"),
               ttl_s=_uint(qos.get("ttl"), "ttl"),
               key_chunk_size=_uint(extra.get("key_chunk_size"), "key_chunk_size"))


def _km_notification(message: Any) -> tuple[str, dict[str, Any]] | None:
    """Our own ``qkdn-km`` notifications (the ETSI parser does not know them)."""
    if isinstance(message, Mapping):
        for key, value in message.items():
            if bare_name(key) in KM_NOTIFICATIONS and isinstance(value, Mapping):
                return bare_name(key), normalise_json(value)
        return None
    root = parse_xml(message)
    candidates = list(root) if etree.QName(root).namespace == NETCONF_NOTIFICATION_NS else [root]
    for child in candidates:
        if isinstance(child.tag, str) and etree.QName(child).namespace == QKDN_KM_NS and \
                etree.QName(child).localname in KM_NOTIFICATIONS:
            body = element_to_dict(child, NOTIFICATION_LIST_NODES)
            return etree.QName(child).localname, body if isinstance(body, dict) else {}
    return None


def application_event(message: str | bytes | etree._Element | Mapping[str, Any], *,
                      node_id: str) -> ApplicationEvent | None:
    """The application/session event in ``message`` from ``node_id``'s agent, or None if the
    notification is about something else (links, interfaces, alarms)."""
    own = _km_notification(message)
    if own is not None:
        name, body = own
        sid = SessionId(str(body.get("app_id") or ""))
        if not sid:
            raise TopologyDataError(f"{name} without app_id")
        if name == "km_key_request":
            bits = body.get("bits")
            return KeyRequestEvent(NodeId(node_id), sid, body.get("outcome"),
                                   None if bits in (None, "") else int(bits),
                                   _delivered(body.get("delivered")))
        if name == "km_key_mode_change":
            return KeyModeChangeEvent(NodeId(node_id), sid, str(body.get("mode") or ""),
                                      str(body.get("previous_mode") or ""),
                                      str(body.get("reason") or ""))
        return KmSessionStateEvent(NodeId(node_id), sid, str(body.get("state") or ""),
                                   str(body.get("reason") or ""))
    name, body, _ = notification_from_message(message)
    app = body.get("qkd_application") or {}
    if name == "sdqkdn_application_new":
        request = app.get("km_request") or {}
        claimed = str(app.get("server_app_id") or "")
        verified = str(request.get("authenticated_sae_id") or claimed)
        peers = app.get("client_app_id") or []
        peers = peers if isinstance(peers, list) else [peers]
        if not verified or not peers:
            raise TopologyDataError("sdqkdn_application_new needs server_app_id and "
                                    "client_app_id")
        ksid = request.get("key_stream_id")
        return ApplicationRequest(NodeId(node_id),  # the agent session it came on, not a claim
                                  SaeId(verified), SaeId(claimed or verified), SaeId(str(peers[0])),
                                  _qos(app), SessionId(str(ksid)) if ksid else None,
                                  request.get("application_interface"),
                                  str(request["request_id"]) if request.get("request_id")
                                  else None)
    if name == "sdqkdn_application_disconnected":
        return ApplicationClosed(NodeId(node_id), SessionId(str(app.get("app_id") or "")))
    if name == "sdqkdn_application_qos_update":
        return ApplicationQosUpdate(NodeId(node_id), SessionId(str(app.get("app_id") or "")),
                                    _qos(app))
    return None
