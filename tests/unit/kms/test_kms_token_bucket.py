"""Token bucket arithmetic (pure, explicit time)."""

import pytest

from kms.token_bucket import TURN_GRACE_S, TokenBucket


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


def test_turns_past_the_horizon_are_not_booked():
    b = TokenBucket.full(size=1000, rate=1000, now=0.0)
    assert b.try_consume(1000, 0.0)
    turns = [b.next_turn(400, 0.0, horizon=1.0) for _ in range(4)]
    # 1.2 s is past the horizon: told to come back then (held 1 s at most), nothing booked
    assert turns == pytest.approx([0.4, 0.8, 1.2, 1.2])
    assert len(b.turns) == 2
    slow = TokenBucket.full(size=2048, rate=256, now=0.0)
    assert slow.try_consume(2048, 0.0)
    assert slow.next_turn(1024, 0.0, horizon=1.0) == pytest.approx(4.0)
    assert slow.next_turn(1024, 1.0, horizon=1.0) == pytest.approx(3.0)   # not 7 s


def test_a_booked_turn_keeps_its_tokens():
    b = TokenBucket.full(size=1000, rate=1000, now=0.0)
    assert b.try_consume(1000, 0.0)
    assert b.next_turn(500, 0.0) == pytest.approx(0.5)
    # before the turn, 300 and then 450 tokens are there, but taking 100 would leave the
    # booked caller short at 0.5: refused
    assert not b.try_consume(100, 0.3)
    assert not b.try_consume(100, 0.45)
    assert not b.try_consume(500, 0.45)             # the caller itself, early: not yet there
    assert b.try_consume(500, 0.55)                 # at its turn (a little late): served
    assert b.turns == []
    assert b.try_consume(50, 0.55)                  # the 50 left over are anyone's


def test_a_turn_not_taken_is_forgotten():
    b = TokenBucket.full(size=1000, rate=1000, now=0.0)
    assert b.try_consume(1000, 0.0)
    b.next_turn(800, 0.0)                           # due at 0.8; its caller never comes back
    assert b.next_turn(800, 0.9) == pytest.approx(0.7)      # booked after it: at 1.6
    later = 1.6 + TURN_GRACE_S + 0.01               # both forgotten by now
    assert b.next_turn(800, later) == 0.0 and len(b.turns) == 1


def test_a_late_caller_leaves_no_lasting_surplus():
    """Turns booked from the tokens: a caller served late does not push every later turn
    back (with turns chained one request apart, its lateness stayed in the bucket for ever)."""
    b = TokenBucket.full(size=1000, rate=1000, now=0.0)
    assert b.try_consume(1000, 0.0)
    first = b.next_turn(250, 0.0)                   # due at 0.25
    assert b.try_consume(250, first + 0.08)         # taken 80 ms late: 80 tokens left over
    # the next refused caller is booked 250 tokens after what is there, not 250 after 0.25
    assert b.next_turn(250, 0.33) == pytest.approx(0.17)


def _greedy(rate: float, size: float, amount: float, callers: int, late: list[float],
            seconds: float, horizon: float = 1.0) -> tuple[float, float]:
    """``callers`` connections, each asking again at once after an answer; a refused one
    comes back at its turn plus a lateness drawn in turn from ``late``: (accepted, bound)."""
    b = TokenBucket.full(size, rate, now=0.0)
    events = [(0.0001 * i, i) for i in range(callers)]
    accepted, last, n = 0.0, 0.0, 0
    while events:
        events.sort()
        now, who = events.pop(0)
        if now > seconds:
            continue
        if b.try_consume(amount, now):
            accepted += amount
            last = now
            events.append((now + 0.002, who))            # asks again at once
        else:
            turn = b.next_turn(amount, now, horizon=horizon)
            events.append((now + min(turn, horizon) + late[n % len(late)], who))
            n += 1
    return accepted, rate * last + size


@pytest.mark.parametrize("late", [[0.0], [0.02, 0.08, 0.0, 0.05], [0.1, 0.0, 0.0, 0.03, 0.15]])
def test_greedy_callers_get_their_bound(late):
    accepted, bound = _greedy(10_240, 8_192, 1_024, 8, late, seconds=15)
    assert accepted <= bound
    assert accepted >= 0.99 * bound, accepted / bound


def test_greedy_callers_past_the_horizon_stay_within_the_bound():
    # the short test's shape: 8 callers, one request every 0.2 s, a 1 s horizon
    accepted, bound = _greedy(5_120, 4_096, 1_024, 8, [0.01, 0.03], seconds=4)
    assert bound * 0.97 <= accepted <= bound


def test_wait_time_counts_the_booked_turns():
    b = TokenBucket.full(size=1000, rate=1000, now=0.0)
    assert b.try_consume(1000, 0.0)
    b.next_turn(500, 0.0)                           # booked at 0.5
    # at 0.45 there are 450 tokens, all needed by the turn at 0.5: a waiter comes after it
    assert b.wait_time(200, 0.45) == pytest.approx((500 + 200 - 450) / 1000)
    assert b.wait_time(200, 10.0) == 0.0            # the turn forgotten, the bucket full
