"""Multipath at the KM: one forwarding rule per route leg, and the leg scheduler."""

import pytest

from kms.errors import NoRoute
from kms.forwarding import ForwardingRule, build_forwarding_table
from kms.multipath import account, rank_legs

APP = "11111111-2222-4333-8444-555555555555"
LEG1, LEG2 = "aaaaaaaa-2222-4333-8444-555555555555", "bbbbbbbb-2222-4333-8444-555555555555"
N_A, N_B, N_C, N_D = (f"00000000-0000-4000-8000-00000000000{x}" for x in "abcd")


def virt(qkdl_id, prev, nxt, bandwidth):
    link = {"qkdl_id": qkdl_id, "qkdl_type": "etsi-qkd-node-types:VIRT",
            "qkdl_applications": [APP], "virt_bandwidth": bandwidth}
    if prev:
        link["virt_prev_hop"] = prev
    if nxt:
        link["virt_next_hop"] = [nxt]
    return link


def node(links, app=True):
    body = {"qkdn_id": N_A, "qkd_links": {"qkd_link": links}}
    if app:
        body["qkd_applications"] = {"qkd_app": [{
            "app_id": APP, "server_app_id": "sae-a", "client_app_id": ["sae-d"],
            "backing_qkdl_id": [LEG2, LEG1]}]}
    return {"etsi-qkd-sdn-node:qkd_node": body}


def test_every_leg_of_a_session_is_a_rule():
    table = build_forwarding_table(node([virt(LEG2, None, N_C, 1000), virt(LEG1, None, N_B, 3000)]))
    legs = table.legs_of(APP)
    assert [(r.leg, r.next_hop, r.bandwidth) for r in legs] == [(LEG1, N_B, 3000), (LEG2, N_C, 1000)]
    assert table.is_multipath(APP) and table.rule(APP) is legs[0]
    assert table.rule(APP, LEG2).forward_from(None) == N_C
    with pytest.raises(NoRoute):
        table.rule(APP, "cccccccc-2222-4333-8444-555555555555")


def test_relay_on_two_legs_tells_them_apart_by_leg():
    """B relays both legs A-B-C-D and A-B-D: from A, the leg decides the next hop."""
    table = build_forwarding_table(node([virt(LEG1, N_A, N_C, 10), virt(LEG2, N_A, N_D, 10)],
                                        app=False))
    assert table.rule(APP, LEG1).forward_from(N_A) == N_C
    assert table.rule(APP, LEG2).forward_from(N_A) == N_D
    assert table.rule(APP, LEG2).forward_from(N_D) == N_A


def test_single_path_session_is_not_multipath():
    table = build_forwarding_table(node([virt(LEG1, None, N_B, 3000)]))
    assert not table.is_multipath(APP) and len(table.legs_of(APP)) == 1


@pytest.mark.parametrize("weights,bits", [((3000, 1000), 256), ((1, 1, 1), 8192), ((5000, 1), 64),
                                          ((700, 300), 1000)])
def test_scheduler_follows_the_legs_rates_within_one_message(weights, bits):
    legs = tuple(ForwardingRule("s", None, f"n{i}", w, f"leg-{i}") for i, w in enumerate(weights))
    credits: dict[str, float] = {}
    sent = {rule.leg: 0 for rule in legs}
    total = sum(weights)
    for n in range(1, 401):
        chosen = rank_legs(legs, credits)[0]
        credits = account(legs, credits, chosen, bits)
        sent[chosen.leg] += bits
        for rule in legs:  # never more than one message away from its share
            assert abs(sent[rule.leg] - n * bits * rule.bandwidth / total) <= bits + 1e-6


def test_skipped_leg_is_owed_more_next_time():
    legs = (ForwardingRule("s", None, "b", 1, "l1"), ForwardingRule("s", None, "c", 1, "l2"))
    credits = account(legs, {}, legs[1], 100)   # l1 was ranked first but had no key
    assert rank_legs(legs, credits)[0].leg == "l1"
    assert credits["l1"] == 50 and credits["l2"] == -50
