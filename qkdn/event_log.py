"""Session events of a node, as JSON lines: what the demo's Fig. 4-like timeline is made of.

A KM records, in wall-clock epoch seconds, each step of a key exchange it takes part in
(:class:`EventKind`). :class:`EventRecorder` appends them to ``DIR/nodes/<n>/events.jsonl``
(flushed per event, rotated to ``events.jsonl.1`` past ``max_bytes``); :func:`read_events`
reads them back in order. An event's ``detail`` takes only the field names of
:data:`DETAIL_FIELDS` with scalar values: there is no way to put key material in it.

>>> event = Event(12.5, "2", EventKind.REQUEST, "pending:x", {"api": "014"})
>>> Event.from_json(event.to_json()) == event
True
>>> [e.session for e in resolve_sessions([event, Event(13.0, "2", EventKind.AUTHENTICATED,
...     "s-1", {"pending": "pending:x"})])]
['s-1', 's-1']
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from qkdn.errors import QkdnError

EVENTS_FILE = "events.jsonl"
DEFAULT_MAX_BYTES = 4 * 1024 * 1024

Scalar = str | int | float | bool | None


class EventKind(str, Enum):
    """The steps of a key exchange at one KM (paper Fig. 4), plus the session's end."""

    REQUEST = "request"                        #: an ETSI 014 / 004 call arrived
    AUTHENTICATED = "authenticated"            #: the controller's verdict reached this KM
    PATH_CONFIGURED = "path_configured"        #: session configuration + forwarding applied
    QKD_KEY_AVAILABLE = "qkd_key_available"    #: the session's link(s) hold key material
    RELAY_HOP_RECEIVED = "relay_hop_received"  #: an authentic relay message arrived here
    KEY_RETURNED = "key_returned"              #: keys handed to an application
    SESSION_TERMINATED = "session_terminated"


#: The only detail fields an event may carry (no field can hold key material).
DETAIL_FIELDS = frozenset({
    "api", "operation", "sae", "peer_sae", "outcome", "keys", "bits", "qkdl_id", "qkdl_ids",
    "role", "from_node", "to_node", "pending", "reason", "ksid", "index",
})


class EventError(QkdnError):
    """An event that cannot be recorded (unknown detail field, non-scalar value)."""


def check_detail(detail: Mapping[str, Any]) -> dict[str, Scalar]:
    """``detail`` as a plain dict, or :class:`EventError` for an unknown field or a value
    that is not a str/int/float/bool/None (bytes in particular)."""
    out: dict[str, Scalar] = {}
    for name, value in detail.items():
        if name not in DETAIL_FIELDS:
            raise EventError(f"event detail field {name!r} is not allowed")
        if value is not None and not isinstance(value, (str, int, float, bool)):
            raise EventError(f"event detail {name!r} must be a scalar, not "
                             f"{type(value).__name__}")
        out[name] = value
    return out


@dataclass(frozen=True)
class Event:
    """One step at one node: ``t`` epoch seconds, ``session`` the session ID (None for
    link-level events), ``detail`` a few scalars (see :data:`DETAIL_FIELDS`)."""

    t: float
    node: str
    event: EventKind
    session: str | None = None
    detail: Mapping[str, Scalar] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"t": round(self.t, 6), "node": self.node,
                                "event": self.event.value, "session": self.session}
        if self.detail:
            body["detail"] = dict(self.detail)
        return body

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Event:
        try:
            return cls(float(body["t"]), str(body["node"]), EventKind(body["event"]),
                       body.get("session"), check_detail(body.get("detail") or {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise EventError(f"malformed event: {exc}") from None


class EventRecorder:
    """Appends events to a JSON-lines file (thread-safe); rotates past ``max_bytes``.

    ``path=None`` keeps them in memory only (``recent``). The newest ``keep_recent`` events
    are kept in memory either way."""

    def __init__(self, node: str, path: Path | None, *, clock: Callable[[], float] = time.time,
                 max_bytes: int = DEFAULT_MAX_BYTES, keep_recent: int = 1000) -> None:
        self.node = node
        self.path = path
        self.max_bytes = max_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self._handle: Any = None
        self._recent: list[Event] = []
        self._keep = keep_recent
        self.counts: dict[EventKind, int] = {}

    def record(self, kind: EventKind, session: str | None = None, **detail: Scalar) -> Event:
        """Record one event now; returns it."""
        event = Event(self._clock(), self.node, kind, session, check_detail(detail))
        line = json.dumps(event.to_json(), separators=(",", ":")) + "\n"
        with self._lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            self._recent.append(event)
            if len(self._recent) > self._keep:
                del self._recent[: len(self._recent) - self._keep]
            if self.path is not None:
                self._write(line)
        return event

    def recent(self) -> list[Event]:
        with self._lock:
            return list(self._recent)

    def _write(self, line: str) -> None:
        if self._handle is None:
            assert self.path is not None
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._handle = os.fdopen(fd, "a", encoding="utf-8")
        self._handle.write(line)
        self._handle.flush()
        if self._handle.tell() >= self.max_bytes:
            self._handle.close()
            self._handle = None
            assert self.path is not None
            os.replace(self.path, rotated_path(self.path))

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None


def rotated_path(path: Path) -> Path:
    return path.with_name(path.name + ".1")


def parse_lines(lines: Iterable[str]) -> list[Event]:
    """Events of JSON lines; a torn last line (a crash mid-write) is skipped."""
    events = []
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            events.append(Event.from_json(json.loads(line)))
        except (ValueError, EventError):
            continue
    return events


def read_events(path: Path) -> list[Event]:
    """The events of ``path`` and its rotated predecessor, oldest first."""
    events: list[Event] = []
    for part in (rotated_path(path), path):
        try:
            with open(part, encoding="utf-8") as handle:
                events.extend(parse_lines(handle))
        except FileNotFoundError:
            continue
    return events


def resolve_sessions(events: Iterable[Event]) -> list[Event]:
    """Events with KM-local ``pending:`` session ids replaced by the session ID the
    controller assigned (named by the ``authenticated`` event's ``pending`` detail)."""
    events = list(events)
    aliases = {str(e.detail["pending"]): e.session for e in events
               if e.event is EventKind.AUTHENTICATED and e.detail.get("pending") and e.session}
    out = []
    for e in events:
        if e.session in aliases:
            e = Event(e.t, e.node, e.event, aliases[e.session], e.detail)
        out.append(e)
    return out


def collect_events(node_dirs: Mapping[str, Path], *, since: float | None = None) -> list[Event]:
    """Every node's events (``<node dir>/events.jsonl``), sessions resolved, sorted by time;
    only those at or after ``since`` (epoch seconds) when given."""
    events: list[Event] = []
    for folder in node_dirs.values():
        events.extend(read_events(Path(folder) / EVENTS_FILE))
    events = resolve_sessions(events)
    if since is not None:
        events = [e for e in events if e.t >= since]
    return sorted(events, key=lambda e: (e.t, e.node))
