"""Churn across instances leaves no tables grown, no Redis key without a TTL, and
each instance's memory flat."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.e2e import test_churn_rss as rss
from tests.support.instances import RoomcastProcess
from tests.support.redis_procs import RedisServer
from tests.support.server import RunningServer, running_server

ROOMS = ["annotation_ch", "detection_stream_ch", "project_ch"]
CYCLES = 1000


async def test_churn_over_two_instances(cluster_settings: Any, redis: RedisServer) -> None:
    settings = [cluster_settings(1), cluster_settings(2)]
    async with running_server(settings[0]) as a, running_server(settings[1]) as b:
        servers = (a, b)
        baselines = [s.runtime.leak_check() for s in servers]

        async def cycle(n: int) -> None:
            server: RunningServer = servers[n % 2]
            client = await server.client(f"user{n % 13}", rooms=ROOMS[:2], projects=["ch"])
            try:
                for room in ROOMS:
                    assert (await client.call("join", {"room": room}))["ok"]
                if n % 3 == 0:
                    await client.call("lock", {"room": ROOMS[0], "annotation_id": f"a{n % 5}"})
                if n % 2:
                    await client.call("leave", {"room": ROOMS[n % 3]})
            finally:
                await client.close()

        for start in range(0, CYCLES, 25):
            await asyncio.gather(*(cycle(n) for n in range(start, start + 25)))
        for server in servers:
            await asyncio.wait_for(server.runtime.gateway.connections.wait_empty(), 10)
        assert [s.runtime.leak_check() for s in servers] == baselines

        client = aioredis.Redis.from_url(redis.url, decode_responses=True)
        try:
            prefix = settings[0].key_prefix
            keys = [k async for k in client.scan_iter(f"{prefix}:*")]
            ttls = {k: await client.ttl(k) for k in keys}
            assert all(ttl > 0 for ttl in ttls.values()), {k: t for k, t in ttls.items() if t <= 0}
            for room in ROOMS:
                assert await client.hlen(f"{prefix}:{{{room}}}:pconn") == 0
                assert await client.hlen(f"{prefix}:{{{room}}}:pusers") == 0
            assert await client.hlen(f"{prefix}:{{{ROOMS[0]}}}:leases") == 0
            for n in range(13):
                assert await client.hlen(f"{prefix}:{{u:user{n}}}:conns") == 0
            # What stays: per-room streams and instance records, all expiring.
            print(f"{len(keys)} keys after {CYCLES} cycles, every one with a TTL")
        finally:
            await client.aclose()


@pytest.mark.timeout(90)
async def test_churn_leaves_rss_flat_over_two_instances(redis: RedisServer) -> None:
    """5,000 cycles over two `roomcast serve` processes on one Redis (issue 10, finding 6)."""
    env = {"ROOMCAST_REDIS_URL": redis.url, "ROOMCAST_KEY_PREFIX": "rss"}
    async with (
        RoomcastProcess({**env, "ROOMCAST_INSTANCE_ID": "rss1"}) as a,
        RoomcastProcess({**env, "ROOMCAST_INSTANCE_ID": "rss2"}) as b,
    ):
        marks = await rss.measure([a, b])
    for name, (base, half, end) in zip("ab", marks, strict=True):
        print(f"{name}: RSS {base:.1f} -> {half:.1f} -> {end:.1f} MiB")
    growth = [end - base for base, _, end in marks]
    assert max(growth) < rss.LIMIT_MB, marks
