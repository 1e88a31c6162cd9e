"""Data of the controller's north-bound YANG modules ↔ the orchestrator's JSON.

The REST resources are the YANG subtrees themselves (ADR 0007): the RFC 7951 JSON of the
subtree with module prefixes removed from member names and from identity values
(``"ACTIVE"``, ``"AUTOMATIC"``), unordered lists as JSON arrays, 64-bit integers as JSON
integers and decimal64 as numbers. Replies are parsed by libyang against the modules, so data
the model rejects is refused here rather than passed on half-right.

A :class:`libyang.Context` is not thread-safe: :class:`NbiModel` serialises its use.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

import libyang
from lxml import etree

from orchestrator.errors import ControllerUnavailable
from qkd_agent.yang_context import load_context
from qkdn.namespaces import NETCONF_NOTIFICATION_NS

_IDENT = libyang.Type.IDENT


def strip_identity(value: str) -> str:
    """``"etsi-qkd-node-types:ACTIVE"`` → ``"ACTIVE"``."""
    return value.split(":", 1)[1] if ":" in value else value


class NbiModel:
    """The YANG context of the north-bound modules (every module of ``yang/``)."""

    def __init__(self, ctx: libyang.Context | None = None) -> None:
        self.ctx = ctx if ctx is not None else load_context()
        self._lock = threading.Lock()
        self._identity_leaf: dict[Any, bool] = {}

    # ------------------------------------------------------------------ data trees

    def data_to_json(self, elements: list[etree._Element]) -> dict[str, Any]:
        """Top-level data elements of a ``<get>`` reply → ``{name: plain JSON}``."""
        if not elements:
            return {}
        xml = "".join(etree.tostring(e, encoding="unicode") for e in elements)
        with self._lock:
            try:
                tree = self.ctx.parse_data_mem(xml, "xml", parse_only=True, strict=True)
            except libyang.LibyangError as exc:
                raise ControllerUnavailable(
                    f"the controller's reply does not match the YANG modules: {exc}") from exc
            if tree is None:
                return {}
            try:
                return {node.name(): self._plain(node) for node in tree.siblings()}
            finally:
                tree.free()

    def notification_to_json(self, message: etree._Element) -> tuple[str, datetime | None, dict]:
        """A ``<notification>`` element → (notification name, eventTime, plain JSON body)."""
        event_time = None
        body = None
        for child in message:
            if not isinstance(child.tag, str):
                continue
            if child.tag == f"{{{NETCONF_NOTIFICATION_NS}}}eventTime":
                event_time = parse_event_time(child.text or "")
            elif body is None:
                body = child
        if body is None:
            raise ControllerUnavailable("a notification without content")
        xml = etree.tostring(body, encoding="unicode")
        with self._lock:
            try:
                node = self.ctx.parse_op_mem("xml", xml, libyang.DataType.NOTIF_YANG)
            except libyang.LibyangError as exc:
                raise ControllerUnavailable(f"notification does not validate: {exc}") from exc
            try:
                return node.name(), event_time, self._plain(node)
            finally:
                node.free()

    def rpc_output_to_json(self, rpc_name: str, namespace: str,
                           reply: etree._Element) -> dict[str, Any]:
        """The output elements of an ``<rpc-reply>`` → plain JSON, validated as the output
        of RPC ``rpc_name`` (module namespace ``namespace``)."""
        outputs = [etree.tostring(child, encoding="unicode") for child in reply
                   if isinstance(child.tag, str) and etree.QName(child).namespace == namespace]
        if not outputs:
            return {}
        # wrapped as text: appending copies to a new parent lets lxml re-map their namespaces
        xml = f'<{rpc_name} xmlns="{namespace}">{"".join(outputs)}</{rpc_name}>'
        with self._lock:
            try:
                node = self.ctx.parse_op_mem("xml", xml, libyang.DataType.REPLY_YANG)
            except libyang.LibyangError as exc:
                raise ControllerUnavailable(f"the {rpc_name} reply does not validate: "
                                            f"{exc}") from exc
            try:
                return self._plain(node)
            finally:
                node.free()

    # ------------------------------------------------------------------ conversion

    def _plain(self, node: Any, output: bool = False) -> Any:
        if isinstance(node, libyang.DLeaf):  # leaf or leaf-list entry
            value = node.value()
            if isinstance(value, str) and self._is_identity(node):
                return strip_identity(value)
            return value
        out: dict[str, Any] = {}
        for child in node.children():
            name = child.name()
            value = self._plain(child)
            snode_type = child.cdata.schema.nodetype
            if snode_type in (libyang.SNode.LIST, libyang.SNode.LEAFLIST):
                out.setdefault(name, []).append(value)
            else:
                out[name] = value
        return out

    def _is_identity(self, node: Any) -> bool:
        key = node.cdata.schema
        known = self._identity_leaf.get(key)
        if known is None:
            snode = node.schema()
            known = snode.type().base() == _IDENT
            self._identity_leaf[key] = known
        return known


def parse_event_time(text: str) -> datetime | None:
    """RFC 3339 ``eventTime`` (``Z`` or offset, any fraction) → aware datetime, or None."""
    text = text.strip()
    if not text:
        return None
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    if "." in text:  # Python accepts at most 6 fractional digits
        head, rest = text.split(".", 1)
        digits = "".join(ch for ch in rest if ch.isdigit())
        text = f"{head}.{digits[:6].ljust(6, '0')}{rest[len(digits):]}"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None
