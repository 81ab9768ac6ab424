"""An instance killed with SIGKILL: the survivors reap what it held (SPEC section 9)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import redis.asyncio as aioredis

from tests.support.instances import RoomcastProcess
from tests.support.redis_procs import RedisServer
from tests.support.server import Client

ROOM = "annotation_k"


async def test_sigkilled_instance_is_reaped_within_15_seconds(redis: RedisServer) -> None:
    env = {"ROOMCAST_REDIS_URL": redis.url, "ROOMCAST_KEY_PREFIX": "kill"}
    async with (
        RoomcastProcess({**env, "ROOMCAST_INSTANCE_ID": "victim"}) as victim,
        RoomcastProcess({**env, "ROOMCAST_INSTANCE_ID": "survivor"}) as survivor,
    ):
        watcher, doomed = Client(), Client()
        try:
            await watcher.connect(survivor.url, survivor.token("w", rooms=[ROOM]))
            await doomed.connect(victim.url, victim.token("k", name="K", rooms=[ROOM]))
            assert (await watcher.call("join", {"room": ROOM}))["ok"]
            assert (await doomed.call("join", {"room": ROOM}))["ok"]
            lock = await doomed.call(
                "lock", {"room": ROOM, "annotation_id": "a1", "ttl_ms": 120000}
            )
            assert lock["ok"]
            async with httpx.AsyncClient(
                base_url=survivor.url, headers=survivor.api_headers
            ) as http:
                async with asyncio.timeout(5):  # heartbeats carry the counts twice a second
                    before = (await http.get("/api/v1/stats")).json()["cluster"]
                    while before["connections"] != 2:
                        await asyncio.sleep(0.1)
                        before = (await http.get("/api/v1/stats")).json()["cluster"]
                assert before["instances_alive"] == 2

                killed_at = time.monotonic()
                await victim.akill()
                left = await watcher.next("presence", timeout=20)
                while left["left"] is None or left["left"]["user_id"] != "k":
                    left = await watcher.next("presence", timeout=20)
                reaped_after = time.monotonic() - killed_at
                released = await watcher.next("annotation_lock", timeout=5)
                while released["data"]["state"] != "released":
                    released = await watcher.next("annotation_lock", timeout=5)
                assert released["data"]["holder"]["user_id"] == "k"
                assert reaped_after < 15, reaped_after

                after = (await http.get("/api/v1/stats")).json()["cluster"]
                assert after["instances_alive"] == 1 and after["connections"] == 1
                presence = (await http.get(f"/api/v1/rooms/{ROOM}/presence")).json()
                assert [m["user_id"] for m in presence["members"]] == ["w"]
            # The dead instance's user may connect again up to the limit: its count is gone.
            client = aioredis.Redis.from_url(redis.url, decode_responses=True)
            try:
                assert await client.hlen("kill:{u:k}:conns") == 0
                keys = [k async for k in client.scan_iter("kill:*")]
                assert keys
                ttls = {k: await client.ttl(k) for k in keys}
                assert all(ttl > 0 for ttl in ttls.values()), ttls
            finally:
                await client.aclose()
            print(f"reaped {reaped_after:.1f} s after SIGKILL")
        finally:
            await watcher.close()
            await doomed.close()


async def test_survivor_keeps_serving_while_a_peer_dies(redis: RedisServer) -> None:
    env = {"ROOMCAST_REDIS_URL": redis.url, "ROOMCAST_KEY_PREFIX": "live"}
    async with (
        RoomcastProcess({**env, "ROOMCAST_INSTANCE_ID": "a"}) as a,
        RoomcastProcess({**env, "ROOMCAST_INSTANCE_ID": "b"}) as b,
    ):
        client = Client()
        try:
            await client.connect(b.url, b.token("u", projects=["p"]))
            await client.call("join", {"room": "project_p"})
            await a.akill()
            async with httpx.AsyncClient(base_url=b.url, headers=b.api_headers) as http:
                body: dict[str, Any] = {
                    "room": "project_p",
                    "type": "project_progress_update",
                    "data": {"total": 2, "completed": 1, "percent": 50},
                }
                r = await http.post("/api/v1/publish", json=body)
                assert r.status_code == 200
            event = await client.next("project_progress_update")
            assert event["seq"] == r.json()["seq"]
        finally:
            await client.close()
