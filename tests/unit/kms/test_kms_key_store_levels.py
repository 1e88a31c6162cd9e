"""Per-link key store: O(1) byte levels kept in step with the table, batched delivery."""

import pytest

from kms.errors import CapacityExceeded
from kms.key_store import Half, KeyRef, LinkKeyStore

A, B = "00000000-0000-0000-0000-00000000000a", "00000000-0000-0000-0000-00000000000b"


def block(n: int, size: int = 64) -> bytes:
    return bytes((n * 11 + i) % 256 for i in range(size))


def table_bytes(store: LinkKeyStore) -> tuple[int, int]:
    """(own half, peer half) summed over the table itself."""
    return store._sum_half(store.own_half), store._sum_half(store.peer_half)


def test_levels_follow_delivery_consumption_and_discard(tmp_path):
    a = LinkKeyStore(tmp_path / "a.sqlite", "L", A, B)
    b = LinkKeyStore(tmp_path / "b.sqlite", "L", B, A)
    for n in range(6):
        a.deliver(n, block(n, 65))   # odd size: the LOW half gets the extra byte
        b.deliver(n, block(n, 65))
    assert a.held_bytes() == table_bytes(a) == (6 * 33, 6 * 32)
    ref, _ = a.take_outgoing(50)
    b.take_incoming(KeyRef.from_wire(ref.to_wire()))
    b.take_outgoing(7)
    a.discard_blocks(4, 4)
    for store in (a, b):
        assert store.held_bytes() == table_bytes(store)
        levels = store.levels()
        assert (levels.outgoing_bytes, levels.incoming_bytes) == store.held_bytes()
    assert a.available_outgoing() == a.held_bytes()[0]
    a.close()
    reopened = LinkKeyStore(tmp_path / "a.sqlite", "L", A, B)
    assert reopened.held_bytes() == table_bytes(reopened)
    reopened.close()


def test_deliver_many_is_one_batch_idempotent_and_capacity_bound(tmp_path):
    store = LinkKeyStore(tmp_path / "s.sqlite", "L", A, B, capacity_bytes=200)
    woken = []
    store.add_listener(woken.append)
    assert store.deliver_many([(0, block(0)), (1, block(1))]) == (2, 0)
    assert woken == ["L"]                                  # one wake-up per batch
    # a repeated block is skipped; the fourth block no longer fits (3 × 64 = 192 <= 200)
    assert store.deliver_many([(1, block(1)), (2, block(2)), (3, block(3))]) == (1, 1)
    assert store.levels().refused_blocks == 1
    assert store.levels().blocks_delivered == 3
    assert store.held_bytes() == table_bytes(store) == (96, 96)
    with pytest.raises(CapacityExceeded):
        store.deliver(4, block(4))
    assert store.deliver(2, block(2)) is False
    assert store.deliver_many([]) == (0, 0)
    with pytest.raises(ValueError):
        store.deliver_many([(5, b"")])
    store.close()


def test_half_levels_are_per_direction(tmp_path):
    store = LinkKeyStore(tmp_path / "s.sqlite", "L", B, A)   # B sends with the HIGH half
    assert store.own_half is Half.HIGH
    store.deliver(0, block(0, 10))
    assert store.held_bytes() == (5, 5)
    store.take_outgoing(3)
    assert store.held_bytes() == (2, 5)
    store.close()
