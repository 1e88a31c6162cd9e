"""Item 6: sustained ETSI 014 load on a KM pair (two ``qkdn km serve`` processes, several SAE
pairs, each exchange = enc_keys at A + dec_keys at B, 2 key requests), then twice the
saturation rate.

Short run (40 requests/s for 10 s) in ``make test``, asserting only correctness (no errors,
matching keys, only 200/503/429 when overloaded); the timing targets (p99 < 100 ms, memory
growth < 10 %) go to bench/reliability.json as ``meets``. The slow run is the issue's: 200
requests/s for 300 s, asserting the targets. The saturation rate (16 closed-loop clients)
is measured first, so a machine that cannot sustain 200/s says so instead of failing on p99.
"""

from __future__ import annotations

import os

import pytest

from . import km_load, reliability_report

pytestmark = pytest.mark.integration

OVERLOAD_OK = {"200", "503", "429"}


def run_load(tmp_path, *, rate: float, duration: float, pairs: int, blocks: int,
             saturation_s: float, overload_s: float) -> dict:
    """Saturation first (closed loop, 16 clients), then ``rate`` open loop for ``duration``
    s (after a 10 % warm-up), then twice the measured saturation rate. If the machine
    saturates below ``rate``, the sustained phase runs at 80 % of the saturation rate instead
    (errors and memory growth are still measured; an open loop above saturation would only
    pile up a backlog for minutes) and ``machine_sustains_target`` says so."""
    with km_load.ServedKms(tmp_path, pairs=pairs, blocks=blocks) as kms:
        clients = kms.pair_clients()
        km_load.run_closed_loop(clients, threads=4, duration=2)    # connections, caches
        saturation = km_load.run_closed_loop(clients, threads=16, duration=saturation_s)
        sustains = saturation["achieved_rate"] >= rate
        wanted = rate
        rate = rate if sustains else round(0.8 * saturation["achieved_rate"], 1)
        warm = km_load.run_open_loop(clients, rate=rate, duration=max(2.0, duration / 10))
        rss0 = {n: kms.rss_kib(n) for n in ("A", "B")}
        cpu0 = {n: kms.cpu_seconds(n) for n in ("A", "B")}
        samples: list[dict[str, int]] = []
        main = km_load.run_open_loop(
            clients, rate=rate, duration=duration,
            sample=lambda: samples.append({n: kms.rss_kib(n) for n in ("A", "B")}),
            sample_every=max(1.0, duration / 20))
        rss1 = {n: kms.rss_kib(n) for n in ("A", "B")}
        cpu = {n: kms.cpu_seconds(n) - cpu0[n] for n in ("A", "B")}
        growth = {n: round(100.0 * (rss1[n] - rss0[n]) / rss0[n], 2) for n in rss0}
        overload_rate = 2 * saturation["achieved_rate"]
        overload_clients = kms.pair_clients(pool=8)
        overload = km_load.run_open_loop(overload_clients, rate=overload_rate,
                                         duration=overload_s, workers=96)
        messages = km_load.error_messages(clients)
        overload_messages = km_load.error_messages(overload_clients)
    # each KM answers one of the two requests of an exchange
    cpu_ms = {n: round(1000 * c / max(1, main["requests"] / 2), 2) for n, c in cpu.items()}
    return {
        "target_rate": wanted, "sustained_rate": rate, "duration_s": duration, "pairs": pairs,
        "saturation": saturation, "machine_sustains_target": sustains,
        "warmup_errors": warm["errors"], "sustained": main,
        "km_cpu_ms_per_request": cpu_ms,
        "rss_kib_start": rss0, "rss_kib_end": rss1, "rss_growth_percent": growth,
        "rss_kib_samples": samples[:25],
        "overload": overload,
        "error_messages": messages, "overload_error_messages": overload_messages,
        "overload_only_503_or_rate_limit": set(overload["statuses"]) <= OVERLOAD_OK,
        "meets": {"target_rate_sustainable": sustains, "errors": main["errors"] == 0,
                  "p99_under_100ms": (main["p99_ms"] or 1e9) < 100,
                  "memory_growth_under_10_percent": max(growth.values()) < 10,
                  "overload": set(overload["statuses"]) <= OVERLOAD_OK},
    }


def _check_correctness(result: dict) -> None:
    main = result["sustained"]
    assert main["errors"] == 0, main
    assert main["statuses"].get("mismatch", 0) == 0
    assert result["overload_only_503_or_rate_limit"], result["overload"]


@pytest.mark.timeout(300)
def test_sustained_load_short(tmp_path):
    result = run_load(tmp_path, rate=40, duration=10, pairs=4, blocks=64, saturation_s=4,
                      overload_s=4)
    reliability_report.record("sustained_load", "short", result)
    _check_correctness(result)


#: the issue's parameters: 200 key requests/s for 300 s
LONG_RATE, LONG_SECONDS = 200, 300


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_sustained_load_long(tmp_path):
    """200 requests/s for 300 s (``QKDN_RELIABILITY_LOAD_S`` shortens it to validate the run
    without loading a shared machine for minutes: recorded as ``reduced-Ns``, not ``long``)."""
    duration = float(os.environ.get("QKDN_RELIABILITY_LOAD_S", LONG_SECONDS))
    result = run_load(tmp_path, rate=LONG_RATE, duration=duration, pairs=16, blocks=480,
                      saturation_s=20, overload_s=30)
    run = "long" if duration >= LONG_SECONDS else f"reduced-{duration:g}s"
    reliability_report.record("sustained_load", run, result)
    _check_correctness(result)
    too_slow = (f"saturation {result['saturation']['achieved_rate']} req/s < {LONG_RATE} "
                "on this machine: the target cannot be measured here")
    assert result["machine_sustains_target"], (too_slow, result["saturation"])
    assert result["sustained"]["p99_ms"] < 100, result["sustained"]
    assert max(result["rss_growth_percent"].values()) < 10, result
