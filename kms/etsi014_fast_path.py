"""Thin WSGI dispatch of the ETSI 014 key calls, in front of the KM's Flask app.

``GET|POST /api/v1/keys/{SAE_ID}/enc_keys`` and ``.../dec_keys`` are the KM's hot path: Flask
and werkzeug spend more CPU per call (request and context objects, URL map, response object)
than the KM spends releasing a key. :class:`KeyRouteDispatch` answers exactly those two
routes and methods itself with the same parsing, error translation, bodies and statuses as
the blueprint (:mod:`kms.etsi014` holds both's shared functions); every other request, and
HEAD/OPTIONS/... on these paths, goes on to Flask unchanged.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from werkzeug.exceptions import InternalServerError

from kms import etsi014
from kms.errors import KmsError
from kms.session_admission import SessionAdmission
from kms.telemetry import outcome_of
from qkdn.structured_logging import unbind_session

if TYPE_CHECKING:
    from kms.key_manager import KeyManager

log = logging.getLogger("kms.etsi014")

#: the two key routes (werkzeug's default converter: one non-empty segment without "/")
KEY_ROUTE = re.compile(r"/api/v1/keys/([^/]+)/(enc_keys|dec_keys)")


def request_json(environ: dict[str, Any]) -> Any:
    """The JSON body as Flask's ``request.get_json(silent=True)`` reads it: None unless the
    content type is JSON and the body parses (the body was read in full by the server's
    guard, :func:`kms.https_server._guarded_app`)."""
    mimetype = environ.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
    if not (mimetype == "application/json" or
            (mimetype.startswith("application/") and mimetype.endswith("+json"))):
        return None
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    data = environ["wsgi.input"].read(length) if length > 0 else b""
    try:
        return json.loads(data)
    except (ValueError, RecursionError):   # incl. UnicodeDecodeError
        return None


def json_response(start_response: Callable, status: int, body: dict[str, Any],
                  headers: Iterable[tuple[str, str]] = ()) -> list[bytes]:
    """A JSON answer encoded as the Flask app encodes it (compact, key order kept)."""
    data = (json.dumps(body, separators=(",", ":")) + "\n").encode()
    start_response(f"{status} {HTTPStatus(status).phrase}",
                   [("Content-Type", "application/json"), ("Content-Length", str(len(data))),
                    *headers])
    return [data]


def pair_key(sae_a: str, sae_b: str) -> tuple[str, str]:
    """The admission key of an SAE pair (its 014 session), the same in both directions."""
    first, second = sorted((sae_a, sae_b))
    return first, second


class KeyRouteDispatch:
    """WSGI middleware: enc_keys/dec_keys (GET, POST) here, everything else to ``fallback``."""

    def __init__(self, km: KeyManager, fallback: Callable) -> None:
        self.km = km
        self.fallback = fallback
        #: key calls of one SAE pair (one 014 session) in progress at once
        self.admission = SessionAdmission()

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD")
        if method not in ("GET", "POST"):
            return self.fallback(environ, start_response)
        path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace")
        match = KEY_ROUTE.fullmatch(path)
        if match is None:
            return self.fallback(environ, start_response)
        sae_id, operation = match.groups()
        try:
            status, body, outcome, headers = self._serve(environ, method, sae_id, operation)
        finally:
            unbind_session()   # cheroot reuses its threads (as the Flask app's teardown)
        self.km.telemetry.count_request("014", operation, outcome)
        return json_response(start_response, status, body, headers)

    def _serve(self, environ: dict[str, Any], method: str, sae_id: str,
               operation: str) -> tuple[int, dict[str, Any], str, list[tuple[str, str]]]:
        km = self.km
        post = method == "POST"
        try:
            caller = etsi014.caller_of(environ)
            body = request_json(environ) if post else None
            args = None if post else parse_qsl(environ.get("QUERY_STRING", ""),
                                               keep_blank_values=True)
            if operation == "enc_keys":
                number, size, additional = etsi014.enc_keys_request(
                    body, None if args is None else dict(reversed(args)),
                    km.config.default_key_size)
                with self.admission.admit(pair_key(caller, sae_id),
                                          f"SAE pair {caller}, {sae_id}"):
                    records = km.enc_keys(caller, sae_id, number, size, additional)
                log.debug("014 enc_keys %s -> %s: %d key(s) of %d bits", caller, sae_id,
                         len(records), size)
            else:
                key_ids = etsi014.dec_keys_request(
                    body, None if args is None else [v for k, v in args if k == "key_ID"])
                with self.admission.admit(pair_key(caller, sae_id),
                                          f"SAE pair {sae_id}, {caller}"):
                    records = km.dec_keys(caller, sae_id, key_ids)
                log.debug("014 dec_keys %s <- %s: %d key(s)", caller, sae_id, len(records))
            # the successful calls at DEBUG (INFO: a line per request at hundreds per second;
            # every call is an event in events.jsonl and a count in qkdn_km_requests_total)
            return 200, etsi014.key_container(records), outcome_of(None), []
        except KmsError as exc:
            status = etsi014.error_status(exc)
            log.info("014 %s %s -> %d (%s)", method, environ.get("PATH_INFO"), status,
                     type(exc).__name__)
            return (status, etsi014.error_payload(exc), outcome_of(exc),
                    etsi014.refusal_headers(exc))
        except Exception:
            log.exception("014 %s %s failed", method, environ.get("PATH_INFO"))
            return 500, {"message": InternalServerError.description}, "error", []
