"""Per-session admission: at most ``per_session`` requests of one session inside the KM at once.

The KM serves requests on a fixed pool of worker threads (32). A 014 request may wait in the
relay gate, a 004 GET_KEY in its session's token bucket or for key material (up to its QoS
timeout): without a bound, one session with as many connections as there are threads held
every thread and every other session waited (item 7 of docs/reliability.md). A request over
the bound is refused at once, before any key, SQLite or relay work, with a short
``retry_after`` (its connection is held back that long: :func:`kms.https_server.hold_connection`).

    admission = SessionAdmission(per_session=8)
    with admission.admit(session_id):      # raises ConcurrencyLimited over the bound
        ...
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterator
from contextlib import contextmanager

from kms.errors import RateLimited

#: requests of one session in progress at once (a quarter of the KM's 32 worker threads)
DEFAULT_PER_SESSION = 8
#: seconds a request refused for concurrency waits before its connection is read again
CONCURRENCY_RETRY_AFTER_S = 0.05


class ConcurrencyLimited(RateLimited):
    """More of the session's requests are in progress than it may have at once (014: 503 with
    ``Retry-After``, like the token bucket's refusal; 004: status 6)."""


class SessionAdmission:
    """Counts each session's requests in progress (thread-safe)."""

    def __init__(self, per_session: int = DEFAULT_PER_SESSION) -> None:
        if per_session < 1:
            raise ValueError("per_session must be >= 1")
        self.per_session = per_session
        self._in_progress: dict[Hashable, int] = {}
        self._lock = threading.Lock()
        self.refused = 0

    @contextmanager
    def admit(self, session_id: Hashable, name: str | None = None) -> Iterator[None]:
        """Count the body as one of ``session_id``'s requests in progress; raise
        :class:`ConcurrencyLimited` (nothing counted) if it already has ``per_session``.
        ``name``: how the refusal names the session (default ``session <session_id>``)."""
        with self._lock:
            count = self._in_progress.get(session_id, 0)
            if count >= self.per_session:
                self.refused += 1
                raise ConcurrencyLimited(
                    f"{name or f'session {session_id}'}: more than {self.per_session} "
                    "requests at once", retry_after=CONCURRENCY_RETRY_AFTER_S)
            self._in_progress[session_id] = count + 1
        try:
            yield
        finally:
            with self._lock:
                left = self._in_progress[session_id] - 1
                if left:
                    self._in_progress[session_id] = left
                else:
                    del self._in_progress[session_id]

    def in_progress(self, session_id: Hashable) -> int:
        with self._lock:
            return self._in_progress.get(session_id, 0)

    @property
    def sessions(self) -> int:
        """Sessions with a request in progress now."""
        with self._lock:
            return len(self._in_progress)
