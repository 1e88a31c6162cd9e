"""Three KMs A–B–C on loopback: trusted-node relay configured through apply_running_config
(RFC 7951 JSON of etsi-qkd-sdn-node:qkd_node), tamper and replay rejection."""

import copy
import logging
import uuid

import pytest
import requests

from kms.key_manager import KmConfig
from kms.key_pool import KeyRecord
from kms.local_network import LocalKmNetwork, link_id, node_qkdn_id, virtual_link
from kms.relay import CONTROL_PATH, EXT_KEYS_PATH, build_ext_keys, canonical

pytestmark = pytest.mark.integration

SAES = {"sae-a": "A", "sae-c": "C", "sae-b": "B"}
SESSION = str(uuid.UUID("11111111-2222-4333-8444-555555555555"))
VIRT = str(uuid.UUID("99999999-2222-4333-8444-555555555555"))


def running_config(node, prev, nxt, with_app=True):
    """What a controller (or operator) would edit-config on ``node`` for the A–B–C session."""
    link = virtual_link(VIRT, SESSION, prev, nxt, ends=("A", "C"), bandwidth=100000)
    node_body = {"qkdn_id": node_qkdn_id(node), "qkd_links": {"qkd_link": [link]}}
    if with_app:
        node_body["qkd_applications"] = {"qkd_app": [{
            "app_id": SESSION, "app_type": "etsi-qkd-node-types:CLIENT",
            "server_app_id": "sae-a", "client_app_id": ["sae-c"], "app_priority": 5,
            "backing_qkdl_id": [VIRT], "local_qkdn_id": node_qkdn_id(node),
            "app_qos": {"max_bandwidth": 10_000_000},
            "qkdn-key-manager:km_session": {"role": "source" if node == "A" else "destination",
                                            "idle_timeout": 60},
        }]}
    return {"etsi-qkd-sdn-node:qkd_node": node_body}


@pytest.fixture
def net(tmp_path):
    with LocalKmNetwork(tmp_path, ["A", "B", "C"], [("A", "B"), ("B", "C")], SAES,
                        config=KmConfig(relay_batch=1)) as net:
        net.feed("A", "B", blocks=4)
        net.feed("B", "C", blocks=4)
        net.kms["A"].apply_running_config(running_config("A", None, "B"))
        net.kms["B"].apply_running_config(running_config("B", "A", "C", with_app=False))
        net.kms["C"].apply_running_config(running_config("C", "B", None))
        yield net


def client(net, sae):
    s = requests.Session()
    s.trust_env = False
    s.cert, s.verify = net.sae_cert(sae), net.ca
    return s


def km_session(net, node):
    s = requests.Session()
    s.trust_env = False
    km = net.pki["kms"][node]
    s.cert, s.verify = (km["cert"], km["key"]), net.ca
    return s


def enc(net, number=2, size=256):
    return client(net, "sae-a").post(net.kms["A"].base_url + "/api/v1/keys/sae-c/enc_keys",
                                     json={"number": number, "size": size}, timeout=10)


def dec(net, keys, node="C", slave="sae-c", master="sae-a"):
    return client(net, slave).post(net.kms[node].base_url + f"/api/v1/keys/{master}/dec_keys",
                                   json={"key_IDs": [{"key_ID": k["key_ID"]} for k in keys]}, timeout=10)


def test_three_node_relay_delivers_the_same_keys_and_consumes_exactly_k_per_hop(net):
    ab = net.kms["A"].store(link_id("A", "B"))
    bc = net.kms["B"].store(link_id("B", "C"))
    before_ab, before_bc = ab.levels().consumed_bytes, bc.levels().consumed_bytes
    r = enc(net, number=4, size=256)
    assert r.status_code == 200, r.text
    keys = r.json()["keys"]
    r2 = dec(net, keys)
    assert r2.status_code == 200, r2.text
    assert r2.json()["keys"] == keys
    # |K| = 4·32 bytes pad + 32 request MAC + 32 ack MAC (sender's half), at each end of each hop
    assert ab.levels().consumed_bytes - before_ab == 4 * 32 + 32 + 32
    assert bc.levels().consumed_bytes - before_bc == 4 * 32 + 32 + 32
    assert net.kms["C"].store(link_id("B", "C")).levels().consumed_bytes == 4 * 32 + 64
    # batching: a short pool is refilled with one message of relay_batch keys (surplus ready)
    net.kms["A"].config = KmConfig(relay_batch=10)
    keys = enc(net, number=1).json()["keys"]
    assert ab.levels().consumed_bytes - before_ab == (4 + 10) * 32 + 2 * 64
    assert net.kms["A"].pool.ready_count("sae-a", "sae-c", 256) == 9
    assert dec(net, keys).json()["keys"] == keys
    # the relay never stores the end-to-end key
    assert net.kms["B"].pool.counts() == {}
    assert dec(net, keys).status_code == 400


def test_reverse_direction_master_at_c(net):
    r = client(net, "sae-c").post(net.kms["C"].base_url + "/api/v1/keys/sae-a/enc_keys",
                                  json={"number": 1}, timeout=10)
    assert r.status_code == 200, r.text
    keys = r.json()["keys"]
    assert dec(net, keys, node="A", slave="sae-a", master="sae-c").json()["keys"] == keys


def test_missing_rule_on_relay_delivers_to_neither(net):
    net.kms["B"].apply_running_config({"etsi-qkd-sdn-node:qkd_node": {"qkdn_id": node_qkdn_id("B")}})
    r = enc(net)
    assert r.status_code == 503
    assert net.kms["A"].pool.counts().get("ready", 0) == 0
    assert net.kms["C"].pool.counts().get("ready", 0) == 0


def test_tampered_and_replayed_relay_messages_rejected(net, caplog):
    a_link = net.kms["A"].store_for_peer("B")
    rec = [KeyRecord(str(uuid.uuid4()), "sae-a", "sae-c", bytes(range(32)), session=SESSION)]
    body, _ = build_ext_keys(SESSION, rec, a_link)
    tampered = copy.deepcopy(body)
    tampered["batch"]["slave_SAE_ID"] = "sae-b"        # redirect the key to another SAE
    caplog.set_level(logging.WARNING, logger="kms.relay")
    s = km_session(net, "A")
    url = net.kms["B"].base_url + EXT_KEYS_PATH
    r = s.post(url, data=canonical(tampered), headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 403
    assert any("rejected" in m for m in caplog.messages)
    assert not any(bytes(range(32)).hex() in m for m in caplog.messages)
    # the untampered original now references consumed key: a replay, also rejected
    r = s.post(url, data=canonical(body), headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 403
    # a genuine message is accepted and a replay of it refused
    body, _ = build_ext_keys(SESSION, [KeyRecord(str(uuid.uuid4()), "sae-a", "sae-c", bytes(32), session=SESSION)], a_link)
    assert s.post(url, data=canonical(body), headers={"Content-Type": "application/json"}, timeout=10).status_code == 200
    assert s.post(url, data=canonical(body), headers={"Content-Type": "application/json"}, timeout=10).status_code == 403
    assert net.kms["B"].relay.rejected_messages == 3
    # a key sent by a non-neighbour KM (C → A is not a link) is refused
    r = km_session(net, "C").post(net.kms["A"].base_url + EXT_KEYS_PATH, json=body, timeout=10)
    assert r.status_code == 401


def call004(net, sae, node, op, body):
    s = client(net, sae)
    return s.post(net.kms[node].base_url + f"/api/v1/etsi004/{op}", json=body, timeout=10).json()


def test_etsi004_stream_through_the_relay(net):
    qos = {"key_chunk_size": 32, "timeout": 1000, "ttl": 30}
    r = call004(net, "sae-a", "A", "open_connect", {"source": "sae-a", "destination": "sae-c", "QoS": qos})
    assert r["status"] == 1 and r["Key_stream_ID"] == SESSION   # the controller's session ID
    r = call004(net, "sae-c", "C", "open_connect", {"source": "sae-c", "destination": "sae-a", "QoS": qos,
                                                    "Key_stream_ID": SESSION})
    assert r["status"] == 0
    c0 = call004(net, "sae-c", "C", "get_key", {"Key_stream_ID": SESSION, "index": 0})  # pulled via B
    a0 = call004(net, "sae-a", "A", "get_key", {"Key_stream_ID": SESSION, "index": 0})
    assert c0["status"] == a0["status"] == 0 and c0["key_buffer"] == a0["key_buffer"]
    assert net.kms["B"].pool.counts() == {}


def test_relay_whose_rule_lands_after_the_keys_waits_for_it(net):
    """The controller configures a path's KMs in one parallel wave: keys may reach a relay
    a moment before its rule does; the relay waits for it instead of refusing."""
    import threading

    net.kms["B"].apply_running_config({"etsi-qkd-sdn-node:qkd_node": {"qkdn_id": node_qkdn_id("B")}})
    late = threading.Timer(0.3, net.kms["B"].apply_running_config,
                           (running_config("B", "A", "C", with_app=False),))
    late.start()
    try:
        r = enc(net)
    finally:
        late.join()
    assert r.status_code == 200, r.text
    keys = r.json()["keys"]
    assert dec(net, keys).json()["keys"] == keys


def test_stream_control_goes_end_to_end_and_waits_for_the_far_ends_rule(net):
    """A 004 stream's control messages go straight to the KM of the other SAE (no key
    material: the relay B does not see them). The controller configures a path's KMs in
    parallel, so the open may reach the far end before its configuration: C waits for its
    rule, then opens its side of the stream on the configured session."""
    import threading

    net.kms["C"].apply_running_config({"etsi-qkd-sdn-node:qkd_node": {"qkdn_id": node_qkdn_id("C")}})
    late = threading.Timer(0.3, net.kms["C"].apply_running_config,
                           (running_config("C", "B", None),))
    control_to = []
    relay_a = net.kms["A"].relay
    original = relay_a._post
    relay_a._post = lambda node, path, body: (control_to.append(node) if path == CONTROL_PATH
                                              else None) or original(node, path, body)
    late.start()
    qos = {"key_chunk_size": 32, "timeout": 1000, "ttl": 30}
    try:
        r = call004(net, "sae-a", "A", "open_connect",
                    {"source": "sae-a", "destination": "sae-c", "QoS": qos})
    finally:
        late.join()
    assert r["status"] == 1 and r["Key_stream_ID"] == SESSION
    far_end = net.kms["C"].streams._streams.get(SESSION)
    assert far_end is not None and not far_end.originator
    assert far_end.session.session_id == SESSION
    r = call004(net, "sae-c", "C", "open_connect", {"source": "sae-c", "destination": "sae-a",
                                                    "QoS": qos, "Key_stream_ID": SESSION})
    assert r["status"] == 0
    c0 = call004(net, "sae-c", "C", "get_key", {"Key_stream_ID": SESSION, "index": 0})
    a0 = call004(net, "sae-a", "A", "get_key", {"Key_stream_ID": SESSION, "index": 0})
    assert c0["status"] == a0["status"] == 0 and c0["key_buffer"] == a0["key_buffer"]
    assert control_to and set(control_to) == {"C"}   # never through the relay B
