"""Connecting to Redis, standalone, through Sentinel or as a Cluster, with fail-fast timeouts.

A command that cannot reach Redis fails within `redis_timeout_ms` (default 1 s)
instead of waiting through long retries: callers turn the failure into
BrokerUnavailable, and the next command reconnects (through Sentinel, to whichever
server is master now). A write that went out and got no answer is OutcomeUnknown
instead: a stalled Redis may still run it (see `call` and `SendWatch`).

The pools wait for a free connection (redis-py's BlockingConnectionPool, also
under Sentinel) rather than refusing past `redis_max_connections`: a reconnect
storm queues for a moment instead of failing half its handshakes with "Too many
connections". The wait is bounded by the pool's timeout and by each caller's
deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import redis.asyncio as aioredis
from pydantic import SecretStr
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import BlockingConnectionPool
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.exceptions import (
    AskError,
    ClusterDownError,
    RedisError,
    ResponseError,
    TryAgainError,
)

from ..config import Settings
from ..errors import BrokerUnavailable, OutcomeUnknown
from .redis_internals import sentinel_clients

CONNECT_TIMEOUT = 1.0  # the sentinels
# The one bound for the waits on Redis that no setting names (redis_timeout_ms bounds
# every call that has a client from `connect`): a call given no deadline, its one
# retry included; the pool's wait for a free connection; the broker's start waiting
# for its first pub/sub session.
OPERATION_TIMEOUT = 3.0
# Error replies that mean "Redis cannot take this now", not "this request is wrong".
UNAVAILABLE_REPLIES = ("READONLY", "LOADING", "MASTERDOWN", "OOM", "NOREPLICAS", "BUSY", "TRYAGAIN")
# Replies that redis-py parses into their own classes, their message without the
# code: a Redis Cluster whose slot moved (MOVED, ASK), that lost a shard
# (CLUSTERDOWN) or is migrating a slot (TRYAGAIN). The command did not run there.
UNAVAILABLE_ERRORS = (AskError, ClusterDownError, TryAgainError)


def refused_for_now(error: BaseException) -> bool:
    """An error reply meaning "Redis cannot take this now": the command did not run."""
    return isinstance(error, UNAVAILABLE_ERRORS) or str(error).startswith(UNAVAILABLE_REPLIES)


def connect(settings: Settings) -> Any:
    """A client for the configured Redis; connections open lazily.

    Sentinel mode takes the sentinels' password, the master's password, TLS and the
    database number from their own settings. A standalone URL can say all of that
    itself; the settings fill in what it leaves out (see `_standalone_url_and_auth`).
    TLS verifies against the system's CA store (which `SSL_CERT_FILE` can point
    elsewhere) and checks the host name, as redis-py does by default.
    """
    timeout = settings.redis_timeout_ms / 1000
    options: dict[str, Any] = {
        "socket_connect_timeout": timeout,
        "socket_timeout": timeout,
        # One immediate retry lets a command ride over a connection that a
        # failover just closed; more would only delay the error.
        "retry": Retry(NoBackoff(), 1),
        "decode_responses": True,
        "health_check_interval": 5,
    }
    if settings.cluster_node_list:
        return connect_cluster(settings, options)
    if settings.sentinel_list:
        sentinel_options: dict[str, Any] = {
            "socket_connect_timeout": CONNECT_TIMEOUT,
            "socket_timeout": CONNECT_TIMEOUT,
            # Not redis-py's default (3 retries, backoff up to 10 s): a sentinel
            # that refuses the password would hold master discovery for ~20 s.
            "retry": Retry(NoBackoff(), 1),
            "password": _secret(settings.redis_sentinel_password),
        }
        master_options: dict[str, Any] = {
            "password": _secret(settings.redis_password),
            "db": settings.redis_db,
        }
        if settings.redis_tls:
            sentinel_options["ssl"] = True
            master_options["ssl"] = True  # SentinelConnectionPool: SSL connections
        sentinel = _Sentinel(settings.sentinel_list, sentinel_options)
        return sentinel.master_for(
            settings.redis_sentinel_master,
            connection_pool_class=_BlockingSentinelPool,
            **_pool_options(settings),
            **options,
            **master_options,
        )
    url, auth = _standalone_url_and_auth(settings)
    pool = BlockingConnectionPool.from_url(url, **_pool_options(settings), **options, **auth)
    return aioredis.Redis.from_pool(pool)


def connect_cluster(settings: Settings, options: dict[str, Any]) -> Any:
    """A Redis Cluster client: the same timeouts, password and TLS as the other modes.

    The nodes listed are where discovery starts; redis-py learns the rest and the
    slot map from them. Each node gets its own pool of `redis_max_connections`.
    `retry` is the cluster client's own (a MOVED or a lost node refreshes the slot
    map and tries once more); the per-node connections do not retry by themselves.
    """
    nodes = [ClusterNode(host, port) for host, port in settings.cluster_node_list]
    cluster_options = {k: v for k, v in options.items() if k != "retry"}
    return RedisCluster(
        startup_nodes=nodes,
        password=_secret(settings.redis_password),
        ssl=settings.redis_tls,
        max_connections=settings.redis_max_connections,
        retry=Retry(NoBackoff(), 1),
        **cluster_options,
    )


def _pool_options(settings: Settings) -> dict[str, Any]:
    """A pool of at most `redis_max_connections`, where a caller waits for a free one.

    redis-py's default pool raises "Too many connections" at once past its size
    (100): with 200 handshakes in flight, half were refused. Waiting is bounded by
    OPERATION_TIMEOUT here, and sooner by the caller's own deadline (`call`).
    """
    return {"max_connections": settings.redis_max_connections, "timeout": OPERATION_TIMEOUT}


def timeout_of(client: Any) -> float:
    """The per-call deadline, in seconds, of a client from `connect` (redis_timeout_ms)."""
    pool = getattr(client, "connection_pool", None)  # a cluster client has a pool per node
    kwargs = pool.connection_kwargs if pool is not None else client.get_connection_kwargs()
    value = kwargs.get("socket_timeout")
    return float(value) if value else OPERATION_TIMEOUT


class _BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """The master's pool under Sentinel, waiting for a free connection like the standalone one.

    SentinelConnectionPool finds the master; BlockingConnectionPool, next in the
    MRO, makes get_connection wait instead of refusing. Neither overrides what the
    other relies on (SentinelConnectionPool adds no get_connection or release).
    """


class _SentinelClient(aioredis.Redis):
    """A client of one sentinel, named `sentinel host:port` in errors.

    When no sentinel gives the master, redis-py's error lists each sentinel by its
    client's repr (a page of connection options, repeated per retry in the logs);
    this keeps /readyz reasons and log lines to the address and the error's kind,
    such as `auth:AuthenticationError` for a wrong ROOMCAST_REDIS_SENTINEL_PASSWORD.
    """

    def __repr__(self) -> str:
        options = self.connection_pool.connection_kwargs
        return f"sentinel {options.get('host')}:{options.get('port')}"


class _Sentinel(Sentinel):
    """redis-py's Sentinel with `_SentinelClient`s for the sentinels."""

    def __init__(self, sentinels: list[tuple[str, int]], options: dict[str, Any]) -> None:
        super().__init__([], sentinel_kwargs=options)  # type: ignore[no-untyped-call]
        self.sentinels = [
            _SentinelClient(host=host, port=port, **options) for host, port in sentinels
        ]


def _secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()


def _standalone_url_and_auth(settings: Settings) -> tuple[str, dict[str, Any]]:
    """The URL, and the password and database it is to be used with.

    The separate settings apply to a standalone URL too, where the URL does not say:
    redis-py lets what the URL gives win over keyword arguments, so a password or a
    database in the URL is used and the setting ignored. `ROOMCAST_REDIS_TLS=true`
    turns a `redis://` URL into `rediss://` (a TLS setting that was silently ignored
    would send the password in the clear); `rediss://` is TLS whatever it says.
    """
    url = settings.redis_url
    if settings.redis_tls and url.startswith("redis://"):
        url = "rediss://" + url.removeprefix("redis://")
    auth: dict[str, Any] = {"db": settings.redis_db}
    if settings.redis_password is not None:
        auth["password"] = settings.redis_password.get_secret_value()
    return url, auth


async def disconnect(client: Any) -> None:
    """Close a client from `connect`, and in Sentinel mode the clients of the sentinels.

    `Redis.aclose()` closes the master's pool only: the connections redis-py opened to
    the sentinels to discover the master stay open otherwise, and outlive their loop.
    """
    await client.aclose()
    for sentinel in sentinel_clients(client):  # redis_internals.py, R5
        await sentinel.aclose()


class SendWatch:
    """A view of a pool that notes whether the last connection asked for was handed out.

    `send_pipeline` (redis_internals.py, R1-R3) writes its commands as soon as the
    pool hands it a connection. Until then nothing has gone out, so a failure is
    certain not to have written anything (BrokerUnavailable); after it, the commands
    may be in Redis's socket buffer, to run whenever it resumes (OutcomeUnknown).
    A connection found closed before any reply (R3: a restart or failover closed
    it; nothing ran) is asked for again, and only that second attempt counts.
    """

    __slots__ = ("_pool", "handed_out")

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        self.handed_out = False

    async def get_connection(self, *args: Any) -> Any:
        self.handed_out = False
        connection = await self._pool.get_connection(*args)
        self.handed_out = True
        return connection

    async def release(self, connection: Any) -> None:
        await self._pool.release(connection)


async def call(
    awaitable: Awaitable[Any],
    timeout: float = OPERATION_TIMEOUT,
    *,
    deadline: float | None = None,
    watch: SendWatch | None = None,
) -> Any:
    """Await a Redis call within `timeout` seconds (or until the loop time `deadline`).

    Failing to reach Redis is BrokerUnavailable. With a `watch`, a failure after its
    connection was handed out is OutcomeUnknown: the write may have reached Redis.
    """
    bound = asyncio.timeout_at(deadline) if deadline is not None else asyncio.timeout(timeout)
    try:
        async with bound:
            return await awaitable
    except TimeoutError:
        raise _failure(watch, "Redis did not answer in time") from None
    except ResponseError as exc:
        if refused_for_now(exc):
            # Refused with an error reply: the command did not run.
            raise BrokerUnavailable(f"Redis cannot take writes now: {exc}") from None
        raise
    except (RedisError, OSError) as exc:
        raise _failure(watch, f"Redis unreachable: {exc}") from None


def _failure(watch: SendWatch | None, message: str) -> BrokerUnavailable:
    if watch is not None and watch.handed_out:
        return OutcomeUnknown(
            f"{message}; the write may have been applied:"
            " retry with the same idempotency_key or client_event_id"
        )
    return BrokerUnavailable(message)
