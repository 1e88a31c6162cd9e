"""HTTP endpoints of the KM-to-KM relay (mTLS, KM certificates only); see ``kms.relay``."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from kms.https_server import peer_identity
from kms.hybrid_provisioning import PQC_HANDSHAKE_PATH, PQC_KEYS_PATH
from kms.pki import KM_UNIT
from kms.relay import CONTROL_PATH, EXT_KEYS_PATH, RESOLVE_PATH
from qkdn.structured_logging import bind_session

blueprint = Blueprint("relay", __name__)


def _sender() -> str | None:
    ident = peer_identity(request.environ)
    if ident is None or ident.unit != KM_UNIT:
        return None
    km = current_app.config["KM"]
    return ident.common_name if ident.common_name in km.directory.links else None


def _network_km() -> str | None:
    """Any KM of the network (end-to-end PQC messages skip the relays; ADR 0009)."""
    ident = peer_identity(request.environ)
    if ident is None or ident.unit != KM_UNIT:
        return None
    km = current_app.config["KM"]
    return ident.common_name if ident.common_name in km.directory.nodes else None


def _dispatch(handler, sender_of=_sender):
    sender = sender_of()
    if sender is None:
        return jsonify({"status": "rejected", "message": "a neighbour KM certificate is required"}), 401
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return jsonify({"status": "rejected", "message": "body must be a JSON object"}), 400
    if isinstance(body.get("session"), str):
        bind_session(body["session"])
    status, payload = handler(sender, body)
    return jsonify(payload), status


@blueprint.post(EXT_KEYS_PATH)
def ext_keys():
    return _dispatch(current_app.config["KM"].relay.handle_ext_keys)


@blueprint.post(RESOLVE_PATH)
def resolve():
    return _dispatch(current_app.config["KM"].relay.handle_resolve)


@blueprint.post(CONTROL_PATH)
def control():
    return _dispatch(current_app.config["KM"].relay.handle_control)


@blueprint.post(PQC_HANDSHAKE_PATH)
def pqc_handshake():
    return _dispatch(current_app.config["KM"].hybrid.handle_handshake, _network_km)


@blueprint.post(PQC_KEYS_PATH)
def pqc_keys():
    return _dispatch(current_app.config["KM"].hybrid.handle_keys, _network_km)
