"""Scale benchmark (opt-in: ``python -m bench.run --only scale``, or
``python -m bench.scale_bench --rows 10 --cols 10 --sessions 1000 --runs 3``).

Brings a grid topology up with :func:`qkdn.bringup.bring_up` — exactly ``qkdn up``: one
supervisor, one OS process per node (agent + KM + emulated QKD modules), the SDN controller —
then opens ``sessions`` ETSI 014 sessions between distinct random SAE pairs through the real
KMs and controller, from ``workers`` concurrent clients: each session is the master's first
``enc_keys`` (retried while the KM answers 503: the controller is admitting the session,
routing it and pushing its configuration to every KM on the path over NETCONF) until a key
comes back, then the slave's ``dec_keys`` of that key, compared byte for byte. Every session
stays open (idle timeout 600 s), so at the end all of them are active at once.

Rows (medians over ``runs`` bring-ups measured in one go; ``p50``/``p99`` over all samples):

* ``scale.up_s`` — ``qkdn up`` until every agent answers and the controller is connected;
* ``scale.node_rss_mib`` / ``scale.node_pss_mib`` — per node process (PSS counts pages shared
  with the supervisor and the other nodes proportionally: the memory a node really adds);
* ``scale.controller_rss_mib``, ``scale.supervisor_rss_mib``, ``scale.total_pss_mib``;
* ``scale.setup_ms`` — one session: first request to first key (p50/p99 over sessions);
* ``scale.sessions_per_s`` — sessions set up per second (all sessions / time to the last);
* ``scale.active_sessions`` — sessions the controller holds active at the end;
* ``scale.errors`` — sessions without a key in time, other HTTP errors, keys that differ.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from bench.report import percentile, row
from bench.scale_topology import grid_yaml

#: 503 retry back-off of a client waiting for its session: first wait, growth, longest wait
RETRY_S, RETRY_GROWTH, RETRY_MAX_S = 0.05, 1.5, 1.0


@dataclass
class ScaleResult:
    nodes: int
    sessions: int
    up_s: float
    node_rss_mib: list[float]
    node_pss_mib: list[float]
    controller_rss_mib: float
    supervisor_rss_mib: float
    total_pss_mib: float
    setup_ms: list[float]
    drive_s: float
    active_sessions: int
    errors: int
    error_samples: list[str] = field(default_factory=list)

    @property
    def sessions_per_s(self) -> float:
        return len(self.setup_ms) / self.drive_s if self.drive_s > 0 else 0.0


def process_memory_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of a live process in KiB."""
    rss = pss = 0
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pss = rss
    return rss, pss


def random_pairs(saes: list[str], count: int, seed: int) -> list[tuple[str, str]]:
    """``count`` distinct unordered SAE pairs, each with a random master (deterministic)."""
    rng = random.Random(seed)
    if count > len(saes) * (len(saes) - 1) // 2:
        raise ValueError("more sessions than SAE pairs")
    chosen: set[frozenset[str]] = set()
    out = []
    while len(out) < count:
        a, b = rng.sample(saes, 2)
        if frozenset((a, b)) in chosen:
            continue
        chosen.add(frozenset((a, b)))
        out.append((a, b))
    return out


def _client(endpoints: dict[str, Any], sae: str) -> requests.Session:
    entry = endpoints["saes"][sae]
    session = requests.Session()
    session.trust_env = False
    session.cert = (entry["cert"], entry["key"])
    session.verify = endpoints["ca_cert"]
    return session


def open_session(endpoints: dict[str, Any], master: str, slave: str, *,
                 deadline: float) -> tuple[float | None, str]:
    """One 014 session: enc_keys until a key (503 = being set up), then the slave's
    dec_keys. Returns (set-up seconds or None, error text)."""
    nodes = endpoints["nodes"]
    master_node = endpoints["saes"][master]["node"]
    slave_node = endpoints["saes"][slave]["node"]
    enc_url = f"{nodes[master_node]['etsi014']}/{slave}/enc_keys"
    dec_url = f"{nodes[slave_node]['etsi014']}/{master}/dec_keys"
    with _client(endpoints, master) as m, _client(endpoints, slave) as s:
        started = time.monotonic()
        wait = RETRY_S
        while True:
            try:
                r = m.post(enc_url, json={"number": 1, "size": 256}, timeout=60)
            except requests.RequestException as exc:
                return None, f"enc_keys {type(exc).__name__}"
            if r.status_code == 200:
                break
            if r.status_code != 503:
                return None, f"enc_keys {r.status_code}: {r.text[:120]}"
            if time.monotonic() > deadline:
                return None, f"no key before the deadline (last: {r.text[:120]})"
            time.sleep(wait)
            wait = min(RETRY_MAX_S, wait * RETRY_GROWTH)
        setup = time.monotonic() - started
        key = r.json()["keys"][0]
        try:
            d = s.post(dec_url, json={"key_IDs": [{"key_ID": key["key_ID"]}]}, timeout=60)
        except requests.RequestException as exc:
            return None, f"dec_keys {type(exc).__name__}"
        if d.status_code != 200:
            return None, f"dec_keys {d.status_code}: {d.text[:120]}"
        theirs = d.json()["keys"][0]
        if theirs["key_ID"] != key["key_ID"] or \
                base64.b64decode(theirs["key"]) != base64.b64decode(key["key"]):
            return None, "keys differ"
        return setup, ""


def active_sessions(state_root: Path, wait_s: float = 3.0) -> int:
    """Active sessions in the controller's table (written every tick)."""
    time.sleep(wait_s)
    try:
        table = json.loads((state_root / "controller" / "sessions.json").read_text())
    except (OSError, ValueError):
        return -1
    sessions = table.get("sessions", [])
    if isinstance(sessions, dict):
        sessions = list(sessions.values())
    return sum(1 for s in sessions if str(s.get("state", "")).lower() == "active")


def run_scale(rows: int, cols: int, sessions: int, *, workers: int = 32, seed: int = 1,
              up_timeout_s: float = 900.0, drive_timeout_s: float = 900.0,
              work_dir: Path | None = None) -> ScaleResult:
    """One bring-up of a ``rows × cols`` grid and ``sessions`` sessions; always torn down."""
    from qkdn.bringup import bring_down, bring_up
    from qkdn.state_files import StateDir, read_json

    base = Path(tempfile.mkdtemp(prefix="qkdn-scale-", dir=work_dir))
    topology = base / f"grid{rows}x{cols}.yaml"
    topology.write_text(grid_yaml(rows, cols))
    state = StateDir((base / "net").resolve())
    started = time.monotonic()
    try:
        endpoints = bring_up(topology, state, timeout=up_timeout_s)
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise
    try:
        up_s = time.monotonic() - started
        table = read_json(state.supervisor)
        node_rss, node_pss, total_pss, controller_rss = [], [], 0, 0.0
        for child in table["children"].values():
            rss, pss = process_memory_kib(child["pid"])
            total_pss += pss
            if child["kind"] == "node":
                node_rss.append(rss / 1024)
                node_pss.append(pss / 1024)
            elif child["kind"] == "controller":
                controller_rss = rss / 1024
        sup_rss, sup_pss = process_memory_kib(table["pid"])
        total_pss += sup_pss
        pairs = random_pairs(sorted(endpoints["saes"]), sessions, seed)
        deadline = time.monotonic() + drive_timeout_s
        setups: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()

        def one(pair: tuple[str, str]) -> None:
            setup, error = open_session(endpoints, *pair, deadline=deadline)
            with lock:
                if setup is None:
                    errors.append(f"{pair[0]}->{pair[1]}: {error}")
                else:
                    setups.append(setup * 1000)

        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(one, pairs))
        drive_s = time.monotonic() - t0
        active = active_sessions(state.root)
        return ScaleResult(len(endpoints["nodes"]), sessions, up_s, node_rss, node_pss,
                           controller_rss, sup_rss / 1024, total_pss / 1024, setups, drive_s,
                           active, len(errors), errors[:10])
    finally:
        bring_down(state)
        shutil.rmtree(base, ignore_errors=True)


def rows_of(results: list[ScaleResult]) -> list[dict]:
    """Report rows: medians over runs; p50/p99 over all samples."""
    def med(values: list[float]) -> float:
        return round(statistics.median(values), 3)

    nodes, sessions = results[0].nodes, results[0].sessions
    setups = [s for r in results for s in r.setup_ms] or [0.0]
    errors = [r.errors for r in results]
    label = f"{nodes} nodes, {sessions} sessions"
    return [
        row("scale.nodes", nodes, "count", runs=len(results)),
        row("scale.up_s", med([r.up_s for r in results]), "s", samples=[r.up_s for r in results]),
        row("scale.node_rss_mib", med([statistics.median(r.node_rss_mib) for r in results]),
            "MiB", samples=[v for r in results for v in r.node_rss_mib]),
        row("scale.node_pss_mib", med([statistics.median(r.node_pss_mib) for r in results]),
            "MiB", samples=[v for r in results for v in r.node_pss_mib]),
        row("scale.controller_rss_mib", med([r.controller_rss_mib for r in results]), "MiB",
            samples=[r.controller_rss_mib for r in results]),
        row("scale.supervisor_rss_mib", med([r.supervisor_rss_mib for r in results]), "MiB",
            samples=[r.supervisor_rss_mib for r in results]),
        row("scale.total_pss_mib", med([r.total_pss_mib for r in results]), "MiB",
            samples=[r.total_pss_mib for r in results]),
        {**row("scale.setup_ms", round(statistics.median(setups), 1), "ms", samples=setups),
         "p99": round(percentile(setups, 99), 1)},
        row("scale.sessions_per_s", med([r.sessions_per_s for r in results]), "1/s",
            samples=[r.sessions_per_s for r in results]),
        row("scale.active_sessions", min(r.active_sessions for r in results), "count",
            target=f">= {sessions}", meets=all(r.active_sessions >= sessions for r in results),
            runs=len(results)),
        row("scale.errors", max(errors), "count", target=f"0 ({label})",
            meets=max(errors) == 0, samples=errors),
    ]


def run(quick: bool = False) -> list[dict]:
    """``bench.run`` entry (opt-in: ``--only scale``). Full: 10 × 10 grid, 1,000 sessions,
    ``QKDN_SCALE_RUNS`` (3) runs; quick: 4 × 5 grid, 100 sessions, one run."""
    if quick:
        rows, cols, sessions, runs = 4, 5, 100, 1
    else:
        rows, cols, sessions = 10, 10, 1000
        runs = int(os.environ.get("QKDN_SCALE_RUNS", "3"))
    results = []
    for i in range(runs):
        result = run_scale(rows, cols, sessions, seed=1 + i)
        print(f"  scale run {i + 1}/{runs}: up {result.up_s:.1f} s, "
              f"{result.sessions_per_s:.1f} sessions/s, {result.errors} errors "
              f"{result.error_samples[:3]}", flush=True)
        results.append(result)
    return rows_of(results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale_bench")
    parser.add_argument("--rows", type=int, default=10)
    parser.add_argument("--cols", type=int, default=10)
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--workers", type=int, default=32)
    args = parser.parse_args(argv)
    results = []
    for i in range(args.runs):
        result = run_scale(args.rows, args.cols, args.sessions, workers=args.workers, seed=1 + i)
        print(json.dumps({"run": i + 1, "up_s": round(result.up_s, 2),
                          "sessions_per_s": round(result.sessions_per_s, 2),
                          "errors": result.errors, "error_samples": result.error_samples,
                          "active": result.active_sessions}), flush=True)
        results.append(result)
    print(json.dumps(rows_of(results), indent=2))
    return 0 if all(r.errors == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
