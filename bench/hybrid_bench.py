"""Hybrid QKD + post-quantum provisioning benchmarks (ADR 0009).

Rows ``hybrid.*``:

* ``hybrid.<mode>.<where>.keys_per_s`` and ``hybrid.<mode>.<where>.p50_ms`` for mode in
  qkd / hybrid / pqc and where in ``adjacent`` (A–B) / ``trusted_node`` (A–B–C): ETSI 014
  ``enc_keys`` of one 256-bit key, sequential, on real KMs (cheroot, mTLS, SQLite with
  synchronous=FULL) in one process (:class:`kms.local_network.LocalKmNetwork`); hybrid/pqc are
  forced by reporting the source KM's link down (what the twin's module does on a cut);
* ``hybrid.handshake_ms``: one ML-KEM-768 epoch handshake between two endpoint KMs;
* ``hybrid.cut_to_first_hybrid_key_s`` (target ≤ 1 s): on a running two-node network
  (``qkdn up``: separate node processes, controller, twin), a hybrid session requesting keys
  continuously; the link is cut through the twin's fault file and the row is the time from the
  cut taking effect in the twin to the first key marked ``hybrid`` (ready QKD keys relayed
  ahead are still delivered first, as they should be).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import requests
import yaml

from bench.report import row
from kms.key_manager import KmConfig
from kms.local_network import LocalKmNetwork, link_id, node_qkdn_id, virtual_link

SAES = {"sae-a": "A", "sae-b": "B", "sae-c": "C"}
SESSION_AB = "22222222-2222-4333-8444-5555555555ab"
SESSION_AC = "22222222-2222-4333-8444-5555555555ac"
VIRT = "88888888-2222-4333-8444-5555555555ac"
KM = "qkdn-key-manager"


def _app(session: str, node: str, peer: str | None, slave: str, policy: str,
         backing: str | None = None) -> dict:
    entry = {"app_id": session, "app_type": "etsi-qkd-node-types:CLIENT",
             "server_app_id": "sae-a", "client_app_id": [slave], "app_priority": 0,
             "local_qkdn_id": node_qkdn_id(node),
             f"{KM}:km_session": {"role": "source" if node == "A" else "destination",
                                  "idle_timeout": 600, "fallback_policy": policy}}
    if backing:
        entry["backing_qkdl_id"] = [backing]
    elif peer:
        entry["remote_qkdn_id"] = node_qkdn_id(peer)
    return entry


def _configure(net: LocalKmNetwork, policy: str) -> None:
    def virt(prev: str | None, nxt: str | None) -> dict:
        return virtual_link(VIRT, SESSION_AC, prev, nxt, ends=("A", "C"), bandwidth=10 ** 9)

    def node(name: str, apps: list, links: list) -> dict:
        return {"etsi-qkd-sdn-node:qkd_node": {"qkdn_id": node_qkdn_id(name),
                                               "qkd_applications": {"qkd_app": apps},
                                               "qkd_links": {"qkd_link": links}}}

    net.kms["A"].apply_running_config(node("A", [
        _app(SESSION_AB, "A", "B", "sae-b", policy),
        _app(SESSION_AC, "A", None, "sae-c", policy, VIRT)], [virt(None, "B")]))
    net.kms["B"].apply_running_config(node("B", [_app(SESSION_AB, "B", "A", "sae-b", policy)],
                                           [virt("A", "C")]))
    net.kms["C"].apply_running_config(node("C", [_app(SESSION_AC, "C", None, "sae-c", policy,
                                                      VIRT)], [virt("B", None)]))


def _client(net: LocalKmNetwork, sae: str) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.cert, s.verify = net.sae_cert(sae), net.ca
    return s


def _measure(net: LocalKmNetwork, slave: str, mode: str, n: int) -> tuple[float, list[float]]:
    """(keys/s, latencies ms) of ``n`` sequential one-key enc_keys, checking the mode."""
    s = _client(net, "sae-a")
    url = net.kms["A"].base_url + f"/api/v1/keys/{slave}/enc_keys"
    for _ in range(3):        # warm-up: connection, epoch handshake
        s.post(url, json={"number": 1}, timeout=30).raise_for_status()
    latencies = []
    started = time.perf_counter()
    for _ in range(n):
        t = time.perf_counter()
        r = s.post(url, json={"number": 1}, timeout=30)
        latencies.append((time.perf_counter() - t) * 1000)
        r.raise_for_status()
        got = r.json()["keys"][0]["key_extension"]["provenance"]
        if got != mode:
            raise AssertionError(f"expected {mode} keys, got {got}")
    return n / (time.perf_counter() - started), latencies


def _local_rows(quick: bool) -> list[dict]:
    n = 40 if quick else 200
    rows = []
    policies = {"qkd": "hybrid", "hybrid": "hybrid", "pqc": "pqc-fallback"}
    handshakes: list[float] = []
    for mode, policy in policies.items():
        tmp = Path(tempfile.mkdtemp(prefix="hybrid-bench-", dir=os.environ.get("QKDN_BENCH_DIR")))
        with LocalKmNetwork(tmp, ["A", "B", "C"], [("A", "B"), ("B", "C")], SAES,
                            config=KmConfig(require_controller=True)) as net:
            net.feed("A", "B", blocks=64, size=65536)
            net.feed("B", "C", blocks=64, size=65536)
            _configure(net, policy)
            if mode != "qkd":
                net.kms["A"].set_link_up(link_id("A", "B"), False)
            for where, slave in (("adjacent", "sae-b"), ("trusted_node", "sae-c")):
                rate, lat = _measure(net, slave, mode, n)
                rows.append(row(f"hybrid.{mode}.{where}.keys_per_s", round(rate, 1), "keys/s",
                                runs=n))
                rows.append(row(f"hybrid.{mode}.{where}.p50_ms",
                                round(statistics.median(lat), 2), "ms", samples=lat))
            if mode == "pqc":
                hybrid = net.kms["A"].hybrid
                for _ in range(5 if quick else 20):
                    t = time.perf_counter()
                    hybrid._handshake(SESSION_AB, "sae-a", "sae-b", "B")
                    handshakes.append((time.perf_counter() - t) * 1000)
    rows.append(row("hybrid.handshake_ms", round(statistics.median(handshakes), 2), "ms",
                    samples=handshakes))
    return rows


PAIR = {
    "name": "hybrid-bench",
    "nodes": [{"name": "a"}, {"name": "b"}],
    "links": [{"a": "a", "b": "b", "length_km": 10}],
    "slas": [{"name": "hybrid", "max_bps": 4000000, "min_bps": 100000, "fallback": "hybrid"}],
    "users": [{"name": "h-a", "sla": "hybrid"}, {"name": "h-b", "sla": "hybrid"}],
    "saes": [{"id": "sae-ha", "node": "a", "user": "h-a"},
             {"id": "sae-hb", "node": "b", "user": "h-b"}],
}


def _cut_to_first_hybrid_key() -> float:
    from qkd_twin.faults import FaultKind, append_fault
    from qkdn.bringup import bring_down, bring_up
    from qkdn.state_files import StateDir

    root = Path(tempfile.mkdtemp(prefix="hybrid-cut-", dir=os.environ.get("QKDN_BENCH_DIR")))
    (root / "pair.yaml").write_text(yaml.safe_dump(PAIR))
    state = StateDir(root / "state")
    endpoints = bring_up(root / "pair.yaml", state, timeout=120, controller=True)
    try:
        entry = endpoints["saes"]["sae-ha"]
        s = requests.Session()
        s.trust_env = False
        s.cert, s.verify = (entry["cert"], entry["key"]), endpoints["ca_cert"]
        url = endpoints["nodes"]["a"]["etsi014"] + "/sae-hb/enc_keys"
        deadline = time.monotonic() + 60
        while s.post(url, json={"number": 1}, timeout=30).status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError("the hybrid session was never admitted")
            time.sleep(0.2)
        first: list[float] = []
        stop = threading.Event()

        def request_continuously() -> None:
            while not stop.is_set():
                r = s.post(url, json={"number": 1}, timeout=30)
                if r.status_code == 200 and \
                        r.json()["keys"][0]["key_extension"]["provenance"] == "hybrid":
                    first.append(time.time())
                    return
                time.sleep(0.01)

        worker = threading.Thread(target=request_continuously, daemon=True)
        worker.start()
        time.sleep(1.0)
        record = append_fault(state.root, "a", "b", FaultKind.LINK_DOWN)
        worker.join(timeout=30)
        stop.set()
        if not first:
            raise RuntimeError("no hybrid key within 30 s of the cut")
        return first[0] - record.effective_time
    finally:
        bring_down(state)


def run(quick: bool = False) -> list[dict]:
    rows = _local_rows(quick)
    cut = _cut_to_first_hybrid_key()
    rows.append(row("hybrid.cut_to_first_hybrid_key_s", round(cut, 3), "s", target="<= 1",
                    meets=cut <= 1.0))
    return rows


if __name__ == "__main__":
    from bench.report import format_table
    print(format_table(run(quick=True)))
