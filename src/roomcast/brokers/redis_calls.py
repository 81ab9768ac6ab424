"""CallBatcher: the independent Redis commands of concurrent callers, one pipeline a turn.

Why: a connect with its join made about ten separate round trips (the registration,
stream positions, presence and its announcement), each through redis-py's
per-command machinery (a pooled connection taken and given back, a timeout, packing,
a parse): that was 40% of the server's CPU at 150 connects a second (issue 12).
Queued here, the commands that concurrent connects and joins make in one event-loop
iteration go out as one write on one pooled connection and their replies are read
back in order, as the publish coalescer (coalesce.py) does for publishes: what is
left per command is packing its arguments and parsing its reply.

Semantics: the commands of a batch are independent (no transaction joins them); a
caller that queues several at once (`submit`, then await each) has them sent in that
order, in one batch. Each caller gets its own reply, or its own error: an error reply
is raised in its caller only, as redis-py would have raised it (a reply meaning
"Redis cannot take this now" as BrokerUnavailable, see `refused_for_now`). A script
call the server does not know (NOSCRIPT, after a restart or a failover) is sent again,
with the script loaded: after the batch's other commands, then, which a caller must not
rely on (none here does: what one caller queues together is independent).

Failures: a batch that cannot be sent, or gets no answer in time, fails every command
in it with BrokerUnavailable, as each command would have failed alone. Nothing goes
through here whose outcome must be told apart from "not written" (the sequenced
writes are the publish coalescer's, which does so).

Deadlines: Redis has the client's timeout (redis_timeout_ms) to answer a batch from
the moment it is written, and a command waits for at most the one batch ahead of it
(everything queued meanwhile goes in the next): so a command is answered, or fails
with BrokerUnavailable, within twice the timeout of being queued. Not within one: a
burst of 2,000 connects with their joins queues more work than one second of a busy
event loop reads back, and its joins were refused "Redis did not answer in time"
by a Redis that was answering (832 of 2,000 in `make bench`'s burst; issue 12).

Redis Cluster: no batching. redis-py's cluster client routes each command to the
slot's owner and follows MOVED and ASK itself; a batch would have to be split per
shard and lose that, so each command is sent on its own there, as before. But at
most half a node pool's connections at once (`CLUSTER_SHARE`): past its size redis-py's
cluster pool refuses ("Too many connections", MaxConnectionsError) rather than
waiting, and a storm of connects failed so; here the callers past it wait their
turn, within their deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, ResponseError

from ..errors import BrokerUnavailable
from .redis_client import call, refused_for_now, timeout_of
from .redis_internals import send_pipeline
from .redis_sharded import is_cluster, ready

#: Commands in one pipeline: enough to gather a whole storm's turn, few enough that
#: reading the replies does not hold the loop for long.
MAX_BATCH = 1000

#: The share of a cluster node pool's connections that commands sent here may hold
#: at once; the rest is the publish pipelines' and the heartbeat's.
CLUSTER_SHARE = 0.5

_EVALSHA = b"$7\r\nEVALSHA\r\n"


def _bulk(value: Any) -> bytes:
    data = value if isinstance(value, bytes) else str(value).encode()
    return b"$%d\r\n%s\r\n" % (len(data), data)


def _pack(args: Sequence[Any]) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(_bulk(a) for a in args)


def _pack_script(sha: str, keys: Sequence[str], args: Sequence[Any]) -> bytes:
    head = b"*%d\r\n" % (3 + len(keys) + len(args)) + _EVALSHA + _bulk(sha)
    return head + _bulk(len(keys)) + b"".join(_bulk(a) for a in (*keys, *args))


class _Request:
    __slots__ = ("args", "deadline", "future", "keys", "packed", "script")

    def __init__(
        self,
        packed: bytes,
        future: asyncio.Future[Any],
        deadline: float,
        script: AsyncScript | None = None,
        keys: Sequence[str] = (),
        args: Sequence[Any] = (),
    ) -> None:
        self.packed = packed
        self.future = future
        self.deadline = deadline  # loop time
        self.script = script  # for a script call: to load it on NOSCRIPT
        self.keys = keys
        self.args = args


def reply_error(error: ResponseError) -> Exception:
    """What a caller is given for an error reply: what `call` would have raised."""
    if refused_for_now(error):
        return BrokerUnavailable(f"Redis cannot take writes now: {error}")
    return error


class CallBatcher:
    """Batches a client's commands (see the module docstring); one per client."""

    def __init__(self, client: Any, *, timeout: float | None = None) -> None:
        self._redis: Any = client
        self._timeout = timeout_of(client) if timeout is None else timeout
        self._sharded = is_cluster(client)
        self._slots: asyncio.Semaphore | None = None
        if self._sharded:
            size = int(client.connection_kwargs.get("max_connections", 100) * CLUSTER_SHARE)
            self._slots = asyncio.Semaphore(max(1, size))
        self._pending: deque[_Request] = deque()
        self._writer: asyncio.Task[None] | None = None
        self.batches = 0  # pipelines sent (for tests and measurements)

    # queueing ----------------------------------------------------------------------

    def submit(self, *args: Any) -> asyncio.Future[Any]:
        """Queue one command; its future gets the reply (decoded as the client decodes)."""
        if self._sharded:
            return self._direct(lambda: self._redis.execute_command(*args))
        return self._queue(_Request(_pack(args), *self._future_and_deadline()))

    def submit_script(
        self, script: AsyncScript, keys: Sequence[str], args: Sequence[Any]
    ) -> asyncio.Future[Any]:
        """Queue one script call (EVALSHA, loaded on NOSCRIPT); its future gets the reply."""
        if self._sharded:
            return self._direct(lambda: script(keys=list(keys), args=list(args)))
        packed = _pack_script(script.sha, keys, args)
        future, deadline = self._future_and_deadline()
        return self._queue(_Request(packed, future, deadline, script, keys, args))

    async def command(self, *args: Any) -> Any:
        return await self.submit(*args)

    async def script(self, script: AsyncScript, keys: Sequence[str], args: Sequence[Any]) -> Any:
        return await self.submit_script(script, keys, args)

    def _future_and_deadline(self) -> tuple[asyncio.Future[Any], float]:
        loop = asyncio.get_running_loop()
        return loop.create_future(), loop.time() + self._timeout

    def _direct(self, make: Callable[[], Awaitable[Any]]) -> asyncio.Future[Any]:
        return asyncio.ensure_future(self._direct_call(make))

    async def _direct_call(self, make: Callable[[], Awaitable[Any]]) -> Any:
        deadline = asyncio.get_running_loop().time() + self._timeout
        # The slot map first: concurrent first commands of a cluster client that has
        # none yet race inside redis-py (a connection written to before it is open).
        await call(ready(self._redis), deadline=deadline)
        assert self._slots is not None
        try:
            async with asyncio.timeout_at(deadline):
                await self._slots.acquire()
        except TimeoutError:
            raise BrokerUnavailable("Redis did not answer in time") from None
        try:
            return await call(make(), deadline=deadline)
        finally:
            self._slots.release()

    def _queue(self, request: _Request) -> asyncio.Future[Any]:
        self._pending.append(request)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write(), name="roomcast.redis.calls")
        return request.future

    # writing -----------------------------------------------------------------------

    async def _write(self) -> None:
        batch: list[_Request] = []
        try:
            while self._pending:
                n = min(len(self._pending), MAX_BATCH)
                batch = [self._pending.popleft() for _ in range(n)]
                batch = [r for r in batch if not r.future.done()]  # callers gone
                if batch:
                    await self._send(batch)
                batch = []
        except asyncio.CancelledError:
            _fail(batch, BrokerUnavailable("the Redis client closed mid-call"))
            raise
        finally:
            self._writer = None

    async def _send(self, batch: list[_Request]) -> None:
        # The oldest command's deadline, or the timeout from now if that is later: the
        # time Redis has to answer counts from the write (see the module docstring).
        deadline = max(batch[0].deadline, asyncio.get_running_loop().time() + self._timeout)
        pool = self._redis.connection_pool
        try:
            replies = await call(
                send_pipeline(pool, b"".join(r.packed for r in batch), len(batch)),
                deadline=deadline,
            )
            missing = [i for i, reply in enumerate(replies) if _unknown_script(batch[i], reply)]
            if missing:
                # The server lost its script cache: those calls did nothing, and go again.
                for script in {id(batch[i].script): batch[i].script for i in missing}.values():
                    assert script is not None
                    await call(self._redis.script_load(script.script), deadline=deadline)
                again = [batch[i] for i in missing]
                payload = b"".join(r.packed for r in again)
                retried = await call(send_pipeline(pool, payload, len(again)), deadline=deadline)
                for i, reply in zip(missing, retried, strict=True):
                    replies[i] = reply
        except BrokerUnavailable as exc:
            _fail(batch, BrokerUnavailable(exc.message))
            return
        except Exception as exc:  # a failure must reach the callers, not strand them
            _fail(batch, BrokerUnavailable(f"Redis call failed: {exc!r}"))
            return
        self.batches += 1
        for request, reply in zip(batch, replies, strict=True):
            if request.future.done():
                continue
            if isinstance(reply, ResponseError):
                request.future.set_exception(reply_error(reply))
            else:
                request.future.set_result(reply)

    async def aclose(self) -> None:
        """Let the calls queued be answered (within their deadline), then stop the writer.

        Not final: the client itself still works after `aclose` (redis-py reconnects
        lazily), and so does this; a later call starts a new writer.
        """
        writer = self._writer
        if writer is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(writer), self._timeout)
        except TimeoutError:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        _fail(list(self._pending), BrokerUnavailable("the Redis client is closed"))
        self._pending.clear()


def _unknown_script(request: _Request, reply: Any) -> bool:
    return request.script is not None and isinstance(reply, NoScriptError)


def _fail(batch: Sequence[_Request], error: BrokerUnavailable) -> None:
    for request in batch:
        if not request.future.done():
            request.future.set_exception(BrokerUnavailable(error.message))


_shared: weakref.WeakKeyDictionary[Any, CallBatcher] = weakref.WeakKeyDictionary()


def shared_batcher(client: Any) -> CallBatcher:
    """The batcher of a client: the broker and the presence store share one, so their
    commands of one turn share a pipeline (or, in a cluster, one bound on connections)."""
    batcher = _shared.get(client)
    if batcher is None:
        batcher = _shared[client] = CallBatcher(client)
    return batcher


async def gather_all(*futures: asyncio.Future[Any]) -> list[Any]:
    """Await every future (none is left unretrieved), then raise the first error, if any."""
    results: list[Any] = []
    first: BaseException | None = None
    for future in futures:
        try:
            results.append(await future)
        except Exception as exc:
            results.append(None)
            first = first or exc
    if first is not None:
        raise first
    return results
