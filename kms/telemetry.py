"""What a KM tells its operator: session events (``qkdn.event_log``) and Prometheus metrics.

:class:`KmTelemetry` is the one object the KM's code calls at the steps of a key exchange
(``request``, ``key_returned``, ``relay_hop``, ...); each call records the event and bumps the
matching counters. Levels — key stores, sessions by state, relay rejections — are read from
the KM when ``/metrics`` is scraped (:class:`KmCollector`). Nothing here ever sees key bytes:
the hooks take ids, counts and sizes.

Metric names and labels: ``docs/observability.md``.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from kms.errors import (
    BadRequest,
    InsufficientKey,
    KeyNotFound,
    NoRoute,
    RateLimited,
    RelayError,
    SessionError,
    Unauthorized,
)
from kms.session import SessionEvent, SessionState, Transition
from qkdn.event_log import EVENTS_FILE, EventKind, EventRecorder
from qkdn.metrics import new_registry

if TYPE_CHECKING:
    from kms.key_manager import KeyManager
    from kms.key_store import LinkKeyStore

#: A session's link counts as holding key for it from this many bytes on (one 256-bit key
#: plus the 512 bits of one-time MAC keys a relay message consumes).
KEY_AVAILABLE_BYTES = 32 + 64

#: 014 failures → the ``outcome`` label (the 004 status name is its outcome).
_OUTCOMES: tuple[tuple[type[Exception], str], ...] = (
    (RateLimited, "rate-limited"),
    (InsufficientKey, "insufficient-key"),
    (NoRoute, "no-route"),
    (RelayError, "relay-failed"),
    (SessionError, "not-authorised-yet"),
    (BadRequest, "bad-request"),
    (Unauthorized, "unauthorized"),
    (KeyNotFound, "not-found"),
)


def outcome_of(exc: BaseException | None) -> str:
    """The ``outcome`` label of a 014 call that ended with ``exc`` (None = delivered).

    >>> outcome_of(None), outcome_of(RateLimited("x")), outcome_of(ValueError())
    ('delivered', 'rate-limited', 'error')
    """
    if exc is None:
        return "delivered"
    for kind, label in _OUTCOMES:
        if isinstance(exc, kind):
            return label
    return "error"


class KmTelemetry:
    """Events and counters of one KM (thread-safe)."""

    def __init__(self, node: str, recorder: EventRecorder | None = None,
                 registry: CollectorRegistry | None = None) -> None:
        self.node = node
        self.recorder = recorder or EventRecorder(node, None)
        self.registry = registry if registry is not None else new_registry()
        r = self.registry
        self.requests = Counter("qkdn_km_requests", "Application API calls by outcome",
                                ["api", "operation", "outcome"], registry=r)
        self.keys_delivered = Counter("qkdn_km_keys_delivered",
                                      "Keys handed to applications", ["api"], registry=r)
        self.bits_delivered = Counter("qkdn_km_key_bits_delivered",
                                      "Key bits handed to applications", ["api"], registry=r)
        self.relay_hops = Counter("qkdn_km_relay_hops",
                                  "Relay messages by this KM's role (source: acknowledged, "
                                  "relay/destination: received and authenticated)", ["role"],
                                  registry=r)
        self.relay_keys = Counter("qkdn_km_relay_keys", "End-to-end keys in those messages",
                                  ["role"], registry=r)
        self.events = Counter("qkdn_km_events", "Session events recorded", ["event"],
                              registry=r)
        self._lock = threading.Lock()
        self._aliases: dict[str, str] = {}          # session ID -> the pending id it replaced
        self._asked: set[str] = set()               # sessions a local application asked for
        self._watching: dict[str, list[LinkKeyStore]] = {}   # session -> links without key yet
        self._links_seen: set[str] = set()
        self._collector: KmCollector | None = None
        #: labelled counters by (metric, labels): ``Counter.labels`` takes a lock and builds
        #: the label tuple on every call (~10 µs; four per key request)
        self._children: dict[tuple, Any] = {}

    def _child(self, metric: Counter, *labels: str) -> Any:
        key = (id(metric), labels)     # the metrics live as long as this object
        child = self._children.get(key)
        if child is None:
            child = self._children.setdefault(key, metric.labels(*labels))
        return child

    @classmethod
    def for_node_dir(cls, node: str, node_dir: Path,
                     registry: CollectorRegistry | None = None) -> KmTelemetry:
        """Telemetry recording to ``<node_dir>/events.jsonl``."""
        return cls(node, EventRecorder(node, Path(node_dir) / EVENTS_FILE), registry)

    def bind(self, km: KeyManager) -> None:
        """Register the scrape-time collector of ``km``'s levels (once)."""
        if self._collector is None:
            self._collector = KmCollector(km)
            self.registry.register(self._collector)

    def _record(self, kind: EventKind, session: str | None, **detail) -> None:
        self.recorder.record(kind, session, **detail)
        self._child(self.events, kind.value).inc()

    # -- application API --------------------------------------------------------------------
    def request(self, session: str, api: str, operation: str, sae: str) -> None:
        """An ETSI 014/004 call for ``session`` arrived from ``sae``."""
        self._record(EventKind.REQUEST, session, api=api, operation=operation, sae=sae)

    def count_request(self, api: str, operation: str, outcome: str) -> None:
        """The outcome of an application call (counted at the HTTP edge)."""
        self._child(self.requests, api, operation, outcome).inc()

    def key_returned(self, session: str | None, api: str, operation: str, sae: str, keys: int,
                     bits: int) -> None:
        self._child(self.keys_delivered, api).inc(keys)
        self._child(self.bits_delivered, api).inc(bits)
        self._record(EventKind.KEY_RETURNED, session, api=api, operation=operation, sae=sae,
                     keys=keys, bits=bits)

    # -- relay ------------------------------------------------------------------------------
    def relay_hop(self, role: str, session: str | None, neighbour: str, keys: int) -> None:
        """``role`` source: the ack of a message sent to ``neighbour`` arrived; relay /
        destination: an authentic message from ``neighbour`` arrived."""
        self._child(self.relay_hops, role).inc()
        self._child(self.relay_keys, role).inc(keys)
        if role != "source":
            self._record(EventKind.RELAY_HOP_RECEIVED, session, role=role,
                         from_node=neighbour, keys=keys)

    # -- session life cycle -----------------------------------------------------------------
    def session_renamed(self, pending: str, session: str) -> None:
        """A pending session (a local request waiting for the controller) got its ID: the
        controller's verdict reached this KM."""
        with self._lock:
            self._aliases[session] = pending
            self._asked.add(session)

    def session_requested(self, session: str) -> None:
        """A local application's request opens ``session`` (already configured, or
        without a controller): it is authorised on the spot."""
        with self._lock:
            self._asked.add(session)

    def transition(self, t: Transition, *,
                   links: Callable[[], Iterable[LinkKeyStore]]) -> None:
        """A session state change at this KM; ``links``: the session's link stores here
        (read on configuration). *authenticated* is recorded only where a local application
        asked for the session (a relay, or the 014 slave's KM, just gets configured)."""
        if t.event is SessionEvent.ACCESS_GRANTED:
            with self._lock:
                asked = t.session_id in self._asked
                self._asked.discard(t.session_id)
                pending = self._aliases.pop(t.session_id, None)
            if asked:
                detail = {"pending": pending} if pending else {}
                self._record(EventKind.AUTHENTICATED, t.session_id, **detail)
        elif t.event is SessionEvent.CONFIGURED:
            self.path_configured(t.session_id, list(links()))
        if t.new is SessionState.TERMINATED and t.old is not SessionState.TERMINATED:
            with self._lock:
                self._watching.pop(t.session_id, None)
                self._aliases.pop(t.session_id, None)
                self._asked.discard(t.session_id)
            self._record(EventKind.SESSION_TERMINATED, t.session_id, reason=t.event.value)

    def path_configured(self, session: str, stores: list[LinkKeyStore]) -> None:
        """The session's configuration / forwarding rule is applied here; its links are
        ``stores`` (QKD key available is recorded once they hold key)."""
        self._record(EventKind.PATH_CONFIGURED, session,
                     qkdl_ids=",".join(s.qkdl_id for s in stores) or None)
        self._watch(session, stores)

    def _watch(self, session: str, stores: list[LinkKeyStore]) -> None:
        with self._lock:
            if session in self._watching:
                return
        waiting = [s for s in stores if not _holds_key(s)]
        if not waiting:
            self._record(EventKind.QKD_KEY_AVAILABLE, session,
                         qkdl_ids=",".join(s.qkdl_id for s in stores) or None)
            return
        with self._lock:
            self._watching[session] = waiting

    def key_material(self, qkdl_id: str, store: LinkKeyStore | None = None) -> None:
        """A block arrived on link ``qkdl_id``: the link's first (link-level event) and the
        first for sessions that were waiting for key on it."""
        with self._lock:
            first = qkdl_id not in self._links_seen
            self._links_seen.add(qkdl_id)
            waiting = {sid: stores for sid, stores in self._watching.items()
                       if any(s.qkdl_id == qkdl_id for s in stores)}
        if first:
            self._record(EventKind.QKD_KEY_AVAILABLE, None, qkdl_id=qkdl_id)
        for session, stores in waiting.items():
            still = [s for s in stores if not _holds_key(s)]
            with self._lock:
                if session not in self._watching:
                    continue
                if still:
                    self._watching[session] = still
                    continue
                del self._watching[session]
            self._record(EventKind.QKD_KEY_AVAILABLE, session,
                         qkdl_ids=",".join(s.qkdl_id for s in stores))

    def close(self) -> None:
        self.recorder.close()


def _holds_key(store: LinkKeyStore) -> bool:
    levels = store.levels()
    return levels.outgoing_bytes + levels.incoming_bytes >= KEY_AVAILABLE_BYTES


class KmCollector(Collector):
    """Key-store levels, sessions by state and relay rejections of a KM, read at scrape."""

    def __init__(self, km: KeyManager) -> None:
        self._km = km

    def describe(self) -> list:
        return []  # read at scrape time; no name checks at registration

    def collect(self) -> Iterator:
        km = self._km
        stored = GaugeMetricFamily("qkdn_km_key_store_bytes",
                                   "Key bytes held per link and half (outgoing = this end "
                                   "sends with it)", labels=["qkdl_id", "half"])
        capacity = GaugeMetricFamily("qkdn_km_key_store_capacity_bytes",
                                     "Capacity of each link's key store", labels=["qkdl_id"])
        consumed = CounterMetricFamily("qkdn_km_key_store_consumed_bytes",
                                       "Link key bytes consumed", labels=["qkdl_id"])
        refused = CounterMetricFamily("qkdn_km_key_store_refused_blocks",
                                      "QKD blocks dropped because the store was full",
                                      labels=["qkdl_id"])
        blocks = GaugeMetricFamily("qkdn_km_key_store_blocks",
                                   "QKD blocks held per link", labels=["qkdl_id"])
        try:
            levels = km.link_levels()
        except sqlite3.Error:  # a store closing under us (shutdown): no levels this scrape
            levels = []
        for lv in levels:
            stored.add_metric([lv.qkdl_id, "outgoing"], lv.outgoing_bytes)
            stored.add_metric([lv.qkdl_id, "incoming"], lv.incoming_bytes)
            capacity.add_metric([lv.qkdl_id], lv.capacity_bytes)
            consumed.add_metric([lv.qkdl_id], lv.consumed_bytes)
            refused.add_metric([lv.qkdl_id], lv.refused_blocks)
            blocks.add_metric([lv.qkdl_id], lv.blocks_delivered)
        yield from (stored, capacity, consumed, refused, blocks)
        sessions = GaugeMetricFamily("qkdn_km_sessions", "KM sessions by state",
                                     labels=["state"])
        counts = {state: 0 for state in SessionState}
        for session in km.sessions().values():
            counts[session.state] += 1
        for state, count in counts.items():
            sessions.add_metric([state.value], count)
        yield sessions
        rejected = CounterMetricFamily("qkdn_km_relay_rejected_messages",
                                       "Relay messages refused (not authentic, replayed, "
                                       "duplicate key_ID)")
        rejected.add_metric([], km.relay.rejected_messages)
        yield rejected
