"""Key-manager benchmarks on loopback: real cheroot servers, mutual TLS, keep-alive, 256-bit
keys, SQLite stores with synchronous=FULL in a temporary state directory.

``run(quick=False) -> list[dict]`` returns rows with ``name, value, unit, target, meets, runs,
p50, p99``. Set ``QKDN_BENCH_DIR`` to put the state directory elsewhere (e.g. /dev/shm to see
the figures without disk fsync cost).

What runs where:

* ``bench_etsi014`` (``kms.etsi014_enc_p50_ms``, ``_p99_ms``, ``kms.etsi014_rps``,
  ``kms.batch_keys_per_s``, and the KM CPU rows ``kms.etsi014_km_cpu_ms_per_req``,
  ``kms.batch_km_cpu_us_per_key``): since session 5 **each KM is its own OS process**
  (``python -m kms.cli km serve``, :class:`kms.process_network.KmProcessNetwork`), as ``qkdn
  up`` runs one process per node; they log at INFO to their log files as node processes do.
  The sequential client (p50/p99, batch; ``requests``) runs in the bench process, the
  requests/s clients (urllib3 keep-alive pools, since session 5) in six processes of their own. Until session 4 both KMs and the sequential client shared
  the bench's interpreter (``LocalKmNetwork``), so the slave KM's share of every relay and
  the client's own CPU were taken from the master KM. ``QKDN_BENCH_KMS_IN_PROCESS=1`` runs
  the old set-up (for comparisons; no KM CPU rows then).
* ``bench_relay_hop``, ``bench_relay_chain``, ``bench_relay_rate``, ``bench_token_bucket``:
  in-process KMs
  (``LocalKmNetwork``; they reconfigure the KMs and feed links while running).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import ssl
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path

import requests
import urllib3

from bench.plots import plot_latency_vs_hops
from bench.report import percentile
from bench.report import row as report_row
from kms.key_manager import KmConfig
from kms.local_network import LocalKmNetwork, node_qkdn_id, virtual_link
from kms.process_network import KmProcessNetwork

KEY_BITS = 256


def _row(name, value, unit, target, meets, runs, p50=None, p99=None) -> dict:
    return {"name": name, "value": round(value, 3), "unit": unit, "target": target,
            "meets": bool(meets), "runs": runs,
            "p50": None if p50 is None else round(p50, 3), "p99": None if p99 is None else round(p99, 3)}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _client(net: LocalKmNetwork, sae: str) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.cert, s.verify = net.sae_cert(sae), net.ca
    return s


def _tmp() -> Path:
    return Path(tempfile.mkdtemp(prefix="kms-bench-", dir=os.environ.get("QKDN_BENCH_DIR")))


def _enc_latency(base_url: str, cert: tuple[str, str], ca: str, slave: str, n: int,
                 number: int = 1) -> list[float]:
    """Wall ms of ``n`` sequential enc_keys calls (after two warm-up calls) on one
    keep-alive connection."""
    s = requests.Session()
    s.trust_env = False
    s.cert, s.verify = cert, ca
    url = base_url + f"/api/v1/keys/{slave}/enc_keys"
    for _ in range(2):
        s.post(url, json={"number": number}, timeout=30).raise_for_status()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        r = s.post(url, json={"number": number}, timeout=30)
        out.append((time.perf_counter() - t) * 1000)
        r.raise_for_status()
    return out


def _local_enc_latency(net: LocalKmNetwork, master: str, slave: str, n: int,
                       number: int = 1) -> list[float]:
    return _enc_latency(net.kms[net.saes[master]].base_url, net.sae_cert(master), net.ca,
                        slave, n, number)


def _hammer(url: str, cert: str, key: str, ca: str, duration: float, ready, results) -> None:
    """Load-generator process: connects (TLS handshake, keep-alive), waits at the ``ready``
    barrier with the others and the parent, then runs enc_keys number=1 in a loop for
    ``duration`` s and puts its count of 200 answers on ``results``.

    The client is urllib3 (as the KM's own relay client), not ``requests``: on this
    benchmark's two cores the six clients share the CPU with the KMs, and ``requests`` spent
    2.2 ms of client CPU per call against the KM's 1.5 ms (urllib3: 1.35 ms), so the row
    measured the clients (session 5, docs/benchmarks.md)."""
    context = ssl.create_default_context(cafile=ca)
    context.load_cert_chain(cert, key)
    pool = urllib3.PoolManager(ssl_context=context, maxsize=1)
    pool.request("GET", url.replace("/enc_keys", "/status"), timeout=30)
    body, headers = json.dumps({"number": 1}).encode(), {"Content-Type": "application/json"}
    ready.wait()
    done, end = 0, time.monotonic() + duration
    while time.monotonic() < end:
        response = pool.urlopen("POST", url, body=body, headers=headers, timeout=30,
                                retries=False)
        if response.status == 200:
            done += 1
    results.put(done)


def hammer(url: str, cert: str, key: str, ca: str, clients: int, duration: float,
           on_start=None) -> int:
    """Requests served with 200 by ``clients`` keep-alive client processes in ``duration``
    seconds, timed from the moment every client is connected (slow process start-ups on a
    loaded machine do not shorten the window); ``on_start()`` runs at that moment."""
    ctx = multiprocessing.get_context("spawn")
    ready, results = ctx.Barrier(clients + 1), ctx.Queue()
    procs = [ctx.Process(target=_hammer, args=(url, cert, key, ca, duration, ready, results))
             for _ in range(clients)]
    for p in procs:
        p.start()
    try:
        ready.wait(timeout=120)
        if on_start is not None:
            on_start()
        done = sum(results.get(timeout=duration + 60) for _ in procs)
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
    return done


class _InProcessKms:
    """``LocalKmNetwork`` behind the few calls ``bench_etsi014`` makes (the pre-session-5
    set-up: both KMs in the bench's interpreter)."""

    def __init__(self, net: LocalKmNetwork) -> None:
        self.net = net
        self.urls = {n: km.base_url for n, km in net.kms.items()}
        self.ca = net.ca

    def sae_cert(self, sae: str) -> tuple[str, str]:
        return self.net.sae_cert(sae)

    def cpu_s(self, node: str) -> float | None:
        return None      # shared with the client: not the KM's alone


def bench_etsi014(quick: bool, *, in_process: bool | None = None) -> list[dict]:
    if in_process is None:
        in_process = os.environ.get("QKDN_BENCH_KMS_IN_PROCESS") == "1"
    n = 200 if quick else 1000
    saes = {"sae-a": "A", "sae-b": "B"}
    blocks = 40 if quick else 120    # 64 KiB each: supply is not the bottleneck
    # relay-ahead: the pair's next 1,000 keys are relayed in the background once fewer than
    # 1,000 are ready (at most 2,000 ready), so no request waits for a relay
    settings = {"relay_batch": 1000, "relay_ahead_low_water": 1000}
    if in_process:
        config = KmConfig(relay_batch=1000, max_key_per_request=1000, relay_ahead_low_water=1000)
        with LocalKmNetwork(_tmp(), ["A", "B"], [("A", "B")], saes, config=config) as local:
            local.feed("A", "B", blocks=blocks, size=65536)
            return _etsi014_rows(_InProcessKms(local), quick, n)
    with KmProcessNetwork(_tmp(), ["A", "B"], [("A", "B")], saes, km_settings=settings,
                          blocks=blocks, block_size=65536) as net:
        return _etsi014_rows(net, quick, n)


def _kms_cpu(net) -> float | None:
    a, b = net.cpu_s("A"), net.cpu_s("B")
    return None if a is None or b is None else a + b


def _etsi014_rows(net, quick: bool, n: int) -> list[dict]:
    cert, ca, base = net.sae_cert("sae-a"), net.ca, net.urls["A"]
    lat = _enc_latency(base, cert, ca, "sae-b", n)
    p50, p99 = _pct(lat, 0.5), _pct(lat, 0.99)
    rows = [_row("kms.etsi014_enc_p50_ms", p50, "ms", "<= 5", p50 <= 5, n, p50, p99),
            _row("kms.etsi014_enc_p99_ms", p99, "ms", "<= 25", p99 <= 25, n, p50, p99)]
    # sustained requests/s: keep-alive clients in their own processes (a client sharing
    # the KM's interpreter would compete with it for the GIL)
    duration = 3.0 if quick else 8.0
    url = base + "/api/v1/keys/sae-b/enc_keys"
    cpu: list[float | None] = []
    done = hammer(url, *cert, ca, 6, duration, on_start=lambda: cpu.append(_kms_cpu(net)))
    after = _kms_cpu(net)
    rps = done / duration
    rows.append(_row("kms.etsi014_rps", rps, "req/s", ">= 500", rps >= 500, done))
    if cpu and cpu[0] is not None and after is not None and done:
        rows.append(report_row("kms.etsi014_km_cpu_ms_per_req", round((after - cpu[0]) / done
                                                                       * 1000, 3),
                               "ms", runs=done))
    # batched: 100 keys per request, the pair's next 1,000 relayed ahead in the background
    m = 10 if quick else 40
    before = _kms_cpu(net)
    lat = _enc_latency(base, cert, ca, "sae-b", m, number=100)
    after = _kms_cpu(net)
    keys_per_s = 100 * m / (sum(lat) / 1000)
    rows.append(_row("kms.batch_keys_per_s", keys_per_s, "keys/s", ">= 10000",
                     keys_per_s >= 10000, m, _pct(lat, 0.5), _pct(lat, 0.99)))
    if before is not None and after is not None:
        # both KMs, warm-up calls included (102 … 4,200 keys), relay-ahead included
        rows.append(report_row("kms.batch_km_cpu_us_per_key",
                               round((after - before) / (100 * (m + 2)) * 1e6, 1), "us",
                               runs=m + 2))
    return rows


#: nodes of the chain of ``bench_relay_chain`` (its first three: ``bench_relay_hop``): A–B–C–D–E–F,
#: sessions from A to each other node
CHAIN = ("A", "B", "C", "D", "E", "F")


def _chain_configs(chain: Sequence[str]) -> dict[str, dict]:
    """Each chain node's running configuration for the sessions from ``chain[0]``'s SAE to
    every node's SAE two or more hops away (one hop is a direct pair, no configuration): an
    application at both ends, a virtual link with its neighbours at every node on the path."""
    apps: dict[str, list[dict]] = {node: [] for node in chain}
    links: dict[str, list[dict]] = {node: [] for node in chain}
    master = f"sae-{chain[0].lower()}"
    for end in range(2, len(chain)):
        session, virt = str(uuid.uuid4()), str(uuid.uuid4())
        slave = f"sae-{chain[end].lower()}"
        for i in range(end + 1):
            prev = chain[i - 1] if i > 0 else None
            nxt = chain[i + 1] if i < end else None
            links[chain[i]].append(virtual_link(virt, session, prev, nxt))
        for node in (chain[0], chain[end]):
            apps[node].append({"app_id": session, "server_app_id": master,
                               "client_app_id": [slave]})
    configs = {}
    for node in chain:
        body: dict = {"qkdn_id": node_qkdn_id(node), "qkd_links": {"qkd_link": links[node]}}
        if apps[node]:
            body["qkd_applications"] = {"qkd_app": apps[node]}
        configs[node] = {"etsi-qkd-sdn-node:qkd_node": body}
    return configs


def bench_relay_hop(quick: bool) -> list[dict]:
    """Added latency per trusted-node hop: p50 over A→C (2 hops) minus p50 over A→B (1 hop),
    every request relayed (relay_batch=1, empty pool), interleaved in rounds of ten (its
    definition since session 1)."""
    n = 60 if quick else 300
    samples = _chain_latencies(CHAIN[:3], n)
    added = statistics.median(samples[2]) - statistics.median(samples[1])
    return [_row("relay.hop_added_p50_ms", added, "ms", "<= 5", added <= 5, n,
                 statistics.median(samples[2]), _pct(samples[2], 0.99))]


def bench_relay_chain(quick: bool) -> list[dict]:
    """Latency of one ``enc_keys`` call against the path's hop count on the chain
    A–B–C–D–E–F: A's SAE asks for a key shared with the SAE of B (1 hop, direct), C (2 hops,
    one trusted node), ... F (5 hops), every request relayed; ``relay.enc_p50_ms_N_hops``
    each point and ``relay.hop_added_slope_ms`` the least-squares slope of the p50s, plotted
    in ``bench/relay_latency_hops.png``. (``relay.hop_added_p50_ms`` stays measured on its
    own three KMs: six KMs in one process cost each request more.)"""
    samples = _chain_latencies(CHAIN, 30 if quick else 100)
    p50 = {hops: statistics.median(values) for hops, values in samples.items()}
    p99 = {hops: percentile(values, 99) for hops, values in samples.items()}
    slope = _slope(list(p50), list(p50.values()))
    plot_latency_vs_hops(list(p50), list(p50.values()), list(p99.values()))
    return ([report_row("relay.hop_added_slope_ms", round(slope, 3), "ms per hop",
                        runs=sum(len(v) for v in samples.values()))]
            + [report_row(f"relay.enc_p50_ms_{hops}_hops", round(p50[hops], 3), "ms",
                          samples=samples[hops]) for hops in p50])


def _chain_latencies(chain: Sequence[str], n: int) -> dict[int, list[float]]:
    """Wall ms of ``n`` ``enc_keys`` calls from the first node's SAE to the SAE of each
    other node of ``chain`` (in-process KMs, every key relayed), keyed by hop count."""
    saes = {f"sae-{node.lower()}": node for node in chain}
    chain_links = list(pairwise(chain))
    samples: dict[int, list[float]] = {hops: [] for hops in range(1, len(chain))}
    with LocalKmNetwork(_tmp(), list(chain), chain_links, saes,
                        config=KmConfig(relay_batch=1)) as net:
        for a, b in chain_links:
            net.feed(a, b, blocks=8, size=65536)
        for node, config in _chain_configs(chain).items():
            net.kms[node].apply_running_config(config)
        for _ in range(n // 10):   # interleaved: every hop count sees the same machine load
            for hops in samples:
                samples[hops] += _local_enc_latency(
                    net, f"sae-{chain[0].lower()}", f"sae-{chain[hops].lower()}", 10)
    return samples


def _slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs."""
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    return (sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys))
            / sum((x - mean_x) ** 2 for x in xs))


def bench_relay_rate(quick: bool) -> list[dict]:
    """End-to-end key rate over a 3-hop path (A–B–C–D) when the middle link's key supply is the
    bottleneck: delivered end-to-end key bits/s ÷ that link's key rate (target ≥ 0.9)."""
    saes = {"sae-a": "A", "sae-d": "D"}
    nodes, links = ["A", "B", "C", "D"], [("A", "B"), ("B", "C"), ("C", "D")]
    session, virt = str(uuid.uuid4()), str(uuid.uuid4())
    hops = {"A": (None, "B"), "B": ("A", "C"), "C": ("B", "D"), "D": ("C", None)}
    block_bytes, period = 1024, 0.25     # B–C delivers a 1 KiB block every 0.25 s
    duration = 6.0 if quick else 20.0
    with LocalKmNetwork(_tmp(), nodes, links, saes, config=KmConfig(relay_batch=32)) as net:
        for node, (prev, nxt) in hops.items():
            link = virtual_link(virt, session, prev, nxt)
            body = {"qkdn_id": node_qkdn_id(node), "qkd_links": {"qkd_link": [link]}}
            if node in ("A", "D"):
                body["qkd_applications"] = {"qkd_app": [{"app_id": session, "server_app_id": "sae-a",
                                                         "client_app_id": ["sae-d"]}]}
            net.kms[node].apply_running_config({"etsi-qkd-sdn-node:qkd_node": body})
        net.feed("A", "B", blocks=64, size=65536)     # plenty on the outer links
        net.feed("C", "D", blocks=64, size=65536)
        stop = threading.Event()
        fed = [0]

        def supply() -> None:                          # the bottleneck link's QKD modules
            while not stop.wait(period):
                net.feed("B", "C", blocks=1, size=block_bytes)
                fed[0] += 1

        feeder = threading.Thread(target=supply)
        s = _client(net, "sae-a")
        url = net.kms["A"].base_url + "/api/v1/keys/sae-d/enc_keys"
        delivered = 0
        t0 = time.perf_counter()
        feeder.start()
        while time.perf_counter() - t0 < duration:
            r = s.post(url, json={"number": 8}, timeout=30)
            if r.status_code == 200:
                delivered += len(r.json()["keys"]) * KEY_BITS
            else:
                time.sleep(0.02)
        stop.set()
        feeder.join()
        # relayed keys waiting ready at both ends count as delivered end-to-end key
        delivered += net.kms["A"].pool.ready_count("sae-a", "sae-d", KEY_BITS) * KEY_BITS
        produced = fed[0] * (block_bytes // 2) * 8   # B's sending half of every B–C block
        # key still waiting at B when the clock stops (less than one message: an edge effect
        # of a short run, bounded whatever the duration) is not a rate loss
        leftover = net.kms["B"].store_for_peer("C").available_outgoing() * 8
    ratio = delivered / (produced - leftover) if produced > leftover else 0.0
    return [_row("relay.e2e_rate_over_bottleneck", ratio, "ratio", ">= 0.9", ratio >= 0.9,
                 int(duration / period))]


def bench_token_bucket(quick: bool) -> list[dict]:
    """Accepted volume through a real KM vs rate·t + burst (|1 − accepted/bound|, %)."""
    saes = {"sae-a": "A", "sae-b": "B"}
    app = str(uuid.uuid4())
    rate_keys, burst_keys = 20, 10
    cfg = {"etsi-qkd-sdn-node:qkd_node": {"qkdn_id": node_qkdn_id("A"), "qkd_applications": {"qkd_app": [{
        "app_id": app, "server_app_id": "sae-a", "client_app_id": ["sae-b"], "remote_qkdn_id": node_qkdn_id("B"),
        "qkdn-key-manager:km_session": {"token_bucket": {"bucket_size": burst_keys * KEY_BITS,
                                                         "token_rate": rate_keys * KEY_BITS}}}]}}}
    duration = 8.0 if quick else 20.0
    with LocalKmNetwork(_tmp(), ["A", "B"], [("A", "B")], saes, config=KmConfig(relay_batch=1000)) as net:
        net.feed("A", "B", blocks=8, size=65536)
        s = _client(net, "sae-a")
        url = net.kms["A"].base_url + "/api/v1/keys/sae-b/enc_keys"
        # warm-up without a bucket: fills the pair's ready pool (key supply never waits below)
        s.post(url, json={"number": 1}, timeout=30).raise_for_status()
        net.kms["A"].apply_running_config(cfg)
        # four clients keep asking, so the bucket never sits full (no tokens wasted)
        counts = [[0, 0] for _ in range(4)]
        clients = [_client(net, "sae-a") for _ in counts]
        for c in clients:   # TLS handshakes before the clock starts
            c.get(net.kms["A"].base_url + "/api/v1/keys/sae-b/status", timeout=30).raise_for_status()
        t0 = time.perf_counter()

        def hammer(i: int) -> None:
            c = clients[i]
            while time.perf_counter() - t0 < duration:
                counts[i][0] += 1
                if c.post(url, json={"number": 1}, timeout=30).status_code == 200:
                    counts[i][1] += 1

        threads = [threading.Thread(target=hammer, args=(i,)) for i in range(len(counts))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
        attempts = sum(c[0] for c in counts)
        accepted = sum(c[1] for c in counts)
    bound = rate_keys * elapsed + burst_keys
    error_pct = abs(1 - accepted / bound) * 100
    return [_row("kms.token_bucket_accuracy", error_pct, "% from rate*t+burst", "<= 1",
                 error_pct <= 1 and accepted <= bound + 1e-9, attempts)]


def run(quick: bool = False) -> list[dict]:
    return (bench_etsi014(quick) + bench_relay_hop(quick) + bench_relay_chain(quick)
            + bench_relay_rate(quick) + bench_token_bucket(quick))


if __name__ == "__main__":
    import json
    import sys
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
