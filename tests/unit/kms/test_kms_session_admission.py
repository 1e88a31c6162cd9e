"""Per-session admission: a bounded number of one session's requests at once, others
unaffected, refused requests counted nowhere."""

import pytest

from kms.errors import RateLimited
from kms.session_admission import CONCURRENCY_RETRY_AFTER_S, ConcurrencyLimited, SessionAdmission
from kms.token_bucket import TokenBucket


def test_a_session_gets_at_most_its_bound_and_others_are_not_touched():
    admission = SessionAdmission(per_session=2)
    with admission.admit("greedy"), admission.admit("greedy"):
        with pytest.raises(ConcurrencyLimited) as refused, admission.admit("greedy"):
            pass
        assert isinstance(refused.value, RateLimited)        # 014: 503 like the bucket
        assert refused.value.retry_after == CONCURRENCY_RETRY_AFTER_S
        with admission.admit("polite"):
            assert admission.in_progress("polite") == 1
        assert admission.in_progress("greedy") == 2
    assert admission.in_progress("greedy") == 0
    assert admission.sessions == 0
    assert admission.refused == 1


def test_a_failing_request_gives_its_place_back():
    admission = SessionAdmission(per_session=1)
    with pytest.raises(KeyError), admission.admit("s"):
        raise KeyError("boom")
    with admission.admit("s"):
        pass


def test_bound_must_be_positive():
    with pytest.raises(ValueError):
        SessionAdmission(per_session=0)


def test_retry_after_is_the_wait_or_a_finite_refill_time():
    b = TokenBucket.full(size=1000, rate=100, now=0.0)
    assert b.try_consume(1000, 0.0)
    assert b.retry_after(50, 0.0) == pytest.approx(0.5)
    assert b.retry_after(5000, 0.0) == pytest.approx(10.0)    # never fits: a full refill
    assert TokenBucket.full(size=10, rate=0, now=0.0).retry_after(20, 0.0) == 60.0
