"""Redis Cluster for the broker: per-shard pipelines and sharded pub/sub per room.

Every key of a room carries the room's hash tag (redis_keys.py), so a room's
script call and its channel are in one slot, on one shard. What redis-py's
cluster client does not give the broker is here:

- `NodePool`: a shard primary's pooled connections, with the interface that
  `send_pipeline` and `SendWatch` use (get_connection, release), so a batch's
  calls for the rooms of one shard go out as one write on one connection.
- `ShardedPubSub`: `SSUBSCRIBE` to each room's channel on the primary that owns
  its slot, one connection per shard that the instance needs, each read by its
  own task into one queue (redis-py's ClusterPubSub polls its shards in turn,
  each poll waiting out its timeout: a second per idle shard before a message).
  The control channel is a classic `SUBSCRIBE` (a cluster broadcasts PUBLISH to
  every node) on the shard that owns the control key's slot.

Nothing here reconnects by itself. A shard connection that is lost, a `MOVED`
reply to a subscribe, or a `sunsubscribe` the broker did not ask for (Redis sends
one when a slot moves away or its primary is demoted) ends the session: the
broker's listener opens a new one after refreshing the slot map, resubscribes
every room on its current owner and fills the gap from history, as it does after
any reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, SlotNotCoveredError


def is_cluster(client: Any) -> bool:
    return isinstance(client, RedisCluster)


def owner(client: Any, key: str) -> ClusterNode:
    """The primary that serves `key`'s slot, by the client's slot map.

    LookupError when the map has none for it (not read yet, or a shard lost).
    """
    try:
        node: ClusterNode = client.nodes_manager.get_node_from_slot(client.keyslot(key))
    except (KeyError, IndexError, SlotNotCoveredError) as exc:
        raise LookupError(f"no primary serves the slot of {key}") from exc
    return node


async def ready(client: Any) -> None:
    """Have the slot map (a cluster client reads it on first use; this is that use)."""
    await client.initialize()


async def refresh(client: Any) -> None:
    """Read the slot map again (after MOVED, a lost node or a failover)."""
    with contextlib.suppress(RedisError, OSError):
        await client.nodes_manager.initialize()


class NodePool:
    """A cluster node's connections as a pool: one caller's alone until released."""

    __slots__ = ("node",)

    def __init__(self, node: ClusterNode) -> None:
        self.node = node

    async def get_connection(self, *args: Any) -> Any:
        connection = self.node.acquire_connection()
        try:
            await connection.connect()  # type: ignore[no-untyped-call]
        except BaseException:
            await connection.disconnect()
            give_back(self.node, connection)
            raise
        return connection

    async def release(self, connection: Any) -> None:
        give_back(self.node, connection)


def give_back(node: ClusterNode, connection: Any) -> None:
    """Return a connection `acquire_connection` lent (R7): `ClusterNode.release` where
    redis-py has it (8.x), else back onto the node's free queue, which is all that
    release does there (6.x, 7.x before it had the method)."""
    release = getattr(node, "release", None)
    if release is not None:
        release(connection)
    else:
        node._free.append(connection)


class _ShardLost(RedisConnectionError):
    """A shard's subscription ended without the broker asking (see the module doc)."""


class ShardedPubSub:
    """The broker's pub/sub session over a cluster (duck-typed as the PubSub it uses).

    `connects` stays 0: a shard connection never reconnects silently here, it ends
    the session instead (which the broker catches up from history).
    """

    connects = 0

    def __init__(self, client: Any) -> None:
        self._client = client
        self._shards: dict[str, PubSub] = {}  # node name -> its subscription
        self._readers: dict[str, asyncio.Task[None]] = {}
        self._where: dict[str, str] = {}  # channel -> node name
        self._leaving: set[str] = set()  # channels the broker unsubscribes
        self._queue: asyncio.Queue[dict[str, Any] | BaseException] = asyncio.Queue()

    async def subscribe(self, channel: str) -> None:
        """Classic SUBSCRIBE (the control channel, published cluster-wide)."""
        pubsub = await self._shard_for(channel)
        await pubsub.subscribe(channel)
        self._start_reader(channel)

    async def ssubscribe(self, channel: str) -> None:
        pubsub = await self._shard_for(channel)
        self._leaving.discard(channel)
        await pubsub.ssubscribe(channel)
        self._start_reader(channel)

    async def sunsubscribe(self, channel: str) -> None:
        name = self._where.get(channel)
        if name is None or name not in self._shards:
            return
        self._leaving.add(channel)
        await self._shards[name].sunsubscribe(channel)

    async def get_message(self, timeout: float) -> dict[str, Any] | None:
        try:
            item = await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None
        if isinstance(item, BaseException):
            raise item
        return item

    async def aclose(self) -> None:
        for task in self._readers.values():
            task.cancel()
        for task in self._readers.values():
            with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
                await task
        self._readers.clear()
        for pubsub in self._shards.values():
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
        self._shards.clear()

    async def _shard_for(self, channel: str) -> PubSub:
        await ready(self._client)
        try:
            node = owner(self._client, channel)
        except LookupError as exc:  # a session (or a subscribe) that cannot start now
            raise _ShardLost(str(exc)) from exc
        self._where[channel] = node.name
        pubsub = self._shards.get(node.name)
        if pubsub is None:
            options = dict(node.connection_kwargs)
            # A lost shard connection ends the session (module doc), never retries.
            options["retry"] = Retry(NoBackoff(), 0)
            pool = ConnectionPool(connection_class=node.connection_class, **options)
            pubsub = PubSub(pool, encoder=self._client.encoder)
            self._shards[node.name] = pubsub
        return pubsub

    def _start_reader(self, channel: str) -> None:
        name = self._where[channel]
        if name not in self._readers:
            self._readers[name] = asyncio.create_task(
                self._read(name, self._shards[name]), name=f"roomcast.broker.shard {name}"
            )

    async def _read(self, name: str, pubsub: PubSub) -> None:
        try:
            while True:
                message = await pubsub.get_message(timeout=1.0)
                if message is None:
                    continue
                if message.get("type") == "sunsubscribe":
                    channel = message.get("channel")
                    if channel in self._leaving:
                        self._leaving.discard(channel)
                        self._where.pop(channel, None)
                        continue
                    raise _ShardLost(f"{channel} is no longer served by {name}")
                self._queue.put_nowait(message)
        except (RedisError, OSError) as exc:
            self._queue.put_nowait(exc)
