"""End-to-end session set-up as issue 4 defines it: both applications' ETSI GS QKD 004
OPEN_CONNECT answered with status 0 (SUCCESSFUL) and one Key_stream_ID, through the real
network (``python -m bench.run --only session_setup``, or ``python -m bench.session_setup_bench
[--quick] [--rounds N]``).

The network is ``topologies/line6.yaml`` (six nodes in a line, 5 km fibres) brought up with
:func:`qkdn.bringup.bring_up`, exactly as ``qkdn up`` does: a supervisor, one process per node
(NETCONF agent + key manager + emulated QKD modules), the SDN controller and the orchestrator,
each its own OS process on loopback. The applications are threads of this process with the
SAE client certificates ``qkdn up`` issued (:func:`qkdn.sae_client.sae_client`: HTTPS with
mutual TLS, one kept-alive connection per application).

Per round, one set-up of each kind, interleaved (as ``bench.controller_bench`` does): 1 hop
(nodes 0-1), through one trusted node (0-2), 5 hops (0-5). A set-up:

1. both applications' connections are used once (a CLOSE of a Key_stream_ID nobody holds,
   answered 4) so that each is open and kept alive before the clock starts;
2. two threads meet at a barrier, then each sends OPEN_CONNECT(source = its SAE, destination
   = the peer, ``Key_stream_ID`` null) to its own KM; the figure runs from the first send to
   the last answer, and counts only when both answered status 0 with the same Key_stream_ID;
3. untimed: both CLOSE, then the benchmark waits until the controller has finished the
   teardown (its ``qkdn_controller_events_total{kind="session-terminated"}`` counter,
   read from its ``/metrics``, went up: that event is emitted once every KM's deletion reply
   is in, and no session is left active or waiting in ``qkdn_controller_sessions``) and until
   the session's ``qkd_app`` is gone from the running configuration of every KM on the path
   (NETCONF ``get-config`` of each agent). Only then does the next set-up start.

A KM answers OPEN_CONNECT only once its own session is *operative*: it waits until the
controller's configuration has been applied to it (``kms.key_stream.StreamManager
._wait_active``: the datastore listener made the session active), then sends the stream's
``open`` along the path to the peer's KM (forwarded by each relay KM on its forwarding rule,
i.e. only once that relay is configured too) and answers. So status 0 at both ends means every
KM on the path holds the session's configuration; the figure also includes the KMs'
own work after the configuration (the end KM's 20-ms wait loop, the ``open`` relayed hop by
hop) that ``controller.setup_ms_*`` (agents without KMs, notifications injected) does not.

Rows (p50 over the rounds; a set-up not answered 0/0 with one Key_stream_ID is kept out of the
figures, counted in ``session.open_connect_failed`` and tried again, up to ``MAX_ATTEMPTS``
per kind and round):

* ``session.open_connect_ms_1_hop`` / ``_1_trusted_node`` (target <= 100) / ``_5_hops``;
* ``session.open_connect_ratio_5_to_1_hop`` — p50 5 hops / p50 1 hop (target <= 1.5);
* ``session.open_connect_controller_cpu_ms_<kind>`` / ``..._nodes_cpu_ms_<kind>`` — CPU
  (utime + stime, ``/proc``; the mean, as ``/proc`` counts whole 10-ms ticks) of the
  controller process and of all node processes together
  from just before the barrier to both answers (their idle background included: see
  ``idle_cpu_ms_per_s``);
* ``session.open_connect_to_configured_ms_<kind>`` / ``..._configured_to_answered_ms_<kind>``
  — p50 of the two parts of the figure, split where the last KM of the path applied the
  session's configuration (its ``path_configured`` event): the controller's share (with the
  request to the KM and the pushes) and the KMs' own after it;
* ``session.open_connect_failed`` — set-ups not answered 0/0 with one Key_stream_ID (target 0;
  two simultaneous OPEN_CONNECTs often get 5 and 1: docs/benchmarks.md, "End-to-end set-up
  (OPEN_CONNECT), session 7").

``timeline(...)`` gives where one set-up's time went, from the KMs' session events
(``DIR/nodes/<n>/events.jsonl``: the OPEN_CONNECT received, the configuration applied at each
KM) and the applications' send and answer times; ``run`` prints it for the median 5-hop
set-up.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from bench.report import percentile, row

REPO = Path(__file__).resolve().parent.parent
LINE6 = REPO / "topologies" / "line6.yaml"

TARGET_TRUSTED_NODE_MS = 100.0
TARGET_HOP_RATIO = 1.5
#: rounds of the full and of the quick form (each round: one set-up of every kind)
ROUNDS, QUICK_ROUNDS = 30, 3
#: rounds run first and not counted (first TLS handshakes between KMs, first code paths)
WARMUP_ROUNDS = 2
#: attempts of one kind in one round until a set-up is answered 0/0 with one Key_stream_ID
MAX_ATTEMPTS = 8
#: the QoS ``timeout`` of OPEN_CONNECT (ms): how long a KM waits for the controller
OPEN_TIMEOUT_MS = 10_000
#: longest wait for a teardown to finish (seconds); a longer one is an error
TEARDOWN_TIMEOUT_S = 15.0
#: pause between two looks at the teardown's state (untimed)
TEARDOWN_POLL_S = 0.01
#: seconds of the idle CPU sample taken before the rounds
IDLE_WINDOW_S = 3.0
#: a Key_stream_ID no one holds: the warm-up CLOSE that opens a connection (answered 4)
UNUSED_KSID = "00000000-0000-4000-8000-000000000000"
SUCCESS = 0
#: the controller's counter of its events, by kind (``sdn_controller.controller_metrics``)
TERMINATED_SAMPLE = "qkdn_controller_events_total"


@dataclass(frozen=True)
class SetupKind:
    """One kind of set-up: the two end nodes (their SAEs open the session)."""

    name: str          #: row suffix, e.g. ``5_hops``
    source: str        #: node of the first application
    destination: str   #: node of its peer


#: the three kinds of the issue's figure on ``topologies/line6.yaml``
LINE6_KINDS = (SetupKind("1_hop", "0", "1"), SetupKind("1_trusted_node", "0", "2"),
               SetupKind("5_hops", "0", "5"))


@dataclass(frozen=True)
class OpenAnswer:
    """One application's OPEN_CONNECT: what it got and when (``perf_counter`` for the figure,
    wall clock to place it among the KMs' events)."""

    sae_id: str
    status: int                  #: the 004 status; -1: no 004 answer (``error`` says why)
    ksid: str | None
    sent: float
    answered: float
    sent_wall: float
    answered_wall: float
    error: str = ""


@dataclass(frozen=True)
class SetupResult:
    """One set-up: both answers and the CPU the processes spent meanwhile."""

    kind: str
    path: tuple[str, ...]
    answers: tuple[OpenAnswer, OpenAnswer]
    controller_cpu_ms: float
    nodes_cpu_ms: float

    @property
    def ms(self) -> float:
        """From the first OPEN_CONNECT sent to the last answered."""
        return (max(a.answered for a in self.answers) - min(a.sent for a in self.answers)) * 1000

    @property
    def operative(self) -> bool:
        """Both answered 0 (SUCCESSFUL) with one and the same Key_stream_ID."""
        first, second = self.answers
        return first.status == second.status == SUCCESS and first.ksid is not None and \
            first.ksid == second.ksid

    @property
    def ksids(self) -> frozenset[str]:
        return frozenset(a.ksid for a in self.answers if a.ksid)


# --- pure helpers --------------------------------------------------------------------------------
def open_connect_body(source_sae: str, destination_sae: str, *,
                      timeout_ms: int = OPEN_TIMEOUT_MS) -> dict[str, Any]:
    """The OPEN_CONNECT request of ``source_sae`` (our 004 JSON binding, docs/kms.md): a new
    stream (null Key_stream_ID), 32-byte chunks, waiting up to ``timeout_ms`` for the
    controller."""
    return {"source": source_sae, "destination": destination_sae,
            "QoS": {"key_chunk_size": 32, "timeout": timeout_ms},
            "Key_stream_ID": None}


def shortest_path(links: Iterable[tuple[str, str]], source: str, destination: str
                  ) -> tuple[str, ...]:
    """The fewest-hop path between two nodes of an undirected link list (breadth first; on a
    line, the only path).

    >>> shortest_path([("0", "1"), ("1", "2"), ("2", "3")], "0", "2")
    ('0', '1', '2')
    """
    neighbours: dict[str, list[str]] = {}
    for a, b in links:
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    previous: dict[str, str | None] = {source: None}
    queue = deque([source])
    while queue:
        node = queue.popleft()
        if node == destination:
            path = [node]
            while previous[path[-1]] is not None:
                path.append(previous[path[-1]])  # type: ignore[arg-type]
            return tuple(reversed(path))
        for nxt in neighbours.get(node, []):
            if nxt not in previous:
                previous[nxt] = node
                queue.append(nxt)
    raise ValueError(f"no path from {source} to {destination}")


def metric_sum(text: str, sample_name: str, labels: Mapping[str, str] | None = None) -> float:
    """Sum of the samples ``sample_name`` (Prometheus text format) whose labels include
    ``labels``; 0 when there is none.

    >>> metric_sum('a_total{kind="x"} 2.0\\na_total{kind="y"} 5.0\\n', "a_total", {"kind": "y"})
    5.0
    """
    from prometheus_client.parser import text_string_to_metric_families

    wanted = dict(labels or {})
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == sample_name and \
                    all(sample.labels.get(k) == v for k, v in wanted.items()):
                total += sample.value
    return total


def rows_of(results: Mapping[str, Sequence[SetupResult]], failed: int, attempts: int,
            kinds: Sequence[SetupKind] = LINE6_KINDS,
            split: Mapping[str, tuple[float, float]] | None = None) -> list[dict[str, Any]]:
    """The report rows of the operative set-ups per kind (``results[kind.name]``); ``split``
    (:func:`split_at_configuration`'s p50s per kind) adds the two parts of each figure."""
    rows: list[dict[str, Any]] = []
    p50: dict[str, float] = {}
    for kind in kinds:
        samples = [r.ms for r in results.get(kind.name, ()) if r.operative]
        if not samples:
            continue
        p50[kind.name] = percentile(samples, 50)
        if kind.name == "1_trusted_node":
            rows.append(row(f"session.open_connect_ms_{kind.name}", p50[kind.name], "ms",
                            target=f"<= {TARGET_TRUSTED_NODE_MS:g}",
                            meets=p50[kind.name] <= TARGET_TRUSTED_NODE_MS, samples=samples))
        else:
            rows.append(row(f"session.open_connect_ms_{kind.name}", p50[kind.name], "ms",
                            samples=samples))
    if "1_hop" in p50 and "5_hops" in p50:
        ratio = p50["5_hops"] / p50["1_hop"]
        runs = min(len(results.get("1_hop", ())), len(results.get("5_hops", ())))
        rows.append(row("session.open_connect_ratio_5_to_1_hop", round(ratio, 3), "x",
                        target=f"<= {TARGET_HOP_RATIO:g}", meets=ratio <= TARGET_HOP_RATIO,
                        runs=runs))
    for what in ("controller", "nodes"):
        for kind in kinds:
            cpu = [getattr(r, f"{what}_cpu_ms") for r in results.get(kind.name, ())
                   if r.operative]
            if cpu:   # the mean: /proc counts whole 10-ms ticks, a median would be one
                rows.append(row(f"session.open_connect_{what}_cpu_ms_{kind.name}",
                                round(statistics.fmean(cpu), 3), "ms", runs=len(cpu)))
    for kind in kinds:
        if kind.name in (split or {}):
            to_configured, after = split[kind.name]  # type: ignore[index]
            rows.append(row(f"session.open_connect_to_configured_ms_{kind.name}",
                            round(to_configured, 3), "ms",
                            runs=len(results.get(kind.name, ()))))
            rows.append(row(f"session.open_connect_configured_to_answered_ms_{kind.name}",
                            round(after, 3), "ms", runs=len(results.get(kind.name, ()))))
    rows.append(row("session.open_connect_failed", failed, "set-ups", target="0",
                    meets=failed == 0, runs=attempts))
    return rows


def timeline(result: SetupResult, events: Iterable[Any]) -> list[tuple[float, str, str]]:
    """Where one set-up's time went: ``(ms after the first OPEN_CONNECT was sent, where,
    what)``, from the applications' times and the KMs' session events of its Key_stream_ID
    (``qkdn.event_log.Event``: the OPEN_CONNECT received, the configuration applied),
    in time order."""
    t0 = min(a.sent_wall for a in result.answers)
    steps = [((a.sent_wall - t0) * 1000, f"app {a.sae_id}", "OPEN_CONNECT sent")
             for a in result.answers]
    steps += [((a.answered_wall - t0) * 1000, f"app {a.sae_id}",
               f"answered status {a.status}") for a in result.answers]
    for event in events:
        if event.session not in result.ksids:
            continue
        kind = event.event.value
        if kind == "request" and event.detail.get("operation") == "open_connect":
            what = f"OPEN_CONNECT of {event.detail.get('sae')} received"
        elif kind == "authenticated":
            what = "session authorised (its configuration arrived)"
        elif kind == "path_configured":
            what = "configuration applied (qkd_app, forwarding rule)"
        else:
            continue
        steps.append(((event.t - t0) * 1000, f"KM {event.node}", what))
    return sorted(steps)


def split_at_configuration(result: SetupResult, events: Iterable[Any]
                           ) -> tuple[float, float] | None:
    """(ms from the first OPEN_CONNECT sent to the configuration applied at the last KM of the
    path, ms from there to the last answer), from the KMs' ``path_configured`` events of the
    set-up's Key_stream_ID; None when a KM of the path recorded none."""
    configured: dict[str, float] = {}
    for event in events:
        if event.session in result.ksids and event.event.value == "path_configured" and \
                event.node in result.path:
            configured[event.node] = max(configured.get(event.node, 0.0), event.t)
    if set(configured) != set(result.path):
        return None
    last = max(configured.values())
    first_sent = min(a.sent_wall for a in result.answers)
    last_answer = max(a.answered_wall for a in result.answers)
    return (last - first_sent) * 1000, (last_answer - last) * 1000


def failure_summary(failed: Iterable[SetupResult]) -> str:
    """Set-ups not answered 0/0 with one Key_stream_ID, counted by kind and by the two
    statuses (first application's, its peer's) and whether they shared a Key_stream_ID.

    >>> a = OpenAnswer("sae-0", 5, "k", 0, 1, 0, 1)
    >>> b = OpenAnswer("sae-1", 1, "k", 0, 1, 0, 1)
    >>> failure_summary([SetupResult("1_hop", ("0", "1"), (a, b), 0, 0)] * 2)
    '1_hop 2 (5/1 one KSID: 2)'
    """
    by_kind: dict[str, dict[str, int]] = {}
    for result in failed:
        first, second = result.answers
        pattern = f"{first.status}/{second.status} " + \
            ("one KSID" if len(result.ksids) == 1 else f"{len(result.ksids)} KSIDs")
        counts = by_kind.setdefault(result.kind, {})
        counts[pattern] = counts.get(pattern, 0) + 1
    return ", ".join(f"{kind} {sum(c.values())} (" +
                     ", ".join(f"{p}: {n}" for p, n in sorted(c.items())) + ")"
                     for kind, c in by_kind.items())


def format_timeline(steps: Sequence[tuple[float, str, str]]) -> str:
    return "\n".join(f"  {ms:8.2f} ms  {where:<10} {what}" for ms, where, what in steps)


# --- the running network -------------------------------------------------------------------------
class SessionSetupNetwork:
    """A ``qkdn up`` network (:func:`qkdn.bringup.bring_up`) with one application client per
    SAE, a NETCONF session per agent and the processes' pids; a context manager that brings
    the network down on exit."""

    def __init__(self, topology_path: Path, root: Path, *, up_timeout: float = 120.0) -> None:
        from qkdn.state_files import StateDir

        self.topology_path = topology_path
        self.state = StateDir(root)
        self.up_timeout = up_timeout
        self.endpoints: dict[str, Any] = {}
        self.clients: dict[str, Any] = {}
        self.agents: dict[str, Any] = {}
        self.node_pids: dict[str, int] = {}
        self.controller_pid = 0
        self.links: list[tuple[str, str]] = []
        self.sae_of: dict[str, str] = {}
        self._metrics: Any = None

    def __enter__(self) -> Self:
        import requests

        from qkdn.bringup import bring_up, network_status
        from qkdn.sae_client import sae_client
        from qkdn.topology import load_topology

        topology = load_topology(self.topology_path)
        self.links = [(link.a, link.b) for link in topology.links]
        self.endpoints = bring_up(self.topology_path, self.state, timeout=self.up_timeout)
        try:
            for sae_id, sae in self.endpoints["saes"].items():
                self.clients[sae_id] = sae_client(self.endpoints, sae_id)
                self.sae_of.setdefault(sae["node"], sae_id)
            for process in network_status(self.state)["processes"]:
                if process["kind"] == "node":
                    self.node_pids[process["name"]] = int(process["pid"])
                elif process["kind"] == "controller":
                    self.controller_pid = int(process["pid"])
            self._metrics = requests.Session()
            self._metrics.trust_env = False
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        import contextlib

        from qkdn.bringup import bring_down

        for client in self.clients.values():
            client.close()
        for agent in self.agents.values():
            with contextlib.suppress(Exception):
                agent.close_session()
        if self._metrics is not None:
            self._metrics.close()
        bring_down(self.state)

    # --- the figure --------------------------------------------------------------------------
    def path_of(self, kind: SetupKind) -> tuple[str, ...]:
        return shortest_path(self.links, kind.source, kind.destination)

    def cpu_s(self) -> tuple[float, float]:
        """(controller, all nodes) CPU seconds so far."""
        from bench.process_cpu import process_cpu_s

        return (process_cpu_s(self.controller_pid),
                sum(process_cpu_s(pid) for pid in self.node_pids.values()))

    def idle_cpu_ms_per_s(self, window_s: float = IDLE_WINDOW_S) -> tuple[float, float]:
        """(controller, all nodes) CPU ms per second while no application asks anything."""
        before, started = self.cpu_s(), time.perf_counter()
        time.sleep(window_s)
        after, elapsed = self.cpu_s(), time.perf_counter() - started
        return ((after[0] - before[0]) * 1000 / elapsed, (after[1] - before[1]) * 1000 / elapsed)

    def _url(self, node: str, call: str) -> str:
        return f"{self.endpoints['nodes'][node]['etsi004']}/{call}"

    def _warm(self, sae_id: str, node: str) -> None:
        """Use the application's connection once (a CLOSE nobody's stream: status 4), so it is
        open and kept alive when the clock starts."""
        reply = self.clients[sae_id].post(self._url(node, "close"),
                                          json={"Key_stream_ID": UNUSED_KSID}, timeout=30)
        reply.raise_for_status()

    def setup(self, kind: SetupKind) -> SetupResult:
        """Both applications' OPEN_CONNECT at once; the figure and the CPU meanwhile."""
        ends = ((self.sae_of[kind.source], self.sae_of[kind.destination], kind.source),
                (self.sae_of[kind.destination], self.sae_of[kind.source], kind.destination))
        for sae_id, _, node in ends:
            self._warm(sae_id, node)
        barrier = threading.Barrier(len(ends) + 1)
        answers: dict[str, OpenAnswer] = {}

        def open_connect(sae_id: str, peer: str, node: str) -> None:
            client, url = self.clients[sae_id], self._url(node, "open_connect")
            body = open_connect_body(sae_id, peer)
            barrier.wait()
            sent_wall, sent = time.time(), time.perf_counter()
            status, ksid, error = -1, None, ""
            try:
                reply = client.post(url, json=body, timeout=OPEN_TIMEOUT_MS / 1000 + 30)
                if reply.status_code == 200:
                    data = reply.json()
                    status, ksid = int(data["status"]), data.get("Key_stream_ID")
                else:
                    error = f"HTTP {reply.status_code}: {reply.text[:200]}"
            except Exception as exc:  # noqa: BLE001 - recorded as this set-up's failure
                error = repr(exc)
            answered, answered_wall = time.perf_counter(), time.time()
            answers[sae_id] = OpenAnswer(sae_id, status, ksid, sent, answered, sent_wall,
                                         answered_wall, error)

        threads = [threading.Thread(target=open_connect, args=end, name=f"app-{end[0]}")
                   for end in ends]
        for thread in threads:
            thread.start()
        cpu_before = self.cpu_s()
        barrier.wait()
        for thread in threads:
            thread.join()
        cpu_after = self.cpu_s()
        return SetupResult(kind.name, self.path_of(kind),
                           (answers[ends[0][0]], answers[ends[1][0]]),
                           (cpu_after[0] - cpu_before[0]) * 1000,
                           (cpu_after[1] - cpu_before[1]) * 1000)

    # --- teardown (untimed) ------------------------------------------------------------------
    def controller_metrics(self, *names: str) -> str:
        """The controller's ``/metrics`` (only the samples ``names`` when given: a whole
        scrape costs the controller ~4 ms of CPU, a filtered one ~1 ms)."""
        url = self.endpoints["controller"]["metrics_url"]
        reply = self._metrics.get(url, params={"name[]": list(names)} if names else None,
                                  timeout=10)
        reply.raise_for_status()
        return reply.text

    def terminated_count(self) -> float:
        """Sessions the controller has finished tearing down so far (every KM's deletion
        reply in: its ``session-terminated`` event)."""
        return metric_sum(self.controller_metrics(TERMINATED_SAMPLE), TERMINATED_SAMPLE,
                          {"kind": "session-terminated"})

    def controller_idle(self, terminated_before: float, expected: int) -> bool:
        """The controller finished ``expected`` teardowns since ``terminated_before`` and holds
        no session that is active or waiting (the session gauge is read only once the
        teardowns are: it needs a whole scrape)."""
        if self.terminated_count() < terminated_before + expected:
            return False
        text = self.controller_metrics()
        return sum(metric_sum(text, "qkdn_controller_sessions", {"state": state})
                   for state in ("config_requested", "accepted", "active")) == 0

    def _agent(self, node: str) -> Any:
        from qkdn.netconf_client import connect

        if node not in self.agents:
            nc = self.endpoints["nodes"][node]["netconf"]
            self.agents[node] = connect(nc["host"], nc["port"], nc["username"], nc["password"])
        return self.agents[node]

    def configured_apps(self, node: str, ksids: Iterable[str]) -> set[str]:
        """Which of ``ksids`` have a ``qkd_app`` in ``node``'s running configuration (the KM
        applies the running configuration before the agent answers an edit-config)."""
        from qkdn.namespaces import ETSI_NODE_NS

        found = set()
        for ksid in ksids:
            query = (f'<qkd_node xmlns="{ETSI_NODE_NS}"><qkd_applications><qkd_app>'
                     f'<app_id>{ksid}</app_id></qkd_app></qkd_applications></qkd_node>')
            data = self._agent(node).get_config(source="running",
                                                filter=("subtree", query)).data_ele
            if data.find(f".//{{{ETSI_NODE_NS}}}qkd_app") is not None:
                found.add(ksid)
        return found

    def teardown(self, result: SetupResult, terminated_before: float) -> list[int]:
        """CLOSE at both ends, then wait until the controller and every KM on the path have
        dropped the session; returns the CLOSE statuses."""
        statuses = []
        for answer, node in zip(result.answers, (result.path[0], result.path[-1])):
            if answer.ksid is None:
                continue
            reply = self.clients[answer.sae_id].post(
                self._url(node, "close"), json={"Key_stream_ID": answer.ksid}, timeout=30)
            statuses.append(int(reply.json().get("status", -1)) if reply.status_code == 200
                            else -reply.status_code)
        expected = 1 if result.ksids else 0
        _wait(lambda: self.controller_idle(terminated_before, expected), TEARDOWN_TIMEOUT_S,
              f"the controller did not finish the teardown of {sorted(result.ksids)}")
        for node in result.path:
            _wait(lambda n=node: not self.configured_apps(n, result.ksids), TEARDOWN_TIMEOUT_S,
                  f"KM {node} still holds {sorted(result.ksids)}")
        return statuses

    def events(self, since: float) -> list[Any]:
        from qkdn.event_log import collect_events

        return collect_events({name: self.state.node_dir(name) for name in self.node_pids},
                              since=since)


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(TEARDOWN_POLL_S)


# --- the benchmark -------------------------------------------------------------------------------
@dataclass
class BenchOutcome:
    """Everything one run measured (rows are made from it by :func:`rows_of`)."""

    results: dict[str, list[SetupResult]]
    failed: list[SetupResult]
    attempts: int
    close_statuses: list[int]
    idle_cpu_ms_per_s: tuple[float, float]
    load_average: tuple[float, ...]
    timeline: list[tuple[float, str, str]]
    #: per kind: p50 of :func:`split_at_configuration`'s two parts
    split: dict[str, tuple[float, float]]
    #: operative set-ups whose every KM of the path recorded its configuration before the
    #: last answer, and those checked (every KM of the path recorded one)
    configured_before_answer: tuple[int, int] = (0, 0)


def run_rounds(network: SessionSetupNetwork, rounds: int, *,
               kinds: Sequence[SetupKind] = LINE6_KINDS, warmup: int = WARMUP_ROUNDS,
               max_attempts: int = MAX_ATTEMPTS,
               idle_window_s: float = IDLE_WINDOW_S) -> BenchOutcome:
    """``warmup`` + ``rounds`` rounds of one set-up per kind (interleaved), each torn down
    before the next; set-ups not answered 0/0 with one Key_stream_ID are kept in ``failed``
    and retried (at most ``max_attempts`` per kind and round)."""
    import os

    results: dict[str, list[SetupResult]] = {kind.name: [] for kind in kinds}
    failed: list[SetupResult] = []
    closes: list[int] = []
    attempts = 0
    idle = network.idle_cpu_ms_per_s(idle_window_s)
    load = os.getloadavg()
    for index in range(warmup + rounds):
        for kind in kinds:
            for _ in range(max_attempts):
                terminated_before = network.terminated_count()
                result = network.setup(kind)
                closes += network.teardown(result, terminated_before)
                if index < warmup:
                    break
                attempts += 1
                if result.operative:
                    results[kind.name].append(result)
                    break
                failed.append(result)
    events = network.events(since=min((r.answers[0].sent_wall for rs in results.values()
                                       for r in rs), default=time.time()) - 1.0)
    split: dict[str, tuple[float, float]] = {}
    checked = before = 0
    for kind, done in results.items():
        parts = [p for p in (split_at_configuration(r, events) for r in done) if p is not None]
        checked += len(parts)
        before += sum(1 for p in parts if p[1] >= 0)
        if parts:
            split[kind] = (percentile([p[0] for p in parts], 50),
                           percentile([p[1] for p in parts], 50))
    steps: list[tuple[float, str, str]] = []
    last_kind = kinds[-1].name
    if results[last_kind]:
        ordered = sorted(results[last_kind], key=lambda r: r.ms)
        steps = timeline(ordered[len(ordered) // 2], events)
    return BenchOutcome(results, failed, attempts, closes, idle, load, steps, split,
                        (before, checked))


def measure(rounds: int, *, topology: Path = LINE6, kinds: Sequence[SetupKind] = LINE6_KINDS,
            warmup: int = WARMUP_ROUNDS, work_dir: Path | None = None,
            idle_window_s: float = IDLE_WINDOW_S) -> BenchOutcome:
    """Bring the network up, run the rounds, bring it down."""
    with tempfile.TemporaryDirectory(prefix="qkdn-setup-", dir=work_dir) as tmp, \
            SessionSetupNetwork(topology, Path(tmp) / "state") as network:
        return run_rounds(network, rounds, kinds=kinds, warmup=warmup,
                          idle_window_s=idle_window_s)


def describe(outcome: BenchOutcome) -> str:
    """A few lines for the console: load, idle CPU, failures, each kind's figures, the split
    at the configuration, the median 5-hop timeline."""
    load = "/".join(f"{v:.2f}" for v in outcome.load_average)
    idle_controller, idle_nodes = outcome.idle_cpu_ms_per_s
    first = (f"  load average at start {load}; idle CPU: controller {idle_controller:.1f} "
             f"ms/s, nodes {idle_nodes:.1f} ms/s")
    lines = [first]
    if outcome.failed:
        lines.append(f"  not operative: {failure_summary(outcome.failed)}")
    for result in outcome.failed:
        if any(a.error for a in result.answers):
            lines.append(f"    {result.kind}: " + "; ".join(f"{a.sae_id}: {a.error}"
                                                        for a in result.answers if a.error))
    for kind, results in outcome.results.items():
        if results:
            lines.append(f"  {kind}: " + " / ".join(f"{r.ms:.1f}" for r in results) + " ms")
        split = outcome.split.get(kind)
        if split:
            lines.append(f"    p50 to the last KM configured {split[0]:.1f} ms, from there to "
                         f"both answers {split[1]:.1f} ms")
    before, checked = outcome.configured_before_answer
    lines.append(f"  every KM of the path configured before both answers: {before} of "
                 f"{checked} set-ups")
    if outcome.timeline:
        lines.append("  median 5-hop set-up:")
        lines.append(format_timeline(outcome.timeline))
    return "\n".join(lines)


def run(quick: bool = False) -> list[dict[str, Any]]:
    outcome = measure(QUICK_ROUNDS if quick else ROUNDS)
    print(describe(outcome), flush=True)
    return rows_of(outcome.results, len(outcome.failed), outcome.attempts,
                   split=outcome.split)


def main(argv: list[str] | None = None) -> int:
    from bench.report import format_table

    parser = argparse.ArgumentParser(prog="python -m bench.session_setup_bench")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--json", action="store_true", help="rows as JSON")
    args = parser.parse_args(argv)
    rounds = args.rounds if args.rounds is not None else (QUICK_ROUNDS if args.quick else ROUNDS)
    outcome = measure(rounds)
    print(describe(outcome), file=sys.stderr, flush=True)
    rows = rows_of(outcome.results, len(outcome.failed), outcome.attempts,
                   split=outcome.split)
    print(json.dumps(rows, indent=2) if args.json else format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
