"""Durable per-link key store: the QKD key material one physical link delivered to this node.

Identification scheme (both ends of a link hold identical blocks with identical indices):

* every block is split into two halves; the end with the *lower* ``qkdn_id`` (lower-case
  string order) sends with the first half, the other end with the second half, so the two ends
  never pick the same bytes for different uses;
* the sender takes bytes of its own half in order (lowest block, lowest offset first) and names
  what it used with a :class:`KeyRef` (``(block, offset, length)`` segments); the receiver takes
  exactly those bytes of the peer's half;
* consumed bytes are removed in the same SQLite transaction that hands them out (WAL,
  ``synchronous=FULL``): a killed process never hands out the same bytes twice, and a replayed
  reference finds nothing;
* removed bytes are overwritten first (``UPDATE ... zeroblob``) and SQLite's
  ``secure_delete`` zeroes freed pages; WAL frames are truncated at every checkpoint.

Pure bookkeeping on top of SQLite; no sockets, no threads of its own (a lock serialises use).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from kms.errors import AuthenticationFailed, CapacityExceeded, InsufficientKey

DEFAULT_CAPACITY_BYTES = 64 * 1024 * 1024
#: A sender uses only blocks at least this many block indices older than the newest block it
#: holds, so that the peer (whose module delivers the same block a moment later) has them too.
#: 0 suits a source that delivers to both ends at once (tests); node processes set it (KmConfig).
DEFAULT_SETTLE_BLOCKS = 0
#: Seconds a receiver waits for a referenced block newer than any it holds (the peer's module
#: delivered it first; this end's module delivers the same block moments later). 0: no wait.
DEFAULT_INCOMING_WAIT_S = 0.0
_CHECKPOINT_EVERY = 256


class Half(str, Enum):
    """Which half of every block a direction of the link uses."""

    LOW = "low"    # sent by the lower-qkdn_id end
    HIGH = "high"  # sent by the higher-qkdn_id end


@dataclass(frozen=True)
class Segment:
    """``length`` bytes at ``offset`` in half of block ``block``."""

    block: int
    offset: int
    length: int


@dataclass(frozen=True)
class KeyRef:
    """Names link-key bytes a sender used; travels on the wire as :meth:`to_wire`."""

    segments: tuple[Segment, ...]

    @property
    def length(self) -> int:
        return sum(s.length for s in self.segments)

    def to_wire(self) -> str:
        return ",".join(f"{s.block}:{s.offset}:{s.length}" for s in self.segments)

    @classmethod
    def from_wire(cls, text: str) -> KeyRef:
        try:
            segments = []
            for part in text.split(","):
                block, offset, length = (int(x) for x in part.split(":"))
                if block < 0 or offset < 0 or length <= 0:
                    raise ValueError(part)
                segments.append(Segment(block, offset, length))
        except (ValueError, AttributeError) as exc:
            raise AuthenticationFailed(f"malformed key reference: {exc}") from None
        if not segments:
            raise AuthenticationFailed("empty key reference")
        return cls(tuple(segments))


@dataclass(frozen=True)
class StoreLevels:
    """Operational levels of one store, in bytes."""

    qkdl_id: str
    outgoing_bytes: int
    incoming_bytes: int
    capacity_bytes: int
    blocks_delivered: int
    consumed_bytes: int
    refused_blocks: int


def sender_half(local_qkdn_id: str, remote_qkdn_id: str) -> Half:
    """The half this end sends with."""
    return Half.LOW if local_qkdn_id.lower() < remote_qkdn_id.lower() else Half.HIGH


def split_block(key: bytes) -> dict[Half, bytes]:
    """Split a delivered block into the two direction halves (the LOW half gets the odd byte)."""
    middle = (len(key) + 1) // 2
    return {Half.LOW: key[:middle], Half.HIGH: key[middle:]}


#: one transaction: one disk flush for a new file instead of one per statement
_SCHEMA = """
BEGIN;
CREATE TABLE IF NOT EXISTS ranges (
    half TEXT NOT NULL, block INTEGER NOT NULL, offset INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (half, block, offset));
CREATE TABLE IF NOT EXISTS blocks (block INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
COMMIT;
"""


def open_database(path: Path) -> sqlite3.Connection:
    """Open a SQLite file with the KM's durability settings (WAL, synchronous FULL, secure_delete)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA secure_delete=ON")
    conn.execute("PRAGMA foreign_keys=ON")
    try:
        path.chmod(0o600)
    except OSError:
        pass
    return conn


class LinkKeyStore:
    """The key material of one physical link at this end."""

    def __init__(self, path: Path, qkdl_id: str, local_qkdn_id: str, remote_qkdn_id: str,
                 capacity_bytes: int = DEFAULT_CAPACITY_BYTES,
                 settle_blocks: int = DEFAULT_SETTLE_BLOCKS,
                 incoming_wait_s: float = DEFAULT_INCOMING_WAIT_S) -> None:
        self.qkdl_id = qkdl_id
        self.capacity_bytes = capacity_bytes
        self.settle_blocks = settle_blocks
        self.incoming_wait_s = incoming_wait_s
        self.own_half = sender_half(local_qkdn_id, remote_qkdn_id)
        self.peer_half = Half.HIGH if self.own_half is Half.LOW else Half.LOW
        self._lock = threading.RLock()
        self._delivered = threading.Condition(self._lock)
        self._conn = open_database(path)
        self._conn.executescript(_SCHEMA)
        #: bytes held per half, kept in step with every commit (a SUM over the table on each
        #: delivery cost O(blocks held): 7 ms a block once a link had stored 6,000 blocks)
        self._half_bytes_held = {half: self._sum_half(half) for half in Half}
        self._since_checkpoint = 0
        self._listeners: list[Callable[[str], None]] = []

    def add_listener(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(qkdl_id)`` after every delivered block (wakes waiting requests)."""
        self._listeners.append(callback)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- supply -----------------------------------------------------------------------------
    def deliver(self, block_index: int, key: bytes) -> bool:
        """Store block ``block_index``; False if it was delivered before (idempotent).

        Raises :class:`CapacityExceeded` when the store is full (the block is dropped; the
        peer's copy then finds no partner and relays using it fail cleanly).
        """
        stored, refused = self.deliver_many([(block_index, key)])
        if refused:
            raise CapacityExceeded(f"link {self.qkdl_id}: store full")
        return stored == 1

    def deliver_many(self, blocks: Sequence[tuple[int, bytes]]) -> tuple[int, int]:
        """Store several blocks in one transaction (a module that produced them in one
        wake-up); blocks delivered before are skipped. Returns (stored, refused): a block
        that does not fit the capacity is refused (dropped) and counted in
        ``refused_blocks``, as :meth:`deliver` does."""
        for block_index, key in blocks:
            if block_index < 0 or not key:
                raise ValueError("block index must be >= 0 and the block non-empty")
        if not blocks:
            return 0, 0
        stored = refused = 0
        with self._lock:
            cur = self._conn.cursor()
            # A new block is committed without its own fsync (WAL, synchronous NORMAL): it
            # survives a crash of the process (the OS holds it) and is made durable by the next
            # consumption's commit (synchronous FULL, the WAL is sequential) or checkpoint.
            # Only an OS crash can lose the newest blocks — never a consumption record.
            # 100-node networks deliver ~1,400 blocks/s: one fsync each saturated the disk.
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("BEGIN IMMEDIATE")
            added = dict.fromkeys(Half, 0)
            try:
                indices = [n for n, _ in blocks]
                present = {row[0] for row in cur.execute(
                    "SELECT block FROM blocks WHERE block BETWEEN ? AND ?",
                    (min(indices), max(indices)))}
                new_blocks, new_ranges = [], []
                held = sum(self._half_bytes_held.values())
                for block_index, key in blocks:
                    if block_index in present:
                        continue
                    if held + len(key) > self.capacity_bytes:
                        refused += 1
                        continue
                    present.add(block_index)
                    held += len(key)
                    new_blocks.append((block_index,))
                    for half, data in split_block(key).items():
                        if data:
                            new_ranges.append((half.value, block_index, 0, data))
                            added[half] += len(data)
                    stored += 1
                cur.executemany("INSERT INTO blocks(block) VALUES (?)", new_blocks)
                cur.executemany("INSERT INTO ranges(half, block, offset, data) VALUES (?,?,?,?)",
                                new_ranges)
                if refused:
                    self._bump("refused_blocks", refused, cur)
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            finally:
                cur.execute("PRAGMA synchronous=FULL")
            for half, amount in added.items():
                self._half_bytes_held[half] += amount
            if stored:
                self._delivered.notify_all()
        if stored:
            for listener in self._listeners:
                listener(self.qkdl_id)
        return stored, refused

    # -- consumption ------------------------------------------------------------------------
    def take_outgoing(self, nbytes: int) -> tuple[KeyRef, bytes]:
        """Consume ``nbytes`` of this end's sending half; returns the reference and the bytes."""
        if nbytes <= 0:
            raise ValueError("nbytes must be positive")
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                rows = []
                needed = nbytes
                newest = cur.execute("SELECT MAX(block) FROM blocks").fetchone()[0]
                settled = -1 if newest is None else newest - self.settle_blocks
                for block, offset, data in cur.execute(
                        "SELECT block, offset, data FROM ranges WHERE half=? AND block<=? "
                        "ORDER BY block, offset", (self.own_half.value, settled)):
                    rows.append((block, offset, data))
                    needed -= len(data)
                    if needed <= 0:
                        break
                if needed > 0:
                    raise InsufficientKey(f"link {self.qkdl_id}: {nbytes} bytes wanted")
                segments, parts = [], []
                remaining = nbytes
                for block, offset, data in rows:
                    take = min(remaining, len(data))
                    segments.append(Segment(block, offset, take))
                    parts.append(data[:take])
                    self._cut(cur, self.own_half, block, offset, data, offset, take)
                    remaining -= take
                self._bump("consumed_bytes", nbytes, cur)
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            self._half_bytes_held[self.own_half] -= nbytes
            self._maybe_checkpoint()
        return KeyRef(tuple(segments)), b"".join(parts)

    def take_incoming(self, ref: KeyRef) -> bytes:
        """Consume exactly the peer-half bytes ``ref`` names (all or nothing).

        Raises :class:`AuthenticationFailed` if any byte is absent (already consumed: a replay,
        or never delivered here). A reference to a block newer than any this end holds waits up
        to ``incoming_wait_s`` for this end's module to deliver it.
        """
        with self._lock:
            self._wait_for_blocks(max(seg.block for seg in ref.segments))
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                parts = []
                for seg in ref.segments:
                    row = cur.execute(
                        "SELECT offset, data FROM ranges WHERE half=? AND block=? AND offset<=? "
                        "ORDER BY offset DESC LIMIT 1",
                        (self.peer_half.value, seg.block, seg.offset)).fetchone()
                    if row is None or row[0] + len(row[1]) < seg.offset + seg.length:
                        raise AuthenticationFailed(
                            f"link {self.qkdl_id}: referenced key absent (replay or unknown)")
                    start, data = row
                    rel = seg.offset - start
                    parts.append(data[rel:rel + seg.length])
                    self._cut(cur, self.peer_half, seg.block, start, data, seg.offset, seg.length)
                self._bump("consumed_bytes", ref.length, cur)
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            self._half_bytes_held[self.peer_half] -= ref.length
            self._maybe_checkpoint()
        return b"".join(parts)

    def _wait_for_blocks(self, block: int) -> None:
        """With the lock held: wait (bounded) until this end holds ``block`` or a newer one."""
        if self.incoming_wait_s <= 0:
            return
        deadline = time.monotonic() + self.incoming_wait_s
        while True:
            newest = self._conn.execute("SELECT MAX(block) FROM blocks").fetchone()[0]
            left = deadline - time.monotonic()
            if (newest is not None and newest >= block) or left <= 0:
                return
            self._delivered.wait(left)

    @staticmethod
    def _cut(cur: sqlite3.Cursor, half: Half, block: int, start: int, data: bytes,
             cut_offset: int, cut_length: int) -> None:
        """Remove ``[cut_offset, cut_offset+cut_length)`` from the row at ``start``; overwrite first."""
        cur.execute("UPDATE ranges SET data=zeroblob(?) WHERE half=? AND block=? AND offset=?",
                    (len(data), half.value, block, start))
        cur.execute("DELETE FROM ranges WHERE half=? AND block=? AND offset=?",
                    (half.value, block, start))
        rel = cut_offset - start
        before, after = data[:rel], data[rel + cut_length:]
        if before:
            cur.execute("INSERT INTO ranges(half, block, offset, data) VALUES (?,?,?,?)",
                        (half.value, block, start, before))
        if after:
            cur.execute("INSERT INTO ranges(half, block, offset, data) VALUES (?,?,?,?)",
                        (half.value, block, cut_offset + cut_length, after))

    # -- pairing with the peer end ------------------------------------------------------------
    def max_block(self) -> int:
        """Index of the newest block this end holds (-1 if none)."""
        with self._lock:
            newest = self._conn.execute("SELECT MAX(block) FROM blocks").fetchone()[0]
        return -1 if newest is None else newest

    def discard_blocks(self, first: int, last: int) -> int:
        """Drop (overwrite and delete) what is left of blocks ``first..last``: key the peer end
        never received (it was down), which no reference may ever use. Returns bytes dropped."""
        if last < first:
            return 0
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                per_half = dict(cur.execute(
                    "SELECT half, COALESCE(SUM(LENGTH(data)),0) FROM ranges "
                    "WHERE block BETWEEN ? AND ? GROUP BY half", (first, last)).fetchall())
                dropped = sum(per_half.values())
                cur.execute("UPDATE ranges SET data=zeroblob(LENGTH(data)) "
                            "WHERE block BETWEEN ? AND ?", (first, last))
                cur.execute("DELETE FROM ranges WHERE block BETWEEN ? AND ?", (first, last))
                self._bump("discarded_bytes", dropped, cur)
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            for half in Half:
                self._half_bytes_held[half] -= per_half.get(half.value, 0)
        return dropped

    # -- levels -----------------------------------------------------------------------------
    def available_outgoing(self) -> int:
        """Bytes this end may send with now (its half of settled blocks)."""
        with self._lock:
            if self.settle_blocks <= 0:
                return self._half_bytes_held[self.own_half]
            newest = self._conn.execute("SELECT MAX(block) FROM blocks").fetchone()[0]
            if newest is None:
                return 0
            return self._conn.execute(
                "SELECT COALESCE(SUM(LENGTH(data)),0) FROM ranges WHERE half=? AND block<=?",
                (self.own_half.value, newest - self.settle_blocks)).fetchone()[0]

    def levels(self) -> StoreLevels:
        with self._lock:
            return StoreLevels(
                qkdl_id=self.qkdl_id,
                outgoing_bytes=self._half_bytes(self.own_half),
                incoming_bytes=self._half_bytes(self.peer_half),
                capacity_bytes=self.capacity_bytes,
                blocks_delivered=self._conn.execute("SELECT COUNT(*) FROM blocks").fetchone()[0],
                consumed_bytes=self._counter("consumed_bytes"),
                refused_blocks=self._counter("refused_blocks"),
            )

    def held_bytes(self) -> tuple[int, int]:
        """(this end's sending half, the peer's half) bytes held now; O(1)."""
        with self._lock:
            return self._half_bytes_held[self.own_half], self._half_bytes_held[self.peer_half]

    def _half_bytes(self, half: Half) -> int:
        return self._half_bytes_held[half]

    def _sum_half(self, half: Half) -> int:
        return self._conn.execute("SELECT COALESCE(SUM(LENGTH(data)),0) FROM ranges WHERE half=?",
                                  (half.value,)).fetchone()[0]

    def _counter(self, name: str) -> int:
        row = self._conn.execute("SELECT value FROM counters WHERE name=?", (name,)).fetchone()
        return row[0] if row else 0

    def _bump(self, name: str, amount: int, cur: sqlite3.Cursor | None = None) -> None:
        (cur or self._conn).execute(
            "INSERT INTO counters(name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value", (name, amount))

    def _maybe_checkpoint(self) -> None:
        self._since_checkpoint += 1
        if self._since_checkpoint >= _CHECKPOINT_EVERY:
            self._since_checkpoint = 0
            # the result row read at once: a pending statement blocks later savepoints
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
