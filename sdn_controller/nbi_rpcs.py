"""North-bound RPCs of ``qkdn-sdn-inventory``: ``close_svc_link`` and ``restore_svc_link``.

Each RPC is an operation of the agent's NETCONF server (``QkdAgent(operations=...)``): its
input is validated with libyang (RPC_YANG), the controller acts, the output is validated
(REPLY_YANG) and the controller's errors become ``<rpc-error>``s here, in one place:

- unknown service link: ``invalid-value``, app-tag ``unknown-svc-link``;
- a session that is not active (restore) or already over (close): ``data-missing``,
  app-tag ``svc-link-not-active``;
- no path for a restoration: ``resource-denied``, app-tag ``no-path`` (the session keeps
  its route).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, Protocol

import libyang
from lxml import etree

from qkd_agent.libyang_errors import (
    LibyangIssue,
    LibyangParseError,
    collect_issues,
    rpc_error_from_libyang,
)
from qkd_agent.operations import Operation, RpcCall
from qkd_agent.rpc_error import ErrorTag, ErrorType, RpcError
from qkdn.namespaces import QKDN_INV_MODULE, QKDN_INV_NS
from sdn_controller.admission_control import SessionView
from sdn_controller.errors import RoutingError, SessionStateError, UnknownSessionError
from sdn_controller.nbi_service_links import paths_json

CLOSE_SVC_LINK = "close_svc_link"
RESTORE_SVC_LINK = "restore_svc_link"


class SessionOperator(Protocol):
    """What the RPCs ask of the controller (:class:`~sdn_controller.controller.Controller`
    has both)."""

    def close_session(self, session_id: str, detail: str = ...) -> None: ...

    def restore_session(self, session_id: str) -> SessionView: ...


def parse_rpc_input(ctx: libyang.Context, op: etree._Element) -> dict[str, Any]:
    """The validated input of a module RPC as a dict (``{"qkdl_id": ..., ...}``)."""
    name = etree.QName(op).localname
    try:
        node = ctx.parse_op_mem("xml", etree.tostring(op).decode(), libyang.DataType.RPC_YANG)
    except libyang.LibyangError as exc:
        raise _input_error(ctx, exc) from None
    try:
        node.validate_op(libyang.DataType.RPC_YANG)
        return dict(node.print_dict().get(name) or {})
    except libyang.LibyangError as exc:
        raise _input_error(ctx, exc) from None
    finally:
        node.free()


def _input_error(ctx: libyang.Context, exc: libyang.LibyangError) -> RpcError:
    """The ``<rpc-error>`` of an RPC input libyang refused (its message after the bindings'
    "failed to parse ...: " preamble, its data location as the path)."""
    issues = collect_issues(ctx)
    if not issues:
        text = str(exc)
        location = re.search(r'(?:Data|Schema) location "([^"]+)"', text)
        message = re.sub(r"^(failed to parse input data|validation failed): ", "", text)
        message = re.sub(r":? ?(Data|Schema) location .*$", "", message).rstrip(".: ")
        issues = [LibyangIssue(message, location.group(1) if location else None, None)]
    error = rpc_error_from_libyang(LibyangParseError(issues))
    error.type = ErrorType.PROTOCOL
    return error


def render_rpc_output(ctx: libyang.Context, rpc: str, output: dict[str, Any]
                      ) -> list[etree._Element]:
    """The output leaves of a module RPC, validated (REPLY_YANG), as XML elements."""
    body = json.dumps({f"{QKDN_INV_MODULE}:{rpc}": output})
    node = ctx.parse_op_mem("json", body, libyang.DataType.REPLY_YANG)
    try:
        xml = node.print_mem("xml", pretty=False)
    finally:
        node.free()
    root = etree.fromstring(xml.encode())
    return [child for child in root if isinstance(child.tag, str)]


def unknown_svc_link(qkdl_id: str) -> RpcError:
    return RpcError(ErrorTag.INVALID_VALUE, f"no service link {qkdl_id}",
                    app_tag="unknown-svc-link", info={"bad-element": "qkdl_id"})


def _session_error(qkdl_id: str, exc: Exception) -> RpcError:
    if isinstance(exc, UnknownSessionError):
        return unknown_svc_link(qkdl_id)
    if isinstance(exc, SessionStateError):
        return RpcError(ErrorTag.DATA_MISSING, str(exc), app_tag="svc-link-not-active",
                        info={"bad-element": "qkdl_id"})
    if isinstance(exc, RoutingError):
        return RpcError(ErrorTag.RESOURCE_DENIED, f"service link {qkdl_id}: {exc}",
                        app_tag="no-path")
    raise exc


def close_svc_link_operation(ctx: libyang.Context, operator: SessionOperator,
                             on_close: Callable[[str, str], None] | None = None) -> Operation:
    """``close_svc_link``: the controller deletes the session from every KM of its path.
    ``on_close(session_id, reason)`` is told first (for the removal notification's
    reason)."""

    def close_svc_link(op: etree._Element, call: RpcCall) -> None:
        call.require_write(CLOSE_SVC_LINK)
        args = parse_rpc_input(ctx, op)
        qkdl_id = str(args["qkdl_id"])
        reason = str(args.get("reason") or "closed by orchestrator")
        if on_close is not None:
            on_close(qkdl_id, reason)
        try:
            operator.close_session(qkdl_id, reason)
        except (UnknownSessionError, SessionStateError) as exc:
            raise _session_error(qkdl_id, exc) from None

    return close_svc_link


def restore_svc_link_operation(ctx: libyang.Context, operator: SessionOperator) -> Operation:
    """``restore_svc_link``: route the session again now; the new ``paths``."""

    def restore_svc_link(op: etree._Element, call: RpcCall) -> etree._Element:
        call.require_write(RESTORE_SVC_LINK)
        args = parse_rpc_input(ctx, op)
        qkdl_id = str(args["qkdl_id"])
        try:
            view = operator.restore_session(qkdl_id)
        except (UnknownSessionError, SessionStateError, RoutingError) as exc:
            raise _session_error(qkdl_id, exc) from None
        (paths,) = render_rpc_output(ctx, RESTORE_SVC_LINK, {"paths": paths_json(view)})
        return paths

    return restore_svc_link


def nbi_operations(ctx: libyang.Context, operator: SessionOperator,
                   on_close: Callable[[str, str], None] | None = None
                   ) -> dict[tuple[str, str], Operation]:
    """The operations to give ``QkdAgent(operations=...)``."""
    return {(QKDN_INV_NS, CLOSE_SVC_LINK): close_svc_link_operation(ctx, operator, on_close),
            (QKDN_INV_NS, RESTORE_SVC_LINK): restore_svc_link_operation(ctx, operator)}
