"""Load on the key managers (reliability items 6, 7, 8): an open-loop ETSI 014 load generator,
a closed-loop saturation probe, KM processes whose memory can be sampled, and the running
configuration of adjacent sessions with token buckets and idle timers.

    with ServedKms(workdir, pairs=8, blocks=512) as kms:
        result = run_open_loop(kms.pair_clients(), rate=200, duration=300)
        result["errors"], result["p99_ms"], kms.rss_kib("A")
"""

from __future__ import annotations

import base64
import http.client
import json
import math
import os
import ssl
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from bench.process_cpu import process_cpu_s
from kms.local_network import link_id, node_qkdn_id
from kms.pki import issue_network_pki
from kms.process_network import free_port, serve_spec

from ..integration.km_serve import ROOT, launch_km, stop_all, wait_ready


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) by the nearest-rank method."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def pair_names(pairs: int) -> dict[str, str]:
    """SAEs ``sae-a<i>`` on A and ``sae-b<i>`` on B."""
    saes = {}
    for i in range(pairs):
        saes[f"sae-a{i}"] = "A"
        saes[f"sae-b{i}"] = "B"
    return saes


def adjacent_session_config(node: str, sessions: Sequence[dict[str, Any]]) -> dict:
    """Running configuration of ``node`` (A or B) with one qkd_app per session on the direct
    A–B link; each session dict: app_id, master, slave and optional token_rate, bucket_size
    (bits, bit/s) and idle_timeout (s)."""
    peer = "B" if node == "A" else "A"
    apps = []
    for s in sessions:
        km_session: dict[str, Any] = {"role": "source" if node == "A" else "destination"}
        if s.get("token_rate"):
            km_session["token_bucket"] = {"token_rate": s["token_rate"],
                                          "bucket_size": s.get("bucket_size", s["token_rate"])}
        if s.get("idle_timeout"):
            km_session["idle_timeout"] = s["idle_timeout"]
        apps.append({"app_id": s["app_id"], "server_app_id": s["master"],
                     "client_app_id": [s["slave"]], "backing_qkdl_id": [link_id("A", "B")],
                     "remote_qkdn_id": node_qkdn_id(peer),
                     "qkdn-key-manager:km_session": km_session})
    return {"etsi-qkd-sdn-node:qkd_node": {
        "qkdn_id": node_qkdn_id(node),
        "qkd_applications": {"qkd_app": apps},
        "qkd_links": {"qkd_link": [{"qkdl_id": link_id("A", "B"),
                                    "qkdl_type": "etsi-qkd-node-types:PHYS",
                                    "qkdl_remote": {"qkdn_id": node_qkdn_id(peer)}}]}}}


class LightResponse:
    """The parts of a ``requests.Response`` the load clients read."""

    def __init__(self, status_code: int, content: bytes) -> None:
        self.status_code = status_code
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


class LightSession:
    """``post(url, json=...)`` like a ``requests.Session``, over keep-alive ``http.client``
    connections pooled per host: about a third of the client CPU per call of ``requests``
    (which cost the load generator ≈ 7 ms of CPU per key request at load 35, more than the
    KMs; 200 requests/s then needed more than the machine's two cores for the clients alone).
    Transport failures raise ``requests.ConnectionError``, as ``requests`` does. A connection
    idle for :data:`IDLE_REUSE_S` or longer is closed instead of reused (the KM closes its
    idle connections after 10 s), and a request that failed on a reused connection is sent
    again on a fresh one."""

    #: longest idle time after which a pooled connection is still reused (the KM's 10 s idle
    #: limit, less the time a request takes to reach it)
    IDLE_REUSE_S = 8.0

    def __init__(self, ca: str, cert: str, key: str) -> None:
        self._context = ssl.create_default_context(cafile=ca)
        self._context.load_cert_chain(cert, key)
        #: per host: (connection, monotonic time it went idle), the most recent last
        self._idle: dict[tuple[str, int], list[tuple[http.client.HTTPSConnection, float]]] = {}
        self._lock = threading.Lock()

    def _pooled(self, where: tuple[str, int]) -> http.client.HTTPSConnection | None:
        """The most recently used idle connection to ``where`` still fit for reuse; the stale
        ones (idle for :data:`IDLE_REUSE_S` or more) are closed."""
        now = time.monotonic()
        with self._lock:
            idle = self._idle.get(where, [])
            conn = None
            if idle and now - idle[-1][1] < self.IDLE_REUSE_S:
                conn = idle.pop()[0]
            stale = [c for c, since in idle if now - since >= self.IDLE_REUSE_S]
            idle[:] = [(c, since) for c, since in idle if now - since < self.IDLE_REUSE_S]
        for c in stale:
            c.close()
        return conn

    def post(self, url: str, *, json: Any = None, timeout: float = 30) -> LightResponse:
        parts = urlsplit(url)
        where = (parts.hostname or "127.0.0.1", parts.port or 443)
        body = _json_dumps(json).encode()
        for attempt in range(2):
            conn = self._pooled(where) if attempt == 0 else None
            reused = conn is not None
            if conn is None:
                conn = http.client.HTTPSConnection(where[0], where[1], context=self._context,
                                                   timeout=timeout)
            try:
                conn.request("POST", parts.path + (f"?{parts.query}" if parts.query else ""),
                             body, {"Content-Type": "application/json"})
                answer = conn.getresponse()
                data = answer.read()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                if reused and attempt == 0 and isinstance(
                        exc, (http.client.RemoteDisconnected, BrokenPipeError,
                              ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError)):
                    # a keep-alive connection the server had closed (idle for its 10 s; the
                    # TLS EOF came as a transport error, 3-7 per 1,800 requests): a fresh one
                    continue
                raise requests.ConnectionError(f"{type(exc).__name__}: {exc}") from None
            if answer.will_close:
                conn.close()
            else:
                with self._lock:
                    self._idle.setdefault(where, []).append((conn, time.monotonic()))
            return LightResponse(answer.status, data)
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            conns = [c for idle in self._idle.values() for c, _ in idle]
            self._idle.clear()
        for conn in conns:
            conn.close()


def _json_dumps(value: Any) -> str:
    return json.dumps(value)


def sae_session(ca: str, cert: str, key: str, pool: int = 4) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.verify, session.cert = ca, (cert, key)
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool)
    session.mount("https://", adapter)
    return session


@dataclass
class PairClient:
    """One SAE pair: the master's session at A, the slave's at B."""

    master: str
    slave: str
    master_session: requests.Session | LightSession
    slave_session: requests.Session | LightSession
    url_a: str
    url_b: str

    def __post_init__(self) -> None:
        self.notes: Counter[str] = Counter()

    def note(self, text: str) -> None:
        self.notes[text] += 1

    def exchange(self, number: int = 1, size: int = 256) -> list[tuple[str, float, int | str]]:
        """enc_keys at A, then dec_keys at B for what A gave: [(call, seconds, status)]."""
        out: list[tuple[str, float, int | str]] = []
        t0 = time.monotonic()
        try:
            r = self.master_session.post(f"{self.url_a}/api/v1/keys/{self.slave}/enc_keys",
                                         json={"number": number, "size": size}, timeout=30)
        except requests.RequestException as exc:
            out.append(("enc", time.monotonic() - t0, type(exc).__name__))
            self.note(f"enc {type(exc).__name__}: {str(exc)[:160]}")
            return out
        out.append(("enc", time.monotonic() - t0, r.status_code))
        if r.status_code != 200:
            self.note(f"enc {r.status_code} {r.text[:160]}")
            return out
        ids = [{"key_ID": k["key_ID"]} for k in r.json()["keys"]]
        expected = {k["key_ID"]: base64.b64decode(k["key"]) for k in r.json()["keys"]}
        t1 = time.monotonic()
        try:
            d = self.slave_session.post(f"{self.url_b}/api/v1/keys/{self.master}/dec_keys",
                                        json={"key_IDs": ids}, timeout=30)
        except requests.RequestException as exc:
            out.append(("dec", time.monotonic() - t1, type(exc).__name__))
            self.note(f"dec {type(exc).__name__}: {str(exc)[:160]}")
            return out
        status: int | str = d.status_code
        if d.status_code != 200:
            self.note(f"dec {d.status_code} {d.text[:160]}")
        if d.status_code == 200 and {k["key_ID"]: base64.b64decode(k["key"])
                                     for k in d.json()["keys"]} != expected:
            status = "mismatch"
        out.append(("dec", time.monotonic() - t1, status))
        return out


def run_open_loop(clients: Sequence[PairClient], *, rate: float, duration: float,
                  workers: int = 32, sample: Callable[[], None] | None = None,
                  sample_every: float = 5.0,
                  results: list[tuple[str, float, int | str]] | None = None) -> dict[str, Any]:
    """Start one exchange (2 key requests) every ``2/rate`` s for ``duration`` s, round-robin
    over the pairs, whatever the answers' latency (open loop); latency counts from the
    scheduled start, so a client-side backlog shows up as latency too. ``results``: a list
    that also receives every (call, seconds, status), e.g. to pool several runs."""
    interval = 2.0 / rate
    pooled = results
    results = []
    lock = threading.Lock()

    def task(client: PairClient, scheduled: float) -> None:
        queued = time.monotonic() - scheduled
        out = client.exchange()
        with lock:
            for i, (call, seconds, status) in enumerate(out):
                results.append((call, seconds + (queued if i == 0 else 0), status))

    started = time.monotonic()
    next_sample = started
    count = 0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        while True:
            scheduled = started + count * interval
            if scheduled - started >= duration:
                break
            now = time.monotonic()
            if scheduled > now:
                time.sleep(scheduled - now)
            pool.submit(task, clients[count % len(clients)], scheduled)
            count += 1
            if sample is not None and time.monotonic() >= next_sample:
                sample()
                next_sample += sample_every
    elapsed = time.monotonic() - started
    if pooled is not None:
        pooled.extend(results)
    return summarise(results, elapsed, offered_rate=rate)


def run_closed_loop(clients: Sequence[PairClient], *, threads: int,
                    duration: float) -> dict[str, Any]:
    """``threads`` clients, each starting its next exchange as soon as the last one ended."""
    started = time.monotonic()
    results = closed_loop_results(clients, threads, duration)
    return summarise(results, time.monotonic() - started)


def error_messages(clients: Sequence[PairClient]) -> dict[str, int]:
    """Every non-200 answer's status and message, with counts (no key material in them)."""
    total: Counter[str] = Counter()
    for c in clients:
        total.update(c.notes)
    return dict(total.most_common(10))


def summarise(results: list[tuple[str, float, int | str]], elapsed: float,
              offered_rate: float | None = None) -> dict[str, Any]:
    statuses = Counter(str(s) for _, _, s in results)
    ok = [sec for _, sec, s in results if s == 200]
    errors = sum(n for s, n in statuses.items() if s not in ("200",))
    return {
        "requests": len(results), "seconds": round(elapsed, 2),
        "offered_rate": offered_rate,
        "achieved_rate": round(len(results) / elapsed, 1) if elapsed else None,
        "delivered_rate": round(len(ok) / elapsed, 1) if elapsed else None,
        "statuses": dict(statuses), "errors": errors,
        "p50_ms": _ms(percentile(ok, 0.50)), "p99_ms": _ms(percentile(ok, 0.99)),
        "max_ms": _ms(max(ok) if ok else None),
    }


def _ms(seconds: float | None) -> float | None:
    return round(seconds * 1000, 1) if seconds is not None else None


class FloodProcess:
    """``km_flood.py`` running idle until :meth:`start`; ``with FloodProcess(argv) as f:
    f.start(6); ...; f.result()``."""

    def __init__(self, argv: list[str]) -> None:
        self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      text=True)
        assert self._proc.stdout is not None and self._proc.stdin is not None
        self._in, self._out = self._proc.stdin, self._proc.stdout
        if not json.loads(self._out.readline() or "{}").get("ready"):
            raise RuntimeError("km_flood.py did not start")

    def start(self, seconds: float) -> None:
        """Flood for ``seconds`` from now (returns at once)."""
        self._in.write(f"flood {seconds}\n")
        self._in.flush()

    def result(self) -> dict[str, Any]:
        """The figures of the flood last started (waits for its end)."""
        return json.loads(self._out.readline())

    def close(self) -> None:
        self._in.close()
        try:
            self._proc.wait(30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(5)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ServedKms:
    """KMs A and B (adjacent) as ``qkdn km serve`` processes with ``pairs`` SAE pairs."""

    def __init__(self, workdir: Path, pairs: int, blocks: int, block_size: int = 8192,
                 sessions: Sequence[dict[str, Any]] = ()) -> None:
        self.workdir = workdir
        self.saes = pair_names(pairs)
        self.pairs = pairs
        self.blocks, self.block_size = blocks, block_size
        self.sessions = list(sessions)
        self.pki = issue_network_pki(workdir, ["A", "B"], self.saes)
        self.ports = {n: free_port() for n in ("A", "B")}
        self.urls = {n: f"https://127.0.0.1:{p}" for n, p in self.ports.items()}
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self) -> ServedKms:
        for node in ("A", "B"):
            spec = serve_spec(node, ["A", "B"], [("A", "B")], self.saes, self.urls, self.pki,
                           self.workdir / node, self.ports[node], blocks=self.blocks,
                           block_size=self.block_size)
            if self.sessions:
                spec["running"] = adjacent_session_config(node, self.sessions)
            self.procs[node] = launch_km(spec, self.workdir / f"{node}.spec.json",
                                         self.workdir / f"{node}.log", append=False)
        for node in ("A", "B"):
            wait_ready(self.procs[node], self.workdir / f"{node}.log", timeout=120,
                       interval=0.1)
        return self

    def stop(self) -> None:
        stop_all(self.procs.values())

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def rss_kib(self, node: str) -> int:
        for line in Path(f"/proc/{self.procs[node].pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def cpu_seconds(self, node: str) -> float:
        """User + system CPU time of the KM process (``/proc/<pid>/stat``)."""
        return process_cpu_s(self.procs[node].pid)

    def flood(self, master: str, slave: str, *, threads: int = 8, number: int = 4,
              size: int = 256) -> FloodProcess:
        """A greedy SAE ``master`` that asks its KM (A) for keys for ``slave`` as fast as the
        answers come, from a process of its own (``km_flood.py``), on command."""
        entry = self.pki["saes"][master]
        return FloodProcess([
            sys.executable, str(Path(__file__).with_name("km_flood.py")), "--url",
            self.urls["A"], "--slave", slave, "--ca", str(self.pki["ca_cert"]),
            "--cert", str(entry["cert"]), "--key", str(entry["key"]),
            "--threads", str(threads), "--number", str(number), "--size", str(size)])

    def pair_specs(self) -> list[dict[str, str]]:
        """What a client process needs to act as each SAE pair (see :func:`client_process`)."""
        specs = []
        for i in range(self.pairs):
            m, s = self.pki["saes"][f"sae-a{i}"], self.pki["saes"][f"sae-b{i}"]
            specs.append({"master": f"sae-a{i}", "slave": f"sae-b{i}",
                          "master_cert": str(m["cert"]), "master_key": str(m["key"]),
                          "slave_cert": str(s["cert"]), "slave_key": str(s["key"]),
                          "ca": str(self.pki["ca_cert"]), "url_a": self.urls["A"],
                          "url_b": self.urls["B"]})
        return specs

    def pair_clients(self, pool: int = 4) -> list[PairClient]:
        ca = self.pki["ca_cert"]
        clients = []
        for i in range(self.pairs):
            m, s = self.pki["saes"][f"sae-a{i}"], self.pki["saes"][f"sae-b{i}"]
            clients.append(PairClient(f"sae-a{i}", f"sae-b{i}",
                                      sae_session(ca, m["cert"], m["key"], pool),
                                      sae_session(ca, s["cert"], s["key"], pool),
                                      self.urls["A"], self.urls["B"]))
        return clients


def clients_from_specs(specs: Sequence[dict[str, str]]) -> list[PairClient]:
    """Pair clients on :class:`LightSession` connections (the load-generator processes)."""
    return [PairClient(p["master"], p["slave"],
                       LightSession(p["ca"], p["master_cert"], p["master_key"]),
                       LightSession(p["ca"], p["slave_cert"], p["slave_key"]),
                       p["url_a"], p["url_b"]) for p in specs]


def client_process(job: dict[str, Any]) -> dict[str, Any]:
    """One load-generator process's share of a run: ``job`` = {"pairs": pair specs, "mode":
    "open" | "closed", "rate" (open), "threads", "duration", "warmup_s"}; returns the raw
    results (call, seconds, status), the error messages and the process's CPU seconds."""
    clients = clients_from_specs(job["pairs"])
    if job.get("warmup_s"):
        run_closed_loop(clients, threads=min(4, job["threads"]), duration=job["warmup_s"])
        for c in clients:
            c.notes.clear()
    cpu0 = time.process_time()
    results: list[tuple[str, float, int | str]] = []
    started = time.monotonic()
    if job["mode"] == "open":
        run_open_loop(clients, rate=job["rate"], duration=job["duration"],
                      workers=job["threads"], results=results)
    else:
        results.extend(closed_loop_results(clients, job["threads"], job["duration"]))
    return {"results": results, "elapsed": time.monotonic() - started,
            "messages": error_messages(clients), "cpu_s": time.process_time() - cpu0}


def closed_loop_results(clients: Sequence[PairClient], threads: int,
                        duration: float) -> list[tuple[str, float, int | str]]:
    """The (outcome, latency, status) of every exchange of ``threads`` closed-loop clients."""
    results: list[tuple[str, float, int | str]] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + duration

    def loop(i: int) -> None:
        n = i
        while time.monotonic() < stop_at:
            out = clients[n % len(clients)].exchange()
            n += threads
            with lock:
                results.extend(out)

    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(duration + 60)
    return results


def run_in_processes(specs: Sequence[dict[str, str]], *, processes: int, mode: str,
                     duration: float, threads: int, rate: float | None = None,
                     warmup_s: float = 0.0, sample: Callable[[], None] | None = None,
                     sample_every: float = 5.0) -> dict[str, Any]:
    """A run of :func:`run_open_loop` (``mode="open"``, ``rate`` in key requests/s overall)
    or of closed-loop clients (``threads`` overall), shared among ``processes`` load-generator
    processes (each its own GIL: one Python client process saturated before the KMs did),
    the pairs dealt round-robin. Returns the merged summary plus ``client_cpu_s`` and
    ``messages``; ``sample`` runs every ``sample_every`` s meanwhile (e.g. RSS)."""
    shares = [list(specs[i::processes]) for i in range(processes)]
    shares = [s for s in shares if s]
    procs = []
    for share in shares:
        job = {"pairs": share, "mode": mode, "duration": duration,
               "threads": max(1, threads // len(shares)), "warmup_s": warmup_s,
               "rate": (rate or 0) * len(share) / len(specs)}
        proc = subprocess.Popen([sys.executable, "-m", "tests.reliability.km_load"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(job))
        proc.stdin.close()
        procs.append(proc)
    # read every answer while the processes run: one that fills its pipe (thousands of
    # results) would otherwise wait for ever for a reader
    outputs: list[str] = ["" for _ in procs]

    def read(i: int, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        outputs[i] = proc.stdout.read()

    readers = [threading.Thread(target=read, args=(i, p)) for i, p in enumerate(procs)]
    for reader in readers:
        reader.start()
    if sample is not None:
        time.sleep(warmup_s)
        next_sample = time.monotonic()
        while any(r.is_alive() for r in readers):
            if time.monotonic() >= next_sample:
                sample()
                next_sample += sample_every
            time.sleep(0.1)
    for reader in readers:
        reader.join(duration + warmup_s + 300)
    results: list[tuple[str, float, int | str]] = []
    messages: Counter[str] = Counter()
    cpu = 0.0
    elapsed = 0.0
    for proc, out in zip(procs, outputs, strict=True):
        proc.wait(timeout=60)
        part = json.loads(out)
        results.extend((c, sec, st) for c, sec, st in part["results"])
        messages.update(part["messages"])
        cpu += part["cpu_s"]
        elapsed = max(elapsed, part["elapsed"])
    summary = summarise(results, elapsed, offered_rate=rate if mode == "open" else None)
    return {**summary, "client_processes": len(procs), "client_cpu_s": round(cpu, 2),
            "messages": dict(messages.most_common(10))}


if __name__ == "__main__":   # a load-generator process of run_in_processes: job on stdin
    print(json.dumps(client_process(json.loads(sys.stdin.read()))), flush=True)
