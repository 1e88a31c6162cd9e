"""One NETCONF session (RFC 6241): hello exchange, framing switch, safe XML parsing, dispatch
of each ``<rpc>`` to its operation and serialisation of ``<rpc-reply>`` / ``<rpc-error>``.

The session is transport-free: the SSH glue hands it received bytes (:meth:`data_received`)
and gives it two callables, ``write(bytes)`` and ``close()``. Everything runs on the agent's
event loop, one message at a time, so replies and notifications are written whole and never
interleave.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from enum import StrEnum

from lxml import etree

from qkd_agent.framing import (
    DEFAULT_MAX_MESSAGE_SIZE,
    Decoder,
    EndOfMessageDecoder,
    Framing,
    FramingError,
    encode_message,
    make_decoder,
)
from qkd_agent.operations import RpcCall, ServerState, find_operation
from qkd_agent.rpc_error import ErrorTag, ErrorType, RpcError
from qkd_agent.serialised_data import SerialisedData
from qkdn.errors import QkdnError
from qkdn.namespaces import BASE_1_0, BASE_1_1, NETCONF_BASE_NS

log = logging.getLogger(__name__)

_BASE = f"{{{NETCONF_BASE_NS}}}"
#: Chunk size of outgoing base:1.1 messages. Clients that re-scan their whole receive buffer
#: on every read until a chunk completes (ncclient) spend time quadratic in the chunk size;
#: 16 KiB chunks keep that linear at 0.05 % framing overhead.
OUTPUT_CHUNK_SIZE = 16 * 1024


class SessionState(StrEnum):
    AWAITING_HELLO = "awaiting-hello"
    ESTABLISHED = "established"
    CLOSED = "closed"


def _make_parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


_PARSER = _make_parser()


def parse_message(data: bytes) -> etree._Element:
    """Parse one received message; ``malformed-message`` for anything that is not plain,
    well-formed XML. A document type declaration (the carrier of entity expansion bombs and
    external entities) is refused outright; entities are never resolved and nothing is
    fetched from the network."""
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise RpcError(ErrorTag.MALFORMED_MESSAGE, "document type declarations are not allowed",
                       type=ErrorType.RPC)
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise RpcError(ErrorTag.MALFORMED_MESSAGE, f"not well-formed XML: {exc}",
                       type=ErrorType.RPC) from None
    if root is None:
        raise RpcError(ErrorTag.MALFORMED_MESSAGE, "empty message", type=ErrorType.RPC)
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise RpcError(ErrorTag.MALFORMED_MESSAGE, "document type declarations are not allowed",
                       type=ErrorType.RPC)
    return root


def build_hello(capabilities: tuple[str, ...], session_id: int) -> bytes:
    """The server's ``<hello>`` (RFC 6241 §8.1)."""
    hello = etree.Element(_BASE + "hello", nsmap={None: NETCONF_BASE_NS})
    caps = etree.SubElement(hello, _BASE + "capabilities")
    for uri in capabilities:
        etree.SubElement(caps, _BASE + "capability").text = uri
    etree.SubElement(hello, _BASE + "session-id").text = str(session_id)
    return etree.tostring(hello, xml_declaration=True, encoding="UTF-8")


def parse_client_hello(root: etree._Element) -> frozenset[str]:
    """The capabilities of a client ``<hello>``; :class:`FramingError` if it is no valid hello
    (which ends the session, RFC 6241 §8.1)."""
    if root.tag != _BASE + "hello":
        raise FramingError(f"expected <hello>, got {etree.QName(root).localname!r}")
    if root.find(_BASE + "session-id") is not None:
        raise FramingError("a client hello must not carry a session-id")
    caps = frozenset(
        (c.text or "").strip() for c in root.iterfind(f"{_BASE}capabilities/{_BASE}capability")
    )
    if BASE_1_0 not in caps and BASE_1_1 not in caps:
        raise FramingError("client supports neither base:1.0 nor base:1.1")
    return caps


def build_rpc_reply(rpc: etree._Element | None,
                    content: list[etree._Element] | SerialisedData | None) -> bytes:
    """``<rpc-reply>`` carrying every attribute of the ``<rpc>`` (RFC 6241 §4.2) and the
    given content (``<data>``, ``<ok/>`` or ``<rpc-error>`` elements, or a serialised
    ``<data>`` spliced in as it is); None is ``<ok/>``, spliced in without building it."""
    if content is None or isinstance(content, SerialisedData):
        envelope = _plain_envelope(rpc) or etree.tostring(
            _reply_element(rpc), xml_declaration=True, encoding="UTF-8")
        # an empty element ends in "/>"; the base namespace is the default one (no prefix)
        return b"%s>%s</rpc-reply>" % (envelope[:-2], _OK if content is None else content.xml)
    reply = _reply_element(rpc)
    for elem in content:
        reply.append(elem)
    return etree.tostring(reply, xml_declaration=True, encoding="UTF-8")


def _reply_element(rpc: etree._Element | None) -> etree._Element:
    """An empty ``<rpc-reply>`` with the ``<rpc>``'s attributes and prefixed namespaces."""
    nsmap = {None: NETCONF_BASE_NS}
    if rpc is not None:
        nsmap.update({k: v for k, v in rpc.nsmap.items() if k is not None})
    reply = etree.Element(_BASE + "rpc-reply", nsmap=nsmap)
    if rpc is not None:
        for name, value in rpc.attrib.items():
            reply.set(name, value)
    return reply


_REPLY_HEAD = ("<?xml version='1.0' encoding='UTF-8'?>\n"
               f'<rpc-reply xmlns="{NETCONF_BASE_NS}"')
_ATTRIBUTE_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;",
                                    "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"})


def _plain_envelope(rpc: etree._Element | None) -> bytes | None:
    """What :func:`_reply_element` serialises to, written directly, for the usual
    ``<rpc>``: no prefixed namespace declaration and only unqualified attributes (such as
    ``message-id``); None for any other (then lxml builds it). Values are escaped as lxml
    escapes them."""
    if rpc is None:
        return (_REPLY_HEAD + "/>").encode()
    if any(prefix is not None for prefix in rpc.nsmap):
        return None
    parts = [_REPLY_HEAD]
    for name, value in rpc.attrib.items():
        if name[:1] == "{":
            return None
        parts.append(f' {name}="{value.translate(_ATTRIBUTE_ESCAPES)}"')
    parts.append("/>")
    return "".join(parts).encode()


#: ``<ok/>`` in the default namespace of the ``<rpc-reply>`` around it (the base one)
_OK = b"<ok/>"


def ok_element() -> etree._Element:
    return etree.Element(_BASE + "ok", nsmap={None: NETCONF_BASE_NS})


def error_reply(rpc: etree._Element | None, error: RpcError) -> bytes:
    """``<rpc-reply>`` with one ``<rpc-error>``, or several when the error carries a list
    (``continue-on-error`` edits: ``to_xml_list()``)."""
    to_list = getattr(error, "to_xml_list", None)
    return build_rpc_reply(rpc, to_list() if callable(to_list) else [error.to_xml()])


def _reply_target(root: etree._Element | None) -> etree._Element | None:
    """The ``<rpc>`` whose attributes a reply carries; None when the message was none."""
    return root if root is not None and root.tag == _BASE + "rpc" else None


def _operation_name(rpc: etree._Element | None) -> str:
    """Local name of an <rpc>'s operation (``unknown`` for an unreadable request)."""
    if rpc is None:
        return "unknown"
    for child in rpc:
        if isinstance(child.tag, str):
            return etree.QName(child).localname
    return "unknown"


class NetconfSession:
    """Protocol state of one session. Not thread-safe: driven from the agent's event loop."""

    def __init__(
        self,
        session_id: int,
        username: str,
        server: ServerState,
        capabilities: tuple[str, ...],
        write: Callable[[bytes], None],
        close: Callable[[], None],
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        *,
        may_write: bool = True,
    ) -> None:
        self.session_id = session_id
        self.username = username
        self.may_write = may_write
        self._server = server
        self._capabilities = capabilities
        self._write = write
        self._close = close
        self._max_message_size = max_message_size
        self._decoder: Decoder = EndOfMessageDecoder(max_message_size)
        self.framing = Framing.END_OF_MESSAGE
        self.state = SessionState.AWAITING_HELLO

    @property
    def awaiting_hello(self) -> bool:
        return self.state is SessionState.AWAITING_HELLO

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Register with the server and send the server hello."""
        self._server.sessions[self.session_id] = self
        self._write(encode_message(build_hello(self._capabilities, self.session_id),
                                   Framing.END_OF_MESSAGE))

    def kill(self) -> None:
        """End this session at once (kill-session from another session, or shutdown)."""
        if self.state is SessionState.CLOSED:
            return
        log.info("session %d ended", self.session_id)
        self._end()
        self._close()

    def connection_lost(self) -> None:
        """The transport went away: release locks and subscriptions."""
        self._end()

    def _end(self) -> None:
        if self.state is SessionState.CLOSED:
            return
        self.state = SessionState.CLOSED
        # drop buffered input now (up to max_message_size): the session object itself may
        # live on in a reference cycle with its channel until the next full GC
        self._decoder = make_decoder(self.framing, self._max_message_size)
        if self._server.sessions.get(self.session_id) is self:
            self._server.end_session(self.session_id)

    # ------------------------------------------------------------------ input

    def data_received(self, data: bytes) -> None:
        """Feed received bytes and answer every complete request before returning."""
        for message in self.feed(data):
            self.handle(message)
            if self.state is SessionState.CLOSED:
                return

    def feed(self, data: bytes) -> list[bytes]:
        """Decode received bytes: the hello is processed here (it decides the framing of what
        follows); the complete requests are returned for :meth:`handle`, in order. Bad
        framing or an invalid hello ends the session (and returns nothing)."""
        if self.state is SessionState.CLOSED:
            return []
        try:
            if self.state is SessionState.AWAITING_HELLO:
                assert isinstance(self._decoder, EndOfMessageDecoder)
                hello = self._decoder.feed(data, limit=1)
                if not hello:
                    return []
                self._receive_hello(hello[0])
                data = self._decoder.take_remainder()
                if self.framing is Framing.CHUNKED:
                    self._decoder = make_decoder(Framing.CHUNKED, self._max_message_size)
            return self._decoder.feed(data)
        except FramingError as exc:
            log.warning("session %d: closing: %s", self.session_id, exc)
            self.kill()
            return []

    def handle(self, message: bytes) -> None:
        """Answer one request (a decoded message) with its ``<rpc-reply>``."""
        if self.state is SessionState.ESTABLISHED:
            self._receive_rpc(message)

    def _receive_hello(self, message: bytes) -> None:
        try:
            root = parse_message(message)
        except RpcError as exc:
            raise FramingError(f"unreadable hello: {exc.message}") from None
        caps = parse_client_hello(root)
        if BASE_1_1 in caps and BASE_1_1 in self._capabilities:
            self.framing = Framing.CHUNKED
        self.state = SessionState.ESTABLISHED
        log.info("session %d (%s) established, %s framing", self.session_id, self.username,
                 self.framing)

    def _receive_rpc(self, message: bytes) -> None:
        rpc: etree._Element | None = None
        call = RpcCall(self.session_id, self._server, self.send_notification,
                       may_write=self.may_write, username=self.username)
        observer = self._server.rpc_observer
        started = time.perf_counter() if observer is not None else 0.0
        ok = False
        try:
            rpc = parse_message(message)
            content = self._dispatch(rpc, call)
            reply = build_rpc_reply(rpc, content)
            ok = True
        except RpcError as exc:
            reply = error_reply(_reply_target(rpc), exc)
        except QkdnError as exc:
            reply = error_reply(_reply_target(rpc), RpcError(ErrorTag.OPERATION_FAILED, str(exc)))
        except Exception:
            log.exception("session %d: operation failed", self.session_id)
            reply = error_reply(_reply_target(rpc),
                                RpcError(ErrorTag.OPERATION_FAILED, "internal error"))
        self.send(reply)
        if observer is not None:
            observer(_operation_name(rpc), time.perf_counter() - started, ok)
        if call.close_after_reply:
            self.kill()

    def _dispatch(self, rpc: etree._Element,
                  call: RpcCall) -> list[etree._Element] | SerialisedData | None:
        """The reply content of one ``<rpc>``; None for ``<ok/>``."""
        if rpc.tag != _BASE + "rpc":
            raise RpcError(
                ErrorTag.MALFORMED_MESSAGE if rpc.tag != _BASE + "hello" else ErrorTag.OPERATION_FAILED,
                f"expected <rpc>, got <{etree.QName(rpc).localname}>",
                type=ErrorType.RPC,
            )
        if not rpc.get("message-id"):
            raise RpcError(
                ErrorTag.MISSING_ATTRIBUTE, "<rpc> needs a message-id attribute",
                type=ErrorType.RPC, info={"bad-attribute": "message-id", "bad-element": "rpc"},
            )
        ops = [c for c in rpc if isinstance(c.tag, str)]
        if len(ops) != 1:
            raise RpcError(
                ErrorTag.MALFORMED_MESSAGE if ops else ErrorTag.MISSING_ELEMENT,
                "an <rpc> carries exactly one operation",
                type=ErrorType.RPC,
            )
        result = find_operation(ops[0], self._server.extra_operations)(ops[0], call)
        if result is None or isinstance(result, SerialisedData):
            return result
        return [result]

    # ------------------------------------------------------------------ output

    def send(self, message: bytes) -> None:
        """Frame and write one complete message."""
        if self.state is SessionState.CLOSED:
            return
        self._write(encode_message(message, self.framing, OUTPUT_CHUNK_SIZE))

    def send_notification(self, message: bytes) -> None:
        """Deliver one ``<notification>`` (called by the notification hub)."""
        self.send(message)
