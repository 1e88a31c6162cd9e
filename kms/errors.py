"""Errors of the key-management plane. Translated to HTTP (014), status codes (004) or relay
responses only at the edges (``etsi014``, ``etsi004``, ``relay``)."""

from __future__ import annotations

from qkdn.errors import QkdnError


class KmsError(QkdnError):
    """Root of every key-manager error."""


class BadRequest(KmsError):
    """The request is malformed or asks for something the KM does not support (014: 400)."""

    def __init__(self, message: str, details: list[dict] | None = None) -> None:
        super().__init__(message)
        self.details = details


class Unauthorized(KmsError):
    """The caller's identity is missing or not allowed (014: 401)."""


class KeyNotFound(KmsError):
    """No such key for this caller: "not yours" and "does not exist" are the same answer."""


class InsufficientKey(KmsError):
    """Not enough key material in a store to serve the request (014: 503, 004: status 2)."""


class CapacityExceeded(KmsError):
    """A store is full; a delivered block was refused."""


class NoRoute(KmsError):
    """No direct link or forwarding rule toward the peer's node (004: status 4)."""


class RateLimited(KmsError):
    """The session's token bucket has no tokens for this request (014: 503). ``retry_after``:
    seconds until it would have them (None: unknown), for ``Retry-After`` and for holding the
    caller's connection meanwhile (:func:`kms.https_server.hold_connection`)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RelayError(KmsError):
    """A KM-to-KM relay failed; the key was delivered to neither end."""


class AuthenticationFailed(RelayError):
    """A relay message failed its MAC check or referenced already-consumed key (tamper/replay)."""


class SessionError(KmsError):
    """A session operation is not valid in the session's current state."""


class SessionRefused(KmsError):
    """The controller refused the session (014: 401 when access was denied, else 503; 004:
    the refusal's status). Carries the :class:`kms.refusals.Refusal`."""

    def __init__(self, refusal) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal
