"""The QKD agent: one node's NETCONF server over SSH, its datastore and notification stream.

>>> from qkd_agent.agent import AgentConfig, AgentThread, QkdAgent
>>> # agent = QkdAgent(AgentConfig(password="secret"), datastore, state_provider)
>>> # with AgentThread(agent) as running: print(running.port)

The agent's event loop owns the datastore: every NETCONF operation runs on it, one at a time.
Code in other threads that must touch the datastore goes through :meth:`AgentThread.call`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self, TypeVar

import asyncssh
import libyang

from qkd_agent.candidate import CandidateStore
from qkd_agent.capabilities import collect_schema_modules, server_capabilities
from qkd_agent.datastore import Datastore
from qkd_agent.event_loop import event_loop_kind, loop_factory
from qkd_agent.framing import DEFAULT_MAX_MESSAGE_SIZE
from qkd_agent.notifications import render_notification_body
from qkd_agent.operations import DatastoreAccess, Operation, ServerState
from qkd_agent.session import NetconfSession
from qkd_agent.ssh_server import MAX_OUTPUT_BACKLOG, load_or_create_host_key, start_ssh_server
from qkd_agent.yang_context import load_context
from qkdn.namespaces import YANG_DIR

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class AgentConfig:
    """Settings of one agent, resolved once at start-up."""

    host: str = "127.0.0.1"
    port: int = 0  # 0 = ephemeral; read QkdAgent.port after start()
    username: str = "admin"
    password: str | None = None
    authorized_keys: Path | None = None  # OpenSSH authorized_keys file for public-key auth
    #: extra users (name → password) who may read (get, get-config, get-schema, validate,
    #: subscribe) but not write (edit-config, lock, unlock, kill-session: access-denied)
    read_only_users: Mapping[str, str] = field(default_factory=dict)
    host_key: Path | None = None  # generated (Ed25519, mode 0600) and kept if missing
    yang_dir: Path = YANG_DIR  # modules for notifications if the datastore's ctx is not given
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    hello_timeout: float = 30.0
    #: bytes of unsent output (replies, notifications) after which a client that does not
    #: read is disconnected
    max_output_backlog: int = MAX_OUTPUT_BACKLOG
    max_sessions: int = 64  # further sessions are closed at once
    #: offer the :candidate datastore (commit, discard-changes). Off by default: with it,
    #: tools such as yangcli send their edits to the candidate and need an explicit commit.
    candidate: bool = False
    #: the event loop :class:`AgentThread` runs the agent on (:mod:`qkd_agent.event_loop`):
    #: ``auto`` = uvloop if installed, else asyncio's; ``uvloop``; ``asyncio``
    event_loop: str = "auto"

    def __post_init__(self) -> None:
        event_loop_kind(self.event_loop)  # an unknown name fails here, not in the thread
        if self.username in self.read_only_users:
            raise ValueError(f"user {self.username!r} cannot be both read-write and read-only")

    def passwords(self) -> dict[str, str]:
        """Every user that may log in with a password → its password."""
        users = dict(self.read_only_users)
        if self.password is not None:
            users[self.username] = self.password
        return users


class QkdAgent:
    """NETCONF server of one node. Runs on an asyncio loop: ``await start()`` / ``await stop()``."""

    def __init__(
        self,
        config: AgentConfig,
        datastore: DatastoreAccess,
        state_provider: Callable[[], dict] | None = None,
        *,
        ctx: libyang.Context | None = None,
        operations: Mapping[tuple[str, str], Operation] | None = None,
        rpc_observer: Callable[[str, float, bool], None] | None = None,
    ) -> None:
        """``operations`` adds NETCONF operations by (namespace, element name), e.g. the RPCs
        of a YANG module the server implements (see :mod:`qkd_agent.operations` for their
        shape); without them such RPCs are answered ``operation-not-supported``."""
        if ctx is None:
            ctx = getattr(datastore, "ctx", None)
        if ctx is None:  # an equivalent context: same modules, used for notifications only
            ctx = load_context(config.yang_dir)
        self.config = config
        self.ctx = ctx
        self.datastore = datastore
        modules = collect_schema_modules(ctx)
        self.capabilities = server_capabilities(modules, candidate=config.candidate)
        candidate = None
        if config.candidate:
            context = ctx
            candidate = CandidateStore(datastore, lambda initial: Datastore(context, initial))
        self.server = ServerState(datastore=datastore, modules=modules,
                                  state_provider=state_provider, candidate=candidate,
                                  extra_operations=dict(operations or {}),
                                  rpc_observer=rpc_observer)
        self._session_ids = itertools.count(1)
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.port: int = 0

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Listen on ``config.host:config.port`` (then :attr:`port` is the bound port)."""
        self._loop = asyncio.get_running_loop()
        host_key = load_or_create_host_key(self.config.host_key)
        self._acceptor = await start_ssh_server(
            host=self.config.host,
            port=self.config.port,
            host_key=host_key,
            passwords=self.config.passwords(),
            key_user=self.config.username,
            authorized_keys_path=self.config.authorized_keys,
            factory=self._new_session,
            hello_timeout=self.config.hello_timeout,
            max_backlog=self.config.max_output_backlog,
        )
        self.port = self._acceptor.sockets[0].getsockname()[1]
        log.info("NETCONF agent listening on %s:%d", self.config.host, self.port)

    async def stop(self) -> None:
        """Stop listening and end every session."""
        for session in list(self.server.sessions.values()):
            session.kill()
        if self._acceptor is not None:
            self._acceptor.close()
            await self._acceptor.wait_closed()
            self._acceptor = None

    def _new_session(
        self, username: str, write: Callable[[bytes], None], close: Callable[[], None]
    ) -> NetconfSession | None:
        if len(self.server.sessions) >= self.config.max_sessions:
            log.warning("session limit (%d) reached; refusing a session of %r",
                        self.config.max_sessions, username)
            return None
        return NetconfSession(
            next(self._session_ids),
            username,
            self.server,
            self.capabilities,
            write,
            close,
            self.config.max_message_size,
            may_write=username not in self.config.read_only_users,
        )

    @property
    def session_count(self) -> int:
        return len(self.server.sessions)

    # ------------------------------------------------------------------ notifications

    def notify(self, notification: dict) -> int:
        """Validate an RFC 7951 JSON notification, stamp ``eventTime`` and send it to every
        subscribed session; the number of sessions reached. Thread-safe: from another thread
        it waits (up to 10 s) for the agent's loop to publish it. Raises
        :class:`~qkd_agent.notifications.InvalidNotification` for a body the YANG modules
        reject."""
        event_time = datetime.now(UTC)
        loop = self._loop
        if loop is None or not loop.is_running():
            raise RuntimeError("the agent is not running")
        if _running_loop() is loop:
            return self._publish(notification, event_time)
        future: Future[int] = Future()

        def publish() -> None:
            try:
                future.set_result(self._publish(notification, event_time))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                future.set_exception(exc)

        loop.call_soon_threadsafe(publish)
        return future.result(timeout=10)

    def _publish(self, notification: dict, event_time: datetime) -> int:
        body = render_notification_body(self.ctx, notification)
        return self.server.hub.publish(body, event_time)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class AgentThread:
    """Runs a :class:`QkdAgent` on its own event loop in a daemon thread (uvloop's unless
    ``AgentConfig.event_loop`` says otherwise or it is not installed: :mod:`qkd_agent.event_loop`).

    >>> # with AgentThread(agent) as running:
    >>> #     running.port, running.call(datastore.running_json)
    """

    def __init__(self, agent: QkdAgent) -> None:
        self.agent = agent
        self._loop = loop_factory(agent.config.event_loop)()
        self._thread = threading.Thread(target=self._run, name="qkd-agent", daemon=True)
        self._started = threading.Event()
        self._error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self.agent.start())
        except BaseException as exc:  # noqa: BLE001 - re-raised by start()
            self._error = exc
            self._started.set()
            return
        self._started.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        self._loop.close()

    def start(self) -> Self:
        self._thread.start()
        self._started.wait()
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self.agent.stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self.agent.port

    def call(self, func: Callable[..., T], *args: Any) -> T:
        """Run ``func(*args)`` on the agent's loop (where the datastore lives); its result."""
        future: Future[T] = Future()

        def run() -> None:
            try:
                future.set_result(func(*args))
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
                future.set_exception(exc)

        self._loop.call_soon_threadsafe(run)
        return future.result(timeout=30)
