"""Batch reservations of ETSI 014 master keys (kms.key_pool.KeyPool, reserve_batch > 0): one
durable transaction per batch, hand-outs through the journal, never twice, voided at start
when not handed out, no key bytes left in the store."""

import os
import sqlite3

import pytest

from kms.errors import InsufficientKey
from kms.key_pool import HANDED_OUT_SUFFIX, KeyPool, KeyRecord


def rec(i, expires=None):
    return KeyRecord(f"k{i:03d}", "m", "s", bytes([i]) * 32, expires=expires)


def fill(pool, n, start=1, **kw):
    pool.add_pending([rec(i, **kw) for i in range(start, start + n)], master_local=True,
                     slave_local=False, next_hop="B", now=0)
    pool.mark_ready([f"k{i:03d}" for i in range(start, start + n)])


def states(path):
    conn = sqlite3.connect(str(path))
    try:
        return dict(conn.execute("SELECT key_id, state FROM keys").fetchall())
    finally:
        conn.close()


def test_one_reservation_serves_a_batch_and_keys_leave_the_store(tmp_path):
    p = KeyPool(tmp_path / "p.sqlite", reserve_batch=4)
    fill(p, 6)
    got = p.take_for_master("m", "s", 1, 256, now=1)
    assert [r.key_id for r in got] == ["k001"] and got[0].key == bytes([1]) * 32
    # four reserved at once: three still in memory, their bytes already gone from the store
    assert p.reserved_count("m", "s", 256) == 3
    assert p.ready_count("m", "s", 256) == 5         # reserved ones still count as stored
    conn = sqlite3.connect(str(tmp_path / "p.sqlite"))
    assert conn.execute("SELECT COUNT(*) FROM keys WHERE state='reserved' AND key IS NOT NULL"
                        ).fetchone()[0] == 0
    conn.close()
    out = [r.key_id for _ in range(5) for r in p.take_for_master("m", "s", 1, 256, now=1)]
    assert out == ["k002", "k003", "k004", "k005", "k006"]       # oldest first, each once
    assert p.take_for_master("m", "s", 1, 256, now=1) == []
    p.fold_journal()
    assert set(states(tmp_path / "p.sqlite").values()) == {"released"}
    p.close()


def test_kill_between_reservation_and_hand_out_voids_only_what_was_not_handed_out(tmp_path):
    path = tmp_path / "p.sqlite"
    p = KeyPool(path, reserve_batch=8)
    fill(p, 8)
    handed = [r.key_id for r in p.take_for_master("m", "s", 3, 256, now=1)]
    # a crashed process: no close(), the journal is what the OS has; a second instance
    # opening the same files stands for the restarted KM
    p2 = KeyPool(path, reserve_batch=8)
    st = states(path)
    assert {k for k, v in st.items() if v == "released"} == set(handed)
    assert {k for k, v in st.items() if v == "void"} == {f"k{i:03d}" for i in range(4, 9)}
    assert sorted(r.key_id for r in p2.recovered_void()) == [f"k{i:03d}" for i in range(4, 9)]
    assert p2.take_for_master("m", "s", 8, 256, now=1) == []      # never handed out twice
    assert os.path.getsize(str(path) + HANDED_OUT_SUFFIX) == 0
    p2.close()


def test_torn_journal_line_and_clean_close(tmp_path):
    path = tmp_path / "p.sqlite"
    p = KeyPool(path, reserve_batch=4)
    fill(p, 4)
    p.take_for_master("m", "s", 1, 256, now=1)
    with open(str(path) + HANDED_OUT_SUFFIX, "a") as journal:
        journal.write("k00")                       # half a key_ID: matches nothing
    p.close()                                      # settles: k001 released, the rest void
    st = states(path)
    assert st["k001"] == "released" and {st[f"k00{i}"] for i in (2, 3, 4)} == {"void"}


def test_expired_reserved_keys_are_voided_not_handed_out(tmp_path):
    p = KeyPool(tmp_path / "p.sqlite", reserve_batch=4)
    fill(p, 2, expires=10.0)
    fill(p, 2, start=3)
    assert [r.key_id for r in p.take_for_master("m", "s", 1, 256, now=1)] == ["k001"]
    assert [r.key_id for r in p.take_for_master("m", "s", 2, 256, now=11)] == ["k003", "k004"]
    assert states(tmp_path / "p.sqlite")["k002"] == "void"
    p.close()


def test_relayed_keys_held_by_a_reservation_are_still_found(tmp_path):
    p = KeyPool(tmp_path / "p.sqlite", reserve_batch=8)
    fill(p, 2)
    p.take_for_master("m", "s", 1, 256, now=1)     # reserves k001, k002; hands out k001
    fill(p, 2, start=3)                            # a request relays k003, k004 ...
    p.take_for_master("m", "s", 1, 256, now=1)     # ... a concurrent one reserves them
    got = p.take_relayed_for_master("m", "s", ["k003", "k004"], 256, now=1)
    assert sorted(r.key_id for r in got) == ["k003", "k004"]
    with pytest.raises(InsufficientKey):
        p.take_relayed_for_master("m", "s", ["k009", "k010"], 256, now=1)
    p.close()


def test_local_pairs_and_named_keys_bypass_or_use_the_reserve(tmp_path):
    p = KeyPool(tmp_path / "p.sqlite", reserve_batch=4)
    # a pair whose slave is local keeps its bytes for the slave: never reserved
    p.store_ready([rec(1)], master_local=True, slave_local=True, now=0)
    assert [r.key_id for r in p.take_for_master("m", "s", 1, 256, now=1)] == ["k001"]
    assert p.reserved_count("m", "s", 256) == 0
    assert p.take_for_slave("s", "m", ["k001"], now=1)[0].key == bytes([1]) * 32
    fill(p, 3, start=2)
    p.take_for_master("m", "s", 1, 256, now=1)     # reserves k002..k004
    got = p.take_named_for_master("m", ["k004", "k003"], now=1)
    assert [r.key_id for r in got] == ["k004", "k003"]
    assert p.reserved_count("m", "s", 256) == 0
    p.close()


def test_large_requests_reserve_a_few_requests_worth(tmp_path):
    """A request above reserve_batch reserves RESERVE_REQUESTS requests' worth: a stream of
    10-key requests with reserve_batch 4 makes one durable reservation per four requests."""
    from kms.key_pool import RESERVE_REQUESTS
    p = KeyPool(tmp_path / "p.sqlite", reserve_batch=4)
    fill(p, 100)
    got = p.take_for_master("m", "s", 10, 256, now=1)
    assert [r.key_id for r in got] == [f"k{i:03d}" for i in range(1, 11)]
    assert p.reserved_count("m", "s", 256) == RESERVE_REQUESTS * 10 - 10
    for _ in range(RESERVE_REQUESTS - 1):
        assert len(p.take_for_master("m", "s", 10, 256, now=1)) == 10
    assert p.reserved_count("m", "s", 256) == 0
    # a restart voids only what was reserved and never handed out
    assert len(p.take_for_master("m", "s", 10, 256, now=1)) == 10
    p2 = KeyPool(tmp_path / "p.sqlite", reserve_batch=4)
    voided = {r.key_id for r in p2.recovered_void()}
    assert len(voided) == RESERVE_REQUESTS * 10 - 10
    p2.close()
