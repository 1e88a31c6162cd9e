"""The benchmark report's curves as PNGs beside ``bench/report.json`` (matplotlib, optional:
without it no plot is written and the rows are unchanged).

* :func:`plot_latency_vs_hops` — ``bench/relay_latency_hops.png``: ETSI 014 ``enc_keys`` p50
  and p99 against the number of hops of the path (``bench.kms_bench.bench_relay_chain``);
* :func:`plot_delivered_vs_bound` — ``bench/multipath_delivered.png``: key delivered to the
  master over time against the max-flow bound of the key the links produced
  (``bench.multipath_bench``).

The key rate against distance is :func:`qkd_twin.keyrate_plot.plot_keyrate` (physics, with
the twin).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from qkd_twin.keyrate_plot import save_figure

BENCH_DIR = Path(__file__).resolve().parent
LATENCY_HOPS_PNG = BENCH_DIR / "relay_latency_hops.png"
MULTIPATH_PNG = BENCH_DIR / "multipath_delivered.png"


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_latency_vs_hops(hops: Sequence[int], p50_ms: Sequence[float], p99_ms: Sequence[float],
                         path: Path = LATENCY_HOPS_PNG) -> Path | None:
    """p50 and p99 of one ``enc_keys`` call against the path's hop count; None without
    matplotlib."""
    try:
        plt = _pyplot()
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(hops, p50_ms, "o-", label="p50")
    ax.plot(hops, p99_ms, "s--", alpha=0.7, label="p99")
    ax.set_xticks(list(hops))
    ax.set_xlabel("hops (QKD links on the path; trusted nodes = hops - 1)")
    ax.set_ylabel("enc_keys latency (ms)")
    ax.set_title("ETSI 014 enc_keys, every key relayed hop by hop")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend()
    return save_figure(plt, fig, path)


def plot_delivered_vs_bound(seconds: Sequence[float], delivered_kbit: Sequence[float],
                            bound_kbit: Sequence[float], single_path_kbit: Sequence[float],
                            path: Path = MULTIPATH_PNG) -> Path | None:
    """Cumulative key delivered end to end against the cumulative max-flow bound (and the
    best single path) of the key the links produced; None without matplotlib."""
    try:
        plt = _pyplot()
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(seconds, bound_kbit, "-", color="black", label="max-flow bound of the links' key")
    ax.plot(seconds, [0.9 * b for b in bound_kbit], ":", color="black", alpha=0.6,
            label="0.9 x bound (target)")
    ax.plot(seconds, single_path_kbit, "--", color="gray", label="best single path")
    ax.plot(seconds, delivered_kbit, "-", linewidth=2, label="delivered (last point: + keys ready at both ends)")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("cumulative key (kbit)")
    ax.set_title("Multipath session: delivered key vs max-flow bound")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(plt, fig, path)
