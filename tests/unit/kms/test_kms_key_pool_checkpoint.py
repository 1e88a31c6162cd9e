"""The key pool's WAL checkpoint leaves no statement in progress, whoever still holds its
cursor: a held checkpoint cursor made every later group commit fail with "cannot open
savepoint - SQL statements in progress" (seen with ``gc.get_objects()`` in a KM process)."""

import sqlite3

from kms.key_pool import KeyPool, KeyRecord


class _HoldingConnection:
    """A connection that keeps every cursor its ``execute`` returns alive, as a reference
    held elsewhere (a debugger, ``gc.get_objects()``) would."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.held: list[sqlite3.Cursor] = []

    def execute(self, *args):
        cursor = self._conn.execute(*args)
        self.held.append(cursor)
        return cursor

    def __getattr__(self, name):
        return getattr(self._conn, name)


def test_group_commit_after_a_checkpoint_whose_cursor_is_still_held(tmp_path):
    pool = KeyPool(tmp_path / "p.sqlite")
    pool.store_ready([KeyRecord("k1", "m", "s", bytes(32))], master_local=True,
                     slave_local=False, now=0)
    holding = _HoldingConnection(pool._conn)
    pool._conn = holding
    pool._truncate_wal()
    assert holding.held
    taken = pool.take_for_master("m", "s", 1, 256, now=1)   # a group commit (SAVEPOINT)
    assert [r.key_id for r in taken] == ["k1"]
