"""ETSI 004 OPEN_CONNECT edge cases on real KMs (loopback, mTLS), docs/kms.md "004 binding":

* both SAEs of a pair open a new stream (null Key_stream_ID) at the same time: one stream
  survives — the one opened by the smaller SAE_ID — and both SAEs get its KSID and the same
  key at each index, whichever open message arrives first;
* a Key_stream_ID that names a session ETSI 014 uses is in use (status 5); a 004 stream of a
  pair that also uses 014 rides on the pair's session, and its CLOSE leaves the session to 014.
"""

import threading

import pytest
import requests

from kms.key_manager import KmConfig, direct_session_id
from kms.local_network import LocalKmNetwork

pytestmark = pytest.mark.integration

SAES = {"sae-a": "A", "sae-b": "B"}
QOS = {"key_chunk_size": 32, "max_bps": 0, "min_bps": 0, "jitter": 0, "priority": 0,
       "timeout": 2000, "ttl": 60, "metadata_mimetype": "application/json"}


@pytest.fixture
def net(tmp_path):
    with LocalKmNetwork(tmp_path, ["A", "B"], [("A", "B")], SAES,
                        config=KmConfig(relay_batch=8)) as net:
        net.feed("A", "B", blocks=4)
        yield net


def call(net, sae, op, body, path="etsi004"):
    s = requests.Session()
    s.trust_env = False
    s.cert, s.verify = net.sae_cert(sae), net.ca
    node = SAES[sae]
    return s.post(net.kms[node].base_url + f"/api/v1/{path}/{op}", json=body, timeout=15)


def open_connect(net, sae, ksid=None):
    peer = "sae-b" if sae == "sae-a" else "sae-a"
    return call(net, sae, "open_connect", {"source": sae, "destination": peer, "QoS": QOS,
                                           "Key_stream_ID": ksid}).json()


def hold_open_messages(km):
    """Make ``km`` hold its outgoing OPEN control messages until the returned event is set."""
    release = threading.Event()
    original = km.relay.send_control

    def held(session, next_node, body, leg=None):
        if body.get("op") == "open":
            release.wait(10)
        return original(session, next_node, body, leg=leg)

    km.relay.send_control = held
    return release


def assert_one_shared_stream(net, ksid):
    for node in ("A", "B"):
        streams = net.kms[node].streams._streams
        assert list(streams) == [ksid], (node, list(streams))
    a0 = call(net, "sae-a", "get_key", {"Key_stream_ID": ksid, "index": 0}).json()
    b0 = call(net, "sae-b", "get_key", {"Key_stream_ID": ksid, "index": 0}).json()
    assert a0["status"] == b0["status"] == 0, (a0, b0)
    assert a0["key_buffer"] == b0["key_buffer"]


def in_thread(fn):
    out = {}
    t = threading.Thread(target=lambda: out.update(r=fn()))
    t.start()
    return t, out


@pytest.mark.parametrize("late", ["A", "B"])
def test_crossing_null_opens_end_in_one_stream(net, late):
    """``late``: the KM whose OPEN message arrives after the peer's (A holds the winner)."""
    release = hold_open_messages(net.kms[late])
    first, other = ("sae-a", "sae-b") if late == "A" else ("sae-b", "sae-a")
    t, held = in_thread(lambda: open_connect(net, first))
    # wait until the held KM has registered its stream (its open message is held)
    for _ in range(200):
        if net.kms[late].streams._streams:
            break
        threading.Event().wait(0.02)
    answer = open_connect(net, other)
    release.set()
    t.join(15)
    winner_ksid = next(iter(net.kms["A"].streams._streams))
    assert answer["status"] == 0 and answer["Key_stream_ID"] == winner_ksid
    assert held["r"]["status"] == 0 and held["r"]["Key_stream_ID"] == winner_ksid
    assert net.kms["A"].streams._streams[winner_ksid].originator   # sae-a's stream survives
    assert_one_shared_stream(net, winner_ksid)


def test_simultaneous_null_opens_share_one_ksid(net):
    barrier = threading.Barrier(2)

    def go(sae):
        barrier.wait()
        return open_connect(net, sae)

    ta, ra = in_thread(lambda: go("sae-a"))
    tb, rb = in_thread(lambda: go("sae-b"))
    ta.join(15)
    tb.join(15)
    assert ra["r"]["Key_stream_ID"] == rb["r"]["Key_stream_ID"]
    assert {ra["r"]["status"], rb["r"]["status"]} <= {0, 1}
    assert_one_shared_stream(net, ra["r"]["Key_stream_ID"])


def test_ksid_of_a_014_session_is_in_use_and_close_leaves_014_its_session(net):
    enc = call(net, "sae-a", "sae-b/enc_keys", {"number": 1}, path="keys")
    assert enc.status_code == 200, enc.text
    key_id = enc.json()["keys"][0]["key_ID"]
    dec = call(net, "sae-b", "sae-a/dec_keys", {"key_IDs": [{"key_ID": key_id}]}, path="keys")
    assert dec.status_code == 200, dec.text
    session_id = direct_session_id("sae-a", "sae-b")
    assert open_connect(net, "sae-a", session_id)["status"] == 5
    assert open_connect(net, "sae-b", session_id.upper())["status"] == 5
    assert net.kms["A"].streams._streams == {}
    # a new stream of the pair (null KSID) is served on the same session ...
    opened = open_connect(net, "sae-a")
    assert opened["status"] == 1
    ksid = opened["Key_stream_ID"]
    assert open_connect(net, "sae-b", ksid)["status"] == 0
    assert_one_shared_stream(net, ksid)
    # ... and closing it leaves the session to 014
    assert call(net, "sae-a", "close", {"Key_stream_ID": ksid}).json()["status"] == 0
    assert call(net, "sae-b", "close", {"Key_stream_ID": ksid}).json()["status"] == 0
    assert net.kms["A"].sessions()[session_id].state.value != "terminated"
    again = call(net, "sae-a", "sae-b/enc_keys", {"number": 1}, path="keys")
    assert again.status_code == 200, again.text
