"""Relay message building and checking, without sockets (two ends of one link)."""

import copy

import pytest

from kms.errors import AuthenticationFailed
from kms.key_pool import KeyRecord
from kms.key_store import LinkKeyStore
from kms.relay import build_ack, build_ext_keys, check_ack, open_ext_keys

A, B = "00000000-0000-4000-8000-00000000000a", "00000000-0000-4000-8000-00000000000b"


@pytest.fixture
def link(tmp_path):
    a = LinkKeyStore(tmp_path / "a.sqlite", "L", A, B)
    b = LinkKeyStore(tmp_path / "b.sqlite", "L", B, A)
    for n in range(2):
        block = bytes((n * 31 + i) % 256 for i in range(1024))
        a.deliver(n, block)
        b.deliver(n, block)
    return a, b


def _flip(text):
    import base64
    raw = bytearray(base64.b64decode(text))
    raw[5] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def records():
    return [KeyRecord("k1", "m", "s", bytes(range(32)), session="S"),
            KeyRecord("k2", "m", "s", bytes(range(32, 64)), stream_id="ks", stream_index=3,
                      session="S", expires=99.0)]


def test_round_trip_with_ack_and_exact_link_use(link):
    a, b = link
    body, ack_key = build_ext_keys("S", records(), a)
    assert a.levels().consumed_bytes == 64 + 64            # |K| + request MAC + ack MAC keys
    assert bytes(range(32)).hex() not in str(body)
    got, peer_ack_key = open_ext_keys(body, b)
    assert [(r.key_id, r.key, r.stream_id, r.stream_index, r.expires) for r in got] == \
        [(r.key_id, r.key, r.stream_id, r.stream_index, r.expires) for r in records()]
    assert peer_ack_key == ack_key
    ack = build_ack(["k1", "k2"], body["mac"], peer_ack_key)
    check_ack(ack, ["k1", "k2"], body["mac"], ack_key)
    with pytest.raises(AuthenticationFailed):
        check_ack(ack, ["k1"], body["mac"], ack_key)                 # not these keys
    with pytest.raises(AuthenticationFailed):
        check_ack(ack, ["k1", "k2"], "another-request", ack_key)     # bound to the request


@pytest.mark.parametrize("mutate", [
    lambda b: b["keys"][0].__setitem__("slave_SAE_ID", "x"),
    lambda b: b["keys"][1].__setitem__("index", 4),
    lambda b: b.__setitem__("session", "T"),
    lambda b: b.__setitem__("ciphertext", _flip(b["ciphertext"])),   # same length, one bit
    lambda b: b.__setitem__("mac", "AAAAAAAAAAAAAAAAAAAAAA=="),
])
def test_any_tampering_is_rejected(link, mutate):
    a, b = link
    body, _ = build_ext_keys("S", records(), a)
    bad = copy.deepcopy(body)
    mutate(bad)
    with pytest.raises(AuthenticationFailed):
        open_ext_keys(bad, b)


def test_replay_and_malformed_bodies(link):
    a, b = link
    body, _ = build_ext_keys("S", records(), a)
    open_ext_keys(body, b)
    with pytest.raises(AuthenticationFailed):
        open_ext_keys(body, b)                          # link bytes already consumed
    with pytest.raises(AuthenticationFailed):
        open_ext_keys({"session": None}, b)
    body, _ = build_ext_keys("S", records(), a)
    body["keys"][0]["size"] = 7
    with pytest.raises(AuthenticationFailed):
        open_ext_keys(body, b)


def batch_records():
    return [KeyRecord(f"k{i}", "m", "s", bytes(range(i, i + 32)), session="S", expires=7.0)
            for i in range(3)]


def test_keys_of_one_kind_travel_in_the_compact_form(link):
    a, b = link
    body, ack_key = build_ext_keys("S", batch_records(), a)
    assert "keys" not in body and body["key_IDs"] == ["k0", "k1", "k2"]
    assert body["batch"] == {"master_SAE_ID": "m", "slave_SAE_ID": "s", "size": 256,
                             "expires": 7.0}
    assert body["mac_alg"] == "poly1305"
    assert a.levels().consumed_bytes == 96 + 64             # |K| + 512 bits, as ever
    got, peer_ack_key = open_ext_keys(body, b)
    assert [(r.key_id, r.master, r.slave, r.key, r.expires, r.session, r.provenance)
            for r in got] == [(r.key_id, r.master, r.slave, r.key, r.expires, "S", "qkd")
                              for r in batch_records()]
    assert peer_ack_key == ack_key


def test_mixed_keys_fall_back_to_one_descriptor_per_key(link):
    a, _ = link
    mixed = batch_records()[:2] + [KeyRecord("k9", "m", "other", bytes(32), session="S",
                                             expires=7.0)]
    body, _ = build_ext_keys("S", mixed, a)
    assert "batch" not in body and [k["key_ID"] for k in body["keys"]] == ["k0", "k1", "k9"]


@pytest.mark.parametrize("mutate", [
    lambda b: b["batch"].__setitem__("slave_SAE_ID", "x"),
    lambda b: b["batch"].__setitem__("expires", 8.0),
    lambda b: b["key_IDs"].__setitem__(0, "k7"),
    lambda b: b["key_IDs"].reverse(),
    lambda b: b.__setitem__("extra", 1),                  # every field but mac is covered
    lambda b: b.__setitem__("keys", []),                  # both forms at once
    lambda b: b.pop("mac_alg"),                           # another MAC algorithm
    lambda b: b.__setitem__("mac_alg", "wc127"),
])
def test_any_tampering_with_the_compact_form_is_rejected(link, mutate):
    a, b = link
    body, _ = build_ext_keys("S", batch_records(), a)
    bad = copy.deepcopy(body)
    mutate(bad)
    with pytest.raises(AuthenticationFailed):
        open_ext_keys(bad, b)
