"""ETSI 004 JSON-over-HTTPS between two adjacent KMs (and through a relay)."""

import base64

import pytest
import requests

from kms.local_network import LocalKmNetwork

pytestmark = pytest.mark.integration

SAES = {"sae-a": "A", "sae-b": "B", "sae-x": "A"}


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    with LocalKmNetwork(tmp_path_factory.mktemp("km004"), ["A", "B"], [("A", "B")], SAES) as net:
        net.feed("A", "B", blocks=4)
        yield net


def call(net, sae, node, op, body):
    s = requests.Session()
    s.trust_env = False
    s.cert, s.verify = net.sae_cert(sae), net.ca
    r = s.post(net.kms[node].base_url + f"/api/v1/etsi004/{op}", json=body, timeout=10)
    return r


def test_open_get_close_same_key_same_index(net):
    qos = {"key_chunk_size": 32, "max_bps": 0, "min_bps": 0, "jitter": 0, "priority": 1,
           "timeout": 2000, "ttl": 60, "metadata_mimetype": "application/json"}
    r = call(net, "sae-a", "A", "open_connect", {"source": "sae-a", "destination": "sae-b", "QoS": qos,
                                                 "Key_stream_ID": None})
    assert r.status_code == 200 and r.json()["status"] == 1, r.text   # peer not connected yet
    ksid = r.json()["Key_stream_ID"]
    r = call(net, "sae-a", "A", "get_key", {"Key_stream_ID": ksid, "index": 0})
    assert r.json()["status"] == 3                                      # GET_KEY before the peer
    r = call(net, "sae-b", "B", "open_connect", {"source": "sae-b", "destination": "sae-a", "QoS": qos,
                                                 "Key_stream_ID": ksid})
    assert r.json()["status"] == 0 and r.json()["Key_stream_ID"] == ksid
    # the same KSID again from the same SAE: in use
    r = call(net, "sae-b", "B", "open_connect", {"source": "sae-b", "destination": "sae-a", "QoS": qos,
                                                 "Key_stream_ID": ksid})
    assert r.json()["status"] == 5
    a0 = call(net, "sae-a", "A", "get_key", {"Key_stream_ID": ksid, "index": 0}).json()
    b1 = call(net, "sae-b", "B", "get_key", {"Key_stream_ID": ksid, "index": 1}).json()  # peer pulls
    b0 = call(net, "sae-b", "B", "get_key", {"Key_stream_ID": ksid, "index": 0}).json()
    a1 = call(net, "sae-a", "A", "get_key", {"Key_stream_ID": ksid}).json()              # next index
    assert a0["status"] == b0["status"] == a1["status"] == b1["status"] == 0
    assert a0["key_buffer"] == b0["key_buffer"] and a1["key_buffer"] == b1["key_buffer"]
    assert a1["index"] == 1 and len(base64.b64decode(a0["key_buffer"])) == 32
    assert a0["key_buffer"] != a1["key_buffer"]
    assert call(net, "sae-a", "A", "get_key", {"Key_stream_ID": ksid, "index": 0}).json()["status"] == 2
    # metadata buffer too small: 8, and no key consumed
    r = call(net, "sae-a", "A", "get_key", {"Key_stream_ID": ksid, "index": 5, "metadata_size": 4}).json()
    assert r["status"] == 8 and "key_buffer" not in r
    assert call(net, "sae-a", "A", "get_key", {"Key_stream_ID": ksid, "index": 5}).json()["status"] == 0
    # another SAE on A cannot use the stream
    assert call(net, "sae-x", "A", "get_key", {"Key_stream_ID": ksid, "index": 2}).json()["status"] == 4
    assert call(net, "sae-a", "A", "close", {"Key_stream_ID": ksid}).json()["status"] == 0
    assert call(net, "sae-b", "B", "close", {"Key_stream_ID": ksid}).json()["status"] == 0
    gone = [b for n, b in net.notifications if "etsi-qkd-sdn-node:sdqkdn_application_disconnected" in b]
    assert gone


def test_qos_counter_proposal_and_bad_requests(net):
    r = call(net, "sae-a", "A", "open_connect", {"source": "sae-a", "destination": "sae-b",
                                                 "QoS": {"key_chunk_size": 100000}})
    assert r.json()["status"] == 7 and r.json()["QoS"]["key_chunk_size"] == 1024
    r = call(net, "sae-a", "A", "open_connect", {"source": "sae-a", "destination": "nobody", "QoS": {}})
    assert r.json()["status"] == 4
    r = call(net, "sae-a", "A", "open_connect", {"source": "sae-b", "destination": "sae-a", "QoS": {}})
    assert r.status_code == 401
    r = call(net, "sae-a", "A", "get_key", {"Key_stream_ID": "not-a-uuid"})
    assert r.status_code == 400 and "message" in r.json()
    r = call(net, "sae-a", "A", "open_connect", {"source": "sae-a", "destination": "sae-b", "QoS": {"ttl": -1}})
    assert r.status_code == 400


def test_insufficient_key_and_timeout(net):
    qos = {"key_chunk_size": 1024, "timeout": 0}
    ksid = call(net, "sae-a", "A", "open_connect", {"source": "sae-a", "destination": "sae-b", "QoS": qos}).json()["Key_stream_ID"]
    assert call(net, "sae-b", "B", "open_connect", {"source": "sae-b", "destination": "sae-a", "QoS": qos,
                                                    "Key_stream_ID": ksid}).json()["status"] == 0
    statuses = [call(net, "sae-a", "A", "get_key", {"Key_stream_ID": ksid}).json()["status"] for _ in range(2)]
    assert statuses[-1] == 2   # 16 KiB batches exhaust the 8 KiB sending half at once
    ksid2 = call(net, "sae-a", "A", "open_connect", {"source": "sae-a", "destination": "sae-b",
                                                     "QoS": {"key_chunk_size": 1024, "timeout": 300}}).json()["Key_stream_ID"]
    call(net, "sae-b", "B", "open_connect", {"source": "sae-b", "destination": "sae-a",
                                             "QoS": {"key_chunk_size": 1024, "timeout": 300}, "Key_stream_ID": ksid2})
    assert call(net, "sae-a", "A", "get_key", {"Key_stream_ID": ksid2}).json()["status"] == 6


def test_rate_beyond_max_bps_waits_then_times_out(net):
    import time
    # 256-bit chunks at max_bps 256: one key per second, burst of one key
    qos = {"key_chunk_size": 32, "max_bps": 256, "timeout": 100}
    ksid = call(net, "sae-a", "A", "open_connect", {"source": "sae-a", "destination": "sae-b", "QoS": qos}).json()["Key_stream_ID"]
    call(net, "sae-b", "B", "open_connect", {"source": "sae-b", "destination": "sae-a", "QoS": qos, "Key_stream_ID": ksid})
    assert call(net, "sae-a", "A", "get_key", {"Key_stream_ID": ksid}).json()["status"] == 0
    assert call(net, "sae-a", "A", "get_key", {"Key_stream_ID": ksid}).json()["status"] == 6
    time.sleep(1.05)
    r = call(net, "sae-a", "A", "get_key", {"Key_stream_ID": ksid}).json()
    assert r["status"] == 0 and r["index"] == 1    # the refused index is served next
