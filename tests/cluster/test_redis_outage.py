"""Redis down: fail fast, keep connections, resume by itself (SPEC section 9)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

import httpx
import redis.asyncio as aioredis

from tests.support.redis_procs import RedisServer
from tests.support.server import running_server

BODY: dict[str, Any] = {
    "room": "project_p",
    "type": "project_progress_update",
    "data": {"total": 2, "completed": 1, "percent": 50},
}


async def _until_ready(http: httpx.AsyncClient, timeout: float = 15) -> float:
    """Seconds until /readyz says 200 (a bounded poll: readiness has no push channel)."""
    started = time.monotonic()
    for _ in range(int(timeout / 0.1)):
        if (await http.get("/readyz")).status_code == 200:
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    raise AssertionError(f"not ready within {timeout} s")


async def test_redis_down_fails_fast_and_service_resumes(
    cluster_settings: Any, redis: RedisServer
) -> None:
    async with running_server(cluster_settings(1)) as server:
        client = await server.client("u", projects=["p"], rooms=["annotation_o"])
        async with httpx.AsyncClient(base_url=server.url, headers=server.api_headers) as http:
            try:
                assert (await client.call("join", {"room": "project_p"}))["ok"]
                assert (await client.call("join", {"room": "annotation_o"}))["ok"]
                assert (await http.post("/api/v1/publish", json=BODY)).status_code == 200
                first = await client.next("project_progress_update")

                await redis.akill()
                started = time.monotonic()
                r = await http.post("/api/v1/publish", json=BODY)
                assert r.status_code == 503, r.text
                # Refused connections: certainly not written, so not outcome_unknown.
                assert r.json()["error"]["code"] == "broker_unavailable"
                assert time.monotonic() - started < 1.5  # redis_timeout_ms at most, not a hang
                data = {
                    "action": "create",
                    "annotation_id": "a",
                    "annotation": {"label": "x", "shape": {"type": "point", "x": 0, "y": 0}},
                }
                ack = await client.call("annotation_update", {"room": "annotation_o", "data": data})
                assert ack["error"]["code"] == "broker_unavailable"
                assert ack["error"]["temporary"] is True
                started = time.monotonic()
                ready = await http.get("/readyz")
                assert ready.status_code == 503 and "broker" in ready.json()["reason"]
                assert time.monotonic() - started < 1.5
                assert client.sio.connected

                await redis.arestart()
                resumed_in = await _until_ready(http)
                r = await http.post("/api/v1/publish", json=BODY)
                assert r.status_code == 200, r.text
                event = await client.next("project_progress_update")
                # Redis came back empty: the room's history is gone, so a new epoch says so.
                assert event["seq"] == r.json()["seq"] and event["epoch"] != first["epoch"]
                assert client.sio.connected
                print(f"ready again {resumed_in:.1f} s after Redis restarted")
            finally:
                await client.close()


async def test_listener_resubscribes_promptly_and_fills_the_gap(
    cluster_settings: Any, redis: RedisServer
) -> None:
    async with running_server(cluster_settings(1)) as a, running_server(cluster_settings(2)) as b:
        client = await a.client("u", projects=["p"])
        try:
            assert (await client.call("join", {"room": "project_p"}))["ok"]
            admin = aioredis.Redis.from_url(redis.url)
            try:
                killed = await admin.client_kill_filter(_type="pubsub")
                assert killed >= 2  # both instances' listeners
            finally:
                await admin.aclose()
            seqs = []
            for _ in range(20):  # published on b while a's listener reconnects
                seqs.append(
                    (await b.runtime.broadcast.project_progress("p", completed=1, total=2)).seq
                )
            got = [(await client.next("project_progress_update", timeout=10))["seq"] for _ in seqs]
            assert got == seqs == list(range(1, 21))
        finally:
            await client.close()


async def test_a_redis_stall_longer_than_dead_after_reaps_no_live_instance(
    cluster_settings: Any, redis: RedisServer
) -> None:
    """Nobody's heartbeat gets through a stall, so nobody may be judged dead by it."""
    fast = {"instance_dead_after_seconds": 1.5}
    async with (
        running_server(cluster_settings(1, **fast)) as a,
        running_server(cluster_settings(2, **fast)) as b,
    ):
        watcher = await a.client("w", projects=["p"])
        other = await b.client("o", projects=["p"])
        try:
            assert (await watcher.call("join", {"room": "project_p"}))["ok"]
            assert (await other.call("join", {"room": "project_p"}))["ok"]
            os.kill(redis.pid, signal.SIGSTOP)  # Redis stalls, its data intact
            try:
                await asyncio.sleep(3)  # the stall itself: longer than dead-after
            finally:
                os.kill(redis.pid, signal.SIGCONT)
            async with httpx.AsyncClient(base_url=a.url, headers=a.api_headers) as http:
                await _until_ready(http)
                # Give the survivors' reapers several full dead-after periods.
                for _ in range(4):
                    await asyncio.sleep(1.0)  # time passing is the point of this test
                    presence = (await http.get("/api/v1/rooms/project_p/presence")).json()
                    assert {m["user_id"] for m in presence["members"]} == {"w", "o"}
                stats = (await http.get("/api/v1/stats")).json()["cluster"]
                assert stats["instances_alive"] == 2
            left = [d for n, d in watcher.log if n == "presence" and d["left"]]
            assert left == []
        finally:
            await watcher.close()
            await other.close()
