"""The controller core: wires access control, admission control, routing, monitoring and the
two databases to the southbound's seams.

The southbound (NETCONF sessions, one per agent) calls :meth:`Controller.handle_notification`
for every notification, :meth:`Controller.ingest_node` for every periodic ``get`` and
:meth:`Controller.tick` on a timer; the controller configures KMs only through
:class:`~sdn_controller.push.NodeConfigurator` objects and tells KMs about refusals through
:class:`KmSignals`. No sockets here, so the whole control loop runs in unit tests with
in-memory nodes.
"""

from __future__ import annotations

import collections
import enum
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from lxml import etree

from sdn_controller.access_control import check_access, etsi004_status
from sdn_controller.admission_control import (
    AdmissionControl,
    AdmissionReason,
    ConfigRequest,
    Configured,
    Outcome,
    Refused,
    Rerouted,
    SessionState,
    SessionView,
    Terminated,
    Waiting,
)
from sdn_controller.application_events import (
    ApplicationClosed,
    ApplicationQosUpdate,
    ApplicationRequest,
    KeyModeChangeEvent,
    KeyRequestEvent,
    KmSessionStateEvent,
    application_event,
)
from sdn_controller.config_payloads import link_enable_payload, orphan_delete_payload
from sdn_controller.errors import SessionError
from sdn_controller.identifiers import LinkId, NodeId, SaeId, SessionId
from sdn_controller.monitoring import AlarmEvent, MonitoringThresholds, assess
from sdn_controller.path_restoration import (
    DEFAULT_RESTORATION,
    PathRestoration,
    RestorationType,
)
from sdn_controller.push import (
    NodeConfigurator,
    merge_node_pushes,
    plan_reroute_push,
    plan_session_push,
    push_all,
    remove_all,
)
from sdn_controller.qkd_node_data import qkd_node_from_reply
from sdn_controller.refusal_channel import REFUSAL_RETENTION_S, SessionRefusal, stale_refusal_ids
from sdn_controller.session_config import KmConfig, KmRole
from sdn_controller.topology_db import LinkUpdate, TopologyDb
from sdn_controller.user_db import UserDb

log = logging.getLogger(__name__)

#: monitoring flag of a link an operator took out of service
OUT_OF_SERVICE_REASON = "out of service"


DEFAULT_THRESHOLDS = MonitoringThresholds()


class KmSignals(Protocol):
    """How refusals reach a KM that holds no configuration to delete (southbound)."""

    def refuse(self, node_id: NodeId, refusal: SessionRefusal) -> None: ...


class EventKind(str, enum.Enum):
    ACCESS_DENIED = "access-denied"
    SESSION_WAITING = "session-waiting"
    SESSION_ACTIVE = "session-active"
    SESSION_REFUSED = "session-refused"
    SESSION_TERMINATED = "session-terminated"
    SESSION_REROUTED = "session-rerouted"
    #: monitoring: a session's keys switched to hybrid/pqc (QKD key short) or back to qkd
    SESSION_KEY_MODE = "session-key-mode"
    ORPHANS_REMOVED = "orphans-removed"
    RECONCILED = "reconciled"
    LINK_ALARM = "link-alarm"


@dataclass(frozen=True)
class ControllerEvent:
    kind: EventKind
    at: float
    session_id: str | None = None
    qkdl_id: str | None = None
    node_id: str | None = None
    detail: str = ""
    alarm: AlarmEvent | None = None


class Controller:
    def __init__(self, users: UserDb, topology: TopologyDb, admission: AdmissionControl,
                 configurators: Mapping[NodeId, NodeConfigurator], signals: KmSignals, *,
                 thresholds: MonitoringThresholds = DEFAULT_THRESHOLDS,
                 clock: Callable[[], float], executor: Executor | None = None,
                 event_sink: Callable[[ControllerEvent], None] | None = None,
                 history: int = 1000,
                 link_update_sink: Callable[[LinkUpdate], None] | None = None,
                 restoration_policy: Callable[[SessionView], PathRestoration] | None = None,
                 refusal_retention_s: float = REFUSAL_RETENTION_S,
                 push_pause_s: float = 0.0) -> None:
        self.users = users
        self.topology = topology
        self.admission = admission
        self.configurators = configurators
        self.signals = signals
        self.thresholds = thresholds
        self.clock = clock
        #: pushes to the KMs of a path go out in parallel on this pool (kept for the process)
        self._own_executor = executor is None
        self.executor: Executor = executor or ThreadPoolExecutor(
            max_workers=32, thread_name_prefix="qkdn-push")
        #: sessions moved together (reroute after a link failure) are pushed in parallel here;
        #: a separate pool, since each of its tasks waits for pushes on ``executor``
        self._session_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="qkdn-move")
        self.event_sink = event_sink
        #: told of every change of a physical link (metrics, status), after monitoring
        self.link_update_sink = link_update_sink
        #: each session's path-restoration policy (its SLA's); None: every session is
        #: rerouted at once when a link of its path fails
        self.restoration_policy = restoration_policy
        self._hold_off_timers: set[threading.Timer] = set()
        self._closed = False
        self.events: collections.deque[ControllerEvent] = collections.deque(maxlen=history)
        self._lock = threading.RLock()
        self.refusal_retention_s = refusal_retention_s
        #: test-only: pause between configuring a path's relays and its ends (a window in
        #: which the controller process can be killed mid set-up; QKDN_FAULT_PUSH_PAUSE)
        self.push_pause_s = push_pause_s
        #: km_request/request_id of each end's waiting request, for refusals after the fact
        self._request_ids: dict[tuple[SessionId, NodeId], str] = {}
        #: nodes whose running configuration has been reconciled since this controller started
        self.reconciled: set[NodeId] = set()

    def close(self) -> None:
        """Stop the push pool if the controller created it."""
        with self._lock:
            self._closed = True
            timers, self._hold_off_timers = self._hold_off_timers, set()
        for timer in timers:
            timer.cancel()
        self._session_pool.shutdown(wait=True)
        if self._own_executor:
            self.executor.shutdown(wait=True)

    # --- entry points for the southbound ----------------------------------------------------
    def handle_notification(self, node_id: str,
                            message: str | bytes | etree._Element | Mapping[str, Any]) -> None:
        """One notification from ``node_id``'s agent (XML or RFC 7951 JSON)."""
        event = application_event(message, node_id=node_id)
        if isinstance(event, ApplicationRequest):
            self._on_request(event)
        elif isinstance(event, ApplicationClosed):
            self._on_closed(event)
        elif isinstance(event, KeyRequestEvent):
            self._on_key_request(event)
        elif isinstance(event, KmSessionStateEvent):
            self._on_km_state(event)
        elif isinstance(event, KeyModeChangeEvent):
            self._on_key_mode(event)
        elif isinstance(event, ApplicationQosUpdate):
            self._on_qos_update(event)
        else:
            with self._lock:
                updates = self.topology.apply_notification(message, node_id=node_id)
            self._on_link_updates(updates)

    def ingest_node(self, reply: str | bytes | etree._Element | Mapping[str, Any]) -> None:
        """A periodic ``get`` of an agent's ``qkd_node``: topology and metrics, then removal
        of session configuration the controller does not know (orphans)."""
        node = qkd_node_from_reply(reply)
        with self._lock:
            updates = self.topology.ingest_qkd_node(node)   # read once, not normalised again
        self._on_link_updates(updates)
        node_id = NodeId(str(node["qkdn_id"]))
        removed = self._remove_orphans(node_id, node)
        if removed is not None and node_id not in self.reconciled:
            # the first complete pass over this agent's configuration since start-up
            # (docs/adr/0012-controller-restart-reconciliation.md)
            self.reconciled.add(node_id)
            self._emit(EventKind.RECONCILED, node_id=node_id,
                       detail=f"{removed} session(s) of an earlier run removed")

    def _remove_orphans(self, node_id: NodeId, node: Mapping[str, Any]) -> int | None:
        """Delete ``qkd_app`` entries this controller created (they carry ``km_session``) for
        sessions it does not hold or holds as terminated — left by a failed deletion or
        rollback (an agent's session lost at that moment), a set-up interrupted by a
        controller crash, or an earlier controller run — with their virtual links (a
        terminated session's deletion at the node counts as confirmed then), and
        refusal entries past their retention. Sessions the operator configured without
        ``km_session`` are left alone. Returns how many sessions were removed (None if the
        deletion failed; it is retried at the next get)."""
        apps = (node.get("qkd_applications") or {}).get("qkd_app") or []
        managed = {str(a.get("app_id")) for a in apps if "km_session" in a}
        with self._lock:
            live = self.admission.live_session_ids()
        orphans = sorted(managed - live)
        stale = stale_refusal_ids(node, self.clock(), self.refusal_retention_s)
        if not orphans and not stale:
            return 0
        links = (node.get("qkd_links") or {}).get("qkd_link") or []
        virtual = [str(link.get("qkdl_id")) for link in links
                   if link.get("qkdl_type") == "VIRT"
                   and set(map(str, link.get("qkdl_applications") or [])) & set(orphans)]
        configurator = self.configurators.get(node_id)
        if configurator is None:
            return None
        try:
            configurator.edit_config(orphan_delete_payload(node_id, orphans, virtual, stale))
        except Exception as exc:  # noqa: BLE001 - any configurator failure: retried at next get
            log.warning("node %s: removing orphan sessions failed: %s", node_id, exc)
            return None
        with self._lock:   # a terminated session's failed deletion is done now
            for session_id in orphans:
                try:
                    self.admission.confirm_deletion(session_id, node_id)
                except SessionError:
                    pass   # not a session this controller holds
        if orphans:
            self._emit(EventKind.ORPHANS_REMOVED, node_id=node_id,
                       detail=f"sessions {', '.join(orphans)}; virtual links {len(virtual)}")
        return len(orphans)

    def tick(self) -> None:
        """Expire sessions whose timers ran out; drop fully deleted ones."""
        with self._lock:
            ended = self.admission.expire()
        for termination in ended:
            self._finish(termination)
        with self._lock:
            self.admission.forget_terminated()
            live = self.admission.session_ids()
            for key in [k for k in self._request_ids if k[0] not in live]:
                del self._request_ids[key]

    # --- operator requests (north-bound) --------------------------------------------------
    def close_session(self, session_id: str, detail: str = "closed by operator") -> None:
        """End a session on an operator's request: deletion to every KM of its path.
        Raises :class:`~sdn_controller.errors.UnknownSessionError` (or ``SessionStateError``
        for one already terminated)."""
        with self._lock:
            ended = self.admission.fail(session_id, detail, AdmissionReason.CLOSED)
        self._finish(ended)

    def restore_session(self, session_id: str) -> SessionView:
        """Route an active session again now (manual restoration, rebalancing) and push the
        new configuration; the session as it is afterwards. Raises ``NoPathError`` (the
        session keeps its route) or ``SessionError``."""
        with self._lock:
            old = self.admission.session(session_id).configs
            outcome = self.admission.reroute(session_id, keep_if_no_route=True)
        if isinstance(outcome, Terminated):  # not with keep_if_no_route; kept for safety
            self._finish(outcome)
        else:
            self._move(SessionId(session_id), old, outcome, "restoration")
        with self._lock:
            return self.admission.session(session_id)

    def set_link_in_service(self, qkdl_id: str, in_service: bool,
                            reason: str = OUT_OF_SERVICE_REASON) -> None:
        """Take a physical link out of service or put it back: ETSI 015 ``qkdl_enable`` is
        set in both end agents, routing avoids the link while it is out and its sessions are
        restored by their policy. Only an out-of-service mark is cleared by ``True``; a
        monitoring flag (QBER) stays."""
        with self._lock:
            link = self.topology.link(qkdl_id)
            self.topology.set_enabled(qkdl_id, in_service)
            if in_service:
                if link.flag_reason is not None and \
                        link.flag_reason.startswith(OUT_OF_SERVICE_REASON):
                    self.topology.set_flag(qkdl_id, None)
                moving: list[SessionId] = []
            else:
                if link.flag_reason is None:
                    self.topology.set_flag(qkdl_id, reason)
                moving = sorted(self.admission.sessions_using([LinkId(qkdl_id)]))
        for node in link.ends():
            configurator = self.configurators.get(node)
            if configurator is None:
                continue
            try:
                configurator.edit_config(link_enable_payload(node, qkdl_id, in_service))
            except Exception as exc:  # noqa: BLE001 - the next get shows the agent's value
                log.warning("node %s: qkdl_enable of %s not set: %s", node, qkdl_id, exc)
        if moving:
            self._restore(moving)

    # --- application events -----------------------------------------------------------------
    def _on_request(self, req: ApplicationRequest) -> None:
        with self._lock:
            decision = check_access(self.users, req.sae_id, req.peer_sae_id, req.node_id)
            if not decision.allowed:
                self._emit(EventKind.ACCESS_DENIED, node_id=req.node_id,
                           detail=f"{req.sae_id} -> {req.peer_sae_id}: {decision.reason.value}")
                self.signals.refuse(req.node_id, SessionRefusal(
                    req.sae_id, req.peer_sae_id, req.session_id,
                    etsi004_status(decision.reason), decision.reason.value, decision.detail,
                    access_denied=True, request_id=req.request_id))
                return
            assert decision.user is not None and decision.sla is not None
            outcome = self.admission.request_config(ConfigRequest(
                req.node_id, req.sae_id, req.peer_sae_id, decision.user, decision.sla,
                req.qos, req.session_id, peer_opens=req.interface != "etsi-014"))
            if req.request_id and isinstance(outcome, (Waiting, Configured, Terminated)):
                self._request_ids[(outcome.session_id, req.node_id)] = req.request_id
        self._apply(outcome, req)

    def _apply(self, outcome: Outcome, req: ApplicationRequest) -> None:
        if isinstance(outcome, Waiting):
            self._emit(EventKind.SESSION_WAITING, session_id=outcome.session_id,
                       node_id=outcome.node_id)
        elif isinstance(outcome, Refused):
            self._emit(EventKind.SESSION_REFUSED, session_id=outcome.session_id,
                       node_id=outcome.node_id, detail=f"{outcome.reason.value} {outcome.detail}")
            self.signals.refuse(outcome.node_id, SessionRefusal(
                req.sae_id, req.peer_sae_id, outcome.session_id, outcome.status,
                outcome.reason.value, outcome.detail, outcome.counter_proposal,
                request_id=req.request_id))
        elif isinstance(outcome, Configured):
            self._configure(outcome)
        elif isinstance(outcome, Terminated):
            self._finish(outcome)

    def _configure(self, outcome: Configured) -> None:
        relays = _relays(outcome.configs)
        if self.push_pause_s and relays:
            result = push_all(plan_session_push([c for c in outcome.configs
                                                 if c.node_id in relays]),
                              self.configurators, executor=self.executor)
            if result.ok:
                log.warning("test pause of %.1f s after configuring the relays of %s",
                            self.push_pause_s, outcome.session_id)
                threading.Event().wait(self.push_pause_s)
        result = push_all(plan_session_push(ends_first(outcome.configs)), self.configurators,
                          executor=self.executor)
        if result.ok:
            self._emit(EventKind.SESSION_ACTIVE, session_id=outcome.session_id,
                       detail=f"{outcome.reason.value} at {outcome.rate_bps} bit/s")
            return
        with self._lock:
            ended = self.admission.fail(outcome.session_id, result.reason())
            for node in result.rolled_back + tuple(result.failures):
                self.admission.confirm_deletion(outcome.session_id, node)
        # nodes that could not be rolled back still hold the configuration: delete it there
        leftovers = [c for c in ended.configs if c.node_id in result.rollback_failures]
        self._finish(ended, configs=leftovers, refuse_ends=True)

    def _on_closed(self, event: ApplicationClosed) -> None:
        with self._lock:
            try:
                ended = self.admission.close(event.session_id, event.node_id)
            except SessionError as exc:
                log.info("close of session %s from %s ignored: %s", event.session_id,
                         event.node_id, exc)
                return
        self._finish(ended)

    def _on_qos_update(self, event: ApplicationQosUpdate) -> None:
        with self._lock:
            try:
                view = self.admission.session(event.session_id)
                old = view.configs
                outcome = self.admission.update_qos(event.session_id, event.node_id, event.qos)
            except SessionError as exc:
                log.info("QoS update for %s ignored: %s", event.session_id, exc)
                return
        if isinstance(outcome, Refused):
            sae, peer = _ends_for(view, event.node_id)
            self._emit(EventKind.SESSION_REFUSED, session_id=event.session_id,
                       node_id=event.node_id,
                       detail=f"QoS update: {outcome.reason.value} {outcome.detail}")
            self.signals.refuse(event.node_id, SessionRefusal(
                sae, peer, outcome.session_id, outcome.status, outcome.reason.value,
                outcome.detail, outcome.counter_proposal))
            return
        self._move(event.session_id, old, outcome, "QoS update")

    def _on_key_request(self, event: KeyRequestEvent) -> None:
        with self._lock:
            try:
                self.admission.key_request(event.session_id)
                if event.delivered:
                    self.admission.record_delivery(event.session_id, event.node_id,
                                                   event.delivered)
            except SessionError as exc:
                log.info("key request event for %s ignored: %s", event.session_id, exc)

    def _on_key_mode(self, event: KeyModeChangeEvent) -> None:
        """Monitoring: record a session's switch to hybrid/pqc keys and its switch back."""
        with self._lock:
            try:
                previous = self.admission.set_key_mode(event.session_id, event.mode)
            except SessionError as exc:
                log.info("key mode event for %s ignored: %s", event.session_id, exc)
                return
        if previous is not None:
            self._emit(EventKind.SESSION_KEY_MODE, session_id=event.session_id,
                       node_id=event.node_id,
                       detail=f"{previous} -> {event.mode}: {event.reason}".rstrip(": "))

    def _on_km_state(self, event: KmSessionStateEvent) -> None:
        if event.state != "terminated":
            return
        with self._lock:
            try:
                view = self.admission.session(event.session_id)
            except SessionError:
                return
            if view.state is SessionState.TERMINATED:
                self.admission.confirm_deletion(event.session_id, event.node_id)
                return
            if event.node_id not in {view.initiator.node_id,
                                     view.responder.node_id if view.responder else None}:
                return  # a relay does not end a session by itself
            ended = self.admission.close(event.session_id, event.node_id)
        self._finish(ended)

    # --- links ------------------------------------------------------------------------------
    def _on_link_updates(self, updates: list[LinkUpdate]) -> None:
        for update in updates:
            with self._lock:
                decision = assess(update, self.thresholds,
                                  self.admission.ledger.sessions_by_link())
                if decision.flag_changed:
                    self.topology.set_flag(decision.qkdl_id, decision.flag_reason)
            if self.link_update_sink is not None:
                try:
                    self.link_update_sink(update)
                except Exception:  # an observer's fault must not stop monitoring
                    log.exception("link update sink failed")
            for alarm in decision.alarms:
                self._emit(EventKind.LINK_ALARM, qkdl_id=alarm.qkdl_id, alarm=alarm,
                           detail=f"{alarm.severity.value} {alarm.kind.value}: {alarm.message}")
            if decision.reroute:
                self._restore(sorted(decision.reroute))

    def _restore(self, session_ids: list[SessionId]) -> None:
        """Sessions on a link that became unusable, by their path-restoration policy:
        AUTOMATIC ones are rerouted (after their hold-off time, if their path is still
        broken then), MANUAL ones stay until an operator restores or closes them."""
        if self.restoration_policy is None:
            self._reroute(session_ids)
            return
        now: list[SessionId] = []
        later: dict[int, list[SessionId]] = {}
        with self._lock:
            for session_id in session_ids:
                try:
                    view = self.admission.session(session_id)
                    policy = self.restoration_policy(view)
                except SessionError:
                    continue
                except Exception:  # a policy lookup failure: fall back to rerouting now
                    log.exception("restoration policy of %s", session_id)
                    policy = DEFAULT_RESTORATION
                if policy.kind is RestorationType.MANUAL:
                    log.info("session %s: manual restoration, left for the operator",
                             session_id)
                elif policy.hold_off_ms > 0:
                    later.setdefault(policy.hold_off_ms, []).append(session_id)
                else:
                    now.append(session_id)
            for hold_off_ms, waiting in later.items():
                timer = threading.Timer(hold_off_ms / 1000, self._reroute_if_still_broken,
                                        args=(waiting,))
                timer.daemon = True
                self._hold_off_timers.add(timer)
                timer.start()
        if now:
            self._reroute(now)

    def _reroute_if_still_broken(self, session_ids: list[SessionId]) -> None:
        """After a hold-off time: reroute the sessions whose path still crosses an unusable
        link (a link that came back in the meantime needs no restoration)."""
        with self._lock:
            if self._closed:
                return
            self._hold_off_timers = {t for t in self._hold_off_timers if t.is_alive()
                                     and t is not threading.current_thread()}
            usable = {link.qkdl_id for link in self.topology.links() if link.usable}
            broken = []
            for session_id in session_ids:
                try:
                    view = self.admission.session(session_id)
                except SessionError:
                    continue
                if view.state is SessionState.ACTIVE and view.route is not None and \
                        set(view.route.link_rates()) - usable:
                    broken.append(session_id)
        if broken:
            self._reroute(broken)

    def _reroute(self, session_ids: list[SessionId]) -> None:
        """New routes for all ``session_ids`` (decided one after the other, so each sees the
        capacity the previous ones took), then their pushes in parallel."""
        moves: list[tuple[SessionId, tuple[KmConfig, ...], Rerouted | Terminated]] = []
        with self._lock:
            for session_id in session_ids:
                try:
                    old = self.admission.session(session_id).configs
                    moves.append((session_id, old, self.admission.reroute(session_id)))
                except SessionError:
                    continue

        def apply(move: tuple[SessionId, tuple[KmConfig, ...], Rerouted | Terminated]) -> None:
            session_id, old, outcome = move
            if isinstance(outcome, Terminated):
                self._finish(outcome)
            elif outcome.kept_for_fallback:
                self._emit(EventKind.SESSION_REROUTED, session_id=session_id,
                           detail="no route: kept on its configuration, fallback keys")
            else:
                self._move(session_id, old, outcome, "reroute")

        if len(moves) == 1:
            apply(moves[0])
            return
        together = [m for m in moves if isinstance(m[2], Rerouted)]
        alone = [m for m in moves if not isinstance(m[2], Rerouted)]
        if len(together) > 1 and not self._move_together(together):  # type: ignore[arg-type]
            alone += together   # one by one, each with its own rollback
        elif len(together) == 1:
            alone += together
        for future in [self._session_pool.submit(apply, move) for move in alone]:
            exc = future.exception()
            if exc is not None:
                log.error("reroute failed: %s", exc, exc_info=exc)

    def _move_together(self, moves: list[tuple[SessionId, tuple[KmConfig, ...], Rerouted]]
                       ) -> bool:
        """Push the new configurations of several rerouted sessions as one edit-config per
        node (all nodes in one parallel wave), then delete what the old ones leave behind in one edit-config
        per node. False if the push failed (every node is back on the old configurations;
        the caller then moves the sessions one by one)."""
        pushes = [p for _, old, out in moves for p in plan_reroute_push(out.new_configs, old)]
        result = push_all(merge_node_pushes(pushes), self.configurators,
                          executor=self.executor)
        if not result.ok:
            log.warning("moving %d sessions together failed (%s); one by one", len(moves),
                        result.reason())
            return False
        for session_id, _, outcome in moves:   # the new paths are in place: keys flow
            path = " | ".join("-".join(leg.path.nodes) for leg in outcome.route.legs) \
                if outcome.route else "local"
            self._emit(EventKind.SESSION_REROUTED, session_id=session_id,
                       detail=f"reroute: {path} at {outcome.rate_bps} bit/s")
        remove_all([c for _, _, out in moves for c in out.stale_configs], self.configurators,
                   executor=self.executor)
        return True

    def _move(self, session_id: SessionId, old: tuple[KmConfig, ...], outcome: Rerouted,
              why: str) -> None:
        """Push a session's new configuration, then delete what the old one leaves behind;
        if the push fails, the session ends (its KMs are back on the old configuration,
        which is deleted)."""
        result = push_all(plan_reroute_push(outcome.new_configs, old), self.configurators,
                          executor=self.executor)
        if not result.ok:
            old_nodes = {c.node_id for c in old}
            with self._lock:
                ended = self.admission.fail(session_id, f"{why} failed: {result.reason()}")
                for node in result.rolled_back + tuple(result.failures):
                    if node not in old_nodes:  # new to the session and rolled back: clean
                        self.admission.confirm_deletion(session_id, node)
            # rolled-back nodes hold the old configuration again: delete that, and the new
            # one where the rollback itself failed
            leftovers = [c for c in ended.configs
                         if c.node_id in result.rollback_failures and c.node_id not in old_nodes]
            self._finish(ended, configs=list(old) + leftovers)
            return
        path = " | ".join("-".join(leg.path.nodes) for leg in outcome.route.legs) \
            if outcome.route else "local"
        self._emit(EventKind.SESSION_REROUTED, session_id=session_id,
                   detail=f"{why}: {path} at {outcome.rate_bps} bit/s")
        remove_all(outcome.stale_configs, self.configurators, executor=self.executor)

    # --- termination ------------------------------------------------------------------------
    def _finish(self, ended: Terminated, *, configs: list[KmConfig] | None = None,
                refuse_ends: bool = False) -> None:
        """Delete the session from its KMs (collecting confirmations) and tell KMs that hold
        no configuration (still waiting) with a refusal."""
        to_delete = list(ended.configs) if configs is None else configs
        result = remove_all(to_delete, self.configurators, executor=self.executor)
        with self._lock:
            try:
                for node in result.confirmed:
                    self.admission.confirm_deletion(ended.session_id, node)
                view = self.admission.session(ended.session_id)
            except SessionError:  # already forgotten by a concurrent tick: nothing pending
                view = None
        for node, why in result.failures.items():
            log.warning("session %s: deletion on %s failed: %s", ended.session_id, node, why)
        notify = set(ended.notify_nodes) if view is not None else set()
        if refuse_ends and view is not None:
            notify |= {view.initiator.node_id}
            if view.responder is not None:
                notify.add(view.responder.node_id)
        for node in sorted(notify):
            sae, peer = _ends_for(view, node)
            self.signals.refuse(node, SessionRefusal(
                sae, peer, ended.session_id, ended.status, ended.reason.value, ended.detail,
                ended.counter_proposal,
                request_id=self._request_ids.get((ended.session_id, node))))
        self._emit(EventKind.SESSION_TERMINATED, session_id=ended.session_id,
                   detail=f"{ended.reason.value} {ended.detail}".strip())

    def _emit(self, kind: EventKind, **fields: Any) -> None:
        event = ControllerEvent(kind, self.clock(), **fields)
        self.events.append(event)
        log.info("%s %s", kind.value, {k: v for k, v in fields.items() if k != "alarm"})
        if self.event_sink is not None:
            self.event_sink(event)


def _ends_for(view: Any, node: NodeId) -> tuple[SaeId, SaeId]:
    """(this node's SAE, its peer) of a session, from the point of view of ``node``."""
    if view.responder is not None and view.responder.node_id == node and \
            view.initiator.node_id != node:
        return view.responder.sae_id, view.initiator.sae_id
    return view.initiator.sae_id, view.peer_sae_id


def ends_first(configs: Iterable[KmConfig]) -> list[KmConfig]:
    """``configs`` with the path's two ends before its relays (each group in its order): the
    push is one parallel wave either way, but its requests leave one after the other, and the
    applications wait for the ends only (their OPEN_CONNECT answers when their own KM is
    configured; a relay that gets keys before its rule waits for it).

    >>> from sdn_controller.session_config import KmRole
    >>> class C:
    ...     def __init__(self, name, role): self.node_id, self.role = name, role
    >>> [c.node_id for c in ends_first([C("0", KmRole.SOURCE), C("1", KmRole.RELAY),
    ...                                 C("2", KmRole.DESTINATION)])]
    ['0', '2', '1']
    """
    return sorted(configs, key=lambda c: c.role is KmRole.RELAY)


def _relays(configs: Iterable[KmConfig]) -> frozenset[NodeId]:
    """The KMs that only forward on a session's paths (the test pause of ``push_pause_s``
    falls between configuring them and the rest)."""
    return frozenset(c.node_id for c in configs if c.role is KmRole.RELAY)
