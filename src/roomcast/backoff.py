"""Reconnect delays: exponential growth with full jitter, capped, reset once stable.

The one backoff policy: the client SDK's reconnects and the server's pub/sub
resubscribe loop (brokers/redis.py) both use it. It lives outside both so that the
broker does not import the SDK. Full jitter (a uniformly random delay between 0 and
the exponential bound) spreads the reconnects of many clients that lost the same
server, instead of having them all retry in step.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(slots=True)
class Backoff:
    initial_delay: float = 0.5
    max_delay: float = 30.0
    multiplier: float = 2.0
    random: Callable[[], float] = field(default=random.random)
    attempt: int = 0

    def __post_init__(self) -> None:
        if self.initial_delay <= 0 or self.max_delay < self.initial_delay or self.multiplier < 1:
            raise ValueError("need 0 < initial_delay <= max_delay and multiplier >= 1")

    def bound(self, attempt: int) -> float:
        """The largest delay of the given attempt (0-based)."""
        # Cap the exponent first: multiplier ** attempt overflows long before the cap.
        if attempt > 64:
            return self.max_delay
        return min(self.max_delay, self.initial_delay * self.multiplier**attempt)

    def next(self) -> float:
        """The delay before the next attempt, in seconds."""
        delay = self.random() * self.bound(self.attempt)
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0
