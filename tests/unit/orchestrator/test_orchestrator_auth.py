"""Operator authentication: bearer tokens, token file, client certificates by OU."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.auth import authenticate, bearer_token, load_or_create_token
from orchestrator.errors import Forbidden, Unauthorized


def test_token_file_is_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "orchestrator" / "token"
    token = load_or_create_token(path)
    assert len(token) >= 40 and path.stat().st_mode & 0o777 == 0o600
    assert load_or_create_token(path) == token


def test_bearer_header_parsing() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer   abc ") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token("Bearer ") is None and bearer_token(None) is None


def test_token_must_match() -> None:
    assert authenticate({"HTTP_AUTHORIZATION": "Bearer s3cret"}, "s3cret").method == "token"
    with pytest.raises(Unauthorized):
        authenticate({"HTTP_AUTHORIZATION": "Bearer wrong"}, "s3cret")
    with pytest.raises(Unauthorized):
        authenticate({}, "s3cret")


def cert(unit: str, verified: str = "SUCCESS") -> dict[str, str]:
    return {"SSL_CLIENT_VERIFY": verified, "SSL_CLIENT_S_DN_CN": "alice",
            "SSL_CLIENT_S_DN_OU": unit}


def test_only_operator_certificates_count() -> None:
    operator = authenticate(cert("operator"), "t")
    assert (operator.name, operator.method) == ("alice", "certificate")
    with pytest.raises(Forbidden):
        authenticate(cert("sae"), "t")
    with pytest.raises(Forbidden):
        authenticate(cert("km"), "t")
    with pytest.raises(Unauthorized):  # not verified by the TLS layer: no identity at all
        authenticate(cert("operator", verified="NONE"), "t")
