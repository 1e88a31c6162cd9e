"""Reservations made ahead in the background (``KeyPool(reserve_ahead=True)``): a pair's
next requests are served from memory; nothing is handed out twice or lost at close."""

import os
import time

from kms.key_pool import KeyPool, KeyRecord


def _fill(pool: KeyPool, n: int) -> list[KeyRecord]:
    records = [KeyRecord(f"k{i:05d}", "sae-a", "sae-b", os.urandom(32)) for i in range(n)]
    pool.add_pending(records, master_local=True, slave_local=False, next_hop="B", now=1.0)
    pool.mark_ready([r.key_id for r in records], for_local_sae=True)
    return records


def _wait_reserved(pool: KeyPool, at_least: int) -> int:
    deadline = time.monotonic() + 5
    while pool.reserved_count("sae-a", "sae-b", 256) < at_least and time.monotonic() < deadline:
        time.sleep(0.01)
    return pool.reserved_count("sae-a", "sae-b", 256)


def test_the_next_requests_find_their_keys_reserved(tmp_path):
    pool = KeyPool(tmp_path / "keys.sqlite", reserve_batch=64, reserve_ahead=True)
    records = _fill(pool, 2000)
    handed: list[str] = []
    for _ in range(4):    # the first reservation: 4 × 100 keys
        handed += [r.key_id for r in pool.take_for_master("sae-a", "sae-b", 100, 256, 2.0)]
    # after the third request 100 were left (< two requests' worth): 400 more reserved ahead
    assert _wait_reserved(pool, 400) >= 400
    for _ in range(6):
        handed += [r.key_id for r in pool.take_for_master("sae-a", "sae-b", 100, 256, 2.0)]
    assert len(handed) == len(set(handed)) == 1000
    assert handed == [r.key_id for r in records[:1000]]         # oldest first, no gap
    pool.close()
    reopened = KeyPool(tmp_path / "keys.sqlite", reserve_batch=64)
    counts = reopened.counts()
    assert counts["released"] == 1000                            # every hand-out recorded
    assert counts["ready"] + counts.get("void", 0) == 1000       # reserved ahead: voided
    reopened.close()


def test_off_by_default(tmp_path):
    pool = KeyPool(tmp_path / "keys.sqlite", reserve_batch=64)
    _fill(pool, 500)
    pool.take_for_master("sae-a", "sae-b", 100, 256, 2.0)
    time.sleep(0.2)
    assert pool.reserved_count("sae-a", "sae-b", 256) == 300     # 400 reserved, 100 out
    pool.close()
