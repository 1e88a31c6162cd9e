"""Keys through a running network (separate node processes, NETCONF, HTTPS + mTLS):
adjacent pairs without a controller, and a trusted-node relay 2 → 0 → 3 installed by an
operator with plain NETCONF edit-config (static provisioning)."""

from __future__ import annotations

import time
import uuid

import pytest
import requests

from qkdn.namespaces import ETSI_NODE_NS
from qkdn.netconf_client import connect
from qkdn.topology import load_topology
from sdn_controller.config_payloads import session_config_payload, to_xml
from sdn_controller.routing import Path, Route, RouteLeg
from sdn_controller.session_config import QoS, build_km_configs, token_bucket_for

from .conftest import PAPER

pytestmark = pytest.mark.integration


def _sae_session(network, sae_id: str) -> requests.Session:
    sae = network.endpoints["saes"][sae_id]
    session = requests.Session()
    session.trust_env = False  # else REQUESTS_CA_BUNDLE would replace the network's CA
    session.cert = (sae["cert"], sae["key"])
    session.verify = network.endpoints["ca_cert"]
    return session


def _enc(network, a: str, b: str, *, number: int = 2, attempts: int = 40) -> list[dict]:
    """enc_keys at a's KM for b's SAE; retried while links warm up or the bucket refills."""
    master = _sae_session(network, f"sae-{a}")
    url_a = network.endpoints["nodes"][a]["etsi014"]
    for _ in range(attempts):
        enc = master.get(f"{url_a}/sae-{b}/enc_keys", params={"number": number}, timeout=30)
        if enc.status_code == 200:
            return enc.json()["keys"]
        assert enc.status_code == 503, enc.text  # only "no key yet" is worth waiting for
        time.sleep(0.5)
    pytest.fail(f"no key for {a}->{b}: {enc.text}")


def _enc_dec(network, a: str, b: str, *, number: int = 2):
    """enc_keys at a's KM for b, then dec_keys at b's KM."""
    slave = _sae_session(network, f"sae-{b}")
    url_b = network.endpoints["nodes"][b]["etsi014"]
    keys = _enc(network, a, b, number=number)
    dec = slave.post(f"{url_b}/sae-{a}/dec_keys",
                     json={"key_IDs": [{"key_ID": k["key_ID"]} for k in keys]}, timeout=30)
    assert dec.status_code == 200, dec.text
    return keys, dec.json()["keys"], (slave, url_b)


@pytest.mark.parametrize("a, b", [("0", "1"), ("5", "4")])
def test_adjacent_pair_gets_identical_keys_once(paper_network, a, b):
    enc_keys, dec_keys, (slave, url_b) = _enc_dec(paper_network, a, b)
    assert dec_keys == enc_keys
    assert all(len(k["key"]) == 44 for k in enc_keys)  # 256-bit keys, base64
    again = slave.post(f"{url_b}/sae-{a}/dec_keys",
                       json={"key_IDs": [{"key_ID": enc_keys[0]["key_ID"]}]}, timeout=30)
    assert again.status_code in (400, 401) and "key" not in again.json()


def test_other_sae_cannot_fetch_a_key(paper_network):
    fresh = _enc(paper_network, "0", "1", number=1)[0]
    thief = _sae_session(paper_network, "sae-2")
    url1 = paper_network.endpoints["nodes"]["1"]["etsi014"]
    stolen = thief.post(f"{url1}/sae-0/dec_keys",
                        json={"key_IDs": [{"key_ID": fresh["key_ID"]}]}, timeout=30)
    assert stolen.status_code in (400, 401)
    assert fresh["key"] not in stolen.text


def _route_2_0_3():
    topo = load_topology(PAPER)
    ids = {node.name: node.qkdn_id for node in topo.nodes}

    def link(x, y):
        return next(l.qkdl_id for l in topo.links if set(l.ends()) == {x, y})

    path = Path(nodes=(ids["2"], ids["0"], ids["3"]), links=(link("2", "0"), link("0", "3")),
                bottleneck_bps=1_000_000, cost=2.0)
    return ids, Route(legs=(RouteLeg(path=path, rate_bps=1_000_000),))


def test_relay_through_trusted_node_configured_by_netconf(paper_network):
    ids, route = _route_2_0_3()
    session_id = str(uuid.uuid4())
    configs = build_km_configs(
        session_id=session_id, generation=0, route=route,
        initiator=("sae-2", ids["2"]), responder=("sae-3", ids["3"]),
        qos=QoS(max_bps=1_000_000, priority=1), priority=1, idle_timeout_s=600,
        bucket=token_bucket_for(1_000_000, burst_s=2.0))
    names = {qkdn_id: name for name, qkdn_id in ids.items()}
    for config in configs:
        nc = paper_network.netconf(names[config.node_id])
        with connect(nc["host"], nc["port"], nc["username"], nc["password"]) as session:
            session.edit_config(target="running", config=to_xml(session_config_payload(config)))

    # the relay node holds the forwarding rule, and only its neighbours on the path
    nc0 = paper_network.netconf("0")
    with connect(nc0["host"], nc0["port"], nc0["username"], nc0["password"]) as session:
        data = session.get_config(source="running").data_ele
    ns = {"n": ETSI_NODE_NS}
    virt = [link for link in data.iterfind(".//n:qkd_link", ns)
            if link.findtext("n:qkdl_type", namespaces=ns).endswith("VIRT")]
    assert len(virt) == 1
    assert virt[0].findtext("n:virt_prev_hop", namespaces=ns) == ids["2"]
    assert virt[0].findtext("n:virt_next_hop", namespaces=ns) == ids["3"]

    enc_keys, dec_keys, _ = _enc_dec(paper_network, "2", "3", number=3)
    assert dec_keys == enc_keys
