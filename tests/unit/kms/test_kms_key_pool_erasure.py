"""Released key bytes leave no trace in the pool's files (secure_delete, WAL truncation):
the batch paths set ``key`` to NULL without a zeroblob rewrite first."""

import os
import time
from pathlib import Path

from kms.key_pool import KeyPool, KeyRecord


def _files(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def _records(n: int, master: str, slave: str) -> list[KeyRecord]:
    return [KeyRecord(f"{master}-{slave}-{i:04d}", master, slave, os.urandom(32))
            for i in range(n)]


def test_keys_released_to_the_master_from_a_reservation_are_gone_from_disk(tmp_path):
    path = tmp_path / "keys.sqlite"
    pool = KeyPool(path, reserve_batch=64)
    records = _records(300, "sae-a", "sae-b")
    pool.add_pending(records, master_local=True, slave_local=False, next_hop="B", now=1.0)
    pool.mark_ready([r.key_id for r in records], for_local_sae=True)
    assert all(r.key in _files(path) for r in records[:5])    # held: on disk
    taken = pool.take_for_master("sae-a", "sae-b", 100, 256, time.time())
    assert len(taken) == 100
    data = _files(path)
    # the reservation took 400 (4 requests' worth): their bytes are in memory only
    assert not any(r.key in data for r in records[:300])
    pool.close()


def test_keys_released_to_the_slave_and_relayed_copies_are_gone_from_disk(tmp_path):
    path = tmp_path / "keys.sqlite"
    pool = KeyPool(path)
    mine = _records(200, "sae-a", "sae-b")
    pool.store_ready(mine, master_local=False, slave_local=True, now=1.0)
    copies = _records(100, "sae-a", "sae-c")            # an additional slave's copies
    pool.add_pending(copies, master_local=False, slave_local=False, next_hop="C", now=1.0)
    pool.mark_ready([r.key_id for r in copies])
    kept = mine[150:]
    got = pool.take_for_slave("sae-b", "sae-a", [r.key_id for r in mine[:150]], time.time())
    assert [r.key for r in got] == [r.key for r in mine[:150]]
    pool.expire(0.0)                                     # any later commit: WAL truncated
    data = _files(path)
    assert not any(r.key in data for r in mine[:150] + copies)
    assert all(r.key in data for r in kept)              # the control: unreleased keys are
    pool.close()
