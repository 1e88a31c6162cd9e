"""Digital-twin benchmarks: reconciliation efficiency and frame errors, error-correction and
privacy-amplification throughput (one core), a module's time to first key, and the key-rate
plot (``bench/twin_keyrate.png``).

Throughputs are bits per CPU-second of the benchmarking thread (numpy and scipy.fft run
single-threaded here), i.e. per core, so that a busy shared machine does not halve them.
"""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path

import numpy as np

from bench.report import row
from qkd_twin.module import LinkRole, ModuleConfig, ModuleMode, QkdModule
from qkd_twin.physics import h2, preset
from qkd_twin.postprocessing.evaluation import noisy_frame
from qkd_twin.postprocessing.pipeline import BlockStatus, run_block
from qkd_twin.postprocessing.privacy_amplification import ToeplitzHasher, toeplitz_seed

PLOT_PATH = Path(__file__).resolve().parent / "twin_keyrate.png"
QBERS = (0.01, 0.02, 0.05)


def _reconciliation(quick: bool) -> list[dict]:
    frame_bits = 20_000 if quick else 100_000
    frames = 4 if quick else 20
    rows, failures, total, rates = [], 0, 0, []
    rng = np.random.default_rng(2024)
    for qber in QBERS:
        efficiencies = []
        for _ in range(frames):
            result = run_block(noisy_frame(frame_bits, qber, rng),
                               np.random.default_rng(rng.integers(2**63)))
            total += 1
            wrong = not result.ok or not np.array_equal(result.alice_key, result.bob_key)
            if result.status is BlockStatus.ABORTED_VERIFICATION or wrong:
                failures += 1
            n = result.reconciled_bits
            efficiencies.append(result.leaked_ec_bits / (n * h2(result.errors_corrected / n)))
            rates.append(n / result.ec_seconds)
        mean = statistics.fmean(efficiencies)
        rows.append(row(f"twin.ec_efficiency_qber_{qber}", round(mean, 4), "f",
                        target="<= 1.20 (stretch 1.10)", meets=mean <= 1.20,
                        samples=efficiencies))
    for qber in (0.02, 0.05):        # many shorter frames (10^4 bits) for the error rate
        for _ in range(50 if quick else 1500):
            result = run_block(noisy_frame(10_000, qber, rng),
                               np.random.default_rng(rng.integers(2**63)))
            total += 1
            if not result.ok or not np.array_equal(result.alice_key, result.bob_key):
                failures += 1
    fer = failures / total
    rows.append(row("twin.ec_frame_error_rate", fer, "frames", target="<= 1e-3",
                    meets=fer <= 1e-3, runs=total))
    rows.append(row("twin.ec_throughput_bps", round(statistics.median(rates)), "bit/s",
                    target=">= 1e6", meets=statistics.median(rates) >= 1e6, samples=rates))
    return rows


def _privacy_amplification(quick: bool) -> dict:
    n = 100_000
    rng = np.random.default_rng(7)
    rates = []
    for _ in range(5 if quick else 30):
        bits = rng.integers(0, 2, n, dtype=np.uint8)
        started = time.thread_time()                # CPU time of this thread = one core
        seed = toeplitz_seed(n, n // 2, rng)
        ToeplitzHasher(n, n // 2, seed)(bits)      # seed spectrum included: a fresh seed
        rates.append(n / (time.thread_time() - started))
    value = statistics.median(rates)
    return row("twin.pa_throughput_bps", round(value), "bit/s", target=">= 5e6",
               meets=value >= 5e6, samples=rates)


class _EventSink:
    """KeySink that only signals the first delivery."""

    def __init__(self) -> None:
        self.delivered = threading.Event()

    def deliver(self, qkdl_id: str, block_index: int, key: bytes) -> None:
        self.delivered.set()


def _first_key(quick: bool) -> dict:
    samples = []
    for i in range(2 if quick else 5):
        sink = _EventSink()
        delivered = sink.delivered
        config = ModuleConfig(f"bench-{i}", LinkRole.TRANSMITTER, preset("reference", 20),
                              b"bench-seed", ModuleMode.PROTOCOL)
        started = time.monotonic()
        with QkdModule(config, sink):
            delivered.wait(5.0)
            samples.append(time.monotonic() - started)
    value = max(samples)
    return row("twin.module_first_key_s", round(value, 3), "s", target="<= 1.0",
               meets=value <= 1.0, samples=samples)


#: (a, b, length km, mode) of topologies/paper.yaml
PAPER_LINKS = (("0", "1", 15, "rate"), ("0", "2", 25, "rate"), ("0", "3", 30, "protocol"),
               ("0", "4", 20, "rate"), ("0", "5", 35, "rate"), ("4", "5", 10, "protocol"))


class _CountingSink:
    """KeySink that records when each link end first delivered."""

    def __init__(self, firsts: dict, role: LinkRole, lock: threading.Lock) -> None:
        self._firsts, self._role, self._lock = firsts, role, lock

    def deliver(self, qkdl_id: str, block_index: int, key: bytes) -> None:
        with self._lock:
            self._firsts.setdefault((qkdl_id, self._role), time.monotonic())


def _paper_network_first_key(quick: bool) -> dict:
    """All 12 module ends of the paper network in one process: start → every end has key."""
    samples = []
    for run_index in range(1 if quick else 3):
        firsts: dict = {}
        lock = threading.Lock()
        modules = []
        started = time.monotonic()
        for a, b, length, mode in PAPER_LINKS:
            for role in LinkRole:
                config = ModuleConfig(f"paper-{a}-{b}", role, preset("reference", length),
                                      f"seed-{run_index}-{a}-{b}".encode(), ModuleMode(mode))
                module = QkdModule(config, _CountingSink(firsts, role, lock))
                module.start()
                modules.append(module)
        deadline = started + 5.0
        while time.monotonic() < deadline and len(firsts) < 2 * len(PAPER_LINKS):
            time.sleep(0.005)
        for module in modules:
            module.stop()
        with lock:
            done = len(firsts) == 2 * len(PAPER_LINKS)
            samples.append(max(firsts.values()) - started if done else float("inf"))
    value = max(samples)
    return row("twin.paper_network_first_key_s", round(value, 3), "s", target="<= 1.0",
               meets=value <= 1.0, samples=samples)


def _plot() -> None:
    try:
        from qkd_twin.keyrate_plot import plot_keyrate
    except ImportError:
        return
    try:
        plot_keyrate({name: preset(name, 0.0) for name in ("gys", "reference", "high-end")},
                     [float(x) for x in range(1, 301, 3)], PLOT_PATH)
    except ImportError:  # matplotlib not installed
        pass


def run(quick: bool = False) -> list[dict]:
    """All twin benchmark rows."""
    rows = _reconciliation(quick)
    rows.append(_privacy_amplification(quick))
    rows.append(_first_key(quick))
    rows.append(_paper_network_first_key(quick))
    _plot()
    return rows


if __name__ == "__main__":
    import json
    import sys
    print(json.dumps(run(quick="--quick" in sys.argv), indent=1))
