"""Operator authentication: a bearer token (RFC 6750) or, over HTTPS, a client certificate
issued by the network CA for an operator (``OU=operator``).

The token lives in ``DIR/orchestrator/token`` (mode 0600), created on first start.
"""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import Forbidden, Unauthorized

OPERATOR_UNIT = "operator"
TOKEN_BYTES = 32


@dataclass(frozen=True)
class Operator:
    """Who made a request, and how they proved it."""

    name: str
    method: str  #: "token" or "certificate"


def load_or_create_token(path: Path) -> str:
    """The operator token in ``path``; a new random one (mode 0600) if the file is missing."""
    path = Path(path)
    if path.exists():
        token = path.read_text().strip()
        if len(token) >= 16:
            return token
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    os.replace(tmp, path)
    return token


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (scheme case-insensitive)."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def authenticate(environ: Mapping[str, Any], token: str) -> Operator:
    """The operator behind a WSGI request, or :class:`Unauthorized` / :class:`Forbidden`.

    A verified client certificate counts only with ``OU=operator`` (SAE and KM certificates
    of the same CA are refused); otherwise the bearer token must match (constant time).
    """
    presented = bearer_token(environ.get("HTTP_AUTHORIZATION"))
    if presented is not None:
        if hmac.compare_digest(presented.encode(), token.encode()):
            return Operator("token", "token")
        raise Unauthorized("the bearer token is not valid")
    if environ.get("SSL_CLIENT_VERIFY") == "SUCCESS" and environ.get("SSL_CLIENT_S_DN_CN"):
        unit = environ.get("SSL_CLIENT_S_DN_OU", "")
        if unit != OPERATOR_UNIT:
            raise Forbidden(f"a client certificate with OU={unit or '(none)'} is not an "
                            f"operator's (OU={OPERATOR_UNIT})")
        return Operator(str(environ["SSL_CLIENT_S_DN_CN"]), "certificate")
    raise Unauthorized("send 'Authorization: Bearer <token>' (token in DIR/orchestrator/token)"
                       " or an operator client certificate")
