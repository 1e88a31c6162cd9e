"""Lock order between a KM and its ETSI 004 streams (found by the reliability suite's idle
sessions run, item 8): the KM's housekeeping holds the KM's lock and takes the streams' lock
(``on_session_terminated`` when a session expires), so a control message opening a stream
must not take the KM's lock while it holds the streams' lock. With 150 sessions expiring while
others opened, both orders met and every request of the KM hung."""

from __future__ import annotations

import threading

import pytest

from kms.key_stream import qos_from_wire, qos_to_wire
from kms.local_network import LocalKmNetwork

pytestmark = pytest.mark.integration


def test_stream_open_does_not_hold_the_streams_lock_while_waiting_for_the_km(tmp_path):
    saes = {"sae-a": "A", "sae-b": "B"}
    with LocalKmNetwork(tmp_path, ["A", "B"], [("A", "B")], saes) as net:
        km = net.kms["B"]
        streams = km.streams
        body = {"op": "open", "Key_stream_ID": "0b7f3c1e-4d2a-4f7b-9a55-1c2d3e4f5a6b",
                "source": "sae-a", "destination": "sae-b", "session": None, "leg": None,
                "qos": qos_to_wire(qos_from_wire({"key_chunk_size": 32, "timeout": 1000}))}
        answers: list[dict] = []
        opener = threading.Thread(target=lambda: answers.append(
            streams.handle_control("A", body)))
        with km._lock:                      # as the housekeeping tick holds it
            opener.start()
            opener.join(0.5)                # the opener now waits for the KM's lock...
            assert opener.is_alive()
            # ...and must not hold the streams' lock meanwhile (the tick takes it next)
            got = streams._lock.acquire(timeout=2)
            assert got, "handle_control holds the streams' lock while waiting for the KM's"
            streams._lock.release()
        opener.join(10)
        assert answers == [{"status": "ok", "peer_open": False}]
        # a second open of the same stream finds it
        assert streams.handle_control("A", body)["status"] == "ok"
