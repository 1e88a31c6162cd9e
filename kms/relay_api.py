"""HTTP endpoints of the KM-to-KM relay (mTLS, KM certificates only); see ``kms.relay``."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from flask import Blueprint, current_app, jsonify, request
from werkzeug.exceptions import InternalServerError

from kms.https_server import peer_identity
from kms.hybrid_provisioning import PQC_HANDSHAKE_PATH, PQC_KEYS_PATH
from kms.pki import KM_UNIT
from kms.relay import CONTROL_PATH, EXT_KEYS_PATH, RESOLVE_PATH
from qkdn.structured_logging import bind_session, unbind_session

if TYPE_CHECKING:
    from kms.key_manager import KeyManager

log = logging.getLogger(__name__)

blueprint = Blueprint("relay", __name__)

NO_NEIGHBOUR = {"status": "rejected", "message": "a neighbour KM certificate is required"}
NOT_AN_OBJECT = {"status": "rejected", "message": "body must be a JSON object"}


def neighbour_of(environ: dict[str, Any], km: KeyManager) -> str | None:
    """The node name of the verified KM certificate if it is a physical neighbour's."""
    ident = peer_identity(environ)
    if ident is None or ident.unit != KM_UNIT:
        return None
    return ident.common_name if ident.common_name in km.directory.links else None


def _sender() -> str | None:
    return neighbour_of(request.environ, current_app.config["KM"])


def network_km_of(environ: dict[str, Any], km: KeyManager) -> str | None:
    """The node name of the verified KM certificate if it is any KM of the network's
    (end-to-end messages skip the relays: PQC, ADR 0009; 004 stream control)."""
    ident = peer_identity(environ)
    if ident is None or ident.unit != KM_UNIT:
        return None
    return ident.common_name if ident.common_name in km.directory.nodes else None


def _network_km() -> str | None:
    return network_km_of(request.environ, current_app.config["KM"])


def _dispatch(handler, sender_of=_sender):
    sender = sender_of()
    if sender is None:
        return jsonify(NO_NEIGHBOUR), 401
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return jsonify(NOT_AN_OBJECT), 400
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
    return _dispatch(current_app.config["KM"].relay.handle_control, _network_km)


@blueprint.post(PQC_HANDSHAKE_PATH)
def pqc_handshake():
    return _dispatch(current_app.config["KM"].hybrid.handle_handshake, _network_km)


@blueprint.post(PQC_KEYS_PATH)
def pqc_keys():
    return _dispatch(current_app.config["KM"].hybrid.handle_keys, _network_km)


class RelayRouteDispatch:
    """WSGI middleware: ``POST`` ext_keys, resolve and control — every hop of every relay
    message — answered without Flask (its request and context objects cost ~1 ms of CPU per
    call); same checks, statuses and bodies as the blueprint above. Everything else goes on to
    ``fallback``."""

    def __init__(self, km: KeyManager, fallback: Callable) -> None:
        self.km = km
        self.fallback = fallback
        self.handlers: dict[str, Callable[[str, dict], tuple[int, dict]]] = {
            EXT_KEYS_PATH: km.relay.handle_ext_keys, RESOLVE_PATH: km.relay.handle_resolve,
            CONTROL_PATH: km.relay.handle_control}
        #: who may send to a path: a physical neighbour, but any KM for end-to-end messages
        self.senders: dict[str, Callable[[dict[str, Any], KeyManager], str | None]] = {
            CONTROL_PATH: network_km_of}

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        handler = self.handlers.get(environ.get("PATH_INFO", ""))
        if handler is None or environ.get("REQUEST_METHOD") != "POST":
            return self.fallback(environ, start_response)
        from kms.etsi014_fast_path import json_response
        try:
            status, payload = self._serve(environ, handler)
        finally:
            unbind_session()   # cheroot reuses its threads
        return json_response(start_response, status, payload)

    def _serve(self, environ: dict[str, Any],
               handler: Callable[[str, dict], tuple[int, dict]]) -> tuple[int, dict]:
        from kms.etsi014_fast_path import request_json
        try:
            sender = self.senders.get(environ.get("PATH_INFO", ""), neighbour_of)(environ,
                                                                                 self.km)
            if sender is None:
                return 401, NO_NEIGHBOUR
            body = request_json(environ)
            if not isinstance(body, dict):
                return 400, NOT_AN_OBJECT
            if isinstance(body.get("session"), str):
                bind_session(body["session"])
            return handler(sender, body)
        except Exception:
            log.exception("relay %s failed", environ.get("PATH_INFO"))
            return 500, {"message": InternalServerError.description}
