"""The per-KM event timeline of a run (paper Fig. 4) from the KMs' session events: report
rows and the text the demo prints (pure functions; the plot is :mod:`qkdn.timeline_plot`).

Times are seconds relative to ``t0`` (the start of the scenario: the moment its clients are
started); link-level events recorded during bring-up come out negative.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from qkdn.event_log import Event, EventKind

#: Order of the steps of a key exchange (paper Fig. 4), for display.
STEP_ORDER = (EventKind.REQUEST, EventKind.AUTHENTICATED, EventKind.PATH_CONFIGURED,
              EventKind.QKD_KEY_AVAILABLE, EventKind.RELAY_HOP_RECEIVED, EventKind.KEY_RETURNED,
              EventKind.SESSION_TERMINATED)


def report_events(events: Iterable[Event], t0: float) -> list[dict]:
    """Events as the report lists them: ``t`` relative to ``t0`` (s), node, event, session,
    and the event's detail (ids and counts; never key material)."""
    rows = []
    for e in events:
        row: dict = {"t": round(e.t - t0, 4), "node": e.node, "event": e.event.value,
                     "session": e.session}
        if e.detail:
            row["detail"] = dict(e.detail)
        rows.append(row)
    return rows


@dataclass(frozen=True)
class Step:
    """The first occurrence of one kind of event of a session at a KM, and how many."""

    kind: EventKind
    first: float     #: seconds from t0
    last: float
    count: int


@dataclass(frozen=True)
class SessionLine:
    """One session's steps at one KM (a line of Fig. 4)."""

    node: str
    session: str
    api: str | None
    saes: tuple[str, ...]
    steps: tuple[Step, ...]

    @property
    def start(self) -> float:
        return min(s.first for s in self.steps)

    @property
    def end(self) -> float:
        return max(s.last for s in self.steps)


def session_lines(events: Iterable[Event], t0: float) -> list[SessionLine]:
    """Per (KM, session): each kind's first/last time and count, steps in Fig. 4 order;
    lines sorted by node then start. Link-level events (no session) are left out."""
    grouped: dict[tuple[str, str], list[Event]] = {}
    for e in events:
        if e.session is not None:
            grouped.setdefault((e.node, e.session), []).append(e)
    lines = []
    for (node, session), evs in grouped.items():
        steps = []
        for kind in STEP_ORDER:
            times = [e.t - t0 for e in evs if e.event is kind]
            if times:
                steps.append(Step(kind, min(times), max(times), len(times)))
        apis = [str(e.detail["api"]) for e in evs if e.detail.get("api")]
        saes = sorted({str(e.detail["sae"]) for e in evs if e.detail.get("sae")})
        lines.append(SessionLine(node, session, apis[0] if apis else None, tuple(saes),
                                 tuple(steps)))
    return sorted(lines, key=lambda line: (_node_key(line.node), line.start))


def _node_key(node: str) -> tuple[int, str]:
    return (int(node), "") if node.isdigit() else (1 << 30, node)


def link_first_keys(events: Iterable[Event], t0: float) -> dict[str, list[tuple[str, float]]]:
    """Per KM: (qkdl_id, seconds from t0) of each link's first QKD key in this run."""
    out: dict[str, list[tuple[str, float]]] = {}
    for e in events:
        if e.session is None and e.event is EventKind.QKD_KEY_AVAILABLE:
            out.setdefault(e.node, []).append((str(e.detail.get("qkdl_id", "?")), e.t - t0))
    return out


def format_timeline(events: Sequence[Event], t0: float,
                    origin: str = "the start of the scenario") -> list[str]:
    """The text timeline: per KM, one line per session with its steps and their times
    (seconds from ``t0``, which the header calls ``origin``)."""
    lines = session_lines(events, t0)
    links = link_first_keys(events, t0)
    nodes = sorted({line.node for line in lines} | set(links), key=_node_key)
    out = [f"timeline (seconds from {origin}; 'xN' = N events, first time shown)"]
    for node in nodes:
        out.append(f"KM {node}")
        if node in links:
            first = min(t for _, t in links[node])
            out.append(f"  links: first QKD key {first:+.2f} s ({len(links[node])} link(s))")
        for line in (ln for ln in lines if ln.node == node):
            label = f"ETSI {line.api}" if line.api else "relay"
            who = " ".join(line.saes)
            out.append(f"  session {line.session[:8]} {label:<8} {who}".rstrip())
            out.append("    " + " · ".join(
                f"{step.kind.value} {step.first:.3f}" + (f" x{step.count}" if step.count > 1
                                                         else "")
                for step in line.steps))
    return out
