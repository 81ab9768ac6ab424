"""The Redis memory gauges, refreshed from the housekeeping task once per period.

The broker does the cluster-wide part (one instance measures per period, every
instance reads the same figure: brokers/redis_memory.py); this keeps the gauges of
this instance in step with it, off the hot path, and never lets a failure escape
into the housekeeping loop that calls it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Protocol

from ..domain import MemoryUsage
from ..errors import RoomcastError
from .logging import get_logger
from .metrics import Metrics

MEMORY_REFRESH_SECONDS = 10.0


class _MeasuresMemory(Protocol):
    async def memory_usage(self, refresh_seconds: float) -> MemoryUsage | None: ...


class RedisMemoryGauge:
    """Sets roomcast_redis_used_memory_bytes / _maxmemory_bytes; NaN while unknown."""

    def __init__(
        self,
        broker: _MeasuresMemory,
        metrics: Metrics,
        *,
        period_seconds: float = MEMORY_REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._broker = broker
        self._metrics = metrics
        # Read at every tick, so a test may shorten it on a running application.
        self.period_seconds = period_seconds
        self._clock = clock
        self._refreshed_at = -math.inf
        self._log = get_logger(component="metrics")

    async def tick(self) -> None:
        """Refresh the gauges if a period has passed since the last refresh.

        Never raises a RoomcastError: a figure that cannot be read is logged and
        exported as NaN until the next refresh succeeds.
        """
        now = self._clock()
        if now - self._refreshed_at < self.period_seconds:
            return
        self._refreshed_at = now
        try:
            usage = await self._broker.memory_usage(self.period_seconds)
        except RoomcastError as exc:
            self._log.warning("metrics.redis_memory_failed", code=exc.code, error=exc.message)
            usage = None
        self._metrics.set_redis_memory(usage)
