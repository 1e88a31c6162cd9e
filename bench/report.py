"""Benchmark rows and the report: the one place their shape is defined."""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Sequence
from typing import Any


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation; samples need not be sorted."""
    ordered = sorted(samples)
    if not ordered:
        raise ValueError("no samples")
    pos = (len(ordered) - 1) * q / 100.0
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def row(name: str, value: float, unit: str, *, target: str | None = None,
        meets: bool | None = None, samples: Sequence[float] | None = None,
        runs: int | None = None) -> dict[str, Any]:
    """A report row. ``target`` is human text such as '<= 10'; ``meets`` None = no target."""
    return {
        "name": name, "value": value, "unit": unit, "target": target, "meets": meets,
        "runs": runs if runs is not None else (len(samples) if samples else 1),
        "p50": statistics.median(samples) if samples else value,
        "p99": percentile(samples, 99) if samples else value,
    }


#: the row names issue 7 spells differently from the rows' own (stable) names: issue name ->
#: (row it repeats, factor applied to its figures, unit, target in that unit)
ISSUE_ROW_NAMES: dict[str, tuple[str, float, str, str]] = {
    "relay.e2e_over_bottleneck": ("relay.e2e_rate_over_bottleneck", 1.0, "ratio", ">= 0.9"),
    # issue 4 defines the set-up as "both OPEN_CONNECTs to both operative": the end-to-end
    # rows of bench.session_setup_bench (controller.setup_* measure the controller and agents
    # alone, without KMs or applications)
    "controller.setup_p50_ms": ("session.open_connect_ms_1_trusted_node", 1.0, "ms", "<= 100"),
    "controller.setup_5hop_over_1hop": ("session.open_connect_ratio_5_to_1_hop", 1.0, "ratio",
                                        "<= 1.5"),
    "controller.reroute_p95_s": ("controller.reroute_ms_10_sessions_p95", 0.001, "s", "<= 1"),
}


def issue_named_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of ``rows`` that issue 7 names differently, once more under the issue's name
    (``same_as`` says which row; figures converted to the issue's unit)."""
    by_name = {r["name"]: r for r in rows}
    extra = []
    for name, (source, factor, unit, target) in ISSUE_ROW_NAMES.items():
        original = by_name.get(source)
        if original is None:
            continue
        scaled = {key: original[key] * factor if original[key] is not None else None
                  for key in ("value", "p50", "p99")}
        extra.append({**original, **scaled, "name": name, "unit": unit, "target": target,
                      "same_as": source})
    return extra


def machine_info() -> dict[str, Any]:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_kib = 0
    try:
        with open("/proc/meminfo") as handle:
            mem_kib = int(handle.readline().split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return {"hostname": platform.node(), "cpu": cpu, "cores": os.cpu_count(),
            "memory_gib": round(mem_kib / 1024 / 1024, 1), "python": platform.python_version(),
            "platform": platform.platform()}


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    lines = [(f"{'name':<40}{'value':>14} {'unit':<10}{'target':<14}{'meets':<7}"
             f"{'runs':>6}{'p50':>12}{'p99':>12}")]
    for r in rows:
        meets = {True: "yes", False: "NO", None: "-"}[r["meets"]]
        lines.append(f"{r['name']:<40}{_fmt(r['value']):>14} {r['unit']:<10}"
                     f"{r['target'] or '-':<14}{meets:<7}{r['runs']:>6}"
                     f"{_fmt(r['p50']):>12}{_fmt(r['p99']):>12}")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
