"""Benchmarks of the controller's pure core (no sockets).

* ``routing.path_ms_1000_nodes`` — :func:`compute_path` with the key-aware weight on a random
  1,000-node / 3,000-link graph, random node pairs; target p50 <= 10 ms (issue 4).
* ``routing.multipath_ms_1000_nodes`` — min-cost max-flow split over the same graph for a
  rate above any single path's bottleneck (no target; for the record).
* ``routing.build_graph_ms_3000_links`` — building the routing graph from link metrics.
* ``admission.setup_ms_100_nodes`` — one session set-up in admission control (both
  requests, routing, reservation, per-KM configuration) with 1,000 sessions already active on
  a 100-node network; plus ``admission.sessions_per_s`` over those 1,000 set-ups and
  ``admission.errors`` (target 0).
* ``admission.memory_mib_1000_sessions`` — memory held by admission control (sessions,
  reservations, per-KM configurations, routing graph) for 1,000 active sessions (tracemalloc).
* ``payloads.build_ms_per_km`` — building one KM's ETSI 015 install payload.

Through real NETCONF agents (in this process, one thread each, loopback SSH):

* ``controller.setup_ms_1_hop`` / ``_1_trusted_node`` / ``_5_hops`` — from both applications'
  ``sdqkdn_application_new`` notifications to the session configured in the datastore of every
  KM on the path; target p50 <= 100 ms through one trusted node, and the 5-hop set-up at most
  1.5 x the 1-hop one. (The KMs' own processing is not in this figure: there are no KMs.)
* ``controller.setup_cpu_ms_1_hop`` / ``_5_hops`` — CPU time of the controller's process (with
  the bench's threads reading the agents' output) per set-up, for the record.
* ``controller.reroute_ms_10_sessions_p95`` — link down notification to all 10 sessions on
  the link configured on the other path and removed from the old relay; target p95 <= 1 s.

``python -m bench.controller_bench [--quick]`` prints the rows as JSON.
"""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import networkx as nx

from bench.report import percentile, row
from sdn_controller.admission_control import AdmissionControl, ConfigRequest, Configured
from sdn_controller.config_payloads import session_config_payload
from sdn_controller.link_metrics import LinkMetrics, LinkStatus
from sdn_controller.routing import (
    GraphRouter,
    build_graph,
    compute_multipath,
    compute_path,
    compute_widest_path,
)
from sdn_controller.session_config import QoS
from sdn_controller.user_db import SlaProfile, UserDb

TARGET_PATH_MS = 10.0


def random_links(nodes: int, links: int, seed: int) -> list[LinkMetrics]:
    rng = random.Random(seed)
    base = nx.connected_watts_strogatz_graph(nodes, 2 * links // nodes, 0.3, seed=seed) \
        if links == 3 * nodes else nx.gnm_random_graph(nodes, links, seed=seed)
    out = []
    for i, (u, v) in enumerate(base.edges):
        out.append(LinkMetrics(f"l{i}", f"n{u}", f"n{v}", LinkStatus.ACTIVE,
                               skr=rng.randint(5, 200) * 1000, qber=rng.uniform(0.005, 0.06),
                               stored_bits=rng.randint(0, 8 * 1024 * 1024)))
    return out


def _time_ms(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


def bench_routing(quick: bool) -> list[dict]:
    links = random_links(1000, 3000, seed=1)
    rows = []
    builds = [_time_ms(lambda: build_graph(links)) for _ in range(3 if quick else 10)]
    rows.append(row("routing.build_graph_ms_3000_links", percentile(builds, 50), "ms",
                    samples=builds))
    graph = build_graph(links)
    rng = random.Random(2)
    pairs = [tuple(f"n{x}" for x in rng.sample(range(1000), 2))
             for _ in range(30 if quick else 300)]
    samples = [_time_ms(lambda s=s, d=d: compute_path(graph, s, d)) for s, d in pairs]
    p50 = percentile(samples, 50)
    rows.append(row("routing.path_ms_1000_nodes", p50, "ms", target=f"<= {TARGET_PATH_MS:g}",
                    meets=p50 <= TARGET_PATH_MS, samples=samples))
    multi = []
    for s, d in pairs[: 3 if quick else 10]:
        widest = compute_widest_path(graph, s, d).bottleneck_bps
        multi.append(_time_ms(lambda s=s, d=d, w=widest:
                              compute_multipath(graph, s, d, int(w * 1.5))))
    rows.append(row("routing.multipath_ms_1000_nodes", percentile(multi, 50), "ms",
                    samples=multi))
    return rows


def bench_admission(quick: bool) -> list[dict]:
    rows = _admission_run(200 if quick else 1000, measure_memory=False)
    rows += _admission_run(1000, measure_memory=True)
    return rows


def _admission_run(sessions: int, *, measure_memory: bool) -> list[dict]:
    import tracemalloc

    nodes = 100
    links = random_links(nodes, 300, seed=3)
    links = [LinkMetrics(lk.qkdl_id, lk.node_a, lk.node_b, lk.status, skr=10**8) for lk in links]
    db = UserDb.open()
    db.add_sla(SlaProfile("bench", max_bps=10**6, max_priority=9, max_sessions=10**6,
                          idle_timeout_s=3600))
    for n in range(nodes):
        db.add_user(f"u{n}", "bench")
        db.add_application(f"sae-{n}", f"u{n}", f"n{n}", f"n{n}")
    ids = (str(uuid.UUID(int=i)) for i in itertools.count(1))
    ac = AdmissionControl(db, GraphRouter(lambda: links), clock=time.monotonic,
                          new_session_id=lambda: next(ids))
    rng = random.Random(4)
    samples, errors = [], 0
    if measure_memory:
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
    started = time.perf_counter()
    for _ in range(sessions):
        a, b = rng.sample(range(nodes), 2)
        qos = QoS(max_bps=1000, priority=1)
        t0 = time.perf_counter()
        ac.request_config(ConfigRequest(f"n{a}", f"sae-{a}", f"sae-{b}", f"u{a}", "bench", qos))
        out = ac.request_config(ConfigRequest(f"n{b}", f"sae-{b}", f"sae-{a}", f"u{b}", "bench",
                                              qos))
        samples.append((time.perf_counter() - t0) * 1000)
        errors += not isinstance(out, Configured)
    elapsed = time.perf_counter() - started
    if measure_memory:
        held = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        db.close()
        return [row("admission.memory_mib_1000_sessions", round(held / 2**20, 2), "MiB",
                    runs=sessions),
                row("admission.memory_errors", errors, "count", target="0", meets=errors == 0,
                    runs=sessions)]
    payload_ms = []
    for view in ac.sessions()[:50]:
        for config in view.configs:
            payload_ms.append(_time_ms(lambda c=config: session_config_payload(c)))
    db.close()
    return [
        row("admission.setup_ms_100_nodes", percentile(samples, 50), "ms", samples=samples),
        row("admission.sessions_per_s", round(sessions / elapsed, 1), "1/s", runs=sessions),
        row("admission.errors", errors, "count", target="0", meets=errors == 0, runs=sessions),
        row("payloads.build_ms_per_km", percentile(payload_ms, 50), "ms", samples=payload_ms),
    ]




# --- through real NETCONF agents ----------------------------------------------------------------
TARGET_SETUP_MS = 100.0
TARGET_HOP_RATIO = 1.5
TARGET_REROUTE_MS = 1000.0
_T = "etsi-qkd-node-types:"
_NODE = "etsi-qkd-sdn-node:qkd_node"


class _AgentNetwork:
    """One agent process per node (``bench.netconf_agent_process``), the controller in this
    process wired to them over real NETCONF sessions, and a view of which sessions each
    agent's datastore holds (reported by the agents on every commit)."""

    def __init__(self, raw_topology: dict, workdir: Any, *, timeline: bool = False) -> None:
        import threading

        from qkdn.node_model import initial_node_config
        from qkdn.topology import parse_topology
        from sdn_controller.controller import Controller
        from sdn_controller.southbound import AgentEndpoint, Southbound, SouthboundConfig
        from sdn_controller.topology_db import TopologyDb

        self.topo = parse_topology(raw_topology)
        self.apps: dict[str, set[str]] = {n.name: set() for n in self.topo.nodes}
        self.changed = threading.Condition()
        #: (path, ids known before, event): set once a new id is at every agent of the path
        self._watch: tuple[list[str], frozenset[str], threading.Event] | None = None
        self.procs: dict[str, subprocess.Popen] = {}
        #: bytes of an agent's report line not complete yet
        self._partial: dict[str, bytes] = {}
        #: (perf_counter, node name, what) from the agents when ``timeline`` is on
        self.agent_events: list[tuple[float, str, str]] = []
        ports = {}
        for node in self.topo.nodes:
            spec = workdir / f"{node.name}.json"
            spec.write_text(json.dumps({
                "initial": initial_node_config(self.topo, node.name), "password": "bench-pw",
                "host_key": str(workdir / f"{node.name}.key"),
                "links": [lk.qkdl_id for lk in self.topo.links_of(node.name)],
                "timeline": timeline}))
            proc = subprocess.Popen([sys.executable, "-m", "bench.netconf_agent_process",
                                     str(spec)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    bufsize=0)
            self.procs[node.name] = proc
            first, self._partial[node.name] = _first_line(proc.stdout.fileno())
            if first.split()[:1] != [b"port"]:
                raise RuntimeError(f"agent {node.name} did not start")
            ports[node.name] = int(first.split()[1])
        # one thread reads every agent's reports (not one per agent): agents that commit
        # together are read in one wake-up of one thread of the controller's process
        threading.Thread(target=self._read_reports, daemon=True,
                         name="bench-agent-reports").start()
        self.users = UserDb.open()
        self.users.load_topology(self.topo)
        self.topology = TopologyDb.open(clock=time.monotonic)
        self.admission = AdmissionControl(self.users, GraphRouter(self.topology.links),
                                          clock=time.monotonic)
        self.southbound = Southbound(
            [AgentEndpoint(n.qkdn_id, "127.0.0.1", ports[n.name], "admin", "bench-pw", n.name)
             for n in self.topo.nodes], SouthboundConfig(poll_interval_s=30.0))

        class _NoRefusal:
            def refuse(self, node_id: Any, refusal: Any) -> None:
                raise AssertionError(f"refused: {refusal}")

        self.controller = Controller(self.users, self.topology, self.admission,
                                     self.southbound, _NoRefusal(), clock=time.monotonic,
                                     event_sink=self._controller_event)
        self.southbound.start(self.controller.handle_notification,
                              lambda node, reply: self.controller.ingest_node(reply))
        if not self.southbound.wait_connected(30):
            raise RuntimeError("agents did not connect")
        self.wait(lambda: len([lk for lk in self.topology.links() if lk.usable]) ==
                  len(self.topo.links), 30)

    def _controller_event(self, event: Any) -> None:
        """Wake :meth:`wait` when the controller ends a session (its deletions confirmed)."""
        if event.kind.value == "session-terminated":
            with self.changed:
                self.changed.notify_all()

    def torn_down(self, session_id: str, path: list[str]) -> bool:
        """Whether ``session_id`` is gone from every agent on ``path`` *and* the controller
        has every deletion's reply: only then is the controller idle again (the agents
        commit before they reply, so their datastores are clean a little earlier)."""
        from sdn_controller.admission_control import SessionState
        from sdn_controller.errors import SessionError

        if any(session_id in self.apps[n] for n in path):
            return False
        try:
            view = self.admission.session(session_id)
        except SessionError:
            return True
        return view.state is SessionState.TERMINATED and not view.pending_deletions

    def _read_reports(self) -> None:
        """Read the agents' report lines (``apps`` after every commit, ``tl`` events) from
        all their pipes in one thread, as they come."""
        import os
        import selectors

        selector = selectors.DefaultSelector()
        for name, proc in self.procs.items():
            os.set_blocking(proc.stdout.fileno(), False)
            selector.register(proc.stdout.fileno(), selectors.EVENT_READ, name)
        for name, rest in self._partial.items():   # read with the port line
            self._partial[name] = b""
            self._take_lines(name, rest)
        while selector.get_map():
            for key, _ in selector.select():
                try:
                    chunk = os.read(key.fd, 65536)
                except BlockingIOError:
                    continue
                if not chunk:   # the agent ended
                    selector.unregister(key.fd)
                    continue
                self._take_lines(key.data, chunk)
        selector.close()

    def _take_lines(self, name: str, chunk: bytes) -> None:
        *lines, self._partial[name] = (self._partial[name] + chunk).split(b"\n")
        apps = None
        for line in lines:
            if line.startswith(b"tl "):
                _, at, what = line.decode().split(" ", 2)
                self.agent_events.append((float(at), name, what.strip()))
            elif line.startswith(b"apps "):
                apps = line   # only the newest state of a batch matters
        if apps is not None:
            with self.changed:
                self.apps[name] = set(json.loads(apps[5:]))
                self._check_watch()
                self.changed.notify_all()

    def _send(self, name: str, command: dict) -> None:
        proc = self.procs[name]
        proc.stdin.write(json.dumps(command).encode() + b"\n")
        proc.stdin.flush()

    def watch_new_session(self, path: list[str], before: frozenset[str]) -> Any:
        """A ``threading.Event`` set (by the thread reading the last agent's report) once an
        app id not in ``before`` is in the datastore of every agent on ``path``: the waiting
        thread wakes once, not at every agent's commit."""
        import threading

        event = threading.Event()
        with self.changed:
            self._watch = (path, before, event)
            self._check_watch()
        return event

    def _check_watch(self) -> None:
        if self._watch is None:
            return
        path, before, event = self._watch
        if set.intersection(*(self.apps[n] for n in path)) - before:
            self._watch = None
            event.set()

    def wait(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("condition not reached")
                self.changed.wait(min(left, 0.05))

    def open(self, src: str, dst: str) -> None:
        node = self.topo.node(src)
        self._send(src, {"notify": {"etsi-qkd-sdn-node:sdqkdn_application_new": {
            "qkd_application": {
                "app_type": _T + "CLIENT", "server_app_id": f"sae-{src}",
                "client_app_id": [f"sae-{dst}"], "local_qkdn_id": node.qkdn_id,
                "app_qos": {"max_bandwidth": 1000},
                "qkdn-key-manager:km_request": {"authenticated_sae_id": f"sae-{src}"}}}}})

    def close_session(self, name: str, session_id: str) -> None:
        self._send(name, {"notify": {"etsi-qkd-sdn-node:sdqkdn_application_disconnected": {
            "qkd_application": {"app_id": session_id}}}})

    def _link(self, a: str, b: str) -> str:
        return next(lk.qkdl_id for lk in self.topo.links if set(lk.ends()) == {a, b})

    def link_down(self, a: str, b: str) -> None:
        link = self._link(a, b)
        for end in (a, b):
            self._send(end, {"link": [link, "OFF"]})
        self._send(a, {"notify": {"etsi-qkd-sdn-node:sdqkdn_link_down": {"qkd_link": {
            "qkdl_id": link, "reason": "bench cut"}}}})

    def link_up(self, a: str, b: str) -> None:
        link = self._link(a, b)
        for end in (a, b):
            self._send(end, {"link": [link, "ACTIVE"]})
        self._send(a, {"notify": {"etsi-qkd-sdn-node:event": {"link": {
            "qkdl_id": link, "qkdl_status": _T + "ACTIVE", "message": "restored",
            "severity": _T + "MINOR"}}}})
        self.wait(lambda: self.topology.link(link).usable)

    def close(self) -> None:
        self.southbound.stop()
        self.controller.close()
        for proc in self.procs.values():
            proc.stdin.close()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.users.close()
        self.topology.close()


def _first_line(fd: int, timeout_s: float = 60.0) -> tuple[bytes, bytes]:
    """The first line written to pipe ``fd`` (without its newline) and the bytes after it,
    read straight from the descriptor (no buffered reader holds any of them back)."""
    import os
    import select

    data = b""
    deadline = time.monotonic() + timeout_s
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    first, _, rest = data.partition(b"\n")
    return first, rest


def _line(n: int) -> dict:
    names = [str(i) for i in range(n)]
    return {"name": "bench-line", "nodes": [{"name": x} for x in names],
            "links": [{"a": a, "b": b, "length_km": 10} for a, b in itertools.pairwise(names)],
            "slas": [{"name": "s", "max_bps": 10**6, "max_sessions": 10**4,
                      "idle_timeout_s": 3600}],
            "users": [{"name": f"u{x}", "sla": "s"} for x in names],
            "saes": [{"id": f"sae-{x}", "node": x, "user": f"u{x}"} for x in names]}


def _setup_once(net: _AgentNetwork, src: str, dst: str, path: list[str],
                cpu_ms: list[float] | None = None) -> float:
    """Both requests → every KM on the path configured; then closed and cleaned (untimed).
    ``cpu_ms`` gets the CPU time this process (the controller and the bench's reader
    threads) spent on the set-up."""
    before = net.admission.session_ids()
    # the bench's own threads run in the controller's process: the waiting thread wakes
    # once, when the last agent reports the session, not at every agent's commit
    configured = net.watch_new_session(path, before)
    cpu_started = time.process_time()
    started = time.perf_counter()
    net.open(src, dst)
    net.open(dst, src)
    if not configured.wait(10.0):
        raise TimeoutError("session not configured on every agent of the path")
    elapsed = (time.perf_counter() - started) * 1000
    if cpu_ms is not None:
        cpu_ms.append((time.process_time() - cpu_started) * 1000)
    (session_id,) = net.admission.session_ids() - before
    net.close_session(src, session_id)
    # the next set-up starts once the controller has finished this teardown (every
    # deletion's reply read), not while it still reads them
    net.wait(lambda: net.torn_down(session_id, path))
    return elapsed


def bench_netconf(quick: bool) -> list[dict]:
    import tempfile
    from pathlib import Path

    runs = 5 if quick else 30
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        net = _AgentNetwork(_line(6), Path(tmp))
        try:
            for _ in range(2):  # warm-up
                _setup_once(net, "0", "1", ["0", "1"])
            cpu_one: list[float] = []
            cpu_five: list[float] = []
            one_hop: list[float] = []
            trusted: list[float] = []
            five: list[float] = []
            # interleaved, one of each kind per round: the three rows (and the ratio of two
            # of them) see the same moments of a shared machine's load, not three different
            # stretches of it
            for _ in range(runs):
                one_hop.append(_setup_once(net, "0", "1", ["0", "1"], cpu_one))
                trusted.append(_setup_once(net, "0", "2", ["0", "1", "2"]))
                five.append(_setup_once(net, "0", "5", [str(i) for i in range(6)], cpu_five))
        finally:
            net.close()
        p50_trusted = percentile(trusted, 50)
        ratio = percentile(five, 50) / percentile(one_hop, 50)
        rows += [
            row("controller.setup_ms_1_hop", percentile(one_hop, 50), "ms", samples=one_hop),
            row("controller.setup_ms_1_trusted_node", p50_trusted, "ms",
                target=f"<= {TARGET_SETUP_MS:g}", meets=p50_trusted <= TARGET_SETUP_MS,
                samples=trusted),
            row("controller.setup_ms_5_hops", percentile(five, 50), "ms", samples=five),
            row("controller.setup_ratio_5_to_1_hop", round(ratio, 3), "x",
                target=f"<= {TARGET_HOP_RATIO:g}", meets=ratio <= TARGET_HOP_RATIO, runs=runs),
            row("controller.setup_cpu_ms_1_hop", percentile(cpu_one, 50), "ms",
                samples=cpu_one),
            row("controller.setup_cpu_ms_5_hops", percentile(cpu_five, 50), "ms",
                samples=cpu_five),
        ]
        rows += _bench_reroute(Path(tmp), quick)
    return rows


def _bench_reroute(workdir: Any, quick: bool) -> list[dict]:
    """10 active sessions a-c on one side of a square; cut the link they use; time until every
    one is configured on the other side's relay and gone from the old one."""
    raw = {"name": "bench-square", "nodes": [{"name": x} for x in "abcd"],
           "links": [{"a": "a", "b": "b", "length_km": 10}, {"a": "b", "b": "c", "length_km": 10},
                     {"a": "a", "b": "d", "length_km": 10}, {"a": "d", "b": "c", "length_km": 10}],
           "slas": [{"name": "s", "max_bps": 10**6, "max_sessions": 10**4,
                     "idle_timeout_s": 3600}],
           "users": [{"name": "ua", "sla": "s"}, {"name": "uc", "sla": "s"}],
           "saes": [{"id": "sae-a", "node": "a", "user": "ua"},
                    {"id": "sae-c", "node": "c", "user": "uc"}]}
    net = _AgentNetwork(raw, workdir)
    samples = []
    try:
        for _ in range(10):
            before = len(net.admission.sessions())
            net.open("a", "c")
            net.open("c", "a")
            net.wait(lambda b=before: len([s for s in net.admission.sessions()
                                           if s.state.value == "active"]) == b + 1)
        ids = {s.session_id for s in net.admission.sessions()}
        net.wait(lambda: ids <= net.apps["a"] and ids <= net.apps["c"])
        relay, other = ("b", "d") if ids <= net.apps["b"] else ("d", "b")
        for _ in range(3 if quick else 10):
            started = time.perf_counter()
            net.link_down(relay, "c")
            net.wait(lambda r=relay, o=other: ids <= net.apps[o] and not (ids & net.apps[r]))
            samples.append((time.perf_counter() - started) * 1000)
            net.link_up(relay, "c")
            relay, other = other, relay
    finally:
        net.close()
    p95 = percentile(samples, 95)
    return [row("controller.reroute_ms_10_sessions_p95", p95, "ms",
                target=f"<= {TARGET_REROUTE_MS:g}", meets=p95 <= TARGET_REROUTE_MS,
                samples=samples)]


def run(quick: bool = False) -> list[dict]:
    return bench_routing(quick) + bench_admission(quick) + bench_netconf(quick)


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv[1:]), indent=2))
