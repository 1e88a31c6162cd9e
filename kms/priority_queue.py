"""Pending key requests, served by session priority (higher first), FIFO within a priority.

:class:`RequestQueue` is the pure ordering; :class:`PriorityGate` is the thin threaded shell
the KM uses: at most ``slots`` requests run at once, and a waiting request runs only when it is
the head of the queue, so a flood of low-priority requests never starves a high-priority one.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(order=True)
class _Entry(Generic[T]):
    neg_priority: int
    seq: int
    item: T = field(compare=False)


class RequestQueue(Generic[T]):
    """Priority queue: highest priority first, FIFO among equals."""

    def __init__(self) -> None:
        self._heap: list[_Entry[T]] = []
        self._seq = itertools.count()

    def push(self, item: T, priority: int) -> None:
        heapq.heappush(self._heap, _Entry(-priority, next(self._seq), item))

    def peek(self) -> T:
        return self._heap[0].item

    def pop(self) -> T:
        return heapq.heappop(self._heap).item

    def remove(self, item: T) -> None:
        self._heap = [e for e in self._heap if e.item is not item]
        heapq.heapify(self._heap)

    def __len__(self) -> int:
        return len(self._heap)


class PriorityGate:
    """Admits requests into a bounded number of running slots in priority order."""

    def __init__(self, slots: int) -> None:
        self._slots = slots
        self._running = 0
        self._queue: RequestQueue[object] = RequestQueue()
        self._cond = threading.Condition()

    @contextmanager
    def slot(self, priority: int) -> Iterator[None]:
        token = object()
        with self._cond:
            self._queue.push(token, priority)
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
