import pytest

from sdn_controller.reservations import ReservationLedger


def test_totals_users_and_release():
    ledger = ReservationLedger()
    ledger.reserve("s1", {"l1": 100, "l2": 100})
    ledger.reserve("s2", {"l2": 50, "l3": 0})
    assert ledger.reserved_by_link() == {"l1": 100, "l2": 150}
    assert ledger.sessions_by_link() == {"l1": {"s1"}, "l2": {"s1", "s2"}}
    assert ledger.session_counts() == {"l1": 1, "l2": 2} and len(ledger) == 2
    ledger.reserve("s1", {"l3": 10})  # replaces s1's earlier record
    assert ledger.reserved_by_link() == {"l2": 50, "l3": 10}
    assert ledger.release("s2") == {"l2": 50}
    assert ledger.reserved_by_link() == {"l3": 10} and ledger.sessions_on("l2") == frozenset()
    assert ledger.release("unknown") == {}
    with pytest.raises(ValueError):
        ledger.reserve("s3", {"l1": -1})
