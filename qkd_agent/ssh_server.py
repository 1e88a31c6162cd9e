"""SSH transport of the agent (RFC 6242): asyncssh glue only.

An SSH connection authenticates with one of the agent's users (password, or public key for the
main user), then
opens a session channel and requests the ``netconf`` subsystem; shells, commands, port
forwarding and every other subsystem are refused. Bytes received on the channel go to a
:class:`~qkd_agent.session.NetconfSession`; the session writes through the channel.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import socket
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import asyncssh
from asyncssh.constants import MSG_IGNORE
from asyncssh.logging import SSHLogger

log = logging.getLogger(__name__)

NETCONF_SUBSYSTEM = "netconf"
#: A client that does not read its replies/notifications is dropped beyond this backlog.
MAX_OUTPUT_BACKLOG = 64 * 1024 * 1024
#: Reading from a client pauses while this many of its requests wait to be answered.
MAX_PENDING_REQUESTS = 16
_TCP_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux only


class ByteSession(Protocol):
    """What the glue drives: the protocol session of one channel."""

    def start(self) -> None: ...

    def feed(self, data: bytes) -> list[bytes]: ...

    def handle(self, message: bytes) -> None: ...

    def connection_lost(self) -> None: ...

    def kill(self) -> None: ...

    @property
    def awaiting_hello(self) -> bool: ...


#: Builds the protocol session for an authenticated user, given ``write`` and ``close``;
#: None refuses the session.
SessionFactory = Callable[[str, Callable[[bytes], None], Callable[[], None]], ByteSession | None]


def load_or_create_host_key(path: Path | None) -> asyncssh.SSHKey:
    """The server's host key: read from ``path``, or generated (Ed25519) and written there
    with mode 0600 if the file does not exist yet; in memory only when ``path`` is None."""
    if path is not None and Path(path).exists():
        return asyncssh.read_private_key(str(path))
    key = asyncssh.generate_private_key("ssh-ed25519")
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(key.export_private_key())
    return key


class _NetconfChannelSession(asyncssh.SSHServerSession):
    """One SSH session channel carrying the ``netconf`` subsystem."""

    def __init__(self, username: str, factory: SessionFactory, hello_timeout: float,
                 max_backlog: int = MAX_OUTPUT_BACKLOG) -> None:
        self._username = username
        self._max_backlog = max_backlog
        self._factory = factory
        self._hello_timeout = hello_timeout
        self._chan: asyncssh.SSHServerChannel | None = None
        self._session: ByteSession | None = None
        self._subsystem_ok = False
        self._hello_timer: asyncio.TimerHandle | None = None
        self._inbox: deque[bytes] = deque()
        self._eof = False  #: the client sent EOF; close once the queued requests are answered
        self._worker: asyncio.Task[None] | None = None
        self._paused = False
        self._socket: socket.socket | None = None  #: the connection's, for quick-ACK

    def connection_made(self, chan: asyncssh.SSHServerChannel) -> None:
        self._chan = chan
        quiet_packet_logging(chan)
        self._socket = chan.get_extra_info("socket")

    def pty_requested(self, *args: Any) -> bool:
        return False

    def shell_requested(self) -> bool:
        return False

    def exec_requested(self, command: str) -> bool:
        return False

    def subsystem_requested(self, subsystem: str) -> bool:
        self._subsystem_ok = subsystem == NETCONF_SUBSYSTEM
        return self._subsystem_ok

    def session_started(self) -> None:
        if not self._subsystem_ok:
            self._close()
            return
        self._session = self._factory(self._username, self._write, self._close)
        if self._session is None:  # the agent is at its session limit
            self._close()
            return
        self._session.start()
        self._hello_timer = asyncio.get_running_loop().call_later(
            self._hello_timeout, self._check_hello
        )

    def _check_hello(self) -> None:
        if self._session is not None and self._session.awaiting_hello:
            log.warning("no hello within %.0f s; closing", self._hello_timeout)
            self._session.kill()

    def _write(self, data: bytes) -> None:
        chan = self._chan
        if chan is None or chan.is_closing():
            return
        if chan.get_write_buffer_size() > self._max_backlog:
            log.warning("client does not read its messages; closing the session")
            if self._session is not None:
                self._session.kill()
            return
        chan.write(data)

    def _close(self) -> None:
        if self._chan is not None and not self._chan.is_closing():
            self._chan.close()

    def data_received(self, data: bytes, datatype: Any) -> None:
        if self._session is None:
            return
        try:
            self._inbox.extend(self._session.feed(data))
        except Exception:  # a bug must cost one session, never the agent
            log.exception("session failed; closing it")
            self._abort()
            return
        if len(self._inbox) >= MAX_PENDING_REQUESTS and self._chan is not None:
            self._chan.pause_reading()
            self._paused = True
        if len(self._inbox) == 1 and self._worker is None:
            # the usual case, one request and nothing queued: answer it now rather than
            # from a task on the next loop iteration (nothing to interleave with)
            self._answer_next()
            if self._eof and not self._inbox:
                self._close()
        elif self._inbox and self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._answer())

    def _answer_next(self) -> bool:
        """Answer the oldest queued request; False if the session failed (and was closed)."""
        assert self._session is not None
        message = self._inbox.popleft()
        try:
            self._session.handle(message)
        except Exception:  # a bug must cost one session, never the agent
            log.exception("session failed; closing it")
            self._abort()
            return False
        self._ack_promptly()
        if self._paused and len(self._inbox) < MAX_PENDING_REQUESTS // 2:
            self._paused = False
            if self._chan is not None:
                self._chan.resume_reading()
        return True

    async def _answer(self) -> None:
        """Answer queued requests in order, letting other sessions run between two requests
        (a client that pipelines many requests does not starve the others)."""
        try:
            while self._inbox and self._session is not None:
                if not self._answer_next():
                    return
                if self._inbox:
                    await asyncio.sleep(0)
        finally:
            self._worker = None
            if self._eof and not self._inbox:
                self._close()

    def _abort(self) -> None:
        self._inbox.clear()
        if self._session is not None:
            self._session.kill()
        self._close()

    def _ack_promptly(self) -> None:
        """Re-arm TCP quick-ACK after answering. Clients whose socket keeps Nagle on
        (paramiko, hence ncclient) hold their next request until the server ACKs their last
        small packet (an SSH window adjust); with Linux's delayed ACK that costs 40 ms per
        RPC. Quick-ACK mode lapses after each exchange, so it is set again every time."""
        if _TCP_QUICKACK is None or self._chan is None or self._socket is None:
            return
        try:
            self._socket.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)
        except OSError:
            pass

    def eof_received(self) -> bool:
        """The client sent EOF: close the channel, but only after answering what it sent
        before (``printf 'hello…rpc…' | ssh -s host netconf`` pipelines both, then EOF)."""
        self._eof = True
        return bool(self._inbox or self._worker is not None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._inbox.clear()
        if self._hello_timer is not None:
            self._hello_timer.cancel()
        if self._session is not None:
            self._session.connection_lost()
        self._chan = None


class _AgentSSHServer(asyncssh.SSHServer):
    """Authentication of the agent's users and creation of NETCONF channels."""

    def __init__(
        self,
        passwords: Mapping[str, str],
        key_user: str,
        authorized_keys: asyncssh.SSHAuthorizedKeys | None,
        factory: SessionFactory,
        hello_timeout: float,
        max_backlog: int = MAX_OUTPUT_BACKLOG,
    ) -> None:
        self._passwords = passwords
        self._max_backlog = max_backlog
        self._key_user = key_user
        self._authorized_keys = authorized_keys
        self._factory = factory
        self._hello_timeout = hello_timeout
        self._conn: asyncssh.SSHServerConnection | None = None
        self._user = ""

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        skip_cbc_countermeasure(conn)
        quiet_packet_logging(conn)

    def begin_auth(self, username: str) -> bool:
        self._user = username
        if self._conn is not None and self._authorized_keys is not None:
            # the authorized keys authenticate only the agent's main user
            self._conn.set_authorized_keys(
                self._authorized_keys if username == self._key_user else _NO_KEYS
            )
        return True

    def password_auth_supported(self) -> bool:
        return bool(self._passwords)

    def validate_password(self, username: str, password: str) -> bool:
        expected = self._passwords.get(username)
        # compare against something even for unknown users (no timing oracle on names)
        ok = hmac.compare_digest(password.encode(), (expected or "\0" * 16).encode())
        if not ok or expected is None:
            log.warning("password authentication failed for user %r", username)
            return False
        return True

    def public_key_auth_supported(self) -> bool:
        return self._authorized_keys is not None

    def session_requested(self) -> asyncssh.SSHServerSession:
        return _NetconfChannelSession(self._user, self._factory, self._hello_timeout,
                                      self._max_backlog)


_NO_KEYS = asyncssh.import_authorized_keys("")
#: the payload of the empty ``SSH_MSG_IGNORE`` asyncssh puts before every encrypted packet
_EMPTY_IGNORE = b"\0\0\0\0"


def is_cbc_cipher(name: str) -> bool:
    """True for a CBC-mode SSH cipher (``aes128-cbc``, ``3des-cbc``, ``seed-cbc@ssh.com``…),
    the only kind whose next IV an eavesdropper can predict (RFC 4251 §9.3.1).

    >>> is_cbc_cipher("aes256-cbc"), is_cbc_cipher("aes128-gcm@openssh.com")
    (True, False)
    """
    return "-cbc" in name


def skip_cbc_countermeasure(conn: asyncssh.SSHServerConnection) -> None:
    """Stop ``conn`` from sending an empty ``SSH_MSG_IGNORE`` before each of its packets
    unless its cipher is CBC.

    asyncssh (2.x) inserts one before every encrypted packet, whatever the cipher: RFC 4251
    §9.3.1's countermeasure against the chosen-plaintext attack on CBC's predictable IVs.
    With the ciphers the agent offers (asyncssh's defaults: ChaCha20-Poly1305, AES-GCM,
    AES-CTR; no CBC) it protects nothing, and it doubles the packets of every reply and
    notification: a second encryption and ``socket.send`` at the agent, a second packet to
    read, decrypt and discard at the client (paramiko does that in Python). Other packets,
    and an ``SSH_MSG_IGNORE`` with a payload, go out unchanged."""
    send_packet = conn.send_packet

    def send_packet_without_countermeasure(pkttype: int, *args: bytes,
                                           handler: Any = None) -> None:
        if (pkttype == MSG_IGNORE and args == (_EMPTY_IGNORE,)
                and not is_cbc_cipher(conn.get_extra_info("send_cipher") or "")):
            return
        send_packet(pkttype, *args, handler=handler)

    # an instance attribute: asyncssh calls ``self.send_packet`` for its own packets too
    conn.send_packet = send_packet_without_countermeasure  # type: ignore[method-assign]


def quiet_packet_logging(handler: Any) -> None:
    """Make ``handler``'s (an asyncssh connection's or channel's) per-packet log calls
    cost one comparison while packet logging is off.

    asyncssh formats a description of every packet sent and received (a name lookup, two
    f-strings, a plural) before its logger decides, at debug level 3 only, whether to log
    it: four times per request and reply, for nothing at the default level. The wrappers
    ask the level first and call asyncssh's own methods when it is 3
    (``asyncssh.set_debug_level(3)`` works as before, even on open sessions)."""
    log_sent, log_received = handler.log_sent_packet, handler.log_received_packet

    def log_sent_packet(pkttype: int, pktid: int | None, packet: Any,
                        note: str = "") -> None:
        if SSHLogger._debug_level >= 3:
            log_sent(pkttype, pktid, packet, note)

    def log_received_packet(pkttype: int, pktid: int | None, packet: Any,
                            note: str = "") -> None:
        if SSHLogger._debug_level >= 3:
            log_received(pkttype, pktid, packet, note)

    # instance attributes: asyncssh calls ``handler.log_*_packet`` for every packet
    handler.log_sent_packet = log_sent_packet
    handler.log_received_packet = log_received_packet


async def start_ssh_server(
    *,
    host: str,
    port: int,
    host_key: asyncssh.SSHKey,
    passwords: Mapping[str, str],
    key_user: str,
    authorized_keys_path: Path | None,
    factory: SessionFactory,
    hello_timeout: float = 30.0,
    max_backlog: int = MAX_OUTPUT_BACKLOG,
) -> asyncssh.SSHAcceptor:
    """Listen for NETCONF-over-SSH connections; the acceptor (``.sockets``, ``.close()``).

    ``passwords`` maps each user name to its password; the keys of ``authorized_keys_path``
    authenticate ``key_user``."""
    authorized = (
        asyncssh.read_authorized_keys(str(authorized_keys_path)) if authorized_keys_path else None
    )
    if not passwords and authorized is None:
        raise ValueError("the agent needs a password or an authorized_keys file")

    def server_factory() -> asyncssh.SSHServer:
        return _AgentSSHServer(dict(passwords), key_user, authorized, factory, hello_timeout,
                               max_backlog)

    return await asyncssh.create_server(
        server_factory,
        host,
        port,
        server_host_keys=[host_key],
        encoding=None,
        agent_forwarding=False,
        x11_forwarding=False,
        keepalive_interval=0,
        login_timeout=30,
        # no pty is ever granted: asyncssh's line editor would only sit between the channel
        # and the session, forwarding every read and write through one more layer
        line_editor=False,
    )
