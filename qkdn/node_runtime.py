"""One node process (``qkdn node``): the QKD agent (NETCONF server), the key manager and the
emulated QKD modules of the node's link ends, sharing live objects, until SIGTERM.

- The agent serves the node's datastore; its ``get`` reads operational state from the live
  objects (node and interface status, each link's state and performance from its module,
  sessions and key-store levels from the KM).
- Every committed configuration change goes to the KM (forwarding table, sessions) and is
  saved to ``<node state dir>/running.json`` + ``running.journal`` (the commit's changes,
  appended before the reply: :mod:`qkdn.running_config_file`), reloaded on restart together
  with the SSH host key, the NETCONF and KM ports and the key stores, so a restarted node is
  the same node.
- Module events become ETSI 015 notifications (``sdqkdn_link_perf_update``,
  ``sdqkdn_link_down``, ``alarm``/``event``); KM events become application notifications.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Self

from qkdn.bringup import NodeProcessConfig
from qkdn.node_model import QKD_NODE, identity, initial_node_config, link_role
from qkdn.operational_merge import merge_operational
from qkdn.state_files import StateDir, read_json, write_json_atomic
from qkdn.topology import Topology, link_parameters, load_topology

log = logging.getLogger("qkdn.node")

#: What a node process imports while it starts (its planes load lazily): a forking supervisor
#: imports these once before it forks the nodes (:mod:`qkdn.fork_server`). The agent (which
#: imports asyncssh) comes last, so that the library lookups asyncssh makes at import
#: (PRELOAD_LIBRARIES) run in a thread while the rest imports.
PRELOAD_MODULES = (
    "qkd_twin.module", "qkd_twin.pairing", "qkd_twin.faults", "qkd_twin.link_notifications",
    "qkd_twin.postprocessing.pipeline",
    # numpy loads these on first use, i.e. in every node's first block (~15 ms each time)
    "numpy.random", "numpy.fft",
    "kms.key_manager", "kms.https_server", "kms.directory", "kms.app", "kms.etsi004",
    "kms.etsi014", "kms.relay", "kms.relay_api",
    # imported by the KM's start and first operational read (tests: nothing else is left)
    "kms.api_description", "kms.etsi014_fast_path", "kms.operational_state", "_strptime",
    # the codec the socket module loads at a node's first connect or bind to a host name
    "encodings.idna",
    "qkd_agent.agent", "qkd_agent.datastore", "qkd_agent.yang_context",
    "qkdn.running_config_file", "qkdn.file_events",
)
#: Shared libraries the preloaded modules look up with ``ctypes.util.find_library`` at
#: import (asyncssh: liboqs, optional, and nettle); see ``qkdn.fork_server.LibraryPrefetch``.
PRELOAD_LIBRARIES = ("oqs", "liboqs", "nettle")

#: A sending KM uses a block of its link store as soon as it holds it; the receiving KM, whose
#: module may deliver the same block later (the two node processes compute it independently,
#: up to about a second apart on a loaded machine), waits for it up to LINK_INCOMING_WAIT_S:
#: longer than a module's batch period (MODULE_IDLE_BATCH_S) with a second to spare (2 s
#: until session 6, with 1-s batches).
#: (Before: senders left the 4 newest blocks unused, which delayed the first usable key by 1 s.)
LINK_SETTLE_BLOCKS = 0
LINK_INCOMING_WAIT_S = 3.0
#: relay-ahead (docs/kms.md, "Relay-ahead in the background"): once a 014 pair holds fewer
#: than this many ready keys after a request, its next batch (KmConfig.relay_batch, 32) is
#: relayed in the background, at most 2 × this many held per pair and at most half of the
#: key the first link holds per message; the pair's requests then find keys ready instead of
#: waiting for the relay. 0 = off.
RELAY_AHEAD_LOW_WATER = 32


def km_directory(topology: Topology, node_name: str, network: StateDir) -> Any:
    """Where the KM of ``node_name`` finds SAEs, other KMs (relay URL from each node's
    ``ports.json``, empty while a node has not started yet) and its physical links.

    A KM relays only to its physical neighbours, so only their (and its own) files are read:
    a refresh costs O(degree), not O(nodes) — on a 100-node network the difference between
    ~8 and ~400 file reads per node and refresh. The KM finds any other KM (the far end of a
    004 stream's control messages) with :func:`km_relay_url` when it needs it."""
    from kms.directory import Directory, NodeEntry

    links = {link.peer_of(node_name): link.qkdl_id for link in topology.links_of(node_name)}
    nodes = {}
    for node in topology.nodes:
        url = ""
        if node.name in links or node.name == node_name:
            url = km_relay_url(network, node.name)
        nodes[node.name] = NodeEntry(node.name, node.qkdn_id, url)
    return Directory(saes={sae.sae_id: sae.node for sae in topology.saes}, nodes=nodes,
                     links=links)


def km_relay_url(network: StateDir, node_name: str) -> str:
    """The base URL of the KM of ``node_name`` (its node config, or the port in its
    ``ports.json`` once it listens); "" while it has not started."""
    config = NodeProcessConfig.load(network.node_config(node_name))
    port = config.km_port or _recorded_port(network.node_dir(node_name) / "ports.json", "km")
    return f"https://{config.km_host}:{port}" if port else ""


def directory_sources(topology: Topology, node_name: str, network: StateDir) -> list[Path]:
    """The files :func:`km_directory` reads for ``node_name`` (its own and its neighbours'
    node configs and ports files)."""
    names = [node_name, *(link.peer_of(node_name) for link in topology.links_of(node_name))]
    return [path for name in names
            for path in (network.node_config(name), network.node_dir(name) / "ports.json")]


def _recorded_port(path: Path, name: str) -> int:
    try:
        return int(read_json(path)[name])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


#: Seconds between looks at the files the KM's directory comes from (a look is a few
#: ``stat`` calls; the files are read again only when one of them changed).
DIRECTORY_REFRESH_S = 0.5
#: With inotify (qkdn.file_events) the look happens when a file in those folders is replaced
#: — no wake-up of an idle node — and at the latest after this many seconds.
DIRECTORY_SAFETY_S = 5.0
#: Steady-state batch period of the node's QKD modules while their link's store holds a
#: reserve (``qkd_twin.module``: the same blocks and key, produced every 2 s instead of every
#: 0.25 s; < LINK_INCOMING_WAIT_S, the receiver's wait for a block the sender has). 1 s until
#: session 6: 2 s saves ~12 % of a module's CPU (half the store transactions and wake-ups;
#: the store's cost is mostly per byte). A recorded fault still shows within a block
#: (``QkdModule.fault_changed``).
MODULE_IDLE_BATCH_S = 2.0
#: Seconds of a link's production each half of its store holds before the module batches.
MODULE_RESERVE_S = 4.0


class NodeRuntime:
    """The live objects of one node; a context manager that serves while open."""

    def __init__(self, config: NodeProcessConfig):
        self.config = config
        self.network = StateDir(config.network_dir)
        self.topology = load_topology(config.topology)
        self.started_at = time.time()
        self._stack = ExitStack()
        self.agent: Any = None
        self.datastore: Any = None
        self._ctx: Any = None  #: the libyang context of the datastore and the agent
        self._running_file: Any = None  #: running.json + running.journal (commits)
        self.km: Any = None
        self.modules: dict[str, Any] = {}
        self.pairings: dict[str, Any] = {}
        self.km_port = 0
        from qkdn.metrics import netconf_rpc_histogram, new_registry

        #: this process's Prometheus metrics (KM and agent), served on ``metrics_port``
        self.metrics_registry = new_registry()
        self._rpc_seconds = netconf_rpc_histogram(
            self.metrics_registry, "qkdn_netconf_rpc_seconds", ("operation", "outcome"))
        self.metrics: Any = None
        self._notifications: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()

    @property
    def running_path(self) -> Path:
        return self.config.state_dir / "running.json"

    @property
    def ports_path(self) -> Path:
        return self.config.state_dir / "ports.json"

    @property
    def running_journal_path(self) -> Path:
        return self.config.state_dir / "running.journal"

    def _initial_running(self) -> dict[str, Any]:
        from qkdn.running_config_file import load_running

        restored = load_running(self.running_path, self.running_journal_path)
        if restored is not None:
            log.info("restoring the running configuration from %s", self.running_path)
            return restored
        return initial_node_config(self.topology, self.config.name)

    def _record_ports(self, **ports: int) -> None:
        """Record ``ports`` in ``ports.json``, keeping the other ports of an earlier run (a
        restarted node binds them again)."""
        try:
            recorded = read_json(self.ports_path)
        except (OSError, ValueError):
            recorded = {}
        write_json_atomic(self.ports_path, {**(recorded if isinstance(recorded, dict) else {}),
                                            **ports})

    def _netconf_port(self) -> int:
        return self.config.netconf_port or _recorded_port(self.ports_path, "netconf")

    def _km_port(self) -> int:
        return self.config.km_port or _recorded_port(self.ports_path, "km")

    def _refresh_directory(self, stop: threading.Event, events: Any = None) -> None:
        """The KM directory thread: rebuilds the directory when a neighbour's files changed
        and wakes a link's module when its fault file changed. With ``events``
        (:class:`qkdn.file_events.FolderEvents`) it sleeps until a file in those folders is
        replaced (at most DIRECTORY_SAFETY_S); without, it looks every DIRECTORY_REFRESH_S."""
        from kms.directory import FileSignature
        from qkd_twin.faults import faults_dir

        sources = directory_sources(self.topology, self.config.name, self.network)
        seen: FileSignature | None = None   # the first look always rebuilds (a neighbour may
        faults = self._fault_files()
        faults_seen = {qkdl_id: FileSignature.of([path]) for qkdl_id, path in faults.items()}
        # fault files are replaced atomically (a rename in their folder): one stat of the
        # folder per round, the links' files only when it changed
        fault_dir = [faults_dir(self.network.root)]
        fault_dir_seen = FileSignature.of(fault_dir)
        while True:                         # have written its ports since the KM began)
            if events is None:
                if stop.wait(DIRECTORY_REFRESH_S):
                    return
            else:
                events.wait(DIRECTORY_SAFETY_S)
                if stop.is_set():
                    return
            # a recorded fault wakes its link's module (batching modules would see it only at
            # their next batch instant): the same wake-up as the directory's look
            stamp = FileSignature.of(fault_dir)
            if stamp != fault_dir_seen:
                fault_dir_seen = stamp
                for qkdl_id, path in faults.items():
                    link_stamp = FileSignature.of([path])
                    if link_stamp != faults_seen[qkdl_id]:
                        faults_seen[qkdl_id] = link_stamp
                        module = self.modules.get(qkdl_id)
                        if module is not None:
                            module.fault_changed()
            now = FileSignature.of(sources)
            if now == seen:
                continue
            try:
                directory = km_directory(self.topology, self.config.name, self.network)
                seen = now
                if directory != self.km.directory:
                    self.km.set_directory(directory)
            except Exception:  # a half-written file of another node: next round
                log.debug("directory refresh failed", exc_info=True)

    def _fault_files(self) -> dict[str, Path]:
        """The fault file of each of the node's links (``qkd_twin.faults.fault_file``)."""
        from qkd_twin.faults import fault_file

        return {link.qkdl_id: fault_file(self.network.root, link.a, link.b)
                for link in self.topology.links_of(self.config.name)}

    # --- callbacks ---------------------------------------------------------------------
    def _on_config_change(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        # on the edit-config's path (before its reply, under the datastore lock): the changes
        # of this commit appended to running.journal, running.json rewritten only when the
        # journal has outgrown it (qkdn.running_config_file; the whole file per commit cost
        # 0.3 ms at one session, ~6 ms at 200). Kept across a crash of the node process.
        self._running_file.commit(old, new)
        if self.km is not None:
            self.km.apply_running_config(new)

    def notify(self, notification: dict[str, Any]) -> None:
        """Queue an RFC 7951 JSON notification for the agent's subscribers. Never blocks: the
        caller may hold its own locks (the KM does) while the agent's loop is busy with a
        ``get`` that reads the KM's state."""
        if notification:
            self._notifications.put(notification)

    def _send_notifications(self) -> None:
        """The notifier thread: hands queued notifications to the agent, in order."""
        while True:
            notification = self._notifications.get()
            if notification is None:
                return
            if self.agent is None:
                continue
            try:
                self.agent.notify(notification)
            except Exception:  # a body the model rejects is a bug; log it and keep serving
                log.exception("notification %s not sent", next(iter(notification), "?"))

    def _on_link_event(self, event: Any) -> None:
        from qkd_twin.link_notifications import notifications_for

        log.info("link %s: %s %s", event.qkdl_id, event.kind.value, event.message)
        if event.kind.value in ("link-down", "link-up"):   # hybrid fallback (ADR 0009)
            self.km.set_link_up(event.qkdl_id, event.kind.value == "link-up")
        for notification in notifications_for(event):
            self.notify(notification)

    def _link_state(self, qkdl_id: str) -> Any:
        """The module's link state; PASSIVE with no key rate while the peer end is down."""
        from dataclasses import replace

        from qkd_twin.module import LinkStatus

        state = self.modules[qkdl_id].state
        pairing = self.pairings.get(qkdl_id)
        if pairing is not None and not pairing.peer_up:
            return replace(state, status=LinkStatus.PASSIVE, skr=0.0, eskr=0.0,
                           reason="peer end not running")
        return state

    def _on_peer_change(self, qkdl_id: str, up: bool) -> None:
        from qkd_twin.link_notifications import link_alarm, link_down

        self.km.set_link_up(qkdl_id, up)

        if up:
            log.info("link %s: peer end running, key generation starts", qkdl_id)
            if qkdl_id in self.modules:
                self.notify(link_alarm(qkdl_id, self._link_state(qkdl_id),
                                       "peer end running", major=False, informational=True))
        else:
            log.warning("link %s: peer end not running, no key generated", qkdl_id)
            self.notify(link_down(qkdl_id, "peer end not running"))

    def operational_state(self) -> dict[str, Any]:
        """RFC 7951 JSON of the node's ``config false`` data right now."""
        from qkd_twin.link_notifications import link_operational_json

        running = self.datastore.running_snapshot().get(QKD_NODE, {})
        interfaces = [{"qkdi_id": i["qkdi_id"], "qkdi_status": identity("ENABLED")}
                      for i in running.get("qkd_interfaces", {}).get("qkd_interface", [])]
        links = [link_operational_json(qkdl_id, self._link_state(qkdl_id))
                 for qkdl_id in self.modules]
        body: dict[str, Any] = {"qkdn_status": identity("OPERATING")}
        if interfaces:
            body["qkd_interfaces"] = {"qkd_interface": interfaces}
        if links:
            body["qkd_links"] = {"qkd_link": links}
        own = {QKD_NODE: body}
        return merge_operational(own, self.km.operational_state()) if self.km else own

    # --- life cycle --------------------------------------------------------------------
    def _open_datastore(self) -> None:
        from qkd_agent.datastore import Datastore
        from qkd_agent.yang_context import load_context
        from qkdn.running_config_file import RunningConfigFile, list_keys

        self._ctx = load_context()
        self.datastore = Datastore(self._ctx, self._initial_running())
        self._running_file = RunningConfigFile(self.running_path, self.running_journal_path,
                                               list_keys(self.datastore.schema.root))
        # the journal starts empty from the configuration this run starts with
        self._running_file.write_whole(self.datastore.running_snapshot())
        self.datastore.add_listener(self._on_config_change)

    def _start_agent(self) -> None:
        from qkd_agent.agent import AgentConfig, AgentThread, QkdAgent

        ctx = self._ctx
        agent_config = AgentConfig(
            host=self.config.netconf_host, port=self._netconf_port(),
            username=self.config.username, password=self.config.password,
            host_key=self.config.state_dir / "ssh_host_key",
        )
        self.agent = QkdAgent(agent_config, self.datastore, self.operational_state, ctx=ctx,
                              rpc_observer=self._observe_rpc)
        self._stack.enter_context(AgentThread(self.agent))
        # the agent serves from here on (the stores it reports may hold key already): its port
        # is recorded at once, before the KM's servers start (ready.json comes last)
        self._record_ports(netconf=self.agent.port)
        notifier = threading.Thread(target=self._send_notifications, name="notifier",
                                    daemon=True)
        notifier.start()
        self._stack.callback(notifier.join, 5)
        self._stack.callback(self._notifications.put, None)

    def _observe_rpc(self, operation: str, seconds: float, ok: bool) -> None:
        from qkdn.metrics import operation_label

        self._rpc_seconds.labels(operation_label(operation), "ok" if ok else "error"
                                 ).observe(seconds)

    def _start_metrics(self) -> None:
        """``/metrics`` on plain HTTP, loopback (the port is kept across restarts when free)."""
        from qkdn.metrics import MetricsServer

        self.metrics = MetricsServer(self.metrics_registry, self.config.km_host,
                                     _recorded_port(self.ports_path, "metrics")).start()
        self._stack.callback(self.metrics.stop)

    def _open_key_manager(self) -> None:
        """The KM and its key stores (not serving yet: the modules can deliver into it). Its
        running configuration comes once the datastore is open (:meth:`_configure_key_manager`)."""
        from kms.https_server import TlsFiles
        from kms.key_manager import KeyManager, KmConfig
        from kms.telemetry import KmTelemetry

        pki = read_json(self.network.pki)
        km_files = pki["kms"][self.config.name]
        tls = TlsFiles(Path(km_files["cert"]), Path(km_files["key"]), Path(pki["ca_cert"]))
        self.km = KeyManager(self.config.name, self.config.qkdn_id, self.config.state_dir,
                             km_directory(self.topology, self.config.name, self.network), tls,
                             notify=self.notify,
                             locate_km=lambda name: km_relay_url(self.network, name),
                             config=KmConfig(require_controller=self.config.controller,
                                             link_settle_blocks=LINK_SETTLE_BLOCKS,
                                             link_incoming_wait_s=LINK_INCOMING_WAIT_S,
                                             relay_ahead_low_water=RELAY_AHEAD_LOW_WATER),
                             telemetry=KmTelemetry.for_node_dir(
                                 self.config.name, self.config.state_dir, self.metrics_registry))
        self._stack.callback(self.km.stop)

    def _configure_key_manager(self) -> None:
        """The KM gets the running configuration (forwarding table, sessions, store capacity;
        restored after a restart) before its servers start."""
        self.km.apply_running_config(self.datastore.running_json())

    def _start_key_manager(self) -> None:
        """The KM's HTTPS server, the metrics server, ``ports.json`` and directory refreshes."""
        self.km.start(self.config.km_host, self._km_port())
        self.km_port = int(self.km.base_url.rsplit(":", 1)[1])
        self._start_metrics()
        self._record_ports(netconf=self.agent.port, km=self.km_port, metrics=self.metrics.port)
        from qkd_twin.faults import faults_dir
        from qkdn.file_events import FolderEvents

        stop = threading.Event()
        folders = {path.parent for path in directory_sources(self.topology, self.config.name,
                                                              self.network)}
        events = FolderEvents.open([*sorted(folders), faults_dir(self.network.root)])
        refresher = threading.Thread(target=self._refresh_directory, args=(stop, events),
                                     name="km-directory", daemon=True)
        refresher.start()
        if events is not None:
            self._stack.callback(events.close)
        self._stack.callback(refresher.join, 2)
        if events is not None:
            self._stack.callback(events.interrupt)
        self._stack.callback(stop.set)

    def _start_modules(self) -> None:
        from qkd_twin.faults import fault_file
        from qkd_twin.module import (
            LinkRole,
            ModuleConfig,
            ModuleMode,
            QkdModule,
            read_seed,
            reserve_is_low,
        )
        from qkd_twin.module_scheduler import ModuleScheduler
        from qkd_twin.pairing import PairedSink

        # one thread and one timer for every link end of the node (docs/twin.md, "Module
        # scheduler"); stopped after the modules (the stack unwinds in reverse)
        scheduler = ModuleScheduler(name="qkd-modules")
        self._stack.callback(scheduler.stop)
        for link in self.topology.links_of(self.config.name):
            peer = link.peer_of(self.config.name)
            store = self.km.store_for_peer(peer)
            config = ModuleConfig(
                qkdl_id=link.qkdl_id,
                role=LinkRole(link_role(link, self.config.name)),
                params=link_parameters(link),
                seed=read_seed(self.network.link_seed(self.config.name, link.qkdl_id)),
                mode=ModuleMode(link.mode),
                fault_path=fault_file(self.network.root, link.a, link.b),
                idle_batch_seconds=MODULE_IDLE_BATCH_S,
            )
            paired = PairedSink(
                self.network.root, link.qkdl_id, self.config.name, peer, self.km,
                block_seconds=config.block_seconds, resumed_after=store.max_block(),
                discard=store.discard_blocks,
                on_peer_change=lambda up, qkdl_id=link.qkdl_id: self._on_peer_change(qkdl_id, up))
            self.pairings[link.qkdl_id] = paired
            holder: list[Any] = []

            def demand(store: Any = store, holder: list[Any] = holder) -> bool:
                return reserve_is_low(store.held_bytes(), holder[0].state.skr, MODULE_RESERVE_S)

            module = QkdModule(config, paired, demand=demand, scheduler=scheduler)
            holder.append(module)
            module.add_listener(self._on_link_event)
            # from the block of the end's start_time (its short first block), never later
            module.start(paired.record.start_block)
            self._stack.callback(module.stop)
            self.modules[link.qkdl_id] = module

    def __enter__(self) -> Self:
        try:
            # key generation first: the modules need only the KM's link stores (opening them
            # waits on the disk), so the datastore (libyang, CPU) opens in a thread meanwhile;
            # the modules' first blocks run while the agent and the KM's servers start
            # (docs/twin.md, "From qkdn up to the first key")
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="datastore") as pool:
                datastore = pool.submit(self._open_datastore)
                self._open_key_manager()
                self._start_modules()
                datastore.result()
            # at a clean stop (after the agent: no more commits) running.json is whole again
            self._stack.callback(lambda: self._running_file.close(
                self.datastore.running_snapshot()))
            self._configure_key_manager()
            self._start_agent()
            self._start_key_manager()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()


#: Environment switch for idle-CPU measurements (``bench/scale_idle.py``): a node writes
#: ``threads.json`` (OS thread id → Python thread name) to its state directory once it serves.
THREAD_NAMES_ENV = "QKDN_THREAD_NAMES"
#: ``QKDN_NODE_PROFILE=DIR``: every thread of each node process under cProfile (CPU time),
#: summed into ``DIR/<node>.prof`` every 10 s (a diagnostic switch, as the controller's
#: ``QKDN_CONTROLLER_PROFILE``; ``python -m pstats DIR/<node>.prof`` reads it)
NODE_PROFILE_ENV = "QKDN_NODE_PROFILE"


def write_thread_names(path: Path) -> None:
    """``{native thread id: thread name}`` of this process's Python threads, as JSON."""
    write_json_atomic(path, {str(t.native_id): t.name for t in threading.enumerate()
                             if t.native_id is not None})


def run_node(config_path: Path) -> int:
    from qkdn.structured_logging import configure_logging

    config = NodeProcessConfig.load(config_path)
    configure_logging(config.name)  # JSON lines with node and session; asyncssh etc. quiet
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    if os.environ.get(NODE_PROFILE_ENV):
        from sdn_controller.thread_profile import profile_threads
        profile_dir = Path(os.environ[NODE_PROFILE_ENV])
        profile_dir.mkdir(parents=True, exist_ok=True)
        profile_threads(str(profile_dir / f"{config.name}.prof"), switch=NODE_PROFILE_ENV)
    with NodeRuntime(config) as node:
        ready = config.state_dir / "ready.json"
        write_json_atomic(ready, {"pid": os.getpid(), "netconf_port": node.agent.port,
                                  "km_port": node.km_port, "started_at": node.started_at,
                                  "metrics_port": node.metrics.port})
        log.info("node %s serving NETCONF on %s:%d, KM on %s:%d", config.name,
                 config.netconf_host, node.agent.port, config.km_host, node.km_port)
        if os.environ.get(THREAD_NAMES_ENV):
            write_thread_names(config.state_dir / "threads.json")
        stop.wait()
        log.info("node %s stopping", config.name)
        ready.unlink(missing_ok=True)
    return 0
