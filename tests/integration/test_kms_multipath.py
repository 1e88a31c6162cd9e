"""A session split over two disjoint paths A-B-D and A-C-D, on four real KMs (loopback, mTLS):
keys identical at both ends, key traffic over both paths in the legs' proportion."""

import uuid

import pytest
import requests

from kms.key_manager import KmConfig
from kms.local_network import LocalKmNetwork, link_id, node_qkdn_id, virtual_link

pytestmark = pytest.mark.integration

SAES = {"sae-a": "A", "sae-d": "D"}
SESSION = "12121212-2222-4333-8444-555555555555"
LEG_B = "b0b0b0b0-2222-4333-8444-555555555555"   # A-B-D, 3 kbit/s reserved
LEG_C = "c0c0c0c0-2222-4333-8444-555555555555"   # A-C-D, 1 kbit/s reserved
LEGS = {LEG_B: ("A", "B", "D", 3000), LEG_C: ("A", "C", "D", 1000)}


def running_config(node):
    """What the controller pushes to ``node`` for the two-leg session (config_payloads)."""
    links = []
    for leg, (src, mid, dst, rate) in LEGS.items():
        path = [src, mid, dst]
        if node not in path:
            continue
        i = path.index(node)
        links.append(virtual_link(leg, SESSION, path[i - 1] if i > 0 else None,
                                  path[i + 1] if i < 2 else None, ends=(src, dst),
                                  bandwidth=rate))
    body = {"qkdn_id": node_qkdn_id(node), "qkd_links": {"qkd_link": links}}
    if node in ("A", "D"):
        body["qkd_applications"] = {"qkd_app": [{
            "app_id": SESSION, "app_type": "etsi-qkd-node-types:CLIENT",
            "server_app_id": "sae-a", "client_app_id": ["sae-d"],
            "backing_qkdl_id": sorted(LEGS), "local_qkdn_id": node_qkdn_id(node),
            "qkdn-key-manager:km_session": {"role": "source" if node == "A" else "destination",
                                            "idle_timeout": 60}}]}
    return {"etsi-qkd-sdn-node:qkd_node": body}


LINKS = [("A", "B"), ("B", "D"), ("A", "C"), ("C", "D")]


@pytest.fixture
def net(tmp_path):
    with LocalKmNetwork(tmp_path, ["A", "B", "C", "D"], LINKS, SAES,
                        config=KmConfig(relay_batch=4, require_controller=True)) as net:
        for a, b in LINKS:
            net.feed(a, b, blocks=8)
        for name in "ABCD":
            net.kms[name].apply_running_config(running_config(name))
        yield net


def client(net, sae):
    s = requests.Session()
    s.trust_env = False
    s.cert, s.verify = net.sae_cert(sae), net.ca
    return s


def consumed(net, a, b):
    return net.kms[a].store(link_id(a, b)).levels().consumed_bytes


def test_keys_identical_at_both_ends_and_split_over_both_legs(net):
    master, slave = client(net, "sae-a"), client(net, "sae-d")
    enc_url = net.kms["A"].base_url + "/api/v1/keys/sae-d/enc_keys"
    dec_url = net.kms["D"].base_url + "/api/v1/keys/sae-a/dec_keys"
    for _ in range(16):
        r = master.post(enc_url, json={"number": 4, "size": 256}, timeout=10)
        assert r.status_code == 200, r.text
        keys = r.json()["keys"]
        got = slave.post(dec_url, json={"key_IDs": [{"key_ID": k["key_ID"]} for k in keys]},
                         timeout=10)
        assert got.status_code == 200, got.text
        assert got.json()["keys"] == keys
    # 16 messages of 4 keys × 32 bytes + 64 bytes of MAC keys each, 3:1 over the legs
    per_message = 4 * 32 + 64
    assert consumed(net, "A", "B") == 12 * per_message
    assert consumed(net, "A", "C") == 4 * per_message
    # each relay forwarded what it received, on its own leg only
    assert consumed(net, "B", "D") == consumed(net, "A", "B")
    assert consumed(net, "C", "D") == consumed(net, "A", "C")
    assert net.kms["B"].pool.counts() == {} and net.kms["C"].pool.counts() == {}


def test_a_leg_out_of_key_is_skipped(tmp_path):
    with LocalKmNetwork(tmp_path, ["A", "B", "C", "D"], LINKS, SAES,
                        config=KmConfig(relay_batch=1, require_controller=True)) as net:
        for a, b in [("A", "B"), ("B", "D"), ("C", "D")]:   # A-C holds no key at all
            net.feed(a, b, blocks=8)
        for name in "ABCD":
            net.kms[name].apply_running_config(running_config(name))
        master = client(net, "sae-a")
        for _ in range(6):
            r = master.post(net.kms["A"].base_url + "/api/v1/keys/sae-d/enc_keys",
                            json={"number": 1}, timeout=10)
            assert r.status_code == 200, r.text
        assert consumed(net, "A", "B") == 6 * (32 + 64) and consumed(net, "A", "C") == 0


def test_004_stream_over_two_legs(net):
    a, d = client(net, "sae-a"), client(net, "sae-d")
    base_a, base_d = (net.kms[x].base_url + "/api/v1/etsi004" for x in "AD")
    qos = {"key_chunk_size": 32, "timeout": 5000}
    r = a.post(base_a + "/open_connect", json={"source": "sae-a", "destination": "sae-d",
                                               "QoS": qos, "Key_stream_ID": None}, timeout=10).json()
    assert r["status"] in (0, 1), r
    ksid = r["Key_stream_ID"]
    r = d.post(base_d + "/open_connect", json={"source": "sae-d", "destination": "sae-a",
                                               "QoS": qos, "Key_stream_ID": ksid}, timeout=10).json()
    assert r["status"] == 0, r
    for index in range(40):   # 16 keys per relay message (PULL_BATCH): three messages at least
        ka = a.post(base_a + "/get_key", json={"Key_stream_ID": ksid, "index": index},
                    timeout=10).json()
        kd = d.post(base_d + "/get_key", json={"Key_stream_ID": ksid, "index": index},
                    timeout=10).json()
        assert ka["status"] == 0 and kd["status"] == 0, (ka, kd)
        assert ka["key_buffer"] == kd["key_buffer"]
    assert consumed(net, "A", "B") > 0 and consumed(net, "A", "C") > 0
    assert uuid.UUID(ksid)


def test_reverse_direction_over_both_legs(net):
    """The SAE at D as master: D's legs have only a previous hop; relays route by leg."""
    master, slave = client(net, "sae-d"), client(net, "sae-a")
    for _ in range(4):
        r = master.post(net.kms["D"].base_url + "/api/v1/keys/sae-a/enc_keys",
                        json={"number": 4}, timeout=10)
        assert r.status_code == 200, r.text
        keys = r.json()["keys"]
        got = slave.post(net.kms["A"].base_url + "/api/v1/keys/sae-d/dec_keys",
                         json={"key_IDs": [{"key_ID": k["key_ID"]} for k in keys]}, timeout=10)
        assert got.json()["keys"] == keys
    assert consumed(net, "D", "B") == 3 * (4 * 32 + 64)
    assert consumed(net, "D", "C") == 1 * (4 * 32 + 64)
