"""KM-to-KM control messages of ETSI 004 streams (``/relay/v1/control``, sent by the KM of
the stream's other SAE straight to this one, not hop by hop): a message that lacks a field or
carries a wrong type is answered with an error status, never an exception (before, an
``open`` without ``source`` was a 500); one from a KM that is not the other SAE's is refused;
any KM of the network may reach the endpoint, not only a neighbour."""

from __future__ import annotations

import pytest
import requests

from kms.local_network import LocalKmNetwork
from kms.relay import CONTROL_PATH

pytestmark = pytest.mark.integration

KSID = "0b7f3c1e-4d2a-4f7b-9a55-1c2d3e4f5a6b"


@pytest.fixture
def streams(tmp_path):
    with LocalKmNetwork(tmp_path, ["A", "B"], [("A", "B")], {"sae-a": "A", "sae-b": "B"}) as net:
        yield net.kms["B"].streams


@pytest.mark.parametrize("body", [
    {"op": "open", "Key_stream_ID": KSID},
    {"op": "open", "Key_stream_ID": KSID, "source": "sae-a"},
    {"op": "open", "Key_stream_ID": KSID, "source": 7, "destination": "sae-b"},
    {"op": "open", "Key_stream_ID": KSID, "source": "sae-a", "destination": ["sae-b"]},
    {"op": "open", "Key_stream_ID": KSID, "source": "sae-a", "destination": "sae-b",
     "qos": {"timeout": -1}},
    {"op": "open", "Key_stream_ID": KSID, "source": "sae-a", "destination": "sae-b",
     "qos": "fast"},
])
def test_a_malformed_open_is_an_error_and_opens_nothing(streams, body):
    answer = streams.handle_control("A", body)
    assert answer["status"] == "error" and answer["message"]
    assert streams._streams == {}


@pytest.mark.parametrize("index", [None, "x", -1, True, 1.5])
def test_a_pull_without_a_valid_index_is_an_error(streams, index):
    opened = streams.handle_control("A", {"op": "open", "Key_stream_ID": KSID,
                                          "source": "sae-a", "destination": "sae-b"})
    assert opened["status"] == "ok"
    streams._streams[KSID].originator = True   # only an originator answers pulls
    body = {"op": "pull", "Key_stream_ID": KSID}
    if index is not None:
        body["index"] = index
    answer = streams.handle_control("A", body)
    assert answer["status"] == "error" and answer["message"]


@pytest.fixture
def line(tmp_path):
    saes = {"sae-a": "A", "sae-b": "B", "sae-c": "C"}
    with LocalKmNetwork(tmp_path, ["A", "B", "C"], [("A", "B"), ("B", "C")], saes) as net:
        yield net


def test_only_the_other_sae_s_km_may_control_a_stream(line):
    streams = line.kms["A"].streams
    body = {"op": "open", "Key_stream_ID": KSID, "source": "sae-c", "destination": "sae-a"}
    assert streams.handle_control("B", body)["status"] == "error"     # not sae-c's KM
    assert streams._streams == {}
    assert streams.handle_control("C", body)["status"] == "ok"
    close = {"op": "close", "Key_stream_ID": KSID}
    assert streams.handle_control("B", close)["status"] == "error"
    assert streams._streams[KSID].peer_open
    assert streams.handle_control("C", close) == {"status": "ok"}
    assert not streams._streams[KSID].peer_open


def test_a_km_that_is_not_a_neighbour_reaches_the_endpoint(line):
    """C is two hops from A: its certificate is accepted on A's control endpoint (end to end),
    an SAE's is not."""
    session = requests.Session()
    session.trust_env = False
    km_c = line.pki["kms"]["C"]
    session.verify = line.ca
    body = {"session": None, "op": "open", "Key_stream_ID": KSID, "source": "sae-c",
            "destination": "sae-a"}
    url = line.kms["A"].base_url + CONTROL_PATH
    session.cert = (km_c["cert"], km_c["key"])
    answer = session.post(url, json=body, timeout=10)
    assert answer.status_code == 200 and answer.json()["status"] == "ok"
    session.cert = line.sae_cert("sae-c")
    assert session.post(url, json=body, timeout=10).status_code == 401


def test_a_stream_an_sae_opens_to_itself_closes_without_a_control_message(line):
    """Found by the long REST fuzz: CLOSE of a stream whose two SAEs are one (source =
    destination) looked for the other SAE's KM and failed with a 500."""
    session = requests.Session()
    session.trust_env = False
    session.cert, session.verify = line.sae_cert("sae-a"), line.ca
    base = line.kms["A"].base_url + "/api/v1/etsi004/"
    opened = session.post(base + "open_connect", json={
        "source": "sae-a", "destination": "sae-a", "QoS": {"timeout": 1000},
        "Key_stream_ID": None}, timeout=10)
    assert opened.status_code == 200
    ksid = opened.json()["Key_stream_ID"]
    assert ksid is not None, opened.json()
    closed = session.post(base + "close", json={"Key_stream_ID": ksid}, timeout=10)
    assert closed.status_code == 200 and closed.json()["status"] == 0
