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
