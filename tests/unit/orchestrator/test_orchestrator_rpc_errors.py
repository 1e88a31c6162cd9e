"""Controller <rpc-error> → REST problem mapping (one place: nbi_client)."""

from __future__ import annotations

from lxml import etree

from orchestrator.errors import (
    Conflict,
    ControllerRpcError,
    ControllerUnavailable,
    Forbidden,
    NotFound,
    NotImplementedByController,
)
from orchestrator.nbi_client import parse_rpc_error, rpc_errors_in, translate_rpc_error


def test_parse_rpc_error_fields() -> None:
    reply = etree.fromstring(
        '<rpc-reply xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><rpc-error>'
        '<error-type>application</error-type><error-tag>invalid-value</error-tag>'
        '<error-severity>error</error-severity><error-app-tag>unknown-svc-link</error-app-tag>'
        '<error-message>no service link X</error-message></rpc-error></rpc-reply>')
    (error,) = rpc_errors_in(reply)
    assert error == parse_rpc_error(reply[0])
    assert (error.tag, error.app_tag, error.message) == (
        "invalid-value", "unknown-svc-link", "no service link X")
    assert isinstance(translate_rpc_error(error), NotFound)


def test_mapping() -> None:
    def mapped(tag: str, **kw) -> type:
        return type(translate_rpc_error(ControllerRpcError(tag=tag, message="m"), **kw))

    assert mapped("data-exists") is Conflict
    assert mapped("data-missing") is Conflict
    assert mapped("data-missing", missing="not-found") is NotFound
    assert mapped("invalid-value") is Conflict
    assert mapped("resource-denied") is Conflict
    assert mapped("access-denied") is Forbidden
    assert mapped("operation-not-supported") is NotImplementedByController
    assert mapped("malformed-message") is ControllerUnavailable
    located = translate_rpc_error(ControllerRpcError(tag="invalid-value", message="bad",
                                                     path="/qkdn-sdn-access:qkd_access"))
    assert "/qkdn-sdn-access:qkd_access" in located.detail
