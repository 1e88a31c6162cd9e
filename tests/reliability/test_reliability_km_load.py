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
             saturation_s: float, overload_s: float, processes: int = 2) -> dict:
    """Saturation first (closed loop, 16 clients), then ``rate`` open loop for ``duration``
    s (after a 10 % warm-up), then twice the measured saturation rate. If the machine
    saturates below ``rate``, the sustained phase runs at 80 % of the saturation rate instead
    (errors and memory growth are still measured; an open loop above saturation would only
    pile up a backlog for minutes) and ``machine_sustains_target`` says so.

    The load comes from ``processes`` client processes (``km_load.run_in_processes``): a
    single Python client process saturated (its GIL) at 100-170 requests/s, before the KMs."""
    with km_load.ServedKms(tmp_path, pairs=pairs, blocks=blocks) as kms:
        specs = kms.pair_specs()
        saturation = km_load.run_in_processes(specs, processes=processes, mode="closed",
                                              threads=16, duration=saturation_s, warmup_s=2)
        sustains = saturation["achieved_rate"] >= rate
        wanted = rate
        rate = rate if sustains else round(0.8 * saturation["achieved_rate"], 1)
        warmup_s = max(2.0, duration / 10)
        rss0: dict[str, int] = {}
        cpu0: dict[str, float] = {}
        samples: list[dict[str, int]] = []

        def sample() -> None:
            if not rss0:     # the first sample, once the clients' warm-up is over
                rss0.update({n: kms.rss_kib(n) for n in ("A", "B")})
                cpu0.update({n: kms.cpu_seconds(n) for n in ("A", "B")})
            samples.append({n: kms.rss_kib(n) for n in ("A", "B")})

        # warm-up: the same open loop for warmup_s, not counted
        warm = km_load.run_in_processes(specs, processes=processes, mode="open", rate=rate,
                                        threads=32, duration=warmup_s)
        main = km_load.run_in_processes(specs, processes=processes, mode="open", rate=rate,
                                        threads=32, duration=duration, sample=sample,
                                        sample_every=max(1.0, duration / 20))
        rss1 = {n: kms.rss_kib(n) for n in ("A", "B")}
        cpu = {n: kms.cpu_seconds(n) - cpu0[n] for n in ("A", "B")}
        growth = {n: round(100.0 * (rss1[n] - rss0[n]) / rss0[n], 2) for n in rss0}
        overload_rate = 2 * saturation["achieved_rate"]
        overload = km_load.run_in_processes(specs, processes=processes, mode="open",
                                            rate=overload_rate, threads=96,
                                            duration=overload_s)
    # each KM answers one of the two requests of an exchange
    cpu_ms = {n: round(1000 * c / max(1, main["requests"] / 2), 2) for n, c in cpu.items()}
    return {
        "target_rate": wanted, "sustained_rate": rate, "duration_s": duration, "pairs": pairs,
        "client_processes": processes,
        "saturation": saturation, "machine_sustains_target": sustains,
        "warmup_errors": warm["errors"], "sustained": main,
        "km_cpu_ms_per_request": cpu_ms,
        "km_cpu_share_percent": {n: round(100 * c / duration, 1) for n, c in cpu.items()},
        "rss_kib_start": rss0, "rss_kib_end": rss1, "rss_growth_percent": growth,
        "rss_kib_samples": samples[:25],
        "overload": overload,
        "error_messages": main["messages"], "overload_error_messages": overload["messages"],
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
