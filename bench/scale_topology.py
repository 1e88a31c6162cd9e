"""Grid topologies for the scale benchmark (``topologies/grid10x10.yaml`` is made by this).

``python -m bench.scale_topology ROWS COLS > topologies/gridRxC.yaml``

A ``rows × cols`` grid of nodes (``n-<row>-<col>``), each linked to its right and lower
neighbour: ``rows·(cols-1) + cols·(rows-1)`` links of one length (default 80 km, the
``reference`` preset in rate mode: about 320 kbit/s of key each, a backbone span). One SAE per
node (``sae-<row>-<col>``), one user per SAE, all on one SLA that allows many sessions at a
modest rate, so that 1,000 sessions between random pairs fit the links.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml


def grid_topology(rows: int, cols: int, *, length_km: float = 80.0, max_bps: int = 2000,
                  max_sessions: int = 200, idle_timeout_s: int = 600) -> dict[str, Any]:
    """The topology file content (a mapping) of a ``rows × cols`` grid."""
    if rows < 1 or cols < 1 or rows * cols < 2:
        raise ValueError("a grid needs at least two nodes")

    def name(r: int, c: int) -> str:
        return f"n-{r}-{c}"

    nodes = [{"name": name(r, c), "location": f"grid-{r}-{c}"}
             for r in range(rows) for c in range(cols)]
    links = []
    for r in range(rows):
        for c in range(cols):
            if c + 1 < cols:
                links.append({"a": name(r, c), "b": name(r, c + 1)})
            if r + 1 < rows:
                links.append({"a": name(r, c), "b": name(r + 1, c)})
    return {
        "name": f"grid{rows}x{cols}",
        "description": f"{rows} x {cols} grid backbone, {length_km:g} km spans "
                       "(scale benchmark; bench/scale_topology.py)",
        "defaults": {"link": {"preset": "reference", "mode": "rate", "length_km": length_km}},
        "nodes": nodes,
        "links": links,
        "slas": [{"name": "bulk", "max_bps": max_bps, "min_bps": 64, "max_priority": 5,
                  "max_sessions": max_sessions, "idle_timeout_s": idle_timeout_s}],
        "users": [{"name": f"user-{r}-{c}", "sla": "bulk"}
                  for r in range(rows) for c in range(cols)],
        "saes": [{"id": f"sae-{r}-{c}", "node": name(r, c), "user": f"user-{r}-{c}"}
                 for r in range(rows) for c in range(cols)],
    }


def grid_yaml(rows: int, cols: int, **options: Any) -> str:
    header = (f"# {rows} x {cols} grid for the scale benchmark (docs/benchmarks.md), made by\n"
              f"# python -m bench.scale_topology {rows} {cols}\n")
    return header + yaml.safe_dump(grid_topology(rows, cols, **options), sort_keys=False,
                                   default_flow_style=None, width=100)


if __name__ == "__main__":
    sys.stdout.write(grid_yaml(int(sys.argv[1]), int(sys.argv[2])))
