"""KM-to-KM control messages of ETSI 004 streams (``/relay/v1/control``, sent only by a
neighbouring KM) that lack a field or carry a wrong type: answered with an error status, never
an exception (before, an ``open`` without ``source`` was a 500)."""

from __future__ import annotations

import pytest

from kms.local_network import LocalKmNetwork

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
