"""Per-link key store: identification scheme, consumption, durability, capacity."""

import sqlite3

import pytest

from kms.errors import AuthenticationFailed, CapacityExceeded, InsufficientKey
from kms.key_store import Half, KeyRef, LinkKeyStore, sender_half, split_block

A, B = "00000000-0000-0000-0000-00000000000a", "00000000-0000-0000-0000-00000000000b"


def block(n: int, size: int = 64) -> bytes:
    return bytes((n * 7 + i) % 256 for i in range(size))


@pytest.fixture
def pair(tmp_path):
    a = LinkKeyStore(tmp_path / "a.sqlite", "L", A, B)
    b = LinkKeyStore(tmp_path / "b.sqlite", "L", B, A)
    for n in range(3):
        a.deliver(n, block(n))
        b.deliver(n, block(n))
    yield a, b
    a.close()
    b.close()


def test_halves_split_by_qkdn_id_order():
    assert sender_half(A, B) is Half.LOW and sender_half(B, A) is Half.HIGH
    halves = split_block(b"abcde")
    assert halves[Half.LOW] == b"abc" and halves[Half.HIGH] == b"de"


def test_both_ends_get_the_same_key_and_never_collide(pair):
    a, b = pair
    ref_a, key_a = a.take_outgoing(40)   # spans two blocks of 32-byte halves
    ref_b, key_b = b.take_outgoing(10)
    assert len(ref_a.segments) == 2
    assert b.take_incoming(KeyRef.from_wire(ref_a.to_wire())) == key_a
    assert a.take_incoming(ref_b) == key_b
    assert key_a[:32] == block(0)[:32] and key_b == block(0)[32:42]


def test_replay_of_a_reference_is_rejected(pair):
    a, b = pair
    ref, _ = a.take_outgoing(16)
    b.take_incoming(ref)
    with pytest.raises(AuthenticationFailed):
        b.take_incoming(ref)


def test_partial_overlap_is_all_or_nothing(pair):
    a, b = pair
    _ref, key = a.take_outgoing(16)
    bad = KeyRef.from_wire("0:8:16")
    b.take_incoming(KeyRef.from_wire("0:16:8"))
    with pytest.raises(AuthenticationFailed):
        b.take_incoming(bad)
    assert b.take_incoming(KeyRef.from_wire("0:0:8")) == key[:8]


def test_insufficient_key(pair):
    a, _ = pair
    with pytest.raises(InsufficientKey):
        a.take_outgoing(1000)
    assert a.available_outgoing() == 96


def test_deliver_is_idempotent_and_capacity_is_enforced(tmp_path):
    s = LinkKeyStore(tmp_path / "s.sqlite", "L", A, B, capacity_bytes=100)
    assert s.deliver(0, block(0)) is True
    assert s.deliver(0, block(0)) is False
    with pytest.raises(CapacityExceeded):
        s.deliver(1, block(1))
    assert s.levels().refused_blocks == 1


def test_consumed_key_is_gone_after_restart_and_bytes_overwritten(tmp_path):
    path = tmp_path / "s.sqlite"
    s = LinkKeyStore(path, "L", A, B)
    marker = bytes(range(200, 264 - 8)) + bytes(8)
    s.deliver(0, marker)
    _, key = s.take_outgoing(32)
    s.close()
    s = LinkKeyStore(path, "L", A, B)
    assert s.available_outgoing() == 0
    assert s.levels().consumed_bytes == 32
    s._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    s.close()
    raw = path.read_bytes()
    assert key not in raw
    conn = sqlite3.connect(str(path))
    assert conn.execute("SELECT COUNT(*) FROM ranges").fetchone()[0] == 1  # peer half only


def test_sender_leaves_young_blocks_for_the_peer_to_catch_up(tmp_path):
    s = LinkKeyStore(tmp_path / "settle.sqlite", "L", A, B, settle_blocks=2)
    s.deliver(0, bytes(range(64)))
    s.deliver(1, bytes(range(64)))
    with pytest.raises(InsufficientKey):
        s.take_outgoing(1)            # newest is 1: nothing is 2 blocks old yet
    s.deliver(2, bytes(range(64)))
    ref, _ = s.take_outgoing(32)      # block 0 is settled now
    assert {seg.block for seg in ref.segments} == {0}
    with pytest.raises(InsufficientKey):
        s.take_outgoing(1)            # block 1 is not


def test_discarded_blocks_are_gone_and_stay_gone(tmp_path):
    a = LinkKeyStore(tmp_path / "da.sqlite", "L", A, B)
    for index in range(4):
        a.deliver(index, bytes([index]) * 64)
    assert a.max_block() == 3
    assert a.discard_blocks(1, 2) == 128
    assert a.deliver(1, bytes(64)) is False      # a discarded block is not taken again
    ref, _key = a.take_outgoing(64)
    assert {seg.block for seg in ref.segments} == {0, 3}
    assert a.discard_blocks(5, 4) == 0


def test_receiver_waits_for_a_block_its_module_delivers_after_the_sender(tmp_path):
    import threading

    a = LinkKeyStore(tmp_path / "a.sqlite", "L", A, B)
    b = LinkKeyStore(tmp_path / "b.sqlite", "L", B, A, incoming_wait_s=30.0)
    a.deliver(5, block(5))
    ref, key = a.take_outgoing(16)           # the sender uses block 5 at once (settle 0)
    late = threading.Timer(0.05, b.deliver, (5, block(5)))
    late.start()
    try:
        assert b.take_incoming(ref) == key   # waited for its own copy of block 5
    finally:
        late.join()
        a.close()
        b.close()


def test_receiver_gives_up_on_a_block_that_never_comes(tmp_path):
    b = LinkKeyStore(tmp_path / "b.sqlite", "L", B, A, incoming_wait_s=0.05)
    b.deliver(1, block(1))
    with pytest.raises(AuthenticationFailed):
        b.take_incoming(KeyRef.from_wire("2:0:8"))
    b.close()
