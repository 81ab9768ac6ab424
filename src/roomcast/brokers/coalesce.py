"""PublishCoalescer: single `publish()` calls made close together, written as one batch.

Why: over Redis, one round trip per event caps a publisher at a few thousand
events per second, and concurrent callers each held a pooled connection (past the
pool's 100 they failed). The coalescer queues each call and one task, owned by the
coalescer, writes whatever has queued up with the broker's `publish_many`: calls
made in the same event-loop iteration, or while the previous batch was being
written, go out together. A lone call is written on the next loop iteration, with
no timer, so it waits only for the batch before it.

Guarantees: batches are written one at a time in queue order, so calls into one
room are sequenced in the order they were made; each call gets its own outcome
or error, as `publish` would have raised it.

Overflow: at most `max_pending` calls wait; beyond that `publish` raises
BrokerUnavailable (temporary) at once, as it would if Redis were too slow.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

from ..errors import BrokerUnavailable, RoomcastError
from .base import PublishCommand, PublishOutcome, PublishResult

PublishMany = Callable[[Sequence[PublishCommand]], Awaitable[list[PublishResult]]]
_Waiter = tuple[PublishCommand, "asyncio.Future[PublishOutcome]"]


class PublishCoalescer:
    def __init__(
        self, publish_many: PublishMany, *, max_batch: int = 1000, max_pending: int = 50_000
    ) -> None:
        self._publish_many = publish_many
        self._max_batch = max_batch
        self._max_pending = max_pending
        self._pending: deque[_Waiter] = deque()  # calls not yet handed to publish_many
        self._writer: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def publish(self, command: PublishCommand) -> PublishOutcome:
        """Publish one event in the next batch; raises what publish_many gave for it."""
        if self._closed:
            raise BrokerUnavailable("the broker is closed")
        if len(self._pending) >= self._max_pending:
            raise BrokerUnavailable(f"{len(self._pending)} publishes already waiting for Redis")
        future: asyncio.Future[PublishOutcome] = asyncio.get_running_loop().create_future()
        self._pending.append((command, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write(), name="roomcast.broker.publisher")
        return await future

    async def _write(self) -> None:
        batch: list[_Waiter] = []
        try:
            while self._pending:
                count = min(len(self._pending), self._max_batch)
                batch = [self._pending.popleft() for _ in range(count)]
                try:
                    results = await self._publish_many([command for command, _ in batch])
                except Exception as exc:  # a failure must reach the callers, not strand them
                    results = [_as_error(exc)] * len(batch)
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():
                        continue  # the caller stopped waiting (cancelled)
                    if isinstance(result, PublishOutcome):
                        future.set_result(result)
                    else:
                        future.set_exception(result)
                batch = []
        except asyncio.CancelledError:
            for _, future in batch:
                if not future.done():
                    future.set_exception(BrokerUnavailable("the broker closed mid-publish"))
            raise
        finally:
            self._writer = None

    async def aclose(self) -> None:
        """Stop writing; calls still waiting fail with BrokerUnavailable."""
        self._closed = True
        writer = self._writer
        if writer is not None:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        while self._pending:
            _, future = self._pending.popleft()
            if not future.done():
                future.set_exception(BrokerUnavailable("the broker is closed"))


def _as_error(exc: Exception) -> RoomcastError:
    if isinstance(exc, RoomcastError):
        return exc
    error = RoomcastError(f"publishing failed: {exc!r}")
    error.__cause__ = exc
    return error
