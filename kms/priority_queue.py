"""Pending key requests, served by session priority (higher first), and within a priority
round-robin over the sessions (FIFO within a session).

:class:`RequestQueue` is the pure ordering; :class:`PriorityGate` is the thin threaded shell
the KM uses: at most ``slots`` requests run at once, and a waiting request runs only when it is
the head of the queue, so a flood of low-priority requests never starves a high-priority one,
and a flood of one session's requests never makes another session of the same priority wait
behind all of it (item 7 of docs/reliability.md: a greedy session queued 30 relays, a polite
one waited for all 30).

Round-robin is start-time fair queueing with unit costs: each push gets a *round*, the later of
the queue's current round (that of the last item popped) and one after its session's previous
item; items pop in (priority, round, arrival) order. An item without a session is a session of
its own.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from qkdn.structured_logging import current_session

T = TypeVar("T")


@dataclass(order=True)
class _Entry(Generic[T]):
    neg_priority: int
    round: int
    seq: int
    item: T = field(compare=False)
    flow: Hashable | None = field(compare=False, default=None)


class RequestQueue(Generic[T]):
    """Priority queue: highest priority first, then round-robin over sessions (``flow``),
    FIFO within a session."""

    def __init__(self) -> None:
        self._heap: list[_Entry[T]] = []
        self._seq = itertools.count()
        self._round = 0
        #: per session: the round of its last queued item, and how many it has queued
        self._last_round: dict[Hashable, int] = {}
        self._queued: dict[Hashable, int] = {}

    def push(self, item: T, priority: int, flow: Hashable | None = None) -> None:
        """Queue ``item``; ``flow`` is the session it belongs to (None: a session of its own)."""
        rnd = self._round
        if flow is not None:
            rnd = max(rnd, self._last_round.get(flow, self._round - 1) + 1)
            self._last_round[flow] = rnd
            self._queued[flow] = self._queued.get(flow, 0) + 1
        heapq.heappush(self._heap, _Entry(-priority, rnd, next(self._seq), item, flow))

    def peek(self) -> T:
        return self._heap[0].item

    def pop(self) -> T:
        entry = heapq.heappop(self._heap)
        self._forget(entry)
        if entry.round > self._round:
            self._round = entry.round
            # sessions with nothing queued that were served before this round start afresh
            for flow in [f for f, r in self._last_round.items()
                         if r < self._round and not self._queued.get(f)]:
                del self._last_round[flow]
        return entry.item

    def remove(self, item: T) -> None:
        gone = [e for e in self._heap if e.item is item]
        self._heap = [e for e in self._heap if e.item is not item]
        heapq.heapify(self._heap)
        for entry in gone:
            self._forget(entry)

    def _forget(self, entry: _Entry[T]) -> None:
        if entry.flow is not None:
            left = self._queued.get(entry.flow, 0) - 1
            if left > 0:
                self._queued[entry.flow] = left
            else:
                self._queued.pop(entry.flow, None)

    def __len__(self) -> int:
        return len(self._heap)

    @property
    def sessions_known(self) -> int:
        """Sessions the queue keeps a round for (bounded by those queued or just served)."""
        return len(self._last_round)


class PriorityGate:
    """Admits requests into a bounded number of running slots in queue order."""

    def __init__(self, slots: int) -> None:
        self._slots = slots
        self._running = 0
        self._queue: RequestQueue[object] = RequestQueue()
        self._cond = threading.Condition()

    @contextmanager
    def slot(self, priority: int, session: Hashable | None = None) -> Iterator[None]:
        """Run the body in a slot: after every higher-priority request, and after the queued
        requests of other sessions that are due in an earlier round. ``session`` defaults to
        the session the calling request is bound to (:func:`qkdn.structured_logging.
        current_session`: the KM binds it when it identifies a request's session)."""
        if session is None:
            session = current_session()
        token = object()
        with self._cond:
            self._queue.push(token, priority, session)
            try:
                while not (self._running < self._slots and self._queue.peek() is token):
                    self._cond.wait()
            except BaseException:
                self._queue.remove(token)
                self._cond.notify_all()
                raise
            self._queue.pop()
            self._running += 1
            self._cond.notify_all()
        try:
            yield
        finally:
            with self._cond:
                self._running -= 1
                self._cond.notify_all()

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._queue)
