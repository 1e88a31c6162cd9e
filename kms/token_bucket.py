"""Token bucket per session: bucket size = burst (bits), token rate = agreed key rate (bit/s).

Pure: the caller passes the current time (seconds, monotonic). Accepted volume over any
interval t is at most ``rate·t + size``: only tokens present are ever consumed.

Refused callers are given *turns* (:meth:`TokenBucket.next_turn`), booked against the
bucket's token state: a caller's turn is the moment the bucket holds the tokens of every turn
booked before it plus its own, so that a session flooding from several connections comes back
one connection at a time, each when its tokens are there, instead of all at once for the same
tokens (all but one refused again). A booked turn keeps its tokens: until it is taken (or
:data:`TURN_GRACE_S` after it, for a caller that does not come back) no other request of the
session may consume tokens that it needs.

Turns are computed from the tokens, not chained one request apart after the previous turn:
a chain kept any lateness for ever (a caller served 80 ms after its tokens were due left
80 ms of tokens in the bucket; every later turn was booked after the previous one, so that
surplus was never taken, and the greedy session of item 7 got 0.97-0.98 of its bound;
docs/reliability.md, "Session 5"). A caller short of tokens by at most :data:`SHORT_WAIT_S`
with no turn booked ahead of it waits for them instead of being refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: a request whose tokens are due within this many seconds (and no turn is booked ahead of
#: it) waits for them (no refusal)
SHORT_WAIT_S = 0.05
#: a booked turn not taken this long after its time is forgotten (its caller went away)
TURN_GRACE_S = 0.5
#: rounding slack of the token arithmetic (a caller at its turn finds its tokens)
EPSILON_BITS = 1e-6


@dataclass
class TokenBucket:
    size: float
    rate: float
    tokens: float
    stamp: float
    #: booked turns (time, amount), in time order
    turns: list[tuple[float, float]] = field(default_factory=list)

    @classmethod
    def full(cls, size: float, rate: float, now: float) -> TokenBucket:
        if size <= 0 or rate < 0:
            raise ValueError("bucket size must be > 0 and rate >= 0")
        return cls(size=size, rate=rate, tokens=size, stamp=now)

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.size, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
        if self.turns and self.turns[0][0] < now - TURN_GRACE_S:
            self.turns = [t for t in self.turns if t[0] >= now - TURN_GRACE_S]

    def _room_for(self, amount: float, now: float) -> bool:
        """Whether ``amount`` may be taken now without starving a booked turn: the earliest
        due turn is taken to be the caller's own; every other due turn keeps its tokens, and
        every future turn must still find its tokens at its time."""
        due = [a for t, a in self.turns if t <= now]
        left = self.tokens - amount - (sum(due) - due[0] if due else 0.0)
        if left < -EPSILON_BITS:
            return False
        booked = 0.0
        for at, need in self.turns:
            if at > now:
                booked += need
                if left + self.rate * (at - now) < booked - EPSILON_BITS:
                    return False
        return True

    def try_consume(self, amount: float, now: float) -> bool:
        """Take ``amount`` tokens if available now; False (nothing taken) otherwise. A caller
        coming back at its turn takes its booked tokens (the earliest due turn is settled)."""
        self._refill(now)
        if not self._room_for(amount, now):
            return False
        self.tokens -= amount
        for i, (at, _) in enumerate(self.turns):
            if at <= now:
                del self.turns[i]
                break
        return True

    def wait_time(self, amount: float, now: float) -> float:
        """Seconds until ``amount`` tokens are available (inf if never: larger than the
        bucket); with turns booked, until they and ``amount`` are covered (a caller that
        waits and retries, e.g. a 004 GET_KEY, comes after the booked callers, not in a
        busy loop against tokens they keep)."""
        self._refill(now)
        if amount > self.size:
            return float("inf")
        if amount <= self.tokens and self._room_for(amount, now):
            return 0.0
        if self.rate == 0:
            return float("inf")
        pending = sum(a for _, a in self.turns)
        return max((pending + amount - self.tokens) / self.rate, 1e-3)

    def retry_after(self, amount: float, now: float) -> float:
        """Seconds a refused caller should wait before asking for ``amount`` again: the
        :meth:`wait_time`, or for a request that can never fit (larger than the bucket, or a
        zero rate) the time to refill the whole bucket (at most a minute), so the answer is
        always finite."""
        wait = self.wait_time(amount, now)
        if wait != float("inf"):
            return wait
        return 60.0 if self.rate == 0 else min(60.0, self.size / self.rate)

    def booked_ahead(self, now: float) -> bool:
        """Whether a turn is booked (not yet taken, not forgotten) at ``now``."""
        self._refill(now)
        return bool(self.turns)

    def next_turn(self, amount: float, now: float, horizon: float = float("inf")) -> float:
        """Seconds from ``now`` at which a refused caller asking for ``amount`` should come
        back: when the bucket holds the tokens of every turn booked before it plus its own.
        The turn is booked (its tokens kept for it) if it is at most ``horizon`` s ahead;
        a caller held at most that long comes back earlier and asks again. Always finite
        (see :meth:`retry_after`)."""
        self._refill(now)
        if amount > self.size or self.rate == 0:
            return self.retry_after(amount, now)
        pending = sum(a for _, a in self.turns)
        wait = max(0.0, (pending + amount - self.tokens) / self.rate)
        # never before a turn already booked (their order is their callers' order)
        if self.turns:
            wait = max(wait, self.turns[-1][0] - now)
        if wait <= horizon:
            self.turns.append((now + wait, amount))
        return wait
