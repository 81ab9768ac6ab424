"""Token bucket: `rate` tokens a second, at most `burst` saved up.

Pure arithmetic over a caller-supplied clock, so tests drive time by hand and the
same bucket serves per-connection events and per-address connection attempts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(slots=True)
class TokenBucket:
    rate: float
    burst: float
    clock: Callable[[], float]
    tokens: float = field(init=False)
    updated: float = field(init=False)

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.tokens = float(self.burst)
        self.updated = self.clock()

    def _refill(self) -> None:
        now = self.clock()
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
        self.updated = now

    def take(self, cost: float = 1.0) -> bool:
        """Spend `cost` tokens if there are enough; True when allowed."""
        self._refill()
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False

    def retry_after(self, cost: float = 1.0) -> float:
        """Seconds until `cost` tokens will be there (0 when they already are)."""
        self._refill()
        missing = cost - self.tokens
        return 0.0 if missing <= 0 else missing / self.rate

    def is_full(self) -> bool:
        self._refill()
        return self.tokens >= self.burst


class BucketMap:
    """Buckets by key (a client address), dropping full ones so the map cannot grow unbounded."""

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float], max_keys: int = 100_000
    ):
        self._rate = rate
        self._burst = burst
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[str, TokenBucket] = {}

    def take(self, key: str) -> bool:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:
                self.prune()
            bucket = self._buckets[key] = TokenBucket(self._rate, self._burst, self._clock)
        return bucket.take()

    def prune(self) -> None:
        """Forget buckets that refilled: they hold no information."""
        for key in [k for k, b in self._buckets.items() if b.is_full()]:
            del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)
