"""Pairing of a link's two emulated modules: key exists only while both ends run.

A real QKD link produces key only while transmitter and receiver both operate. The two ends
of an emulated link live in different node processes and compute their blocks independently
(see :mod:`qkd_twin.module`), so each end publishes an *end record* when it starts —
``DIR/twin/links/<qkdl_id>/<node>.json`` with the first block it produces, the newest block
its key store kept from an earlier run, and its pid — and :class:`PairedSink` forwards block
``n`` to the key manager only when the peer end runs too and ``n`` is at or after both ends'
first blocks. When the peer end (re)starts, key this end holds from blocks the peer never
received — between the peer's last kept block and its new first block — is discarded, so the
two stores always hold the same blocks.

Short first block: an end produces key from ``start_time`` (the moment it publishes its
record plus :data:`START_LEAD_S`; an end that reads the peer's record only after it computed
that block still holds the block, :data:`HOLD_S`), and the link from ``t* = max`` of both
ends' ``start_time``. The block containing
``t*`` is the first one; it covers only ``[t*, (n+1) Δ)``, so both ends deliver the same
prefix of its key, ``⌊len(key) · ((n+1) Δ − t*) / Δ⌋`` bytes — key at the model's rate for the
time both ends really ran (``skr · T``), not a whole block's worth. The first key therefore
arrives within about ``START_LEAD_S`` + the rest of the current block after the later end
started (before: the next whole block, 0.25–0.5 s).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from qkd_twin.module import KeySink
from qkdn.process_liveness import pid_alive

log = logging.getLogger(__name__)

#: Seconds between an end taking its start time and the moment from which it produces key:
#: the time to write its record (under a millisecond), so that the peer, which looks for the
#: record when it finishes the block containing that moment, normally finds it. A record
#: read later still costs no key (HOLD_S), only one block of delay at the peer. (0.05 s until
#: session 4: on average 40 ms later to the first key for nothing.)
START_LEAD_S = 0.01
#: A record read late — its writer stalled, the reader ran ahead — costs nothing: an end keeps
#: the blocks of the last HOLD_S seconds it computed while the peer was not (visibly) running
#: and delivers those at or after the peer's first block once it reads the record.
HOLD_S = 2.0


@dataclass(frozen=True)
class EndRecord:
    """What one end of a link publishes when its module starts."""

    node: str
    start_block: int    #: the block containing ``start_time`` (its first, maybe short, block)
    resumed_after: int  #: newest block its key store kept from before (-1: none)
    pid: int
    #: Unix time from which the end produces key (None, a record of an older version: from
    #: the start of ``start_block``)
    start_time: float | None = None

    def to_json(self) -> dict[str, int | str | float]:
        data: dict[str, int | str | float] = {
            "node": self.node, "start_block": self.start_block,
            "resumed_after": self.resumed_after, "pid": self.pid}
        if self.start_time is not None:
            data["start_time"] = self.start_time
        return data

    @classmethod
    def from_json(cls, data: dict) -> EndRecord:
        start_time = data.get("start_time")
        return cls(str(data["node"]), int(data["start_block"]), int(data["resumed_after"]),
                   int(data["pid"]), None if start_time is None else float(start_time))

    def produces_from(self, block_seconds: float) -> float:
        """Unix time from which this end produces key."""
        return (self.start_block * block_seconds if self.start_time is None
                else self.start_time)


def first_block_share(own: EndRecord, peer: EndRecord, block_seconds: float
                      ) -> tuple[int, float]:
    """The link's first block (both ends running) and the share of it both ran, in (0, 1]."""
    start = max(own.produces_from(block_seconds), peer.produces_from(block_seconds))
    first = max(own.start_block, peer.start_block)
    share = ((first + 1) * block_seconds - start) / block_seconds
    return first, min(1.0, max(0.0, share))


def end_record_path(network_dir: Path, qkdl_id: str, node: str) -> Path:
    return Path(network_dir) / "twin" / "links" / qkdl_id / f"{node}.json"


def peer_gap(peer: EndRecord) -> tuple[int, int]:
    """Blocks (first, last) this end may hold that the peer end never received."""
    return peer.resumed_after + 1, peer.start_block - 1


class PairedSink:
    """A :class:`~qkd_twin.module.KeySink` in front of the KM that keeps both ends' stores
    holding the same blocks. ``discard(first, last)`` drops blocks from this end's store;
    ``on_peer_change(up)`` hears when the peer end stops or starts."""

    def __init__(self, network_dir: Path, qkdl_id: str, node: str, peer: str, sink: KeySink, *,
                 block_seconds: float, resumed_after: int,
                 discard: Callable[[int, int], object],
                 on_peer_change: Callable[[bool], None] | None = None,
                 clock: Callable[[], float] = time.time,
                 alive: Callable[[int], bool] = pid_alive) -> None:
        self.qkdl_id = qkdl_id
        self._sink = sink
        self._discard = discard
        self._on_peer_change = on_peer_change or (lambda up: None)
        self._alive = alive
        self._peer_path = end_record_path(network_dir, qkdl_id, peer)
        self._peer_seen: tuple[int, int, int] | None = None  # (inode, mtime, size) last read
        self._peer: EndRecord | None = None
        self._peer_up = False
        self._delivered_any = False
        self._block_seconds = block_seconds
        #: blocks computed while the peer end was not (visibly) running, newest HOLD_S worth:
        #: delivered after all if the peer's record, once read, shows it started by then
        self._held: deque[tuple[int, bytes]] = deque(
            maxlen=max(1, math.ceil(HOLD_S / block_seconds)))
        start_time = clock() + START_LEAD_S
        self.record = EndRecord(node, math.floor(start_time / block_seconds), resumed_after,
                                os.getpid(), start_time)
        path = end_record_path(network_dir, qkdl_id, node)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.record.to_json()))
        os.replace(tmp, path)

    @property
    def peer_up(self) -> bool:
        return self._peer_up

    def _refresh_peer(self) -> EndRecord | None:
        try:
            stat = self._peer_path.stat()
        except FileNotFoundError:
            return None
        seen = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if seen != self._peer_seen:
            try:
                record = EndRecord.from_json(json.loads(self._peer_path.read_text()))
            except (OSError, ValueError, KeyError):
                return self._peer  # being rewritten; keep the last good one
            self._peer_seen = seen
            if record != self._peer:
                first, last = peer_gap(record)
                if last >= first:
                    dropped = self._discard(first, last)
                    log.info("link %s: peer end %s started at block %d; discarded blocks %d..%d"
                             " it never received (%s bytes)", self.qkdl_id, record.node,
                             record.start_block, first, last, dropped)
                self._peer = record
        return self._peer

    def deliver(self, qkdl_id: str, block_index: int, key: bytes) -> None:
        self.deliver_many(qkdl_id, [(block_index, key)])

    def deliver_many(self, qkdl_id: str, blocks: list[tuple[int, bytes]]) -> None:
        """Blocks in order (one, or a module's batch): the peer is looked at once, then the
        blocks both ends produce go to the sink — one ``deliver`` per block, or one
        ``deliver_many`` call for several when the sink has it."""
        from qkd_twin.module import deliver_blocks

        if not blocks:
            return
        peer = self._refresh_peer()
        up = peer is not None and self._alive(peer.pid)
        if up != self._peer_up:
            self._peer_up = up
            self._on_peer_change(up)
        if not up or peer is None:
            # the peer's (new) record may only be late to appear: keep the last blocks
            self._held.extend(blocks)
            return
        first, share = first_block_share(self.record, peer, self._block_seconds)
        pending = [*self._held, *blocks]
        self._held.clear()
        out: list[tuple[int, bytes]] = []
        for index, block_key in pending:
            if index < first:
                continue
            if index == first:   # the short first block: both ends keep the same prefix
                block_key = block_key[:math.floor(len(block_key) * share)]
                if not block_key:
                    continue
            out.append((index, block_key))
        if len(out) == 1:
            self._sink.deliver(qkdl_id, *out[0])
        else:
            deliver_blocks(self._sink, qkdl_id, out)
        if out and not self._delivered_any:  # the start-up timeline (bench/startup_timeline.py)
            self._delivered_any = True
            log.info("link %s: first key block %d delivered to the KM (%d bytes)",
                     self.qkdl_id, out[0][0], len(out[0][1]))
