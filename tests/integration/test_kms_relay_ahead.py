"""Relay-ahead on two real KMs (cheroot, mTLS): a pair's next batch is relayed in the
background when its pool falls below the low-water mark; one relay per pair at a time;
bounded per pair and by the link; exactly |K| + 512 bits of link key per message."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from kms.key_manager import KmConfig
from kms.local_network import LocalKmNetwork, link_id

pytestmark = pytest.mark.integration

SAES = {"sae-a": "A", "sae-b": "B"}
MESSAGE = 64          # request + ack MAC keys per message, bytes


def config(**kw):
    return KmConfig(relay_batch=8, relay_ahead_low_water=8, **kw)


def client(net, sae):
    s = requests.Session()
    s.trust_env = False
    s.cert, s.verify = net.sae_cert(sae), net.ca
    return s


def enc(net, s=None, number=1):
    s = s or client(net, "sae-a")
    return s.post(net.kms["A"].base_url + "/api/v1/keys/sae-b/enc_keys",
                  json={"number": number}, timeout=20)


def dec(net, keys):
    return client(net, "sae-b").post(net.kms["B"].base_url + "/api/v1/keys/sae-a/dec_keys",
                                     json={"key_IDs": [{"key_ID": k["key_ID"]} for k in keys]},
                                     timeout=20)


def settle(km, timeout=10.0):
    deadline = time.monotonic() + timeout
    while km.relay_ahead_running() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not km.relay_ahead_running()


def ready(net):
    return net.kms["A"].pool.ready_count("sae-a", "sae-b", 256)


def count_originates(km):
    """Wrap the KM's relay.originate: calls, the most in flight at once, and which ran in a
    background relay-ahead thread."""
    stats = {"calls": 0, "running": 0, "max_running": 0, "ahead": 0}
    lock = threading.Lock()
    original = km.relay.originate

    def originate(*args, **kw):
        with lock:
            stats["calls"] += 1
            stats["running"] += 1
            stats["max_running"] = max(stats["max_running"], stats["running"])
            stats["ahead"] += threading.current_thread().name.endswith("-ahead")
        try:
            return original(*args, **kw)
        finally:
            with lock:
                stats["running"] -= 1

    km.relay.originate = originate
    return stats


def test_pool_refilled_in_background_with_exact_link_key(tmp_path):
    with LocalKmNetwork(tmp_path, ["A", "B"], [("A", "B")], SAES, config=config()) as net:
        net.feed("A", "B", blocks=4)
        stats = count_originates(net.kms["A"])
        link_a = net.kms["A"].store(link_id("A", "B"))
        link_b = net.kms["B"].store(link_id("A", "B"))
        s = client(net, "sae-a")
        first = enc(net, s)
        assert first.status_code == 200, first.text
        # the request relayed 8 (7 left < low water 8): the next 8 follow in the background
        settle(net.kms["A"])
        assert ready(net) == 15
        assert stats == {"calls": 2, "running": 0, "max_running": 1, "ahead": 1}
        # exactly |K| + 512 bits per message, at both ends of the link
        assert link_a.levels().consumed_bytes == 2 * (8 * 32 + MESSAGE)
        assert link_b.levels().consumed_bytes == 2 * (8 * 32 + MESSAGE)
        # a steady stream: no request waits for a relay, the background keeps the pool full
        keys = first.json()["keys"]
        for _ in range(20):
            r = enc(net, s)
            assert r.status_code == 200, r.text
            keys += r.json()["keys"]
            settle(net.kms["A"])
        assert stats["calls"] - stats["ahead"] == 1        # only the very first request relayed
        assert 8 <= ready(net) <= 16
        # keys relayed ahead reach the slave once, identical
        got = dec(net, keys)
        assert got.status_code == 200, got.text
        assert got.json()["keys"] == keys
        assert dec(net, keys[:1]).status_code == 400
        messages = stats["calls"]
        relayed = 8 * messages
        assert link_a.levels().consumed_bytes == relayed * 32 + messages * MESSAGE


def test_one_relay_per_pair_and_waiting_requests_take_from_it(tmp_path):
    cfg = config(fault_delays={"source_after_pending": 0.4})
    with LocalKmNetwork(tmp_path, ["A", "B"], [("A", "B")], SAES, config=cfg) as net:
        net.feed("A", "B", blocks=4)
        stats = count_originates(net.kms["A"])
        assert enc(net).status_code == 200                # relays 8; background relay starts
        assert net.kms["A"].relay_ahead_running() == 1
        sessions = [client(net, "sae-a") for _ in range(6)]
        for s in sessions:   # TLS handshakes before the burst
            s.get(net.kms["A"].base_url + "/api/v1/keys/sae-b/status", timeout=20)
        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(lambda s: [enc(net, s) for _ in range(2)], sessions))
        codes = [r.status_code for pair in answers for r in pair]
        assert codes == [200] * 12
        # 7 keys were ready, 5 requests found the pool empty: they waited for the background
        # batch instead of relaying their own, and no two relays of the pair ever overlapped
        assert stats["max_running"] == 1
        assert stats["calls"] - stats["ahead"] == 1
        ids = [k["key_ID"] for pair in answers for r in pair for k in r.json()["keys"]]
        assert len(set(ids)) == 12
    # stop() waited for the relay-ahead still in flight (no thread left behind)
    assert net.kms["A"].relay_ahead_running() == 0


def test_cap_per_pair_and_half_the_link(tmp_path):
    with LocalKmNetwork(tmp_path, ["A", "B"], [("A", "B")], SAES,
                        config=config(relay_ahead_max_keys=12)) as net:
        net.feed("A", "B", blocks=4)
        assert enc(net).status_code == 200
        settle(net.kms["A"])
        assert ready(net) == 12                           # 7 + 5: cut to the cap
    with LocalKmNetwork(tmp_path / "small", ["A", "B"], [("A", "B")], SAES,
                        config=config()) as net:
        net.feed("A", "B", blocks=1, size=1024)          # 512 bytes to send with
        link_a = net.kms["A"].store(link_id("A", "B"))
        assert enc(net).status_code == 200                # relays 8: 320 bytes, 192 left
        settle(net.kms["A"])
        time.sleep(0.1)
        # a background batch would take more than half of the 192 bytes left: none
        assert link_a.levels().consumed_bytes == 8 * 32 + MESSAGE
        assert ready(net) == 7
