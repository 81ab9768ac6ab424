"""CallBatcher (brokers/redis_calls.py) against a real redis-server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.exceptions import ResponseError

from roomcast.brokers.redis_calls import CallBatcher, gather_all, shared_batcher
from roomcast.brokers.redis_client import connect, disconnect
from roomcast.config import Settings
from roomcast.errors import BrokerUnavailable
from tests.support.redis_procs import RedisServer, redis_server

__all__ = ["redis_server"]

SCRIPT = "return {KEYS[1], ARGV[1], redis.call('INCR', KEYS[1])}"


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[Any]:
    redis = connect(Settings(redis_url=redis_server.url, redis_timeout_ms=500))
    yield redis
    await disconnect(redis)


async def test_calls_of_one_turn_share_one_pipeline_and_get_their_own_replies(
    client: Any,
) -> None:
    calls = CallBatcher(client)
    script = client.register_script(SCRIPT)
    futures = [calls.submit("SET", f"k{i}", f"v{i}") for i in range(100)]
    futures += [calls.submit("GET", f"k{i}") for i in range(100)]
    futures += [calls.submit_script(script, [f"n{i}"], [i]) for i in range(100)]
    replies = await gather_all(*futures)
    assert calls.batches == 1
    assert replies[100:200] == [f"v{i}" for i in range(100)]
    assert replies[200:] == [[f"n{i}", str(i), 1] for i in range(100)]
    # Calls made while a batch is out go together in the next one.
    first = calls.submit("INCR", "c")
    await asyncio.sleep(0)  # the writer takes `first`
    later = [calls.submit("INCR", "c") for _ in range(10)]
    assert await gather_all(first, *later) == list(range(1, 12))
    assert calls.batches == 3


async def test_an_error_reply_is_its_callers_alone(client: Any) -> None:
    calls = CallBatcher(client)
    await calls.command("SET", "text", "not a number")
    ok = calls.submit("INCR", "counter")
    bad = calls.submit("INCR", "text")
    after = calls.submit("INCR", "counter")
    assert await ok == 1
    with pytest.raises(ResponseError):
        await bad
    assert await after == 2
    assert calls.batches == 2


async def test_a_script_the_server_forgot_is_loaded_and_sent_again(client: Any) -> None:
    calls = CallBatcher(client)
    script = client.register_script(SCRIPT)
    assert await calls.script(script, ["s"], ["x"]) == ["s", "x", 1]
    await client.script_flush()
    results = await gather_all(calls.submit_script(script, ["s"], ["y"]), calls.submit("GET", "s"))
    # Sent again after the batch's other commands (which ran meanwhile): see the docstring.
    assert results == [["s", "y", 2], "1"]


async def test_a_server_that_is_gone_is_broker_unavailable_within_the_timeout(
    client: Any, redis_server: RedisServer
) -> None:
    calls = CallBatcher(client)
    assert await calls.command("PING") == "PONG"
    redis_server.stop()
    began = time.monotonic()
    futures = [calls.submit("GET", "k") for _ in range(20)]
    for future in futures:
        with pytest.raises(BrokerUnavailable):
            await future
    assert time.monotonic() - began < 1.5


async def test_a_stalled_server_is_broker_unavailable_and_the_next_call_works(
    client: Any, redis_server: RedisServer
) -> None:
    calls = CallBatcher(client)
    await calls.command("SET", "k", "v")
    redis_server.command("CLIENT", "PAUSE", "10000", "WRITE")  # writes wait, reads go on
    began = time.monotonic()
    stalled = calls.submit("SET", "k", "w")
    await asyncio.sleep(0)  # the writer sends it
    behind = calls.submit("GET", "k")  # queued behind the stalled batch
    with pytest.raises(BrokerUnavailable):
        await stalled
    assert 0.4 < time.monotonic() - began < 1.0  # redis_timeout_ms, 500 ms
    # Behind it, a call waits for that batch, then has its own timeout from its write:
    # a read, which the pause lets through, is answered, within two timeouts.
    assert await behind == "v"
    assert time.monotonic() - began < 1.5
    redis_server.command("CLIENT", "UNPAUSE")
    assert await calls.command("SET", "k", "x") == "OK"
    assert await calls.command("GET", "k") == "x"


async def test_the_broker_and_the_presence_store_share_one_batcher(client: Any) -> None:
    assert shared_batcher(client) is shared_batcher(client)
    other = connect(Settings(redis_url="redis://127.0.0.1:1/0"))
    try:
        assert shared_batcher(other) is not shared_batcher(client)
    finally:
        await disconnect(other)
