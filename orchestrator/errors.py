"""Errors of the orchestrator. Each carries what the REST edge needs to build an RFC 9457
problem (status, type slug, detail, per-field errors); the translation happens once, in
:mod:`orchestrator.problems`."""

from __future__ import annotations

from dataclasses import dataclass, field

from qkdn.errors import QkdnError


@dataclass(frozen=True)
class FieldError:
    """One invalid part of a request: an RFC 6901 JSON pointer and what is wrong with it."""

    pointer: str
    detail: str


class OrchestratorError(QkdnError):
    """Root of the orchestrator's errors; ``status`` is the HTTP status it maps to."""

    status = 500
    slug = "internal-error"
    title = "Internal error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidRequest(OrchestratorError):
    """The request body or a parameter does not match the API's schema."""

    status = 400
    slug = "invalid-request"
    title = "Invalid request"

    def __init__(self, detail: str, errors: list[FieldError] | None = None) -> None:
        super().__init__(detail)
        self.errors = list(errors or [])


class Unauthorized(OrchestratorError):
    status = 401
    slug = "unauthorized"
    title = "Operator authentication required"


class Forbidden(OrchestratorError):
    status = 403
    slug = "forbidden"
    title = "Not allowed"


class NotFound(OrchestratorError):
    status = 404
    slug = "not-found"
    title = "No such resource"


class Conflict(OrchestratorError):
    """The controller refused the change as it stands (exists already, still referenced...)."""

    status = 409
    slug = "conflict"
    title = "Conflict with the network's state"


class NotImplementedByController(OrchestratorError):
    status = 501
    slug = "not-supported"
    title = "Not supported by the controller"


class ControllerUnavailable(OrchestratorError):
    """The controller's NETCONF north-bound interface cannot be reached or answered badly."""

    status = 502
    slug = "controller-unavailable"
    title = "Controller unavailable"


class TooManyStreams(OrchestratorError):
    status = 503
    slug = "too-many-streams"
    title = "Too many event streams"


class NoTwin(OrchestratorError):
    """Fault actions need the digital twin's state directory, which this orchestrator lacks."""

    status = 501
    slug = "no-twin"
    title = "No digital twin attached"


@dataclass(frozen=True)
class ControllerRpcError:
    """The parsed fields of one NETCONF ``<rpc-error>`` from the controller."""

    tag: str
    message: str = ""
    path: str = ""
    app_tag: str = ""
    type: str = ""
    extra: dict[str, str] = field(default_factory=dict)
