"""NETCONF client sessions (ncclient) as qkdn's tools and controller open them.

ncclient's session thread (``Session.run``) polls: it waits ``TICK`` seconds (0.1 s) in
``select`` on the SSH channel, then looks at its send queue. A request therefore waited up to
100 ms before it was sent; lowering the tick to 1 ms made every idle session's thread wake
1,000 times a second (100 agents: a whole core of the controller spent on waking up).

:func:`install_event_driven_sessions` (done once by :func:`connect` and the controller's
south-bound) replaces that loop with an event-driven one: the session thread waits in
``select`` on the SSH channel *and* a wake-up pipe that ``send`` writes to, so a request goes
out at once and an idle session sleeps until the agent sends something (or ``IDLE_WAIT_S``,
a safety net). Framing, parsing, errors and closing are ncclient's, unchanged.

Once the session thread runs, ``send`` writes a request itself, from the calling thread
(framed, encrypted and written to the socket by paramiko there), under a per-session lock
that keeps messages whole and in order; it queues the request for the session thread only
when the channel cannot take data now (SSH window full) or earlier requests still wait in the
queue. A request then needs no thread hand-over at all: on a controller pushing a session to
six agents the session threads waited for the GIL while the pushing thread built the next
payloads, so the first agents got their requests only after the last one was built.

Received base:1.1 messages are unframed by :class:`qkd_agent.framing.ChunkedDecoder` (the
agent's own RFC 6242 decoder: one pass over each byte, strict chunk headers) instead of
ncclient's ``_parse11``, which decodes and re-matches the buffer for every chunk with a dozen
``logger.debug`` calls per read (a third or more of the controller's CPU per received
message under cProfile).
Dispatch to ncclient's listeners is unchanged; base:1.0 (the hellos) and SAX parsers stay
ncclient's.

These are paramiko sessions: :func:`connect` (operators' tools, the orchestrator's client,
benchmarks) stays on them. The controller's south-bound runs on libssh by default
(:mod:`qkdn.netconf_libssh`, which reuses :func:`frame_message` and :func:`receive`).
"""

from __future__ import annotations

import logging
import os
import selectors
import threading
from typing import Any

#: Seconds an idle session thread sleeps in select() at most (nothing depends on it: sends
#: wake the thread through its pipe, received data through the channel).
IDLE_WAIT_S = 1.0
#: Seconds between retries while the SSH channel's send window is full.
SEND_RETRY_S = 0.005
#: Largest message accepted from an agent (a ``get`` of a node holding thousands of
#: sessions is a few MB); beyond it the session is closed as a framing error.
MAX_RECEIVED_MESSAGE = 256 * 1024 * 1024

_installed = threading.Lock()
_WAKE = "qkdn-wake"


def frame_message(session: Any, message: str) -> bytes:
    """``message`` framed for ``session``: RFC 6242 chunked framing once base:1.1 was
    agreed, the end-of-message marker before (the hellos)."""
    from ncclient.transport.session import END_DELIM, MSG_DELIM, NetconfBase

    data = message.encode()
    if session._base == NetconfBase.BASE_11:
        return b"\n#%i\n%s%s" % (len(data), data, END_DELIM)
    return data + MSG_DELIM


def _wake_pipe(session: Any) -> tuple[int, int]:
    """The session's (read, write) wake-up pipe, made on first use (thread-safe)."""
    with _installed:
        pipe = getattr(session, "_qkdn_wake", None)
        if pipe is None:
            pipe = os.pipe()
            for fd in pipe:
                os.set_blocking(fd, False)
            session._qkdn_wake = pipe
    return pipe


def _close_pipe(session: Any) -> None:
    with _installed:
        pipe = getattr(session, "_qkdn_wake", None)
        session._qkdn_wake = None
    if pipe is not None:
        for fd in pipe:
            try:
                os.close(fd)
            except OSError:
                pass


def _send_lock(session: Any) -> threading.Lock:
    """The lock that keeps the session's outgoing messages whole and in order (made on first
    use, thread-safe)."""
    lock = getattr(session, "_qkdn_send_lock", None)
    if lock is None:
        with _installed:
            lock = getattr(session, "_qkdn_send_lock", None)
            if lock is None:
                lock = session._qkdn_send_lock = threading.Lock()
    return lock


def _write_message(session: Any, message: str | bytes) -> None:
    """Frame (unless ``message`` is framed bytes already) and write one whole message to the
    channel (the caller holds the send lock)."""
    from ncclient.transport.errors import SessionCloseError

    data = message if isinstance(message, bytes) else frame_message(session, message)
    while data:
        sent = session._transport_write(data)
        if sent <= 0:
            raise SessionCloseError(session._buffer.getvalue(), data)
        data = data[sent:]


def _send_window(session: Any) -> int:
    """Bytes the session's SSH channel may send now without waiting for a window adjust
    (0 when closed or unknown)."""
    channel = getattr(session, "_channel", None)
    if channel is None or channel.closed:
        return 0
    return int(getattr(channel, "out_window_size", 0))


def _event_driven_send(self: Any, message: str) -> None:
    """``Session.send``: write the message now from this thread when the channel takes it
    and nothing is queued before it; otherwise queue it and wake the session thread."""
    from ncclient.transport.errors import TransportError

    if not self.connected:
        raise TransportError("Not connected to NETCONF server")
    pipe = getattr(self, "_qkdn_wake", None)
    if pipe is not None:   # the session thread runs: the hello went out before anything else
        data = frame_message(self, message)
        with _send_lock(self):
            # only what the SSH window takes whole: a caller never blocks waiting for the
            # agent to open its window (the session thread does, as before)
            if self._q.empty() and len(data) <= _send_window(self):
                try:
                    _write_message(self, data)
                except TransportError:
                    raise
                except Exception as exc:  # a socket or SSH failure, as ncclient reports it
                    raise TransportError(f"sending failed: {exc}") from exc
                return
    self._q.put(message)
    if pipe is not None:
        try:
            os.write(pipe[1], b"\0")
        except (BlockingIOError, OSError):   # pipe full (already woken) or closed
            pass


def receive(session: Any, data: bytes) -> None:
    """Hand bytes read from the channel to ``session``'s framing: base:1.1 messages are
    unframed here and dispatched to its listeners; anything else goes to ncclient's parser.
    Framing errors raise (the session thread then reports them and closes the session)."""
    import ncclient.transport.parser as parser_module
    from ncclient.transport.session import NetconfBase

    if session._base == NetconfBase.BASE_11 and \
            type(session.parser) is parser_module.DefaultXMLParser:
        decoder = getattr(session, "_qkdn_chunks", None)
        if decoder is None:
            from qkd_agent.framing import ChunkedDecoder

            decoder = session._qkdn_chunks = ChunkedDecoder(MAX_RECEIVED_MESSAGE)
            # bytes that came after the server's hello, left in ncclient's buffer
            data = session._buffer.getvalue() + data
            session._buffer = type(session._buffer)()
        for message in decoder.feed(data):
            session._dispatch_message(message.decode("utf-8"))
        return
    try:
        session.parser.parse(data)
    except parser_module.SAXFilterXMLNotFoundError:
        session.parser = parser_module.DefaultXMLParser(session)
        session.parser.parse(data)


def _event_driven_run(self: Any) -> None:
    """``Session.run`` without polling: select on the channel and the wake-up pipe."""
    from ncclient.transport.errors import SessionCloseError

    queue = self._q
    send_lock = _send_lock(self)
    wake_read, _ = _wake_pipe(self)
    try:
        selector = selectors.DefaultSelector()
        self._transport_register(selector, selectors.EVENT_READ)
        selector.register(wake_read, selectors.EVENT_READ, _WAKE)
        while True:
            blocked = False
            while not queue.empty():
                if not self._send_ready():
                    blocked = True
                    break
                with send_lock:
                    _write_message(self, queue.get())
            events = selector.select(timeout=SEND_RETRY_S if blocked else IDLE_WAIT_S)
            channel_ready = False
            for key, _ in events:
                if key.data == _WAKE:
                    try:
                        while os.read(wake_read, 4096):
                            pass
                    except BlockingIOError:
                        pass
                else:
                    channel_ready = True
            if not channel_ready:
                continue
            data = self._transport_read()
            if data:
                receive(self, data)
            elif self._closing.is_set():
                break  # end of session, expected
            else:
                raise SessionCloseError(self._buffer.getvalue())
    except Exception as exc:  # noqa: BLE001 - ncclient's contract: report, then close
        self.logger.debug("Broke out of main loop, error=%r", exc)
        self._dispatch_error(exc)
        self.close()
    finally:
        _close_pipe(self)


def install_event_driven_sessions() -> None:
    """Make every ncclient session in this process event-driven (idempotent)."""
    from ncclient.transport import session

    if getattr(session.Session, "_qkdn_event_driven", False):
        return
    session.Session.run = _event_driven_run
    session.Session.send = _event_driven_send
    session.Session._qkdn_event_driven = True


def connect(host: str, port: int, username: str, password: str, *,
            timeout: float = 10.0) -> Any:
    """An ncclient Manager for an agent (host keys of loopback agents are not verified)."""
    from ncclient import manager

    install_event_driven_sessions()
    logging.getLogger("ncclient").setLevel(logging.WARNING)
    return manager.connect(host=host, port=port, username=username, password=password,
                           hostkey_verify=False, allow_agent=False, look_for_keys=False,
                           timeout=timeout)
