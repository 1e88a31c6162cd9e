"""The KM session state machine (paper Fig. 2a) with an idle timer on an injected clock.

``authenticating → user_accepted → operative ⇄ key_exchanging → terminated``. Every
transition is logged (never key material) and reported to an observer (the KM turns it into a
notification and into the application status the agent exposes).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from kms.errors import SessionError

log = logging.getLogger(__name__)

#: transitions a session keeps in ``history``
HISTORY_LIMIT = 100


class SessionState(str, Enum):
    """Values spelled as ``km-session-state`` in yang/qkdn-key-manager.yang."""

    AUTHENTICATING = "authenticating"
    USER_ACCEPTED = "user-accepted"
    OPERATIVE = "operative"
    KEY_EXCHANGING = "key-exchanging"
    TERMINATED = "terminated"


class SessionEvent(str, Enum):
    ACCESS_GRANTED = "access_granted"
    CONFIGURED = "configured"
    DELETED = "deleted"
    KEY_REQUEST = "key_request"
    KEY_DELIVERED = "key_delivered"
    CLOSED = "closed"
    EXPIRED = "expired"


_S, _E = SessionState, SessionEvent
TRANSITIONS: dict[tuple[SessionState, SessionEvent], SessionState] = {
    (_S.AUTHENTICATING, _E.ACCESS_GRANTED): _S.USER_ACCEPTED,
    (_S.AUTHENTICATING, _E.DELETED): _S.TERMINATED,
    (_S.AUTHENTICATING, _E.CLOSED): _S.TERMINATED,
    (_S.USER_ACCEPTED, _E.CONFIGURED): _S.OPERATIVE,
    (_S.USER_ACCEPTED, _E.DELETED): _S.TERMINATED,
    (_S.USER_ACCEPTED, _E.CLOSED): _S.TERMINATED,
    (_S.OPERATIVE, _E.KEY_REQUEST): _S.KEY_EXCHANGING,
    (_S.OPERATIVE, _E.CONFIGURED): _S.OPERATIVE,
    (_S.KEY_EXCHANGING, _E.KEY_DELIVERED): _S.OPERATIVE,
    (_S.KEY_EXCHANGING, _E.KEY_REQUEST): _S.KEY_EXCHANGING,
    (_S.KEY_EXCHANGING, _E.CONFIGURED): _S.KEY_EXCHANGING,
    (_S.OPERATIVE, _E.DELETED): _S.TERMINATED,
    (_S.OPERATIVE, _E.CLOSED): _S.TERMINATED,
    (_S.OPERATIVE, _E.EXPIRED): _S.TERMINATED,
    (_S.KEY_EXCHANGING, _E.DELETED): _S.TERMINATED,
    (_S.KEY_EXCHANGING, _E.CLOSED): _S.TERMINATED,
}


@dataclass(frozen=True)
class Transition:
    session_id: str
    old: SessionState
    event: SessionEvent
    new: SessionState
    at: float


#: events every key request fires (logged at DEBUG)
_PER_REQUEST = frozenset({SessionEvent.KEY_REQUEST, SessionEvent.KEY_DELIVERED})


class KmSession:
    """One session instance; not thread-safe by itself (the KM holds a lock around it)."""

    def __init__(self, session_id: str, sae_ids: frozenset[str], clock: Callable[[], float],
                 observer: Callable[[Transition], None] | None = None,
                 idle_timeout: float | None = None) -> None:
        self.session_id = session_id
        self.sae_ids = sae_ids
        self.state = SessionState.AUTHENTICATING
        self.idle_timeout = idle_timeout
        self._clock = clock
        self._observer = observer
        self._in_flight = 0
        self.last_activity = clock()
        #: the newest HISTORY_LIMIT transitions (two per key request: the whole history of a
        #: long-lived session grew without bound, ≈ 0.25 KB per request; docs/reliability.md)
        self.history: deque[Transition] = deque(maxlen=HISTORY_LIMIT)
        #: key requests over the session's life (``km_session/counters/key_requests``)
        self.key_requests = 0

    def fire(self, event: SessionEvent) -> SessionState:
        """Apply ``event``; raises :class:`SessionError` if it is not valid now."""
        new = TRANSITIONS.get((self.state, event))
        if new is None:
            raise SessionError(f"session {self.session_id}: {event.value} not valid in {self.state.value}")
        if event is SessionEvent.KEY_REQUEST:
            self._in_flight += 1
            self.key_requests += 1
        if event is SessionEvent.KEY_DELIVERED:
            self._in_flight -= 1
            if self._in_flight > 0:
                new = SessionState.KEY_EXCHANGING
        if event in (SessionEvent.KEY_REQUEST, SessionEvent.CONFIGURED):
            self.last_activity = self._clock()  # the idle timer restarts
        transition = Transition(self.session_id, self.state, event, new, self._clock())
        self.state = new
        self.history.append(transition)
        # a key request's two transitions at DEBUG (events.jsonl records every request): at
        # INFO they were two log lines per request, formatted and written by a KM serving
        # hundreds per second; life-cycle transitions stay at INFO
        log.log(logging.DEBUG if event in _PER_REQUEST else logging.INFO,
                "session %s: %s --%s--> %s", self.session_id, transition.old.value,
                event.value, new.value)
        if self._observer is not None:
            self._observer(transition)
        return new

    def configure(self, idle_timeout: float | None) -> None:
        """Configuration arrived: (authenticating →) user_accepted → operative."""
        self.idle_timeout = idle_timeout
        if self.state is SessionState.AUTHENTICATING:
            self.fire(SessionEvent.ACCESS_GRANTED)
        self.fire(SessionEvent.CONFIGURED)

    def expired(self, now: float | None = None) -> bool:
        """True if the idle timer ran out while operative (no request in flight)."""
        if self.state is not SessionState.OPERATIVE or not self.idle_timeout:
            return False
        now = self._clock() if now is None else now
        return now - self.last_activity >= self.idle_timeout

    def check_timer(self) -> bool:
        """Terminate on expiry; True if it expired now."""
        if self.expired():
            self.fire(SessionEvent.EXPIRED)
            return True
        return False

    @property
    def active(self) -> bool:
        return self.state in (SessionState.OPERATIVE, SessionState.KEY_EXCHANGING)
