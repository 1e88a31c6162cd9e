"""ETSI 014 ``additional_slave_SAE_IDs`` on real KMs (loopback, mTLS): one enc_keys request
delivers the same keys to the master and to every listed slave — on other KMs, two on one KM,
one on the master's own KM — each slave fetching its copy once."""

import pytest
import requests

from kms.key_manager import KmConfig
from kms.local_network import LocalKmNetwork

pytestmark = pytest.mark.integration

SAES = {"sae-a": "A", "sae-a2": "A", "sae-b": "B", "sae-c": "C", "sae-c2": "C"}


@pytest.fixture
def net(tmp_path):
    with LocalKmNetwork(tmp_path, ["A", "B", "C"], [("A", "B"), ("A", "C")], SAES,
                        config=KmConfig(relay_batch=4, max_sae_id_count=3)) as net:
        net.feed("A", "B", blocks=4)
        net.feed("A", "C", blocks=4)
        yield net


def client(net, sae):
    s = requests.Session()
    s.trust_env = False
    s.cert, s.verify = net.sae_cert(sae), net.ca
    return s


def enc(net, body, slave="sae-b"):
    return client(net, "sae-a").post(net.kms["A"].base_url + f"/api/v1/keys/{slave}/enc_keys",
                                     json=body, timeout=10)


def dec(net, sae, key_ids):
    node = SAES[sae]
    return client(net, sae).post(net.kms[node].base_url + "/api/v1/keys/sae-a/dec_keys",
                                 json={"key_IDs": [{"key_ID": k} for k in key_ids]}, timeout=10)


def test_same_keys_to_master_and_every_slave_once(net):
    r = enc(net, {"number": 3, "size": 256,
                  "additional_slave_SAE_IDs": ["sae-c", "sae-c2", "sae-a2"]})
    assert r.status_code == 200, r.text
    keys = r.json()["keys"]
    ids = [k["key_ID"] for k in keys]
    assert len(keys) == 3 and len(set(ids)) == 3
    for slave in ("sae-b", "sae-c", "sae-c2", "sae-a2"):
        got = dec(net, slave, ids)
        assert got.status_code == 200, (slave, got.text)
        assert got.json()["keys"] == keys
        again = dec(net, slave, ids[:1])
        assert again.status_code == 400          # each slave fetches once
    # the master got them once too: a plain request never hands them out again
    plain = enc(net, {"number": 1}).json()["keys"]
    assert plain[0]["key_ID"] not in ids
    # no KM keeps bytes of these keys once every SAE had them: tombstones only; the master's
    # KM holds only the plain request's surplus (relay_batch 4 - 1), sae-b's KM that batch
    assert net.kms["A"].pool.counts().get("ready", 0) == 3
    assert net.kms["B"].pool.counts().get("ready", 0) == 4
    assert net.kms["C"].pool.counts().get("ready", 0) == 0
    assert net.kms["C"].pool.counts()["released"] == 6


def test_a_slave_not_listed_gets_nothing(net):
    r = enc(net, {"number": 1, "additional_slave_SAE_IDs": ["sae-c"]})
    ids = [k["key_ID"] for k in r.json()["keys"]]
    assert dec(net, "sae-c2", ids).status_code == 400
    assert dec(net, "sae-a2", ids).status_code == 400
    assert dec(net, "sae-c", ids).status_code == 200


def test_status_and_refusals(net):
    status = client(net, "sae-a").get(net.kms["A"].base_url + "/api/v1/keys/sae-b/status",
                                      timeout=10).json()
    assert status["max_SAE_ID_count"] == 3
    for bad in (["sae-b"], ["sae-a"], ["sae-c", "sae-c"], ["nobody"], "sae-c", [1],
                ["sae-c", "sae-c2", "sae-a2", "sae-b2"]):
        r = enc(net, {"number": 1, "additional_slave_SAE_IDs": bad})
        assert r.status_code == 400, (bad, r.text)
        assert "message" in r.json()
    # nothing was relayed for the refused requests
    assert net.kms["C"].pool.counts() == {}


def test_one_draw_of_key_material_per_request(net, monkeypatch):
    """The shared keys come from one CSPRNG draw for the whole request, cut into keys (as
    the single-slave batches), not one ``token_bytes`` call per key: two calls in all, the
    other for the key_IDs' random bits."""
    import secrets
    import types

    import kms.key_manager

    calls = []

    def token_bytes(n):
        calls.append(n)
        return secrets.token_bytes(n)

    monkeypatch.setattr(kms.key_manager, "secrets", types.SimpleNamespace(token_bytes=token_bytes))
    r = enc(net, {"number": 40, "size": 128, "additional_slave_SAE_IDs": ["sae-c"]})
    assert r.status_code == 200, r.text
    keys = r.json()["keys"]
    assert len({k["key"] for k in keys}) == 40
    assert sorted(calls) == [40 * 10, 40 * 16]      # key_IDs (10 bytes each), keys (16 each)
    assert dec(net, "sae-c", [k["key_ID"] for k in keys]).json()["keys"] == keys
