"""CPU per ETSI 014 request inside one KM, under the ``kms.etsi014_rps`` load.

Same set-up as ``bench/kms_bench.py``'s requests/s row (two real KMs, cheroot, mutual TLS,
keep-alive clients in their own processes, enc_keys number=1, 256-bit keys) and reports,
for the KM process (the clients run elsewhere):

* ``rps`` and ``cpu_ms_per_req`` (user+system CPU of this process / requests served), and
  ``net_cpu_ms_per_req`` without the KMs' idle background CPU (measured first);
* with ``--profile`` the CPU (``time.thread_time``) and wall time per request spent inside
  each layer, measured by wrapping that layer's entry point (inclusive of what it calls):
  the whole cheroot connection turn (TLS + HTTP parsing + app), the WSGI app (Flask and
  werkzeug), authentication, the 014 view, ``KeyManager.enc_keys``, the key pool, and the
  SQLite commit (the fsync wait is its wall time minus its CPU).

``python -m bench.kms_rps_profile [--runs 3] [--seconds 5] [--clients 6] [--profile]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from bench.kms_bench import _tmp, hammer
from kms.key_manager import KmConfig
from kms.local_network import LocalKmNetwork

#: layer -> (module, attribute path) of its entry point
LAYERS = {
    "cheroot_turn": ("cheroot.server", "HTTPConnection.communicate"),
    "tls_read": ("ssl", "SSLSocket.recv_into"),
    "tls_write": ("ssl", "SSLSocket.sendall"),
    "wsgi_app": ("flask.app", "Flask.wsgi_app"),
    "view_enc_keys": ("kms.etsi014", "enc_keys"),
    "auth": ("kms.etsi014", "_caller"),
    "km_enc_keys": ("kms.key_manager", "KeyManager.enc_keys"),
    "session_for_pair": ("kms.key_manager", "KeyManager.session_for_pair"),
    "route_for": ("kms.key_manager", "KeyManager.route_for"),
    "charge": ("kms.key_manager", "KeyManager._charge"),
    "session_fire": ("kms.session", "KmSession.fire"),
    "report_key_request": ("kms.key_manager", "KeyManager.report_key_request"),
    "record_delivery": ("kms.key_manager", "KeyManager.record_delivery"),
    "produce": ("kms.key_manager", "KeyManager._produce_with_fallback"),
    "telemetry_request": ("kms.telemetry", "KmTelemetry.request"),
    "telemetry_key_returned": ("kms.telemetry", "KmTelemetry.key_returned"),
    "key_pool_take": ("kms.key_pool", "KeyPool.take_for_master"),
    "sqlite_commit": ("kms.key_pool", "_Transaction.__exit__"),
    "wal_truncate": ("kms.key_pool", "KeyPool._truncate_wal"),
    "jsonify": ("kms.etsi014", "jsonify"),
}

_totals: dict[str, list[float]] = {}
#: seconds of idle CPU measured before the load (subtracted in ``net_cpu_ms_per_req``)
IDLE_S = 2.0


def _instrument() -> list:
    """Wrap every layer's entry point; returns the (owner, name, original) to restore."""
    import functools
    import importlib
    import threading
    restore = []
    depth = threading.local()
    for layer, (module, path) in LAYERS.items():
        owner = importlib.import_module(module)
        *parents, name = path.split(".")
        for parent in parents:
            owner = getattr(owner, parent)
        original = getattr(owner, name)
        acc = _totals.setdefault(layer, [0.0, 0.0, 0])

        def wrapped(*a, __original=original, __acc=acc, __layer=layer, **k):
            key = "d_" + __layer
            if getattr(depth, key, 0):     # recursion/nesting: count the outer call only
                return __original(*a, **k)
            setattr(depth, key, 1)
            c, w = time.thread_time(), time.perf_counter()
            try:
                return __original(*a, **k)
            finally:
                __acc[0] += time.thread_time() - c
                __acc[1] += time.perf_counter() - w
                __acc[2] += 1
                setattr(depth, key, 0)
        functools.update_wrapper(wrapped, original)
        setattr(owner, name, wrapped)
        restore.append((owner, name, original))
    return restore


def measure(seconds: float, clients: int, profile: bool) -> dict:
    saes = {"sae-a": "A", "sae-b": "B"}
    restore = _instrument() if profile else []
    with LocalKmNetwork(_tmp(), ["A", "B"], [("A", "B")], saes,
                        config=KmConfig(relay_batch=1000, max_key_per_request=1000,
                                        relay_ahead_low_water=1000)) as net:  # as kms_bench
        net.feed("A", "B", blocks=60, size=65536)
        url = net.kms["A"].base_url + "/api/v1/keys/sae-b/enc_keys"
        cert, key = net.sae_cert("sae-a")
        # the KMs' own background CPU (housekeeping, watchdogs) without requests, per second
        i0 = os.times()
        time.sleep(IDLE_S)
        i1 = os.times()
        idle_per_s = ((i1.user - i0.user) + (i1.system - i0.system)) / IDLE_S
        started: list = []

        def on_start() -> None:
            for acc in _totals.values():
                acc[:] = [0.0, 0.0, 0]
            started.append(os.times())

        done = hammer(url, cert, key, net.ca, clients, seconds, on_start)
        t0, t1 = started[0], os.times()
        snapshot = {k: list(v) for k, v in _totals.items()}
    for owner, name, original in restore:
        setattr(owner, name, original)
    cpu = (t1.user - t0.user) + (t1.system - t0.system)
    out = {"rps": done / seconds, "requests": done,
           "cpu_ms_per_req": cpu * 1000 / max(done, 1),
           "net_cpu_ms_per_req": max(0.0, cpu - idle_per_s * seconds) * 1000 / max(done, 1),
           "user_ms_per_req": (t1.user - t0.user) * 1000 / max(done, 1),
           "sys_ms_per_req": (t1.system - t0.system) * 1000 / max(done, 1)}
    if profile:
        out["layers_per_req"] = {
            layer: {"cpu_ms": round(c * 1000 / max(done, 1), 3),
                    "wall_ms": round(w * 1000 / max(done, 1), 3), "calls": n}
            for layer, (c, w, n) in snapshot.items()}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    runs = [measure(args.seconds, args.clients, args.profile) for _ in range(args.runs)]
    summary = {"rps_median": statistics.median(r["rps"] for r in runs),
               "cpu_ms_per_req_median": statistics.median(r["cpu_ms_per_req"] for r in runs),
               "net_cpu_ms_per_req_median": statistics.median(r["net_cpu_ms_per_req"]
                                                              for r in runs),
               "load": Path("/proc/loadavg").read_text().split()[:3], "runs": runs}
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
