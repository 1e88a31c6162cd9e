"""Pure parts of the scale benchmark: the grid topology and the random session pairs."""

import pytest
import yaml

from bench.scale_bench import random_pairs
from bench.scale_topology import grid_yaml
from qkdn.topology import parse_topology


def test_random_pairs_are_distinct_and_deterministic():
    saes = [f"sae-{i}" for i in range(10)]
    pairs = random_pairs(saes, 45, seed=3)
    assert len({frozenset(p) for p in pairs}) == 45 and pairs == random_pairs(saes, 45, seed=3)
    assert all(a != b for a, b in pairs)
    with pytest.raises(ValueError):
        random_pairs(saes, 46, seed=3)


@pytest.mark.parametrize("rows,cols", [(10, 10), (4, 5), (1, 2)])
def test_grid_topology_loads_with_every_link(rows, cols):
    topology = parse_topology(yaml.safe_load(grid_yaml(rows, cols)))
    assert len(topology.nodes) == rows * cols == len(topology.saes)
    assert len(topology.links) == rows * (cols - 1) + cols * (rows - 1)
    degrees = {n.name: len(topology.links_of(n.name)) for n in topology.nodes}
    assert max(degrees.values()) <= 4


def test_shipped_grid_is_the_generated_one():
    from pathlib import Path
    shipped = Path(__file__).resolve().parents[3] / "topologies" / "grid10x10.yaml"
    assert shipped.read_text() == grid_yaml(10, 10)


def test_cpu_by_process_class_sums_children_by_kind():
    import os

    from bench.scale_bench import class_cpu_s

    me = os.getpid()
    children = {"a": {"kind": "node", "pid": me}, "b": {"kind": "node", "pid": me},
                "c": {"kind": "controller", "pid": me}, "gone": {"kind": "node", "pid": 0}}
    sum(i * i for i in range(200_000))  # some CPU of our own
    cpu = class_cpu_s(me, children)
    assert set(cpu) == {"supervisor", "clients", "nodes", "controller"}
    assert cpu["nodes"] == pytest.approx(2 * cpu["controller"], rel=0.05)
    assert cpu["clients"] > 0


def test_agent_polls_read_from_the_controller_snapshot(tmp_path):
    import json

    from bench.scale_bench import agent_polls

    assert agent_polls(tmp_path) == {}
    (tmp_path / "controller").mkdir()
    (tmp_path / "controller" / "sessions.json").write_text(json.dumps({"agents": {
        "n-0-0": {"get_bytes": 1000, "poll_s": 5.0},
        "n-0-1": {"get_bytes": 3000, "poll_s": 7.0},
        "n-0-2": {"get_bytes": 2000, "poll_s": 6.0}}}))
    assert agent_polls(tmp_path) == {"get_bytes_median": 2000, "get_bytes_max": 3000,
                                     "poll_s_median": 6.0, "poll_s_max": 7.0}
