"""A relay batch goes into the pool with one statement (``json_each`` + ``substr``); the rows
are the ones the per-row insert writes, and a repeated key_ID still refuses the whole batch."""

import os

import pytest

from kms.errors import RelayError
from kms.key_pool import KeyPool, KeyRecord

COLUMNS = ("key_id, master, slave, key, size_bits, state, master_local, slave_local, "
           "stream_id, stream_index, session, next_hop, created, expires, provenance, leg")


def _rows(pool: KeyPool) -> list[tuple]:
    return pool._conn.execute(f"SELECT {COLUMNS} FROM keys ORDER BY rowid").fetchall()


def _batch(prefix: str, n: int = 50) -> list[KeyRecord]:
    return [KeyRecord(f"{prefix}-{i}/sae-é\"x", "sae-a", "sae-b", os.urandom(32),
                      session="s1", expires=123.5, provenance="seed") for i in range(n)]


def test_one_statement_writes_what_the_per_row_insert_writes(tmp_path):
    batch = _batch("k")
    fast = KeyPool(tmp_path / "fast.sqlite")
    fast.add_pending(batch, master_local=True, slave_local=False, next_hop="B", now=7.25,
                     leg="L1")
    fast.store_ready(_batch("r"), master_local=False, slave_local=True, now=8.0)
    slow = KeyPool(tmp_path / "slow.sqlite")
    mixed = batch + [KeyRecord("odd", "sae-a", "sae-c", os.urandom(32))]  # not uniform
    slow.add_pending(mixed, master_local=True, slave_local=False, next_hop="B", now=7.25,
                     leg="L1")
    assert _rows(fast)[:50] == _rows(slow)[:50]
    assert [r[0] for r in _rows(fast)] == [r.key_id for r in batch] + [f"r-{i}/sae-é\"x"
                                                                      for i in range(50)]
    assert all(isinstance(r[3], bytes) and len(r[3]) == 32 for r in _rows(fast))
    fast.close()
    slow.close()


def test_a_known_key_id_refuses_the_whole_batch(tmp_path):
    pool = KeyPool(tmp_path / "keys.sqlite")
    batch = _batch("k")
    pool.store_ready(batch[:10], master_local=False, slave_local=True, now=1.0)
    with pytest.raises(RelayError):
        pool.store_ready(batch, master_local=False, slave_local=True, now=2.0)
    assert len(_rows(pool)) == 10
    pool.close()
