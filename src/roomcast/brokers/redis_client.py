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
from pydantic import SecretStr
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
    """A client for the configured Redis; connections open lazily.

    Sentinel mode takes the sentinels' password, the master's password, TLS and the
    database number from their own settings. A standalone URL can say all of that
    itself; the settings fill in what it leaves out (see `_standalone_url_and_auth`).
    TLS verifies against the system's CA store (which `SSL_CERT_FILE` can point
    elsewhere) and checks the host name, as redis-py does by default.
    """
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
        return sentinel.master_for(settings.redis_sentinel_master, **options, **master_options)
    url, auth = _standalone_url_and_auth(settings)
    return aioredis.Redis.from_url(url, **options, **auth)


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
