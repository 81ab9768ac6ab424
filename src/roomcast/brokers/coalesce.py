"""PublishCoalescer: publishes made close together, written as one batch.

Why: over Redis, one round trip per event caps a publisher at a few thousand
events per second, and concurrent callers each held a pooled connection (past the
pool's 100 they failed). The coalescer queues each call (`publish`, or a whole
`publish_many`) and one task, owned by the coalescer, writes whatever has queued
up with the broker's own batch writer: calls made in the same event-loop
iteration, or while the previous batch was being written, go out together, so
concurrent batches (HTTP requests in flight, worker tasks) also share script
calls per room. A lone call is written on the next loop iteration, with no
timer, so it waits only for the batch before it.

Guarantees: batches are written one at a time in queue order, so calls into one
room are sequenced in the order they were made; each call gets its own outcome
or error, as `publish` would have raised it.

Overflow: at most `max_pending` events wait; beyond that a call fails at once
with BrokerUnavailable (temporary), as it would if Redis were too slow.

Deadlines: with a `timeout`, each call gets an answer within that many seconds of
being made, whatever was queued before it. A batch is written with the deadline
of its oldest call (the batch writer takes `deadline=`, a loop time), so a call
that waited behind a stalled batch is not then given a full timeout of its own:
a publish answers within `timeout` plus scheduling, never twice that. Without
one, the writer is called with the commands only, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ..errors import RoomcastError
from .base import PublishCommand, PublishOutcome, PublishResult, unavailable

# (commands) or, for a coalescer with a timeout, (commands, deadline=loop time)
PublishMany = Callable[..., Awaitable[list[PublishResult]]]


class _Request:
    """One caller's events and where their results go."""

    __slots__ = ("commands", "deadline", "future")

    def __init__(
        self, commands: Sequence[PublishCommand], future: asyncio.Future[Any], deadline: float
    ) -> None:
        self.commands = commands
        self.future: asyncio.Future[list[PublishResult]] = future
        self.deadline = deadline  # loop time; inf without a timeout


class PublishCoalescer:
    def __init__(
        self,
        publish_many: PublishMany,
        *,
        max_batch: int = 5000,
        max_pending: int = 50_000,
        timeout: float | None = None,
    ) -> None:
        self._publish_many = publish_many
        self._timeout = timeout
        self._max_batch = max_batch
        self._max_pending = max_pending
        self._pending: deque[_Request] = deque()  # requests not yet handed to publish_many
        self._pending_events = 0
        self._writer: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def pending(self) -> int:
        """Events waiting for the next batch."""
        return self._pending_events

    async def publish(self, command: PublishCommand) -> PublishOutcome:
        """Publish one event in the next batch; raises what publish_many gave for it."""
        (result,) = await self.publish_many((command,))
        if isinstance(result, PublishOutcome):
            return result
        raise result

    async def publish_many(self, commands: Sequence[PublishCommand]) -> list[PublishResult]:
        """Publish events in the next batch, in order; one result (or error) each."""
        if not commands:
            return []
        if self._closed:
            return unavailable(len(commands), "the broker is closed")
        if self._pending_events + len(commands) > self._max_pending:
            waiting = self._pending_events
            return unavailable(len(commands), f"{waiting} publishes already waiting for Redis")
        loop = asyncio.get_running_loop()
        deadline = math.inf if self._timeout is None else loop.time() + self._timeout
        request = _Request(commands, loop.create_future(), deadline)
        self._pending.append(request)
        self._pending_events += len(commands)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write(), name="roomcast.broker.publisher")
        return await request.future

    def _next_batch(self) -> list[_Request]:
        """Queued requests, in order, up to max_batch events (always at least one)."""
        batch = [self._pending.popleft()]
        events = len(batch[0].commands)
        while self._pending and events + len(self._pending[0].commands) <= self._max_batch:
            request = self._pending.popleft()
            batch.append(request)
            events += len(request.commands)
        self._pending_events -= events
        return batch

    async def _write(self) -> None:
        batch: list[_Request] = []
        try:
            while self._pending:
                batch = self._next_batch()
                commands = [c for request in batch for c in request.commands]
                try:
                    if self._timeout is None:
                        results = await self._publish_many(commands)
                    else:  # the oldest call's deadline: queued first, first in the batch
                        results = await self._publish_many(commands, deadline=batch[0].deadline)
                except Exception as exc:  # a failure must reach the callers, not strand them
                    results = [_as_error(exc)] * len(commands)
                start = 0
                for request in batch:
                    end = start + len(request.commands)
                    if not request.future.done():  # else the caller stopped waiting
                        request.future.set_result(results[start:end])
                    start = end
                batch = []
        except asyncio.CancelledError:
            for request in batch:
                if not request.future.done():
                    request.future.set_result(
                        unavailable(len(request.commands), "the broker closed mid-publish")
                    )
            raise
        finally:
            self._writer = None

    async def aclose(self) -> None:
        """Stop writing; calls still waiting get BrokerUnavailable."""
        self._closed = True
        writer = self._writer
        if writer is not None:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        while self._pending:
            request = self._pending.popleft()
            if not request.future.done():
                request.future.set_result(
                    unavailable(len(request.commands), "the broker is closed")
                )
        self._pending_events = 0


def _as_error(exc: Exception) -> RoomcastError:
    if isinstance(exc, RoomcastError):
        return exc
    error = RoomcastError(f"publishing failed: {exc!r}")
    error.__cause__ = exc
    return error
