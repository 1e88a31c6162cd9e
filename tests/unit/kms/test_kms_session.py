"""KM session state machine (paper Fig. 2a) with a fake clock."""

import pytest

from kms.errors import SessionError
from kms.session import KmSession, SessionEvent, SessionState


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_life_cycle_and_idle_timer():
    clock, seen = FakeClock(), []
    s = KmSession("s1", frozenset({"a", "b"}), clock, observer=seen.append)
    assert s.state is SessionState.AUTHENTICATING
    s.configure(idle_timeout=10)
    assert s.state is SessionState.OPERATIVE
    assert [t.new for t in seen] == [SessionState.USER_ACCEPTED, SessionState.OPERATIVE]
    clock.now += 9
    s.fire(SessionEvent.KEY_REQUEST)           # resets the timer
    assert s.state is SessionState.KEY_EXCHANGING
    clock.now += 20
    assert not s.check_timer()                 # a request in flight never expires
    s.fire(SessionEvent.KEY_DELIVERED)
    assert s.state is SessionState.OPERATIVE
    clock.now = 109 + 9.9
    assert not s.check_timer()
    clock.now = 109 + 10
    assert s.check_timer() and s.state is SessionState.TERMINATED
    assert seen[-1].event is SessionEvent.EXPIRED


def test_overlapping_requests_stay_key_exchanging():
    s = KmSession("s", frozenset(), FakeClock())
    s.configure(None)
    s.fire(SessionEvent.KEY_REQUEST)
    s.fire(SessionEvent.KEY_REQUEST)
    assert s.fire(SessionEvent.KEY_DELIVERED) is SessionState.KEY_EXCHANGING
    assert s.fire(SessionEvent.KEY_DELIVERED) is SessionState.OPERATIVE


@pytest.mark.parametrize("event", [SessionEvent.DELETED, SessionEvent.CLOSED])
def test_deletion_or_close_before_configuration_terminates(event):
    s = KmSession("s", frozenset(), FakeClock())
    s.fire(event)
    assert s.state is SessionState.TERMINATED


def test_invalid_transitions_raise():
    s = KmSession("s", frozenset(), FakeClock())
    with pytest.raises(SessionError):
        s.fire(SessionEvent.KEY_REQUEST)
    s.fire(SessionEvent.CLOSED)
    with pytest.raises(SessionError):
        s.configure(5)


def test_history_is_bounded_and_key_requests_counted():
    from kms.session import HISTORY_LIMIT, KmSession, SessionEvent
    session = KmSession("s", frozenset({"a", "b"}), clock=lambda: 0.0)
    session.configure(None)
    for _ in range(HISTORY_LIMIT):
        session.fire(SessionEvent.KEY_REQUEST)
        session.fire(SessionEvent.KEY_DELIVERED)
    assert len(session.history) == HISTORY_LIMIT
    assert session.history[-1].event is SessionEvent.KEY_DELIVERED
    assert session.key_requests == HISTORY_LIMIT
