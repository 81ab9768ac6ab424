"""Every reach into redis-py's internals, for the Redis broker and its client.

The broker sends a pipeline of script calls as one pre-packed write on a pooled
connection (a batch's calls are RESP it builds itself, redis_batch.py), counts the
reconnections of its pub/sub connection, and closes the clients of the sentinels
that redis-py opened for it. That leans on these parts of redis-py's asyncio API,
numbered as tests/compat/test_assumptions.py tests them against a real
redis-server. R1, R2 and R4 are checked when this module is imported, and a
failure raises `IncompatibleDependency` naming redis-py's version. This module
imports redis-py only, never the transport stack: a worker imports it too.

R1. `ConnectionPool.get_connection()` hands out a connection that is the caller's
    alone until `await pool.release(connection)`; redis-py >= 5.3 takes no command
    name (older ones require one, and get a placeholder). Breaks: two pipelines on
    one connection, their replies crossed. Checked (the methods exist).
R2. `Connection.send_packed_command(payload)` writes `payload` as given (a batch's
    RESP, several commands), and each `read_response(timeout=math.inf)` reads the
    next reply, in the order the commands were written; an error reply is raised
    as `ResponseError` and the connection stays usable for the replies after it.
    Breaks: a publish's outcome reported for another room's call. Checked (the
    methods exist and `read_response` takes `timeout`).
R3. A connection that a failover or restart closed raises redis-py's
    `ConnectionError` from the first send or read, so a pipeline that got no reply
    yet can be sent once more on a fresh connection; `Connection.disconnect()` drops
    a connection whose reply may be half read. Breaks: a lost batch or a retry
    loop on a dead server.
R4. `PubSub.on_connect(connection)` is called on every reconnection of the
    PubSub's connection, and it is what resubscribes. (Not on the first connect:
    the pool hands out a connected connection before redis-py registers the
    callback.) The broker counts the calls against a baseline to notice a silent
    reconnect and fill the gap from history. Breaks: events published during a
    reconnect never delivered. Checked (the method exists).
R5. In Sentinel mode `client.connection_pool.sentinel_manager.sentinels` lists the
    clients redis-py opened to the sentinels, which `Redis.aclose()` leaves open.
    Breaks: sockets outliving their loop (ResourceWarnings); never wrong results.
R6. A Sentinel pool (`SentinelConnectionPool`) keeps its connections to a demoted
    master: `pool.disconnect(inuse_connections=False)` closes the idle ones, a
    connection in use is `mark_for_reconnect()`ed (redis-py >= 6.1; older ones
    reconnect it only when the old master refuses a write), and the next connect
    asks the sentinels again. Its `connection_kwargs` (less `connection_pool`)
    and `connection_class` (an SSLConnection for TLS) reach any server of the
    set. Breaks: writes going on to a demoted master after `+switch-master`.
R7. Redis Cluster (brokers/redis_sharded.py, which reaches these directly): a
    `RedisCluster`'s `nodes_manager.get_node_from_slot(client.keyslot(key))` names
    the primary serving a key, `nodes_manager.initialize()` re-reads the slot map,
    and a `ClusterNode` lends a connection with `acquire_connection()` and takes it
    back with `release()` (redis-py 8) or onto its `_free` queue (older: no `release`;
    `redis_sharded.give_back`), and carries the `connection_kwargs` and
    `connection_class` (TLS, password) that reach it. Breaks: sharded subscriptions
    on the wrong node, or none after a failover or a slot migration; the cluster
    fault tests (tests/cluster/test_redis_cluster_failover.py) show it.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

from redis.asyncio.client import PubSub, Redis
from redis.asyncio.connection import Connection, ConnectionPool, SSLConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from ..dependency import require


def _needs_command_name() -> bool:
    """Whether `get_connection` requires a command name (redis-py before 5.3)."""
    parameters = list(inspect.signature(ConnectionPool.get_connection).parameters.values())
    first = parameters[1] if len(parameters) > 1 else None
    return (
        first is not None
        and first.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        and first.default is inspect.Parameter.empty
    )


def _check_at_import() -> None:
    require(
        callable(getattr(ConnectionPool, "get_connection", None))
        and inspect.iscoroutinefunction(getattr(ConnectionPool, "release", None)),
        "redis",
        "R1",
        "the asyncio ConnectionPool has no get_connection or no async release",
    )
    read = getattr(Connection, "read_response", None)
    require(
        callable(getattr(Connection, "send_packed_command", None))
        and read is not None
        and "timeout" in inspect.signature(read).parameters,
        "redis",
        "R2",
        "Connection has no send_packed_command, or read_response takes no timeout",
    )
    require(
        inspect.iscoroutinefunction(getattr(PubSub, "on_connect", None)),
        "redis",
        "R4",
        "PubSub has no async on_connect(connection)",
    )


_check_at_import()
# R1: redis-py < 5.3 requires a command name it no longer uses for anything.
GET_CONNECTION_ARGS: tuple[str, ...] = ("EVALSHA",) if _needs_command_name() else ()


async def send_pipeline(pool: Any, payload: bytes, count: int) -> list[Any]:
    """Send pre-packed commands in one write on one pooled connection; a reply each, in order.

    An error reply is in the list as its `ResponseError`. Like redis-py's pipeline, a
    connection found closed before any reply came (a failover or restart closed it)
    is reconnected and the commands sent once more; a failure after that raises.
    """
    for attempt in (1, 2):
        replies: list[Any] = []
        connection = await pool.get_connection(*GET_CONNECTION_ARGS)  # R1
        try:
            await connection.send_packed_command(payload)  # R2
            for _ in range(count):
                try:
                    # No deadline per reply: the caller bounds the whole pipeline.
                    replies.append(await connection.read_response(timeout=math.inf))
                except ResponseError as exc:
                    replies.append(exc)
            return replies
        except RedisConnectionError:  # R3
            await connection.disconnect()
            if replies or attempt == 2:
                raise
        except BaseException:
            # A reply may be half read: the connection must not be reused.
            await connection.disconnect()
            raise
        finally:
            await pool.release(connection)
    raise AssertionError("unreachable")


class CountingPubSub(PubSub):
    """A PubSub that counts its (re)connections, so a silent reconnect is noticed (R4)."""

    connects = 0

    async def on_connect(self, connection: Any) -> None:
        self.connects += 1
        await super().on_connect(connection)


def sentinel_clients(client: Any) -> list[Any]:
    """The clients of the sentinels behind a Sentinel-mode client; none otherwise (R5)."""
    manager = getattr(getattr(client, "connection_pool", None), "sentinel_manager", None)
    return list(getattr(manager, "sentinels", ()))


async def drop_master_connections(client: Any) -> None:
    """Make a Sentinel client's next commands ask the sentinels for the master (R6)."""
    pool = client.connection_pool
    await pool.disconnect(inuse_connections=False)
    for connection in list(getattr(pool, "_in_use_connections", ())):
        mark = getattr(connection, "mark_for_reconnect", None)
        if mark is not None:
            mark()


def client_for(client: Any, host: str, port: int) -> Any:
    """A plain client of host:port with a Sentinel client's options (R6): the same
    password, database, TLS and timeouts, without asking the sentinels."""
    pool = client.connection_pool
    options = {k: v for k, v in pool.connection_kwargs.items() if k != "connection_pool"}
    tls = issubclass(pool.connection_class, SSLConnection)
    direct = ConnectionPool(
        connection_class=SSLConnection if tls else Connection,
        **{**options, "host": host, "port": port},
    )
    return Redis.from_pool(direct)  # closing the client closes its pool
