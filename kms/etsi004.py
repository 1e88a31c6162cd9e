"""ETSI GS QKD 004 as JSON over HTTPS (004 defines the calls, not a wire format; ours is in
``docs/kms.md``). The SAE identity is the CN of its verified client certificate.

* ``POST /api/v1/etsi004/open_connect`` ``{"source", "destination", "QoS": {...},
  "Key_stream_ID": uuid|null}`` → ``{"status", "Key_stream_ID", "QoS"}``
* ``POST /api/v1/etsi004/get_key`` ``{"Key_stream_ID", "index": int|null,
  "metadata_size": int|null}`` → ``{"status", "Key_stream_ID", "index", "key_buffer",
  "metadata": {"mimetype", "size", "buffer"}}``
* ``POST /api/v1/etsi004/close`` ``{"Key_stream_ID"}`` → ``{"status"}``

Protocol outcomes are HTTP 200 with the 004 ``status`` code (0–8); a malformed request is a
400 and a missing SAE certificate a 401, both ``{"message", "details"}``.
"""

from __future__ import annotations

import base64
import logging
import uuid
from typing import TYPE_CHECKING, Any

from flask import Blueprint, jsonify, request

from kms.https_server import hold_connection, peer_identity
from kms.key_stream import QoS, Reply, StreamManager, qos_from_wire, qos_to_wire
from kms.pki import SAE_UNIT
from qkdn.structured_logging import bind_session

if TYPE_CHECKING:
    from kms.key_manager import KeyManager

log = logging.getLogger(__name__)

BASE_PATH = "/api/v1/etsi004"
#: largest index / metadata size / QoS value (kms/openapi/etsi004.json); a larger or negative
#: one was accepted and answered with a 004 status instead of 400
UINT32_MAX = 2**32 - 1


def reply_body(reply: Reply, mimetype: str = "application/json") -> dict[str, Any]:
    """Serialise a :class:`Reply` with 004's names."""
    body: dict[str, Any] = {"status": int(reply.status), "Key_stream_ID": reply.ksid}
    if reply.qos is not None:
        body["QoS"] = qos_to_wire(reply.qos)
    if reply.index is not None:
        body["index"] = reply.index
    if reply.key is not None:
        body["key_buffer"] = base64.b64encode(reply.key).decode()
    if reply.provenance is not None:
        body["provenance"] = reply.provenance     # qkd | hybrid | pqc (ADR 0009)
    if reply.metadata is not None:
        body["metadata"] = {"mimetype": mimetype, "size": len(reply.metadata),
                            "buffer": reply.metadata.decode()}
    return body


def _error(message: str, status: int):
    return jsonify({"message": message}), status


def _optional_int(body: dict, name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= UINT32_MAX:
        raise ValueError(f"{name} must be an integer in 0..{UINT32_MAX} or null")
    return value


def _ksid(body: dict, required: bool) -> str | None:
    value = body.get("Key_stream_ID")
    if value is None and not required:
        return None
    return _uuid(value)


def _uuid(value: Any) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise ValueError("Key_stream_ID must be a UUID") from None


def create_blueprint(km: KeyManager) -> Blueprint:
    streams = km.streams if km.streams is not None else StreamManager(km)
    bp = Blueprint("etsi004", __name__, url_prefix=BASE_PATH)

    def count(outcome: str) -> None:
        km.telemetry.count_request("004", request.path.rsplit("/", 1)[-1], outcome)

    def call(handler):
        ident = peer_identity(request.environ)
        if ident is None or ident.unit != SAE_UNIT:
            count("unauthorized")
            return _error("an SAE client certificate is required", 401)
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            count("bad-request")
            return _error("request body must be a JSON object", 400)
        if isinstance(body.get("Key_stream_ID"), str):
            bind_session(body["Key_stream_ID"].lower())  # the session ID, with a controller
        try:
            reply, mimetype = handler(ident.common_name, body)
        except ValueError as exc:
            count("bad-request")
            return _error(str(exc), 400)
        except PermissionError as exc:
            count("unauthorized")
            return _error(str(exc), 401)
        if reply.retry_after:   # refused for its rate: its next request waits (no thread)
            hold_connection(reply.retry_after)
        count(reply.status.name.lower().replace("_", "-"))
        log.info("004 %s by %s -> status %d", request.path.rsplit("/", 1)[-1], ident.common_name,
                 int(reply.status))
        return jsonify(reply_body(reply, mimetype))

    @bp.post("/open_connect")
    def open_connect():
        def run(caller: str, body: dict):
            source, destination = body.get("source"), body.get("destination")
            if not isinstance(source, str) or not isinstance(destination, str):
                # ValueError (not TypeError): call() answers it with 400 Bad Request
                raise ValueError("source and destination must be strings")  # noqa: TRY004
            qos = qos_from_wire(body.get("QoS", {}))   # a QoS that is not an object: 400
            return streams.open_connect(caller, source, destination, qos,
                                        _ksid(body, required=False)), qos.metadata_mimetype
        return call(run)

    @bp.post("/get_key")
    def get_key():
        def run(caller: str, body: dict):
            ksid = _uuid(body.get("Key_stream_ID"))
            reply = streams.get_key(caller, ksid, _optional_int(body, "index"),
                                    _optional_int(body, "metadata_size"))
            return reply, QoS().metadata_mimetype
        return call(run)

    @bp.post("/close")
    def close():
        def run(caller: str, body: dict):
            return streams.close(caller, _uuid(body.get("Key_stream_ID"))), QoS().metadata_mimetype
        return call(run)

    return bp
