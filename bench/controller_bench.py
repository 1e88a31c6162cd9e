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
* ``payloads.build_ms_per_km`` — building one KM's ETSI 015 install payload.

``python -m bench.controller_bench [--quick]`` prints the rows as JSON.
"""

from __future__ import annotations

import itertools
import json
import random
import sys
import time
import uuid
from collections.abc import Callable

import networkx as nx

from bench.report import percentile, row
from sdn_controller.admission_control import AdmissionControl, ConfigRequest, Configured
from sdn_controller.config_payloads import session_config_payload
from sdn_controller.link_metrics import LinkMetrics, LinkStatus
from sdn_controller.routing import (GraphRouter, build_graph, compute_multipath, compute_path,
                                    compute_widest_path)
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
    nodes = 100
    sessions = 200 if quick else 1000
    links = random_links(nodes, 300, seed=3)
    links = [LinkMetrics(l.qkdl_id, l.node_a, l.node_b, l.status, skr=10**8) for l in links]
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


def run(quick: bool = False) -> list[dict]:
    return bench_routing(quick) + bench_admission(quick)


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv[1:]), indent=2))
