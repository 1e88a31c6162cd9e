"""The orchestrator's event log: the controller's notifications in a bounded ring.

Each event gets a sequence number (1, 2, ...) that doubles as the paging cursor and the
server-sent event id. Pure bookkeeping plus a condition variable for stream readers; the clock
is passed in.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

DEFAULT_CAPACITY = 10_000


@dataclass(frozen=True)
class Event:
    """One notification of the controller (or of the orchestrator itself)."""

    seq: int
    event_time: str
    type: str
    data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "event_time": self.event_time, "type": self.type,
                "data": self.data}


@dataclass(frozen=True)
class EventPage:
    events: tuple[Event, ...]
    next_cursor: int  #: pass as ``after`` for the next page
    oldest_seq: int  #: events before this one have left the ring
    truncated: bool  #: some events after the requested cursor had already left the ring

    def to_json(self) -> dict[str, Any]:
        return {"events": [e.to_json() for e in self.events], "next_cursor": self.next_cursor,
                "oldest_seq": self.oldest_seq, "truncated": self.truncated}


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class EventLog:
    """Bounded, thread-safe event ring with cursor paging and blocking waits."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self._events: deque[Event] = deque(maxlen=capacity)
        self._next_seq = 1
        self._clock = clock
        self._changed = threading.Condition()
        self.counts: dict[str, int] = {}

    def append(self, type_: str, data: dict[str, Any],
               event_time: datetime | None = None) -> Event:
        with self._changed:
            event = Event(self._next_seq, format_time(event_time or self._clock()), type_, data)
            self._next_seq += 1
            self._events.append(event)
            self.counts[type_] = self.counts.get(type_, 0) + 1
            self._changed.notify_all()
            return event

    @property
    def last_seq(self) -> int:
        with self._changed:
            return self._next_seq - 1

    def page(self, after: int = 0, limit: int = 100,
             types: Iterable[str] | None = None) -> EventPage:
        """Events with ``seq > after`` (oldest first), at most ``limit``, optionally only of
        the given types."""
        wanted = frozenset(types) if types else None
        with self._changed:
            oldest = self._events[0].seq if self._events else self._next_seq
            truncated = after + 1 < oldest and after < self._next_seq - 1
            out: list[Event] = []
            cursor = after
            for event in self._events:
                if event.seq <= after:
                    continue
                cursor = event.seq
                if wanted is None or event.type in wanted:
                    out.append(event)
                    if len(out) >= limit:
                        break
            if len(out) < limit:
                cursor = max(after, self._next_seq - 1)
            return EventPage(tuple(out), cursor, oldest, truncated)

    def snapshot(self) -> list[Event]:
        """Every event still in the ring, oldest first."""
        with self._changed:
            return list(self._events)

    def wait_after(self, after: int, timeout: float) -> bool:
        """Block until an event with ``seq > after`` exists (True) or ``timeout`` passes."""
        with self._changed:
            return self._changed.wait_for(lambda: self._next_seq - 1 > after, timeout)


#: Alarm notifications whose resource identifies what the alarm is about.
_RESOURCES = ("sdqkd_node", "qkd_interface", "phys_link", "svc_link")


def alarm_key(data: dict[str, Any]) -> tuple[str, str, str]:
    """(alarm type, resource kind, resource id) of an ``alarm`` event's data."""
    for kind in _RESOURCES:
        resource = data.get(kind)
        if isinstance(resource, dict):
            ident = resource.get("qkdl_id") or resource.get("qkdn_id") or ""
            if kind == "qkd_interface":
                ident = f"{resource.get('qkdn_id', '')}/{resource.get('qkdi_id', '')}"
            return str(data.get("alarm_type", "")), kind, str(ident)
    return str(data.get("alarm_type", "")), "", ""


def active_alarms(events: Iterable[Event]) -> list[Event]:
    """The alarms raised and not cleared since, latest raise per (type, resource), oldest
    first."""
    active: dict[tuple[str, str, str], Event] = {}
    for event in events:
        if event.type != "alarm":
            continue
        key = alarm_key(event.data)
        if event.data.get("cleared"):
            active.pop(key, None)
        else:
            active[key] = event
    return sorted(active.values(), key=lambda e: e.seq)
