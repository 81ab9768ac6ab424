"""Engine.IO heartbeats from one timer per process: a wheel of time buckets.

Each session sits in exactly one bucket: the tick at which it is next due. When due,
a session that is not waiting for a pong is pinged and moves to the bucket
`ping_timeout` later; one still waiting when that bucket comes is expired. A pong
moves the session to the bucket `ping_interval` after its ping. A tick touches only
the sessions due in it, and the single `call_at` chain stops while the wheel is
empty, so a process with no connection has no timer at all.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

from .session import Session

#: The coarsest tick; shorter intervals (tests) tick at a quarter of the shorter one.
MAX_RESOLUTION = 1.0
MIN_RESOLUTION = 0.01


class Heartbeat:
    """Pings every session each `interval` seconds; expires one whose pong is late."""

    def __init__(
        self,
        interval: float,
        timeout: float,
        *,
        ping: Callable[[Session], None],
        expire: Callable[[Session], None],
    ) -> None:
        self._res = max(MIN_RESOLUTION, min(MAX_RESOLUTION, interval / 4, timeout / 4))
        self._interval_ticks = max(1, round(interval / self._res))
        self._timeout_ticks = max(1, math.ceil(timeout / self._res))
        self._ping = ping
        self._expire = expire
        self._buckets: dict[int, set[Session]] = {}
        self._count = 0
        self._due = 0  # the first tick not processed yet
        self._timer: asyncio.TimerHandle | None = None
        self._ticking = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def __len__(self) -> int:
        """Sessions in the wheel."""
        return self._count

    @property
    def running(self) -> bool:
        """Whether the timer chain is scheduled."""
        return self._timer is not None

    def start(self, session: Session) -> None:
        """First ping `interval` from now."""
        session.hb_waiting = False
        self._schedule(session, self._now() + self._interval_ticks)

    def pong(self, session: Session) -> None:
        if not session.hb_waiting or session.hb_key is None:
            return  # an unasked pong, or a session no longer in the wheel
        session.hb_waiting = False
        self._schedule(session, session.hb_ping_key + self._interval_ticks)

    def cancel(self, session: Session) -> None:
        key = session.hb_key
        if key is None:
            return
        session.hb_key = None
        bucket = self._buckets.get(key)
        if bucket is not None and session in bucket:
            bucket.discard(session)
            self._count -= 1
            if not bucket:
                del self._buckets[key]
        if not self._count:
            self._stop()

    def close(self) -> None:
        """Forget every session and stop the timer."""
        for bucket in self._buckets.values():
            for session in bucket:
                session.hb_key = None
        self._buckets.clear()
        self._count = 0
        self._stop()

    def _now(self) -> int:
        loop = self._loop
        if loop is None or loop.is_closed():
            loop = self._loop = asyncio.get_running_loop()
        return int(loop.time() / self._res)

    def _schedule(self, session: Session, key: int) -> None:
        if session.hb_key is not None:
            self.cancel(session)
        idle = self._timer is None and not self._ticking
        if idle:
            self._due = self._now() + 1
        key = max(key, self._due)
        session.hb_key = key
        bucket = self._buckets.get(key)
        if bucket is None:
            self._buckets[key] = {session}
        else:
            bucket.add(session)
        self._count += 1
        if idle:
            self._arm()

    def _arm(self) -> None:
        assert self._loop is not None
        self._timer = self._loop.call_at(self._due * self._res, self._tick)

    def _stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        self._timer = None
        self._ticking = True
        try:
            self._run_due()
        finally:
            self._ticking = False
        if self._count and self._timer is None:
            self._arm()

    def _run_due(self) -> None:
        # The timer may fire a hair before its tick's start: its tick is due all the same.
        now = max(self._now(), self._due)
        while self._due <= now:
            key = self._due
            self._due += 1
            bucket = self._buckets.pop(key, None)
            if not bucket:
                continue
            self._count -= len(bucket)
            for session in bucket:
                if session.hb_key != key:
                    continue  # cancelled by an earlier one's expiry
                session.hb_key = None
                if session.hb_waiting:
                    self._expire(session)
                else:
                    session.hb_waiting = True
                    session.hb_ping_key = key
                    self._schedule(session, key + self._timeout_ticks)
                    self._ping(session)
