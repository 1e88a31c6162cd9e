import pytest

from bench.kms_bench import CHAIN, _chain_configs, _slope
from kms.local_network import node_qkdn_id


def _body(configs, node):
    return configs[node]["etsi-qkd-sdn-node:qkd_node"]


def test_chain_sessions_have_an_application_at_both_ends_and_a_link_at_every_hop():
    configs = _chain_configs(CHAIN)
    # sessions A→C, A→D, A→E, A→F (A→B is a direct pair): A holds all four
    assert len(_body(configs, "A")["qkd_applications"]["qkd_app"]) == 4
    assert len(_body(configs, "A")["qkd_links"]["qkd_link"]) == 4
    assert "qkd_applications" not in _body(configs, "B")          # relay only
    assert len(_body(configs, "B")["qkd_links"]["qkd_link"]) == 4
    assert [a["client_app_id"] for a in _body(configs, "F")["qkd_applications"]["qkd_app"]] \
        == [["sae-f"]]
    (last,) = _body(configs, "F")["qkd_links"]["qkd_link"]
    assert last["virt_prev_hop"] == node_qkdn_id("E") and "virt_next_hop" not in last
    # C ends the A→C session and relays the three longer ones
    links_c = _body(configs, "C")["qkd_links"]["qkd_link"]
    assert sorted("virt_next_hop" in link for link in links_c) == [False, True, True, True]


def test_chain_configs_are_valid_etsi_015():
    from qkd_agent.datastore import Datastore
    from qkd_agent.yang_context import load_context

    ctx = load_context()
    for config in _chain_configs(CHAIN).values():
        store = Datastore(ctx, config)   # validated by libyang; ConfigError if not
        assert store.running_json()["etsi-qkd-sdn-node:qkd_node"]["qkd_links"]


def test_slope():
    assert _slope([1, 2, 3, 4], [3.0, 5.0, 7.0, 9.0]) == pytest.approx(2.0)
