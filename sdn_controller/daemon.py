"""``qkdn controller``: the controller process of a network brought up in a state directory.

Reads ``DIR/endpoints.json`` (agents' NETCONF endpoints and credentials) and
``DIR/topology.yaml``, opens ``DIR/controller/users.sqlite`` and ``DIR/controller/
topology.sqlite``, connects to every agent and runs the control loop until SIGTERM/SIGINT.
Every ``tick_s`` it expires sessions and writes ``DIR/controller/sessions.json`` (sessions with
their paths and state, recent events; with many sessions less often, at most 1 % of a core
and at least every 2 s: :func:`snapshot_delay_for`), which ``qkdn sessions`` prints; ``qkdn topology`` reads
the topology database directly. ``DIR/controller/ready.json`` appears once every agent is
connected.

Settings: argument, then ``QKDN_*`` environment variable, then default, resolved once
(:func:`resolve_settings`).
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from qkdn.errors import ConfigError
from qkdn.state_files import read_json, write_json_atomic
from qkdn.topology import Topology, load_topology
from sdn_controller.admission_control import AdmissionControl, AdmissionPolicy, SessionView
from sdn_controller.cli import open_users_db
from sdn_controller.controller import Controller, ControllerEvent, SessionRefusal
from sdn_controller.controller_metrics import ControllerMetrics
from sdn_controller.identifiers import NodeId
from sdn_controller.monitoring import MonitoringThresholds
from sdn_controller.nbi_network import NodeEndpoints
from sdn_controller.nbi_server import NbiConfig, NbiServer
from sdn_controller.path_restoration import PathRestoration
from sdn_controller.refusal_channel import NetconfRefusals
from sdn_controller.routing import GraphRouter
from sdn_controller.southbound import AgentEndpoint, Southbound, SouthboundConfig, Transport
from sdn_controller.thread_profile import profiles_from_env
from sdn_controller.topology_db import TopologyDb

log = logging.getLogger(__name__)

CONTROLLER_DIR = "controller"
#: the north-bound server's endpoint and credentials, kept across restarts (mode 0600)
NBI_FILE = "nbi.json"
#: the north-bound qkd_network configuration as edited by orchestrators (kept across restarts)
NBI_NETWORK_FILE = "nbi_network.json"


@dataclass(frozen=True)
class ControllerSettings:
    state_dir: Path
    qber_alarm: float = 0.11
    poll_interval_s: float = 5.0
    tick_s: float = 0.5
    peer_wait_s: float = 30.0
    connect_timeout_s: float = 60.0
    #: north-bound NETCONF server; port None = the one recorded in DIR/controller/nbi.json
    #: by an earlier run, else ephemeral
    nbi_host: str = "127.0.0.1"
    nbi_port: int | None = None
    #: test-only pause between configuring a path's relays and its ends (QKDN_FAULT_PUSH_PAUSE)
    push_pause_s: float = 0.0
    #: SSH under the south-bound sessions (``southbound.Transport``: auto, libssh, paramiko)
    southbound_transport: str = "auto"


def resolve_settings(state_dir: Path, *, qber_alarm: float | None = None,
                     poll_interval_s: float | None = None, tick_s: float | None = None,
                     peer_wait_s: float | None = None, nbi_host: str | None = None,
                     nbi_port: int | None = None, southbound_transport: str | None = None,
                     environ: Mapping[str, str] = os.environ) -> ControllerSettings:
    """Argument, then ``QKDN_QBER_ALARM`` / ``QKDN_POLL_INTERVAL`` / ``QKDN_TICK`` /
    ``QKDN_PEER_WAIT`` / ``QKDN_NBI_HOST`` / ``QKDN_NBI_PORT`` /
    ``QKDN_SOUTHBOUND_TRANSPORT``, then the default."""
    def pick(value: float | None, env: str, default: float) -> float:
        if value is not None:
            return float(value)
        if env in environ:
            try:
                return float(environ[env])
            except ValueError:
                raise ConfigError(f"{env}={environ[env]!r} is not a number") from None
        return default

    defaults = ControllerSettings(state_dir)
    return ControllerSettings(
        state_dir=Path(state_dir),
        qber_alarm=pick(qber_alarm, "QKDN_QBER_ALARM", defaults.qber_alarm),
        poll_interval_s=pick(poll_interval_s, "QKDN_POLL_INTERVAL", defaults.poll_interval_s),
        tick_s=pick(tick_s, "QKDN_TICK", defaults.tick_s),
        peer_wait_s=pick(peer_wait_s, "QKDN_PEER_WAIT", defaults.peer_wait_s),
        nbi_host=nbi_host or environ.get("QKDN_NBI_HOST") or defaults.nbi_host,
        nbi_port=nbi_port if nbi_port is not None else (
            int(pick(None, "QKDN_NBI_PORT", 0)) or None),
        push_pause_s=pick(None, "QKDN_FAULT_PUSH_PAUSE", defaults.push_pause_s),
        southbound_transport=_transport_name(
            southbound_transport or environ.get("QKDN_SOUTHBOUND_TRANSPORT")
            or defaults.southbound_transport))


def _transport_name(name: str) -> str:
    """``name`` if it names a :class:`~sdn_controller.southbound.Transport`, else
    :class:`ConfigError`."""
    try:
        return Transport(name).value
    except ValueError:
        raise ConfigError(f"unknown south-bound transport {name!r} (choose "
                          f"{', '.join(t.value for t in Transport)})") from None


def agent_endpoints(endpoints: Mapping[str, Any]) -> list[AgentEndpoint]:
    """The agents of an ``endpoints.json`` document."""
    out = []
    try:
        for name, node in endpoints["nodes"].items():
            nc = node["netconf"]
            out.append(AgentEndpoint(NodeId(node["qkdn_id"]), nc["host"], int(nc["port"]),
                                     nc["username"], nc["password"], name))
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"endpoints.json: malformed node entry ({exc})") from exc
    return out


def node_endpoints(endpoints: Mapping[str, Any]) -> dict[str, NodeEndpoints]:
    """Each node's KM URLs and agent address (``qkdn_id`` → :class:`NodeEndpoints`), for the
    north-bound ``qkdn_details/kme``."""
    out = {}
    for node in (endpoints.get("nodes") or {}).values():
        nc = node.get("netconf") or {}
        out[node["qkdn_id"]] = NodeEndpoints(node.get("etsi014"), node.get("etsi004"),
                                             nc.get("host"), nc.get("port"))
    return out


def nbi_config(settings: ControllerSettings, folder: Path) -> NbiConfig:
    """The north-bound server's settings: host, port and credentials recorded in
    ``folder/nbi.json`` by an earlier run are kept (an explicit port wins); the password is
    generated once."""
    recorded: dict[str, Any] = {}
    try:
        recorded = read_json(folder / NBI_FILE)
    except (OSError, ValueError):
        pass
    port = settings.nbi_port if settings.nbi_port is not None else int(recorded.get("port", 0))
    return NbiConfig(host=settings.nbi_host, port=port,
                     username=str(recorded.get("username") or "admin"),
                     password=str(recorded.get("password") or secrets.token_urlsafe(16)),
                     host_key=folder / "nbi_host_key")


def wait_for_file(path: Path, timeout_s: float, *, interval_s: float = 0.1) -> Path:
    """``path`` once it exists (``qkdn up`` writes endpoints.json when every node is up, so a
    controller started beside the nodes waits for it); ConfigError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() >= deadline:
            raise ConfigError(f"{path} did not appear within {timeout_s:.0f} s")
        time.sleep(interval_s)
    return path


def controller_child_spec(state_dir: Path) -> Any:
    """The supervisor's :class:`~qkdn.supervisor.ChildSpec` of the controller process (for
    ``qkdn up``): ``qkdn controller --state-dir DIR``, log in ``DIR/controller/controller.log``,
    ready when ``DIR/controller/ready.json`` exists."""
    import sys

    from qkdn.supervisor import ChildSpec

    folder = Path(state_dir) / CONTROLLER_DIR
    return ChildSpec("controller", "controller",
                     (sys.executable, "-m", "qkdn.cli", "controller", "--state-dir",
                      str(state_dir)),
                     folder / "controller.log", folder / "ready.json")


class RefusalLog:
    """The recent refusals (shown by ``qkdn sessions``); a
    :class:`~sdn_controller.controller.KmSignals` by itself (records only), or the ``record``
    hook of :class:`~sdn_controller.refusal_channel.NetconfRefusals`, which also tells the KM."""

    def __init__(self, keep: int = 200) -> None:
        self.keep = keep
        self.refusals: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def refuse(self, node_id: NodeId, refusal: SessionRefusal) -> None:
        log.info("refused %s -> %s at %s: status %d %s", refusal.sae_id, refusal.peer_sae_id,
                 node_id, refusal.status, refusal.reason)
        entry = {"node_id": node_id, **asdict(refusal)}
        with self._lock:
            self.refusals = (self.refusals + [entry])[-self.keep:]


def session_summary(view: SessionView, names: Mapping[str, str]) -> dict[str, Any]:
    """A session as ``qkdn sessions`` shows it (node names instead of ids)."""
    def name(node: str) -> str:
        return names.get(node, node)

    legs = []
    if view.route is not None:
        legs = [{"nodes": [name(n) for n in leg.path.nodes], "rate_bps": leg.rate_bps}
                for leg in view.route.legs]
    return {
        "session_id": view.session_id, "state": view.state.value,
        "initiator": {"sae_id": view.initiator.sae_id, "node": name(view.initiator.node_id)},
        "responder": None if view.responder is None else
        {"sae_id": view.responder.sae_id, "node": name(view.responder.node_id)},
        "peer_sae_id": view.peer_sae_id, "rate_bps": view.rate_bps,
        "priority": view.priority, "idle_timeout_s": view.idle_timeout_s, "paths": legs,
        "created_at": view.created_at, "last_activity": view.last_activity,
        "reason": view.reason.value if view.reason else None, "detail": view.detail,
        "fallback_policy": view.fallback.value, "key_mode": view.key_mode,
        "delivered": {p: {"keys": k, "bits": b} for p, (k, b) in view.delivered.items()},
    }


def event_summary(event: ControllerEvent) -> dict[str, Any]:
    return {"kind": event.kind.value, "at": event.at, "session_id": event.session_id,
            "qkdl_id": event.qkdl_id, "node_id": event.node_id, "detail": event.detail}


#: share of one core the ``sessions.json`` snapshot may take, and its longest interval
SNAPSHOT_DUTY, SNAPSHOT_MAX_INTERVAL_S = 0.01, 2.0


def snapshot_delay_for(cost_s: float, tick_s: float, duty: float = SNAPSHOT_DUTY,
                       max_s: float = SNAPSHOT_MAX_INTERVAL_S) -> float:
    """Seconds until the next ``sessions.json`` after one that took ``cost_s`` of CPU: every
    tick while it is cheap, less often as it grows with the sessions (it lists every one),
    so that it takes at most ``duty`` of a core, and at least every ``max_s``.

    >>> snapshot_delay_for(0.002, 0.5), snapshot_delay_for(0.016, 0.5)
    (0.5, 1.6)
    >>> snapshot_delay_for(0.1, 0.5)
    2.0
    """
    return max(tick_s, min(max_s, cost_s / duty))


class ControllerProcess:
    """The wired controller of one state directory (also usable in-process by tests)."""

    def __init__(self, settings: ControllerSettings) -> None:
        self.settings = settings
        root = settings.state_dir
        self.dir = root / CONTROLLER_DIR
        self.dir.mkdir(parents=True, exist_ok=True)
        self.topology_file: Topology = load_topology(root / "topology.yaml")
        self.names = {n.qkdn_id: n.name for n in self.topology_file.nodes}
        endpoints_doc = read_json(wait_for_file(root / "endpoints.json",
                                                settings.connect_timeout_s))
        endpoints = agent_endpoints(endpoints_doc)
        self.users = open_users_db(root)
        self.topology = TopologyDb.open(self.dir / "topology.sqlite", clock=time.time)
        for node in self.topology_file.nodes:
            self.topology.name_node(node.qkdn_id, node.name)
        self.admission = AdmissionControl(
            self.users, GraphRouter(self.topology.links), clock=time.monotonic,
            policy=AdmissionPolicy(peer_wait_s=settings.peer_wait_s))
        #: Prometheus metrics of this process (served on 127.0.0.1 by :meth:`start`)
        self.metrics = ControllerMetrics(names=self.names)
        self.southbound = Southbound(endpoints, SouthboundConfig(
            poll_interval_s=settings.poll_interval_s,
            transport=settings.southbound_transport), rpc_observer=self.metrics.observe_rpc)
        self.refusals = RefusalLog()
        self.controller = Controller(
            self.users, self.topology, self.admission, self.southbound, self.refusals,
            thresholds=MonitoringThresholds(qber_alarm=settings.qber_alarm), clock=time.time,
            event_sink=self.metrics.event, push_pause_s=settings.push_pause_s)
        # refusals go to the KMs as km_refusals entries (docs/adr/0010-session-refusal.md)
        self.controller.signals = NetconfRefusals(self.southbound, self.controller.executor,
                                                  clock=time.time, record=self.refusals.refuse)
        self.metrics.bind(lambda: self.admission.sessions(include_terminated=True),
                          lambda: dict(self.southbound.items()))
        self.metrics_server: Any = None
        self.controller.restoration_policy = self.nbi_restoration_policy
        self.nbi = NbiServer(self.controller, self.topology_file, self.users,
                             nbi_config(settings, self.dir),
                             endpoints=node_endpoints(endpoints_doc),
                             connected=self.agents_connected,
                             network_file=self.dir / NBI_NETWORK_FILE)

    def nbi_restoration_policy(self, view: SessionView) -> PathRestoration:
        """A session's path-restoration policy: its initiator's SLA profile's."""
        return self.users.restoration(view.initiator.sla.name)

    def agents_connected(self) -> dict[str, bool]:
        return {node: session.connected for node, session in self.southbound.items()}

    def _on_notification(self, node: NodeId, message: str) -> None:
        self.metrics.notification(node)
        self.controller.handle_notification(node, message)

    def start(self) -> None:
        """Start the metrics server, the north-bound server (its endpoint recorded in
        ``nbi.json``), then the southbound."""
        from qkdn.metrics import MetricsServer

        if self.metrics_server is None:
            self.metrics_server = MetricsServer(self.metrics.registry).start()
        self.nbi.start()
        write_json_atomic(self.dir / NBI_FILE, self.nbi.endpoint(), mode=0o600)
        self.southbound.start(self._on_notification,
                              lambda node, reply: self.controller.ingest_node(reply))

    def write_snapshot(self) -> None:
        """``sessions.json``, rewritten every tick: compact (``json.dumps``' C encoder) and
        without ``fsync`` (a status snapshot the next tick replaces). Indented and fsync'd it
        cost ~24 ms of CPU and 76-134 ms of wall time per tick at 250 sessions, ~95 / 400 ms
        at 1,000 (docs/benchmarks.md, "Controller, session 4")."""
        sessions = [session_summary(v, self.names)
                    for v in self.admission.sessions(include_terminated=True)]
        write_json_atomic(self.dir / "sessions.json", {
            "written_at": time.time(), "sessions": sessions,
            "events": [event_summary(e) for e in list(self.controller.events)[-100:]],
            "refusals": list(self.refusals.refusals)[-50:],
            "reserved_bps": dict(self.admission.ledger.reserved_by_link()),
            "agents": {self.names.get(n, n): {"connected": s.connected,
                                             "connects": s.connects, "last_error": s.last_error,
                                             "get_bytes": s.last_get_bytes,
                                             "poll_s": round(s.poll_delay_s, 1)}
                       for n, s in self.southbound.items()}}, durable=False, compact=True)

    def run(self, stop: threading.Event) -> int:
        self.start()
        ready = False
        next_snapshot = 0.0
        deadline = time.monotonic() + self.settings.connect_timeout_s
        try:
            while not stop.is_set():
                # ready once every agent is connected and its running configuration has been
                # reconciled (sessions of an earlier run or an interrupted set-up removed)
                if not ready and all(s.connected for s in self.southbound.values()) and \
                        set(self.southbound) <= self.controller.reconciled:
                    ready = True
                    write_json_atomic(self.dir / "ready.json", {
                        "pid": os.getpid(), "at": time.time(), "nbi": self.nbi.endpoint(),
                        "metrics_port": self.metrics_server.port}, mode=0o600)
                if not ready and time.monotonic() > deadline:
                    log.warning("not every agent is connected after %.0f s",
                                self.settings.connect_timeout_s)
                    deadline = float("inf")
                self.controller.tick()
                self.nbi.observe_agents(self.agents_connected())
                if time.monotonic() >= next_snapshot:
                    cpu = time.thread_time()
                    self.write_snapshot()
                    next_snapshot = time.monotonic() + snapshot_delay_for(
                        time.thread_time() - cpu, self.settings.tick_s)
                stop.wait(self.settings.tick_s)
        finally:
            self.close()
        return 0

    def close(self) -> None:
        self.nbi.stop()
        if self.metrics_server is not None:
            self.metrics_server.stop()
        self.southbound.stop()
        self.controller.close()
        self.write_snapshot()
        (self.dir / "ready.json").unlink(missing_ok=True)
        self.users.close()
        self.topology.close()


def run_controller(settings: ControllerSettings) -> int:
    """Run until SIGTERM/SIGINT (the supervisor's stop)."""
    from qkdn.structured_logging import configure_logging

    configure_logging("controller", level=logging.getLogger().level or logging.WARNING)
    stop = threading.Event()
    profiling = profiles_from_env()  # QKDN_CONTROLLER_PROFILE=FILE: a diagnostic switch

    def on_stop(*_: object) -> None:
        if profiling is not None and not stop.is_set():
            profiling[0].dump(profiling[1])  # now: the supervisor kills a slow shutdown
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_stop)
    return ControllerProcess(settings).run(stop)
