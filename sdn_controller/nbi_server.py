"""The controller's north-bound NETCONF server (ETSI GS QKD 018 style): the agent's server code
(:class:`~qkd_agent.agent.QkdAgent`) serving ``qkdn-sdn-topology``, ``qkdn-sdn-inventory`` and
``qkdn-sdn-access`` for one controller.

>>> # with NbiServer(controller, topology, users, NbiConfig(password="pw")) as nbi:
>>> #     nbi.endpoint()  # {"host": ..., "port": ..., "username": ..., "password": ...}

What it wires (the builders are pure, in ``nbi_*.py``):

- **Datastore**: running = ``qkd_network`` from the topology file + ``qkd_access`` from the
  user database. The user database is the source of truth: before every operation the
  datastore's ``qkd_access`` is brought in line with it (``qkdn users`` may have changed
  it), and an edit of ``qkd_access`` is written to it (one transaction) before the datastore
  commits, so a database refusal refuses the edit. Nodes, interfaces and physical links come
  from the topology file: an edit may change their details (``qkdl_enable``, location,
  fibre data), not add or remove them.
- **State** (``<get>``): node, interface and link status and performance from the topology
  database, the sessions as service links, ``active_sessions`` per user and application.
- **RPCs** ``close_svc_link``, ``restore_svc_link`` (:mod:`sdn_controller.nbi_rpcs`).
- **Notifications**: the controller's events and link updates and agent connection changes
  are queued (the controller never waits for a subscriber) and a worker thread turns them
  into ``qkdn-sdn-inventory`` notifications.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import libyang
from lxml import etree

from qkd_agent.agent import AgentConfig, AgentThread, QkdAgent
from qkd_agent.datastore import Datastore
from qkd_agent.rpc_error import ErrorTag, ErrorType, RpcError
from qkd_agent.yang_context import load_context
from qkdn.namespaces import NETCONF_BASE_NS, QKDN_ACC_MODULE, QKDN_INV_MODULE, QKDN_TOPO_MODULE
from qkdn.state_files import read_json, write_json_atomic
from qkdn.topology import Topology
from sdn_controller.admission_control import SessionState, SessionView
from sdn_controller.controller import Controller, ControllerEvent, EventKind
from sdn_controller.errors import DatabaseError, SessionError, UnknownEntryError
from sdn_controller.identifiers import LinkId
from sdn_controller.nbi_access import (
    ACCESS,
    AccessData,
    access_changes,
    access_config,
    access_data,
    access_from_json,
    access_state,
    apply_access_changes,
    newly_revoked,
)
from sdn_controller.nbi_network import (
    LINK_DETAILS,
    NETWORK,
    NODE_DETAILS,
    NodeEndpoints,
    network_config,
    network_state,
)
from sdn_controller.nbi_notifications import (
    link_alarm,
    node_alarm,
    phys_link_overloaded,
    phys_link_perf_update,
    resource_new,
    resource_removed,
    restoration_failed,
    svc_link_path_update,
    svc_link_perf_update,
)
from sdn_controller.nbi_rpcs import nbi_operations
from sdn_controller.nbi_service_links import sessions_by_link, svc_links_state
from sdn_controller.path_restoration import DEFAULT_RESTORATION, PathRestoration
from sdn_controller.topology_db import LinkUpdate
from sdn_controller.user_db import UserDb

log = logging.getLogger(__name__)

#: the modules the north-bound server implements (what they import is loaded, not served)
NBI_MODULES = (QKDN_TOPO_MODULE, QKDN_INV_MODULE, QKDN_ACC_MODULE)


@dataclass(frozen=True)
class NbiConfig:
    """Settings of the north-bound server, resolved once."""

    host: str = "127.0.0.1"
    port: int = 0  #: 0 = ephemeral
    username: str = "admin"
    password: str | None = None
    host_key: Path | None = None  #: generated and kept if missing
    #: at most one performance notification per link / session in this many seconds
    perf_interval_s: float = 1.0


def merge_json(into: dict[str, Any], other: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge RFC 7951 JSON objects (containers merged, anything else replaced)."""
    for key, value in other.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            merge_json(into[key], value)
        else:
            into[key] = value
    return into


class _Change:
    """Work for the notification worker."""

    def __init__(self, kind: str, payload: Any = None, extra: Any = None) -> None:
        self.kind, self.payload, self.extra = kind, payload, extra


class NbiServer:
    """The north-bound NETCONF server of one controller (a context manager)."""

    def __init__(self, controller: Controller, topology: Topology, users: UserDb,
                 config: NbiConfig, *, endpoints: Mapping[str, NodeEndpoints] | None = None,
                 connected: Callable[[], Mapping[str, bool]] | None = None,
                 ctx: libyang.Context | None = None,
                 clock: Callable[[], float] = time.time,
                 admission_clock: Callable[[], float] = time.monotonic,
                 network_file: Path | None = None) -> None:
        """``network_file`` keeps the edited ``qkd_network`` configuration (locations, fibre
        data, ``qkdl_enable``) across restarts; ignored when the topology file no longer has
        the same nodes, interfaces and links."""
        self.controller = controller
        self.topology = topology
        self.users = users
        self.config = config
        self.endpoints = dict(endpoints or {})
        self.connected = connected or dict
        self.clock = clock
        self.admission_clock = admission_clock
        self.node_names = {n.qkdn_id: n.name for n in topology.nodes}
        self.ctx = ctx or load_context(modules=NBI_MODULES)
        self.network_file = network_file
        initial = merge_json(self._initial_network(), access_config(self._access_from_db()))
        self.datastore = Datastore(self.ctx, initial)
        self.datastore.add_commit_check(self._check_commit)
        self.datastore.add_listener(self._after_commit)
        self._syncing = False
        self._work: queue.Queue[_Change | None] = queue.Queue()
        self._worker = threading.Thread(target=self._run_worker, name="qkdn-nbi-notify",
                                        daemon=True)
        self._close_reasons: dict[str, str] = {}
        self._announced: set[str] = set()
        self._restorations: dict[str, int] = {}
        self._last_perf: dict[str, float] = {}
        self._agents_seen: dict[str, bool] = {}
        self._pending: list[_Change] = []
        self.agent = QkdAgent(
            AgentConfig(host=config.host, port=config.port, username=config.username,
                        password=config.password, host_key=config.host_key),
            _SyncedDatastore(self), self.operational_state, ctx=self.ctx,
            operations=nbi_operations(self.ctx, controller, self._closing))
        self._thread: AgentThread | None = None
        self._previous_event_sink: Any = None
        self.notifications_sent = 0

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Self:
        """Listen, start the notification worker and subscribe to the controller."""
        self._thread = AgentThread(self.agent).start()
        self._worker.start()
        # keep a sink already installed (the controller's metrics) and tell it first
        self._previous_event_sink = self.controller.event_sink
        self.controller.event_sink = self._fan_out_event
        self.controller.link_update_sink = self.on_link_update
        log.info("north-bound NETCONF server on %s:%d", self.config.host, self.port)
        return self

    def _fan_out_event(self, event: Any) -> None:
        if self._previous_event_sink is not None:
            self._previous_event_sink(event)
        self.on_event(event)

    def stop(self) -> None:
        if self.controller.event_sink == self._fan_out_event:
            self.controller.event_sink = self._previous_event_sink
        if self.controller.link_update_sink == self.on_link_update:
            self.controller.link_update_sink = None
        if self._worker.is_alive():
            self._work.put(None)
            self._worker.join(timeout=10)
        if self._thread is not None:
            self._thread.stop()
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self.agent.port

    def endpoint(self) -> dict[str, Any]:
        """Host, port and credentials (the ``nbi`` entry of ``endpoints.json``)."""
        return {"host": self.config.host, "port": self.port, "username": self.config.username,
                "password": self.config.password}

    # ------------------------------------------------------------------ reads
    def _initial_network(self) -> dict[str, Any]:
        base = network_config(self.topology)
        if self.network_file is None or not self.network_file.exists():
            return base
        try:
            saved = read_json(self.network_file)
        except (OSError, ValueError) as exc:
            log.warning("%s unreadable, starting from the topology file: %s",
                        self.network_file, exc)
            return base
        if NETWORK not in saved or _structure(saved) != _structure(base):
            log.warning("%s does not match the topology file; not used", self.network_file)
            return base
        return {NETWORK: saved[NETWORK]}

    def _access_from_db(self) -> AccessData:
        slas = self.users.slas()
        return access_data(slas, {s.name: self.users.restoration(s.name) for s in slas},
                           self.users.users(), self.users.applications())

    def sync_access(self) -> None:
        """Bring the datastore's ``qkd_access`` in line with the user database."""
        wanted = self._access_from_db()
        if wanted == access_from_json(self.datastore.running_snapshot(), self.node_names):
            return
        tree = self.ctx.parse_data_mem(_json_text(access_config(wanted)), "json", strict=True,
                                       no_state=True, parse_only=True)
        try:
            xml = tree.print_mem("xml", with_siblings=True)
        finally:
            tree.free()
        config = etree.fromstring(f'<config xmlns="{NETCONF_BASE_NS}">{xml}</config>'.encode())
        for child in config:
            child.set(f"{{{NETCONF_BASE_NS}}}operation", "replace")
        self._syncing = True
        try:
            self.datastore.edit_config(config)
        except RpcError as exc:
            log.error("the user database does not fit the access model: %s", exc)
        finally:
            self._syncing = False

    def _open_sessions(self) -> list[SessionView]:
        with self.controller._lock:
            return self.controller.admission.sessions()

    def restoration_of(self, view: SessionView) -> PathRestoration:
        try:
            return self.users.restoration(view.initiator.sla.name)
        except DatabaseError:
            return DEFAULT_RESTORATION

    def operational_state(self) -> dict[str, Any]:
        """The ``config false`` data at the moment of a ``<get>`` (RFC 7951 JSON)."""
        views = self._open_sessions()
        links = {link.qkdl_id: link for link in self.controller.topology.links()}
        offset = self.clock() - self.admission_clock()
        state = network_state(
            self.controller.topology.nodes(), self.controller.topology.interfaces(),
            links.values(), connected=self.connected(), endpoints=self.endpoints,
            svc_links_by_link=sessions_by_link(views))
        known = set(self.node_names)
        nodes = state[NETWORK]["sdqkd_nodes"]["sdqkd_node"]
        state[NETWORK]["sdqkd_nodes"]["sdqkd_node"] = [n for n in nodes
                                                        if n["qkdn_id"] in known]
        merge_json(state, svc_links_state(
            views, restoration_of=self.restoration_of, restorations=self._restorations,
            links=links, to_wall=lambda t: t + offset))
        open_by_sae: dict[str, int] = {}
        for view in views:
            if view.state in (SessionState.ACCEPTED, SessionState.ACTIVE):
                for end in (view.initiator, view.responder):
                    if end is not None:
                        open_by_sae[end.sae_id] = open_by_sae.get(end.sae_id, 0) + 1
        access = access_from_json(self.datastore.running_snapshot(), self.node_names)
        merge_json(state, access_state(access, open_by_sae))
        return state

    # ------------------------------------------------------------------ writes
    def _check_commit(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        """Before a validated edit commits: network edits within bounds, access changes
        written to the user database (all or nothing)."""
        if self._syncing:
            return
        self._pending = _network_changes(old, new)
        changes = access_changes(access_from_json(old, self.node_names),
                                 access_from_json(new, self.node_names))
        if not changes:
            return
        try:
            apply_access_changes(self.users, changes,
                                 at=datetime.fromtimestamp(self.clock(), UTC).isoformat())
        except UnknownEntryError as exc:
            raise RpcError(ErrorTag.DATA_MISSING, str(exc), path=f"/{ACCESS}") from exc
        except DatabaseError as exc:
            raise RpcError(ErrorTag.INVALID_VALUE, str(exc), path=f"/{ACCESS}") from exc
        users, apps = newly_revoked(changes)
        if users or apps:
            self._pending.append(_Change("revoked", (users, apps)))

    def _after_commit(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        if self.network_file is not None and old.get(NETWORK) != new.get(NETWORK):
            write_json_atomic(self.network_file, {NETWORK: new.get(NETWORK)})
        pending, self._pending = self._pending, []
        for change in pending:
            self._work.put(change)

    def _closing(self, session_id: str, reason: str) -> None:
        """Before ``close_svc_link`` closes a known session: its removal reason."""
        if self._view(session_id) is not None:
            self._close_reasons[session_id] = "closed"

    # ------------------------------------------------------------------ events in
    def on_event(self, event: ControllerEvent) -> None:
        """The controller's event sink: queue it (and, for a link alarm, the sessions the
        link carries right now)."""
        affected: frozenset[str] = frozenset()
        if event.kind is EventKind.LINK_ALARM and event.qkdl_id:
            with self.controller._lock:
                affected = self.controller.admission.sessions_using([LinkId(event.qkdl_id)])
        self._work.put(_Change("event", event, affected))

    def on_link_update(self, update: LinkUpdate) -> None:
        self._work.put(_Change("link", update))

    def observe_agents(self, connected: Mapping[str, bool]) -> None:
        """Agent connection states (``qkdn_id`` → connected), e.g. every controller tick."""
        self._work.put(_Change("agents", dict(connected)))

    # ------------------------------------------------------------------ worker
    def _run_worker(self) -> None:
        while True:
            change = self._work.get()
            if change is None:
                return
            try:
                for body in self._notifications_for(change):
                    self._send(body)
            except Exception:
                log.exception("north-bound: handling %s failed", change.kind)

    def _send(self, body: dict[str, Any]) -> None:
        try:
            self.agent.notify(body)
            self.notifications_sent += 1
        except Exception as exc:  # noqa: BLE001 - invalid body (a bug) or server stopping
            log.warning("north-bound notification %s not sent: %s", next(iter(body)), exc)

    def _view(self, session_id: str | None) -> SessionView | None:
        if not session_id:
            return None
        with self.controller._lock:
            try:
                return self.controller.admission.session(session_id)
            except SessionError:
                return None

    def _notifications_for(self, change: _Change) -> list[dict[str, Any]]:
        if change.kind == "event":
            return self._event_notifications(change.payload, change.extra)
        if change.kind == "link":
            return self._link_notifications(change.payload)
        if change.kind == "agents":
            return self._agent_notifications(change.payload)
        if change.kind == "enable":
            qkdl_id, enabled = change.payload
            try:
                self.controller.set_link_in_service(qkdl_id, enabled)
            except (UnknownEntryError, SessionError) as exc:
                log.warning("link %s: %s", qkdl_id, exc)
            return []
        if change.kind == "revoked":
            self._close_revoked(*change.payload)
        return []

    def _close_revoked(self, users: frozenset[str], apps: frozenset[str]) -> None:
        for view in self._open_sessions():
            ends = [view.initiator] + ([view.responder] if view.responder else [])
            if any(e.user in users or e.sae_id in apps for e in ends):
                self._close_reasons[view.session_id] = "revoked"
                try:
                    self.controller.close_session(view.session_id, "revoked")
                except SessionError:
                    pass

    def _announce(self, session_id: str) -> list[dict[str, Any]]:
        if session_id in self._announced:
            return []
        self._announced.add(session_id)
        return [resource_new("svc_link", qkdl_id=session_id)]

    def _event_notifications(self, event: ControllerEvent, affected: frozenset[str]
                             ) -> list[dict[str, Any]]:
        sid = event.session_id
        out: list[dict[str, Any]] = []
        if event.kind is EventKind.SESSION_WAITING and sid:
            out += self._announce(sid)
        elif event.kind is EventKind.SESSION_ACTIVE and sid:
            out += self._announce(sid)
            view = self._view(sid)
            if view is not None:
                out.append(svc_link_path_update(view, "admitted"))
        elif event.kind is EventKind.SESSION_REROUTED and sid:
            self._restorations[sid] = self._restorations.get(sid, 0) + 1
            view = self._view(sid)
            if view is not None:
                why = event.detail.split(":", 1)[0].strip().lower().replace(" ", "-")
                out.append(svc_link_path_update(view, why or "reroute"))
        elif event.kind is EventKind.SESSION_TERMINATED and sid:
            reason = self._close_reasons.pop(sid, None) or \
                (event.detail.split()[0] if event.detail else "closed")
            if sid in self._announced:
                self._announced.discard(sid)
                out.append(resource_removed("svc_link", reason, qkdl_id=sid))
            if reason == "link-failure":
                out.append(restoration_failed(sid, f"no route left: {event.detail}"))
            self._restorations.pop(sid, None)
        elif event.kind is EventKind.LINK_ALARM and event.alarm is not None:
            try:
                link = self.controller.topology.link(event.alarm.qkdl_id)
            except UnknownEntryError:
                link = None
            out.append(link_alarm(event.alarm, link, affected))
        return out

    def _link_notifications(self, update: LinkUpdate) -> list[dict[str, Any]]:
        link, previous = update.current, update.previous
        out: list[dict[str, Any]] = []
        if previous is None:
            out.append(resource_new("phys_link", qkdl_id=link.qkdl_id))
        now = self.clock()
        status_changed = previous is None or previous.status != link.status
        last = self._last_perf.get(link.qkdl_id)
        if status_changed or last is None or now - last >= self.config.perf_interval_s:
            self._last_perf[link.qkdl_id] = now
            out.append(phys_link_perf_update(link))
            links = {m.qkdl_id: m for m in self.controller.topology.links()}
            with self.controller._lock:
                moving = self.controller.admission.sessions_using([link.qkdl_id])
            for sid in sorted(moving):
                view = self._view(sid)
                if view is not None:
                    out.append(svc_link_perf_update(view, links))
        if link.overloaded and not (previous is not None and previous.overloaded):
            with self.controller._lock:
                carried = self.controller.admission.sessions_using([link.qkdl_id])
            out.append(phys_link_overloaded(link, carried))
        return out

    def _agent_notifications(self, connected: Mapping[str, bool]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for node_id, up in sorted(connected.items()):
            before = self._agents_seen.get(node_id)
            name = self.node_names.get(node_id)
            if before is None and up:
                out.append(resource_new("sdqkd_node", qkdn_id=node_id,
                                        **({"qkdn_name": name} if name else {})))
            elif before and not up:
                out.append(node_alarm(node_id, name, reachable=False,
                                      message="the controller lost its session with the "
                                              "node's agent"))
            elif before is False and up:
                out.append(node_alarm(node_id, name, reachable=True,
                                      message="the node's agent is reachable again"))
            if up or before is not None:
                self._agents_seen[node_id] = up
        return out


def _json_text(document: Mapping[str, Any]) -> str:
    import json

    return json.dumps(document)


def _network_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[_Change]:
    """The physical links whose ``qkdl_enable`` an edit changes; RpcError for an edit that
    adds or removes nodes, interfaces or links or moves a link's ends."""
    before, after = _structure(old), _structure(new)
    if before != after:
        raise RpcError(ErrorTag.OPERATION_NOT_SUPPORTED,
                       "nodes, interfaces and physical links come from the topology file: an "
                       "edit may change their details, not add, remove or reconnect them",
                       type=ErrorType.APPLICATION, path=f"/{NETWORK}")
    old_enable, new_enable = _enabled(old), _enabled(new)
    return [_Change("enable", (qkdl_id, enabled)) for qkdl_id, enabled in sorted(
        new_enable.items()) if old_enable.get(qkdl_id, True) != enabled]


def _structure(document: Mapping[str, Any]) -> tuple[Any, ...]:
    network = document.get(NETWORK) or {}
    nodes = []
    for node in (network.get("sdqkd_nodes") or {}).get("sdqkd_node") or []:
        ifaces = sorted(i["qkdi_id"] for i in (node.get("qkd_interfaces") or {})
                        .get("qkd_interface") or [])
        nodes.append((node["qkdn_id"], tuple(ifaces)))
    links = []
    for link in ((network.get("qkd_links") or {}).get("phys_links") or {}).get(
            "phys_link") or []:
        ends = tuple(sorted((str(e.get("qkdn_id")), str(e.get("qkdi_id")))
                            for e in (link.get("qkdl_local") or {},
                                      link.get("qkdl_remote") or {})))
        links.append((link["qkdl_id"], ends))
    return (tuple(sorted(nodes)), tuple(sorted(links)))


def _enabled(document: Mapping[str, Any]) -> dict[str, bool]:
    network = document.get(NETWORK) or {}
    links = ((network.get("qkd_links") or {}).get("phys_links") or {}).get("phys_link") or []
    return {link["qkdl_id"]: bool((link.get(LINK_DETAILS) or {}).get("qkdl_enable", True))
            for link in links}


class _SyncedDatastore:
    """The datastore the NETCONF sessions see: the user database is synced in before each
    operation (it may have changed under ``qkdn users``)."""

    def __init__(self, server: NbiServer) -> None:
        self._server = server
        self._store = server.datastore
        self.ctx = server.ctx

    def get_config(self, filter: etree._Element | None) -> etree._Element:
        self._server.sync_access()
        return self._store.get_config(filter)

    def get(self, filter: etree._Element | None, operational: dict) -> etree._Element:
        self._server.sync_access()
        return self._store.get(filter, operational)

    def edit_config(self, config: etree._Element, **options: Any) -> None:
        self._server.sync_access()
        self._store.edit_config(config, **options)

    def validate(self, config: etree._Element | None = None) -> None:
        self._store.validate(config)

    def running_json(self) -> dict:
        return self._store.running_json()


__all__ = ["NODE_DETAILS", "NbiConfig", "NbiServer", "merge_json"]
