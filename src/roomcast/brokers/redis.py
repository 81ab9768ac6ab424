"""RedisBroker: the Broker role over Redis, for any number of instances.

Each room operation is one Lua script (sequence.lua + the operation), so
idempotency, guards, sequencing, history and PUBLISH happen in one atomic step.
Publishes are batched: one script call sequences many events of a room, calls for
different rooms share a pipeline, and single `publish` calls made close together
are gathered into such batches (coalesce.py, redis_batch.py).
One pub/sub connection per instance listens to the control channel and to the
channel of each room with a local member; a listener task reads it, and after a
reconnect it resubscribes at once and fills any gap from history, so local
members see every publication exactly once, in seq order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Iterator, Sequence
from importlib.resources import files
from typing import Any

from redis.commands.core import AsyncScript
from redis.exceptions import AskError, NoScriptError, RedisError, ResponseError

from ..backoff import Backoff
from ..domain import JSON, HistoryPage, Lease, Member, MemoryUsage, Publication, StreamPosition
from ..errors import BrokerUnavailable, OutcomeUnknown, RoomcastError
from ..history.recovery import history_reaches
from ..ids import new_epoch, new_event_id
from ..observability.logging import get_logger
from .base import (
    BrokerSink,
    LockOutcome,
    PublishCommand,
    PublishOutcome,
    PublishResult,
    unavailable,
)
from .channel_writer import ChannelWriter
from .coalesce import PublishCoalescer
from .failover_settle import Settled, settle
from .redis_batch import JournalKeys, RoomCall, guard_error, pack, pipelines, plan
from .redis_calls import shared_batcher
from .redis_client import (
    OPERATION_TIMEOUT,
    SendWatch,
    call,
    disconnect,
    refused_for_now,
    timeout_of,
)
from .redis_internals import CountingPubSub as _CountingPubSub
from .redis_internals import drop_master_connections, send_pipeline, sentinel_clients
from .redis_keys import KeyLayout
from .redis_memory import shared_memory_usage
from .redis_sharded import NodePool, ShardedPubSub, is_cluster, owner, ready, refresh
from .sentinel_watch import Switch, watch

#: The pub/sub listener's delays between attempts: 50 ms growing to 1 s, with full
#: jitter, so the instances that lost one Redis do not come back in step.
RESUBSCRIBE_INITIAL_SECONDS = 0.05
RESUBSCRIBE_MAX_SECONDS = 1.0
BINDING_TTL_SECONDS = 30 * 86400
SETTLE_TIMEOUT = 3.0  # fencing the old master and settling its rooms, after a failover
SETTLE_WAIT = 1.0  # the longest a call waits for that


def _script(name: str, sharded: bool = False) -> str:
    """sequence.lua and the operation; `sharded`: the Redis Cluster variant, whose
    scripts SPUBLISH to the room's channel (sharded pub/sub, redis_sharded.py)."""
    lua = files("roomcast.brokers").joinpath("lua")
    text = lua.joinpath("sequence.lua").read_text() + "\n" + lua.joinpath(name).read_text()
    return text.replace("redis.call('PUBLISH',", "redis.call('SPUBLISH',") if sharded else text


#: How long each step of `RedisBroker.aclose` may take before it is left behind.
STOP_SECONDS = 5.0


class RedisBroker:
    def __init__(
        self,
        client: Any,
        *,
        prefix: str,
        history_size: int,
        history_ttl_seconds: int,
        idempotency_ttl_seconds: int = 600,
    ) -> None:
        # redis-py's return types are unions of bytes and str whatever the decoding;
        # with decode_responses=True every reply here is str, so the client is Any.
        self._redis: Any = client
        self.keys = KeyLayout(prefix)
        self._history_size = history_size
        self._ttl = history_ttl_seconds
        self._idem_ttl = idempotency_ttl_seconds
        self._timeout = timeout_of(client)  # redis_timeout_ms: every call's deadline
        self._sharded = is_cluster(client)  # Redis Cluster: sharded pub/sub, per-shard pipelines
        self._refreshing: asyncio.Task[None] | None = None  # re-reading its slot map
        sharded = self._sharded
        self._batch: AsyncScript = client.register_script(_script("publish_batch.lua", sharded))
        self._coalescer = PublishCoalescer(self._write_batch, timeout=self._timeout)
        # The other calls of the hot path (positions, history, transients, bindings),
        # with the presence store's, one pipeline per loop turn (redis_calls.py).
        self._calls = shared_batcher(client)
        self._journal: JournalKeys | None = None  # webhooks: where client events go
        self._lease: AsyncScript = client.register_script(_script("lease.lua", sharded))
        self._position: AsyncScript = client.register_script(_script("position.lua", sharded))
        self._history: AsyncScript = client.register_script(_script("history.lua", sharded))
        self._sink: BrokerSink | None = None
        self._rooms: set[str] = set()  # rooms this instance listens to
        self._last: dict[str, tuple[str, int]] = {}  # room -> last (epoch, seq) delivered
        self._behind: set[str] = set()  # rooms whose catch-up Redis refused: tried again
        self._pubsub: Any = None
        self._confirm: dict[str, asyncio.Future[None]] = {}
        # SUBSCRIBE and UNSUBSCRIBE of one turn's joins and leaves, one command each.
        self._channels = ChannelWriter(
            lambda: self._pubsub, timeout=self._timeout, sharded=self._sharded
        )
        self._connected = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None
        # Sentinel mode: the task following +switch-master (sentinel_watch.py), and
        # the gate that holds Redis calls while a failover is being settled.
        self._settle: AsyncScript = client.register_script(_script("settle.lua", sharded))
        self._watcher: asyncio.Task[None] | None = None
        self._settled = asyncio.Event()
        self._settled.set()
        self._listener_moves = False  # the listener is to reconnect to the new master
        self.switched = asyncio.Event()  # set when a failover has been followed
        self.last_settled: Settled | None = None
        self._log = get_logger(component="broker")
        # Pub/sub sessions opened (the first included): any after the first is a
        # resubscription, which catches up from history.
        self.sessions = 0

    # lifecycle ---------------------------------------------------------------------

    def attach(self, sink: BrokerSink) -> None:
        self._sink = sink

    async def start(self) -> None:
        self._listener = asyncio.create_task(self._listen(), name="roomcast.broker.listener")
        sentinels = sentinel_clients(self._redis)
        if sentinels:
            name = self._redis.connection_pool.service_name
            self._watcher = asyncio.create_task(
                watch(sentinels, name, self._on_switch), name="roomcast.broker.sentinel_watch"
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), OPERATION_TIMEOUT)

    async def aclose(self) -> None:
        """Stop every task and connection, each within STOP_SECONDS.

        A step that does not end in time is logged and left behind rather than
        holding the shutdown: over Redis Cluster a teardown once waited forever
        (test_control_contract[cluster], about one fresh-clone run in three; where it
        waited is not yet known).
        """
        await self._bounded(self._coalescer.aclose(), "coalescer")
        await self._bounded(self._calls.aclose(), "calls")
        await self._bounded(self._channels.aclose(), "channels")
        for name in ("_refreshing", "_watcher", "_listener"):
            task = getattr(self, name)
            if task is not None:
                task.cancel()
                done, _ = await asyncio.wait({task}, timeout=STOP_SECONDS)
                if not done:
                    self._log.warning("broker.stop_stuck", step=name)
                setattr(self, name, None)
        await self._bounded(disconnect(self._redis), "disconnect")

    async def _bounded(self, step: Awaitable[Any], name: str) -> None:
        try:
            await asyncio.wait_for(step, STOP_SECONDS)
        except TimeoutError:
            self._log.warning("broker.stop_stuck", step=name)

    async def ping(self) -> None:
        await self._call(self._redis.ping())

    def sweep(self) -> int:
        return 0  # Redis expires keys itself

    async def _call(self, awaitable: Awaitable[Any]) -> Any:
        """`call` within redis_timeout_ms: no await toward Redis waits longer."""
        return await call(awaitable, self._timeout)

    @property
    def listening(self) -> bool:
        """True while the pub/sub listener is connected."""
        return self._pubsub is not None

    # calls -------------------------------------------------------------------------

    def _room_keys(self, room: str) -> list[str]:
        k = self.keys.room(room)
        return [k.meta, k.hist, k.channel]

    def _prelude(self, now: int | None = None) -> list[Any]:
        now = int(time.time() * 1000) if now is None else now
        return [new_epoch(), now, self._history_size, self._ttl]

    # publishing --------------------------------------------------------------------

    def journal_client_events(self, journal: JournalKeys) -> None:
        """Journal client events (ClientCommand) for webhooks in the step that sequences
        them, so that the journal's order is each room's seq order (SPEC 10)."""
        self._journal = journal

    async def publish(self, command: PublishCommand) -> PublishOutcome:
        # Calls made close together share one round trip (see coalesce.py).
        return await self._coalescer.publish(command)

    async def publish_many(self, commands: Sequence[PublishCommand]) -> list[PublishResult]:
        return await self._coalescer.publish_many(commands)

    async def _write_batch(
        self, commands: Sequence[PublishCommand], deadline: float | None = None
    ) -> list[PublishResult]:
        """Each room's events in one script call, the calls pipelined (redis_batch.py).

        All within `deadline` (a loop time; default redis_timeout_ms from now). A
        pipeline that fails before its connection was handed out wrote nothing:
        its events, and those of the pipelines after it (never sent), are
        BrokerUnavailable. One that fails after may have been applied by a stalled
        Redis later: its events are OutcomeUnknown.
        """
        loop = asyncio.get_running_loop()
        if deadline is None:
            deadline = loop.time() + self._timeout
        if not self._settled.is_set():
            await self._wait_settled(deadline - loop.time())
        if self._sharded:
            await call(ready(self._redis), deadline=deadline)  # the slot map, on first use
        now = int(time.time() * 1000)
        results: list[PublishResult | None] = [None] * len(commands)
        failures: dict[str, BrokerUnavailable] = {}  # per shard (one, but in a cluster)
        moved = False
        calls = plan(self.keys, commands, now, self._idem_ttl, self._journal)
        for shard, pool, group in self._by_shard(pipelines(calls)):
            outcomes: list[PublishResult] | None = None
            failure = failures.get(shard)
            if failure is None and pool is None:
                failure = failures[shard] = BrokerUnavailable("no shard serves the room now")
            if failure is None and loop.time() >= deadline:
                failure = failures[shard] = BrokerUnavailable("Redis did not answer in time")
            if failure is None:
                sent = SendWatch(pool)
                try:
                    replies = await call(
                        self._run_pipeline(group, now, sent), deadline=deadline, watch=sent
                    )
                except OutcomeUnknown as exc:
                    # These may be written; the pipelines after them certainly are not.
                    outcomes = [OutcomeUnknown(exc.message) for c in group for _ in c.slots]
                    failure = BrokerUnavailable("Redis did not answer an earlier write in time")
                    failures[shard] = failure
                except BrokerUnavailable as exc:
                    failure = failures[shard] = exc  # the rest would wait out the same deadline
            start = 0
            for n, room_call in enumerate(group):
                if outcomes is not None:
                    room_outcomes = outcomes[start : start + len(room_call.slots)]
                    start += len(room_call.slots)
                elif failure is not None:
                    room_outcomes = unavailable(len(room_call.slots), failure.message)
                elif isinstance(replies[n], Exception):
                    moved = moved or isinstance(replies[n], AskError)  # MOVED too
                    room_outcomes = self._call_failed(room_call, replies[n])
                else:
                    room_outcomes = room_call.read(replies[n], commands, now)
                for slot, outcome in zip(room_call.slots, room_outcomes, strict=True):
                    results[slot] = outcome
        if moved or (self._sharded and failures):
            self._refresh_soon()  # the next batch goes to the slots' new owners
        return [r for r in results if r is not None]

    def _by_shard(
        self, groups: Iterator[list[RoomCall]]
    ) -> Iterator[tuple[str, Any, list[RoomCall]]]:
        """Each pipeline as (shard, pool, calls); in a cluster, split by the rooms' shards."""
        if not self._sharded:
            for group in groups:
                yield "", self._redis.connection_pool, group
            return
        for group in groups:
            split: dict[str, list[RoomCall]] = {}
            nodes: dict[str, Any] = {}
            for room_call in group:
                try:
                    node = owner(self._redis, self.keys.room(room_call.room).meta)
                except LookupError:  # the slot map has no primary for it now
                    split.setdefault("", []).append(room_call)
                    continue
                nodes[node.name] = node
                split.setdefault(node.name, []).append(room_call)
            for name, calls in split.items():
                yield name, NodePool(nodes[name]) if name else None, calls

    def _refresh_soon(self) -> None:
        """Re-read the cluster's slot map in the background (one refresh at a time)."""
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.create_task(
                refresh(self._redis), name="roomcast.broker.slot_map"
            )

    async def _run_pipeline(self, group: list[RoomCall], now: int, pool: Any) -> list[Any]:
        prelude = self._prelude(now)
        replies = await self._pipeline(group, prelude, pool)
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:
            # The server lost its script cache (a restart, a failover): the refused
            # calls did nothing, so they are sent again, in order, once it is loaded.
            await self._redis.script_load(self._batch.script)  # a cluster: every primary
            again = await self._pipeline([group[i] for i in missing], prelude, pool)
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
        return replies

    async def _pipeline(self, group: list[RoomCall], prelude: list[Any], pool: Any) -> list[Any]:
        """Send the calls in one write on one pooled connection; a reply each, in order.

        A connection that a failover or restart closed before any reply came is
        reconnected and the calls sent once more (redis_internals.py, R1-R3); a
        failure after that is the caller's BrokerUnavailable. `pool` is the client's
        pool or a SendWatch over it.
        """
        payload = pack(group, self._batch.sha, prelude)
        return await send_pipeline(pool, payload, len(group))

    def _call_failed(self, room_call: RoomCall, error: Exception) -> list[PublishResult]:
        message = str(error)
        if refused_for_now(error) or not isinstance(error, ResponseError):
            return unavailable(len(room_call.slots), f"Redis cannot take writes now: {message}")
        self._log.error("broker.publish_failed", room=room_call.room, error=message)
        return [RoomcastError(f"publishing failed: {message}") for _ in room_call.slots]

    async def position(self, room: str) -> StreamPosition:
        if not self._settled.is_set():
            await self._wait_settled(self._timeout)
        epoch, seq = await self._calls.script(
            self._position, self._room_keys(room), self._prelude()
        )
        return StreamPosition(epoch, int(seq))

    async def history(self, room: str, since_seq: int, limit: int) -> HistoryPage:
        if not self._settled.is_set():
            await self._wait_settled(self._timeout)
        args = [*self._prelude(), since_seq, limit]
        result = await self._calls.script(self._history, self._room_keys(room), args)
        epoch, head, oldest = result[0], int(result[1]), int(result[2])
        events = tuple(Publication.from_wire(e) for e in result[3:])
        if since_seq >= head:
            return HistoryPage(epoch, head, (), complete=True)
        return HistoryPage(epoch, head, events, complete=history_reaches(since_seq, oldest))

    async def publish_transient(self, room: str, event: str, data: JSON) -> None:
        payload = "t" + json.dumps({"event": event, "data": data}, separators=(",", ":"))
        channel = self.keys.room(room).channel
        await self._calls.command("SPUBLISH" if self._sharded else "PUBLISH", channel, payload)

    async def publish_control(self, message: JSON) -> None:
        await self._call(self._redis.publish(self.keys.control, json.dumps(message)))

    # leases ------------------------------------------------------------------------

    async def _lease_call(
        self, room: str, mode: str, annotation_id: str, holder: Member | None, user: str, ttl: int
    ) -> list[Any]:
        if not self._settled.is_set():
            await self._wait_settled(self._timeout)
        k = self.keys.room(room)
        args = [
            *self._prelude(),
            new_event_id(),
            room,
            mode,
            annotation_id,
            json.dumps(holder.to_wire() if holder else {}),
            user,
            ttl,
        ]
        result: list[Any] = await self._call(
            self._lease(keys=[*self._room_keys(room), k.leases], args=args)
        )
        if int(result[0]) == 2:
            raise guard_error(result[1], result[2], annotation_id)
        return result

    async def lock(self, room: str, annotation_id: str, holder: Member, ttl_ms: int) -> LockOutcome:
        result = await self._lease_call(room, "lock", annotation_id, holder, holder.user_id, ttl_ms)
        lease = _lease(room, json.loads(result[1]))
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zadd(self.keys.lease_expiry, {f"{room} {annotation_id}": lease.expires_at})
            pipe.expire(self.keys.lease_expiry, self._ttl)
            await self._call(pipe.execute())
        publication = Publication.from_wire(result[2])
        return LockOutcome(lease, publication)

    async def unlock(self, room: str, annotation_id: str, user_id: str) -> Publication | None:
        result = await self._lease_call(room, "unlock", annotation_id, None, user_id, 0)
        released = [Publication.from_wire(e) for e in result[1:]]
        return released[0] if released else None

    async def release_holder(self, room: str, user_id: str) -> list[Publication]:
        result = await self._lease_call(room, "release_holder", "", None, user_id, 0)
        return [Publication.from_wire(e) for e in result[1:]]

    async def expire_leases(self) -> list[Publication]:
        now = int(time.time() * 1000)
        due = await self._call(
            self._redis.zrangebyscore(self.keys.lease_expiry, "-inf", now, start=0, num=200)
        )
        released: list[Publication] = []
        for room in {member.split(" ", 1)[0] for member in due}:
            result = await self._lease_call(room, "expire", "", None, "", 0)
            released.extend(Publication.from_wire(e) for e in result[1:])
        if due:
            await self._call(self._redis.zrem(self.keys.lease_expiry, *due))
        return released

    async def leases(self, room: str) -> list[Lease]:
        raw = await self._call(self._redis.hgetall(self.keys.room(room).leases))
        now = int(time.time() * 1000)
        leases = [_lease(room, json.loads(v)) for v in raw.values()]
        return sorted(
            (lease for lease in leases if lease.expires_at > now),
            key=lambda lease: lease.annotation_id,
        )

    # bindings ------------------------------------------------------------------------

    async def bind(self, room: str, project_id: str) -> None:
        key = self.keys.room(room).bind
        await self._call(self._redis.set(key, project_id, ex=BINDING_TTL_SECONDS))

    async def binding(self, room: str) -> str | None:
        value: str | None = await self._calls.command("GET", self.keys.room(room).bind)
        return value

    # subscriptions -------------------------------------------------------------------

    async def subscribe(self, room: str) -> None:
        channel = self.keys.room(room).channel
        if self._pubsub is None and self._listener_moves is False and self._watcher is not None:
            # Moving to a new master (see _on_switch) takes a moment, not an outage.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._connected.wait(), min(self._timeout, SETTLE_WAIT))
        if self._pubsub is None:
            raise BrokerUnavailable("not connected to Redis pub/sub")
        # The head before subscribing: everything after it arrives live or is
        # caught up from history, so a gap is noticed even before the first event.
        before = await self.position(room)
        # Read again after the await: the listener may have lost its session meanwhile
        # (a failover), and a join must then be told Redis is unavailable, not crash.
        pubsub = self._pubsub
        if pubsub is None:
            raise BrokerUnavailable("not connected to Redis pub/sub")
        self._rooms.add(room)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._confirm[channel] = future
        try:
            await self._channels.subscribe(channel)  # with the others of this turn
            await self._call(asyncio.shield(future))
        except BrokerUnavailable:
            self._rooms.discard(room)
            raise
        finally:
            self._confirm.pop(channel, None)
        self._last.setdefault(room, (before.epoch, before.seq))

    async def unsubscribe(self, room: str) -> None:
        self._rooms.discard(room)
        self._last.pop(room, None)
        self._behind.discard(room)
        if self._pubsub is not None:
            with contextlib.suppress(BrokerUnavailable):
                await self._channels.unsubscribe(self.keys.room(room).channel)

    async def _listen(self) -> None:
        """Read pub/sub for the instance's lifetime, reconnecting promptly."""
        backoff = Backoff(RESUBSCRIBE_INITIAL_SECONDS, RESUBSCRIBE_MAX_SECONDS)
        while True:
            try:
                async with self._session() as pubsub:
                    backoff.reset()
                    connects = pubsub.connects
                    while True:
                        message = await pubsub.get_message(timeout=1.0)
                        if message is not None:
                            await self._dispatch(message)
                        elif self._behind:  # a quiet second: try the refused catch-ups
                            await self._catch_up(set(self._behind))
                        if self._listener_moves:
                            # The master moved: subscribe on the new one now, rather
                            # than when the old one stops serving (see _on_switch).
                            self._listener_moves = False
                            self._connected.clear()
                            break
                        if pubsub.connects != connects:
                            # redis-py reconnected and resubscribed by itself:
                            # what was published meanwhile comes from history.
                            connects = pubsub.connects
                            self._log.info("broker.resubscribed", rooms=len(self._rooms))
                            await self._catch_up()
            except (RedisError, OSError) as exc:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise asyncio.CancelledError from exc  # redis-py turned it into an error
                self._connected.clear()
                delay = backoff.next()
                self._log.warning("broker.listener_lost", error=str(exc), retry_in=delay)
                await asyncio.sleep(delay)

    async def _on_switch(self, switch: Switch) -> None:
        """Follow an announced failover: stop writing to the old master, settle epochs.

        New commands wait (at most about a second, `_wait_settled`) while the pool
        drops its connections to the old master, the old master is fenced and each
        room it held is settled on the new one (failover_settle.py). A room that
        could not be settled starts a new epoch when next used.
        """
        began = time.monotonic()
        self._settled.clear()
        try:
            await drop_master_connections(self._redis)  # redis_internals.py, R6
            self._listener_moves = True
            try:
                async with asyncio.timeout(SETTLE_TIMEOUT):
                    settled = await settle(self._redis, switch, self.keys, self._settle)
            except (TimeoutError, RedisError, OSError) as exc:
                settled = Settled(skipped=f"settling failed: {exc!r}")
        finally:
            self._settled.set()
        self.last_settled = settled
        self.switched.set()
        self._log.warning(
            "broker.master_switched",
            old=f"{switch.old[0]}:{switch.old[1]}",
            new=f"{switch.new[0]}:{switch.new[1]}",
            rooms_kept=settled.kept,
            rooms_new_epoch=settled.lost,
            skipped=settled.skipped or None,
            seconds=round(time.monotonic() - began, 3),
        )

    async def _wait_settled(self, limit: float) -> None:
        """Wait for a failover's settling, at most `limit` s (SETTLE_WAIT at most):
        a call made meanwhile could start a new epoch for a room that lost nothing."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._settled.wait(), max(0.0, min(limit, SETTLE_WAIT)))

    @contextlib.asynccontextmanager
    async def _session(self) -> AsyncIterator[Any]:
        pubsub: Any
        if self._sharded:
            if self.sessions:
                await refresh(self._redis)  # a shard was lost: where is each slot now
            pubsub = ShardedPubSub(self._redis)
        else:
            pubsub = _CountingPubSub(self._redis.connection_pool)
        try:
            await pubsub.subscribe(self.keys.control)
            for room in list(self._rooms):
                channel = self.keys.room(room).channel
                if self._sharded:
                    await pubsub.ssubscribe(channel)
                else:
                    await pubsub.subscribe(channel)
            self._pubsub = pubsub
            self._connected.set()
            if self.sessions or self._rooms:
                await self._catch_up()
            self.sessions += 1
            self._log.info("broker.subscribed", rooms=len(self._rooms))
            yield pubsub
        finally:
            self._pubsub = None
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()

    async def _catch_up(self, rooms: set[str] | None = None) -> None:
        """Deliver what was published while pub/sub was down, from history.

        A room whose read Redis refuses (a slot still moving in a failover) is kept
        in `_behind` and tried again when the listener is next idle; a live event
        reaching it first fills the gap itself (`_deliver_in_order`).
        """
        for room, (epoch, seq) in list(self._last.items()):
            if rooms is not None and room not in rooms:
                continue
            try:
                page = await self.history(room, seq, self._history_size)
                if page.epoch != epoch:
                    # The room's stream restarted meanwhile: all of the new epoch is news.
                    page = await self.history(room, 0, self._history_size)
            except BrokerUnavailable as exc:
                if room not in self._behind:
                    self._log.warning("broker.catch_up_refused", room=room, error=str(exc))
                self._behind.add(room)
                continue
            self._behind.discard(room)
            for publication in page.events:
                self._deliver(publication)

    async def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        channel = message.get("channel", "")
        if kind in ("subscribe", "ssubscribe"):
            future = self._confirm.get(channel)
            if future is not None and not future.done():
                future.set_result(None)
            return
        if kind not in ("message", "smessage") or self._sink is None:
            return
        data: str = message["data"]
        if channel == self.keys.control:
            self._sink.on_control(json.loads(data))
            return
        room = self.keys.room_of_channel(channel)
        if room is None or room not in self._rooms:
            return
        if data[0] == "p":
            await self._deliver_in_order(Publication.from_wire(data[1:]))
        elif data[0] == "b":  # several publications of one script call, in seq order
            for envelope in data[1:].split("\n"):
                await self._deliver_in_order(Publication.from_wire(envelope))
        elif data[0] == "t":
            transient = json.loads(data[1:])
            self._sink.on_transient(room, transient["event"], transient["data"])

    async def _deliver_in_order(self, publication: Publication) -> None:
        """Deliver a live publication, first filling from history any gap before it.

        A gap means pub/sub dropped messages (a reconnect); the listener reads no
        further until it is filled, so local members still get seq order.
        """
        last = self._last.get(publication.room)
        if last is not None:
            # A new epoch (the room's stream restarted) is news from its first seq on.
            after = last[1] if last[0] == publication.epoch else 0
            missing = publication.seq - after - 1
            if missing > 0:
                self._log.info("broker.gap", room=publication.room, missing=missing)
                try:
                    page = await self.history(publication.room, after, missing)
                except BrokerUnavailable:
                    page = None
                if page is not None and page.epoch == publication.epoch:
                    for missed in page.events:
                        self._deliver(missed)
        self._deliver(publication)

    def _deliver(self, publication: Publication) -> None:
        last = self._last.get(publication.room)
        if last is not None and last[0] == publication.epoch and publication.seq <= last[1]:
            return  # already delivered (a catch-up overlapping live delivery)
        self._last[publication.room] = (publication.epoch, publication.seq)
        if self._sink is not None:
            self._sink.on_publication(publication)

    # memory --------------------------------------------------------------------------

    async def memory_usage(self, refresh_seconds: float) -> MemoryUsage | None:
        """INFO memory of this Redis, run by one instance per period (redis_memory.py)."""
        return await shared_memory_usage(self._redis, self.keys.prefix, refresh_seconds)


def _lease(room: str, raw: JSON) -> Lease:
    holder = raw["holder"]
    return Lease(
        room=room,
        annotation_id=raw["annotation_id"],
        holder=Member(holder["user_id"], holder.get("name"), int(holder.get("connections", 1))),
        fencing_token=int(raw["fencing_token"]),
        expires_at=int(raw["expires_at"]),
    )
