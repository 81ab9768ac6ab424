"""A reconnect storm: 2,000 clients connecting and joining at once, none refused (SPEC 9).

The survivors of an instance's death all come back within a moment. Each handshake
and join takes a few Redis calls; with more in flight than the pool has
connections, the pool must make them wait for one, not refuse them ("Too many
connections"). Two `roomcast serve` processes with default settings (the
per-address connect rate aside: every client here comes from 127.0.0.1) over one
redis-server; the clients are raw WebSocket Socket.IO clients (raw_socketio.py),
light enough for 2,000 of them in this one process.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from tests.support.instances import RoomcastProcess
from tests.support.raw_socketio import RawSocketIO
from tests.support.redis_procs import RedisServer

CLIENTS = 2000
ROOMS = 100  # 20 members each: the storm is about handshakes, not one room's presence
DEADLINE_S = 60.0  # the whole storm; it takes a few seconds


@pytest.fixture
async def instances(redis: RedisServer) -> AsyncIterator[list[RoomcastProcess]]:
    env = {"ROOMCAST_REDIS_URL": redis.url, "ROOMCAST_KEY_PREFIX": "storm"}
    procs = [RoomcastProcess({**env, "ROOMCAST_INSTANCE_ID": f"storm{n}"}) for n in (1, 2)]
    try:
        await asyncio.gather(*(asyncio.to_thread(p.start) for p in procs))
        yield procs
    finally:
        await asyncio.gather(*(p.aclose() for p in procs))


async def _connect_and_join(proc: RoomcastProcess, n: int) -> tuple[str, RawSocketIO | None]:
    """'ok' and the client, or what refused it."""
    project = f"storm{n % ROOMS}"
    try:
        client = await RawSocketIO.connect(proc.url, proc.token(f"s{n}", projects=[project]))
    except (ConnectionError, OSError) as exc:
        return f"connect: {str(exc)[:120]}", None
    try:
        ack = await client.call("join", {"room": f"project_{project}"})
    except (ConnectionError, OSError) as exc:
        await client.close()
        return f"join: {str(exc)[:120]}", None
    if not ack.get("ok"):
        await client.close()
        return f"join: {ack.get('error')}", None
    return "ok", client


async def _storm(procs: list[RoomcastProcess], label: str) -> None:
    """CLIENTS connects and joins at once, spread over `procs`; assert none refused."""
    started = time.monotonic()
    async with asyncio.timeout(DEADLINE_S):
        outcomes = await asyncio.gather(
            *(_connect_and_join(procs[n % len(procs)], n) for n in range(CLIENTS))
        )
    took = time.monotonic() - started
    clients = [client for _, client in outcomes if client is not None]
    try:
        results = Counter(result for result, _ in outcomes)
        refused = CLIENTS - results["ok"]
        print(f"{label}: {CLIENTS} clients, {refused} refused, {took:.1f} s; {dict(results)}")
        assert refused == 0, results.most_common(5)
        for proc in procs:
            assert proc.running, proc.output()
    finally:
        await asyncio.gather(*(client.close() for client in clients))


async def test_two_thousand_clients_connecting_and_joining_at_once_are_all_accepted(
    instances: list[RoomcastProcess],
) -> None:
    await _storm(instances, "storm")


async def test_a_storm_longer_than_the_redis_timeout_waits_instead_of_being_refused(
    redis: RedisServer,
) -> None:
    """2,000 handshakes at once on one instance, with the Redis timeout at 50 ms.

    Accepting them all takes over a second of the instance's CPU, many times the
    timeout. Connects let in all together keep the event loop busy past their own
    Redis deadlines and are refused "Redis did not answer in time" (as `make bench`
    saw with the instance and Redis sharing one core, at the default 1 s; here, before
    the gateway admitted connects in turns, 231 of 2,000 at 50 ms and 1,596 at 30 ms).
    In turns, each connect has the whole timeout (0 refused at 50 and at 30 ms).
    """
    env = {
        "ROOMCAST_REDIS_URL": redis.url,
        "ROOMCAST_KEY_PREFIX": "storm1",
        "ROOMCAST_REDIS_TIMEOUT_MS": "50",
    }
    async with RoomcastProcess(env) as proc:
        await _storm([proc], "storm, one instance")
