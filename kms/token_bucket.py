"""Token bucket per session: bucket size = burst (bits), token rate = agreed key rate (bit/s).

Pure: the caller passes the current time (seconds, monotonic). Accepted volume over any
interval t is at most ``rate·t + size``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TokenBucket:
    size: float
    rate: float
    tokens: float
    stamp: float

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
