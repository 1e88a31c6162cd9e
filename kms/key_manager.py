"""The key manager of one node: the facade the node runtime builds and the HTTP apps call.

``KeyManager`` owns the per-link stores, the end-to-end key pool, the sessions, the forwarding
table, the relay engine and the HTTPS server (ETSI 014 + 004 + KM relay on one port). The
twin feeds it through :meth:`deliver`; the agent's datastore through
:meth:`apply_running_config`; the agent's ``get`` reads :meth:`operational_state`.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kms import notifications
from kms.directory import Directory
from kms.errors import (
    BadRequest,
    InsufficientKey,
    KmsError,
    NoRoute,
    RateLimited,
    SessionError,
    Unauthorized,
)
from kms.forwarding import ForwardingTable, SessionConfig, build_forwarding_table
from kms.https_server import HttpsServer, TlsFiles
from kms.key_pool import KeyPool, KeyRecord
from kms.key_store import DEFAULT_CAPACITY_BYTES, LinkKeyStore
from kms.priority_queue import PriorityGate
from kms.relay import RelayContext, RelayEngine, RelayTls, RelayUnknown
from kms.session import KmSession, SessionEvent, SessionState, Transition
from kms.token_bucket import TokenBucket

if TYPE_CHECKING:
    from kms.key_stream import StreamManager

log = logging.getLogger(__name__)

_REASONS = {
    SessionEvent.ACCESS_GRANTED: "access granted",
    SessionEvent.CONFIGURED: "session configuration received",
    SessionEvent.DELETED: "removed by controller",
    SessionEvent.CLOSED: "closed by SAE",
    SessionEvent.EXPIRED: "idle timeout",
    SessionEvent.KEY_REQUEST: "key request",
    SessionEvent.KEY_DELIVERED: "key delivered",
}

#: Namespace for session IDs of controller-less direct sessions (same at both ends).
DIRECT_SESSION_NS = uuid.UUID("6f1d3c2e-8a4b-4f6e-9a51-3c0d2b7e9f10")


@dataclass(frozen=True)
class KmConfig:
    """KM settings, resolved once at start-up."""

    #: With a controller, sessions wait (authenticating) for the qkd_app configuration pushed
    #: through the agent; without, adjacent SAEs are served on the direct link at once.
    require_controller: bool = False
    default_key_size: int = 256
    min_key_size: int = 64
    max_key_size: int = 8192
    max_key_per_request: int = 1000
    max_key_count: int = 100_000
    link_capacity_bytes: int = DEFAULT_CAPACITY_BYTES
    #: blocks a sender leaves unused at the young end of a link store (see kms.key_store)
    link_settle_blocks: int = 0
    concurrent_relays: int = 8
    #: keys relayed per ext_keys message when the ready pool of a pair runs short (≥ request);
    #: the surplus waits, ready at both ends, for the pair's next requests
    relay_batch: int = 32
    resolve_interval_s: float = 1.0
    #: how long a terminated session stays visible (state, history) once its configuration
    #: is gone, before the KM forgets it
    terminated_retention_s: float = 60.0
    #: test-only pauses at named relay points (see ``RelayEngine._delay``)
    fault_delays: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Route:
    """How keys for an SAE pair leave this KM."""

    session: str | None       # app_id, or None for a controller-less direct session
    next_node: str | None     # None: both SAEs are local
    priority: int = 0


@dataclass(frozen=True)
class KeyStatus:
    """Values of an ETSI 014 Status for (master, slave) at this KM."""

    source_km: str
    target_km: str
    master_sae_id: str
    slave_sae_id: str
    key_size: int
    stored_key_count: int
    max_key_count: int
    max_key_per_request: int
    max_key_size: int
    min_key_size: int
    max_sae_id_count: int = 0


class KeyManager:
    """One node's KM (thread-safe)."""

    def __init__(self, node_name: str, qkdn_id: str, state_dir: Path | str, directory: Directory,
                 tls: TlsFiles, notify: Callable[[dict], None] | None = None,
                 clock: Callable[[], float] = time.time, config: KmConfig = KmConfig()) -> None:
        self.node_name = node_name
        self.qkdn_id = qkdn_id.lower()
        self.config = config
        self.tls = tls
        self._dir = Path(state_dir) / "km"
        self._directory = directory
        self._notify = notify or (lambda body: None)
        self._clock = clock
        self._lock = threading.RLock()
        self._stores: dict[str, LinkKeyStore] = {}
        self._forwarding = ForwardingTable()
        self._running: dict = {}
        self._sessions: dict[str, KmSession] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._key_arrived = threading.Condition()
        self.pool = KeyPool(self._dir / "keys.sqlite")
        self.gate = PriorityGate(config.concurrent_relays)
        self.relay = RelayEngine(RelayContext(
            node_name=node_name, qkdn_id=self.qkdn_id, directory=lambda: self._directory,
            forwarding=lambda: self._forwarding, link_store=self.store_for_peer, pool=self.pool,
            local_saes=self.local_saes, clock=clock, control_handler=self._handle_control,
            fault_delays=config.fault_delays), RelayTls(tls.ca, tls.cert, tls.key))
        self.streams: StreamManager | None = None  # set when the 004 app is built
        self._server: HttpsServer | None = None
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        for peer in directory.links:
            self.store_for_peer(peer)

    # -- wiring -----------------------------------------------------------------------------
    @property
    def directory(self) -> Directory:
        return self._directory

    def set_directory(self, directory: Directory) -> None:
        """Replace the directory (e.g. once every KM's port is known)."""
        self._directory = directory
        for peer in directory.links:
            self.store_for_peer(peer)

    def local_saes(self) -> frozenset[str]:
        return frozenset(s for s, n in self._directory.saes.items() if n == self.node_name)

    def store_for_peer(self, peer_node: str) -> LinkKeyStore:
        qkdl_id = self._directory.link_to(peer_node)
        with self._lock:
            store = self._stores.get(qkdl_id)
            if store is None:
                remote = self._directory.node(peer_node).qkdn_id
                capacity = self.config.link_capacity_bytes
                if self._forwarding.key_store_capacity_bits:
                    capacity = self._forwarding.key_store_capacity_bits // 8
                store = LinkKeyStore(self._dir / "links" / f"{qkdl_id}.sqlite", qkdl_id,
                                     self.qkdn_id, remote, capacity,
                                     self.config.link_settle_blocks)
                store.add_listener(self._on_key_material)
                self._stores[qkdl_id] = store
            return store

    def store(self, qkdl_id: str) -> LinkKeyStore:
        for peer, link in self._directory.links.items():
            if link == qkdl_id:
                return self.store_for_peer(peer)
        raise NoRoute(f"link {qkdl_id} does not end at {self.node_name}")

    # -- inputs: twin, datastore ------------------------------------------------------------
    def deliver(self, qkdl_id: str, block_index: int, key: bytes) -> None:
        """KeySink for the link's QKD module: store block ``block_index`` of ``qkdl_id``."""
        try:
            self.store(qkdl_id).deliver(block_index, key)
        except KmsError as exc:
            log.warning("%s: block %d of link %s dropped: %s", self.node_name, block_index,
                        qkdl_id, exc)

    def _on_key_material(self, qkdl_id: str) -> None:
        with self._key_arrived:
            self._key_arrived.notify_all()

    def wait_for_key_material(self, timeout: float) -> None:
        with self._key_arrived:
            self._key_arrived.wait(timeout)

    def apply_running_config(self, running: Mapping[str, Any]) -> None:
        """Datastore listener: rebuild the forwarding table; start/stop sessions accordingly."""
        table = build_forwarding_table(running)
        with self._lock:
            if table.key_store_capacity_bits:
                for store in self._stores.values():
                    store.capacity_bytes = table.key_store_capacity_bits // 8
            old = self._forwarding
            self._forwarding = table
            self._running = dict(running)
            for app_id, cfg in table.sessions.items():
                session = self._find_session(cfg)
                if session is None:
                    session = self._new_session(app_id, cfg.sae_ids)
                elif session.session_id != app_id:  # pending pair session gets its real id
                    self._sessions.pop(session.session_id, None)
                    session.session_id = app_id
                    self._sessions[app_id] = session
                if session.state in (SessionState.AUTHENTICATING, SessionState.USER_ACCEPTED) or \
                        old.sessions.get(app_id) != cfg:
                    session.configure(cfg.idle_timeout)
                self._buckets.pop(app_id, None)
            for app_id in set(old.sessions) - set(table.sessions):
                session = self._sessions.get(app_id)
                if session is not None and session.state is not SessionState.TERMINATED:
                    session.fire(SessionEvent.DELETED)
                    self._release_session(app_id)
            self._forget_terminated(table)

    def _forget_terminated(self, table: ForwardingTable) -> None:
        """Drop sessions terminated at least ``terminated_retention_s`` ago whose configuration
        is gone (the controller deletes a session's qkd_app after it ends): without this every
        session ever served stayed in memory. Caller holds the lock."""
        now = self._clock()
        for session_id, session in list(self._sessions.items()):
            if session.state is SessionState.TERMINATED and session_id not in table.sessions \
                    and (not session.history or
                         now - session.history[-1].at >= self.config.terminated_retention_s):
                del self._sessions[session_id]

    def _find_session(self, cfg: SessionConfig) -> KmSession | None:
        if cfg.app_id in self._sessions and self._sessions[cfg.app_id].state is not SessionState.TERMINATED:
            return self._sessions[cfg.app_id]
        for session in self._sessions.values():
            if session.state is not SessionState.TERMINATED and session.sae_ids and \
                    session.sae_ids <= cfg.sae_ids and session.session_id.startswith("pending:"):
                return session
        return None

    def _new_session(self, session_id: str, sae_ids: frozenset[str]) -> KmSession:
        session = KmSession(session_id, sae_ids, clock=self._clock, observer=self._on_transition)
        self._sessions[session_id] = session
        return session

    def _on_transition(self, t: Transition) -> None:
        if t.session_id.startswith("pending:"):
            return  # no app_id yet: the controller knows it only by sdqkdn_application_new
        if t.event in (SessionEvent.KEY_REQUEST, SessionEvent.KEY_DELIVERED) and t.old is t.new:
            return
        self._notify(notifications.session_state(t.session_id, t.new.value,
                                                 _REASONS.get(t.event)))
        if t.new is SessionState.TERMINATED:
            self._notify(notifications.application_disconnected(t.session_id))

    def report_key_request(self, session_id: str, number: int, bits: int,
                           outcome: notifications.KeyRequestOutcome) -> None:
        """Emit ``km_key_request`` (the controller resets its session timer on it)."""
        if not session_id.startswith("pending:"):
            self._notify(notifications.key_request(session_id, number, bits, outcome))

    def _release_session(self, session_id: str) -> None:
        self._buckets.pop(session_id, None)
        if self.streams is not None:
            self.streams.on_session_terminated(session_id)

    # -- sessions for SAE pairs (014) ---------------------------------------------------------
    def session_for_pair(self, master: str, slave: str, *, qos: Mapping[str, int] | None = None,
                         priority: int = 0,
                         interface: notifications.ApplicationInterface = notifications.ApplicationInterface.ETSI_014,
                         key_stream_id: str | None = None,
                         etsi004_qos: Mapping[str, Any] | None = None) -> KmSession:
        """The session serving (master, slave); opens one (and notifies) on the first request."""
        with self._lock:
            cfg = self._forwarding.session_for_pair(master, slave)
            if cfg is not None:
                session = self._sessions.get(cfg.app_id)
                if session is not None and session.state is not SessionState.TERMINATED:
                    return session
            pair = frozenset({master, slave})
            for session in self._sessions.values():
                if session.sae_ids == pair and session.state is not SessionState.TERMINATED:
                    return session
            if cfg is not None:
                session = self._new_session(cfg.app_id, pair)
                session.configure(cfg.idle_timeout)
                return session
            self._notify(notifications.application_new(
                master, [slave], self.qkdn_id, priority, dict(qos or {}), interface=interface,
                key_stream_id=key_stream_id, etsi004_qos=dict(etsi004_qos) if etsi004_qos else None))
            if self.config.require_controller:
                return self._new_session(f"pending:{uuid.uuid4()}", pair)
            session = self._new_session(direct_session_id(master, slave), pair)
            session.configure(None)
            return session

    def route_for(self, master: str, slave: str, session: KmSession) -> Route:
        """Where keys for this pair go from here."""
        if not session.active:
            raise SessionError(f"session for this SAE pair is {session.state.value}; retry later")
        peer_node = self._directory.node_of_sae(slave)
        if peer_node == self.node_name:
            return Route(session.session_id, None)
        cfg = self._forwarding.sessions.get(session.session_id)
        if cfg is not None and session.session_id in self._forwarding.rules:
            nxt = self.relay.next_node(session.session_id, None)
            return Route(session.session_id, nxt, cfg.priority)
        if self.config.require_controller:
            raise NoRoute(f"session {session.session_id} has no forwarding rule here")
        if not self._directory.is_adjacent(peer_node):
            raise NoRoute(f"{peer_node} is not adjacent and no path is configured")
        return Route(None, peer_node, cfg.priority if cfg else 0)

    def _charge(self, session: KmSession, bits: int) -> None:
        cfg = self._forwarding.sessions.get(session.session_id)
        if cfg is None:
            return
        rate = cfg.token_rate or cfg.max_bandwidth
        if not rate:
            return
        size = cfg.bucket_size or rate   # absent: one second of token_rate (YANG)
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.get(session.session_id)
            if bucket is None:
                bucket = self._buckets[session.session_id] = TokenBucket.full(size, rate, now)
            if not bucket.try_consume(bits, now):
                raise RateLimited(f"session {session.session_id}: key rate above the agreed "
                                  f"{rate} bit/s")

    def wait_for_tokens(self, session_id: str, bits: int, rate: float | None,
                        deadline: float) -> bool:
        """004: wait (until the monotonic ``deadline``) for ``bits`` tokens of the session's
        bucket; the rate is the configured one, else ``rate`` (the stream's max_bps); no rate
        means no limit. False if the tokens did not come in time."""
        cfg = self._forwarding.sessions.get(session_id)
        configured = cfg and (cfg.token_rate or cfg.max_bandwidth)
        rate = configured or rate
        if not rate:
            return True
        size = (cfg.bucket_size if cfg and cfg.bucket_size else None) or max(rate, bits)
        while True:
            now = time.monotonic()
            with self._lock:
                bucket = self._buckets.get(session_id)
                if bucket is None:
                    bucket = self._buckets[session_id] = TokenBucket.full(size, rate, now)
                if bucket.try_consume(bits, now):
                    return True
                wait = bucket.wait_time(bits, now)
            if now + wait > deadline:
                return False
            time.sleep(wait)

    # -- ETSI 014 core --------------------------------------------------------------------------
    def check_size(self, size: int) -> None:
        if size < self.config.min_key_size or size > self.config.max_key_size or size % 8:
            raise BadRequest(f"size must be a multiple of 8 between {self.config.min_key_size} "
                             f"and {self.config.max_key_size}")

    def key_status(self, master: str, slave: str) -> KeyStatus:
        """014 Status for the pair (caller is the master)."""
        peer_node = self._directory.node_of_sae(slave)
        size = self.config.default_key_size
        stored = self.pool.ready_count(master, slave, size)
        try:
            session = self.session_for_pair(master, slave)
            route = self.route_for(master, slave, session)
            if route.next_node is not None:
                available = self.store_for_peer(route.next_node).available_outgoing()
                stored += max(0, available - 64) * 8 // size
        except KmsError:
            pass
        return KeyStatus(
            source_km=self.node_name, target_km=peer_node, master_sae_id=master,
            slave_sae_id=slave, key_size=size,
            stored_key_count=min(stored, self.config.max_key_count),
            max_key_count=self.config.max_key_count,
            max_key_per_request=self.config.max_key_per_request,
            max_key_size=self.config.max_key_size, min_key_size=self.config.min_key_size)

    def enc_keys(self, master: str, slave: str, number: int, size: int) -> list[KeyRecord]:
        """Keys for master → slave; each released to the master once, ready for the slave."""
        if slave not in self._directory.saes or master not in self.local_saes():
            raise Unauthorized("unknown slave SAE or master SAE not served by this KM")
        if master == slave:
            raise BadRequest("master and slave SAE must differ")
        if not 1 <= number <= self.config.max_key_per_request:
            raise BadRequest(f"number must be 1..{self.config.max_key_per_request}")
        self.check_size(size)
        session = self.session_for_pair(master, slave)
        outcome = notifications.KeyRequestOutcome.REFUSED
        try:
            route = self.route_for(master, slave, session)
            self._charge(session, number * size)
            with self._lock:
                session.fire(SessionEvent.KEY_REQUEST)
            try:
                records = self._produce(master, slave, number, size, route)
            finally:
                self._key_done(session)
            outcome = notifications.KeyRequestOutcome.DELIVERED
            return records
        except RateLimited:
            outcome = notifications.KeyRequestOutcome.RATE_LIMITED
            raise
        except InsufficientKey:
            outcome = notifications.KeyRequestOutcome.INSUFFICIENT_KEY
            raise
        finally:
            self.report_key_request(session.session_id, number, number * size, outcome)

    def _key_done(self, session: KmSession) -> None:
        with self._lock:
            if session.state is SessionState.KEY_EXCHANGING:
                session.fire(SessionEvent.KEY_DELIVERED)

    def _produce(self, master: str, slave: str, number: int, size: int, route: Route) -> list[KeyRecord]:
        now = self._clock()
        taken = self.pool.take_for_master(master, slave, number, size, now)
        missing = number - len(taken)
        if missing == 0:
            return taken
        batch = max(missing, min(self.config.relay_batch, self.config.max_key_per_request))
        if route.next_node is not None:
            available = self.store_for_peer(route.next_node).available_outgoing()
            affordable = (available - 64) // (size // 8) if available > 64 else 0
            batch = max(missing, min(batch, affordable))
        cfg = self._forwarding.sessions.get(route.session or "")
        expires = now + cfg.ttl if cfg is not None and cfg.ttl else None   # app_qos/ttl
        records = [KeyRecord(str(uuid.uuid4()), master, slave, secrets.token_bytes(size // 8),
                             session=route.session, expires=expires) for _ in range(batch)]
        if route.next_node is None:
            self.pool.store_ready(records, master_local=True, slave_local=True, now=now)
        else:
            with self.gate.slot(route.priority):
                try:
                    self.relay.originate(route.session, route.next_node, records,
                                         master_local=True, slave_local=False)
                except RelayUnknown:
                    self._kick_resolver()
                    raise
        # this request's keys; one a concurrent request of the pair took meanwhile is
        # replaced by the batch's surplus (was a 400 "no longer available" under load)
        return taken + self.pool.take_relayed_for_master(
            master, slave, [r.key_id for r in records[:missing]], size, now)

    def dec_keys(self, slave: str, master: str, key_ids: list[str]) -> list[KeyRecord]:
        """Release the named keys to the slave (all or none)."""
        if not key_ids:
            raise BadRequest("key_IDs must name at least one key")
        if len(key_ids) > self.config.max_key_per_request:
            raise BadRequest(f"at most {self.config.max_key_per_request} key_IDs per request")
        if slave not in self.local_saes():
            raise Unauthorized("SAE not served by this KM")
        records = self.pool.take_for_slave(slave, master, key_ids, self._clock())
        with self._lock:
            cfg = self._forwarding.session_for_pair(master, slave)
            sid = cfg.app_id if cfg else direct_session_id(master, slave)
            session = self._sessions.get(sid)
            if session is not None and session.active:
                session.fire(SessionEvent.KEY_REQUEST)
                session.fire(SessionEvent.KEY_DELIVERED)
        return records

    # -- 004 control hook -----------------------------------------------------------------------
    def _handle_control(self, sender_node: str | None, body: dict) -> dict:
        if self.streams is None:
            return {"status": "error", "message": "ETSI 004 not enabled on this KM"}
        return self.streams.handle_control(sender_node, body)

    # -- state for the agent --------------------------------------------------------------------
    def sessions(self) -> dict[str, KmSession]:
        with self._lock:
            return dict(self._sessions)

    def link_levels(self):
        with self._lock:
            return [store.levels() for store in self._stores.values()]

    def operational_state(self) -> dict:
        """RFC 7951 JSON fragments of ``config false`` data for the agent's ``get``."""
        from kms.operational_state import build_operational_state
        return build_operational_state(self.sessions(), self._forwarding, self.link_levels())

    # -- background: resolver, timers, ttl ------------------------------------------------------
    def _kick_resolver(self) -> None:
        with self._key_arrived:
            self._key_arrived.notify_all()

    def tick(self) -> None:
        """One round of housekeeping: idle timers, ttl expiry, pending relays."""
        with self._lock:
            for session in list(self._sessions.values()):
                if session.check_timer():
                    self._release_session(session.session_id)
            self._forget_terminated(self._forwarding)
        self.pool.expire(self._clock())
        if self.pool.pending_relays():
            self.relay.resolve_pending()

    def _housekeeping(self) -> None:
        while not self._stop.wait(self.config.resolve_interval_s):
            try:
                self.tick()
            except Exception:
                log.exception("%s: housekeeping failed", self.node_name)

    # -- lifecycle --------------------------------------------------------------------------------
    def build_app(self):
        from kms.app import create_app
        return create_app(self)

    def start(self, host: str = "127.0.0.1", port: int = 0) -> KeyManager:
        self._server = HttpsServer(self.build_app(), self.tls, host, port, threads=32,
                                   name=f"km-{self.node_name}").start()
        self._stop.clear()
        self._worker = threading.Thread(target=self._housekeeping, name=f"km-{self.node_name}-tick",
                                        daemon=True)
        self._worker.start()
        return self

    @property
    def base_url(self) -> str:
        assert self._server is not None, "KM not started"
        return self._server.base_url

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.stop()
        if self._worker is not None:
            self._worker.join(timeout=5)
        for store in self._stores.values():
            store.close()
        self.pool.close()

    def __enter__(self) -> KeyManager:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def direct_session_id(sae_a: str, sae_b: str) -> str:
    """Session ID of a controller-less pair: the same at both ends."""
    a, b = sorted((sae_a, sae_b))
    return str(uuid.uuid5(DIRECT_SESSION_NS, f"{a}\x00{b}"))
