"""Housekeeping: one instance's periodic chores, each a method of the part it serves.

Every HOUSEKEEPING_SECONDS the chores run in order (heartbeat, lease expiry, reaping
dead instances, sweeping local state); a backend failure ends that round's chores
with a log line, and the next round tries again. Then the probes run: each (readiness,
the memory gauge) handles and logs its own failures, so they run every round.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import structlog

from .errors import RoomcastError

HOUSEKEEPING_SECONDS = 0.5

Chore = Callable[[], Awaitable[object]]


class Housekeeping:
    def __init__(
        self,
        chores: Sequence[Chore],
        probes: Sequence[Chore],
        log: structlog.stdlib.BoundLogger,
        period_seconds: float = HOUSEKEEPING_SECONDS,
    ) -> None:
        self._chores = tuple(chores)
        self._probes = tuple(probes)
        self._log = log
        self._period = period_seconds

    async def run(self) -> None:
        """Run the chores and probes every period; runs for the application's lifetime."""
        while True:
            await asyncio.sleep(self._period)  # the tick of a periodic task
            await self.round()
            raise_if_cancelling()

    async def round(self) -> None:
        try:
            for chore in self._chores:
                await chore()
        except RoomcastError as exc:
            raise_if_cancelling()
            self._log.warning("housekeeping.failed", code=exc.code, error=exc.message)
        for probe in self._probes:
            await probe()


def raise_if_cancelling() -> None:
    """Re-raise a cancellation that a library turned into another error.

    redis-py may report a cancelled read as a connection error; a loop that
    survives connection errors would then swallow its own cancellation and never
    end, and the application's shutdown would wait on it forever.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
