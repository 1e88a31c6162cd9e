from pathlib import Path

from qkdn.node_model import QKD_NODE, channel_attenuation_db, initial_node_config
from qkdn.topology import load_topology

REPO = Path(__file__).resolve().parents[3]
PAPER = load_topology(REPO / "topologies" / "paper.yaml")


def test_hub_node_has_five_interfaces_and_links():
    body = initial_node_config(PAPER, "0")[QKD_NODE]
    assert body["qkdn_id"] == PAPER.node("0").qkdn_id
    assert len(body["qkd_interfaces"]["qkd_interface"]) == 5
    links = body["qkd_links"]["qkd_link"]
    assert len(links) == 5
    assert {link["qkdl_type"] for link in links} == {"etsi-qkd-node-types:PHYS"}
    assert all(link["phys_qkd_role"] == "etsi-qkd-node-types:TRANSMITTER" for link in links)


def test_both_ends_describe_the_same_link():
    link = PAPER.links[5]  # 4-5
    four = {item["qkdl_id"]: item for item in
            initial_node_config(PAPER, "4")[QKD_NODE]["qkd_links"]["qkd_link"]}[link.qkdl_id]
    five = {item["qkdl_id"]: item for item in
            initial_node_config(PAPER, "5")[QKD_NODE]["qkd_links"]["qkd_link"]}[link.qkdl_id]
    assert four["qkdl_local"] == five["qkdl_remote"]
    assert four["qkdl_remote"] == five["qkdl_local"]
    assert five["phys_qkd_role"].endswith("RECEIVER")
    assert four["phys_channel_att"] == five["phys_channel_att"] == "2.000"


def test_attenuation_uses_preset_and_overrides():
    assert channel_attenuation_db(PAPER.links[0]) == 3.0
    from dataclasses import replace

    assert channel_attenuation_db(replace(PAPER.links[0], params={"alpha_db_per_km": 0.25})) == 3.75
