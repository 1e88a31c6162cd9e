from pathlib import Path

import pytest

from qkdn.errors import ConfigError
from qkdn.topology import derive_id, load_topology, parse_topology

REPO = Path(__file__).resolve().parents[3]


def test_paper_topology_is_the_papers_network():
    topo = load_topology(REPO / "topologies" / "paper.yaml")
    assert [n.name for n in topo.nodes] == ["0", "1", "2", "3", "4", "5"]
    assert sorted(tuple(sorted(link.ends())) for link in topo.links) == [
        ("0", "1"), ("0", "2"), ("0", "3"), ("0", "4"), ("0", "5"), ("4", "5")]
    assert {sae.node for sae in topo.saes} == {"0", "1", "2", "3", "4", "5"}
    assert len(topo.saes_of("0")) == 1


def test_identifiers_are_deterministic_and_distinct():
    a = load_topology(REPO / "topologies" / "paper.yaml")
    b = load_topology(REPO / "topologies" / "paper.yaml")
    assert [n.qkdn_id for n in a.nodes] == [n.qkdn_id for n in b.nodes]
    assert len({link.qkdl_id for link in a.links}) == len(a.links)
    assert a.node("0").qkdn_id == derive_id("paper", "node", "0")


def test_interface_ids_follow_link_order():
    topo = parse_topology({"nodes": [{"name": "a"}, {"name": "b"}, {"name": "c"}],
                           "links": [{"a": "a", "b": "b", "length_km": 1},
                                     {"a": "c", "b": "a", "length_km": 2}]})
    assert topo.interface_id("a", topo.links[0]) == 1
    assert topo.interface_id("a", topo.links[1]) == 2
    assert topo.interface_id("c", topo.links[1]) == 1
    assert topo.links[1].peer_of("a") == "c"


@pytest.mark.parametrize("raw, message", [
    ({"nodes": []}, "at least one node"),
    ({"nodes": [{"name": "a"}, {"name": "a"}]}, "duplicate node name"),
    ({"nodes": [{"name": "a"}], "links": [{"a": "a", "b": "z", "length_km": 1}]},
     "links[0]: unknown node 'z'"),
    ({"nodes": [{"name": "a"}, {"name": "b"}],
      "links": [{"a": "a", "b": "b"}]}, "'length_km' is required"),
    ({"nodes": [{"name": "a"}, {"name": "b"}],
      "links": [{"a": "a", "b": "b", "length_km": 1}, {"a": "b", "b": "a", "length_km": 2}]},
     "duplicate link between the same nodes: a-b"),
    ({"nodes": [{"name": "a"}, {"name": "b"}],
      "links": [{"a": "a", "b": "b", "length_km": 1, "mode": "magic"}]}, "mode must be"),
    ({"nodes": [{"name": "a", "qkdn_id": "nope"}]}, "is not a UUID"),
    ({"nodes": [{"name": "a"}, {"name": "b"}],
      "links": [{"a": "a", "b": "b", "length_km": 1, "preset": "magic"}]}, "unknown preset"),
    ({"nodes": [{"name": "a"}, {"name": "b"}],
      "links": [{"a": "a", "b": "b", "length_km": 1, "params": {"colour": 1}}]},
     "unknown physics parameter"),
    ({"nodes": [{"name": "a"}], "users": [{"name": "u", "sla": "gold"}]}, "unknown SLA"),
    ({"nodes": [{"name": "a"}], "slas": [{"name": "s", "max_bps": 0}]},
     "slas[0]: SLA s: max_bps must be positive"),
    ({"nodes": [{"name": "a"}], "slas": [{"name": "s", "max_bps": 9, "fallback": "maybe"}]},
     "fallback must be one of"),
    ({"nodes": [{"name": "a"}], "saes": [{"id": "s", "node": "a", "user": "ghost"}]},
     "unknown user"),
])
def test_defects_are_named(raw, message):
    with pytest.raises(ConfigError) as err:
        parse_topology(raw)
    assert message in str(err.value)


def test_unreadable_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_topology(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("nodes: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_topology(bad)


def test_sla_profiles_are_the_controllers_values():
    from qkdn.sla import FallbackPolicy, SlaProfile

    topo = parse_topology({"nodes": [{"name": "a"}], "slas": [
        {"name": "s", "max_bps": 9, "fallback": "hybrid"}]})
    assert topo.slas == (SlaProfile("s", 9, fallback=FallbackPolicy.HYBRID),)


def test_toml_is_accepted(tmp_path):
    path = tmp_path / "two.toml"
    path.write_text('name = "two"\n[[nodes]]\nname = "a"\n[[nodes]]\nname = "b"\n'
                    '[[links]]\na = "a"\nb = "b"\nlength_km = 5\n')
    topo = load_topology(path)
    assert topo.name == "two" and topo.links[0].length_km == 5
