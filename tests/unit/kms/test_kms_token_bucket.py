"""Token bucket arithmetic (pure, explicit time)."""

import pytest

from kms.token_bucket import TokenBucket


def test_burst_then_rate():
    b = TokenBucket.full(size=1000, rate=100, now=0.0)
    assert b.try_consume(1000, 0.0)
    assert not b.try_consume(1, 0.0)
    assert b.wait_time(50, 0.0) == pytest.approx(0.5)
    assert not b.try_consume(60, 0.5)
    assert b.try_consume(50, 0.5)


def test_never_exceeds_size_and_oversized_request_waits_forever():
    b = TokenBucket.full(size=100, rate=10, now=0.0)
    assert b.try_consume(100, 1000.0)
    assert not b.try_consume(1, 1000.0)
    assert b.wait_time(101, 0.0) == float("inf")


def test_accepted_volume_within_one_percent_of_rate_t_plus_burst():
    size, rate = 2048.0, 10_000.0
    b = TokenBucket.full(size, rate, now=0.0)
    accepted, t, step = 0.0, 0.0, 0.0001
    while t < 10.0:
        if b.try_consume(256, t):
            accepted += 256
        t += step
    bound = rate * t + size
    assert accepted <= bound
    assert accepted >= 0.99 * bound


def test_invalid_parameters():
    with pytest.raises(ValueError):
        TokenBucket.full(0, 1, 0.0)


def test_refused_callers_get_successive_turns():
    b = TokenBucket.full(size=1000, rate=1000, now=0.0)
    assert b.try_consume(1000, 0.0)
    turns = [b.next_turn(250, 0.0) for _ in range(4)]     # four connections refused at once
    assert turns == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert b.try_consume(250, 0.25)                       # the first comes back: served
    assert b.next_turn(250, 0.3) == pytest.approx(1.25 - 0.3)   # after the 4th turn (1.0)
    assert b.next_turn(250, 5.0) == pytest.approx(0.0)    # turns in the past are forgotten


def test_turns_are_finite_for_requests_that_never_fit():
    b = TokenBucket.full(size=100, rate=10, now=0.0)
    assert b.next_turn(1000, 0.0) == pytest.approx(10.0)


def test_turns_wrap_around_past_the_horizon():
    b = TokenBucket.full(size=1000, rate=1000, now=0.0)
    assert b.try_consume(1000, 0.0)
    turns = [b.next_turn(400, 0.0, horizon=1.0) for _ in range(4)]
    assert turns == pytest.approx([0.4, 0.8, 0.4, 0.8])    # 1.2 s is past the horizon
    slow = TokenBucket.full(size=2048, rate=256, now=0.0)
    assert slow.try_consume(2048, 0.0)
    assert slow.next_turn(1024, 0.0, horizon=1.0) == pytest.approx(4.0)
    assert slow.next_turn(1024, 1.0, horizon=1.0) == pytest.approx(3.0)   # not 7 s
