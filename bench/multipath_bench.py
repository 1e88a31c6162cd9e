"""Multipath benchmark: end-to-end key rate of one session whose requested rate exceeds any
single path, against the max-flow (min-cut) bound of the link key rates.

Five real KMs on loopback (cheroot, mutual TLS, SQLite stores), fed by a deterministic key
source at fixed rates per link::

        B ── 48 kbit/s ── D            A–B, A–C: 256 kbit/s (plenty)
       /                /  \\           B–D 48, C–D 32, B–C 8 kbit/s
      A                C ───┘           max-flow A→D = 48 + 32 = 80 kbit/s
       \\______________/                 widest single path: 48 kbit/s

The session's route comes from the controller's own routing element
(:func:`sdn_controller.routing.route_session` at the max-flow rate), its configuration from
:func:`sdn_controller.session_config.build_km_configs` and
:func:`sdn_controller.config_payloads.session_config_payload`, applied to each node's
datastore (libyang) and handed to the KMs exactly as the agent does — only NETCONF transport
is left out. One SAE then asks for keys as fast as they come for the run's duration.

``multipath.delivered_over_maxflow`` = end-to-end key delivered (released to the master, plus
relayed keys waiting ready at both ends) / max-flow of the key each link produced during the
run (sending halves, in the direction of the traffic). Target ≥ 0.9 and never above 1.
Also ``multipath.legs`` (route legs used) and ``multipath.single_path_over_maxflow`` (the
best one path could carry, for comparison). Median of several runs. The first run's course
(key delivered over time against the bound) is plotted in ``bench/multipath_delivered.png``
(:func:`bench.plots.plot_delivered_vs_bound`).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import requests

from bench.plots import plot_delivered_vs_bound
from bench.report import row
from kms.key_manager import KmConfig
from kms.local_network import LocalKmNetwork, link_id, node_qkdn_id

KEY_BITS = 256
#: key rate of the sending half of each link, bit/s (direction of the traffic)
LINK_RATES = {("A", "B"): 256_000, ("A", "C"): 256_000, ("B", "D"): 48_000,
              ("C", "D"): 32_000, ("B", "C"): 8_000}
PERIOD_S = 0.25
SAES = {"sae-a": "A", "sae-d": "D"}


def _max_flow(rates: dict[tuple[str, str], float], src: str, dst: str) -> float:
    net = nx.DiGraph()
    for (a, b), rate in rates.items():
        net.add_edge(a, b, capacity=rate)
        net.add_edge(b, a, capacity=rate)
    return float(nx.maximum_flow_value(net, src, dst))


def _configure(net: LocalKmNetwork, rate_bps: int) -> int:
    """Route and configure the session with the controller's code; returns the leg count."""
    from qkd_agent.datastore import Datastore
    from qkd_agent.yang_context import load_context
    from sdn_controller.config_payloads import session_config_payload
    from sdn_controller.link_metrics import LinkMetrics, LinkStatus
    from sdn_controller.routing import build_graph, route_session
    from sdn_controller.session_config import QoS, build_km_configs, token_bucket_for

    ids = {n: node_qkdn_id(n) for n in net.nodes}
    graph = build_graph([LinkMetrics(link_id(a, b), ids[a], ids[b], LinkStatus.ACTIVE, skr=rate)
                         for (a, b), rate in LINK_RATES.items()])
    route = route_session(graph, ids["A"], ids["D"], rate_bps)
    configs = build_km_configs(session_id=str(uuid.uuid4()), generation=0, route=route,
                               initiator=("sae-a", ids["A"]), responder=("sae-d", ids["D"]),
                               qos=QoS(max_bps=rate_bps), priority=1, idle_timeout_s=600,
                               bucket=token_bucket_for(rate_bps * 4, burst_s=4.0))
    ctx = load_context()
    by_id = {v: k for k, v in ids.items()}
    for config in configs:
        store = Datastore(ctx, {"etsi-qkd-sdn-node:qkd_node": {"qkdn_id": config.node_id}})
        store.edit_config(session_config_payload(config))
        net.kms[by_id[config.node_id]].apply_running_config(store.running_json())
    return len(route.legs)


@dataclass(frozen=True)
class Sample:
    """One point of a run's course: seconds since the start, key released to the master so
    far and the key each link had produced so far (bits)."""
    seconds: float
    delivered_bits: int
    fed_bits: dict[tuple[str, str], int]


def one_run(duration_s: float) -> tuple[float, int, float, list[Sample]]:
    """(delivered / max-flow bound, legs, max-flow of the nominal rates, the run's course)."""
    state = Path(tempfile.mkdtemp(prefix="multipath-bench-", dir=os.environ.get("QKDN_BENCH_DIR")))
    nodes = ["A", "B", "C", "D"]
    nominal = _max_flow(LINK_RATES, "A", "D")
    with LocalKmNetwork(state, nodes, list(LINK_RATES), SAES,
                        config=KmConfig(relay_batch=64, require_controller=True)) as net:
        legs = _configure(net, int(nominal))
        fed_bits = {link: 0 for link in LINK_RATES}
        stop = threading.Event()

        def supply() -> None:   # the QKD modules: one block per link every PERIOD_S
            while not stop.wait(PERIOD_S):
                for (a, b), rate in LINK_RATES.items():
                    half = int(rate * PERIOD_S / 8)
                    net.feed(a, b, blocks=1, size=2 * half)
                    fed_bits[(a, b)] += half * 8

        session = requests.Session()
        session.trust_env = False
        session.cert, session.verify = net.sae_cert("sae-a"), net.ca
        url = net.kms["A"].base_url + "/api/v1/keys/sae-d/enc_keys"
        session.get(net.kms["A"].base_url + "/api/v1/keys/sae-d/status", timeout=30)
        feeder = threading.Thread(target=supply, name="multipath-feed")
        delivered = 0
        course: list[Sample] = []
        t0 = time.perf_counter()
        feeder.start()
        try:
            while (elapsed := time.perf_counter() - t0) < duration_s:
                r = session.post(url, json={"number": 64, "size": KEY_BITS}, timeout=30)
                if r.status_code == 200:
                    delivered += len(r.json()["keys"]) * KEY_BITS
                else:
                    time.sleep(0.01)
                course.append(Sample(elapsed, delivered, dict(fed_bits)))
        finally:
            stop.set()
            feeder.join()
            stopped = time.perf_counter() - t0
        delivered += net.kms["A"].pool.ready_count("sae-a", "sae-d", KEY_BITS) * KEY_BITS
        bound = _max_flow({link: float(bits) for link, bits in fed_bits.items()}, "A", "D")
    course.append(Sample(stopped, delivered, dict(fed_bits)))   # with the keys ready
    return (delivered / bound if bound else 0.0), legs, nominal, course


def plot_course(course: list[Sample]) -> None:
    """The run's delivered key against the max-flow bound and the best single path of the
    key the links had produced at each moment."""
    def widest(fed: dict[tuple[str, str], int]) -> float:
        return max(min(fed[("A", "B")], fed[("B", "D")]), min(fed[("A", "C")], fed[("C", "D")]))

    plot_delivered_vs_bound([p.seconds for p in course],
                            [p.delivered_bits / 1000 for p in course],
                            [_max_flow({k: float(v) for k, v in p.fed_bits.items()}, "A", "D")
                             / 1000 for p in course],
                            [widest(p.fed_bits) / 1000 for p in course])


def run(quick: bool = False) -> list[dict]:
    runs, duration = (1, 6.0) if quick else (3, 15.0)
    results = [one_run(duration) for _ in range(runs)]
    ratios = [r[0] for r in results]
    ratio = statistics.median(ratios)
    nominal = results[0][2]
    plot_course(results[0][3])
    widest = max(min(LINK_RATES[("A", "B")], LINK_RATES[("B", "D")]),
                 min(LINK_RATES[("A", "C")], LINK_RATES[("C", "D")]))
    return [
        row("multipath.delivered_over_maxflow", round(ratio, 3), "ratio",
            target=">= 0.9 and <= 1", meets=ratio >= 0.9 and all(r <= 1 for r in ratios),
            samples=ratios),
        row("multipath.legs", results[0][1], "paths", samples=[r[1] for r in results]),
        row("multipath.single_path_over_maxflow", round(widest / nominal, 3), "ratio"),
    ]


if __name__ == "__main__":
    import json
    import sys
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
