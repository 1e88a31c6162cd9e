"""NETCONF southbound: one ncclient session per agent, kept alive and reconnected with
back-off, subscribed to the agent's notification stream (RFC 5277, interleaved with RPCs),
with the agent's capabilities checked at connect.

Each :class:`AgentSession` is the :class:`~sdn_controller.push.NodeConfigurator` of its node
(edit-config on ``running``); notifications and periodic ``get`` replies of ``qkd_node`` are
handed to callbacks (the :class:`~sdn_controller.controller.Controller`). ncclient sessions are
event-driven (:mod:`qkdn.netconf_client`: no polling tick, a request leaves at once), and at
most ``max_parallel_connects`` SSH handshakes run at once (100 agents connecting together on
two cores timed out and retried in a loop). Never logs payloads (they may name keys'
sessions and SAEs; never key material, but the habit stays).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from lxml import etree

from qkdn.namespaces import ETSI_NODE_MODULE, ETSI_NODE_NS, ETSI_NODE_REVISION, QKDN_KM_MODULE
from qkdn.netconf_client import install_event_driven_sessions
from sdn_controller.errors import ControllerError, PushError
from sdn_controller.identifiers import NodeId
from sdn_controller.message_root import install_message_root
from sdn_controller.netconf_pipeline import PendingEdit, send_edit_config

log = logging.getLogger(__name__)

NOTIFICATION_CAPABILITY = "urn:ietf:params:netconf:capability:notification:1.0"
INTERLEAVE_CAPABILITY = "urn:ietf:params:netconf:capability:interleave:1.0"
#: Modules (and revisions; None = any) an agent must implement for this controller.
REQUIRED_MODULES: Mapping[str, str | None] = {ETSI_NODE_MODULE: ETSI_NODE_REVISION,
                                              QKDN_KM_MODULE: None}
QKD_NODE_FILTER = f'<qkd_node xmlns="{ETSI_NODE_NS}"/>'
#: SSH ciphers the controller's sessions offer first (the client's order decides). AES-GCM
#: authenticates each packet inside the cipher, in C; with paramiko's default (aes-ctr and
#: hmac-sha2-256) every packet's MAC is computed and compared byte by byte in Python, on
#: both ends: ~0.2 ms of controller and ~0.2 ms of agent CPU per RPC, more for a big ``get``.
AEAD_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")


def prefer_aead_ciphers() -> None:
    """Put :data:`AEAD_CIPHERS` first in what paramiko (ncclient's SSH) offers, the others
    after them in their order (an agent without AES-GCM still connects). Idempotent."""
    import paramiko

    offered = paramiko.Transport._preferred_ciphers
    paramiko.Transport._preferred_ciphers = AEAD_CIPHERS + tuple(
        cipher for cipher in offered if cipher not in AEAD_CIPHERS)


class Transport(StrEnum):
    """The SSH implementation under the controller's ncclient sessions."""

    #: libssh through ``ssh-python`` (:mod:`qkdn.netconf_libssh`): packets in C
    LIBSSH = "libssh"
    #: ncclient's own SSH transport, paramiko (pure Python per packet)
    PARAMIKO = "paramiko"
    #: libssh when ``ssh-python`` is importable, paramiko otherwise
    AUTO = "auto"


def resolve_transport(transport: Transport | str) -> Transport:
    """The transport ``transport`` names (``auto``: libssh if importable, else paramiko);
    ValueError for an unknown name.

    >>> resolve_transport("paramiko")
    <Transport.PARAMIKO: 'paramiko'>
    """
    chosen = Transport(transport)
    if chosen is Transport.AUTO:
        from qkdn.netconf_libssh import available

        return Transport.LIBSSH if available() else Transport.PARAMIKO
    return chosen


class CapabilityError(ControllerError):
    """An agent lacks a capability or module the controller needs."""


def check_capabilities(capabilities: Iterable[str]) -> None:
    """Raise :class:`CapabilityError` unless the hello advertises notifications with
    interleave and every module of :data:`REQUIRED_MODULES` (at the revision named).

    >>> check_capabilities([NOTIFICATION_CAPABILITY, INTERLEAVE_CAPABILITY,
    ...     "urn:etsi:qkd:yang:etsi-qkd-node?module=etsi-qkd-sdn-node&revision=2022-01-30",
    ...     "urn:qkdn:yang:qkdn-key-manager?module=qkdn-key-manager&revision=2026-11-27"])
    >>> try:
    ...     check_capabilities([NOTIFICATION_CAPABILITY])
    ... except CapabilityError as exc:
    ...     print(exc)
    agent lacks interleave capability, module etsi-qkd-sdn-node@2022-01-30, module qkdn-key-manager
    """
    caps = list(capabilities)
    modules: dict[str, set[str]] = {}
    for cap in caps:
        query = parse_qs(urlsplit(cap).query)
        for name in query.get("module", []):
            modules.setdefault(name, set()).update(query.get("revision", []) or [""])
    missing = []
    if NOTIFICATION_CAPABILITY not in caps:
        missing.append("notification capability")
    if INTERLEAVE_CAPABILITY not in caps:
        missing.append("interleave capability")
    for name, revision in REQUIRED_MODULES.items():
        if name not in modules or (revision is not None and revision not in modules[name]):
            missing.append(f"module {name}@{revision}" if revision else f"module {name}")
    if missing:
        raise CapabilityError("agent lacks " + ", ".join(missing))


@dataclass(frozen=True)
class AgentEndpoint:
    """Where a node's agent listens (from ``endpoints.json``) and how to log in."""

    node_id: NodeId
    host: str
    port: int
    username: str
    password: str
    name: str = ""


@dataclass(frozen=True)
class SouthboundConfig:
    connect_timeout_s: float = 10.0
    rpc_timeout_s: float = 10.0
    backoff_initial_s: float = 0.1
    backoff_max_s: float = 5.0
    poll_interval_s: float = 5.0        #: periodic get of qkd_node (state and metrics)
    #: how long one wait for a notification blocks at most (a notification ends the wait at
    #: once; the wait also ends at the next poll): the idle wake-ups of one session per second
    notification_wait_s: float = 1.0
    #: SSH handshakes (connect, hello, capability check, subscription) at once per controller
    max_parallel_connects: int = 8
    #: periodic gets per second all agents together may cost: with more agents than
    #: ``poll_interval_s × poll_budget_hz`` the interval grows (100 agents: 10 s, not 5 s; a
    #: get of qkd_node costs the agent a few ms and grows with its sessions); notifications
    #: still report every change at once
    poll_budget_hz: float = 10.0
    #: bytes of periodic-``get`` replies per second all agents together may cost. A reply
    #: carries every session the node holds (its ``qkd_app`` entries and virtual links), and
    #: both ends pay per byte (the agent builds and serialises it; the controller frames,
    #: parses and ingests it): at 100 nodes and 1,000 sessions, gets every 10 s of ~75 kB
    #: replies cost the controller ~0.2 of a core. An agent's next get waits until its last
    #: reply fits the budget (``agents × bytes / budget``, at least ``poll_interval_s``);
    #: link changes still arrive at once as notifications. 0: no byte budget.
    poll_budget_bytes_per_s: float = 256 * 1024
    #: agents sharing the budgets (set by :class:`Southbound`)
    agents: int = 1
    #: SSH under the sessions (:class:`Transport`; ``QKDN_SOUTHBOUND_TRANSPORT``): libssh
    #: costs the controller ~30 % less CPU per RPC than paramiko (docs/controller.md)
    transport: Transport | str = Transport.AUTO


NotificationHandler = Callable[[NodeId, str], None]
StateHandler = Callable[[NodeId, str], None]
#: ``rpc_observer(node_id, operation, seconds, ok)`` after every RPC (metrics)
RpcObserver = Callable[[NodeId, str, float, bool], None]


class AgentSession:
    """The controller's NETCONF session to one agent (a ``NodeConfigurator``)."""

    def __init__(self, endpoint: AgentEndpoint, config: SouthboundConfig = SouthboundConfig(),
                 rpc_observer: RpcObserver | None = None,
                 connect_slots: threading.Semaphore | None = None) -> None:
        self.endpoint = endpoint
        #: shared by a :class:`Southbound`'s sessions: bounds the handshakes in flight
        self._connect_slots = connect_slots or threading.BoundedSemaphore(
            max(1, config.max_parallel_connects))
        self._rpc_observer = rpc_observer
        self.node_id = endpoint.node_id
        self.config = config
        self._manager: Any = None
        self._rpc_lock = threading.Lock()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._thread: threading.Thread | None = None
        self._on_notification: NotificationHandler | None = None
        self._on_state: StateHandler | None = None
        self.connects = 0  #: successful connections so far (reconnects = connects - 1)
        self.last_error: str | None = None
        #: bytes of the last periodic get's reply and the wait before the next get
        self.last_get_bytes = 0
        self.poll_delay_s = config.poll_interval_s

    # --- NodeConfigurator -------------------------------------------------------------------
    def edit_config(self, config: etree._Element) -> None:
        from ncclient.operations import RPCError
        from ncclient.transport import TransportError

        manager = self._manager
        if manager is None or not self._connected.is_set():
            raise PushError(self.node_id, "no NETCONF session to this node")
        try:
            with self._rpc_lock, self._timed("edit-config"):
                manager.edit_config(target="running", config=config)
        except RPCError as exc:
            raise PushError(self.node_id, f"{exc.tag}: {exc.message or exc}") from exc
        except (TransportError, OSError) as exc:
            self._connected.clear()
            raise PushError(self.node_id, f"session lost: {exc}") from exc

    def rollback(self, undo: etree._Element) -> None:
        self.edit_config(undo)

    # --- PipelinedConfigurator (sdn_controller.push) -----------------------------------------
    def send_edit_config(self, config: etree._Element | str) -> PendingEdit:
        """Send an edit-config of ``config`` (a ``<config>`` element or its serialisation) on
        ``running`` without waiting; ``wait()`` on the result
        raises :class:`PushError` as :meth:`edit_config` does (sdn_controller.netconf_pipeline)."""
        manager = self._manager
        if manager is None or not self._connected.is_set():
            raise PushError(self.node_id, "no NETCONF session to this node")
        observer = None
        if self._rpc_observer is not None:
            rpc_observer, node_id = self._rpc_observer, self.node_id

            def observer(seconds: float, ok: bool) -> None:
                rpc_observer(node_id, "edit-config", seconds, ok)
        # ncclient 0.7 has no public accessor of a Manager's transport session
        return send_edit_config(manager._session, self.node_id, config, observer=observer,
                                timeout_s=self.config.rpc_timeout_s)

    # --- reads ------------------------------------------------------------------------------
    def get_qkd_node(self) -> str:
        """``<rpc-reply>`` of a ``get`` of ``qkd_node`` (config and state)."""
        manager = self._manager
        if manager is None or not self._connected.is_set():
            raise PushError(self.node_id, "no NETCONF session to this node")
        with self._rpc_lock, self._timed("get"):
            return str(manager.get(filter=("subtree", QKD_NODE_FILTER)).xml)

    @contextmanager
    def _timed(self, operation: str) -> Iterator[None]:
        """Report the duration of the RPC in the block (error if it raised)."""
        started = time.perf_counter()
        ok = False
        try:
            yield
            ok = True
        finally:
            if self._rpc_observer is not None:
                self._rpc_observer(self.node_id, operation, time.perf_counter() - started, ok)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    # --- life cycle -------------------------------------------------------------------------
    def start(self, on_notification: NotificationHandler, on_state: StateHandler) -> None:
        self._on_notification, self._on_state = on_notification, on_state
        self._stop.clear()
        label = self.endpoint.name or self.node_id
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"qkdn-southbound-{label}")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.config.rpc_timeout_s + 5)
        self._close()

    def _connect(self) -> Any:
        return connect_agent(self.endpoint, self.config)

    def _close(self) -> None:
        self._connected.clear()
        manager, self._manager = self._manager, None
        if manager is not None:
            try:
                manager.close_session()
            except Exception as exc:  # noqa: BLE001 - the session may already be gone
                log.debug("agent %s: close-session: %s", self.node_id, exc)

    def _run(self) -> None:
        backoff = self.config.backoff_initial_s
        while not self._stop.is_set():
            try:
                with self._connect_slots:
                    if self._stop.is_set():
                        break
                    self._manager = self._connect()
            except CapabilityError as exc:
                self.last_error = str(exc)
                log.error("agent %s: %s", self.node_id, exc)
                self._stop.wait(self.config.backoff_max_s)
                continue
            except Exception as exc:  # noqa: BLE001 - refused, timed out, auth failed: retry
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.info("agent %s unreachable (%s); retrying in %.1f s", self.node_id,
                         self.last_error, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.config.backoff_max_s)
                continue
            backoff = self.config.backoff_initial_s
            self.connects += 1
            self._connected.set()
            log.info("agent %s connected (%s:%d)", self.node_id, self.endpoint.host,
                     self.endpoint.port)
            try:
                self._serve()
            except Exception as exc:  # noqa: BLE001 - any end of the session: reconnect
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("agent %s session ended: %s", self.node_id, self.last_error)
            finally:
                self._close()

    def _serve(self) -> None:
        assert self._on_notification is not None and self._on_state is not None
        next_poll = 0.0
        while not self._stop.is_set():
            manager = self._manager
            if manager is None or not manager.connected:
                raise ConnectionError("session closed by the agent")
            if time.monotonic() >= next_poll:
                reply = self.get_qkd_node()
                self._deliver(self._on_state, reply)
                self.last_get_bytes = len(reply)
                self.poll_delay_s = poll_delay_for(
                    len(reply), self.config.agents, self.config.poll_interval_s,
                    self.config.poll_budget_bytes_per_s)
                next_poll = time.monotonic() + self.poll_delay_s
            wait = min(self.config.notification_wait_s, max(0.0, next_poll - time.monotonic()))
            notification = manager.take_notification(block=True, timeout=wait)
            if notification is not None:
                self._deliver(self._on_notification, notification.notification_xml)

    def _deliver(self, handler: Callable[[NodeId, str], None], message: str) -> None:
        try:
            handler(self.node_id, message)
        except ControllerError as exc:  # bad data from this agent must not end the session
            log.warning("agent %s: %s", self.node_id, exc)
        except Exception:  # nor a fault in the controller: log it and keep the session
            log.exception("agent %s: handling a message failed", self.node_id)


def connect_agent(endpoint: AgentEndpoint, config: SouthboundConfig = SouthboundConfig()
                  ) -> Any:
    """An ncclient ``Manager`` to ``endpoint``'s agent over ``config.transport``: hello and
    capabilities checked (:class:`CapabilityError`), subscribed to its notifications (which
    also registers the session's reply listener). Host keys of the agents are not verified
    (loopback agents of a state directory)."""
    from ncclient import manager as ncclient_manager

    install_event_driven_sessions()
    install_message_root()   # a message's root from its first bytes, not a full parse
    logging.getLogger("ncclient").setLevel(logging.WARNING)
    manager_params = {"timeout": config.rpc_timeout_s}
    if resolve_transport(config.transport) is Transport.LIBSSH:
        from qkdn.netconf_libssh import connect as connect_libssh

        m = connect_libssh(endpoint.host, endpoint.port, endpoint.username, endpoint.password,
                           timeout=config.connect_timeout_s, manager_params=manager_params)
    else:
        prefer_aead_ciphers()
        m = ncclient_manager.connect(
            host=endpoint.host, port=endpoint.port, username=endpoint.username,
            password=endpoint.password, hostkey_verify=False, allow_agent=False,
            look_for_keys=False, timeout=config.connect_timeout_s,
            manager_params=manager_params)
    try:
        check_capabilities(m.server_capabilities)
        m.create_subscription()
    except BaseException:
        m.close_session()
        raise
    return m


def poll_interval_for(agents: int, interval_s: float, budget_hz: float) -> float:
    """The periodic-get interval for ``agents`` sessions: ``interval_s``, or longer so that
    all of them together poll at most ``budget_hz`` times a second.

    >>> poll_interval_for(6, 5.0, 10.0), poll_interval_for(100, 5.0, 10.0)
    (5.0, 10.0)
    """
    if budget_hz <= 0:
        return interval_s
    return max(interval_s, agents / budget_hz)


def poll_delay_for(reply_bytes: int, agents: int, interval_s: float,
                   budget_bytes_per_s: float) -> float:
    """Seconds until an agent's next periodic get, after a reply of ``reply_bytes``: the
    interval, or longer so that ``agents`` such replies fit ``budget_bytes_per_s``.

    >>> poll_delay_for(20_000, 25, 5.0, 256 * 1024)     # 25 agents, 20 kB replies
    5.0
    >>> round(poll_delay_for(80_000, 100, 10.0, 256 * 1024), 1)  # 100 agents, 80 kB
    30.5
    >>> poll_delay_for(80_000, 100, 10.0, 0)           # no byte budget
    10.0
    """
    if budget_bytes_per_s <= 0:
        return interval_s
    return max(interval_s, agents * reply_bytes / budget_bytes_per_s)


class Southbound(Mapping[NodeId, AgentSession]):
    """Every agent's session; a mapping node_id → :class:`AgentSession` (the controller's
    configurators). Context manager: ``with Southbound(...) as sb: sb.start(...)``."""

    def __init__(self, endpoints: Iterable[AgentEndpoint],
                 config: SouthboundConfig = SouthboundConfig(),
                 rpc_observer: RpcObserver | None = None) -> None:
        endpoints = list(endpoints)
        config = replace(config, agents=max(1, len(endpoints)),
                         poll_interval_s=poll_interval_for(
                             len(endpoints), config.poll_interval_s, config.poll_budget_hz))
        slots = threading.BoundedSemaphore(max(1, config.max_parallel_connects))
        self._sessions = {ep.node_id: AgentSession(ep, config, rpc_observer, slots)
                          for ep in endpoints}

    def __getitem__(self, node_id: NodeId) -> AgentSession:
        return self._sessions[node_id]

    def __iter__(self) -> Iterator[NodeId]:
        return iter(self._sessions)

    def __len__(self) -> int:
        return len(self._sessions)

    def start(self, on_notification: NotificationHandler, on_state: StateHandler) -> None:
        for session in self._sessions.values():
            session.start(on_notification, on_state)

    def wait_connected(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        return all(s.wait_connected(max(0.0, deadline - time.monotonic()))
                   for s in self._sessions.values())

    def stop(self) -> None:
        for session in self._sessions.values():
            session._stop.set()
        for session in self._sessions.values():
            session.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
