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
