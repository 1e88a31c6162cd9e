"""kms.local_network.virtual_link: the VIRT qkd_link a controller pushes for one session leg,
valid against the ETSI 015 model and read back by the KM's forwarding table."""

from kms.forwarding import build_forwarding_table
from kms.local_network import node_qkdn_id, virtual_link
from qkd_agent.datastore import Datastore
from qkd_agent.yang_context import load_context

SESSION = "11111111-2222-4333-8444-555555555555"
VIRT = "99999999-2222-4333-8444-555555555555"


def test_relay_hop_with_ends_and_bandwidth():
    link = virtual_link(VIRT, SESSION, "A", "C", ends=("A", "C"), bandwidth=100000)
    assert link == {
        "qkdl_id": VIRT, "qkdl_type": "etsi-qkd-node-types:VIRT",
        "qkdl_local": {"qkdn_id": node_qkdn_id("A")},
        "qkdl_remote": {"qkdn_id": node_qkdn_id("C")},
        "qkdl_applications": [SESSION], "virt_bandwidth": 100000,
        "virt_prev_hop": node_qkdn_id("A"), "virt_next_hop": [node_qkdn_id("C")]}


def test_path_ends_carry_one_neighbour_and_no_optional_leaves():
    assert virtual_link(VIRT, SESSION, None, "B") == {
        "qkdl_id": VIRT, "qkdl_type": "etsi-qkd-node-types:VIRT",
        "qkdl_applications": [SESSION], "virt_next_hop": [node_qkdn_id("B")]}
    assert "virt_next_hop" not in virtual_link(VIRT, SESSION, "B", None)


def test_the_datastore_accepts_it_and_the_forwarding_table_reads_it():
    running = {"etsi-qkd-sdn-node:qkd_node": {
        "qkdn_id": node_qkdn_id("B"),
        "qkd_links": {"qkd_link": [virtual_link(VIRT, SESSION, "A", "C", ends=("A", "C"),
                                                bandwidth=100000)]}}}
    store = Datastore(load_context(), running)
    rule = build_forwarding_table(store.running_json()).rule(SESSION)
    assert (rule.prev_hop, rule.next_hop) == (node_qkdn_id("A"), node_qkdn_id("C"))
    assert rule.bandwidth == 100000 and rule.leg == VIRT
