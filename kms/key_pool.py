"""End-to-end keys at an endpoint KM, from creation (or arrival) to release to the SAEs.

Each key row has a ``key_id`` (UUID, never reused: rows of released or voided keys stay as
bytes-free tombstones, pruned after a retention behind a rule that keeps refusing them), the
master and slave SAE, the size, optional 004 stream position, and a state:

* ``pending`` — source side, relayed but not yet acknowledged; never released;
* ``ready`` — acknowledged (source) or stored (destination): releasable once to each local SAE;
* ``reserved`` — ready keys of an ETSI 014 pair taken out of the store in a batch for the
  master's next requests (bytes held in memory only, overwritten in the store; see
  :class:`KeyPool`); a reserved key is either handed to the master (``released``) or voided;
* ``released`` / ``void`` — tombstones (key bytes overwritten and removed).

Key bytes leave a row by setting ``key`` to NULL: with ``secure_delete=ON`` SQLite zeroes the
freed cell in the page (checked by ``tests/unit/kms/test_kms_key_pool_erasure.py``), and the
WAL, which still holds earlier page images, is truncated after every release. The batch paths
no longer write ``zeroblob`` first (a second rewrite of every row of a 1,000-key batch).

Every transition is one SQLite transaction (WAL, synchronous FULL, secure_delete), except the
mark that hands a reserved key out: a line in an append-only hand-out journal, durable against
a process crash (see :class:`KeyPool` for why that keeps every guarantee).

Tombstones are pruned once older than a retention (:meth:`KeyPool.prune_tombstones`), each
pruned row replaced by a compact refusal rule that covers it exactly: a *key_ID watermark*
for version 7 key_IDs (time-ordered: every key_ID whose time is at or below it is refused),
and a per-stream *index mark* for 004 stream keys (every position at or below it is
refused). Tombstones that neither rule covers (other key_IDs: hybrid seeds, pools written
before UUIDv7) are kept.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, NamedTuple

from kms.errors import InsufficientKey, KeyNotFound, KmsError, RelayError
from kms.key_store import open_database

log = logging.getLogger(__name__)

#: the hand-out journal is ``<pool file>`` + this suffix (key_IDs only, never key bytes)
HANDED_OUT_SUFFIX = "-handed-out"
#: hand-outs after which the journal is folded into the store (one fsync)
JOURNAL_FOLD_LINES = 4096
#: a reservation for a request larger than ``reserve_batch`` holds this many requests' worth
#: (a stream of 100-key requests made one durable reservation each with reserve_batch 64)
RESERVE_REQUESTS = 4
#: tombstones deleted per prune transaction (one fsync; the pool's lock is free in between)
PRUNE_BATCH = 1000
#: prune transactions per :meth:`KeyPool.prune_tombstones` call at most
PRUNE_BATCHES = 16

#: a canonical version 7 UUID (RFC 9562, lower-case hex), optionally with a multi-slave copy's
#: ``/<slave SAE>`` suffix (:func:`copy_key_id`): its first 48 bits are Unix time in ms
_V7_KEY_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
                        r"(?:/.*)?", re.DOTALL)
#: the same set as SQLite GLOB patterns (GLOB is case-sensitive, as the regular expression)
_HEX = "[0-9a-f]"
_V7_GLOB = (f"{_HEX * 8}-{_HEX * 4}-7{_HEX * 3}-[89ab]{_HEX * 3}-{_HEX * 12}")
_V7_COPY_GLOB = _V7_GLOB + "/*"


class KeyState(str, Enum):
    PENDING = "pending"
    READY = "ready"
    RESERVED = "reserved"
    RELEASED = "released"
    VOID = "void"


class KeyRecord(NamedTuple):
    """An end-to-end key and who it is for (``key`` is None in tombstones).

    An immutable value like the package's frozen dataclasses, as a ``NamedTuple``: a relay
    batch makes a thousand of them at each end and every reservation hundreds, and a frozen
    dataclass's ``__init__`` (one ``object.__setattr__`` per field) cost ~3 µs each, a NamedTuple
    ~1 µs. Compare records by their fields, never with plain tuples."""

    key_id: str
    master: str
    slave: str
    key: bytes | None
    stream_id: str | None = None
    stream_index: int | None = None
    session: str | None = None
    expires: float | None = None
    #: ``qkd``, ``hybrid`` or ``pqc`` (``kms.hybrid_kdf.Provenance``); ``seed`` marks the QKD
    #: part of a hybrid request, which is never released to an SAE
    provenance: str = "qkd"


def key_id_time_ms(key_id: str) -> int | None:
    """Unix time in ms of a canonical version 7 key_ID (or of its copy's row id); None for any
    other key_ID (version 4 or 5 UUIDs, upper-case spellings, other strings)."""
    if _V7_KEY_ID.fullmatch(key_id) is None:
        return None
    return int(key_id[:8] + key_id[9:13], 16)


def key_id_time_bound(ms: int) -> str:
    """The 13-character time prefix of version 7 key_IDs of time ``ms``: a canonical version 7
    key_ID sorts (as a string) below ``key_id_time_bound(ms)`` exactly when its time is below
    ``ms`` (fixed-width lower-case hex sorts like the number)."""
    stamp = f"{ms:012x}"
    return f"{stamp[:8]}-{stamp[8:]}"


def copy_key_id(key_id: str, slave: str) -> str:
    """Row id of the copy of ``key_id`` for an additional slave SAE (ETSI 014
    ``additional_slave_SAE_IDs``): every slave's copy is its own row (own release flag, own
    tombstone), and two slaves of one KM never collide. The slave still asks by ``key_id``."""
    return f"{key_id}/{slave}"


@dataclass(frozen=True)
class PendingRelay:
    key_ids: tuple[str, ...]
    session: str | None
    next_hop: str
    leg: str | None = None   #: route leg (VIRT qkdl_id) of a multipath session


#: one transaction: one disk flush for a new file instead of one per statement
_SCHEMA = """
BEGIN;
CREATE TABLE IF NOT EXISTS keys (
    key_id TEXT PRIMARY KEY, master TEXT NOT NULL, slave TEXT NOT NULL, key BLOB,
    size_bits INTEGER NOT NULL, state TEXT NOT NULL,
    master_local INTEGER NOT NULL, slave_local INTEGER NOT NULL,
    master_taken INTEGER NOT NULL DEFAULT 0, slave_taken INTEGER NOT NULL DEFAULT 0,
    stream_id TEXT, stream_index INTEGER, session TEXT, next_hop TEXT,
    created REAL NOT NULL, expires REAL, provenance TEXT NOT NULL DEFAULT 'qkd', leg TEXT);
-- a pair's READY keys in creation order: a reservation or release takes the oldest N by
-- walking the index. Partial indexes hold only the rows their queries look for (the
-- queries name the state as a literal, so SQLite can use them): tombstones (released,
-- void: every key ever seen) and pending keys are in none, so the indexes stay small and
-- a key entering or leaving a state touches one entry, not a delete + insert in an index
-- of every key ever (session 5; keys_pair_created on (master, slave, state, created)).
DROP INDEX IF EXISTS keys_pair_created;
CREATE INDEX IF NOT EXISTS keys_ready_pair ON keys(master, slave, created)
    WHERE state='ready';
-- relays whose outcome is unknown (the housekeeping looks every second)
CREATE INDEX IF NOT EXISTS keys_pending ON keys(created) WHERE state='pending';
-- keys with a ttl that may expire (the housekeeping looks every second)
CREATE INDEX IF NOT EXISTS keys_expiring ON keys(expires)
    WHERE expires IS NOT NULL AND state IN ('ready', 'pending');
DROP INDEX IF EXISTS keys_pair;
-- 004 stream positions only: 014 and relay keys (stream_id NULL) are not indexed at all
-- (every insert of a 1,000-key relay batch added 1,000 NULL entries to it)
DROP INDEX IF EXISTS keys_stream;
CREATE UNIQUE INDEX IF NOT EXISTS keys_stream_position ON keys(stream_id, stream_index)
    WHERE stream_id IS NOT NULL;
-- tombstones of 004 stream keys by age (KeyPool.prune_tombstones); no other row is in it
CREATE INDEX IF NOT EXISTS keys_stream_gone ON keys(created)
    WHERE stream_id IS NOT NULL AND state IN ('released', 'void');
-- what pruned tombstones leave behind (KeyPool.prune_tombstones): the key_ID watermark
-- ('key_id_ms': version 7 key_IDs at or below this time in ms are refused) ...
CREATE TABLE IF NOT EXISTS horizon (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
-- ... and per 004 stream the highest position pruned (positions at or below are refused)
CREATE TABLE IF NOT EXISTS stream_marks (stream_id TEXT PRIMARY KEY,
                                         through_index INTEGER NOT NULL);
COMMIT;
"""


class KeyPool:
    """Durable end-to-end keys of one KM.

    Releases to SAEs use *group commit*: concurrent releases run in one transaction (each in
    its own savepoint) and share one fsync; every caller returns only after the commit that
    holds its release, so the durability guarantee is unchanged.

    **Reservations** (``reserve_batch`` > 0; ETSI 014 master releases): one synchronous-FULL
    transaction moves up to ``reserve_batch`` ready QKD keys of a (master, slave, size) (or
    :data:`RESERVE_REQUESTS` times the request's number, if larger) from
    ``ready`` to ``reserved``, overwriting their bytes in the store (set to NULL;
    the WAL is truncated) and keeping them in memory. A later request of the pair is served
    from memory: before the HTTP answer its key_IDs are appended to the *hand-out journal*
    (``keys.sqlite-handed-out``; one ``write``, no fsync), so one fsync serves
    ``reserve_batch`` requests. The journal is folded into the store (reserved → released,
    one durable transaction) by the KM's housekeeping every second
    (:meth:`fold_journal`), every :data:`JOURNAL_FOLD_LINES` lines, at close and at start;
    at start every other ``reserved`` row is voided (:meth:`recovered_void` lists them).
    Hence, whatever the moment of a crash:

    * never twice: a reserved key never returns to ``ready`` (the reservation is durable
      before any of its keys is handed out, and its bytes are gone from the store);
    * a kill -9 loses no hand-out mark (the journal ``write`` is in the OS's page cache), so
      only keys that were never handed out are voided at restart; a kill between the mark
      and the answer loses that key to the master, as a kill between commit and answer did;
    * an OS crash or power loss may lose hand-out marks written since the journal was last
      folded: those keys are voided though the master got them (its slave then gets 400 for
      them) — lost, never duplicated.

    Only keys of a pair whose slave is elsewhere (``slave_local=0``) and of provenance
    ``qkd`` are reserved; local pairs, hybrid/pqc keys and 004 stream keys use the
    group-committed path.

    **Tombstones** (``tombstone_retention_s`` > 0; see :meth:`prune_tombstones`): a
    released or void row is deleted once older than the retention, in the same transaction
    as the refusal rule that covers it (the key_ID watermark or its stream's index mark), so
    a late relay copy or a replay of a pruned key is refused as its tombstone refused it.
    """

    def __init__(self, path: Path, local_saes: Iterable[str] = (), *,
                 reserve_batch: int = 0, reserve_ahead: bool = False,
                 tombstone_retention_s: float = 0.0) -> None:
        self._lock = threading.RLock()
        self._conn = open_database(path)
        self._conn.executescript(_SCHEMA)
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(keys)")}
        if "provenance" not in columns:   # a pool written before hybrid keys existed
            self._conn.execute("ALTER TABLE keys ADD COLUMN provenance TEXT NOT NULL "
                               "DEFAULT 'qkd'")
        if "leg" not in columns:  # pools created before multipath
            self._conn.execute("ALTER TABLE keys ADD COLUMN leg TEXT")
        #: tombstones older than this are pruned (0: kept for ever)
        self.tombstone_retention_s = tombstone_retention_s
        row = self._conn.execute("SELECT value FROM horizon WHERE name='key_id_ms'").fetchone()
        #: version 7 key_IDs at or below this time (ms) are refused (durable; -1: none)
        self._watermark_ms = -1 if row is None else int(row[0])
        self._group_lock = threading.Lock()
        self._group_queue: list[_GroupOp] = []
        self._group_leader = False
        self.reserve_batch = reserve_batch
        #: (master, slave, size_bits) -> reserved keys, oldest first (bytes in memory only)
        self._reserved: dict[tuple[str, str, int], list[KeyRecord]] = {}
        self._reserve_lock = threading.Lock()
        #: reserve a pair's next keys in the background once its reserve holds less than two
        #: more requests' worth (see :meth:`_reserve_ahead`); one thread per pair at a time
        self.reserve_ahead = reserve_ahead
        self._ahead_threads: dict[tuple[str, str, int], threading.Thread] = {}
        self._closing = False
        #: hand-out journal: key_IDs of reserved keys given to the master, one per line
        self._journal_path = path.with_name(path.name + HANDED_OUT_SUFFIX)
        self._journal_lock = threading.Lock()
        self._journal_lines = 0
        self._recovered_void = self._settle_reserved_rows(self._read_journal())
        self._truncate_journal()
        fd = os.open(self._journal_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._journal_fd = fd

    def _read_journal(self) -> list[str]:
        try:
            text = self._journal_path.read_text(encoding="ascii", errors="ignore")
        except FileNotFoundError:
            return []
        return [line for line in text.split("\n") if line]  # a torn last line matches nothing

    def _truncate_journal(self) -> None:
        fd = os.open(self._journal_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)

    def _settle_reserved_rows(self, handed_out: Sequence[str]) -> list[KeyRecord]:
        """Start-up / shutdown: reserved keys named in the hand-out journal are released, every
        other reserved key is voided (durable, before the journal is emptied). Returns the
        voided ones (ids and pairs, no bytes)."""
        with self._lock, self._tx() as cur:
            _set_state(cur, handed_out, KeyState.RESERVED, KeyState.RELEASED)
            rows = cur.execute("SELECT key_id, master, slave, session FROM keys WHERE state=?",
                               (KeyState.RESERVED.value,)).fetchall()
            cur.execute("UPDATE keys SET key=NULL, state=? WHERE state=?",
                        (KeyState.VOID.value, KeyState.RESERVED.value))
        return [KeyRecord(k, m, s, None, session=sess) for k, m, s, sess in rows]

    def recovered_void(self) -> list[KeyRecord]:
        """Keys reserved by the previous run and voided at start (ids and pairs, no bytes)."""
        return list(self._recovered_void)

    def _grouped(self, work: Callable[[sqlite3.Cursor], Any]) -> Any:
        """Run ``work(cursor)`` in a shared, group-committed transaction; return its result."""
        op = _GroupOp(work)
        with self._group_lock:
            self._group_queue.append(op)
            lead = not self._group_leader
            if lead:
                self._group_leader = True
        if lead:
            while True:
                with self._group_lock:
                    batch, self._group_queue = self._group_queue, []
                    if not batch:
                        self._group_leader = False
                        break
                self._run_group(batch)
        op.done.wait()
        if op.error is not None:
            raise op.error
        return op.result

    def _run_group(self, batch: list[_GroupOp]) -> None:
        try:
            with self._lock, self._tx() as cur:
                for op in batch:
                    cur.execute("SAVEPOINT op")
                    try:
                        op.result = op.work(cur)
                        cur.execute("RELEASE op")
                    except Exception as exc:  # noqa: BLE001 - handed to that op's caller
                        cur.execute("ROLLBACK TO op")
                        cur.execute("RELEASE op")
                        op.error = exc
        except Exception as exc:  # noqa: BLE001 - the commit failed: nobody got keys
            for op in batch:
                op.result, op.error = None, exc
        else:
            if any(op.result for op in batch):
                self._truncate_wal()
        for op in batch:
            op.done.set()

    def _truncate_wal(self) -> None:
        """Checkpoint and empty the WAL once keys were released or dropped: the WAL still
        held the frames written before (with the key bytes) until the next checkpoint, so
        delivered keys stayed readable in ``keys.sqlite-wal`` (reliability item 9). The
        database pages were already overwritten (secure_delete). The checkpoint's result row
        is read at once: its statement stays in progress while anything still references the
        cursor (e.g. ``gc.get_objects()`` in another thread), and every later SAVEPOINT of the
        group commit then failed with "SQL statements in progress"."""
        with self._lock:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    def close(self) -> None:
        """Settle reservations (handed-out keys released, the rest voided, as the next start
        would), then close."""
        with self._reserve_lock:
            self._closing = True
            ahead = list(self._ahead_threads.values())
        for thread in ahead:      # a reservation in flight commits (or fails) first
            thread.join(timeout=30)
        with self._reserve_lock:
            self._reserved.clear()
        with self._journal_lock:
            self._settle_reserved_rows(self._read_journal())
            os.close(self._journal_fd)
            self._truncate_journal()
        with self._lock:
            self._conn.close()

    def _tx(self):
        return _Transaction(self._conn)

    # -- source side ------------------------------------------------------------------------
    def add_pending(self, records: Sequence[KeyRecord], *, master_local: bool, slave_local: bool,
                    next_hop: str, now: float, leg: str | None = None) -> None:
        """Record keys about to be relayed (before any byte leaves this KM); ``leg`` is the
        route leg of a multipath session (needed to resolve them later)."""
        state, m_local, s_local = KeyState.PENDING.value, int(master_local), int(slave_local)
        with self._lock, self._tx() as cur:
            if _insert_uniform(cur, records, state, m_local, s_local, now,
                               next_hop=next_hop, leg=leg):
                return
            cur.executemany(
                "INSERT INTO keys(key_id, master, slave, key, size_bits, state, master_local, "
                "slave_local, stream_id, stream_index, session, next_hop, created, expires, "
                "provenance, leg) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [(r.key_id, r.master, r.slave, r.key, len(r.key or b"") * 8, state, m_local,
                  s_local, r.stream_id, r.stream_index, r.session, next_hop, now, r.expires,
                  r.provenance, leg) for r in records])

    def mark_ready(self, key_ids: Sequence[str], *, for_local_sae: bool = False) -> None:
        """Acknowledged relays: ready. A relayed copy for no local SAE (an additional slave's
        copy, :func:`copy_key_id`) is released at once: this KM keeps no bytes of it.
        Set-based: a few statements per 500 keys (a relay batch of 1,000 keys cost 1,000
        SELECTs); ``for_local_sae``: the caller knows every key has a local SAE (no copy to
        release), one statement per 500 keys."""
        with self._lock, self._tx() as cur:
            for start in range(0, len(key_ids), 500):
                chunk = list(key_ids[start:start + 500])
                marks = ",".join("?" * len(chunk))
                cur.execute(f"UPDATE keys SET state=? WHERE state=? AND key_id IN ({marks})",
                            [KeyState.READY.value, KeyState.PENDING.value, *chunk])
                if for_local_sae:
                    continue
                nobody = (f"key_id IN ({marks}) AND state=? AND master_local=0 AND "
                          "slave_local=0")
                cur.execute(f"UPDATE keys SET key=NULL, state=? WHERE {nobody}",
                            [KeyState.RELEASED.value, *chunk, KeyState.READY.value])

    def void(self, key_ids: Sequence[str]) -> None:
        """Drop pending keys (the relay did not store them at the destination)."""
        with self._lock, self._tx() as cur:
            for key_id in key_ids:
                _scrub(cur, key_id, KeyState.VOID)
        self._truncate_wal()

    def pending_relays(self) -> list[PendingRelay]:
        """Relays whose outcome is unknown (e.g. after a crash), grouped by route."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT key_id, session, next_hop, leg FROM keys WHERE state='pending' "
                "ORDER BY created").fetchall()
        groups: dict[tuple, list[str]] = {}
        for key_id, session, next_hop, leg in rows:
            groups.setdefault((session, next_hop, leg), []).append(key_id)
        return [PendingRelay(tuple(ids), s, h, g) for (s, h, g), ids in groups.items()]

    # -- destination side -------------------------------------------------------------------
    def store_ready(self, records: Sequence[KeyRecord], *, master_local: bool, slave_local: bool,
                    now: float) -> None:
        """Store relayed keys, all or none; a key_id seen before (incl. voided) is a replay."""
        state, m_local, s_local = KeyState.READY.value, int(master_local), int(slave_local)
        with self._lock, self._tx() as cur:
            if self._beyond_horizon(cur, records):
                raise RelayError("a key_ID of this relay is older than the pool's tombstone "
                                 "horizon (late copy or replay)")
            try:
                if _insert_uniform(cur, records, state, m_local, s_local, now):
                    return
                cur.executemany(
                    "INSERT INTO keys(key_id, master, slave, key, size_bits, state, master_local,"
                    " slave_local, stream_id, stream_index, session, created, expires, provenance)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    [(r.key_id, r.master, r.slave, r.key, len(r.key or b"") * 8, state,
                      m_local, s_local, r.stream_id, r.stream_index, r.session, now, r.expires,
                      r.provenance) for r in records])
            except sqlite3.IntegrityError:
                raise RelayError("a key_ID of this relay is already known (replay)") from None

    def resolve(self, key_ids: Sequence[str]) -> dict[str, str]:
        """Destination's answer for an unknown-outcome relay: ``stored`` or ``void``.

        An absent key is tombstoned as void, so a late copy of the relay is refused.
        """
        outcome = {}
        with self._lock, self._tx() as cur:
            for key_id in key_ids:
                row = cur.execute("SELECT state FROM keys WHERE key_id=?", (key_id,)).fetchone()
                if row is None and self._below_watermark(key_id):
                    outcome[key_id] = "void"     # refused by the watermark: no row needed
                elif row is None:
                    cur.execute("INSERT INTO keys(key_id, master, slave, key, size_bits, state, "
                                "master_local, slave_local, created) VALUES (?,?,?,?,?,?,?,?,?)",
                                (key_id, "", "", None, 0, KeyState.VOID.value, 0, 0, 0.0))
                    outcome[key_id] = "void"
                elif row[0] == KeyState.VOID.value:
                    outcome[key_id] = "void"
                else:
                    outcome[key_id] = "stored"
        return outcome

    # -- release ----------------------------------------------------------------------------
    def take_for_master(self, master: str, slave: str, number: int, size_bits: int,
                        now: float, *, qkd_only: bool = False) -> list[KeyRecord]:
        """Release up to ``number`` ready keys of the pair to the master (QKD keys first, then
        oldest first); ``qkd_only``: leave hybrid/pqc keys derived ahead in the pool.

        With reservations on, QKD keys come from the pair's reserve (refilled with one
        durable transaction when short), the rest from the store."""
        out: list[KeyRecord] = []
        if self.reserve_batch > 0:
            pair = (master, slave, size_bits)
            out = self._pop_reserved(pair, number, now)
            if len(out) < number:
                self._refill(pair, number - len(out), now, request=number)
                out += self._pop_reserved(pair, number - len(out), now)
            self._mark_handed_out(out)
            if self.reserve_ahead and out:
                self._reserve_ahead(pair, number, now)
            if len(out) == number:
                return out
        return out + self._take_stored_for_master(master, slave, number - len(out), size_bits,
                                                  now, qkd_only=qkd_only)

    # -- reservations (see the class docstring) ---------------------------------------------
    def _reserve_ahead(self, pair: tuple[str, str, int], request: int, now: float) -> None:
        """After a hand-out from ``pair``'s reserve: if it holds less than two more requests
        of this size, reserve the next keys (the same durable transaction a request would run,
        :meth:`_refill`) in a background thread, so that the pair's next requests are served
        from memory instead of waiting for that commit — or for a relay's commit holding the
        store meanwhile (relay-ahead inserts and marks 1,000 keys at a time). Nothing is handed
        out before its reservation is durable, as before; at most two reservations' worth of a
        pair are voided if the KM dies."""
        if self.reserved_count(*pair) >= 2 * request:
            return
        thread = threading.Thread(target=self._refill_in_background, args=(pair, request, now),
                                  name="km-reserve-ahead", daemon=True)
        with self._reserve_lock:
            running = self._ahead_threads.get(pair)
            if self._closing or (running is not None and running.is_alive()):
                return
            self._ahead_threads[pair] = thread
        thread.start()

    def _refill_in_background(self, pair: tuple[str, str, int], request: int,
                              now: float) -> None:
        try:
            self._refill(pair, request, now, request=request)
        except Exception as exc:  # noqa: BLE001 - the next request reserves for itself
            log.warning("background reservation for %s -> %s failed: %s", pair[0], pair[1],
                        type(exc).__name__)

    def _pop_reserved(self, pair: tuple[str, str, int], number: int, now: float,
                      key_ids: Sequence[str] | None = None) -> list[KeyRecord]:
        """Take up to ``number`` unexpired reserved keys of ``pair`` (only ``key_ids`` if
        given) out of memory; expired ones are voided."""
        expired: list[str] = []
        with self._reserve_lock:
            held = self._reserved.get(pair)
            if not held:
                return []
            out, keep = [], []
            wanted = None if key_ids is None else set(key_ids)
            for i, record in enumerate(held):
                if len(out) >= number:   # the rest stays as it is (O(number), not O(held))
                    keep.extend(held[i:])
                    break
                if record.expires is not None and record.expires <= now:
                    expired.append(record.key_id)
                elif wanted is None or record.key_id in wanted:
                    out.append(record)
                else:
                    keep.append(record)
            self._reserved[pair] = keep
        if expired:
            self._void_reserved(expired)
        return out

    def _refill(self, pair: tuple[str, str, int], missing: int, now: float, *,
                request: int = 0) -> None:
        """Reserve ``max(missing, reserve_batch, RESERVE_REQUESTS × request)`` ready QKD
        keys of ``pair`` (one durable, group-committed transaction; their bytes leave the
        store): a pair asking for many keys per request reserves a few requests' worth."""
        master, slave, size_bits = pair

        def work(cur: sqlite3.Cursor) -> list[KeyRecord]:
            rows = cur.execute(
                "SELECT key_id, key, expires, session FROM keys WHERE master=? AND slave=? AND "
                "state='ready' AND master_local=1 AND slave_local=0 AND master_taken=0 AND "
                "size_bits=? AND stream_id IS NULL AND provenance='qkd' AND "
                "(expires IS NULL OR expires>?) ORDER BY created LIMIT ?",
                (master, slave, size_bits, now,
                 max(missing, self.reserve_batch, RESERVE_REQUESTS * request))).fetchall()
            ids = [r[0] for r in rows]
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                marks = ",".join("?" * len(chunk))
                cur.execute(f"UPDATE keys SET key=NULL, state=? WHERE key_id IN ({marks})",
                            [KeyState.RESERVED.value, *chunk])
            return [KeyRecord(k, master, slave, bytes(key), session=sess, expires=e)
                    for k, key, e, sess in rows]

        records = self._grouped(work)   # committed (fsync) and WAL truncated on return
        if records:
            with self._reserve_lock:
                self._reserved.setdefault(pair, []).extend(records)

    def _mark_handed_out(self, records: Sequence[KeyRecord]) -> None:
        """Record reserved keys as released to the master before they are answered: one
        ``write`` of their key_IDs to the hand-out journal (in the OS's page cache: survives
        a process kill; no fsync). The journal is folded into the store every
        :data:`JOURNAL_FOLD_LINES` lines (one durable transaction), at close and at start."""
        if not records:
            return
        line = "".join(r.key_id + "\n" for r in records).encode("ascii")
        with self._journal_lock:
            os.write(self._journal_fd, line)
            self._journal_lines += len(records)
            if self._journal_lines >= JOURNAL_FOLD_LINES:
                self._fold_journal_locked()

    def fold_journal(self) -> int:
        """Record the journal's hand-outs in the store (reserved → released, one durable
        transaction) and empty it; the KM's housekeeping calls it every second. Returns how
        many hand-outs were folded."""
        with self._journal_lock:
            return self._fold_journal_locked()

    def _fold_journal_locked(self) -> int:
        folded = self._journal_lines
        if folded:
            with self._lock, self._tx() as cur:
                _set_state(cur, self._read_journal(), KeyState.RESERVED, KeyState.RELEASED)
            os.ftruncate(self._journal_fd, 0)
            self._journal_lines = 0
        return folded

    def _void_reserved(self, key_ids: Sequence[str]) -> None:
        with self._lock, self._tx() as cur:
            cur.executemany("UPDATE keys SET state=? WHERE key_id=? AND state=?",
                            [(KeyState.VOID.value, k, KeyState.RESERVED.value) for k in key_ids])

    def reserved_count(self, master: str, slave: str, size_bits: int) -> int:
        with self._reserve_lock:
            return len(self._reserved.get((master, slave, size_bits), ()))

    def _take_stored_for_master(self, master: str, slave: str, number: int, size_bits: int,
                                now: float, *, qkd_only: bool = False) -> list[KeyRecord]:
        if number <= 0:
            return []
        kinds = "provenance='qkd'" if qkd_only else "provenance<>'seed'"

        def work(cur: sqlite3.Cursor) -> list[KeyRecord]:
            rows = cur.execute(
                "SELECT key_id, key, expires, provenance FROM keys WHERE master=? AND slave=? AND "
                "state='ready' AND master_local=1 AND master_taken=0 AND size_bits=? AND "
                f"stream_id IS NULL AND {kinds} AND (expires IS NULL OR expires>?) "
                "ORDER BY provenance<>'qkd', created LIMIT ?",
                (master, slave, size_bits, now, number)).fetchall()
            _mark_taken_many(cur, [r[0] for r in rows], "master_taken")
            return [KeyRecord(k, master, slave, key, expires=e, provenance=p)
                    for k, key, e, p in rows]
        return self._grouped(work)

    def take_named_for_master(self, master: str, key_ids: Sequence[str], now: float) -> list[KeyRecord]:
        """Release exactly the named ready keys to the master (keys this request relayed;
        a reservation of their pair may hold some of them meanwhile)."""
        claimed = self._pop_named_reserved(master, key_ids, now)
        rest = [k for k in key_ids if k not in {r.key_id for r in claimed}]
        try:
            stored = self._take_named_stored(master, rest, now) if rest else []
        except KmsError:
            self._put_back(claimed)
            raise
        self._mark_handed_out(claimed)
        by_id = {r.key_id: r for r in claimed + stored}
        return [by_id[k] for k in key_ids]

    def _pop_named_reserved(self, master: str, key_ids: Sequence[str],
                            now: float) -> list[KeyRecord]:
        if not self.reserve_batch:
            return []
        with self._reserve_lock:
            pairs = [p for p in self._reserved if p[0] == master]
        out: list[KeyRecord] = []
        for pair in pairs:
            out += self._pop_reserved(pair, len(key_ids), now, key_ids)
        return out

    def _put_back(self, records: Sequence[KeyRecord]) -> None:
        """Return popped (not handed out) reserved keys to the front of their reserve."""
        with self._reserve_lock:
            for record in reversed(records):
                pair = (record.master, record.slave, len(record.key or b"") * 8)
                self._reserved.setdefault(pair, []).insert(0, record)

    def _take_named_stored(self, master: str, key_ids: Sequence[str],
                           now: float) -> list[KeyRecord]:
        def work(cur: sqlite3.Cursor) -> list[KeyRecord]:
            out = []
            for key_id in key_ids:
                row = cur.execute(
                    "SELECT slave, key, expires, provenance FROM keys WHERE key_id=? AND master=? "
                    "AND state=? AND master_local=1 AND master_taken=0 AND provenance<>'seed'",
                    (key_id, master, KeyState.READY.value)).fetchone()
                if row is None:
                    raise KeyNotFound("relayed key no longer available")
                out.append(KeyRecord(key_id, master, row[0], row[1], expires=row[2],
                                     provenance=row[3]))
            _mark_taken_many(cur, list(key_ids), "master_taken")
            return out
        return self._grouped(work)

    def take_relayed_for_master(self, master: str, slave: str, key_ids: Sequence[str],
                                size_bits: int, now: float) -> list[KeyRecord]:
        """Release the keys a request relayed; those a concurrent request of the pair took
        meanwhile (it takes the pair's oldest ready keys) are replaced by other ready keys of
        the pair: the surplus of this request's batch is still there. All or none;
        :class:`InsufficientKey` if the pair has too few (503, retryable). Keys a
        reservation of the pair holds count as the pair's ready keys."""
        pair = (master, slave, size_bits)
        claimed = self._pop_named_reserved(master, key_ids, now)
        rest = [k for k in key_ids if k not in {r.key_id for r in claimed}]
        try:
            stored = self._take_relayed_stored(master, slave, rest, size_bits, now) \
                if rest else []
        except InsufficientKey:
            self._put_back(claimed)
            others = self._pop_reserved(pair, len(key_ids), now) if self.reserve_batch else []
            if len(others) < len(key_ids):
                self._put_back(others)
                raise
            claimed, stored = others, []
        self._mark_handed_out(claimed)
        return claimed + stored

    def _take_relayed_stored(self, master: str, slave: str, key_ids: Sequence[str],
                             size_bits: int, now: float) -> list[KeyRecord]:
        def work(cur: sqlite3.Cursor) -> list[KeyRecord]:
            out = []
            for key_id in key_ids:
                row = cur.execute(
                    "SELECT key, expires FROM keys WHERE key_id=? AND master=? AND slave=? AND "
                    "state=? AND master_local=1 AND master_taken=0",
                    (key_id, master, slave, KeyState.READY.value)).fetchone()
                if row is not None:
                    out.append(KeyRecord(key_id, master, slave, row[0], expires=row[1]))
            missing = len(key_ids) - len(out)
            if missing:
                taken = [r.key_id for r in out]
                exclude = f" AND key_id NOT IN ({','.join('?' * len(taken))})" if taken else ""
                rows = cur.execute(
                    "SELECT key_id, key, expires FROM keys WHERE master=? AND slave=? AND "
                    "state='ready' AND master_local=1 AND master_taken=0 AND size_bits=? AND "
                    f"stream_id IS NULL AND (expires IS NULL OR expires>?){exclude} "
                    "ORDER BY created LIMIT ?",
                    (master, slave, size_bits, now, *taken,
                     missing)).fetchall()
                if len(rows) < missing:
                    raise InsufficientKey("relayed keys taken by concurrent requests of the pair")
                out += [KeyRecord(k, master, slave, key, expires=e) for k, key, e in rows]
            _mark_taken_many(cur, [r.key_id for r in out], "master_taken")
            return out
        return self._grouped(work)

    def take_for_slave(self, slave: str, master: str, key_ids: Sequence[str],
                       now: float) -> list[KeyRecord]:
        """Release the named keys to the slave, all or none (missing == not yours); a key the
        master shared with several slaves is found by its key_ID too (:func:`copy_key_id`)."""
        def work(cur: sqlite3.Cursor) -> list[KeyRecord]:
            out, rows = [], []
            for key_id in key_ids:
                row = cur.execute(
                    "SELECT key, key_id, provenance FROM keys WHERE key_id IN (?, ?) AND master=? "
                    "AND slave=? AND state=? AND slave_local=1 AND slave_taken=0 AND "
                    "provenance<>'seed' AND (expires IS NULL OR expires>?)",
                    (key_id, copy_key_id(key_id, slave), master, slave, KeyState.READY.value,
                     now)).fetchone()
                if row is None:
                    raise KeyNotFound("one or more keys are not available to this SAE")
                out.append(KeyRecord(key_id, master, slave, row[0], provenance=row[2]))
                rows.append(row[1])
            _mark_taken_many(cur, rows, "slave_taken")
            return out
        return self._grouped(work)

    def take_stream_key(self, stream_id: str, index: int, sae_id: str, now: float) -> KeyRecord | None:
        """Release the stream key at ``index`` to the local SAE ``sae_id`` (None if absent)."""
        with self._lock, self._tx() as cur:
            row = cur.execute(
                "SELECT key_id, master, slave, key, master_local, slave_local, master_taken, "
                "slave_taken, state, provenance FROM keys WHERE stream_id=? AND stream_index=? "
                "AND (expires IS NULL OR expires>?)", (stream_id, index, now)).fetchone()
            if row is None or row[8] != KeyState.READY.value or row[9] == "seed":
                return None
            key_id, master, slave, key, m_local, s_local, m_taken, s_taken, _, provenance = row
            if sae_id == master and m_local and not m_taken:
                _mark_taken(cur, key_id, "master_taken")
            elif sae_id == slave and s_local and not s_taken:
                _mark_taken(cur, key_id, "slave_taken")
            else:
                raise KeyNotFound("key at this index already delivered to this SAE")
        self._truncate_wal()
        return KeyRecord(key_id, master, slave, key, stream_id, index, provenance=provenance)

    def stream_state(self, stream_id: str, index: int) -> KeyState | None:
        """State of the stream key at ``index``; a pruned tombstone (at or below the stream's
        index mark) is :attr:`KeyState.VOID`: gone, never to come (again)."""
        with self._lock:
            row = self._conn.execute("SELECT state FROM keys WHERE stream_id=? AND stream_index=?",
                                     (stream_id, index)).fetchone()
            if row is None and index <= self._stream_mark(self._conn, stream_id):
                return KeyState.VOID
        return KeyState(row[0]) if row else None

    def max_stream_index(self, stream_id: str) -> int:
        """Highest position of the stream this pool has seen (pruned positions included):
        the originator makes keys only above it."""
        with self._lock:
            row = self._conn.execute("SELECT MAX(stream_index) FROM keys WHERE stream_id=?",
                                     (stream_id,)).fetchone()
            mark = self._stream_mark(self._conn, stream_id)
        return max(-1 if row[0] is None else row[0], mark)

    # -- tombstones ---------------------------------------------------------------------------
    def _below_watermark(self, key_id: str) -> bool:
        ms = key_id_time_ms(key_id)
        return ms is not None and ms <= self._watermark_ms

    @staticmethod
    def _stream_mark(cur: sqlite3.Connection | sqlite3.Cursor, stream_id: str) -> int:
        row = cur.execute("SELECT through_index FROM stream_marks WHERE stream_id=?",
                          (stream_id,)).fetchone()
        return -1 if row is None else row[0]

    def _beyond_horizon(self, cur: sqlite3.Cursor, records: Sequence[KeyRecord]) -> bool:
        """True if a record is refused by what pruned tombstones left behind: a version 7
        key_ID at or below the watermark, or a stream position at or below its stream's mark
        (the caller holds the lock). One string comparison per key for fresh key_IDs."""
        if self._watermark_ms >= 0:
            bound = key_id_time_bound(self._watermark_ms + 1)
            if any(r.key_id < bound and key_id_time_ms(r.key_id) is not None for r in records):
                return True
        marks: dict[str, int] = {}
        for r in records:
            if r.stream_id is None or r.stream_index is None:
                continue
            if r.stream_id not in marks:
                marks[r.stream_id] = self._stream_mark(cur, r.stream_id)
            if r.stream_index <= marks[r.stream_id]:
                return True
        return False

    def _prune_key_ids(self, cur: sqlite3.Cursor, horizon_ms: int) -> int:
        """Delete up to :data:`PRUNE_BATCH` tombstones with a version 7 key_ID of time at or
        below ``horizon_ms`` and raise the stored watermark to it (one transaction). The
        key_ID range is a walk of the primary-key index from its start (key_IDs of other
        versions rarely sort below a current time prefix)."""
        if horizon_ms < 0:
            return 0
        deleted = cur.execute(
            "DELETE FROM keys WHERE rowid IN (SELECT rowid FROM keys WHERE key_id < ? AND "
            "state IN ('released', 'void') AND stream_id IS NULL AND "
            "(key_id GLOB ? OR key_id GLOB ?) LIMIT ?)",
            (key_id_time_bound(horizon_ms + 1), _V7_GLOB, _V7_COPY_GLOB, PRUNE_BATCH)).rowcount
        if deleted:
            cur.execute("INSERT INTO horizon(name, value) VALUES ('key_id_ms', ?) ON CONFLICT"
                        "(name) DO UPDATE SET value=max(value, excluded.value)", (horizon_ms,))
        return deleted

    @staticmethod
    def _prune_stream_keys(cur: sqlite3.Cursor, cutoff: float) -> int:
        """Delete up to :data:`PRUNE_BATCH` tombstones of 004 stream keys created at or before
        ``cutoff`` (whatever their key_ID) and raise each stream's index mark to its highest
        pruned position (one transaction)."""
        rows = cur.execute(
            "SELECT rowid, stream_id, stream_index FROM keys WHERE stream_id IS NOT NULL AND "
            "state IN ('released', 'void') AND created <= ? LIMIT ?",
            (cutoff, PRUNE_BATCH)).fetchall()
        if not rows:
            return 0
        marks: dict[str, int] = {}
        for _, stream_id, index in rows:
            marks[stream_id] = max(index, marks.get(stream_id, -1))
        cur.executemany("INSERT INTO stream_marks(stream_id, through_index) VALUES (?, ?) ON "
                        "CONFLICT(stream_id) DO UPDATE SET through_index=max(through_index, "
                        "excluded.through_index)", list(marks.items()))
        ids = [r[0] for r in rows]
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            cur.execute(f"DELETE FROM keys WHERE rowid IN ({','.join('?' * len(chunk))})", chunk)
        return len(rows)

    def horizon(self) -> tuple[int, dict[str, int]]:
        """What pruned tombstones left: (key_ID watermark in ms or -1, {stream: index mark})."""
        with self._lock:
            marks = dict(self._conn.execute("SELECT stream_id, through_index FROM stream_marks"))
            return self._watermark_ms, marks

    def prune_tombstones(self, now: float, *, key_id_now: float | None = None,
                         budget_s: float | None = None) -> int:
        """Delete released / void rows older than ``tombstone_retention_s``; returns how many.

        ``now`` is the pool's clock (the one ``created`` and ``expires`` use);
        ``key_id_now`` (default ``now``) is Unix time, the clock version 7 key_IDs carry
        (``kms.key_manager.new_key_ids``). Each batch of :data:`PRUNE_BATCH` rows is one
        durable transaction that also records the refusal rule covering them, so a crash at
        any point leaves every deleted row covered (and the pool's lock is free between
        batches); at most :data:`PRUNE_BATCHES` batches, and none started once ``budget_s``
        seconds have passed:

        * a version 7 key_ID (not a stream key) whose time is at or below ``key_id_now -
          retention``: the key_ID watermark rises to that time. :meth:`store_ready` refuses
          every version 7 key_ID at or below it and :meth:`resolve` answers ``void`` for an
          absent one. (Rows at or below the watermark that are not tombstones stay and
          answer for themselves.)
        * a 004 stream key (key_ID derived from the stream and index, no time in it) whose
          row was created before ``now - retention``: its stream's index mark rises to the
          highest pruned position; positions at or below are refused, never made again
          (:meth:`max_stream_index`) and read as void (:meth:`stream_state`).
        * any other tombstone (hybrid seeds' version 4 key_IDs, rows of older pools) is kept.

        Freed pages are reused by later rows (the file stops growing in a steady state)."""
        if self.tombstone_retention_s <= 0:
            return 0
        horizon_ms = int(((now if key_id_now is None else key_id_now)
                          - self.tombstone_retention_s) * 1000)
        cutoff = now - self.tombstone_retention_s
        pruned, started = 0, time.monotonic()
        for _ in range(PRUNE_BATCHES):
            with self._lock:
                with self._tx() as cur:
                    by_key_id = self._prune_key_ids(cur, horizon_ms)
                    by_stream = self._prune_stream_keys(cur, cutoff)
                if by_key_id:   # committed: the rule in memory follows the one on disk
                    self._watermark_ms = max(self._watermark_ms, horizon_ms)
            pruned += by_key_id + by_stream
            if by_key_id < PRUNE_BATCH and by_stream < PRUNE_BATCH:
                break
            if budget_s is not None and time.monotonic() - started >= budget_s:
                break
        if pruned:
            log.debug("pruned %d tombstone(s) older than %.0f s", pruned,
                      self.tombstone_retention_s)
        return pruned

    def ready_count(self, master: str, slave: str, size_bits: int) -> int:
        """Keys of the pair releasable to the master (stored and reserved)."""
        reserved = self.reserved_count(master, slave, size_bits)
        with self._lock:
            return reserved + self._conn.execute(
                "SELECT COUNT(*) FROM keys WHERE master=? AND slave=? AND state='ready' AND "
                "master_local=1 AND master_taken=0 AND size_bits=? AND stream_id IS NULL AND "
                "provenance<>'seed'", (master, slave, size_bits)).fetchone()[0]

    def expire(self, now: float) -> int:
        """Delete (overwrite) unreleased keys whose ``ttl`` ran out; returns how many."""
        with self._lock, self._tx() as cur:
            ids = [r[0] for r in cur.execute(
                "SELECT key_id FROM keys WHERE expires IS NOT NULL AND "
                "state IN ('ready', 'pending') AND expires<=?", (now,)).fetchall()]
            for key_id in ids:
                _scrub(cur, key_id, KeyState.VOID)
        if ids:
            self._truncate_wal()
        return len(ids)

    def drop_stream(self, stream_id: str) -> None:
        """Delete every unreleased key of a closed stream."""
        self.drop_streams([stream_id])

    def drop_streams(self, stream_ids: Iterable[str]) -> None:
        """Delete every unreleased key of closed streams, in one transaction (500 sessions
        expiring in one tick took one commit and one WAL checkpoint each)."""
        with self._lock, self._tx() as cur:
            for stream_id in stream_ids:
                for (key_id,) in cur.execute(
                        "SELECT key_id FROM keys WHERE stream_id=? AND state=?",
                        (stream_id, KeyState.READY.value)).fetchall():
                    _scrub(cur, key_id, KeyState.VOID)
        self._truncate_wal()

    def take_seed(self, key_id: str, master: str, slave: str) -> bytes:
        """Consume the hybrid seed ``key_id`` of the pair (erased in the same commit)."""
        with self._lock, self._tx() as cur:
            row = cur.execute(
                "SELECT key FROM keys WHERE key_id=? AND master=? AND slave=? AND state=? AND "
                "provenance='seed'", (key_id, master, slave, KeyState.READY.value)).fetchone()
            if row is None or row[0] is None:
                raise KeyNotFound("hybrid seed not available")
            _scrub(cur, key_id, KeyState.RELEASED)
        return bytes(row[0])

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._conn.execute("SELECT state, COUNT(*) FROM keys GROUP BY state").fetchall())


def _insert_uniform(cur: sqlite3.Cursor, records: Sequence[KeyRecord], state: str,
                    master_local: int, slave_local: int, now: float, *,
                    next_hop: str | None = None, leg: str | None = None) -> bool:
    """Insert ``records`` with ONE statement if they differ only by key_ID and bytes (a relay
    batch: one pair, session, expiry, provenance and key size, no 004 position); False (and
    nothing inserted) otherwise. The key_IDs go in as one JSON array (``json_each``) and the
    keys as one blob cut with ``substr``, the other columns bound once: ``executemany`` bound
    16 parameters per row, ~2/3 of the insert's CPU (16 → 4.7 µs per row, micro-benchmark)."""
    first = records[0] if records else None
    if first is None or not first.key:
        return False
    size = len(first.key)
    for r in records:
        if (r.key is None or len(r.key) != size or r.master != first.master
                or r.slave != first.slave or r.session != first.session
                or r.expires != first.expires or r.provenance != first.provenance
                or r.stream_id is not None or r.stream_index is not None):
            return False
    cur.execute(
        "INSERT INTO keys(key_id, key, master, slave, size_bits, state, master_local, "
        "slave_local, session, next_hop, created, expires, provenance, leg) "
        "SELECT j.value, substr(?2, j.key * ?3 + 1, ?3), ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12,"
        " ?13, ?14, ?15 FROM json_each(?1) AS j",
        (json.dumps([r.key_id for r in records]), b"".join(r.key for r in records), size,
         first.master, first.slave, size * 8, state, master_local, slave_local, first.session,
         next_hop, now, first.expires, first.provenance, leg))
    return True


def _set_state(cur: sqlite3.Cursor, key_ids: Sequence[str], old: KeyState,
               new: KeyState) -> None:
    """Move the named keys in state ``old`` to ``new`` (a master-side release sets
    ``master_taken``)."""
    taken = ", master_taken=1" if new is KeyState.RELEASED else ""
    for start in range(0, len(key_ids), 500):
        chunk = list(key_ids[start:start + 500])
        cur.execute(f"UPDATE keys SET state=?{taken} WHERE state=? AND key_id IN "
                    f"({','.join('?' * len(chunk))})", [new.value, old.value, *chunk])


def _mark_taken(cur: sqlite3.Cursor, key_id: str, column: str) -> None:
    cur.execute(f"UPDATE keys SET {column}=1 WHERE key_id=?", (key_id,))
    m_local, s_local, m_taken, s_taken = cur.execute(
        "SELECT master_local, slave_local, master_taken, slave_taken FROM keys WHERE key_id=?",
        (key_id,)).fetchone()
    if (not m_local or m_taken) and (not s_local or s_taken):
        _scrub(cur, key_id, KeyState.RELEASED)


def _mark_taken_many(cur: sqlite3.Cursor, key_ids: list[str], column: str) -> None:
    """Set-based :func:`_mark_taken` for a batch (a few statements, not a few per key)."""
    assert column in ("master_taken", "slave_taken")
    for start in range(0, len(key_ids), 500):
        chunk = key_ids[start:start + 500]
        marks = ",".join("?" * len(chunk))
        cur.execute(f"UPDATE keys SET {column}=1 WHERE key_id IN ({marks})", chunk)
        done = (f"key_id IN ({marks}) AND (master_local=0 OR master_taken=1) "
                "AND (slave_local=0 OR slave_taken=1)")
        cur.execute(f"UPDATE keys SET key=NULL, state=? WHERE {done}",
                    [KeyState.RELEASED.value, *chunk])


def _scrub(cur: sqlite3.Cursor, key_id: str, state: KeyState) -> None:
    """Overwrite the key bytes, then drop them; the row stays as a tombstone."""
    cur.execute("UPDATE keys SET key=zeroblob(LENGTH(key)) WHERE key_id=? AND key IS NOT NULL",
                (key_id,))
    cur.execute("UPDATE keys SET key=NULL, state=? WHERE key_id=?", (state.value, key_id))


class _GroupOp:
    def __init__(self, work: Callable[[sqlite3.Cursor], Any]) -> None:
        self.work = work
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = threading.Event()


class _Transaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> sqlite3.Cursor:
        self._cur = self._conn.cursor()
        self._cur.execute("BEGIN IMMEDIATE")
        return self._cur

    def __exit__(self, exc_type, exc, tb) -> None:
        self._cur.execute("COMMIT" if exc_type is None else "ROLLBACK")
