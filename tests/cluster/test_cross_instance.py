"""Several instances over one Redis behave as one service (SPEC sections 1, 5, 9)."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from typing import Any

import httpx
import pytest
import socketio

from tests.support.redis_procs import RedisServer
from tests.support.server import Client, running_server

ROOM = "detection_stream_x"


def detection(i: int) -> dict[str, Any]:
    return {"frame_id": i, "detections": []}


async def test_events_from_client_http_and_broadcast_reach_every_instance(
    cluster_settings: Any,
) -> None:
    async with running_server(cluster_settings(1)) as a, running_server(cluster_settings(2)) as b:
        on_a = await a.client("ann", rooms=["annotation_1"])
        on_b = await b.client("bob", rooms=["annotation_1"])
        try:
            for client in (on_a, on_b):
                assert (await client.call("join", {"room": "annotation_1"}))["ok"]
            data = {
                "action": "create",
                "annotation_id": "a1",
                "annotation": {"label": "car", "shape": {"type": "point", "x": 1, "y": 2}},
            }
            ack = await on_a.call("annotation_update", {"room": "annotation_1", "data": data})
            assert ack["ok"] and ack["seq"] == 1
            assert (await on_b.next("annotation_update"))["id"] == ack["id"]
            async with httpx.AsyncClient(base_url=b.url, headers=b.api_headers) as http:
                r = await http.post(
                    "/api/v1/publish",
                    json={
                        "room": "annotation_1",
                        "type": "annotation_validated",
                        "data": {
                            "annotation_id": "a1",
                            "version": 1,
                            "status": "accepted",
                            "validator_id": "v",
                        },
                    },
                )
                assert r.status_code == 200, r.text
            for client in (on_a, on_b):
                assert (await client.next("annotation_validated"))["seq"] == 2
            await a.runtime.broadcast.notify("bob", title="hello")
            note = await on_b.next("notification")
            assert note["room"] == "user_bob" and note["data"]["title"] == "hello"
            joined = [
                d["joined"]["user_id"] for n, d in on_a.log if n == "presence" and d["joined"]
            ]
            assert joined == ["ann", "bob"]  # bob joined on the other instance
        finally:
            await on_a.close()
            await on_b.close()


async def test_two_publishers_on_two_instances_give_one_contiguous_order(
    cluster_settings: Any,
) -> None:
    async with running_server(cluster_settings(1)) as a, running_server(cluster_settings(2)) as b:
        subscribers = [await s.client(f"s{i}", rooms=[ROOM]) for i, s in enumerate((a, b, a, b))]
        try:
            for client in subscribers:
                assert (await client.call("join", {"room": ROOM}))["ok"]

            async def publish(server: Any, base: int) -> None:
                for i in range(500):
                    await server.runtime.broadcast.publish(
                        ROOM, "detection_event", detection(base + i)
                    )

            await asyncio.gather(publish(a, 0), publish(b, 1000))
            orders = []
            for client in subscribers:
                async with asyncio.timeout(20):
                    while len([n for n, _ in client.log if n == "detection_event"]) < 1000:
                        await client.next("detection_event")
                events = [d for n, d in client.log if n == "detection_event"]
                assert [e["seq"] for e in events] == list(range(1, 1001))
                orders.append([e["data"]["frame_id"] for e in events])
            assert all(order == orders[0] for order in orders)  # one total order
        finally:
            for client in subscribers:
                await client.close()


async def test_worker_process_publishes_through_redis(
    cluster_settings: Any, redis: RedisServer
) -> None:
    settings = cluster_settings(1)
    async with running_server(settings) as server:
        client = await server.client("viewer", rooms=[ROOM])
        try:
            await client.call("join", {"room": ROOM})
            script = textwrap.dedent(
                f"""
                import asyncio
                from roomcast import EventBroadcastService, Settings

                async def main():
                    settings = Settings(redis_url={redis.url!r}, key_prefix={settings.key_prefix!r})
                    async with EventBroadcastService.from_settings(settings) as service:
                        published = await service.detection_event("x", frame_id="w1", detections=[])
                        print(published.seq)

                asyncio.run(main())

                from roomcast import BlockingEventBroadcastService  # a non-asyncio worker
                settings = Settings(redis_url={redis.url!r}, key_prefix={settings.key_prefix!r})
                with BlockingEventBroadcastService.from_settings(settings) as service:
                    print(service.detection_event("x", frame_id="w2", detections=[]).seq)
                """
            )
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE
            )
            out, _ = await asyncio.wait_for(proc.communicate(), 30)
            printed = [line for line in out.splitlines() if line.isdigit()]  # not log lines
            assert proc.returncode == 0 and printed == [b"1", b"2"]
            event = await client.next("detection_event")
            assert event["data"]["frame_id"] == "w1" and event["seq"] == 1
            event = await client.next("detection_event")
            assert event["data"]["frame_id"] == "w2" and event["seq"] == 2
        finally:
            await client.close()


async def test_disconnect_user_reaches_every_instance_and_limits_are_cluster_wide(
    cluster_settings: Any,
) -> None:
    async with (
        running_server(cluster_settings(1, max_connections_per_user=2)) as a,
        running_server(cluster_settings(2, max_connections_per_user=2)) as b,
    ):
        first = await a.client("u")
        second = await b.client("u")
        third = Client()
        try:
            refused: dict[str, Any] = {}
            third.sio.on("connect_error", lambda data: refused.update(data or {}))
            with pytest.raises(socketio.exceptions.ConnectionError):
                await third.connect(a.url, a.token("u"))
            assert refused.get("data", {}).get("code") == "connection_limit"
            async with httpx.AsyncClient(base_url=a.url, headers=a.api_headers) as http:
                stats = (await http.get("/api/v1/stats")).json()
                assert stats["cluster"]["instances_alive"] == 2
                r = await http.post("/api/v1/users/u/disconnect", json={"reason": "revoked"})
                assert r.status_code == 200
            await asyncio.wait_for(first.disconnected.wait(), 5)
            await asyncio.wait_for(second.disconnected.wait(), 5)
        finally:
            for client in (first, second, third):
                await client.close()
