"""Hybrid QKD + post-quantum provisioning on real KMs (cheroot, mTLS, loopback): a link cut
switches a hybrid / pqc-fallback session to derived keys (identical at both ends, marked in
014 key_extension and 004), a restored link brings QKD keys back, a qkd-only session never
gets a derived key (ADR 0009)."""

import base64
import uuid

import pytest
import requests

from kms.hybrid_provisioning import PQC_KEYS_PATH
from kms.key_manager import KmConfig
from kms.local_network import LocalKmNetwork, link_id, node_qkdn_id, virtual_link

pytestmark = pytest.mark.integration

SAES = {"sae-a": "A", "sae-b": "B", "sae-c": "C"}
SESSION_AB = "11111111-2222-4333-8444-5555555555ab"
SESSION_AC = "11111111-2222-4333-8444-5555555555ac"
VIRT = "99999999-2222-4333-8444-5555555555ac"
KM = "qkdn-key-manager"


def app(session, node, peer_node, server, client, policy, backing=()):
    role = "source" if node == SAES[server] else "destination"
    entry = {"app_id": session, "app_type": "etsi-qkd-node-types:CLIENT",
             "server_app_id": server, "client_app_id": [client], "app_priority": 0,
             "local_qkdn_id": node_qkdn_id(node), "app_qos": {"max_bandwidth": 100_000_000},
             f"{KM}:km_session": {"role": role, "idle_timeout": 60,
                                  "fallback_policy": policy}}
    if backing:
        entry["backing_qkdl_id"] = list(backing)
    elif peer_node:
        entry["remote_qkdn_id"] = node_qkdn_id(peer_node)
    return entry


def configure(net, policy_ab="hybrid", policy_ac="hybrid", ab_path=True):
    """A–B direct session and A–B–C relayed session, with the given fallback policies."""
    def virt(node, prev, nxt):
        return virtual_link(VIRT, SESSION_AC, prev, nxt, ends=("A", "C"), bandwidth=100000)

    def node(name, apps, links):
        body = {"qkdn_id": node_qkdn_id(name), "qkd_links": {"qkd_link": links}}
        if apps:
            body["qkd_applications"] = {"qkd_app": apps}
        return {"etsi-qkd-sdn-node:qkd_node": body}

    ab_a = app(SESSION_AB, "A", "B" if ab_path else None, "sae-a", "sae-b", policy_ab)
    ab_b = app(SESSION_AB, "B", "A" if ab_path else None, "sae-a", "sae-b", policy_ab)
    net.kms["A"].apply_running_config(node("A", [ab_a, app(SESSION_AC, "A", None, "sae-a", "sae-c",
                                                           policy_ac, [VIRT])],
                                           [virt("A", None, "B")]))
    net.kms["B"].apply_running_config(node("B", [ab_b], [virt("B", "A", "C")]))
    net.kms["C"].apply_running_config(node("C", [app(SESSION_AC, "C", None, "sae-a", "sae-c",
                                                     policy_ac, [VIRT])],
                                           [virt("C", "B", None)]))


@pytest.fixture
def net(tmp_path):
    with LocalKmNetwork(tmp_path, ["A", "B", "C"], [("A", "B"), ("B", "C")], SAES,
                        config=KmConfig(relay_batch=1, require_controller=True)) as net:
        net.feed("A", "B", blocks=4)
        net.feed("B", "C", blocks=4)
        yield net


def client(net, sae):
    s = requests.Session()
    s.trust_env = False
    s.cert, s.verify = net.sae_cert(sae), net.ca
    return s


def enc(net, slave="sae-b", number=2, size=256):
    r = client(net, "sae-a").post(net.kms["A"].base_url + f"/api/v1/keys/{slave}/enc_keys",
                                  json={"number": number, "size": size}, timeout=10)
    return r


def dec(net, keys, slave="sae-b"):
    node = SAES[slave]
    r = client(net, slave).post(net.kms[node].base_url + "/api/v1/keys/sae-a/dec_keys",
                                json={"key_IDs": [{"key_ID": k["key_ID"]} for k in keys]},
                                timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["keys"]


def provenances(keys):
    return {k["key_extension"]["provenance"] for k in keys}


def mode_changes(net, node="A"):
    return [body[f"{KM}:km_key_mode_change"] for n, body in net.notifications
            if n == node and f"{KM}:km_key_mode_change" in body]


def test_hybrid_session_keeps_flowing_after_a_link_cut_and_returns_to_qkd(net):
    configure(net)
    first = enc(net).json()["keys"]
    assert provenances(first) == {"qkd"}
    assert dec(net, first) == first
    net.kms["A"].set_link_up(link_id("A", "B"), False)           # the fibre is cut
    used = net.kms["A"].store_for_peer("B").levels().consumed_bytes
    r = enc(net, number=4)
    assert r.status_code == 200, r.text
    hybrid = r.json()["keys"]
    assert provenances(hybrid) == {"hybrid"}
    assert dec(net, hybrid) == hybrid                              # same bytes, same marking
    # one 256-bit seed + 512 bits of MAC key for four 256-bit keys
    assert net.kms["A"].store_for_peer("B").levels().consumed_bytes - used == 32 + 64
    net.kms["A"].set_link_up(link_id("A", "B"), True)
    back = enc(net).json()["keys"]
    assert provenances(back) == {"qkd"} and dec(net, back) == back
    assert [(c["previous_mode"], c["mode"]) for c in mode_changes(net)] == \
        [("qkd", "hybrid"), ("hybrid", "qkd")]
    assert mode_changes(net)[0]["reason"] == "link down"
    state = net.kms["A"].operational_state()["etsi-qkd-sdn-node:qkd_node"]
    session = next(a for a in state["qkd_applications"]["qkd_app"] if a["app_id"] == SESSION_AB)
    counters = session[f"{KM}:km_session"]["counters"]["provenance"]
    assert counters["hybrid_keys"] == "4" and counters["qkd_keys"] == "4"
    assert session[f"{KM}:km_session"]["key_mode"] == "qkd"


def test_pqc_fallback_session_gets_pqc_keys_even_with_an_empty_store(net):
    configure(net, policy_ab="pqc-fallback")
    net.kms["A"].set_link_up(link_id("A", "B"), False)
    store = net.kms["A"].store_for_peer("B")
    store.take_outgoing(store.available_outgoing())                # nothing left either
    keys = enc(net, number=3).json()["keys"]
    assert provenances(keys) == {"pqc"}
    assert dec(net, keys) == keys
    assert len({k["key"] for k in keys}) == 3


def test_qkd_only_session_gets_503_and_never_a_derived_key(net):
    configure(net, policy_ab="qkd-only")
    net.kms["A"].set_link_up(link_id("A", "B"), False)
    store = net.kms["A"].store_for_peer("B")
    store.take_outgoing(store.available_outgoing())
    r = enc(net)
    assert r.status_code == 503
    assert net.kms["A"].hybrid.handshakes == 0 and mode_changes(net) == []


def test_hybrid_without_any_qkd_key_is_refused_not_downgraded_to_pqc(net):
    configure(net, ab_path=False)                                  # admitted with no path
    assert enc(net).status_code == 503
    configure(net, policy_ab="pqc-fallback", ab_path=False)
    keys = enc(net).json()["keys"]
    assert provenances(keys) == {"pqc"} and dec(net, keys) == keys


def test_hybrid_across_a_trusted_node_handshakes_end_to_end(net):
    configure(net)
    net.kms["A"].set_link_up(link_id("A", "B"), False)
    keys = enc(net, slave="sae-c", number=2).json()["keys"]
    assert provenances(keys) == {"hybrid"}
    assert dec(net, keys, slave="sae-c") == keys
    assert net.kms["B"].pool.counts() == {}                        # the relay holds nothing
    assert net.kms["B"].hybrid.handshakes == 0


def test_etsi004_stream_falls_back_and_marks_metadata(net):
    configure(net)
    net.kms["A"].set_link_up(link_id("A", "B"), False)

    def call(sae, op, body):
        return client(net, sae).post(net.kms[SAES[sae]].base_url + f"/api/v1/etsi004/{op}",
                                     json=body, timeout=10).json()

    qos = {"key_chunk_size": 32, "timeout": 1000}
    assert call("sae-a", "open_connect", {"source": "sae-a", "destination": "sae-b",
                                          "QoS": qos})["status"] == 1
    assert call("sae-b", "open_connect", {"source": "sae-b", "destination": "sae-a", "QoS": qos,
                                          "Key_stream_ID": SESSION_AB})["status"] == 0
    a0 = call("sae-a", "get_key", {"Key_stream_ID": SESSION_AB, "index": 0})
    b0 = call("sae-b", "get_key", {"Key_stream_ID": SESSION_AB, "index": 0})
    assert a0["status"] == b0["status"] == 0 and a0["key_buffer"] == b0["key_buffer"]
    assert a0["provenance"] == b0["provenance"] == "hybrid"
    assert '"key_provenance":"hybrid"' in a0["metadata"]["buffer"]


def test_key_message_with_a_bad_mac_or_from_a_relay_is_refused(net):
    configure(net)
    net.kms["A"].set_link_up(link_id("A", "B"), False)
    enc(net)                                                       # establishes an epoch
    epoch = next(iter(net.kms["A"].hybrid._current.values())).epoch.epoch
    body = {"session": SESSION_AB, "epoch": epoch, "provenance": "pqc", "seed_key_ID": None,
            "keys": [{"key_ID": str(uuid.uuid4()), "master_SAE_ID": "sae-a",
                      "slave_SAE_ID": "sae-b", "size": 256}],
            "mac": base64.b64encode(b"\0" * 32).decode()}
    for sender in ("A", "C"):
        s = requests.Session()
        s.trust_env = False
        km = net.pki["kms"][sender]
        s.cert, s.verify = (km["cert"], km["key"]), net.ca
        r = s.post(net.kms["B"].base_url + PQC_KEYS_PATH, json=body, timeout=10)
        assert r.status_code in (403, 409) and r.json()["status"] == "rejected"


def test_derived_keys_made_ahead_wait_for_the_next_shortage_not_for_restored_qkd(tmp_path):
    with LocalKmNetwork(tmp_path, ["A", "B", "C"], [("A", "B"), ("B", "C")], SAES,
                        config=KmConfig(relay_batch=8, require_controller=True)) as net:
        net.feed("A", "B", blocks=4)
        net.feed("B", "C", blocks=4)
        configure(net)
        link = link_id("A", "B")
        net.kms["A"].set_link_up(link, False)
        first = enc(net, number=1).json()["keys"]          # one seed + one message for 8 keys
        assert provenances(first) == {"hybrid"} and dec(net, first) == first
        net.kms["A"].set_link_up(link, True)
        assert provenances(enc(net, number=2).json()["keys"]) == {"qkd"}
        net.kms["A"].set_link_up(link, False)
        store = net.kms["A"].store_for_peer("B")
        used = store.levels().consumed_bytes
        again = enc(net, number=13).json()["keys"]   # 6 QKD keys relayed ahead, then the 7
        kinds = [k["key_extension"]["provenance"] for k in again]
        assert kinds == ["qkd"] * 6 + ["hybrid"] * 7 and dec(net, again) == again
        assert store.levels().consumed_bytes == used         # no new seed was needed


def test_epochs_are_renewed_after_their_key_budget(net, monkeypatch):
    import kms.hybrid_provisioning as hp
    monkeypatch.setattr(hp, "EPOCH_MAX_KEYS", 4)
    configure(net, policy_ab="pqc-fallback")
    net.kms["A"].set_link_up(link_id("A", "B"), False)
    for _ in range(5):
        keys = enc(net, number=2).json()["keys"]
        assert provenances(keys) == {"pqc"} and dec(net, keys) == keys
    assert net.kms["A"].hybrid.handshakes == 3                    # 2 + 2 keys per epoch
    assert len([k for k in net.kms["B"].hybrid._known if k[0] == SESSION_AB]) == 3
