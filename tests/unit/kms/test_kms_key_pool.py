"""End-to-end key pool: release once per side, resolve, tombstones, ttl."""

import pytest

from kms.errors import InsufficientKey, KeyNotFound, RelayError
from kms.key_pool import KeyPool, KeyRecord


def rec(i, stream=None, index=None, expires=None):
    return KeyRecord(f"k{i}", "m", "s", bytes([i]) * 32, stream, index, expires=expires)


def test_source_pending_then_ready_then_released_once(tmp_path):
    p = KeyPool(tmp_path / "p.sqlite")
    p.add_pending([rec(1), rec(2)], master_local=True, slave_local=False, next_hop="B", now=0)
    assert p.take_for_master("m", "s", 5, 256, now=1) == []          # pending is never released
    assert [r.key_ids for r in p.pending_relays()] == [("k1", "k2")]
    p.mark_ready(["k1"])
    p.void(["k2"])
    got = p.take_for_master("m", "s", 5, 256, now=1)
    assert [r.key_id for r in got] == ["k1"] and got[0].key == bytes([1]) * 32
    assert p.take_for_master("m", "s", 5, 256, now=1) == []
    assert p.counts() == {"released": 1, "void": 1}


def test_destination_store_take_and_resolve(tmp_path):
    p = KeyPool(tmp_path / "p.sqlite")
    p.store_ready([rec(1)], master_local=False, slave_local=True, now=0)
    with pytest.raises(RelayError):
        p.store_ready([rec(1)], master_local=False, slave_local=True, now=0)
    assert p.resolve(["k1", "k9"]) == {"k1": "stored", "k9": "void"}
    with pytest.raises(RelayError):   # a late copy of a voided relay is refused
        p.store_ready([rec(9)], master_local=False, slave_local=True, now=0)
    with pytest.raises(KeyNotFound):
        p.take_for_slave("intruder", "m", ["k1"], now=0)
    assert p.take_for_slave("s", "m", ["k1"], now=0)[0].key == bytes([1]) * 32
    with pytest.raises(KeyNotFound):
        p.take_for_slave("s", "m", ["k1"], now=0)


def test_stream_keys_once_per_side_and_ttl(tmp_path):
    p = KeyPool(tmp_path / "p.sqlite")
    p.store_ready([rec(1, "ks", 0), rec(2, "ks", 1, expires=10)], master_local=True, slave_local=True, now=0)
    assert p.take_stream_key("ks", 0, "m", now=0).key == bytes([1]) * 32
    with pytest.raises(KeyNotFound):
        p.take_stream_key("ks", 0, "m", now=0)
    assert p.take_stream_key("ks", 0, "s", now=0).key == bytes([1]) * 32
    assert p.expire(now=11) == 1
    assert p.take_stream_key("ks", 1, "m", now=11) is None
    assert p.max_stream_index("ks") == 1


def test_relayed_keys_taken_by_a_concurrent_request_are_replaced_from_the_batch(tmp_path):
    """Request X relayed k1 (+ surplus k2, k3); request Y of the same pair took the oldest
    ready key, k1, before X released its own: X gets a surplus key instead of a 400."""
    p = KeyPool(tmp_path / "p.sqlite")
    p.store_ready([rec(1), rec(2), rec(3)], master_local=True, slave_local=False, now=0)
    assert [r.key_id for r in p.take_for_master("m", "s", 1, 256, now=0)] == ["k1"]   # Y
    got = p.take_relayed_for_master("m", "s", ["k1"], 256, now=0)                     # X
    assert len(got) == 1 and got[0].key_id in ("k2", "k3") and got[0].key is not None
    left = "k3" if got[0].key_id == "k2" else "k2"
    with pytest.raises(InsufficientKey):          # one of two left: all or none
        p.take_relayed_for_master("m", "s", ["k1", "k9"], 256, now=0)
    assert [r.key_id for r in p.take_relayed_for_master("m", "s", [left], 256, now=0)] == [left]
    with pytest.raises(InsufficientKey):          # nothing left: retryable, all or none
        p.take_relayed_for_master("m", "s", ["k1"], 256, now=0)
    assert p.counts() == {"released": 3}


def test_named_release_to_master(tmp_path):
    p = KeyPool(tmp_path / "p.sqlite")
    p.store_ready([rec(1), rec(2)], master_local=True, slave_local=False, now=0)
    assert [r.key_id for r in p.take_named_for_master("m", ["k2"], now=0)] == ["k2"]
    with pytest.raises(KeyNotFound):
        p.take_named_for_master("m", ["k2"], now=0)
    with pytest.raises(KeyNotFound):
        p.take_named_for_master("other", ["k1"], now=0)


def test_group_commit_releases_each_key_once_and_isolates_failures(tmp_path):
    import threading
    p = KeyPool(tmp_path / "p.sqlite")
    p.store_ready([rec(i) for i in range(1, 61)], master_local=True, slave_local=False, now=0)
    got, errors, lock = [], [], threading.Lock()

    def worker():
        for _ in range(5):
            keys = p.take_for_master("m", "s", 2, 256, now=0)
            try:
                p.take_named_for_master("m", ["nope"], now=0)
            except KeyNotFound as exc:
                with lock:
                    errors.append(exc)
            with lock:
                got.extend(k.key_id for k in keys)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == len(set(got)) == 60 and len(errors) == 30
    assert p.counts() == {"released": 60}
