"""Forwarding table from RFC 7951 JSON of etsi-qkd-sdn-node:qkd_node."""

import pytest

from kms.errors import NoRoute
from kms.forwarding import Role, build_forwarding_table

APP = "11111111-2222-4333-8444-555555555555"
VIRT = "99999999-2222-4333-8444-555555555555"
PHYS = "88888888-2222-4333-8444-555555555555"
N_A, N_B, N_C = ("00000000-0000-4000-8000-00000000000a", "00000000-0000-4000-8000-00000000000b",
                 "00000000-0000-4000-8000-00000000000c")


def config(prev=None, nxt=None, app=True, extra=None):
    link = {"qkdl_id": VIRT, "qkdl_type": "etsi-qkd-node-types:VIRT", "virt_bandwidth": 5000}
    if prev:
        link["virt_prev_hop"] = prev
    if nxt:
        link["virt_next_hop"] = [nxt]
    node = {"qkdn_id": N_B, "qkd_links": {"qkd_link": [link]}}
    if app:
        node["qkd_applications"] = {"qkd_app": [{
            "app_id": APP.upper(), "server_app_id": "sae-a", "client_app_id": ["sae-c"],
            "app_priority": 7, "backing_qkdl_id": [VIRT], "app_qos": {"max_bandwidth": 1000, "ttl": 30},
            "qkdn-key-manager:km_session": {"role": "relay", "idle_timeout": 60, "key_chunk_size": 32,
                                            "token_bucket": {"bucket_size": 4096, "token_rate": 512}},
            **(extra or {})}]}
    else:
        link["qkdl_applications"] = [APP]
    return {"etsi-qkd-sdn-node:qkd_node": node}


def test_relay_rule_and_session_leaves():
    table = build_forwarding_table(config(N_A, N_C))
    session = table.sessions[APP]
    assert session.sae_ids == {"sae-a", "sae-c"} and session.priority == 7
    assert (session.bucket_size, session.token_rate, session.idle_timeout) == (4096, 512, 60.0)
    assert session.role is Role.RELAY and session.max_bandwidth == 1000 and session.ttl == 30
    assert session.key_chunk_size == 32
    rule = table.rule(APP)
    assert rule.forward_from(N_A) == N_C and rule.forward_from(N_C) == N_A
    with pytest.raises(NoRoute):
        rule.forward_from("00000000-0000-4000-8000-0000000000ff")
    assert table.session_for_pair("sae-c", "sae-a") is session


def test_link_only_relay_and_endpoints():
    table = build_forwarding_table(config(N_A, N_C, app=False))
    assert table.rule(APP).bandwidth == 5000 and not table.sessions
    src = build_forwarding_table(config(None, N_B)).rule(APP)
    assert src.forward_from(None) == N_B and src.forward_from(N_B) is None


def test_direct_session_over_a_phys_link():
    cfg = config(N_A, N_C)
    node = cfg["etsi-qkd-sdn-node:qkd_node"]
    node["qkd_links"]["qkd_link"] = [{"qkdl_id": PHYS, "qkdl_type": "etsi-qkd-node-types:PHYS",
                                      "qkdl_remote": {"qkdn_id": N_C}}]
    node["qkd_applications"]["qkd_app"][0]["backing_qkdl_id"] = [PHYS]
    assert build_forwarding_table(cfg).rule(APP).forward_from(None) == N_C


def test_empty_config():
    table = build_forwarding_table({})
    assert not table.sessions and not table.rules
    with pytest.raises(NoRoute):
        table.rule(APP)


def test_each_session_gets_the_legs_that_back_it_and_only_those():
    apps, links = [], []
    for i in range(30):
        app = f"11111111-2222-4333-8444-{i:012d}"
        legs = [f"99999999-2222-4333-8444-{2 * i:012d}", f"99999999-2222-4333-8444-{2 * i + 1:012d}"]
        apps.append({"app_id": app, "backing_qkdl_id": legs,
                     "qkdn-key-manager:km_session": {"role": "relay"}})
        links += [{"qkdl_id": leg, "qkdl_type": "etsi-qkd-node-types:VIRT",
                   "virt_prev_hop": N_A, "virt_next_hop": [N_C], "virt_bandwidth": 100 + j}
                  for j, leg in enumerate(legs)]
    table = build_forwarding_table({"etsi-qkd-sdn-node:qkd_node": {
        "qkdn_id": N_B, "qkd_applications": {"qkd_app": apps},
        "qkd_links": {"qkd_link": links}}})
    for app in apps:
        assert [r.leg for r in table.legs[app["app_id"]]] == app["backing_qkdl_id"]
        assert [r.bandwidth for r in table.legs[app["app_id"]]] == [100, 101]
