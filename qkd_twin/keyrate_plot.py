"""Key rate against distance with the PLOB line, as a PNG (matplotlib, optional)."""

from __future__ import annotations

from pathlib import Path

from qkd_twin.physics import DecoyModel, LinkParameters, evaluate


def plot_keyrate(links: dict[str, LinkParameters], lengths_km: list[float], path: Path,
                 decoy: DecoyModel = DecoyModel.INFINITE) -> Path:
    """Plot each link's secret key rate (log scale) and its PLOB bound against length."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, params in links.items():
        perfs = [evaluate(params.replace(length_km=length), decoy) for length in lengths_km]
        pts = [(length, p.skr_bps) for length, p in zip(lengths_km, perfs) if p.skr_bps > 0]
        line, = ax.semilogy([x for x, _ in pts], [y for _, y in pts],
                            label=f"{name} ({decoy.value} decoys)")
        ax.semilogy(lengths_km, [p.plob_bps for p in perfs], "--", color=line.get_color(),
                    alpha=0.6, label=f"PLOB bound, {params.clock_hz:.3g} Hz")
    ax.set_xlabel("fiber length (km)")
    ax.set_ylabel("secret key rate (bit/s)")
    ax.set_title("Decoy-state BB84 key rate vs distance")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(plt, fig, path)


def save_figure(plt, fig, path: Path) -> Path:
    """Lay out ``fig``, write it to ``path`` as PNG (folders made) and release it."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
