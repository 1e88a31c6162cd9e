"""One thread and one timer driving every emulated QKD module of a node.

A node process runs one :class:`~qkd_twin.module.QkdModule` per link end. With a thread each,
every module slept and woke on its own: a node of four link ends had four threads waking at
the same wall-clock instants (the batch instants are shared by design), four GIL hand-overs
and four timer set-ups per wake. :class:`ModuleScheduler` keeps the modules' next wake times
in one heap and runs each due module's step on its own thread: one wake-up per instant for
the whole node, the modules' work done back to back.

A scheduled object has ``step(now) -> float | None``: do the work due at ``now`` (Unix time)
and return when it wants to run next (None: never again). Steps run one at a time, in order
of their wake time; a step that returns a wake time at or before ``now`` (a module catching
up in slices) is queued behind the others already due, so no module starves the rest.

Example::

    with ModuleScheduler() as scheduler:
        scheduler.add(module, wake=time.time())
        ...
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol, Self

log = logging.getLogger(__name__)


class ScheduledModule(Protocol):
    """What the scheduler drives (a :class:`~qkd_twin.module.QkdModule`)."""

    def step(self, now: float) -> float | None: ...


class ModuleScheduler:
    """Runs the steps of its modules, each at the wake time it asked for, on one thread.

    ``clock`` gives Unix time (the modules' blocks are aligned to it); the thread starts with
    the first :meth:`add` and ends with :meth:`stop` (or the context manager's exit).
    """

    def __init__(self, clock: Callable[[], float] = time.time, *,
                 name: str = "qkd-modules") -> None:
        self._clock = clock
        self._name = name
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, ScheduledModule]] = []
        self._order = itertools.count()
        self._removed: set[int] = set()     # id() of modules removed while queued
        self._running: ScheduledModule | None = None
        self._sooner: float | None = None   # a wake() for the module stepping now
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.wakeups = 0      #: times the thread woke to run due steps (diagnostics, tests)
        self.steps = 0        #: module steps run

    # -- membership ------------------------------------------------------------------------
    def add(self, module: ScheduledModule, wake: float) -> None:
        """Run ``module.step`` at ``wake`` (Unix time) and then whenever it asks."""
        with self._cond:
            if self._stopping:
                raise RuntimeError("scheduler stopped")
            self._removed.discard(id(module))
            heapq.heappush(self._heap, (wake, next(self._order), module))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify()

    def wake(self, module: ScheduledModule, at: float) -> None:
        """Run ``module``'s next step at ``at`` if that is sooner than it asked for (a module
        stepping now: at ``at`` or at the time its step asks for, whichever is sooner)."""
        with self._cond:
            if self._running is module:
                self._sooner = at if self._sooner is None else min(self._sooner, at)
                return
            for index, (wake, _, queued) in enumerate(self._heap):
                if queued is module:
                    if at < wake:
                        self._heap[index] = (at, next(self._order), module)
                        heapq.heapify(self._heap)
                        self._cond.notify()
                    return

    def remove(self, module: ScheduledModule, timeout: float = 5.0) -> None:
        """Never step ``module`` again; returns once a step of it in progress has ended (or
        after ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._removed.add(id(module))
            self._heap = [entry for entry in self._heap if entry[2] is not module]
            heapq.heapify(self._heap)
            while self._running is module and threading.current_thread() is not self._thread:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)

    def module_count(self) -> int:
        """Modules scheduled now (queued or stepping)."""
        with self._cond:
            return len(self._heap) + (self._running is not None)

    # -- life cycle ------------------------------------------------------------------------
    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            self._heap.clear()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the thread ------------------------------------------------------------------------
    def _next_due(self) -> ScheduledModule | None:
        """Wait for the earliest wake time; the module due then (None: stopping)."""
        with self._cond:
            while not self._stopping:
                if not self._heap:
                    self._cond.wait()
                    continue
                wake = self._heap[0][0]
                wait = wake - self._clock()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                _, _, module = heapq.heappop(self._heap)
                self._running = module
                self._sooner = None
                return module
            return None

    def _run(self) -> None:
        woke = True
        while True:
            module = self._next_due()
            if module is None:
                return
            self.wakeups += woke
            try:
                wake = module.step(self._clock())
            except Exception:  # a module's bug must not stop the other modules
                log.exception("module step failed; module dropped")
                wake = None
            self.steps += 1
            with self._cond:
                self._running = None
                if wake is not None and self._sooner is not None:
                    wake = min(wake, self._sooner)
                self._sooner = None
                if wake is not None and not self._stopping and id(module) not in self._removed:
                    heapq.heappush(self._heap, (wake, next(self._order), module))
                woke = not self._heap or self._heap[0][0] > self._clock()
                self._cond.notify_all()
