"""Token bucket per session: bucket size = burst (bits), token rate = agreed key rate (bit/s).

Pure: the caller passes the current time (seconds, monotonic). Accepted volume over any
interval t is at most ``rate·t + size``.

Refused callers are given *turns* (:meth:`TokenBucket.next_turn`): the first is told to come
back when the tokens for its request are due, the next one request later, and so on, so that
a session flooding from several connections comes back one connection at a time, each when
its tokens are there, instead of all at once for the same tokens (all but one refused again).
A caller short of tokens by at most :data:`SHORT_WAIT_S` waits for them instead of being
refused (docs/reliability.md, item 7).
"""

from __future__ import annotations

from dataclasses import dataclass

#: a request whose tokens are due within this many seconds waits for them (no refusal)
SHORT_WAIT_S = 0.05


@dataclass
class TokenBucket:
    size: float
    rate: float
    tokens: float
    stamp: float
    #: time (same clock) of the last turn handed to a refused caller
    booked: float = 0.0

    @classmethod
    def full(cls, size: float, rate: float, now: float) -> TokenBucket:
        if size <= 0 or rate < 0:
            raise ValueError("bucket size must be > 0 and rate >= 0")
        return cls(size=size, rate=rate, tokens=size, stamp=now)

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.size, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def try_consume(self, amount: float, now: float) -> bool:
        """Take ``amount`` tokens if available now; False (nothing taken) otherwise."""
        self._refill(now)
        if amount <= self.tokens:
            self.tokens -= amount
            return True
        return False

    def wait_time(self, amount: float, now: float) -> float:
        """Seconds until ``amount`` tokens are available (inf if never: larger than the bucket)."""
        self._refill(now)
        if amount > self.size:
            return float("inf")
        if amount <= self.tokens:
            return 0.0
        return float("inf") if self.rate == 0 else (amount - self.tokens) / self.rate

    def retry_after(self, amount: float, now: float) -> float:
        """Seconds a refused caller should wait before asking for ``amount`` again: the
        :meth:`wait_time`, or for a request that can never fit (larger than the bucket, or a
        zero rate) the time to refill the whole bucket (at most a minute), so the answer is
        always finite."""
        wait = self.wait_time(amount, now)
        if wait != float("inf"):
            return wait
        return 60.0 if self.rate == 0 else min(60.0, self.size / self.rate)

    def next_turn(self, amount: float, now: float, horizon: float = float("inf")) -> float:
        """Seconds from ``now`` at which a refused caller asking for ``amount`` should come
        back: when its tokens are due, but no earlier than ``amount / rate`` after the turn
        given to the caller before it (which will have taken its own tokens by then). Turns
        are booked at most ``horizon`` s ahead (callers held at most that long come back
        earlier and would book a second turn): past it, booking starts again from the
        earliest turn. Always finite (see :meth:`retry_after`)."""
        ready = now + self.retry_after(amount, now)
        if self.rate > 0 and self.booked > now:
            after_last = max(ready, self.booked + amount / self.rate)
            if after_last - now <= horizon:
                ready = after_last
        self.booked = ready
        return ready - now
