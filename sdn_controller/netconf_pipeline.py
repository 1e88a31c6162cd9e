"""Pipelined edit-configs over an open ncclient session: send now, wait for the reply later.

ncclient's ``Manager.edit_config`` blocks its caller until the reply is in, so configuring the
KMs of a path in parallel took a thread per KM, and every call paid for ncclient's generic
request machinery: an RPC object, a ``uuid4`` message-id, the payload parsed back into an
element tree, the whole ``<rpc>`` built as elements and serialised, and the reply parsed twice.
Here the caller serialises each payload once, frames the ``<rpc>`` around it as text and hands
it to the session's send queue (ncclient's own session thread writes it, so messages of one
session never interleave), registering a :class:`PendingEdit` with ncclient's reply listener of
that session under its message-id. All RPCs of a push go out before the caller waits on any
reply: the KMs of a path, or several RPCs to one agent, are in flight together (RFC 6241
pipelining) without one thread per RPC.

The pure part (:func:`edit_config_rpc`, :func:`reply_error`) builds the request and reads the
reply; :func:`send_edit_config` is the thin shell over ncclient.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Callable
from typing import Any
from xml.sax.saxutils import quoteattr

from lxml import etree

from qkdn.namespaces import NETCONF_BASE_NS
from sdn_controller.errors import PushError
from sdn_controller.message_root import plain_start

_NC = f"{{{NETCONF_BASE_NS}}}"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=True)
#: message-ids of this process's pipelined RPCs (distinct from ncclient's ``urn:uuid:``)
_MESSAGE_IDS = itertools.count(1)

#: ``observer(seconds, ok)`` once the reply of an RPC is in (or it failed)
ReplyObserver = Callable[[float, bool], None]


def next_message_id() -> str:
    return f"qkdn-{next(_MESSAGE_IDS)}"


def edit_config_rpc(message_id: str, config: etree._Element | str, *,
                    target: str = "running") -> str:
    """The ``<rpc>`` of an edit-config of ``config`` (an RFC 6241 ``<config>`` element, or its
    serialisation) on datastore ``target``, as text ready for the session's framing.

    >>> rpc = edit_config_rpc("7", '<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"/>')
    >>> rpc.split(">", 1)[0] + ">"
    '<rpc xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="7">'
    >>> rpc.split(">", 1)[1]
    '<edit-config><target><running/></target><config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"/></edit-config></rpc>'
    """
    if target not in ("running", "candidate", "startup"):
        raise ValueError(f"unknown datastore {target!r}")
    if isinstance(config, str):
        body = config
    else:
        if config.tag != f"{_NC}config":
            raise ValueError("an edit-config payload must be rooted in <config>")
        body = etree.tostring(config, encoding="unicode")
    return (f'<rpc xmlns="{NETCONF_BASE_NS}" message-id={quoteattr(message_id)}>'
            f"<edit-config><target><{target}/></target>{body}</edit-config></rpc>")


#: what follows the start tag of an ``<rpc-reply>`` that is nothing but ``<ok/>``: what an
#: agent answers to every successful edit-config
_OK_BODY = re.compile(r"\s*<ok\s*/>\s*</rpc-reply>\s*")
_RPC_REPLY_TAG = f"{{{NETCONF_BASE_NS}}}rpc-reply"


def _plain_ok(raw: str) -> bool:
    """Whether ``raw`` is a well-formed ``<rpc-reply>`` holding only ``<ok/>`` in the usual
    shape (its start tag read by :func:`sdn_controller.message_root.plain_start`, the rest
    by a regular expression; False for any other shape, which is then parsed)."""
    start = plain_start(raw)
    return (start is not None and start.tag == _RPC_REPLY_TAG
            and not raw.endswith("/>", 0, start.end)          # not an empty <rpc-reply/>
            and _OK_BODY.fullmatch(raw, start.end) is not None)


def reply_error(raw: str | bytes) -> str | None:
    """None if an ``<rpc-reply>`` is ``<ok/>``; otherwise its error as ``tag: message`` (the
    first ``<rpc-error>``, of any severity, as ncclient's default raise mode treats them; or
    a description of what the reply is instead).

    >>> reply_error('<rpc-reply xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" '
    ...             'message-id="1"><ok/></rpc-reply>') is None
    True
    """
    if isinstance(raw, str) and _plain_ok(raw):   # the usual answer, without a parse
        return None
    try:
        root = etree.fromstring(raw.encode() if isinstance(raw, str) else raw, _PARSER)
    except etree.XMLSyntaxError as exc:
        return f"malformed rpc-reply: {exc}"
    if root.tag != f"{_NC}rpc-reply":
        return f"not an rpc-reply: {root.tag}"
    if root.find(f"{_NC}ok") is not None:
        return None
    error = root.find(f"{_NC}rpc-error")
    if error is None:
        return "rpc-reply without <ok/>"
    tag = error.findtext(f"{_NC}error-tag") or "rpc-error"
    message = error.findtext(f"{_NC}error-message")
    return f"{tag}: {message}" if message else tag


class PendingEdit:
    """One edit-config in flight. ncclient's reply listener calls :meth:`deliver_reply` or
    :meth:`deliver_error` from the session's thread; :meth:`wait` blocks for the outcome."""

    def __init__(self, node_id: str, message_id: str,
                 observer: ReplyObserver | None = None, *, timeout_s: float = 10.0) -> None:
        self.node_id = node_id
        self.message_id = message_id
        self.timeout_s = timeout_s
        self._observer = observer
        #: held until the outcome is in (a bare lock: ~4x cheaper than an Event to make,
        #: set and wait on, and there is exactly one waiter)
        self._done = threading.Lock()
        self._done.acquire()
        self._finished = False
        self._raw: str | None = None
        self._error: BaseException | None = None
        self._sent_at = time.perf_counter()
        self._seconds = 0.0

    # --- called by ncclient's RPCReplyListener (session thread) -----------------------------
    def deliver_reply(self, raw: str) -> None:
        self._raw = raw
        self._finish()

    def deliver_error(self, err: BaseException) -> None:
        self._error = err
        self._finish()

    def _finish(self) -> None:
        if self._finished:   # the first outcome counts (a reply racing a lost session)
            return
        self._finished = True
        self._seconds = time.perf_counter() - self._sent_at
        try:
            self._done.release()
        except RuntimeError:   # two outcomes raced past the check: released once already
            pass

    # --- caller -------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self._finished

    def wait(self, timeout: float | None = None) -> None:
        """Return once the agent answered ``<ok/>``; raise :class:`PushError` with the
        agent's error, a lost session or no reply within ``timeout`` seconds (default: the
        session's RPC timeout given at send)."""
        timeout = self.timeout_s if timeout is None else timeout
        if not self._finished:
            if not self._done.acquire(timeout=max(0.0, timeout)):
                self._observe(False, timeout)
                raise PushError(self.node_id, f"no reply to edit-config within {timeout:g} s")
            self._done.release()   # done for good: a second wait() returns at once
        if self._error is not None:
            self._observe(False)
            raise PushError(self.node_id, f"session lost: {self._error}") from self._error
        assert self._raw is not None
        error = reply_error(self._raw)
        self._observe(error is None)
        if error is not None:
            raise PushError(self.node_id, error)

    def _observe(self, ok: bool, seconds: float | None = None) -> None:
        observer, self._observer = self._observer, None   # once per RPC
        if observer is not None:
            observer(self._seconds if seconds is None else seconds, ok)


def send_edit_config(session: Any, node_id: str, config: etree._Element | str, *,
                     observer: ReplyObserver | None = None,
                     timeout_s: float = 10.0) -> PendingEdit:
    """Queue an edit-config of ``config`` on ``running`` in an open ncclient ``session``
    (``Manager._session``) and return at once; the reply is matched by message-id through the
    session's ``RPCReplyListener`` (registered by the session's first RPC, the subscription).
    Raises :class:`PushError` if the session is closed."""
    from ncclient.operations.rpc import RPCReplyListener
    from ncclient.transport import TransportError

    listener = session.get_listener_instance(RPCReplyListener)
    if listener is None:
        raise PushError(node_id, "NETCONF session has no reply listener yet")
    message_id = next_message_id()
    request = edit_config_rpc(message_id, config)
    pending = PendingEdit(node_id, message_id, observer, timeout_s=timeout_s)
    listener.register(message_id, pending)
    try:
        session.send(request)
    except (TransportError, OSError) as exc:
        pending.deliver_error(exc)
    return pending
