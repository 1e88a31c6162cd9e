"""ETSI GS QKD 014 V1.1.1 REST API (Flask blueprint) over the KM.

Routes (the SAE identity is the CN of its verified client certificate, never a parameter):

* ``GET  /api/v1/keys/{slave_SAE_ID}/status``
* ``GET|POST /api/v1/keys/{slave_SAE_ID}/enc_keys`` (GET: ``number``, ``size`` query
  parameters; POST: Key request JSON)
* ``GET|POST /api/v1/keys/{master_SAE_ID}/dec_keys`` (GET: ``key_ID`` query parameter;
  POST: Key IDs JSON)

Errors are ``{"message": ..., "details": [...]}`` with 400, 401 or 503 (014 clause 5.1). Keys
and key material never appear in errors or logs.
"""

from __future__ import annotations

import base64
import logging
import math
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, current_app, jsonify, request

from kms.errors import BadRequest, KeyNotFound, KmsError, RateLimited, SessionRefused, Unauthorized
from kms.https_server import hold_connection, peer_identity
from kms.key_pool import KeyRecord
from kms.pki import SAE_UNIT
from kms.telemetry import outcome_of

log = logging.getLogger(__name__)

blueprint = Blueprint("etsi014", __name__, url_prefix="/api/v1/keys")

#: extension_mandatory parameters this KM understands (none yet).
SUPPORTED_EXTENSIONS: frozenset[str] = frozenset()


def error_body(message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """014 Error data format."""
    body: dict[str, Any] = {"message": message}
    if details:
        body["details"] = details
    return body


def status_body(status) -> dict[str, Any]:
    """014 Status data format."""
    return {
        "source_KME_ID": status.source_km,
        "target_KME_ID": status.target_km,
        "master_SAE_ID": status.master_sae_id,
        "slave_SAE_ID": status.slave_sae_id,
        "key_size": status.key_size,
        "stored_key_count": status.stored_key_count,
        "max_key_count": status.max_key_count,
        "max_key_per_request": status.max_key_per_request,
        "max_key_size": status.max_key_size,
        "min_key_size": status.min_key_size,
        "max_SAE_ID_count": status.max_sae_id_count,
    }


def key_container(records: list[KeyRecord]) -> dict[str, Any]:
    """014 Key container data format; every key carries its provenance (``qkd``, ``hybrid``
    or ``pqc``; ADR 0009) as a ``key_extension`` (014 §6.3 allows one per key)."""
    return {"keys": [{"key_ID": r.key_id, "key": base64.b64encode(r.key or b"").decode(),
                      "key_extension": {"provenance": r.provenance}}
                     for r in records]}


def error_status(exc: KmsError) -> int:
    """HTTP status of a KM error on the 014 API (the one translation table)."""
    if isinstance(exc, (BadRequest, KeyNotFound)):
        return 400
    if isinstance(exc, Unauthorized):
        return 401
    if isinstance(exc, SessionRefused):  # the controller refused the session
        return 401 if exc.refusal.access_denied else 503
    return 503   # InsufficientKey, RateLimited, NoRoute, RelayError, SessionError, ...


def refusal_headers(exc: KmsError) -> list[tuple[str, str]]:
    """Extra headers of a KM error's answer: ``Retry-After`` (RFC 9110 §10.2.3, whole seconds,
    rounded up) when the session's token bucket refused the request. The caller's connection
    is also held back until then (:func:`kms.https_server.hold_connection`), so a flood of
    refused requests costs the KM one refusal per connection and refill, not a CPU core."""
    if not isinstance(exc, RateLimited) or exc.retry_after is None:
        return []
    # retry_after is the caller's turn (kms.token_bucket.TokenBucket.next_turn), booked with
    # its tokens kept for it: connections refused together come back one at a time, each at
    # its turn (not before: early, it would find its tokens not yet there and be refused
    # again); the bucket stays in use (accepted volume within 1 % of rate·t + size)
    hold_connection(exc.retry_after)
    return [("Retry-After", str(max(1, math.ceil(exc.retry_after))))]


def error_payload(exc: KmsError) -> dict[str, Any]:
    """014 Error body of a KM error."""
    details = exc.details if isinstance(exc, BadRequest) else None
    if isinstance(exc, SessionRefused):
        details = [{"reason": exc.refusal.reason,
                    "etsi004_status": exc.refusal.etsi004_status}]
    return error_body(str(exc), details)


def caller_of(environ: dict[str, Any]) -> str:
    """The SAE_ID of the verified client certificate (401 without an SAE certificate)."""
    ident = peer_identity(environ)
    if ident is None or ident.unit != SAE_UNIT:
        raise Unauthorized("an SAE client certificate is required")
    return ident.common_name


def enc_keys_request(body: dict[str, Any] | None, args: Mapping[str, str] | None,
                     default_size: int) -> tuple[int, int, list[str]]:
    """(number, size, additional slaves) of an enc_keys call: the POST Key request ``body``
    (None: not a JSON object), else the GET query ``args``."""
    if args is None:
        if not isinstance(body, dict):
            raise BadRequest("request body must be a JSON object")
        _check_extensions(body)
        additional = body.get("additional_slave_SAE_IDs") or []
        if not isinstance(additional, list) or not all(isinstance(s, str) for s in additional):
            raise BadRequest("additional_slave_SAE_IDs must be an array of SAE_ID strings")
        return (_int_param(body.get("number"), "number", 1),
                _int_param(body.get("size"), "size", default_size), additional)
    return (_int_param(args.get("number"), "number", 1),
            _int_param(args.get("size"), "size", default_size), [])


def dec_keys_request(body: dict[str, Any] | None, key_ids: list[str] | None) -> list[str]:
    """The key_IDs of a dec_keys call: the POST Key IDs ``body`` (None: not a JSON object),
    else the GET ``key_ID`` query values."""
    if key_ids is None:
        if not isinstance(body, dict):
            raise BadRequest("request body must be a JSON object")
        _check_extensions(body)
        raw = body.get("key_IDs")
        if not isinstance(raw, list) or not all(isinstance(k, dict) and isinstance(k.get("key_ID"), str)
                                                for k in raw):
            raise BadRequest("key_IDs must be an array of {\"key_ID\": string}")
        key_ids = [k["key_ID"] for k in raw]
    if len(set(key_ids)) != len(key_ids):
        raise BadRequest("duplicate key_ID")
    return key_ids


def _km():
    return current_app.config["KM"]


def _count(outcome: str) -> None:
    """Count this call (``qkdn_km_requests_total``) by operation and outcome."""
    _km().telemetry.count_request("014", request.path.rsplit("/", 1)[-1], outcome)


def _caller() -> str:
    return caller_of(request.environ)


def _int_param(value: Any, name: str, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool):
        raise BadRequest(f"{name} must be an integer")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BadRequest(f"{name} must be an integer") from None


def _check_extensions(body: dict[str, Any]) -> None:
    mandatory = body.get("extension_mandatory")
    if mandatory is None:
        return
    if not isinstance(mandatory, list) or not all(isinstance(e, dict) for e in mandatory):
        raise BadRequest("extension_mandatory must be an array of objects")
    unsupported = [name for ext in mandatory for name in ext if name not in SUPPORTED_EXTENSIONS]
    if unsupported:
        raise BadRequest("unsupported extension_mandatory parameters",
                         [{"extension_mandatory_unsupported": unsupported}])


@blueprint.errorhandler(KmsError)
def _kms_error(exc: KmsError):
    status = error_status(exc)
    _count(outcome_of(exc))
    log.info("014 %s %s -> %d (%s)", request.method, request.path, status, type(exc).__name__)
    return jsonify(error_payload(exc)), status, refusal_headers(exc)


@blueprint.get("/<slave_sae_id>/status")
def get_status(slave_sae_id: str):
    master = _caller()
    km = _km()
    if slave_sae_id not in km.directory.saes:
        raise BadRequest("unknown slave_SAE_ID")
    body = status_body(km.key_status(master, slave_sae_id))
    _count("ok")
    return jsonify(body)


@blueprint.route("/<slave_sae_id>/enc_keys", methods=["GET", "POST"])
def enc_keys(slave_sae_id: str):
    master = _caller()
    km = _km()
    post = request.method == "POST"
    number, size, additional = enc_keys_request(
        request.get_json(silent=True) if post else None, None if post else request.args,
        km.config.default_key_size)
    records = km.enc_keys(master, slave_sae_id, number, size, additional)
    log.info("014 enc_keys %s -> %s: %d key(s) of %d bits", master, slave_sae_id, len(records), size)
    _count(outcome_of(None))
    return jsonify(key_container(records))


@blueprint.route("/<master_sae_id>/dec_keys", methods=["GET", "POST"])
def dec_keys(master_sae_id: str):
    slave = _caller()
    km = _km()
    post = request.method == "POST"
    key_ids = dec_keys_request(request.get_json(silent=True) if post else None,
                               None if post else request.args.getlist("key_ID"))
    records = km.dec_keys(slave, master_sae_id, key_ids)
    log.info("014 dec_keys %s <- %s: %d key(s)", slave, master_sae_id, len(records))
    _count(outcome_of(None))
    return jsonify(key_container(records))
