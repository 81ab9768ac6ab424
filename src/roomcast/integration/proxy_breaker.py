"""A circuit breaker for one proxy: stop asking a platform that keeps failing.

While the platform is down, every join or publish that needs it would wait the full
proxy timeout and then fail anyway; after `failures` consecutive failures the breaker
opens and callers fail at once (platform_unavailable) for `cooldown` seconds. Then
one trial call goes through (half-open): its success closes the breaker, its failure
opens it for another cool-down. Any success resets the count.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class CircuitBreaker:
    def __init__(
        self,
        failures: int,
        cooldown: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failures < 1 or cooldown <= 0:
            raise ValueError("a breaker needs failures >= 1 and a positive cool-down")
        self._threshold = failures
        self._cooldown = cooldown
        self._clock = clock
        self._consecutive = 0
        self._open_until = 0.0
        self._trial = False  # a half-open trial call is in flight

    @property
    def is_open(self) -> bool:
        """Whether callers are being turned away right now."""
        return self._consecutive >= self._threshold and (
            self._clock() < self._open_until or self._trial
        )

    def allow(self) -> bool:
        """May a call go out now? (Past the cool-down, the first caller is the trial.)"""
        if self._consecutive < self._threshold:
            return True
        if self._clock() < self._open_until or self._trial:
            return False
        self._trial = True
        return True

    def succeeded(self) -> None:
        self._consecutive = 0
        self._trial = False

    def failed(self) -> None:
        self._consecutive += 1
        self._trial = False
        if self._consecutive >= self._threshold:
            self._open_until = self._clock() + self._cooldown

    def abandoned(self) -> None:
        """A call ended with no verdict (cancelled): a trial may go out again."""
        self._trial = False
