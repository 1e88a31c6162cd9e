"""An ncclient NETCONF session over libssh (the ``ssh-python`` package) instead of paramiko.

paramiko does the SSH transport in Python: every packet is framed, padded, window-counted
and handed between its transport thread and the reader through a ``BufferedPipe`` in
interpreted code, in a second thread per session. libssh does the same in C (with OpenSSL's
AES-GCM), and ``ssh-python`` releases the GIL in every call: the controller's CPU per
edit-config round trip fell from ~0.41-0.50 ms to ~0.30 ms, 100 idle sessions cost ~0 CPU
instead of ~50 ms a second, and they open in 1.1 s instead of 13.8 s
(docs/benchmarks.md, "Controller transport, session 7").

ncclient 0.7 ships a libssh transport (``LibSSHSession``, ``manager.connect(use_libssh=
True)``), but it is unfit here: its receiver thread sits in a *blocking* ``channel.read()``
while other threads ``channel.write()`` on the same libssh session, and libssh sessions are
not thread-safe (its documentation: one thread at a time per session and its channels; a
read that handles a window adjust or a rekey writes to the same output buffer and cipher
state a concurrent write uses). It also copies every received byte through a socket pair to
the session thread.

``LibsshSession`` (:func:`session_class`) keeps ncclient's ``Session`` (framing of the
hello, listeners, RPC machinery, notifications) and replaces the transport: after the handshake the libssh
session is non-blocking, **every libssh call holds one lock per session**, and a single
thread per session waits in ``select`` on the TCP socket and a wake-up pipe (no polling: an
idle session sleeps), reads whatever libssh has decrypted, and writes what a caller could
not write at once. Like :mod:`qkdn.netconf_client`'s event-driven paramiko sessions, a
request is written by the calling thread itself when nothing is queued before it and the
channel's window takes it whole; otherwise it is queued for the session thread, which
writes as the agent's window opens (a window adjust arrives as readable data: the thread
wakes for it, it never spins). Received base:1.1 messages are unframed by
:func:`qkdn.netconf_client.receive` (the agent's own chunk decoder).

Host keys: verified against a pinned key (``hostkey_b64``, the base64 of the agent's public
key as ``ssh-keygen``/``known_hosts`` print it) when one is given; not verified otherwise,
as the controller's paramiko sessions to loopback agents never were.
"""

from __future__ import annotations

import logging
import os
import selectors
import socket
import threading
from io import BytesIO
from typing import Any

log = logging.getLogger(__name__)

#: SSH ciphers offered, in order: AES-GCM authenticates inside the cipher (OpenSSL, on both
#: ends; the agents' asyncssh uses ``cryptography``'s AES-GCM too)
CIPHERS = ("aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,"
           "aes128-ctr,aes256-ctr")
#: bytes asked from libssh per read (ssh-python allocates this much per call)
READ_SIZE = 64 * 1024
#: ``ssh_blocking_flush`` with this timeout (ms) flushes what the socket takes now and
#: answers whether output is left (libssh's poll flags always show a write pending)
_FLUSH_NOW_MS = 0
#: seconds an idle session thread sleeps in ``select`` at most: a safety net only (a send
#: wakes it through its pipe, the agent's data and window adjusts through the socket, a
#: close through the pipe); 100 idle sessions wake 10 times a second in all
IDLE_WAIT_S = 10.0
#: seconds before a write libssh would not take (during a key exchange) is tried again
STALLED_RETRY_S = 0.005
_WAKE = "qkdn-wake"


def available() -> bool:
    """Whether ``ssh-python`` (libssh) can be imported in this process."""
    try:
        import ssh.session  # noqa: F401
    except ImportError:
        return False
    return True


_SESSION_CLASS: type | None = None
_class_lock = threading.Lock()


def session_class() -> type:
    """The ``LibsshSession`` class: an ncclient ``Session`` over libssh, built on first use
    (ncclient and ``ssh-python`` are imported then, so that :func:`available` works
    without them)."""
    global _SESSION_CLASS
    with _class_lock:
        if _SESSION_CLASS is None:
            _SESSION_CLASS = _build_session_class()
        return _SESSION_CLASS


def _build_session_class() -> type:
    from ncclient.capabilities import Capabilities
    from ncclient.transport import session as session_module
    from ncclient.transport.errors import (
        AuthenticationError,
        SessionCloseError,
        SSHError,
        SSHUnknownHostError,
        TransportError,
    )
    from ncclient.transport.parser import DefaultXMLParser
    from ncclient.transport.session import Session
    from ssh.exceptions import AuthenticationDenied
    from ssh.exceptions import SSHError as LibsshError
    from ssh.options import CIPHERS_C_S, CIPHERS_S_C, HOST, TIMEOUT, USER
    from ssh.session import Session as Libssh

    from qkdn.netconf_client import frame_message, receive

    class LibsshSession(Session):
        """ncclient ``Session`` over a non-blocking libssh session (see the module)."""

        def __init__(self, device_handler: Any) -> None:
            Session.__init__(self, Capabilities(device_handler.get_capabilities()))
            self._device_handler = device_handler
            self._host: str | None = None
            #: the TCP socket's descriptor, owned by libssh once it connected (closed
            #: when the libssh session is freed): never closed from Python after that
            self._fd = -1
            self._libssh: Any = None
            self._channel: Any = None
            self._buffer = BytesIO()
            self._closing = threading.Event()
            self.parser = DefaultXMLParser(self)
            #: held around every libssh call on this session (libssh is not thread-safe)
            self._io_lock = threading.Lock()
            self._wake_r = self._wake_w = -1   # the wake-up pipe, made at connect
            #: the rest of a message partly written (the window or libssh took only part):
            #: nothing else may be written before it (I/O lock)
            self._unsent = b""
            self._thread_started = False

        # --- connection ---------------------------------------------------------------------
        def connect(self, host: str, port: int = 830, username: str | None = None,
                    password: str | None = None, *, timeout: float | None = None,
                    hostkey_b64: str | None = None, ciphers: str = CIPHERS,
                    **ignored: Any) -> None:
            """Open TCP, the SSH handshake (password authentication), the ``netconf``
            subsystem and the NETCONF hello. Raises ncclient's ``SSHError``,
            ``AuthenticationError`` or ``SSHUnknownHostError``."""
            try:
                sock = socket.create_connection((host, port), timeout=timeout)
            except OSError as exc:
                raise SSHError(f"Could not open socket to {host}:{port}: {exc}") from exc
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            libssh = Libssh()
            try:
                libssh.options_set(HOST, host)
                libssh.options_set(USER, username or "")
                libssh.options_set_port(port)
                libssh.options_set(CIPHERS_C_S, ciphers)
                libssh.options_set(CIPHERS_S_C, ciphers)
                if timeout is not None:
                    libssh.options_set_int_val(TIMEOUT, max(1, int(timeout + 0.999)))
                libssh.set_socket(sock)
            except LibsshError as exc:
                sock.close()
                raise SSHError(f"SSH options for {host}:{port} refused: {exc}") from exc
            # libssh takes the descriptor over at connect (and closes it when freed): the
            # Python object lets go of it, so that nothing closes it twice (a second close
            # could hit a descriptor another thread has opened under the same number)
            self._fd = sock.detach()
            try:
                libssh.connect()
                if hostkey_b64 is not None:
                    offered = libssh.get_server_publickey().export_pubkey_base64().decode()
                    if offered != hostkey_b64:
                        raise SSHUnknownHostError(host, offered)
                try:
                    libssh.userauth_password(username or "", password or "")
                except AuthenticationDenied as exc:
                    raise AuthenticationError(
                        f"Authentication failed for user {username} on {host}:{port}") from exc
                channel = libssh.channel_new()
                channel.open_session()
                channel.request_subsystem("netconf")
            except (SSHError, AuthenticationError, LibsshError) as exc:
                # the descriptor closes when the libssh session is freed: this frame (kept
                # alive by the traceback) must not hold it
                self._fd = -1
                libssh = channel = None
                if isinstance(exc, LibsshError):
                    raise SSHError(f"SSH to {host}:{port} failed: {type(exc).__name__}: "
                                   f"{exc}") from exc
                raise
            libssh.set_blocking(0)   # from here on, every call returns at once
            self._libssh, self._channel, self._host = libssh, channel, host
            self._wake_r, self._wake_w = os.pipe()
            os.set_blocking(self._wake_r, False)
            os.set_blocking(self._wake_w, False)
            self._connected = True
            self._post_connect(timeout or 60)

        # --- ncclient's transport hooks (used by Session's own helpers) ---------------------
        def _send_ready(self) -> bool:
            return self._channel is not None and self._connected

        def _transport_register(self, selector: Any, event: int) -> None:
            selector.register(self._fd, event)

        # --- sending ------------------------------------------------------------------------
        def send(self, message: str) -> None:
            """Write ``message`` now from this thread when nothing is queued and the
            channel's window takes it whole; else queue it for the session thread."""
            if not self._connected:
                raise TransportError("Not connected to NETCONF server")
            if self._thread_started:   # the hello went out before anything else
                data = frame_message(self, message)
                with self._io_lock:
                    if not self._unsent and self._q.empty() and self._write_now(data):
                        return
            self._q.put(message)
            self._wake()

        def _write_now(self, data: bytes) -> bool:
            """Write ``data`` if the channel's window takes it whole (True), else nothing
            (False: the caller queues it). Should libssh take only part of it, the rest is
            kept for the session thread, which writes it before anything else. The caller
            holds the I/O lock."""
            channel = self._channel
            if channel is None:
                raise TransportError("session closed")
            try:
                if len(data) > channel.window_size():
                    return False
                _, written = channel.write(data)
                pending = self._output_pending()
            except LibsshError as exc:
                # no frame of a kept traceback may hold the channel (and so the socket)
                channel = None
                raise TransportError(f"sending failed: {type(exc).__name__}: {exc}") from exc
            if written < len(data):
                self._unsent = data[written:]
            if pending or self._unsent:   # the session thread flushes / goes on with it
                self._wake()
            return True

        def _output_pending(self) -> bool:
            """Whether libssh still holds output the socket did not take (I/O lock held)."""
            return self._libssh.blocking_flush(_FLUSH_NOW_MS) != 0

        def _wake(self) -> None:
            if self._wake_w < 0:
                return
            try:
                os.write(self._wake_w, b"\0")
            except OSError:   # full (already woken) or closed
                pass

        # --- the session thread -------------------------------------------------------------
        def run(self) -> None:
            self._thread_started = True
            sock = self._fd
            selector = selectors.DefaultSelector()
            try:
                selector.register(sock, selectors.EVENT_READ)
                selector.register(self._wake_r, selectors.EVENT_READ, _WAKE)
                watching_write = False
                while True:
                    stalled = False
                    with self._io_lock:
                        if self._unsent or not self._q.empty():
                            stalled = not self._send_queued()
                        data, eof = self._read_some()
                        flush = self._channel is not None and self._output_pending()
                    while data:   # listeners run without the lock (they may send)
                        receive(self, data)
                        if len(data) < READ_SIZE:
                            break   # libssh holds no more: the socket tells when there is
                        with self._io_lock:
                            data, eof = self._read_some()
                    if eof:
                        if self._closing.is_set():
                            break
                        log.info("libssh session to %s: the agent closed the channel",
                                 self._host)
                        raise SessionCloseError(self._buffer.getvalue())
                    with self._io_lock:   # reads may have brought a window adjust
                        can_send = not stalled and bool(self._unsent or not self._q.empty()) \
                            and self._channel is not None and self._channel.window_size() > 0
                    if can_send:
                        continue
                    if flush != watching_write:   # output libssh could not write yet
                        watching_write = flush
                        selector.modify(sock, selectors.EVENT_READ | (
                            selectors.EVENT_WRITE if flush else 0))
                    if self._closing.is_set():   # set before its wake-up was drained
                        break
                    for key, _ in selector.select(STALLED_RETRY_S if stalled else IDLE_WAIT_S):
                        if key.data == _WAKE:
                            try:
                                while os.read(self._wake_r, 4096):
                                    pass
                            except BlockingIOError:
                                pass
            except Exception as exc:  # noqa: BLE001 - ncclient's contract: report, then close
                if not self._closing.is_set():
                    log.debug("libssh session to %s ended: %r", self._host, exc)
                    self._dispatch_error(exc)
                self.close()
            finally:
                selector.close()

        def _send_queued(self) -> bool:
            """Write the rest of a message begun, then queued messages, as far as the
            window goes (I/O lock held); what does not fit stays in ``_unsent``. False if
            libssh took less than the window allowed (it waits for the agent: a key
            exchange), True otherwise."""
            channel = self._channel
            if channel is None:
                return True
            while True:
                if not self._unsent:
                    if self._q.empty():
                        return True
                    self._unsent = frame_message(self, self._q.get())
                window = channel.window_size()
                if window <= 0:
                    return True   # a window adjust will come as readable data
                part = self._unsent[:window]
                try:
                    _, written = channel.write(part)
                except LibsshError as exc:
                    channel = None
                    raise TransportError(f"sending failed: {exc}") from exc
                self._unsent = self._unsent[written:]
                if written < len(part):
                    return False

        def _read_some(self) -> tuple[bytes, bool]:
            """What libssh has for the channel now (up to :data:`READ_SIZE` bytes), and
            whether the channel is at its end (I/O lock held)."""
            channel = self._channel
            if channel is None:
                return b"", True
            try:
                _, data = channel.read_nonblocking(READ_SIZE)
            except LibsshError as exc:
                channel = None
                if not self._closing.is_set():
                    log.warning("libssh session to %s: read failed: %s: %s", self._host,
                                type(exc).__name__, exc)
                raise SessionCloseError(self._buffer.getvalue()) from exc
            if data:
                return data, False
            return data, channel.is_eof() or channel.is_closed()

        # --- dispatch --------------------------------------------------------------------
        def _dispatch_message(self, raw: str) -> None:
            """ncclient's dispatch without its three debug log calls per message (each a
            logger lookup even when debug is off); a message whose root cannot be read goes
            to ncclient's own dispatch, which reports it as before."""
            try:
                root = session_module.parse_root(raw)
            except Exception:  # noqa: BLE001 - ncclient's path decides (device handler)
                Session._dispatch_message(self, raw)
                return
            with self._lock:
                listeners = list(self._listeners)
            for listener in listeners:
                listener.callback(root, raw)   # fail loudly, as ncclient does

        # --- closing ------------------------------------------------------------------------
        def close(self) -> None:
            self._closing.set()
            self._wake()
            with self._io_lock:
                channel, libssh = self._channel, self._libssh
                self._channel = self._libssh = None   # freed: libssh closes the socket
                if channel is not None:
                    try:
                        channel.close()
                        libssh.disconnect()
                    except LibsshError as exc:
                        log.debug("closing libssh session to %s: %r", self._host, exc)
                del channel, libssh
            if self.is_alive() and self is not threading.current_thread():
                self.join(5.0)
            for fd in (self._wake_r, self._wake_w):
                if fd >= 0:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
            self._wake_r = self._wake_w = -1
            self._connected = False

        @property
        def host(self) -> str | None:
            return self._host if self._connected else None

    return LibsshSession


def connect(host: str, port: int, username: str, password: str, *, timeout: float = 10.0,
            hostkey_b64: str | None = None, manager_params: dict | None = None) -> Any:
    """An ncclient ``Manager`` over a ``LibsshSession`` (host key verified only
    against ``hostkey_b64`` when given)."""
    from ncclient import manager

    device_handler = manager.make_device_handler({}, None)
    session = session_class()(device_handler)
    try:
        session.connect(host, port, username, password, timeout=timeout,
                        hostkey_b64=hostkey_b64)
    except BaseException:
        session.close()
        raise
    return manager.Manager(session, device_handler, **(manager_params or {}))
