"""``qkdn demo --plot FILE.png``: the KMs' event timeline drawn like the paper's Fig. 4.

One horizontal line per KM; each session the KM takes part in is a segment on (or just
beside) that line from its first to its last event, with a marker per step — request and
key returned in red, authentication, path configuration, QKD key available (yellow) and
relay hop received (blue) — at the step's first occurrence (key returned: also its last).
Segments of the same SAE pair share a line style, as the paper distinguishes its three pairs.

matplotlib (the ``plot`` extra) is imported only here, with the Agg backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from qkdn.event_log import Event, EventKind
from qkdn.timeline import session_lines

#: marker, colour, legend label, size. Steps that happen together (authentication, path
#: configuration and key availability arrive with one edit-config) are drawn as concentric
#: markers of decreasing size, so each stays visible.
MARKERS: dict[EventKind, tuple[str, str, str, int]] = {
    EventKind.REQUEST: ("o", "#d62728", "request arrival", 48),
    EventKind.AUTHENTICATED: ("^", "#2ca02c", "authentication", 120),
    EventKind.PATH_CONFIGURED: ("s", "#9467bd", "path configuration", 190),
    EventKind.QKD_KEY_AVAILABLE: ("D", "#e6b800", "QKD key available", 40),
    EventKind.RELAY_HOP_RECEIVED: ("o", "#1f77b4", "relay hop received", 56),
    EventKind.KEY_RETURNED: ("*", "#d62728", "key returned", 110),
}
_Z = {EventKind.PATH_CONFIGURED: 3, EventKind.AUTHENTICATED: 4, EventKind.KEY_RETURNED: 4}
LINE_STYLES = ("-", "--", ":", "-.")


def plot_timeline(events: Sequence[Event], t0: float, path: Path, *,
                  title: str = "Key exchange events per key manager",
                  xlabel: str = "seconds from the start of the scenario (parallel key requests)"
                  ) -> Path:
    """Draw the timeline of ``events`` (times relative to ``t0``) into ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = session_lines(events, t0)
    nodes = sorted({line.node for line in lines},
                   key=lambda n: (int(n), "") if n.isdigit() else (1 << 30, n))
    row = {node: i for i, node in enumerate(nodes)}
    pairs: dict[tuple[str, ...], str] = {}
    fig, ax = plt.subplots(figsize=(10, 1.0 + 0.7 * max(1, len(nodes))))
    per_node: dict[str, int] = {}
    seen_labels: set[EventKind] = set()
    for line in lines:
        slot = per_node.get(line.node, 0)
        per_node[line.node] = slot + 1
        y = row[line.node] + 0.12 * slot - 0.18
        pair = line.saes or ("relay",)
        style = pairs.setdefault(pair, LINE_STYLES[len(pairs) % len(LINE_STYLES)])
        ax.plot([line.start, line.end], [y, y], linestyle=style, color="0.35", linewidth=1)
        for step in line.steps:
            if step.kind not in MARKERS:
                continue
            marker, colour, label, size = MARKERS[step.kind]
            times = [step.first] + ([step.last] if step.kind is EventKind.KEY_RETURNED and
                                    step.last != step.first else [])
            ax.scatter(times, [y] * len(times), marker=marker, color=colour, s=size,
                       zorder=_Z.get(step.kind, 5),
                       edgecolors="black", linewidths=0.4,
                       label=label if step.kind not in seen_labels else None)
            seen_labels.add(step.kind)
    ax.set_yticks(range(len(nodes)), [f"KM{n}" for n in nodes])
    ax.set_ylim(-0.6, len(nodes) - 0.4)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    order = [MARKERS[k][2] for k in MARKERS if MARKERS[k][2] in labels]
    ax.legend([handles[labels.index(lbl)] for lbl in order], order, loc="upper center",
              bbox_to_anchor=(0.5, -0.18), ncol=3, fontsize=8, frameon=False)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
