"""Admission control element: the controller's per-session cycle of the paper's Fig. 2(b).

::

    config request ──► CONFIG_REQUESTED ──QoS above SLA / limits──► TERMINATED (deletion signal)
                              │ QoS within SLA
                              ▼
                          ACCEPTED  (waiting for the peer application; nothing reserved)
                              │ peer's request arrives ─► routing ─► reserve ─► configs to KMs
                              ▼                             (no path / no capacity ─► TERMINATED)
                           ACTIVE   (timer reset by every key-request event)
                              │ close from either end · idle timer · TTL · failure
                              ▼
                         TERMINATED (deletion to every KM of the path, confirmations collected)

Pure: no sockets, no threads. The clock is passed in (``clock() -> seconds``), as are the
session-id factory, the user directory (:class:`~sdn_controller.user_db.Directory`) and the
router (:class:`~sdn_controller.routing.GraphRouter` or any callable of that shape). Each
operation returns an *outcome* value saying what the southbound must do (push configurations,
send deletions, answer the KM with a status and, for status 7, a counter-proposal).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from qkdn.sla import FallbackPolicy
from sdn_controller.errors import (
    InsufficientCapacityError,
    NoPathError,
    RoutingError,
    SessionStateError,
    UnknownSessionError,
)
from sdn_controller.identifiers import LinkId, NodeId, SaeId, SessionId
from sdn_controller.reservations import ReservationLedger
from sdn_controller.routing import Route
from sdn_controller.session_config import KmConfig, QoS, build_km_configs, token_bucket_for
from sdn_controller.user_db import Directory, SlaProfile

_RESTRICTION = [FallbackPolicy.QKD_ONLY, FallbackPolicy.HYBRID, FallbackPolicy.PQC_FALLBACK]


def session_fallback(a: SlaProfile, b: SlaProfile) -> FallbackPolicy:
    """The fallback policy of a session: the more restrictive of its two users' SLAs (a key
    goes to both ends, so both must accept its kind; ADR 0009)."""
    return min(FallbackPolicy(a.fallback), FallbackPolicy(b.fallback), key=_RESTRICTION.index)


class SessionState(str, enum.Enum):
    CONFIG_REQUESTED = "config_requested"
    ACCEPTED = "accepted"
    ACTIVE = "active"
    TERMINATED = "terminated"


class AdmissionReason(str, enum.Enum):
    ADMITTED = "admitted"
    ADMITTED_AT_LOWER_RATE = "admitted-at-lower-rate"
    WAITING_FOR_PEER = "waiting-for-peer"
    QOS_ABOVE_SLA = "qos-above-sla"
    QOS_MISMATCH = "qos-mismatch"
    UNKNOWN_SLA = "unknown-sla"
    SESSION_LIMIT = "session-limit"
    SESSION_ID_IN_USE = "session-id-in-use"
    NO_PATH = "no-path"
    INSUFFICIENT_CAPACITY = "insufficient-capacity"
    CLOSED = "closed"
    IDLE_TIMEOUT = "idle-timeout"
    PEER_TIMEOUT = "peer-timeout"
    TTL_EXPIRED = "ttl-expired"
    CONFIGURATION_FAILED = "configuration-failed"
    LINK_FAILURE = "link-failure"
    REROUTED = "rerouted"


#: ETSI GS QKD 004 status for each reason (one table; the KM's 004 edge uses it).
ETSI004_STATUS: Mapping[AdmissionReason, int] = {
    AdmissionReason.ADMITTED: 0,
    AdmissionReason.ADMITTED_AT_LOWER_RATE: 0,
    AdmissionReason.WAITING_FOR_PEER: 1,
    AdmissionReason.QOS_ABOVE_SLA: 7,
    AdmissionReason.QOS_MISMATCH: 7,
    AdmissionReason.INSUFFICIENT_CAPACITY: 7,
    AdmissionReason.UNKNOWN_SLA: 4,
    AdmissionReason.SESSION_LIMIT: 4,
    AdmissionReason.SESSION_ID_IN_USE: 5,
    AdmissionReason.NO_PATH: 4,
    AdmissionReason.CLOSED: 0,
    AdmissionReason.IDLE_TIMEOUT: 6,
    AdmissionReason.PEER_TIMEOUT: 6,
    AdmissionReason.TTL_EXPIRED: 6,
    AdmissionReason.CONFIGURATION_FAILED: 4,
    AdmissionReason.LINK_FAILURE: 4,
    AdmissionReason.REROUTED: 0,
}


def etsi004_status(reason: AdmissionReason) -> int:
    return ETSI004_STATUS[reason]


class Router(Protocol):
    def __call__(self, src: NodeId, dst: NodeId, rate_bps: int, *,
                 reserved_bps: Mapping[LinkId, int] | None = None,
                 sessions: Mapping[LinkId, int] | None = None) -> Route: ...


@dataclass(frozen=True)
class AdmissionPolicy:
    """Knobs of admission control (resolved once at start-up)."""

    peer_wait_s: float = 30.0        #: how long an ACCEPTED session waits for its peer
    burst_s: float = 2.0             #: token bucket size in seconds of the admitted rate
    default_rate_bps: int = 1024     #: rate reserved when the QoS names no max_bps


@dataclass(frozen=True)
class ConfigRequest:
    """A KM asks for a session's configuration (from ``sdqkdn_application_new``), after
    access control granted ``sae_id`` (whose user and SLA it reported)."""

    node_id: NodeId
    sae_id: SaeId
    peer_sae_id: SaeId
    user: str
    sla: str
    qos: QoS = field(default_factory=QoS)
    session_id: SessionId | None = None  #: a KSID the application proposed (004), if any
    #: False for ETSI 014: the slave SAE opens nothing before its dec_keys, so the master's
    #: request stands for both ends (access control has checked the peer is allowed)
    peer_opens: bool = True


@dataclass(frozen=True)
class SlaCheck:
    ok: bool
    violations: tuple[str, ...] = ()
    counter_proposal: QoS | None = None


def check_qos(qos: QoS, sla: SlaProfile) -> SlaCheck:
    """Is ``qos`` within ``sla``? If not, the closest QoS the SLA allows (counter-proposal).

    >>> from sdn_controller.user_db import SlaProfile
    >>> sla = SlaProfile("std", max_bps=1000, max_priority=5)
    >>> check_qos(QoS(max_bps=800, priority=5), sla).ok
    True
    >>> c = check_qos(QoS(max_bps=5000, min_bps=2000, priority=9), sla)
    >>> c.ok, c.violations
    (False, ('max_bps 5000 > 1000', 'min_bps 2000 > 1000', 'priority 9 > 5'))
    >>> c.counter_proposal.max_bps, c.counter_proposal.min_bps, c.counter_proposal.priority
    (1000, 1000, 5)
    """
    violations = []
    if qos.max_bps > sla.max_bps:
        violations.append(f"max_bps {qos.max_bps} > {sla.max_bps}")
    if qos.min_bps > sla.max_bps:
        violations.append(f"min_bps {qos.min_bps} > {sla.max_bps}")
    if qos.priority > sla.max_priority:
        violations.append(f"priority {qos.priority} > {sla.max_priority}")
    if not violations:
        return SlaCheck(True)
    proposal = replace(qos, max_bps=min(qos.max_bps, sla.max_bps),
                       min_bps=min(qos.min_bps, sla.max_bps),
                       priority=min(qos.priority, sla.max_priority))
    return SlaCheck(False, tuple(violations), proposal)


@dataclass(frozen=True)
class Endpoint:
    sae_id: SaeId
    node_id: NodeId
    user: str
    sla: SlaProfile
    qos: QoS


@dataclass
class _Session:
    session_id: SessionId
    initiator: Endpoint
    peer_sae_id: SaeId
    created_at: float
    state: SessionState = SessionState.CONFIG_REQUESTED
    responder: Endpoint | None = None
    rate_bps: int = 0
    priority: int = 0
    idle_timeout_s: int = 0
    expires_at: float | None = None
    last_activity: float = 0.0
    route: Route | None = None
    configs: tuple[KmConfig, ...] = ()
    generation: int = 0
    reason: AdmissionReason | None = None
    detail: str = ""
    pending_deletions: set[NodeId] = field(default_factory=set)
    fallback: FallbackPolicy = FallbackPolicy.QKD_ONLY
    key_mode: str = "qkd"
    #: provenance -> [keys, bits] delivered (from the initiator's KM events)
    delivered: dict[str, list[int]] = field(default_factory=dict)


@dataclass(frozen=True)
class SessionView:
    """A read-only snapshot of a session (for ``qkdn sessions``, the orchestrator, tests)."""

    session_id: SessionId
    state: SessionState
    initiator: Endpoint
    peer_sae_id: SaeId
    responder: Endpoint | None
    rate_bps: int
    priority: int
    idle_timeout_s: int
    route: Route | None
    configs: tuple[KmConfig, ...]
    created_at: float
    last_activity: float
    reason: AdmissionReason | None
    detail: str
    pending_deletions: frozenset[NodeId]
    fallback: FallbackPolicy = FallbackPolicy.QKD_ONLY
    key_mode: str = "qkd"
    delivered: Mapping[str, tuple[int, int]] = field(default_factory=dict)


# --- outcomes --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Refused:
    """The request is refused; tell ``node_id`` with ``status`` (7: with counter-proposal)."""

    session_id: SessionId
    node_id: NodeId
    reason: AdmissionReason
    status: int
    detail: str = ""
    counter_proposal: QoS | None = None


@dataclass(frozen=True)
class Waiting:
    """Accepted; waiting for the peer application (004 status 1 to the requester)."""

    session_id: SessionId
    node_id: NodeId


@dataclass(frozen=True)
class Configured:
    """Both peers in: push ``configs`` (all-or-nothing) to every KM of the route."""

    session_id: SessionId
    configs: tuple[KmConfig, ...]
    route: Route | None
    rate_bps: int
    reason: AdmissionReason


@dataclass(frozen=True)
class Terminated:
    """Session over: send deletion of ``configs`` to their KMs and a deletion signal to
    ``notify_nodes`` (KMs still waiting for a configuration); collect confirmations."""

    session_id: SessionId
    reason: AdmissionReason
    status: int
    configs: tuple[KmConfig, ...]
    notify_nodes: tuple[NodeId, ...]
    detail: str = ""
    counter_proposal: QoS | None = None


@dataclass(frozen=True)
class Rerouted:
    """Push ``new_configs`` first, then delete ``stale_configs`` (virtual links of the old
    route); applications keep their session ID."""

    session_id: SessionId
    new_configs: tuple[KmConfig, ...]
    stale_configs: tuple[KmConfig, ...]
    route: Route | None
    rate_bps: int
    #: no route carries the session any more, but its fallback policy keeps it on its old
    #: configuration (its KMs deliver hybrid/pqc keys): nothing to push
    kept_for_fallback: bool = False


Outcome = Refused | Waiting | Configured | Terminated | Rerouted


class AdmissionControl:
    """Admission control for every session of the network (one instance per controller)."""

    def __init__(self, directory: Directory, router: Router, *, clock: Callable[[], float],
                 policy: AdmissionPolicy = AdmissionPolicy(),
                 new_session_id: Callable[[], str] = lambda: str(uuid.uuid4())) -> None:
        self.directory = directory
        self.router = router
        self.clock = clock
        self.policy = policy
        self.new_session_id = new_session_id
        self.ledger = ReservationLedger()
        self._sessions: dict[SessionId, _Session] = {}
        #: open (ACCEPTED or ACTIVE) sessions per user, counted once per end the user holds
        self._open_by_user: dict[str, int] = {}
        #: ACCEPTED sessions by (initiator SAE, peer SAE), oldest first
        self._waiting: dict[tuple[SaeId, SaeId], list[SessionId]] = {}

    # --- queries ----------------------------------------------------------------------------
    def session(self, session_id: str) -> SessionView:
        return _view(self._get(session_id))

    def sessions(self, *, include_terminated: bool = False) -> list[SessionView]:
        # over a copy: the daemon's snapshot calls this while request threads admit sessions
        # (iterating the dict itself raised "dictionary changed size" and ended the controller
        # process in a 500-session run)
        return [_view(s) for s in list(self._sessions.values())
                if include_terminated or s.state is not SessionState.TERMINATED]

    def session_ids(self) -> frozenset[SessionId]:
        """The ids of every session held, terminated ones included (what ``sessions(
        include_terminated=True)`` would list, without building a view of each)."""
        return frozenset(list(self._sessions))

    def live_session_ids(self) -> frozenset[SessionId]:
        """The ids of the sessions not terminated: configuration any KM holds for another id
        (a terminated session whose deletion failed, or one this controller never knew) is
        an orphan."""
        return frozenset(sid for sid, s in list(self._sessions.items())
                         if s.state is not SessionState.TERMINATED)

    def sessions_using(self, links: Iterable[LinkId]) -> frozenset[SessionId]:
        """Active sessions whose route crosses any of ``links``."""
        wanted = set(links)
        by_link = self.ledger.sessions_by_link()
        found: set[SessionId] = set()
        for link in wanted:
            found |= by_link.get(link, frozenset())
        for s in self._sessions.values():  # zero-rate sessions hold no reservation
            if s.state is SessionState.ACTIVE and s.route is not None and \
                    wanted & set(s.route.link_rates()):
                found.add(s.session_id)
        return frozenset(found)

    # --- requests from KMs ------------------------------------------------------------------
    def request_config(self, request: ConfigRequest) -> Outcome:
        """A KM relays an application's open request (after access control granted it)."""
        now = self.clock()
        sla = self.directory.sla(request.sla)
        sid = SessionId(request.session_id or self.new_session_id())
        if sla is None:
            return Refused(sid, request.node_id, AdmissionReason.UNKNOWN_SLA,
                           etsi004_status(AdmissionReason.UNKNOWN_SLA), f"SLA {request.sla!r}")
        endpoint = Endpoint(request.sae_id, request.node_id, request.user, sla, request.qos)
        check = check_qos(request.qos, sla)
        if not check.ok:
            return Refused(sid, request.node_id, AdmissionReason.QOS_ABOVE_SLA, 7,
                           "; ".join(check.violations), check.counter_proposal)
        if not request.peer_opens:
            active = self._active_for(request)
            if active is not None:
                # the KM asks again for a session it should already hold (its configuration
                # was lost, or came later than the KM waited): the same session, pushed again
                active.last_activity = now
                return Configured(active.session_id, active.configs, active.route,
                                  active.rate_bps, AdmissionReason.ADMITTED)
        waiting = self._find_waiting(request)
        if request.session_id is not None and waiting is None and sid in self._sessions:
            return Refused(sid, request.node_id, AdmissionReason.SESSION_ID_IN_USE, 5)
        if self._open_sessions_of(request.user) >= sla.max_sessions:
            return Refused(sid, request.node_id, AdmissionReason.SESSION_LIMIT, 4,
                           f"user {request.user} already has {sla.max_sessions} sessions")
        if waiting is None and not request.peer_opens:
            responder = self._implied_peer(request)
            if responder is None:
                return Refused(sid, request.node_id, AdmissionReason.UNKNOWN_SLA,
                               etsi004_status(AdmissionReason.UNKNOWN_SLA),
                               f"no SLA for the peer {request.peer_sae_id}")
            session = _Session(sid, endpoint, request.peer_sae_id, now, last_activity=now,
                               state=SessionState.ACCEPTED, responder=responder)
            self._sessions[sid] = session
            self._count(request.user, +1)
            self._count(responder.user, +1)
            return self._establish(session, now)
        if waiting is None:
            session = _Session(sid, endpoint, request.peer_sae_id, now, last_activity=now)
            self._sessions[sid] = session
            session.state = SessionState.ACCEPTED
            self._count(request.user, +1)
            self._waiting.setdefault((request.sae_id, request.peer_sae_id), []).append(sid)
            return Waiting(sid, request.node_id)
        self._unwait(waiting)
        waiting.responder = endpoint
        self._count(request.user, +1)
        return self._establish(waiting, now)

    def key_request(self, session_id: str) -> None:
        """A key-request event of the session: restart its idle timer."""
        session = self._get(session_id)
        if session.state is not SessionState.ACTIVE:
            raise SessionStateError(session_id, session.state.value, "count a key request")
        session.last_activity = self.clock()

    def close(self, session_id: str, node_id: NodeId | None = None) -> Terminated:
        """Close from either end (``sdqkdn_application_disconnected``)."""
        session = self._get(session_id)
        if session.state is SessionState.TERMINATED:
            raise SessionStateError(session_id, session.state.value, "close")
        if node_id is not None and node_id not in self._end_nodes(session):
            raise SessionStateError(session_id, session.state.value,
                                    f"close from {node_id}, which is not an end of it")
        return self._terminate(session, AdmissionReason.CLOSED)

    def fail(self, session_id: str, detail: str,
             reason: AdmissionReason = AdmissionReason.CONFIGURATION_FAILED) -> Terminated:
        """The southbound could not configure (or keep) the session."""
        session = self._get(session_id)
        if session.state is SessionState.TERMINATED:
            raise SessionStateError(session_id, session.state.value, "fail")
        return self._terminate(session, reason, detail)

    def expire(self) -> list[Terminated]:
        """Terminate sessions whose idle timer, TTL or peer wait has run out."""
        now = self.clock()
        ended = []
        for session in list(self._sessions.values()):
            if session.state is SessionState.ACCEPTED and \
                    now - session.created_at >= self.policy.peer_wait_s:
                ended.append(self._terminate(session, AdmissionReason.PEER_TIMEOUT))
            elif session.state is SessionState.ACTIVE:
                if session.expires_at is not None and now >= session.expires_at:
                    ended.append(self._terminate(session, AdmissionReason.TTL_EXPIRED))
                elif now - session.last_activity >= session.idle_timeout_s:
                    ended.append(self._terminate(session, AdmissionReason.IDLE_TIMEOUT))
        return ended

    def next_deadline(self) -> float | None:
        """When :meth:`expire` next has something to do (for the controller's timer)."""
        deadlines = []
        for s in self._sessions.values():
            if s.state is SessionState.ACCEPTED:
                deadlines.append(s.created_at + self.policy.peer_wait_s)
            elif s.state is SessionState.ACTIVE:
                deadlines.append(s.last_activity + s.idle_timeout_s)
                if s.expires_at is not None:
                    deadlines.append(s.expires_at)
        return min(deadlines, default=None)

    def confirm_deletion(self, session_id: str, node_id: NodeId) -> bool:
        """A KM confirmed it dropped the session; True once every KM has."""
        session = self._get(session_id)
        session.pending_deletions.discard(node_id)
        return not session.pending_deletions

    def forget_terminated(self) -> int:
        """Drop terminated sessions whose deletions are all confirmed; return how many."""
        gone = [sid for sid, s in self._sessions.items()
                if s.state is SessionState.TERMINATED and not s.pending_deletions]
        for sid in gone:
            del self._sessions[sid]
        return len(gone)

    def reroute(self, session_id: str, *, keep_if_no_route: bool = False
                ) -> Rerouted | Terminated:
        """Move an active session onto a new route (the router sees the links monitoring has
        flagged as unusable); terminate it when no route carries it any more — or, with
        ``keep_if_no_route`` (an operator's restoration request), leave it as it was and
        raise :class:`~sdn_controller.errors.NoPathError`."""
        session = self._get(session_id)
        if session.state is not SessionState.ACTIVE:
            raise SessionStateError(session_id, session.state.value, "reroute")
        held = self.ledger.release(session.session_id)
        assert session.responder is not None
        try:
            route, rate, _ = self._route(session, session.rate_bps)
        except _NoRoute as failure:
            self.ledger.reserve(session.session_id, held)  # _terminate releases it
            if keep_if_no_route:
                raise NoPathError(session.initiator.node_id, session.responder.node_id,
                                  failure.detail) from None
            if session.fallback is not FallbackPolicy.QKD_ONLY:
                return Rerouted(session.session_id, session.configs, (), session.route,
                                session.rate_bps, kept_for_fallback=True)
            return self._terminate(session, AdmissionReason.LINK_FAILURE, failure.detail)
        if route is None and session.route is not None:
            # no path any more: a fallback session stays on its old configuration, so its
            # KMs deliver QKD keys again as soon as the link is back (ADR 0009)
            self.ledger.reserve(session.session_id, held)
            return Rerouted(session.session_id, session.configs, (), session.route,
                            session.rate_bps, kept_for_fallback=True)
        old = session.configs
        session.generation += 1
        self._install(session, route, rate)
        return Rerouted(session.session_id, session.configs,
                        _stale(old, session.configs), route, rate)

    def update_qos(self, session_id: str, node_id: NodeId, qos: QoS) -> Rerouted | Refused:
        """An end asks for new QoS for its active session (``sdqkdn_application_qos_update``).

        Checked against that end's SLA and agreed with the peer's QoS as at set-up; the
        session is then re-admitted at the new rate (new route and reservations, same session
        ID). When the update cannot be granted the session keeps its current QoS and route and
        the refusal (status 7 with a counter-proposal, or 4) is returned."""
        session = self._get(session_id)
        if session.state is not SessionState.ACTIVE or session.responder is None:
            raise SessionStateError(session_id, session.state.value, "update its QoS")
        if node_id == session.initiator.node_id:
            end, other = session.initiator, session.responder
        elif node_id == session.responder.node_id:
            end, other = session.responder, session.initiator
        else:
            raise SessionStateError(session_id, session.state.value,
                                    f"take a QoS update from {node_id}")
        check = check_qos(qos, end.sla)
        if not check.ok:
            return Refused(session.session_id, node_id, AdmissionReason.QOS_ABOVE_SLA, 7,
                           "; ".join(check.violations), check.counter_proposal)
        updated = replace(end, qos=qos)
        init, resp = (updated, other) if end is session.initiator else (other, updated)
        rate, floor = self._agreed_rate(init, resp)
        if floor > rate:
            return Refused(session.session_id, node_id, AdmissionReason.QOS_MISMATCH, 7,
                           f"peer's rates do not overlap (min {floor} > max {rate})",
                           replace(qos, max_bps=rate, min_bps=min(qos.min_bps, rate)))
        previous = (session.initiator, session.responder)
        session.initiator, session.responder = init, resp
        held = self.ledger.release(session.session_id)
        try:
            route, admitted, _ = self._route(session, rate, floor=floor)
        except _NoRoute as failure:
            session.initiator, session.responder = previous
            self.ledger.reserve(session.session_id, held)
            proposal = None if failure.available_bps is None else \
                replace(qos, max_bps=failure.available_bps,
                        min_bps=min(qos.min_bps, failure.available_bps))
            return Refused(session.session_id, node_id, failure.reason,
                           etsi004_status(failure.reason), failure.detail, proposal)
        old = session.configs
        session.priority = min(init.qos.priority, resp.qos.priority)
        session.generation += 1
        self._install(session, route, admitted)
        return Rerouted(session.session_id, session.configs, _stale(old, session.configs),
                        route, admitted)

    # --- internals --------------------------------------------------------------------------
    def _get(self, session_id: str) -> _Session:
        try:
            return self._sessions[SessionId(session_id)]
        except KeyError:
            raise UnknownSessionError(session_id) from None

    def _implied_peer(self, request: ConfigRequest) -> Endpoint | None:
        """The peer end of a session whose peer does not open one itself (ETSI 014)."""
        app = self.directory.application(request.peer_sae_id)
        user = self.directory.user(app.user) if app is not None else None
        sla = self.directory.sla(user.sla) if user is not None else None
        if app is None or user is None or sla is None:
            return None
        node = app.node_id or NodeId(app.node_name)
        return Endpoint(request.peer_sae_id, node, user.name, sla, request.qos)

    def _active_for(self, request: ConfigRequest) -> _Session | None:
        """The active session this SAE already opened toward this peer from this node."""
        for s in self._sessions.values():
            if s.state is SessionState.ACTIVE and s.initiator.sae_id == request.sae_id and \
                    s.initiator.node_id == request.node_id and \
                    s.peer_sae_id == request.peer_sae_id:
                return s
        return None

    def _find_waiting(self, request: ConfigRequest) -> _Session | None:
        def matches(s: _Session) -> bool:
            return (s.state is SessionState.ACCEPTED and s.initiator.sae_id == request.peer_sae_id
                    and s.peer_sae_id == request.sae_id)

        if request.session_id is not None:
            s = self._sessions.get(SessionId(request.session_id))
            if s is not None and matches(s):
                return s
            # a KSID the peer's KM never saw (each KM proposes one for a null KSID): the
            # peers still pair up by their SAE ids, and the session keeps the first one's id
        for sid in self._waiting.get((request.peer_sae_id, request.sae_id), ()):
            s = self._sessions[sid]
            if matches(s):
                return s
        return None

    def _unwait(self, session: _Session) -> None:
        key = (session.initiator.sae_id, session.peer_sae_id)
        queue = self._waiting.get(key, [])
        if session.session_id in queue:
            queue.remove(session.session_id)
        if not queue:
            self._waiting.pop(key, None)

    def _count(self, user: str, delta: int) -> None:
        count = self._open_by_user.get(user, 0) + delta
        if count > 0:
            self._open_by_user[user] = count
        else:
            self._open_by_user.pop(user, None)

    def _open_sessions_of(self, user: str) -> int:
        return self._open_by_user.get(user, 0)

    @staticmethod
    def _end_nodes(session: _Session) -> set[NodeId]:
        ends = {session.initiator.node_id}
        if session.responder is not None:
            ends.add(session.responder.node_id)
        return ends

    def _establish(self, session: _Session, now: float) -> Outcome:
        init, resp = session.initiator, session.responder
        assert resp is not None
        rate, floor = self._agreed_rate(init, resp)
        if floor > rate:
            return self._terminate(
                session, AdmissionReason.QOS_MISMATCH,
                f"peers' rates do not overlap (min {floor} > max {rate})",
                counter_proposal=replace(resp.qos, min_bps=min(resp.qos.min_bps, rate),
                                         max_bps=rate))
        session.priority = min(init.qos.priority, resp.qos.priority)
        session.idle_timeout_s = min(init.sla.idle_timeout_s, resp.sla.idle_timeout_s)
        session.fallback = session_fallback(init.sla, resp.sla)
        ttls = [q.ttl_s for q in (init.qos, resp.qos) if q.ttl_s]
        session.expires_at = now + min(ttls) if ttls else None
        try:
            route, admitted, lowered = self._route(session, rate, floor=floor)
        except _NoRoute as failure:
            proposal = None
            if failure.available_bps is not None:
                proposal = replace(resp.qos, max_bps=failure.available_bps,
                                   min_bps=min(resp.qos.min_bps, failure.available_bps))
            return self._terminate(session, failure.reason, failure.detail,
                                   counter_proposal=proposal)
        session.state = SessionState.ACTIVE
        session.last_activity = now
        self._install(session, route, admitted)
        return Configured(session.session_id, session.configs, route, admitted,
                          AdmissionReason.ADMITTED_AT_LOWER_RATE if lowered
                          else AdmissionReason.ADMITTED)

    def _agreed_rate(self, init: Endpoint, resp: Endpoint) -> tuple[int, int]:
        """(rate, floor): the smaller max_bps of the peers (SLA default when neither names
        one), capped by both SLAs; floor = the largest min_bps of both QoS and both SLAs."""
        floor = max(init.qos.min_bps, resp.qos.min_bps, init.sla.min_bps, resp.sla.min_bps)
        wanted = [q.max_bps for q in (init.qos, resp.qos) if q.max_bps]
        ceiling = min(init.sla.max_bps, resp.sla.max_bps)
        rate = min(wanted) if wanted else \
            min(max(self.policy.default_rate_bps, floor), ceiling)
        return min(rate, ceiling), floor

    def _route(self, session: _Session, rate: int, *, floor: int | None = None
               ) -> tuple[Route | None, int, bool]:
        """Route at ``rate``; at a lower rate (>= floor) if both SLAs allow. -> route, rate,
        lowered."""
        init, resp = session.initiator, session.responder
        assert resp is not None
        if init.node_id == resp.node_id:
            return None, rate, False
        floor = max(floor if floor is not None else 0, 1) if rate else 0
        reserved = self.ledger.reserved_by_link()
        counts = self.ledger.session_counts()
        try:
            return self.router(init.node_id, resp.node_id, rate, reserved_bps=reserved,
                               sessions=counts), rate, False
        except InsufficientCapacityError as exc:
            if session.fallback is not FallbackPolicy.QKD_ONLY:
                # hybrid/pqc: admitted on the widest path at the requested rate; QKD carries
                # what it can, the fallback the rest (ADR 0009)
                try:
                    route = self.router(init.node_id, resp.node_id, exc.available_bps,
                                        reserved_bps=reserved, sessions=counts) \
                        if exc.available_bps > 0 else None
                except RoutingError:
                    route = None
                return route, rate, False
            lower_ok = init.sla.allow_lower_rate and resp.sla.allow_lower_rate
            if lower_ok and exc.available_bps >= floor and exc.available_bps > 0:
                try:
                    route = self.router(init.node_id, resp.node_id, exc.available_bps,
                                        reserved_bps=reserved, sessions=counts)
                    return route, exc.available_bps, True
                except RoutingError as again:
                    raise _NoRoute(AdmissionReason.NO_PATH, str(again)) from again
            raise _NoRoute(AdmissionReason.INSUFFICIENT_CAPACITY, str(exc),
                           exc.available_bps) from exc
        except RoutingError as exc:
            if session.fallback is not FallbackPolicy.QKD_ONLY:
                return None, rate, False     # no path: the end KMs alone, fallback keys
            raise _NoRoute(AdmissionReason.NO_PATH, str(exc)) from exc

    def record_delivery(self, session_id: str, node_id: NodeId,
                        delivered: Mapping[str, tuple[int, int]]) -> None:
        """Keys delivered per provenance, counted from the initiator's KM (one count per
        key, which both ends receive)."""
        session = self._get(session_id)
        if node_id != session.initiator.node_id:
            return
        for provenance, (keys, bits) in delivered.items():
            entry = session.delivered.setdefault(provenance, [0, 0])
            entry[0] += keys
            entry[1] += bits

    def set_key_mode(self, session_id: str, mode: str) -> str | None:
        """The session's keys now have provenance ``mode``; returns the previous mode if it
        changed (None if not)."""
        session = self._get(session_id)
        if session.key_mode == mode:
            return None
        previous, session.key_mode = session.key_mode, mode
        return previous

    def _install(self, session: _Session, route: Route | None, rate: int) -> None:
        init, resp = session.initiator, session.responder
        assert resp is not None
        session.route, session.rate_bps = route, rate
        if route is not None:
            self.ledger.reserve(session.session_id, route.link_rates())
        chunk = max(init.qos.key_chunk_size, resp.qos.key_chunk_size)
        qos = QoS(max_bps=rate, min_bps=min(rate, max(init.qos.min_bps, resp.qos.min_bps)),
                  priority=session.priority, jitter_ms=init.qos.jitter_ms,
                  ttl_s=min([q.ttl_s for q in (init.qos, resp.qos) if q.ttl_s], default=0),
                  key_chunk_size=chunk)
        session.configs = build_km_configs(
            session_id=session.session_id, generation=session.generation, route=route,
            initiator=(init.sae_id, init.node_id), responder=(resp.sae_id, resp.node_id),
            qos=qos, priority=session.priority, idle_timeout_s=session.idle_timeout_s,
            bucket=token_bucket_for(rate, burst_s=self.policy.burst_s, key_chunk_bytes=chunk),
            fallback_policy=session.fallback.value)

    def _terminate(self, session: _Session, reason: AdmissionReason, detail: str = "", *,
                   counter_proposal: QoS | None = None) -> Terminated:
        configs = session.configs
        notify = tuple(sorted(self._end_nodes(session) - {c.node_id for c in configs}))
        self.ledger.release(session.session_id)
        if session.state in (SessionState.ACCEPTED, SessionState.ACTIVE):
            self._unwait(session)
            self._count(session.initiator.user, -1)
            if session.responder is not None:
                self._count(session.responder.user, -1)
        session.state = SessionState.TERMINATED
        session.reason, session.detail = reason, detail
        session.pending_deletions = {c.node_id for c in configs}
        return Terminated(session.session_id, reason, etsi004_status(reason), configs, notify,
                          detail, counter_proposal)


class _NoRoute(Exception):
    def __init__(self, reason: AdmissionReason, detail: str,
                 available_bps: int | None = None) -> None:
        super().__init__(detail)
        self.reason, self.detail, self.available_bps = reason, detail, available_bps


def _stale(old: tuple[KmConfig, ...], new: tuple[KmConfig, ...]) -> tuple[KmConfig, ...]:
    """Parts of the old configuration the new one does not carry over: KMs that left the
    route, and old virtual links on KMs that stay."""
    new_by_node = {c.node_id: c for c in new}
    stale = []
    for config in old:
        current = new_by_node.get(config.node_id)
        if current is None:
            stale.append(config)
            continue
        kept = {h.link_id for h in current.hops}
        gone = tuple(h for h in config.hops if h.link_id not in kept)
        if gone:
            stale.append(replace(config, hops=gone, partial=True))
    return tuple(stale)


def _view(s: _Session) -> SessionView:
    return SessionView(s.session_id, s.state, s.initiator, s.peer_sae_id, s.responder,
                       s.rate_bps, s.priority, s.idle_timeout_s, s.route, s.configs,
                       s.created_at, s.last_activity, s.reason, s.detail,
                       frozenset(s.pending_deletions), s.fallback, s.key_mode,
                       {p: (v[0], v[1]) for p, v in s.delivered.items()})
