"""RFC 9457 problem details: the one place where errors become HTTP responses."""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from orchestrator.errors import InvalidRequest, OrchestratorError, Unauthorized
from orchestrator.openapi import PROBLEM_MEDIA

log = logging.getLogger(__name__)

#: Base of the problem ``type`` URIs (documented in docs/orchestrator.md#problems).
PROBLEM_BASE = "https://qkdn.invalid/problems/"


def problem_body(status: int, slug: str, title: str, detail: str = "",
                 instance: str = "", errors: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """An RFC 9457 problem object."""
    body: dict[str, Any] = {"type": PROBLEM_BASE + slug, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    if errors:
        body["errors"] = errors
    return body


def problem_response(body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    response = Response(json.dumps(body), status=body["status"], mimetype=PROBLEM_MEDIA)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def from_error(error: OrchestratorError, instance: str) -> Response:
    errors = None
    if isinstance(error, InvalidRequest) and error.errors:
        errors = [{"pointer": e.pointer, "detail": e.detail} for e in error.errors]
    headers = {}
    if isinstance(error, Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="qkdn-orchestrator"'
    return problem_response(problem_body(error.status, error.slug, error.title, error.detail,
                                         instance, errors), headers)


def register_error_handlers(app: Flask) -> None:
    """Every error of the app — ours, Werkzeug's (404, 405, 415...) and unexpected ones —
    as ``application/problem+json``."""

    @app.errorhandler(OrchestratorError)
    def _ours(error: OrchestratorError) -> Response:
        if error.status >= 500:
            log.warning("%s %s: %s", request.method, request.path, error.detail)
        return from_error(error, request.path)

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException) -> Response:
        status = error.code or 500
        slug = (error.name or "error").lower().replace(" ", "-")
        headers = {}
        allowed = getattr(error, "valid_methods", None)
        if status == 405 and allowed:
            headers["Allow"] = ", ".join(allowed)
        return problem_response(problem_body(status, slug, error.name or "Error",
                                             error.description or "", request.path), headers)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return problem_response(problem_body(500, "internal-error", "Internal error",
                                             f"{type(error).__name__}", request.path))
