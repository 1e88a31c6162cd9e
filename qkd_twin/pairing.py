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
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from qkd_twin.module import KeySink

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EndRecord:
    """What one end of a link publishes when its module starts."""

    node: str
    start_block: int
    resumed_after: int  #: newest block its key store kept from before (-1: none)
    pid: int

    def to_json(self) -> dict[str, int | str]:
        return {"node": self.node, "start_block": self.start_block,
                "resumed_after": self.resumed_after, "pid": self.pid}

    @classmethod
    def from_json(cls, data: dict) -> EndRecord:
        return cls(str(data["node"]), int(data["start_block"]), int(data["resumed_after"]),
                   int(data["pid"]))


def end_record_path(network_dir: Path, qkdl_id: str, node: str) -> Path:
    return Path(network_dir) / "twin" / "links" / qkdl_id / f"{node}.json"


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
                 alive: Callable[[int], bool] = process_alive) -> None:
        self.qkdl_id = qkdl_id
        self._sink = sink
        self._discard = discard
        self._on_peer_change = on_peer_change or (lambda up: None)
        self._alive = alive
        self._peer_path = end_record_path(network_dir, qkdl_id, peer)
        self._peer_seen: tuple[int, int, int] | None = None  # (inode, mtime, size) last read
        self._peer: EndRecord | None = None
        self._peer_up = False
        self.record = EndRecord(node, math.floor(clock() / block_seconds) + 1, resumed_after,
                                os.getpid())
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
        peer = self._refresh_peer()
        up = peer is not None and self._alive(peer.pid)
        if up != self._peer_up:
            self._peer_up = up
            self._on_peer_change(up)
        if not up or peer is None:
            return
        if block_index < max(self.record.start_block, peer.start_block):
            return
        self._sink.deliver(qkdl_id, block_index, key)

    def deliver_many(self, qkdl_id: str, blocks: list[tuple[int, bytes]]) -> None:
        """A batch of blocks (in order): the peer is looked at once, then the blocks both ends
        produce go to the sink in one call (its ``deliver_many`` when it has one)."""
        from qkd_twin.module import deliver_blocks

        if not blocks:
            return
        peer = self._refresh_peer()
        up = peer is not None and self._alive(peer.pid)
        if up != self._peer_up:
            self._peer_up = up
            self._on_peer_change(up)
        if not up or peer is None:
            return
        first = max(self.record.start_block, peer.start_block)
        deliver_blocks(self._sink, qkdl_id, [(n, key) for n, key in blocks if n >= first])
