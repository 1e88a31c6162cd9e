"""Scale benchmark (opt-in: ``python -m bench.run --only scale``, or
``python -m bench.scale_bench --rows 10 --cols 10 --sessions 1000 --runs 3``).

Brings a grid topology up with :func:`qkdn.bringup.bring_up` — exactly ``qkdn up``: one
supervisor, one OS process per node (agent + KM + emulated QKD modules), the SDN controller —
then opens ``sessions`` ETSI 014 sessions between distinct random SAE pairs through the real
KMs and controller, from ``workers`` concurrent clients: each session is the master's first
``enc_keys`` (retried while the KM answers 503: the controller is admitting the session,
routing it and pushing its configuration to every KM on the path over NETCONF) until a key
comes back, then the slave's ``dec_keys`` of that key, compared byte for byte. Every session
stays open (the SLA's idle timeout is the drive timeout plus ``IDLE_MARGIN_S``, at least
600 s), so at the end all of them are active at once.

Rows (medians over ``runs`` bring-ups measured in one go; ``p50``/``p99`` over all samples):

* ``scale.up_s`` — ``qkdn up`` until every agent answers and the controller is connected;
* ``scale.node_rss_mib`` / ``scale.node_pss_mib`` — per node process (PSS counts pages shared
  with the supervisor and the other nodes proportionally: the memory a node really adds);
* ``scale.controller_rss_mib``, ``scale.supervisor_rss_mib``, ``scale.total_pss_mib``;
* ``scale.setup_ms`` — one session: first request to first key (p50/p99 over sessions);
* ``scale.sessions_per_s`` — sessions set up per second (all sessions / time to the last);
* ``scale.active_sessions`` — sessions the controller holds active at the end;
* ``scale.errors`` — sessions without a key in time, other HTTP errors, keys that differ,
  sessions not started before the deadline (``error_kinds`` counts them by kind);
* ``scale.node_idle_cpu_pct`` — CPU of a node process (utime+stime, % of one core, mean over
  the nodes) in a ``IDLE_WINDOW_S`` window after ``up`` and before the sessions.

Progress goes to stderr (``[scale +12.3s] ...`` lines: phase, sessions done / failed / in
flight, load average). A run never hangs: the bring-up has ``up_timeout_s``, the sessions
``drive_timeout_s``; at the deadline the run stops starting sessions, the ones in flight give
up at their next retry, and the result carries what was measured so far (``complete`` False,
``phase`` where it stopped), then the network is torn down.
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

from bench.process_cpu import process_cpu_s
from bench.report import percentile, row
from bench.scale_topology import grid_yaml

#: 503 retry back-off of a client waiting for its session: first wait, growth, longest wait
RETRY_S, RETRY_GROWTH, RETRY_MAX_S = 0.05, 1.5, 1.0
#: seconds of the idle-CPU sample between ``up`` and the first session
IDLE_WINDOW_S = 10.0
#: seconds between two progress lines while sessions run
PROGRESS_EVERY_S = 10.0
#: the sessions' idle timeout exceeds the drive timeout by this much (none expires during a run)
IDLE_MARGIN_S = 300
#: HTTP timeout of one ETSI 014 request
REQUEST_TIMEOUT_S = 60.0


class Progress:
    """Progress lines on stderr, stamped with the seconds since the run started."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.started = time.monotonic()

    def __call__(self, message: str) -> None:
        if self.enabled:
            load = "/".join(f"{v:.1f}" for v in os.getloadavg())
            print(f"[scale +{time.monotonic() - self.started:6.1f}s load {load}] {message}",
                  file=sys.stderr, flush=True)


def error_kind(text: str) -> str:
    """The kind of a session error (its text up to the first colon or digit detail).

    >>> error_kind("enc_keys 400: bad request"), error_kind("keys differ")
    ('enc_keys 400', 'keys differ')
    """
    return text.split(":", 1)[0].strip()


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
    error_kinds: dict[str, int] = field(default_factory=dict)
    node_idle_cpu_pct: float = 0.0
    controller_cpu_s: float = 0.0    #: controller CPU during the sessions
    complete: bool = True            #: False: stopped by a deadline (partial figures)
    phase: str = "done"              #: where an incomplete run stopped
    restarts: dict[str, int] = field(default_factory=dict)  #: processes restarted in the run
    #: CPU seconds in the session phase per process class (controller, nodes, orchestrator,
    #: supervisor, clients = this process's ETSI 014 client threads)
    phase_cpu_s: dict[str, float] = field(default_factory=dict)
    #: CPU seconds in the session phase of the node processes' threads, summed over the
    #: nodes by thread group (qkd-module, km-https, agent, ...: ``bench.scale_idle``)
    node_thread_cpu_s: dict[str, float] = field(default_factory=dict)
    link_ends: int = 0               #: QKD link ends of the grid (two per link)

    @property
    def module_ms_per_link_end_s(self) -> float:
        """CPU of the emulated QKD modules in the session phase, ms per link end and second
        (thread groups ``qkd-module`` — a thread per link end, before session 6 — and
        ``qkd-modules``, one per node)."""
        cpu = sum(v for k, v in self.node_thread_cpu_s.items() if k.startswith("qkd-module"))
        if not self.link_ends or self.drive_s <= 0:
            return 0.0
        return 1000.0 * cpu / self.link_ends / self.drive_s

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
                r = m.post(enc_url, json={"number": 1, "size": 256},
                           timeout=REQUEST_TIMEOUT_S)
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
            d = s.post(dec_url, json={"key_IDs": [{"key_ID": key["key_ID"]}]},
                       timeout=REQUEST_TIMEOUT_S)
        except requests.RequestException as exc:
            return None, f"dec_keys {type(exc).__name__}"
        if d.status_code != 200:
            return None, f"dec_keys {d.status_code}: {d.text[:120]}"
        theirs = d.json()["keys"][0]
        if theirs["key_ID"] != key["key_ID"] or \
                base64.b64decode(theirs["key"]) != base64.b64decode(key["key"]):
            return None, "keys differ"
        return setup, ""


def session_states(state_root: Path) -> dict[str, int]:
    """Sessions per state (and per reason of the terminated ones) in the controller's table."""
    try:
        table = json.loads((state_root / "controller" / "sessions.json").read_text())
    except (OSError, ValueError):
        return {}
    sessions = table.get("sessions", [])
    if isinstance(sessions, dict):
        sessions = list(sessions.values())
    counts: dict[str, int] = {}
    for session in sessions:
        state = str(session.get("state", "")).lower()
        if session.get("reason") and state != "active":
            state += f" ({session['reason']}: {str(session.get('detail', ''))[:60]})"
        counts[state] = counts.get(state, 0) + 1
    return counts


def agent_polls(state_root: Path) -> dict[str, float]:
    """The controller's periodic gets at the end (``sessions.json`` ``agents``): reply bytes
    and poll interval, median and max over the agents; {} when not recorded."""
    try:
        agents = json.loads((state_root / "controller" / "sessions.json").read_text())["agents"]
        sizes = [int(a["get_bytes"]) for a in agents.values()]
        polls = [float(a["poll_s"]) for a in agents.values()]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    if not sizes:
        return {}
    return {"get_bytes_median": statistics.median(sizes), "get_bytes_max": max(sizes),
            "poll_s_median": statistics.median(polls), "poll_s_max": max(polls)}


def active_sessions(state_root: Path, wait_s: float = 3.0) -> int:
    """Active sessions in the controller's table (written every tick)."""
    time.sleep(wait_s)
    states = session_states(state_root)
    return states.get("active", 0) if states else -1


def ready_times(state_root: Path, started_at: float) -> tuple[float, float]:
    """Seconds from ``started_at`` (Unix time) to the last node's ``ready.json`` and to the
    controller's (written once it is connected to every agent); -1 when missing."""
    def age(path: Path) -> float:
        try:
            return path.stat().st_mtime - started_at
        except OSError:
            return -1.0
    nodes = [age(p) for p in (state_root / "nodes").glob("*/ready.json")]
    return (max(nodes) if nodes else -1.0), age(state_root / "controller" / "ready.json")


def class_cpu_s(supervisor_pid: int, children: dict[str, Any]) -> dict[str, float]:
    """CPU seconds used so far per process class: every supervised child summed by its
    ``kind`` (node, controller, orchestrator), the supervisor, and this process (the
    benchmark's clients)."""
    totals: dict[str, float] = {"supervisor": process_cpu_s(supervisor_pid),
                                "clients": process_cpu_s(os.getpid())}
    for child in children.values():
        kind = "nodes" if child["kind"] == "node" else child["kind"]
        totals[kind] = totals.get(kind, 0.0) + process_cpu_s(child["pid"])
    return totals


def node_thread_ticks(state_root: Path, children: dict[str, Any]) -> dict[str, dict[int, int]]:
    """{node name: {tid: utime+stime}} of every node process's threads."""
    from bench.scale_idle import thread_ticks
    return {name: thread_ticks(child["pid"]) for name, child in children.items()
            if child["kind"] == "node"}


def node_thread_cpu_s(state_root: Path, children: dict[str, Any],
                      before: dict[str, dict[int, int]],
                      after: dict[str, dict[int, int]]) -> dict[str, float]:
    """CPU seconds between two :func:`node_thread_ticks` snapshots, summed over the nodes
    per thread group (names from each node's ``threads.json``; ``?`` = a thread started
    after it was written)."""
    from bench.process_cpu import CLOCK_TICKS
    from bench.scale_idle import thread_group
    from qkdn.state_files import read_json
    groups: dict[str, float] = {}
    for name, threads in after.items():
        try:
            names = read_json(state_root / "nodes" / name / "threads.json")
        except (OSError, ValueError):
            names = {}
        for tid, ticks in threads.items():
            label = ("main" if tid == children[name]["pid"]
                     else thread_group(names.get(str(tid), "?")))
            delta = (ticks - before.get(name, {}).get(tid, 0)) / CLOCK_TICKS
            groups[label] = groups.get(label, 0.0) + delta
    return {k: round(v, 2) for k, v in sorted(groups.items(), key=lambda kv: -kv[1])}


def idle_cpu_pct(pids: list[int], window_s: float) -> float:
    """Mean CPU (% of one core) of ``pids`` over ``window_s`` seconds."""
    if not pids or window_s <= 0:
        return 0.0
    before = [process_cpu_s(pid) for pid in pids]
    started = time.monotonic()
    time.sleep(window_s)
    elapsed = time.monotonic() - started
    after = [process_cpu_s(pid) for pid in pids]
    return 100.0 * statistics.fmean(a - b for a, b in zip(after, before)) / elapsed


def run_scale(rows: int, cols: int, sessions: int, *, workers: int = 32, seed: int = 1,
              up_timeout_s: float = 900.0, drive_timeout_s: float = 900.0,
              work_dir: Path | None = None, progress: Progress | None = None,
              idle_window_s: float = IDLE_WINDOW_S) -> ScaleResult:
    """One bring-up of a ``rows × cols`` grid and ``sessions`` sessions; always torn down.
    A deadline ends the run with the figures measured so far (``complete`` False)."""
    from qkdn.bringup import BringUpError, bring_down, bring_up
    from qkdn.node_runtime import THREAD_NAMES_ENV
    from qkdn.state_files import StateDir, read_json

    os.environ.setdefault(THREAD_NAMES_ENV, "1")  # node threads named in threads.json

    say = progress or Progress(enabled=False)
    keep_logs: dict[str, Any] | None = None
    base = Path(tempfile.mkdtemp(prefix="qkdn-scale-", dir=work_dir))
    topology = base / f"grid{rows}x{cols}.yaml"
    idle_timeout_s = max(600, int(drive_timeout_s) + IDLE_MARGIN_S)
    topology.write_text(grid_yaml(rows, cols, idle_timeout_s=idle_timeout_s))
    state = StateDir((base / "net").resolve())
    started = time.monotonic()
    say(f"bringing up a {rows} x {cols} grid ({rows * cols} nodes), timeout {up_timeout_s:.0f} s")
    try:
        endpoints = bring_up(topology, state, timeout=up_timeout_s)
    except BringUpError as exc:
        ready = sum(1 for p in (state.root / "nodes").glob("*/ready.json"))
        say(f"bring-up failed after {time.monotonic() - started:.0f} s: {ready} of "
            f"{rows * cols} nodes ready ({str(exc)[:200]})")
        shutil.rmtree(base, ignore_errors=True)
        return ScaleResult(rows * cols, sessions, time.monotonic() - started, [], [], 0.0, 0.0,
                           0.0, [], 0.0, 0, sessions, [f"bring-up: {str(exc)[:200]}"],
                           {"bring-up failed": sessions}, complete=False, phase="up")
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise
    keep_logs = {"keep": False}
    try:
        up_s = time.monotonic() - started
        agents_s, controller_s = ready_times(state.root, time.time() - up_s)
        say(f"up in {up_s:.1f} s (last agent ready after {agents_s:.1f} s, controller connected "
            f"to every agent after {controller_s:.1f} s)")
        table = read_json(state.supervisor)
        node_rss, node_pss, node_pids, total_pss, controller_rss = [], [], [], 0, 0.0
        controller_pid = 0
        for child in table["children"].values():
            rss, pss = process_memory_kib(child["pid"])
            total_pss += pss
            if child["kind"] == "node":
                node_rss.append(rss / 1024)
                node_pss.append(pss / 1024)
                node_pids.append(child["pid"])
            elif child["kind"] == "controller":
                controller_rss = rss / 1024
                controller_pid = child["pid"]
        sup_rss, sup_pss = process_memory_kib(table["pid"])
        total_pss += sup_pss
        say(f"memory: node PSS median {statistics.median(node_pss):.1f} MiB, controller RSS "
            f"{controller_rss:.0f} MiB, total PSS {total_pss / 1024:.0f} MiB")
        node_idle = idle_cpu_pct(node_pids, idle_window_s)
        say(f"idle CPU per node: {node_idle:.2f} % of a core (mean over {len(node_pids)}, "
            f"{idle_window_s:.0f} s)")
        pairs = random_pairs(sorted(endpoints["saes"]), sessions, seed)
        deadline = time.monotonic() + drive_timeout_s
        setups: list[float] = []
        errors: list[str] = []
        in_flight = [0]
        lock = threading.Lock()

        def one(pair: tuple[str, str]) -> None:
            if time.monotonic() > deadline:
                with lock:
                    errors.append(f"{pair[0]}->{pair[1]}: not started before the deadline")
                return
            with lock:
                in_flight[0] += 1
            try:
                setup, error = open_session(endpoints, *pair, deadline=deadline)
            except Exception as exc:  # noqa: BLE001 - a bench bug must count, not hang
                setup, error = None, f"client {type(exc).__name__}: {exc}"
            with lock:
                in_flight[0] -= 1
                if setup is None:
                    errors.append(f"{pair[0]}->{pair[1]}: {error}")
                else:
                    setups.append(setup * 1000)

        say(f"opening {sessions} sessions from {workers} clients, deadline "
            f"{drive_timeout_s:.0f} s")
        controller_cpu_before = process_cpu_s(controller_pid) if controller_pid else 0.0
        classes_before = class_cpu_s(table["pid"], table["children"])
        threads_before = node_thread_ticks(state.root, table["children"])
        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(one, pair) for pair in pairs]
            next_report = t0 + PROGRESS_EVERY_S
            while not all(f.done() for f in futures):
                time.sleep(0.5)
                if time.monotonic() >= next_report:
                    next_report += PROGRESS_EVERY_S
                    with lock:
                        done, failed, flying = len(setups), len(errors), in_flight[0]
                    say(f"sessions: {done} with key, {failed} failed, {flying} in flight, "
                        f"{sessions - done - failed - flying} waiting")
        drive_s = time.monotonic() - t0
        classes_after = class_cpu_s(table["pid"], table["children"])
        node_threads = node_thread_cpu_s(state.root, table["children"], threads_before,
                                         node_thread_ticks(state.root, table["children"]))
        say(f"node CPU by thread group in the session phase (s, all nodes): {node_threads}")
        phase_cpu = {kind: round(classes_after[kind] - classes_before.get(kind, 0.0), 2)
                     for kind in classes_after}
        controller_now = next((c["pid"] for c in read_json(state.supervisor)["children"].values()
                               if c["kind"] == "controller"), 0)
        # -1: the controller was restarted during the sessions (its CPU is not comparable)
        controller_cpu = (process_cpu_s(controller_pid) - controller_cpu_before
                          if controller_pid and controller_now == controller_pid else -1.0)
        complete = drive_s <= drive_timeout_s
        say(f"sessions done in {drive_s:.1f} s: {len(setups)} with key, {len(errors)} errors; "
            f"controller CPU {controller_cpu:.1f} s; CPU by process class {phase_cpu}")
        active = active_sessions(state.root)
        restarts = {name: int(child.get("restarts", 0))
                    for name, child in read_json(state.supervisor)["children"].items()
                    if int(child.get("restarts", 0))}
        if restarts:
            say(f"processes restarted by the supervisor during the run: {restarts}")
        states = session_states(state.root)
        agents = agent_polls(state.root)
        if agents:
            say(f"periodic gets at the end: reply bytes median {agents['get_bytes_median']}, "
                f"max {agents['get_bytes_max']}; poll interval median {agents['poll_s_median']} s")
        if set(states) - {"active"}:
            say(f"controller sessions by state: {states}")
        kinds: dict[str, int] = {}
        for text in errors:
            kind = error_kind(text.split(": ", 1)[1] if ": " in text else text)
            kinds[kind] = kinds.get(kind, 0) + 1
        say(f"active sessions in the controller: {active}; errors by kind: {kinds or 0}")
        keep_logs["keep"] = bool(errors or restarts or active != sessions or not complete)
        return ScaleResult(len(endpoints["nodes"]), sessions, up_s, node_rss, node_pss,
                           controller_rss, sup_rss / 1024, total_pss / 1024, setups, drive_s,
                           active, len(errors), errors[:10], kinds, node_idle, controller_cpu,
                           complete=complete, phase="done" if complete else "sessions",
                           restarts=restarts, phase_cpu_s=phase_cpu,
                           node_thread_cpu_s=node_threads,
                           link_ends=2 * (rows * (cols - 1) + cols * (rows - 1)))
    finally:
        say("tearing down")
        bring_down(state)
        if keep_logs is not None and keep_logs.get("keep"):
            target = Path(tempfile.mkdtemp(prefix="qkdn-scale-logs-", dir=work_dir))
            for log_file in [state.supervisor_log, *state.root.glob("controller/*.log"),
                             *state.root.glob("controller/sessions.json")]:
                if log_file.exists():
                    shutil.copy(log_file, target / log_file.name)
            keep_logs["path"] = str(target)
            say(f"logs of this run kept in {target}")
        shutil.rmtree(base, ignore_errors=True)


def rows_of(results: list[ScaleResult]) -> list[dict]:
    """Report rows: medians over runs; p50/p99 over all samples. A run stopped by a deadline
    still reports what it measured (``scale.complete`` says so)."""
    def med(values: list[float]) -> float:
        return round(statistics.median(values), 3) if values else 0.0

    def median_of(values: list[float]) -> list[float]:
        return [statistics.median(values)] if values else []

    nodes, sessions = results[0].nodes, results[0].sessions
    setups = [s for r in results for s in r.setup_ms] or [0.0]
    errors = [r.errors for r in results]
    label = f"{nodes} nodes, {sessions} sessions"
    kinds: dict[str, int] = {}
    for result in results:
        for kind, count in result.error_kinds.items():
            kinds[kind] = kinds.get(kind, 0) + count
    return [
        row("scale.nodes", nodes, "count", runs=len(results)),
        row("scale.up_s", med([r.up_s for r in results]), "s", samples=[r.up_s for r in results]),
        row("scale.node_rss_mib", med([m for r in results for m in median_of(r.node_rss_mib)]),
            "MiB", samples=[v for r in results for v in r.node_rss_mib]),
        row("scale.node_pss_mib", med([m for r in results for m in median_of(r.node_pss_mib)]),
            "MiB", samples=[v for r in results for v in r.node_pss_mib]),
        row("scale.node_idle_cpu_pct", med([r.node_idle_cpu_pct for r in results]),
            "% of a core", target="<= 0.3", samples=[r.node_idle_cpu_pct for r in results],
            meets=all(r.node_idle_cpu_pct <= 0.3 for r in results)),
        row("scale.controller_rss_mib", med([r.controller_rss_mib for r in results]), "MiB",
            samples=[r.controller_rss_mib for r in results]),
        row("scale.controller_cpu_s", med([r.controller_cpu_s for r in results]), "s",
            samples=[r.controller_cpu_s for r in results]),
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
        {**row("scale.errors", max(errors), "count", target=f"0 ({label})",
               meets=max(errors) == 0, samples=errors), "kinds": kinds},
        {**row("scale.complete", sum(r.complete for r in results), "runs",
               target=f"{len(results)} (no deadline hit)",
               meets=all(r.complete for r in results), runs=len(results)),
         "phases": [r.phase for r in results]},
    ]


def summary(run_number: int, result: ScaleResult) -> dict[str, Any]:
    """One run's figures as a JSON-able mapping (printed after each run)."""
    setups = result.setup_ms or [0.0]
    return {"run": run_number, "complete": result.complete, "phase": result.phase,
            "nodes": result.nodes, "up_s": round(result.up_s, 2),
            "node_idle_cpu_pct": round(result.node_idle_cpu_pct, 3),
            "node_pss_mib": round(statistics.median(result.node_pss_mib), 1)
            if result.node_pss_mib else None,
            "controller_rss_mib": round(result.controller_rss_mib, 1),
            "controller_cpu_s": round(result.controller_cpu_s, 1),
            "sessions_with_key": len(result.setup_ms),
            "sessions_per_s": round(result.sessions_per_s, 2),
            "setup_ms_p50": round(statistics.median(setups), 1),
            "setup_ms_p99": round(percentile(setups, 99), 1),
            "active": result.active_sessions, "errors": result.errors,
            "error_kinds": result.error_kinds, "error_samples": result.error_samples,
            "restarts": result.restarts,
            "phase_cpu_s": result.phase_cpu_s,
            "node_thread_cpu_s": result.node_thread_cpu_s,
            "module_ms_per_link_end_s": round(result.module_ms_per_link_end_s, 3),
            "phase_cpu_ms_per_session": {
                kind: round(1000 * cpu / max(1, len(result.setup_ms)), 1)
                for kind, cpu in result.phase_cpu_s.items()}}


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
        result = run_scale(rows, cols, sessions, seed=1 + i, progress=Progress())
        print(f"  scale run {i + 1}/{runs}: " + json.dumps(summary(i + 1, result)), flush=True)
        results.append(result)
    return rows_of(results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale_bench")
    parser.add_argument("--rows", type=int, default=10)
    parser.add_argument("--cols", type=int, default=10)
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--up-timeout", type=float, default=900.0,
                        help="seconds for qkdn up (every agent and the controller)")
    parser.add_argument("--drive-timeout", type=float, default=900.0,
                        help="seconds for all sessions; then partial figures are reported")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    results = []
    for i in range(args.runs):
        result = run_scale(args.rows, args.cols, args.sessions, workers=args.workers, seed=1 + i,
                           up_timeout_s=args.up_timeout, drive_timeout_s=args.drive_timeout,
                           progress=Progress(enabled=not args.quiet))
        print(json.dumps(summary(i + 1, result)), flush=True)
        results.append(result)
    print(json.dumps(rows_of(results), indent=2))
    return 0 if all(r.errors == 0 and r.complete for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
