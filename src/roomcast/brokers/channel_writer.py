"""ChannelWriter: the SUBSCRIBEs and UNSUBSCRIBEs asked for in one loop turn, as one command.

Why: each room that gets its first member on an instance subscribes to the room's
channel, and its last leaving unsubscribes. Concurrent connects and joins of new
rooms (a reconnect storm, rooms filling) made one command each on the pub/sub
connection, each through redis-py's command path; SUBSCRIBE and UNSUBSCRIBE take
any number of channels, so the requests that queue while one command is written go
out together in the next.

Order: requests are written in the order they were made; consecutive requests of
one kind share a command, so a subscribe and an unsubscribe are never reordered.
Each caller learns whether its command was written (the confirmation that delivery
is live is the listener's: RedisBroker.subscribe waits for it).

Redis Cluster: SSUBSCRIBE and SUNSUBSCRIBE go to the channel's shard, each channel
on its own (ShardedPubSub routes them), in order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from typing import Any

from ..errors import BrokerUnavailable
from .redis_client import call

_Request = tuple[bool, str, asyncio.Future[None]]  # (subscribe?, channel, written)


class ChannelWriter:
    def __init__(self, session: Callable[[], Any], *, timeout: float, sharded: bool) -> None:
        """`session`: the pub/sub session to write to now (None while there is none)."""
        self._session = session
        self._timeout = timeout
        self._sharded = sharded
        self._pending: deque[_Request] = deque()
        self._writer: asyncio.Task[None] | None = None

    def subscribe(self, channel: str) -> asyncio.Future[None]:
        return self._queue(True, channel)

    def unsubscribe(self, channel: str) -> asyncio.Future[None]:
        return self._queue(False, channel)

    def _queue(self, subscribe: bool, channel: str) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((subscribe, channel, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write(), name="roomcast.broker.channels")
        return future

    async def _write(self) -> None:
        run: list[_Request] = []
        try:
            while self._pending:
                kind = self._pending[0][0]
                run = []
                while self._pending and self._pending[0][0] == kind:
                    run.append(self._pending.popleft())
                await self._send(kind, run)
                run = []
        except asyncio.CancelledError:
            _settle(run, BrokerUnavailable("the broker closed mid-subscribe"))
            raise
        finally:
            self._writer = None

    async def _send(self, subscribe: bool, run: list[_Request]) -> None:
        session = self._session()
        error: BrokerUnavailable | None = None
        if session is None:
            error = BrokerUnavailable("not connected to Redis pub/sub")
        else:
            channels = [channel for _, channel, _ in run]
            try:
                await call(self._command(session, subscribe, channels), self._timeout)
            except BrokerUnavailable as exc:
                error = exc
        _settle(run, error)

    async def _command(self, session: Any, subscribe: bool, channels: list[str]) -> None:
        if not self._sharded:
            await (session.subscribe if subscribe else session.unsubscribe)(*channels)
            return
        for channel in channels:
            await (session.ssubscribe if subscribe else session.sunsubscribe)(channel)

    async def aclose(self) -> None:
        writer = self._writer
        if writer is not None:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        _settle(list(self._pending), BrokerUnavailable("the broker is closed"))
        self._pending.clear()


def _settle(run: list[_Request], error: BrokerUnavailable | None) -> None:
    for _, _, future in run:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(BrokerUnavailable(error.message))
