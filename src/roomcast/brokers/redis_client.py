"""Connecting to Redis, standalone or through Sentinel, with fail-fast timeouts.

A command that cannot reach Redis fails within about a second instead of waiting
through long retries: callers turn the failure into BrokerUnavailable, and the
next command reconnects (through Sentinel, to whichever server is master now).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError

from ..config import Settings
from ..errors import BrokerUnavailable
from .redis_internals import sentinel_clients

CONNECT_TIMEOUT = 1.0
COMMAND_TIMEOUT = 2.0
OPERATION_TIMEOUT = 3.0  # one call, its one retry included
# Error replies that mean "Redis cannot take this now", not "this request is wrong".
UNAVAILABLE_REPLIES = ("READONLY", "LOADING", "MASTERDOWN", "OOM", "NOREPLICAS", "BUSY", "TRYAGAIN")


def connect(settings: Settings) -> Any:
    """A client for the configured Redis; connections open lazily."""
    options: dict[str, Any] = {
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "socket_timeout": COMMAND_TIMEOUT,
        # One immediate retry lets a command ride over a connection that a
        # failover just closed; more would only delay the error.
        "retry": Retry(NoBackoff(), 1),
        "decode_responses": True,
        "health_check_interval": 5,
    }
    if settings.sentinel_list:
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            settings.sentinel_list,
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_timeout=CONNECT_TIMEOUT,
        )
        return sentinel.master_for(settings.redis_sentinel_master, **options)
    return aioredis.Redis.from_url(settings.redis_url, **options)


async def disconnect(client: Any) -> None:
    """Close a client from `connect`, and in Sentinel mode the clients of the sentinels.

    `Redis.aclose()` closes the master's pool only: the connections redis-py opened to
    the sentinels to discover the master stay open otherwise, and outlive their loop.
    """
    await client.aclose()
    for sentinel in sentinel_clients(client):  # redis_internals.py, R5
        await sentinel.aclose()


async def call(awaitable: Awaitable[Any]) -> Any:
    """Await a Redis call with a deadline; failing to reach Redis is BrokerUnavailable."""
    try:
        async with asyncio.timeout(OPERATION_TIMEOUT):
            return await awaitable
    except TimeoutError:
        raise BrokerUnavailable("Redis did not answer in time") from None
    except ResponseError as exc:
        if str(exc).startswith(UNAVAILABLE_REPLIES):
            raise BrokerUnavailable(f"Redis cannot take writes now: {exc}") from None
        raise
    except (RedisError, OSError) as exc:
        raise BrokerUnavailable(f"Redis unreachable: {exc}") from None
