"""The key manager of one node: the facade the node runtime builds and the HTTP apps call.

``KeyManager`` owns the per-link stores, the end-to-end key pool, the sessions, the forwarding
table, the relay engine and the HTTPS server (ETSI 014 + 004 + KM relay on one port). The
twin feeds it through :meth:`deliver`; the agent's datastore through
:meth:`apply_running_config`; the agent's ``get`` reads :meth:`operational_state`.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from kms import notifications
from kms.directory import Directory
from kms.errors import (
    BadRequest,
    InsufficientKey,
    KmsError,
    NoRoute,
    RateLimited,
    RelayError,
    SessionError,
    SessionRefused,
    Unauthorized,
)
from kms.forwarding import (
    ForwardingTable,
    SessionConfig,
    SessionParseCache,
    build_forwarding_table,
)
from kms.https_server import MAX_HOLD_S, HttpsServer, TlsFiles
from kms.hybrid_kdf import Provenance, fallback_mode
from kms.hybrid_provisioning import HybridProvisioner
from kms.key_pool import PRUNE_BATCH, KeyPool, KeyRecord, copy_key_id
from kms.key_store import DEFAULT_CAPACITY_BYTES, LinkKeyStore
from kms.multipath import account, rank_legs
from kms.priority_queue import PriorityGate
from kms.refusals import Refusal, refusals_from_running
from kms.relay import RelayContext, RelayEngine, RelayRejected, RelayTls, RelayUnknown
from kms.relay_ahead import RelayAheadPolicy
from kms.session import KmSession, SessionEvent, SessionState, Transition
from kms.telemetry import KmTelemetry
from kms.token_bucket import SHORT_WAIT_S, TokenBucket
from qkdn.structured_logging import bind_session

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

#: relays one request may make when concurrent requests of its pair take each batch's keys
RELAY_RACE_ATTEMPTS = 3
#: seconds of tombstone pruning per housekeeping round at most (it shares the thread with the
#: idle timers; a pool that is behind goes on at the next round)
PRUNE_BUDGET_S = 0.05
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
    #: ETSI 014 ``max_SAE_ID_count``: additional slave SAEs one enc_keys request may name
    max_sae_id_count: int = 8
    link_capacity_bytes: int = DEFAULT_CAPACITY_BYTES
    #: blocks a sender leaves unused at the young end of a link store (see kms.key_store)
    link_settle_blocks: int = 0
    #: seconds a receiving end waits for a referenced block its module has not delivered yet
    #: (lets senders use a block as soon as they hold it: link_settle_blocks 0)
    link_incoming_wait_s: float = 0.0
    concurrent_relays: int = 8
    #: keys relayed per ext_keys message when the ready pool of a pair runs short (≥ request);
    #: the surplus waits, ready at both ends, for the pair's next requests
    relay_batch: int = 32
    #: ETSI 014: ready keys of a pair reserved per durable transaction (one fsync) for the
    #: master's next requests; 0 = every release commits with its own (grouped) fsync.
    #: Reserved keys not handed out when the KM stops or dies are voided (kms.key_pool).
    reserve_batch: int = 64
    #: relay-ahead (``kms.relay_ahead``): when a pair's ready keys at the master's KM fall
    #: below this many after a request, the pair's next ``relay_batch`` keys are relayed in
    #: the background (one message in flight per pair; a request that finds the pool empty
    #: waits for it); 0 = off: the request that finds the pool short relays the batch itself
    relay_ahead_low_water: int = 0
    #: most ready keys one pair may hold through relay-ahead (0: low water + relay_batch); a
    #: batch also never takes more than half of the key its first link holds
    relay_ahead_max_keys: int = 0
    resolve_interval_s: float = 1.0
    #: how long the first ETSI 014 request of a pair waits for the controller's configuration
    #: or refusal before it is answered 503 (docs/kms.md)
    config_wait_s: float = 5.0
    #: a request the controller has left unanswered this long is reported again (e.g. the
    #: controller restarted and never heard of it)
    reask_after_s: float = 15.0
    #: how long a terminated session stays visible (state, history) once its configuration
    #: is gone, before the KM forgets it
    terminated_retention_s: float = 60.0
    #: test-only pauses at named relay points (see ``RelayEngine._delay``)
    fault_delays: Mapping[str, float] = field(default_factory=dict)
    #: released / void key rows (tombstones) older than this are pruned, each covered by a
    #: compact refusal rule (``KeyPool.prune_tombstones``, docs/kms.md); keep it far above
    #: relay timeouts, idle timeouts and any outage after which a KM must resolve its
    #: pending relays. 0 = tombstones are kept for ever
    tombstone_retention_s: float = 3600.0
    #: how often the housekeeping prunes tombstones (Unix-time seconds)
    tombstone_prune_interval_s: float = 10.0


@dataclass(frozen=True)
class Route:
    """How keys for an SAE pair leave this KM."""

    session: str | None       # app_id, or None for a controller-less direct session
    next_node: str | None     # None: both SAEs are local
    priority: int = 0
    leg: str | None = None    # route leg (VIRT link) of a multipath session


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
                 clock: Callable[[], float] = time.time, config: KmConfig = KmConfig(),
                 telemetry: KmTelemetry | None = None,
                 locate_km: Callable[[str], str] | None = None) -> None:
        """``locate_km(node)``: the base URL of any KM of the network that the directory
        gives none for (it lists its neighbours' only); KM-to-KM messages that skip the
        relays (004 stream control, PQC) go there."""
        self.node_name = node_name
        #: session events (``<state_dir>/events.jsonl``) and Prometheus metrics
        self.telemetry = telemetry or KmTelemetry.for_node_dir(node_name, Path(state_dir))
        self.qkdn_id = qkdn_id.lower()
        self.config = config
        self.tls = tls
        self._dir = Path(state_dir) / "km"
        self._directory = directory
        self._notify = notify or (lambda body: None)
        self._clock = clock
        self._lock = threading.RLock()
        #: notified after every running configuration applied (requests waiting for theirs)
        self._configured = threading.Condition()
        #: session state changes held while a configuration is applied (by session)
        self._held_states: dict[str, dict] | None = None
        self._holder: int | None = None   #: the thread applying that configuration
        self._stores: dict[str, LinkKeyStore] = {}
        self._forwarding = ForwardingTable()
        self._running: dict = {}
        self._sessions: dict[str, KmSession] = {}
        self._buckets: dict[str, TokenBucket] = {}
        #: refusals by the session they ended (newest last, bounded)
        self._refusals: dict[str, Refusal] = {}
        self._refusals_seen: frozenset[str] = frozenset()
        self._leg_credits: dict[str, dict[str, float]] = {}   # multipath: bits owed per leg
        self._key_arrived = threading.Condition()
        #: qkd_app entries parsed by earlier commits (only new or changed ones are parsed)
        self._parsed_sessions = SessionParseCache()
        self.pool = KeyPool(self._dir / "keys.sqlite", reserve_batch=config.reserve_batch,
                            reserve_ahead=config.reserve_batch > 0,
                            tombstone_retention_s=config.tombstone_retention_s)
        self._next_prune = 0.0   #: Unix time of the next tombstone prune (tick)
        #: Unix time as version 7 key_IDs carry it (``new_key_ids``), for tombstone ages
        self.wall_clock: Callable[[], float] = time.time
        if self.pool.recovered_void():
            log.info("%s: %d key(s) reserved but never handed out before the last stop voided",
                     node_name, len(self.pool.recovered_void()))
        self.gate = PriorityGate(config.concurrent_relays)
        self.relay = RelayEngine(RelayContext(
            node_name=node_name, qkdn_id=self.qkdn_id, directory=lambda: self._directory,
            forwarding=lambda: self._forwarding, link_store=self.store_for_peer, pool=self.pool,
            local_saes=self.local_saes, clock=clock, control_handler=self._handle_control,
            fault_delays=config.fault_delays, on_hop=self.telemetry.relay_hop,
            await_rule=self.await_forwarding_rule, locate_km=locate_km),
            RelayTls(tls.ca, tls.cert, tls.key))
        self.streams: StreamManager | None = None  # set when the 004 app is built
        #: hybrid / post-quantum provisioning between endpoint KMs (ADR 0009)
        self.hybrid = HybridProvisioner(self)
        self._links_down: set[str] = set()
        self._links_full: set[str] = set()   #: links whose store refuses blocks (logged once)
        #: per session: provenance -> [keys, bits] delivered to local SAEs; last mode
        self._delivered: dict[str, dict[str, list[int]]] = {}
        self._modes: dict[str, str] = {}
        #: sessions an ETSI 014 call used (a 004 stream may not take their ID; its CLOSE
        #: leaves them to 014)
        self._used_by_014: set[str] = set()
        #: one relay-ahead at a time per (master, slave) (see _produce)
        self._relay_locks: dict[tuple[str, str], threading.Lock] = {}
        self._ahead = RelayAheadPolicy(config.relay_ahead_low_water,
                                       min(config.relay_batch, config.max_key_per_request),
                                       config.relay_ahead_max_keys)
        #: background relay-ahead threads by (master, slave, size) (at most one per pair)
        self._ahead_threads: dict[tuple[str, str, int], threading.Thread] = {}
        #: ready keys per pair as last counted, minus the keys served since (an estimate:
        #: expiry and synchronous relays are not tracked; a low one only costs a recount)
        self._ahead_estimate: dict[tuple[str, str, int], int] = {}
        self._server: HttpsServer | None = None
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._open_link_stores(directory.links)
        self.telemetry.bind(self)

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
                store = self._add_store(qkdl_id, self._new_store(peer_node))
            return store

    def _new_store(self, peer_node: str) -> LinkKeyStore:
        """Open (or create) the store of the link to ``peer_node``; not registered yet."""
        qkdl_id = self._directory.link_to(peer_node)
        remote = self._directory.node(peer_node).qkdn_id
        capacity = self.config.link_capacity_bytes
        if self._forwarding.key_store_capacity_bits:
            capacity = self._forwarding.key_store_capacity_bits // 8
        return LinkKeyStore(self._dir / "links" / f"{qkdl_id}.sqlite", qkdl_id, self.qkdn_id,
                            remote, capacity, self.config.link_settle_blocks,
                            self.config.link_incoming_wait_s)

    def _add_store(self, qkdl_id: str, store: LinkKeyStore) -> LinkKeyStore:
        """Register ``store`` (caller holds the lock)."""
        store.add_listener(self._on_key_material)
        self._stores[qkdl_id] = store
        return store

    def _open_link_stores(self, peers: Iterable[str]) -> None:
        """Open the stores of the links to ``peers`` at once (at start). A new store costs
        about nine disk flushes (WAL set-up, schema): a hub's five stores, one after the
        other, kept its QKD modules from starting for 5 × 9 flushes; opened in threads, the
        flushes overlap (docs/twin.md, "From qkdn up to the first key")."""
        todo = [p for p in peers if self._directory.link_to(p) not in self._stores]
        if len(todo) < 2:
            for peer in todo:
                self.store_for_peer(peer)
            return
        with ThreadPoolExecutor(max_workers=len(todo), thread_name_prefix="km-store") as pool:
            opened = list(pool.map(self._new_store, todo))
        with self._lock:
            for peer, store in zip(todo, opened, strict=True):
                qkdl_id = self._directory.link_to(peer)
                if qkdl_id in self._stores:
                    store.close()
                else:
                    self._add_store(qkdl_id, store)

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

    def deliver_many(self, qkdl_id: str, blocks: list[tuple[int, bytes]]) -> None:
        """KeySink for a batch of blocks of ``qkdl_id`` (one store transaction); a full
        store is logged when it starts refusing, not for every block."""
        try:
            _, refused = self.store(qkdl_id).deliver_many(blocks)
        except KmsError as exc:
            log.warning("%s: blocks of link %s dropped: %s", self.node_name, qkdl_id, exc)
            return
        full = qkdl_id in self._links_full
        if refused and not full:
            self._links_full.add(qkdl_id)
            log.warning("%s: link %s store full: new blocks are dropped", self.node_name,
                        qkdl_id)
        elif not refused and full:
            self._links_full.discard(qkdl_id)

    def _on_key_material(self, qkdl_id: str) -> None:
        self.telemetry.key_material(qkdl_id)
        with self._key_arrived:
            self._key_arrived.notify_all()

    def set_link_up(self, qkdl_id: str, up: bool) -> None:
        """The node's QKD module of ``qkdl_id`` reports key generation running or stopped
        (link cut, peer end down): sessions with a fallback policy treat a down link as
        QKD key being short (ADR 0009)."""
        with self._lock:
            if up:
                self._links_down.discard(qkdl_id.lower())
            else:
                self._links_down.add(qkdl_id.lower())

    def link_is_up(self, qkdl_id: str) -> bool:
        return qkdl_id.lower() not in self._links_down

    def wait_for_key_material(self, timeout: float) -> None:
        with self._key_arrived:
            self._key_arrived.wait(timeout)

    def apply_running_config(self, running: Mapping[str, Any]) -> None:
        """Datastore listener: rebuild the forwarding table; start/stop sessions accordingly."""
        table = build_forwarding_table(running, parsed=self._parsed_sessions)
        with self._lock, self._coalesced_notifications():
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
                    self.telemetry.session_renamed(session.session_id, app_id)
                    self._sessions.pop(session.session_id, None)
                    session.session_id = app_id
                    self._sessions[app_id] = session
                if session.state in (SessionState.AUTHENTICATING, SessionState.USER_ACCEPTED) or \
                        old.sessions.get(app_id) != cfg:
                    session.configure(cfg.idle_timeout)
                self._buckets.pop(app_id, None)
            for app_id, rule in table.rules.items():   # a forwarding rule without a qkd_app
                if app_id not in table.sessions and old.rules.get(app_id) != rule:
                    self.telemetry.path_configured(app_id, self._session_links(app_id))
            for app_id in set(self._leg_credits) - set(table.legs):
                self._leg_credits.pop(app_id, None)
            for app_id in set(old.sessions) - set(table.sessions):
                session = self._sessions.get(app_id)
                if session is not None and session.state is not SessionState.TERMINATED:
                    session.fire(SessionEvent.DELETED)
                    self._release_session(app_id)
            self._apply_refusals(refusals_from_running(running))
            self._forget_terminated(table)
        with self._configured:
            self._configured.notify_all()

    def _apply_refusals(self, refusals: Mapping[str, Refusal]) -> None:
        """End the waiting requests the controller refused (new km_refusals entries): by
        request_id, else by SAE pair. Caller holds the lock."""
        for request_id in set(refusals) - self._refusals_seen:
            refusal = refusals[request_id]
            session = self._sessions.get(f"pending:{request_id}")
            if session is None or session.state is SessionState.TERMINATED:
                pair = frozenset({refusal.sae_id, refusal.peer_sae_id or ""})
                session = next((s for s in self._sessions.values()
                                if s.session_id.startswith("pending:") and s.sae_ids == pair
                                and s.state is SessionState.AUTHENTICATING), None)
            if session is None:
                continue
            log.info("%s: request of %s refused by the controller: %s", self.node_name,
                     refusal.sae_id, refusal.reason)
            self._refusals[session.session_id] = refusal
            while len(self._refusals) > 1000:
                self._refusals.pop(next(iter(self._refusals)))
            session.fire(SessionEvent.DELETED)
            self._sessions.pop(session.session_id, None)
        self._refusals_seen = frozenset(refusals)

    def refusal_for(self, session: KmSession) -> Refusal | None:
        """The controller's refusal that ended ``session``, if any."""
        with self._lock:
            return self._refusals.get(session.session_id)

    def await_configuration(self, session: KmSession, timeout_s: float) -> None:
        """Wait (up to ``timeout_s``) while the controller decides on ``session``; raise
        :class:`SessionRefused` if it refused. Returns at once for an active session."""
        self._await_configured(lambda: session.state not in (SessionState.AUTHENTICATING,
                                                              SessionState.USER_ACCEPTED),
                               timeout_s)
        if session.state is SessionState.TERMINATED:
            refusal = self.refusal_for(session)
            if refusal is not None:
                raise SessionRefused(refusal)

    def await_forwarding_rule(self, session_id: str, timeout_s: float) -> bool:
        """Wait (up to ``timeout_s``) until this KM holds a forwarding rule for
        ``session_id``; whether it does. Woken by each configuration applied."""
        return self._await_configured(lambda: session_id in self._forwarding.rules, timeout_s)

    def _await_configured(self, done: Callable[[], bool], timeout_s: float) -> bool:
        """Wait (up to ``timeout_s``) until ``done()``, looked at after each configuration
        applied; whether it is. ``done`` is read under the condition's lock, so a
        configuration cannot slip in between the look and the wait; the 0.25-s timeout also
        catches a change made elsewhere. (A 20-ms sleep loop woke every waiting request 50
        times a second: 32 waiting clients, ~1,600 wake-ups/s.)"""
        deadline = time.monotonic() + timeout_s
        with self._configured:
            while not done():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._configured.wait(min(0.25, remaining))
        return True

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
        self.telemetry.transition(t, links=lambda: self._session_links(t.session_id))
        if t.session_id.startswith("pending:"):
            return  # no app_id yet: the controller knows it only by sdqkdn_application_new
        if t.event in (SessionEvent.KEY_REQUEST, SessionEvent.KEY_DELIVERED) and t.old is t.new:
            return
        state = notifications.session_state(t.session_id, t.new.value, _REASONS.get(t.event))
        held = self._held_states
        if held is not None and self._holder == threading.get_ident():
            held.pop(t.session_id, None)    # one configuration applied: its last state
            held[t.session_id] = state
        else:
            self._notify(state)
        if t.new is SessionState.TERMINATED:
            self._flush_held_state(t.session_id)
            self._notify(notifications.application_disconnected(t.session_id))

    @contextlib.contextmanager
    def _coalesced_notifications(self) -> Iterator[None]:
        """While one configuration is applied, each session's state changes are told to
        the controller once, in the state the session ends in (a configured session goes
        authenticating → user-accepted → operative in one step: one notification, not two;
        per relay KM of a path, one NETCONF notification less to send and to read). Only the
        applying thread's transitions are held (other threads' are told at once). Every
        transition still goes to the event log. Caller holds the KM's lock."""
        self._held_states, self._holder = {}, threading.get_ident()
        try:
            yield
        finally:
            held, self._held_states, self._holder = self._held_states, None, None
            for state in held.values():
                self._notify(state)

    def _flush_held_state(self, session_id: str) -> None:
        """Send a held state change of ``session_id`` now (before what must follow it)."""
        if self._held_states is not None and self._holder == threading.get_ident():
            state = self._held_states.pop(session_id, None)
            if state is not None:
                self._notify(state)

    def _session_links(self, session_id: str) -> list[LinkKeyStore]:
        """The link stores a session uses at this KM (its path neighbours)."""
        rule = self._forwarding.rules.get(session_id)
        peers: list[str] = []
        try:
            if rule is not None:
                peers = [self._directory.node_by_qkdn_id(h).name
                         for h in (rule.prev_hop, rule.next_hop) if h]
            else:  # controller-less direct session: the adjacent peer SAE's node
                session = self._sessions.get(session_id)
                nodes = {self._directory.saes.get(s) for s in (session.sae_ids if session else ())}
                peers = [n for n in nodes if n and n != self.node_name
                         and self._directory.is_adjacent(n)]
            return [self.store_for_peer(p) for p in peers]
        except KmsError:
            return []

    def report_key_request(self, session_id: str, number: int, bits: int,
                           outcome: notifications.KeyRequestOutcome,
                           delivered: list[KeyRecord] | None = None) -> None:
        """Emit ``km_key_request`` (the controller resets its session timer on it), with the
        provenance of the keys it delivered."""
        if not session_id.startswith("pending:"):
            self._notify(notifications.key_request(
                session_id, number, bits, outcome,
                delivered=provenance_counts(delivered) if delivered else None))

    def record_delivery(self, session_id: str, records: list[KeyRecord], *,
                        decides_mode: bool, reason: str = "") -> None:
        """Count keys handed to local SAEs per provenance; the KM that decides the mode
        (014 master's KM, 004 originator) notifies when the session's mode changes."""
        if not records:
            return
        with self._lock:
            per = self._delivered.setdefault(session_id, {p.value: [0, 0] for p in Provenance})
            for record in records:
                entry = per.setdefault(record.provenance, [0, 0])
                entry[0] += 1
                entry[1] += len(record.key or b"") * 8
            mode = records[-1].provenance
            previous = self._modes.get(session_id, Provenance.QKD.value)
            self._modes[session_id] = mode
        if decides_mode and mode != previous and not session_id.startswith("pending:"):
            why = "QKD key available" if mode == Provenance.QKD.value else reason
            log.info("%s: session %s now receives %s keys (%s)", self.node_name, session_id,
                     mode, why)
            self._notify(notifications.key_mode_change(session_id, mode, previous, why))

    def delivered_by_provenance(self) -> dict[str, dict[str, list[int]]]:
        with self._lock:
            return {s: {p: list(v) for p, v in per.items()} for s, per in self._delivered.items()}

    def key_modes(self) -> dict[str, str]:
        with self._lock:
            return dict(self._modes)

    def used_by_014(self, session_id: str) -> bool:
        """An ETSI 014 call was served on this session (it is not a 004 stream's own)."""
        with self._lock:
            return session_id.lower() in self._used_by_014 or session_id in self._used_by_014

    def _release_session(self, session_id: str, *, streams: bool = True) -> None:
        self._used_by_014.discard(session_id)
        self._buckets.pop(session_id, None)
        self.hybrid.drop_session(session_id)
        self._delivered.pop(session_id, None)    # the controller keeps the session's totals
        self._modes.pop(session_id, None)
        if streams and self.streams is not None:
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
            for session in list(self._sessions.values()):
                if session.sae_ids == pair and session.state is not SessionState.TERMINATED:
                    if not self._unanswered(session):
                        return session
                    # the controller never answered (it may have restarted): ask again
                    session.fire(SessionEvent.DELETED)
                    self._sessions.pop(session.session_id, None)
            if cfg is not None:
                session = self._new_session(cfg.app_id, pair)
                self.telemetry.session_requested(cfg.app_id)
                session.configure(cfg.idle_timeout)
                return session
            request_id = str(uuid.uuid4())
            if self.config.require_controller:  # before the notification: a refusal may
                pending = self._new_session(f"pending:{request_id}", pair)  # come at once
            self._notify(notifications.application_new(
                master, [slave], self.qkdn_id, priority, dict(qos or {}), interface=interface,
                key_stream_id=key_stream_id, etsi004_qos=dict(etsi004_qos) if etsi004_qos else None,
                request_id=request_id))
            if self.config.require_controller:
                return pending
            session = self._new_session(direct_session_id(master, slave), pair)
            self.telemetry.session_requested(session.session_id)
            session.configure(None)
            return session

    def _unanswered(self, session: KmSession) -> bool:
        """A request the controller has left without an answer for ``reask_after_s``."""
        return session.session_id.startswith("pending:") and \
            session.state is SessionState.AUTHENTICATING and \
            self._clock() - session.last_activity >= self.config.reask_after_s

    def route_for(self, master: str, slave: str, session: KmSession) -> Route:
        """Where keys for this pair go from here."""
        if not session.active:
            raise SessionError(f"session for this SAE pair is {session.state.value}; retry later")
        peer_node = self._directory.node_of_sae(slave)
        if peer_node == self.node_name:
            return Route(session.session_id, None)
        cfg = self._forwarding.sessions.get(session.session_id)
        if cfg is not None and session.session_id in self._forwarding.rules:
            return self.leg_routes(Route(session.session_id, None, cfg.priority))[0]
        if self.config.require_controller:
            raise NoRoute(f"session {session.session_id} has no forwarding rule here")
        if not self._directory.is_adjacent(peer_node):
            raise NoRoute(f"{peer_node} is not adjacent and no path is configured")
        return Route(None, peer_node, cfg.priority if cfg else 0)

    # -- multipath (docs/adr/0011-multipath.md) ------------------------------------------------
    def leg_routes(self, route: Route) -> list[Route]:
        """The route of each leg of ``route.session``, in the order the next relay message
        should try them (one route for a single-path session)."""
        legs = self._forwarding.legs_of(route.session) if route.session else ()
        if not legs:
            return [route]
        with self._lock:
            credits = dict(self._leg_credits.get(route.session or "", {}))
        ranked = rank_legs(legs, credits) if len(legs) > 1 else list(legs)
        out = []
        for rule in ranked:
            nxt = rule.forward_from(None)
            out.append(Route(route.session, self._directory.node_by_qkdn_id(nxt).name,
                             route.priority, rule.leg if len(legs) > 1 else None))
        return out

    def legs_for_message(self, route: Route, message_bytes: int) -> list[Route]:
        """The legs a relay message of ``message_bytes`` key bytes may take, best first: the
        most owed legs whose first link holds enough key for it, then the others."""
        if route.session is None or route.next_node is None or \
                not self._forwarding.is_multipath(route.session):
            return [route]
        candidates = self.leg_routes(route)
        ready = [c for c in candidates
                 if self.store_for_peer(c.next_node).available_outgoing() >= message_bytes + 64]
        return ready + [c for c in candidates if c not in ready]

    def pick_leg(self, route: Route, message_bytes: int) -> Route:
        """The leg the next relay message of ``message_bytes`` key bytes takes (the first of
        :meth:`legs_for_message`)."""
        return self.legs_for_message(route, message_bytes)[0]

    def note_leg_use(self, route: Route, bits: int) -> None:
        """Account ``bits`` relayed over ``route.leg`` (multipath scheduling)."""
        if route.session is None or route.leg is None:
            return
        legs = self._forwarding.legs_of(route.session)
        used = next((rule for rule in legs if rule.leg == route.leg), None)
        if used is None:
            return
        with self._lock:
            self._leg_credits[route.session] = account(
                legs, self._leg_credits.get(route.session, {}), used, bits)

    def _charge(self, session: KmSession, bits: int) -> None:
        cfg = self._forwarding.sessions.get(session.session_id)
        if cfg is None:
            return
        rate = cfg.token_rate or cfg.max_bandwidth
        if not rate:
            return
        size = cfg.bucket_size or rate   # absent: one second of token_rate (YANG)
        for attempt in range(2):
            now = time.monotonic()
            with self._lock:
                bucket = self._buckets.get(session.session_id)
                if bucket is None:
                    bucket = self._buckets[session.session_id] = TokenBucket.full(size, rate, now)
                if bucket.try_consume(bits, now):
                    return
                turn = bucket.next_turn(bits, now, horizon=MAX_HOLD_S)
            if attempt or turn > SHORT_WAIT_S:
                # refused before any key work; the caller's turn: kms.etsi014.refusal_headers
                raise RateLimited(f"session {session.session_id}: key rate above the agreed "
                                  f"{rate} bit/s", retry_after=turn)
            time.sleep(turn)   # its tokens are due within SHORT_WAIT_S: wait, no lock held

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

    def token_retry_after(self, session_id: str, bits: int) -> float | None:
        """Seconds until the session's token bucket could give ``bits`` (None: no bucket)."""
        with self._lock:
            bucket = self._buckets.get(session_id)
            return None if bucket is None else bucket.retry_after(bits, time.monotonic())

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
                for leg in self.leg_routes(route):
                    available = self.store_for_peer(leg.next_node).available_outgoing()
                    stored += max(0, available - 64) * 8 // size
        except KmsError:
            pass
        return KeyStatus(
            source_km=self.node_name, target_km=peer_node, master_sae_id=master,
            slave_sae_id=slave, key_size=size,
            stored_key_count=min(stored, self.config.max_key_count),
            max_key_count=self.config.max_key_count,
            max_key_per_request=self.config.max_key_per_request,
            max_key_size=self.config.max_key_size, min_key_size=self.config.min_key_size,
            max_sae_id_count=self.config.max_sae_id_count)

    def enc_keys(self, master: str, slave: str, number: int, size: int,
                 additional_slaves: Sequence[str] = ()) -> list[KeyRecord]:
        """Keys for master → slave; each released to the master once, ready for the slave.

        ``additional_slaves`` (ETSI 014 ``additional_slave_SAE_IDs``): the same keys are
        delivered to each of them too (see :meth:`_produce_shared`). One path for both: each
        (master, slave) pair's session records the request, waits for the controller's
        configuration, is charged, counts the keys per provenance and reports the outcome
        (``km_key_request``)."""
        if slave not in self._directory.saes or master not in self.local_saes():
            raise Unauthorized("unknown slave SAE or master SAE not served by this KM")
        if master == slave:
            raise BadRequest("master and slave SAE must differ")
        if not 1 <= number <= self.config.max_key_per_request:
            raise BadRequest(f"number must be 1..{self.config.max_key_per_request}")
        self.check_size(size)
        slaves = [slave, *additional_slaves]
        if additional_slaves:
            self._check_additional_slaves(master, slaves)
        sessions = [self.session_for_pair(master, s) for s in slaves]   # opens every pair
        with self._lock:
            self._used_by_014.update(s.session_id for s in sessions)
        bind_session(sessions[0].session_id)
        for session in sessions:
            self.telemetry.request(session.session_id, "014", "enc_keys", master)
        if self.config.require_controller:  # the first request waits for the controller
            deadline = time.monotonic() + self.config.config_wait_s
            for session in sessions:
                self.await_configuration(session, max(0.0, deadline - time.monotonic()))
        outcome = notifications.KeyRequestOutcome.REFUSED
        delivered: list[KeyRecord] = []
        try:
            if additional_slaves:
                records, reason = self._produce_shared(master, slaves, sessions, number, size)
            else:
                records, reason = self._produce_single(master, slave, sessions[0], number, size)
            outcome = notifications.KeyRequestOutcome.DELIVERED
            delivered = records
            for session in sessions:
                self.record_delivery(session.session_id, records, decides_mode=True,
                                     reason=reason)
                self.telemetry.key_returned(session.session_id, "014", "enc_keys", master,
                                            len(records), number * size)
            return records
        except RateLimited:
            outcome = notifications.KeyRequestOutcome.RATE_LIMITED
            raise
        except InsufficientKey:
            outcome = notifications.KeyRequestOutcome.INSUFFICIENT_KEY
            raise
        finally:
            for session in sessions:
                self.report_key_request(session.session_id, number, number * size, outcome,
                                        delivered)

    def _check_additional_slaves(self, master: str, slaves: list[str]) -> None:
        if len(slaves) - 1 > self.config.max_sae_id_count:
            raise BadRequest(f"at most {self.config.max_sae_id_count} additional_slave_SAE_IDs "
                             "(max_SAE_ID_count)")
        if len(set(slaves)) != len(slaves) or master in slaves:
            raise BadRequest("additional_slave_SAE_IDs must be distinct and differ from the "
                             "master and the slave")
        if any(s not in self._directory.saes for s in slaves):
            raise BadRequest("unknown SAE in additional_slave_SAE_IDs")

    def _produce_single(self, master: str, slave: str, session: KmSession, number: int,
                        size: int) -> tuple[list[KeyRecord], str]:
        """One slave: keys ready for the pair, relayed, or what the fallback policy allows."""
        route: Route | None
        try:
            route = self.route_for(master, slave, session)
        except NoRoute:
            if fallback_mode(self.hybrid.policy(session.session_id)) is None:
                raise
            route = None      # no path: the session's fallback policy serves it
        self._charge(session, number * size)
        with self._lock:
            session.fire(SessionEvent.KEY_REQUEST)
        try:
            return self._produce_with_fallback(master, slave, number, size, route,
                                               session.session_id)
        finally:
            self._key_done(session)

    def _produce_shared(self, master: str, slaves: list[str], sessions: list[KmSession],
                        number: int, size: int) -> tuple[list[KeyRecord], str]:
        """One set of keys for the master and every slave (ETSI 014 additional slaves).

        Each (master, slave) pair is its own session (with a controller: its own
        ``sdqkdn_application_new``, admission and path); the same fresh keys are relayed over
        each pair's route — the additional slaves' copies first, the first slave's last — and
        released to the master only once every slave's KM acknowledged them. A slave fetches
        its copy once with ``dec_keys`` by the common key_ID. Fresh QKD keys only: keys
        relayed ahead for the pair (master, first slave) are never handed to several slaves,
        and no session's fallback policy applies (a hybrid/pqc key is derived from one
        session's own post-quantum secret, which the other slaves do not share): QKD key
        short on any pair is a 503.
        """
        routes = [self.route_for(master, s, session) for s, session in zip(slaves, sessions)]
        for session in sessions:
            self._charge(session, number * size)
        with self._lock:
            for session in sessions:
                session.fire(SessionEvent.KEY_REQUEST)
        try:
            now = self._clock()
            material = list(zip(new_key_ids(number),
                                cut_keys(secrets.token_bytes(size // 8 * number), size // 8)))
            order = list(range(1, len(slaves))) + [0]
            for i in order:
                self._deliver_copy(master, slaves[i], routes[i], material, size, now,
                                   primary=i == 0)
            return self.pool.take_named_for_master(master, [k for k, _ in material], now), ""
        finally:
            for session in sessions:
                self._key_done(session)

    def _deliver_copy(self, master: str, slave: str, route: Route,
                      material: list[tuple[str, bytes]], size: int, now: float, *,
                      primary: bool) -> None:
        """Store or relay one slave's copy of ``material``; only the primary copy is
        releasable to the master."""
        cfg = self._forwarding.sessions.get(route.session or "")
        expires = now + cfg.ttl if cfg is not None and cfg.ttl else None
        records = [KeyRecord(key_id if primary else copy_key_id(key_id, slave), master, slave,
                             key, session=route.session, expires=expires)
                   for key_id, key in material]
        if route.next_node is None:
            self.pool.store_ready(records, master_local=primary, slave_local=True, now=now)
            return
        leg = self.pick_leg(route, len(material) * size // 8)
        with self.gate.slot(leg.priority):
            try:
                self.note_leg_use(leg, len(material) * size)
                self.relay.originate(leg.session, leg.next_node, records, master_local=primary,
                                     slave_local=False, leg=leg.leg)
            except RelayUnknown:
                self._kick_resolver()
                raise

    def _key_done(self, session: KmSession) -> None:
        with self._lock:
            if session.state is SessionState.KEY_EXCHANGING:
                session.fire(SessionEvent.KEY_DELIVERED)

    def qkd_shortage(self, next_node: str, bits: int) -> str | None:
        """Why QKD key toward ``next_node`` cannot serve ``bits`` now (None: it can)."""
        qkdl_id = self._directory.links.get(next_node)
        if qkdl_id is None:
            return "no QKD link to the next hop"
        if not self.link_is_up(qkdl_id):
            return "link down"
        if self.store_for_peer(next_node).available_outgoing() < bits // 8 + 64:
            return "insufficient key"
        return None

    def _produce_with_fallback(self, master: str, slave: str, number: int, size: int,
                               route: Route | None, session_id: str
                               ) -> tuple[list[KeyRecord], str]:
        """QKD keys when QKD key suffices; otherwise what the session's fallback policy
        allows (ADR 0009). Returns the keys and why QKD key was short ("" if it was not)."""
        mode = fallback_mode(self.hybrid.policy(session_id))
        if mode is None:
            assert route is not None
            return self._produce(master, slave, number, size, route), ""
        now = self._clock()
        if route is not None and route.next_node is None:
            return self._produce(master, slave, number, size, route), ""
        reason = "no route"
        if route is not None and route.next_node is not None:
            reason = self.qkd_shortage(route.next_node, number * size) or ""
        if reason:
            # QKD key is short: QKD keys relayed ahead, then keys derived ahead, then new ones
            taken = self.pool.take_for_master(master, slave, number, size, now)
        else:
            assert route is not None
            taken = self.pool.take_for_master(master, slave, number, size, now, qkd_only=True)
            missing = number - len(taken)
            if missing == 0:
                return taken, ""
            try:
                return taken + self._produce(master, slave, missing, size, route,
                                             qkd_only=True), ""
            except (InsufficientKey, RelayError, NoRoute) as exc:
                reason = {InsufficientKey: "insufficient key", NoRoute: "no route"}.get(
                    type(exc), "relay failed")
            taken += self.pool.take_for_master(master, slave, missing, size, now)
        missing = number - len(taken)
        if missing == 0:
            return taken, reason
        cfg = self._forwarding.sessions.get(session_id)
        expires = now + cfg.ttl if cfg is not None and cfg.ttl else None
        # derived ahead like relayed keys (relay_batch): one seed and one key message serve
        # this request and the pair's next ones, which find them ready at both ends
        batch = max(missing, min(self.config.relay_batch, self.config.max_key_per_request))
        shells = [KeyRecord(key_id, master, slave, bytes(size // 8), session=session_id,
                            expires=expires) for key_id in new_key_ids(batch)]
        derived = self.hybrid.produce(session_id, mode, shells,
                                      next_node=route.next_node if route else None,
                                      master_local=True, slave_local=False)
        return taken + self.pool.take_named_for_master(
            master, [r.key_id for r in derived[:missing]], now), reason

    def _produce(self, master: str, slave: str, number: int, size: int, route: Route, *,
                 qkd_only: bool = False) -> list[KeyRecord]:
        keys = self._produce_keys(master, slave, number, size, route, qkd_only=qkd_only)
        self._maybe_relay_ahead(master, slave, size, route, len(keys))
        return keys

    def _produce_keys(self, master: str, slave: str, number: int, size: int, route: Route, *,
                      qkd_only: bool = False) -> list[KeyRecord]:
        now = self._clock()
        taken = self.pool.take_for_master(master, slave, number, size, now, qkd_only=qkd_only)
        missing = number - len(taken)
        if missing == 0:
            return taken
        if missing >= self.config.relay_batch:   # no surplus for others: relay in parallel
            return self._produce_missing(master, slave, size, route, now, taken, missing)
        # a batch relayed ahead serves the pair's next requests: one relay at a time per
        # pair, the requests that waited for it (or for a background relay-ahead) take from
        # its surplus (six concurrent requests finding the pool empty used to relay six
        # batches at once)
        with self._relay_lock(master, slave):
            more = self.pool.take_for_master(master, slave, missing, size, now,
                                             qkd_only=qkd_only)
            taken, missing = taken + more, missing - len(more)
            if missing == 0:
                return taken
            return self._produce_missing(master, slave, size, route, now, taken, missing)

    def _relay_lock(self, master: str, slave: str) -> threading.Lock:
        with self._lock:
            return self._relay_locks.setdefault((master, slave), threading.Lock())

    def _fresh_keys(self, master: str, slave: str, size: int, route: Route, now: float,
                    count: int) -> list[KeyRecord]:
        cfg = self._forwarding.sessions.get(route.session or "")
        expires = now + cfg.ttl if cfg is not None and cfg.ttl else None   # app_qos/ttl
        nbytes = size // 8
        keys = cut_keys(secrets.token_bytes(nbytes * count), nbytes)
        return [KeyRecord(key_id, master, slave, key, session=route.session, expires=expires)
                for key_id, key in zip(new_key_ids(count), keys)]

    def _produce_missing(self, master: str, slave: str, size: int, route: Route, now: float,
                         taken: list[KeyRecord], missing: int) -> list[KeyRecord]:
        """Make (local pair) or relay a batch of at least ``missing`` keys and release
        ``missing`` of them with ``taken``."""
        wanted = max(missing, min(self.config.relay_batch, self.config.max_key_per_request))
        attempts_left = RELAY_RACE_ATTEMPTS
        while True:
            records = self._relay_fresh(master, slave, size, route, now, missing, wanted)
            attempts_left -= 1
            # this request's keys; one a concurrent request of the pair took meanwhile is
            # replaced by the batch's surplus (was a 400 "no longer available" under load);
            # if concurrent requests took the surplus too, the keys are not lost (they served
            # those requests) and this request relays again instead of answering 503
            try:
                return taken + self.pool.take_relayed_for_master(
                    master, slave, [r.key_id for r in records[:missing]], size, now)
            except InsufficientKey:
                if not attempts_left:
                    raise
                log.info("%s: keys relayed for a request of %s -> %s were taken by concurrent "
                         "requests of the pair; relaying again", self.node_name, master, slave)

    def _relay_fresh(self, master: str, slave: str, size: int, route: Route, now: float,
                     minimum: int, wanted: int) -> list[KeyRecord]:
        """Make (local pair) or relay ``wanted`` new keys of the pair (at least ``minimum``
        whatever the link holds now); on return they are ready at both ends."""
        if route.next_node is None:
            records = self._fresh_keys(master, slave, size, route, now, wanted)
            self.pool.store_ready(records, master_local=True, slave_local=True, now=now)
            return records
        # multipath: a leg that cannot carry the message now (out of key further on) is
        # followed by the next one; a single path has one candidate
        legs = self.legs_for_message(route, minimum * size // 8)
        for attempt, leg in enumerate(legs):
            available = self.store_for_peer(leg.next_node).available_outgoing()
            affordable = (available - 64) // (size // 8) if available > 64 else 0
            records = self._fresh_keys(master, slave, size, route, now,
                                       max(minimum, min(wanted, affordable)))
            with self.gate.slot(leg.priority):
                try:
                    self.note_leg_use(leg, len(records) * size)
                    self.relay.originate(leg.session, leg.next_node, records,
                                         master_local=True, slave_local=False, leg=leg.leg)
                    return records
                except RelayUnknown:
                    self._kick_resolver()
                    raise
                except (RelayRejected, InsufficientKey):
                    if attempt == len(legs) - 1:
                        raise
                    log.info("%s: leg %s of session %s cannot carry this message now; "
                             "trying the next leg", self.node_name, leg.leg, leg.session)
        raise NoRoute(f"session {route.session} has no leg")

    # -- relay-ahead (kms.relay_ahead; docs/kms.md) ---------------------------------------------
    def _maybe_relay_ahead(self, master: str, slave: str, size: int, route: Route,
                           served: int) -> None:
        """After a request of the pair that took ``served`` keys: relay its next batch in the
        background if its ready pool fell below the low-water mark (one relay-ahead per pair
        at a time). The pool is counted (one SQL COUNT over up to ``cap`` rows) only when an
        in-memory estimate, counted down by each request, says it may be low."""
        if not self._ahead.enabled or route.next_node is None or self._stop.is_set():
            return
        pair = (master, slave, size)
        with self._lock:
            estimate = self._ahead_estimate.get(pair)
            if estimate is not None:
                estimate -= served
                self._ahead_estimate[pair] = estimate
                if estimate >= self._ahead.low_water:
                    return
            running = self._ahead_threads.get(pair)
        if running is not None and running.is_alive():
            return
        ready = self.pool.ready_count(master, slave, size)
        with self._lock:
            self._ahead_estimate[pair] = ready
        if ready >= self._ahead.low_water:
            return
        thread = threading.Thread(target=self._relay_ahead, args=(master, slave, size, route),
                                  name=f"km-{self.node_name}-ahead", daemon=True)
        with self._lock:
            running = self._ahead_threads.get(pair)
            if (running is not None and running.is_alive()) or self._stop.is_set():
                return
            self._ahead_threads[pair] = thread
        thread.start()

    def _relay_ahead(self, master: str, slave: str, size: int, route: Route) -> None:
        """Background: relay the pair's next batch, holding the pair's relay lock (requests
        that find the pool empty meanwhile wait for this batch and take from it)."""
        try:
            with self._relay_lock(master, slave):
                if self._stop.is_set():
                    return
                ready = self.pool.ready_count(master, slave, size)
                leg = self.pick_leg(route, self._ahead.batch * size // 8)
                count = self._ahead.keys_to_relay(
                    ready, size // 8, self.store_for_peer(leg.next_node).available_outgoing())
                if count <= 0:
                    return
                self._relay_fresh(master, slave, size, route, self._clock(), count, count)
        except KmsError as exc:   # the next request relays (or fails) as without relay-ahead
            log.info("%s: relay-ahead for %s -> %s not done: %s", self.node_name, master,
                     slave, type(exc).__name__)
        except Exception:   # a background thread must not die silently
            log.exception("%s: relay-ahead for %s -> %s failed", self.node_name, master, slave)
        finally:   # the next request counts the pool again
            with self._lock:
                self._ahead_estimate.pop((master, slave, size), None)

    def relay_ahead_running(self) -> int:
        """Background relay-ahead messages in flight (tests, telemetry)."""
        with self._lock:
            return sum(1 for t in self._ahead_threads.values() if t.is_alive())

    def dec_keys(self, slave: str, master: str, key_ids: list[str]) -> list[KeyRecord]:
        """Release the named keys to the slave (all or none)."""
        if not key_ids:
            raise BadRequest("key_IDs must name at least one key")
        if len(key_ids) > self.config.max_key_per_request:
            raise BadRequest(f"at most {self.config.max_key_per_request} key_IDs per request")
        if slave not in self.local_saes():
            raise Unauthorized("SAE not served by this KM")
        cfg = self._forwarding.session_for_pair(master, slave)
        sid = cfg.app_id if cfg else direct_session_id(master, slave)
        bind_session(sid)
        with self._lock:
            self._used_by_014.add(sid)
        self.telemetry.request(sid, "014", "dec_keys", slave)
        records = self.pool.take_for_slave(slave, master, key_ids, self._clock())
        self.telemetry.key_returned(sid, "014", "dec_keys", slave, len(records),
                                    sum(len(r.key or b"") * 8 for r in records))
        self.record_delivery(sid, records, decides_mode=False)
        with self._lock:
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
        return build_operational_state(self.sessions(), self._forwarding, self.link_levels(),
                                       delivered=self.delivered_by_provenance(),
                                       modes=self.key_modes())

    # -- background: resolver, timers, ttl ------------------------------------------------------
    def _kick_resolver(self) -> None:
        with self._key_arrived:
            self._key_arrived.notify_all()

    def tick(self) -> None:
        """One round of housekeeping: idle timers, ttl expiry, pending relays, tombstones."""
        with self._lock:
            # every expiry first (its time is the transition's), then their resources: 500
            # sessions expiring in one tick were released one by one, the last >1 s late
            expired = [s.session_id for s in list(self._sessions.values()) if s.check_timer()]
            for session_id in expired:
                self._release_session(session_id, streams=False)
            self._forget_terminated(self._forwarding)
        if expired and self.streams is not None:   # outside the KM's lock, all at once
            self.streams.on_sessions_terminated(expired)
        self.pool.expire(self._clock())
        self.pool.fold_journal()
        if self.pool.pending_relays():
            self.relay.resolve_pending()
        wall = self.wall_clock()
        if wall >= self._next_prune:
            # in this thread's idle-timer rounds: a short budget, the rest at the next tick
            pruned = self.pool.prune_tombstones(self._clock(), key_id_now=wall,
                                                budget_s=PRUNE_BUDGET_S)
            behind = pruned >= PRUNE_BATCH    # a full batch: more may be due
            self._next_prune = wall + (0.0 if behind else self.config.tombstone_prune_interval_s)

    def next_tick_in(self) -> float:
        """Seconds until the next housekeeping round: ``resolve_interval_s``, or sooner when
        a session's idle timer runs out before that (it closes on time, not up to a whole
        interval late: item 8 of docs/reliability.md)."""
        wait = self.config.resolve_interval_s
        now = self._clock()
        with self._lock:
            for session in self._sessions.values():
                if session.state is SessionState.OPERATIVE and session.idle_timeout:
                    due = session.last_activity + session.idle_timeout - now
                    wait = min(wait, due + 0.005)
        return max(0.005, wait)

    def _housekeeping(self) -> None:
        while not self._stop.wait(self.next_tick_in()):
            try:
                self.tick()
            except Exception:
                log.exception("%s: housekeeping failed", self.node_name)

    # -- lifecycle --------------------------------------------------------------------------------
    def build_app(self):
        from kms.app import create_app
        return create_app(self)

    def start(self, host: str = "127.0.0.1", port: int = 0) -> Self:
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
        with self._lock:
            ahead = list(self._ahead_threads.values())
        for thread in ahead:   # a relay in flight ends within RELAY_TIMEOUT_S
            thread.join(timeout=15)
        self.relay.close()     # its keep-alive connections to the neighbours
        for store in self._stores.values():
            store.close()
        self.pool.close()
        self.telemetry.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def provenance_counts(records: list[KeyRecord]) -> dict[str, tuple[int, int]]:
    """provenance -> (keys, bits) of ``records``."""
    counts: dict[str, tuple[int, int]] = {}
    for record in records:
        keys, bits = counts.get(record.provenance, (0, 0))
        counts[record.provenance] = (keys + 1, bits + len(record.key or b"") * 8)
    return counts


#: RFC 9562 version and variant bits of a UUIDv7's random bytes (first and third of ten)
_VERSION_7 = bytes((b & 0x0F) | 0x70 for b in range(256))
_VARIANT_RFC = bytes((b & 0x3F) | 0x80 for b in range(256))


def new_key_ids(count: int, now_ms: int | None = None) -> list[str]:
    """``count`` fresh key_IDs: version 7 UUIDs (RFC 9562: 48 bits of Unix time in ms, then
    74 random bits from one ``os.urandom`` call), as strings.

    Time-ordered on purpose: the key pool keeps a row (a tombstone once released) for every
    key_ID it saw within its tombstone retention, indexed by key_ID (and prunes older
    tombstones behind a watermark of key_ID times: ``KeyPool.prune_tombstones``); random (version 4) IDs put each new key on a random
    page of that index, so a 1,000-key relay batch rewrote hundreds of index pages at both
    ends (~7 µs of CPU per key at 30,000 keys held). Version 7 IDs of one batch land on the
    index's last pages. They are as unique (74 random bits per millisecond; the pool's primary
    key refuses a repeat anyway) and no more guessable for what they are used for: a key_ID
    names a key, it does not protect it (the KM releases a key only to the SAEs of its pair).
    """
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    stamp = (ms & 0xFFFF_FFFF_FFFF).to_bytes(6, "big").hex()
    head = f"{stamp[:8]}-{stamp[8:]}-"
    raw = bytearray(secrets.token_bytes(10 * count))
    raw[0::10] = raw[0::10].translate(_VERSION_7)
    raw[2::10] = raw[2::10].translate(_VARIANT_RFC)
    h = raw.hex()
    return [f"{head}{h[i:i + 4]}-{h[i + 4:i + 8]}-{h[i + 8:i + 20]}" for i in range(0, 20 * count, 20)]


def cut_keys(material: bytes, nbytes: int) -> list[bytes]:
    """``material`` (one CSPRNG draw for a whole batch) cut into keys of ``nbytes`` bytes: the
    same distribution as one draw per key, for one call.

    >>> cut_keys(bytes(range(6)), 2)
    [b'\\x00\\x01', b'\\x02\\x03', b'\\x04\\x05']
    """
    return [material[i:i + nbytes] for i in range(0, len(material) - nbytes + 1, nbytes)]


def direct_session_id(sae_a: str, sae_b: str) -> str:
    """Session ID of a controller-less pair: the same at both ends."""
    a, b = sorted((sae_a, sae_b))
    return str(uuid.uuid5(DIRECT_SESSION_NS, f"{a}\x00{b}"))
