"""ETSI 014 between two adjacent KMs over real HTTPS + mTLS (cheroot), no controller."""

import base64

import pytest
import requests

from kms.local_network import LocalKmNetwork

pytestmark = pytest.mark.integration

SAES = {"sae-a": "A", "sae-b": "B", "sae-a2": "A"}


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    with LocalKmNetwork(tmp_path_factory.mktemp("km014"), ["A", "B"], [("A", "B")], SAES) as net:
        net.feed("A", "B", blocks=8)
        yield net


def client(net, sae):
    s = requests.Session()
    s.trust_env = False
    s.cert = net.sae_cert(sae)
    s.verify = net.ca
    return s


def url(net, node, path):
    return net.kms[node].base_url + "/api/v1/keys/" + path


def test_status_fields(net):
    r = client(net, "sae-a").get(url(net, "A", "sae-b/status"), timeout=5)
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"source_KME_ID", "target_KME_ID", "master_SAE_ID", "slave_SAE_ID",
                         "key_size", "stored_key_count", "max_key_count", "max_key_per_request",
                         "max_key_size", "min_key_size", "max_SAE_ID_count"}
    assert body["master_SAE_ID"] == "sae-a" and body["slave_SAE_ID"] == "sae-b"
    assert body["key_size"] == 256 and body["stored_key_count"] > 0


def test_enc_then_dec_same_keys_once(net):
    a, b = client(net, "sae-a"), client(net, "sae-b")
    r = a.post(url(net, "A", "sae-b/enc_keys"), json={"number": 3, "size": 256}, timeout=5)
    assert r.status_code == 200, r.text
    keys = r.json()["keys"]
    assert len(keys) == 3 and all(len(base64.b64decode(k["key"])) == 32 for k in keys)
    ids = [{"key_ID": k["key_ID"]} for k in keys]
    r = b.post(url(net, "B", "sae-a/dec_keys"), json={"key_IDs": ids}, timeout=5)
    assert r.status_code == 200, r.text
    assert r.json()["keys"] == keys
    # second fetch refused
    r = b.post(url(net, "B", "sae-a/dec_keys"), json={"key_IDs": ids[:1]}, timeout=5)
    assert r.status_code == 400 and set(r.json()) <= {"message", "details"}
    assert keys[0]["key"] not in r.text


def test_get_forms(net):
    a, b = client(net, "sae-a"), client(net, "sae-b")
    r = a.get(url(net, "A", "sae-b/enc_keys"), params={"number": 2}, timeout=5)
    keys = r.json()["keys"]
    r = b.get(url(net, "B", "sae-a/dec_keys"), params={"key_ID": [k["key_ID"] for k in keys]}, timeout=5)
    assert r.json()["keys"] == keys


def test_wrong_sae_refused_like_missing_key(net):
    a = client(net, "sae-a")
    keys = a.post(url(net, "A", "sae-b/enc_keys"), json={"number": 1}, timeout=5).json()["keys"]
    intruder = client(net, "sae-a2")   # another SAE, same node as the master
    r1 = intruder.post(url(net, "A", "sae-a/dec_keys"), json={"key_IDs": [{"key_ID": keys[0]["key_ID"]}]}, timeout=5)
    r2 = client(net, "sae-b").post(url(net, "B", "sae-a/dec_keys"),
                                   json={"key_IDs": [{"key_ID": "00000000-0000-4000-8000-000000000000"}]}, timeout=5)
    assert r1.status_code == 400 and r2.status_code == 400
    assert r1.json()["message"] == r2.json()["message"]
    # the rightful slave still gets it
    r = client(net, "sae-b").post(url(net, "B", "sae-a/dec_keys"),
                                  json={"key_IDs": [{"key_ID": keys[0]["key_ID"]}]}, timeout=5)
    assert r.json()["keys"] == keys


def test_errors(net):
    a = client(net, "sae-a")
    r = a.post(url(net, "A", "sae-b/enc_keys"), json={"number": 1, "extension_mandatory": [{"x": 1}]}, timeout=5)
    assert r.status_code == 400 and r.json()["details"] == [{"extension_mandatory_unsupported": ["x"]}]
    r = a.post(url(net, "A", "sae-b/enc_keys"), json={"size": 100}, timeout=5)
    assert r.status_code == 400
    r = a.post(url(net, "A", "nobody/enc_keys"), json={}, timeout=5)
    assert r.status_code == 401
    r = a.post(url(net, "A", "sae-b/enc_keys"), data="nope", headers={"Content-Type": "application/json"}, timeout=5)
    assert r.status_code == 400
    # insufficient link key → 503
    r = a.post(url(net, "A", "sae-b/enc_keys"), json={"number": 1000, "size": 8192}, timeout=10)
    assert r.status_code == 503 and "message" in r.json()


def test_km_certificate_is_not_an_sae(net):
    s = requests.Session()
    s.trust_env = False
    km = net.pki["kms"]["A"]
    r = s.get(url(net, "A", "sae-b/status"), cert=(km["cert"], km["key"]), verify=net.ca, timeout=5)
    assert r.status_code == 401


def test_application_new_notified_once(net):
    news = [b for n, b in net.notifications if n == "A" and "etsi-qkd-sdn-node:sdqkdn_application_new" in b]
    assert len(news) == 1
    body = news[0]["etsi-qkd-sdn-node:sdqkdn_application_new"]["qkd_application"]
    assert body["server_app_id"] == "sae-a" and body["client_app_id"] == ["sae-b"]


def test_concurrent_requests_get_exactly_their_keys_once(net):
    import threading
    results, lock = [], threading.Lock()

    def worker():
        c = client(net, "sae-a")
        for _ in range(5):
            r = c.post(url(net, "A", "sae-b/enc_keys"), json={"number": 3}, timeout=20)
            with lock:
                results.append(r)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.status_code == 200 for r in results)
    keys = [k for r in results for k in r.json()["keys"]]
    assert all(len(r.json()["keys"]) == 3 for r in results)
    assert len({k["key_ID"] for k in keys}) == len(keys) == 90
    got = client(net, "sae-b").post(url(net, "B", "sae-a/dec_keys"),
                                    json={"key_IDs": [{"key_ID": k["key_ID"]} for k in keys]}, timeout=20)
    assert got.status_code == 200 and sorted(got.json()["keys"], key=str) == sorted(keys, key=str)


def test_no_key_material_in_logs(net, caplog):
    import logging
    caplog.set_level(logging.DEBUG)
    keys = client(net, "sae-a").post(url(net, "A", "sae-b/enc_keys"), json={"number": 2}, timeout=5).json()["keys"]
    client(net, "sae-b").post(url(net, "B", "sae-a/dec_keys"),
                              json={"key_IDs": [{"key_ID": k["key_ID"]} for k in keys]}, timeout=5)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "enc_keys" in text     # the requests were logged ...
    for k in keys:                # ... without their keys, in any encoding
        raw = base64.b64decode(k["key"])
        assert k["key"] not in text and raw.hex() not in text and repr(raw) not in text
