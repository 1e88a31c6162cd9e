"""Bounded tombstones: pruned rows stay refused (key_ID watermark, stream index marks), rows
that are not tombstones and key_IDs no rule covers are kept, the file stops growing in a
steady state, and a kill -9 during a prune leaves every deleted row covered."""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from kms.errors import KeyNotFound, RelayError
from kms.key_manager import new_key_ids
from kms.key_pool import (
    KeyPool,
    KeyRecord,
    KeyState,
    copy_key_id,
    key_id_time_bound,
    key_id_time_ms,
)

T0 = 1_800_000_000.0          # a fake Unix time (s); key_IDs are minted at it
RETENTION = 600.0


def minted(n, at=T0):
    return new_key_ids(n, now_ms=int(at * 1000))


def records(ids, master="m", slave="s", **kw):
    return [KeyRecord(k, master, slave, bytes([i % 256]) * 32, **kw) for i, k in enumerate(ids)]


def pool(path, retention=RETENTION):
    return KeyPool(path / "p.sqlite", tombstone_retention_s=retention)


def test_key_id_time_is_read_only_from_canonical_version_7_ids():
    k = minted(1)[0]
    assert key_id_time_ms(k) == int(T0 * 1000)
    assert key_id_time_ms(copy_key_id(k, "sae-x")) == int(T0 * 1000)
    assert key_id_time_ms(k.upper()) is None                   # not canonical: no rule
    assert key_id_time_ms(str(uuid.uuid4())) is None
    assert key_id_time_ms(str(uuid.uuid5(uuid.NAMESPACE_DNS, "x"))) is None
    assert key_id_time_ms("k1") is None
    assert key_id_time_ms(k + "x") is None
    # the string bound orders like the time
    assert k < key_id_time_bound(int(T0 * 1000) + 1)
    assert not k < key_id_time_bound(int(T0 * 1000))


def test_a_pruned_key_id_is_still_refused_and_resolves_void(tmp_path):
    p = pool(tmp_path)
    released, voided = minted(3), minted(2)
    p.store_ready(records(released), master_local=False, slave_local=True, now=T0)
    p.take_for_slave("s", "m", released, now=T0)
    assert p.resolve(voided) == dict.fromkeys(voided, "void")    # tombstones of a lost relay
    assert p.prune_tombstones(T0 + RETENTION - 1) == 0           # not old enough
    assert p.counts() == {"released": 3, "void": 2}
    assert p.prune_tombstones(T0 + RETENTION + 1) == 5
    assert p.counts() == {}
    for ids in (released, voided):                                # late copy / replay
        with pytest.raises(RelayError):
            p.store_ready(records(ids), master_local=False, slave_local=True, now=T0 + 700)
    never_seen = minted(1, at=T0 - 5)                              # a copy older than the horizon
    with pytest.raises(RelayError):
        p.store_ready(records(never_seen), master_local=False, slave_local=True, now=T0 + 700)
    with pytest.raises(KeyNotFound):
        p.take_for_slave("s", "m", released[:1], now=T0 + 700)
    assert p.resolve(released + never_seen) == dict.fromkeys(released + never_seen, "void")
    assert p.counts() == {}                                       # no row was needed for that
    fresh = minted(2, at=T0 + 700)                                # fresh keys are unaffected
    p.store_ready(records(fresh), master_local=False, slave_local=True, now=T0 + 700)
    assert [r.key_id for r in p.take_for_slave("s", "m", fresh, now=T0 + 700)] == fresh
    p.close()
    q = pool(tmp_path)                                            # the rule is durable
    assert q.horizon()[0] == int((T0 + RETENTION + 1 - RETENTION) * 1000)
    with pytest.raises(RelayError):
        q.store_ready(records(released), master_local=False, slave_local=True, now=T0 + 800)
    q.close()


def test_a_batch_with_one_pruned_key_id_is_refused_whole(tmp_path):
    p = pool(tmp_path)
    old = minted(1)
    p.store_ready(records(old), master_local=False, slave_local=True, now=T0)
    p.take_for_slave("s", "m", old, now=T0)
    p.prune_tombstones(T0 + RETENTION + 1)
    batch = minted(3, at=T0 + RETENTION + 1) + old
    with pytest.raises(RelayError):
        p.store_ready(records(batch), master_local=False, slave_local=True, now=T0 + 700)
    assert p.counts() == {}                                       # all or none


def test_rows_that_are_not_tombstones_and_uncovered_key_ids_are_kept(tmp_path):
    p = pool(tmp_path)
    ready, pending = minted(2), minted(2)
    p.store_ready(records(ready), master_local=True, slave_local=False, now=T0)
    p.add_pending(records(pending), master_local=True, slave_local=False, next_hop="B", now=T0)
    other = ["k1", str(uuid.uuid4()), minted(1)[0].upper()]       # no time the rule can read
    p.store_ready(records(other, slave="s2"), master_local=False, slave_local=True, now=T0)
    p.take_for_slave("s2", "m", other, now=T0)
    assert p.prune_tombstones(T0 + 10 * RETENTION) == 0
    assert p.counts() == {"ready": 2, "pending": 2, "released": 3}
    with pytest.raises(RelayError):                               # kept: refused by its row
        p.store_ready(records(other[1:2], slave="s2"), master_local=False, slave_local=True,
                      now=T0)
    assert [r.key_id for r in p.take_for_master("m", "s", 2, 256, now=T0)] == ready
    assert p.resolve(pending[:1]) == {pending[0]: "stored"}       # an old row answers for itself


def test_copies_of_multi_slave_keys_are_pruned_and_refused(tmp_path):
    p = pool(tmp_path)
    k = minted(1)[0]
    copy = [KeyRecord(copy_key_id(k, "s2"), "m", "s2", b"\1" * 32)]
    p.store_ready(copy, master_local=False, slave_local=True, now=T0)
    assert p.take_for_slave("s2", "m", [k], now=T0)[0].key == b"\1" * 32
    assert p.prune_tombstones(T0 + RETENTION + 1) == 1
    with pytest.raises(RelayError):
        p.store_ready(copy, master_local=False, slave_local=True, now=T0 + 700)
    with pytest.raises(KeyNotFound):
        p.take_for_slave("s2", "m", [k], now=T0 + 700)


def stream_records(ksid, indices):
    return [KeyRecord(str(uuid.uuid5(uuid.UUID(ksid), str(i))), "m", "s", bytes([i]) * 16, ksid,
                      i) for i in indices]


def test_pruned_stream_positions_stay_refused_and_are_never_made_again(tmp_path):
    ksid = str(uuid.uuid4())
    p = pool(tmp_path)
    p.store_ready(stream_records(ksid, range(5)), master_local=True, slave_local=True, now=T0)
    for i in range(4):                                           # 0-3 released, 4 still ready
        for sae in ("m", "s"):
            assert p.take_stream_key(ksid, i, sae, now=T0) is not None
    p.drop_stream(ksid)                                          # 4 voided
    assert p.prune_tombstones(T0 + RETENTION - 1) == 0
    assert p.prune_tombstones(T0 + RETENTION) == 5
    assert p.counts() == {}
    assert p.horizon()[1] == {ksid: 4}
    assert p.max_stream_index(ksid) == 4                         # the originator goes on at 5
    assert p.stream_state(ksid, 2) is KeyState.VOID              # GET_KEY: already delivered
    assert p.stream_state(ksid, 5) is None
    assert p.take_stream_key(ksid, 2, "m", now=T0 + 700) is None
    with pytest.raises(RelayError):                               # a late copy of index 3
        p.store_ready(stream_records(ksid, [3]), master_local=True, slave_local=True,
                      now=T0 + 700)
    late = stream_records(ksid, [3])[0]._replace(key_id=minted(1, at=T0 + 700)[0])
    with pytest.raises(RelayError):                               # index 3 under another key_ID
        p.store_ready([late], master_local=True, slave_local=True, now=T0 + 700)
    p.store_ready(stream_records(ksid, [5]), master_local=True, slave_local=True, now=T0 + 700)
    p.close()
    q = pool(tmp_path)
    assert q.max_stream_index(ksid) == 5 and q.horizon()[1] == {ksid: 4}
    q.close()


def test_the_file_stops_growing_in_a_steady_state(tmp_path):
    """Create and release 64 keys a 'second' (fake clock), pruning each second with a 20 s
    retention: after the first 20 s the number of rows and the file's pages stay flat
    (freed pages are reused; no VACUUM). Without a retention the same loop grows the file."""
    retention, per_tick, ticks = 20.0, 64, 90

    def run(p, ticks):
        sizes = []
        for tick in range(ticks):
            now = T0 + tick
            ids = minted(per_tick, at=now)
            p.store_ready(records(ids), master_local=True, slave_local=False, now=now)
            assert len(p.take_for_master("m", "s", per_tick, 256, now=now)) == per_tick
            p.prune_tombstones(now)
            sizes.append((p._conn.execute("SELECT COUNT(*) FROM keys").fetchone()[0],
                          p._conn.execute("PRAGMA page_count").fetchone()[0]))
        return sizes

    started = time.monotonic()
    p = pool(tmp_path, retention)
    sizes = run(p, ticks)
    p.close()
    rows = [r for r, _ in sizes]
    pages = [n for _, n in sizes]
    assert max(rows[30:]) <= per_tick * (retention + 1)          # bounded by the retention
    assert max(pages[30:]) <= pages[30] + 2                      # flat once in steady state
    assert max(pages[50:]) - min(pages[50:]) <= 1
    q = KeyPool(tmp_path / "q.sqlite")                            # no retention: it grows
    growing = [n for _, n in run(q, 50)]
    q.close()
    assert growing[-1] > pages[30] + 20
    assert time.monotonic() - started < 3.0


PRUNER = """
import sys, time
from pathlib import Path
from kms.key_pool import KeyPool
p = KeyPool(Path(sys.argv[1]), tombstone_retention_s=1.0)
sys.stdout.write("ready\\n"); sys.stdout.flush()
p.prune_tombstones(float(sys.argv[2]))
sys.stdout.write("done\\n"); sys.stdout.flush()
time.sleep(30)
"""


@pytest.mark.parametrize("delay_s", [0.0, 0.05, 0.12])
def test_a_kill_during_a_prune_leaves_every_deleted_row_covered(tmp_path, delay_s):
    """12 prune transactions of 1,000 rows (≈ 0.2 s in all); the kill lands before, between or
    after them."""
    path = tmp_path / "p.sqlite"
    p = KeyPool(path)
    ids = minted(12_000)
    p.store_ready(records(ids), master_local=True, slave_local=False, now=T0)
    assert len(p.take_for_master("m", "s", 12_000, 256, now=T0)) == 12_000
    p.close()
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[3]))
    child = subprocess.Popen([sys.executable, "-c", PRUNER, str(path), str(T0 + 100)],
                             stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout.readline() == "ready\n"
        time.sleep(delay_s)
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    q = KeyPool(path)
    assert q._conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    watermark, _ = q.horizon()
    present = {k for (k,) in q._conn.execute("SELECT key_id FROM keys")}
    gone = [k for k in ids if k not in present]
    assert all(key_id_time_ms(k) <= watermark for k in gone)     # every deleted row covered
    with pytest.raises(RelayError):
        q.store_ready(records(ids[:1]), master_local=False, slave_local=True, now=T0)
    q.close()


def test_a_prune_with_a_budget_stops_between_batches_and_goes_on_later(tmp_path):
    p = pool(tmp_path)
    ids = minted(3000)
    p.store_ready(records(ids), master_local=True, slave_local=False, now=T0)
    assert len(p.take_for_master("m", "s", 3000, 256, now=T0)) == 3000
    assert p.prune_tombstones(T0 + RETENTION + 1, budget_s=0.0) == 1000   # one batch, then stop
    assert p.prune_tombstones(T0 + RETENTION + 1) == 2000
    assert p.counts() == {}
