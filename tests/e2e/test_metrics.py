"""/metrics of real servers over a real redis-server: the histograms count what was done,
the Redis memory gauges show the server's INFO memory, and with two instances INFO runs
once per period for both."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import time
from collections.abc import AsyncIterator
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.test_http_api import WAIT, api
from tests.support.redis_procs import RedisServer, command, redis_server
from tests.support.server import RunningServer, running_server, test_settings

__all__ = ["redis_server"]  # imported so that pytest registers the fixture here

ROOM = "project_m1"
TYPE = "project_progress_update"
MAXMEMORY = 64 * 1024 * 1024


def progress(n: int) -> dict[str, Any]:
    return {"room": ROOM, "type": TYPE, "data": {"total": 100, "completed": n, "percent": n}}


async def scrape(server: RunningServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, by (name, sorted labels)."""
    async with api(server, key=False) as http:
        r = await http.get("/metrics")
    assert r.status_code == 200, r.text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def info_calls(redis: RedisServer) -> int:
    """INFO calls the server has run (this call is counted by the next one, not itself)."""
    stats = redis.info("commandstats").get("cmdstat_info", "calls=0,")
    return int(stats.split(",")[0].removeprefix("calls="))


@contextlib.asynccontextmanager
async def key_sets(redis: RedisServer, key: str) -> AsyncIterator[asyncio.Queue[float]]:
    """A queue that gets the monotonic time of every SET of `key` that took effect.

    Keyspace notifications: a `SET NX` that loses writes nothing and notifies nothing,
    so each item is one instance winning the memory probe (or one figure stored).
    """
    command(redis.port, "CONFIG", "SET", "notify-keyspace-events", "K$")
    client = redis.client(decode_responses=True)
    pubsub = client.pubsub()
    await pubsub.subscribe(f"__keyspace@0__:{key}")
    times: asyncio.Queue[float] = asyncio.Queue()

    async def forward() -> None:
        async for message in pubsub.listen():
            if message["type"] == "message" and message["data"] == "set":
                times.put_nowait(time.monotonic())

    task = asyncio.create_task(forward())
    try:
        yield times
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await client.aclose()


async def test_histograms_count_what_was_done_and_gauges_show_info_memory(
    redis_server: RedisServer,
) -> None:
    command(redis_server.port, "CONFIG", "SET", "maxmemory", str(MAXMEMORY))
    settings = test_settings(redis_url=redis_server.url, key_prefix="m1")
    async with (
        key_sets(redis_server, "m1:memory") as figures,
        running_server(settings) as server,
    ):
        server.runtime.redis_memory.period_seconds = 0.5  # before the first tick, at 0.5 s
        client = await server.client("viewer", rooms=[ROOM])
        try:
            assert (await client.call("join", {"room": ROOM}))["ok"]
            async with api(server) as http:
                for n in range(5):
                    r = await http.post("/api/v1/publish", json=progress(n))
                    assert r.status_code == 200, r.text
                batch = {"events": [progress(n) for n in range(5, 15)]}
                r = await http.post("/api/v1/publish/batch", json=batch)
                assert r.status_code == 200, r.text
            seqs = [(await client.next(TYPE, timeout=WAIT))["seq"] for _ in range(15)]
            assert seqs == list(range(1, 16))
            # The second figure is stored by a tick that began after the first tick
            # had set the gauges: they hold a measured figure from then on.
            async with asyncio.timeout(WAIT):
                await figures.get()
                await figures.get()
            metrics = await scrape(server)
            info = redis_server.info("memory")
        finally:
            await client.close()

    def value(name: str, **labels: str) -> float:
        return metrics[(name, tuple(sorted(labels.items())))]

    # 5 publishes and 1 batch over HTTP; 15 events handed to this instance's sockets.
    assert value("roomcast_publish_latency_seconds_count", source="api") == 6
    assert value("roomcast_publish_latency_seconds_bucket", source="api", le="+Inf") == 6
    assert 0 < value("roomcast_publish_latency_seconds_sum", source="api") < 6 * WAIT
    assert value("roomcast_fanout_lag_seconds_count") == 15
    assert 0 <= value("roomcast_fanout_lag_seconds_sum") < 15 * WAIT
    # The readiness probe pings every half second, start-up included.
    assert value("roomcast_redis_roundtrip_seconds_count") >= 2
    assert value("roomcast_redis_roundtrip_seconds_bucket", le="0.1") >= 1
    # The process, GC and platform collectors, on the application's registry.
    assert value("process_cpu_seconds_total") > 0
    assert value("process_resident_memory_bytes") > 0
    assert ("python_gc_collections_total", (("generation", "0"),)) in metrics
    assert any(name == "python_info" for name, _ in metrics)
    # The gauges are Redis's own figures (used_memory moves with every command).
    assert value("roomcast_redis_maxmemory_bytes") == MAXMEMORY == int(info["maxmemory"])
    used = value("roomcast_redis_used_memory_bytes")
    assert abs(used - int(info["used_memory"])) < max(1_000_000, 0.2 * used), (used, info)


async def test_memory_mode_exports_nan_gauges_and_no_round_trips() -> None:
    async with running_server(test_settings()) as server:
        async with api(server) as http:
            r = await http.post("/api/v1/publish", json=progress(1))
            assert r.status_code == 200, r.text
        metrics = await scrape(server)
    assert metrics[("roomcast_publish_latency_seconds_count", (("source", "api"),))] == 1
    assert metrics[("roomcast_fanout_lag_seconds_count", ())] == 0  # no member here
    assert metrics[("roomcast_redis_roundtrip_seconds_count", ())] == 0
    assert math.isnan(metrics[("roomcast_redis_used_memory_bytes", ())])
    assert math.isnan(metrics[("roomcast_redis_maxmemory_bytes", ())])


async def test_two_instances_run_info_once_per_period(redis_server: RedisServer) -> None:
    period, wins_wanted = 1.0, 5
    command(redis_server.port, "CONFIG", "SET", "maxmemory", str(MAXMEMORY))
    before = info_calls(redis_server)  # the test's own INFO calls are counted apart
    shared = {"redis_url": redis_server.url, "key_prefix": "m2"}
    async with (
        key_sets(redis_server, "m2:memory_probe") as wins,
        running_server(test_settings(instance_id="a", **shared)) as a,
        running_server(test_settings(instance_id="b", **shared)) as b,
    ):
        for server in (a, b):
            server.runtime.redis_memory.period_seconds = period
        async with asyncio.timeout(wins_wanted * period + 5 * WAIT):
            times = [await wins.get() for _ in range(wins_wanted)]
        # Read at the last win: its INFO may or may not have run yet.
        measured = info_calls(redis_server) - before - 1
        metrics_a, metrics_b = await scrape(a), await scrape(b)
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    # Two instances, each trying every period: one lock per period lets one through.
    # (Without it, each would measure: two wins per period, gaps near zero.)
    assert min(gaps) > 0.8 * period, gaps
    assert measured in (wins_wanted - 1, wins_wanted), (measured, wins_wanted)
    for metrics in (metrics_a, metrics_b):
        assert metrics[("roomcast_redis_maxmemory_bytes", ())] == MAXMEMORY
        assert metrics[("roomcast_redis_used_memory_bytes", ())] > 0
