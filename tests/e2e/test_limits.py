"""Per-connection rate limiting and slow consumers (SPEC sections 4, 5, 8)."""

from __future__ import annotations

import asyncio
import time

from tests.support.server import running_server, test_settings


async def test_rate_limit_refuses_excess_events_and_notifies_once_a_second() -> None:
    async with running_server(
        test_settings(rate_limit_per_second=100, rate_limit_burst=200)
    ) as server:
        client = await server.client("u1", projects=["p1"])
        try:
            started = time.monotonic()
            acks = await asyncio.gather(
                *(client.call("leave", {"room": "project_p1"}) for _ in range(400))
            )
            elapsed = time.monotonic() - started
            accepted = sum(1 for a in acks if a.get("ok"))
            limited = [a for a in acks if not a.get("ok")]
            assert limited and all(a["error"]["code"] == "rate_limited" for a in limited)
            assert all(a["error"]["retry_after_ms"] > 0 for a in limited)
            assert 200 <= accepted <= 200 + 100 * elapsed + 1
            notice = await client.next("rate_limited")
            assert notice["dropped"] >= 1 and notice["retry_after_ms"] > 0
            notices = [d for n, d in client.log if n == "rate_limited"]
            assert len(notices) <= int(elapsed) + 1
        finally:
            await client.close()


async def test_sustained_abuse_disconnects() -> None:
    settings = test_settings(rate_limit_per_second=10, rate_limit_burst=10, rate_abuse_seconds=0.5)
    async with running_server(settings) as server:
        client = await server.client("u1")
        try:
            deadline = time.monotonic() + 5
            while not client.disconnected.is_set() and time.monotonic() < deadline:
                for _ in range(20):
                    await client.sio.emit("leave", {"room": "project_x"})
                await asyncio.sleep(0.02)  # pace the flood; the wait is for the disconnect below
            await asyncio.wait_for(client.disconnected.wait(), 5)
            statuses = [d for n, d in client.log if n == "connection_status"]
            assert statuses[-1] == {"status": "disconnected", "reason": "rate_limited"}
        finally:
            await client.close()


async def test_slow_consumer_in_detection_room_gets_newest_with_skipped_marker() -> None:
    async with running_server(test_settings(send_queue_limit=8)) as server:
        room = "detection_stream_slow"
        client = await server.client("u1", rooms=[room])
        try:
            await client.call("join", {"room": room})
            data = {"frame_id": "f", "detections": []}
            # No await yields between these publishes, so the socket's writer cannot
            # drain its queue: it overflows deterministically.
            for _ in range(30):
                await server.runtime.broadcast.publish(room, "detection_event", data)
            seen = [await client.next("detection_event") for _ in range(8)]
            assert [e["seq"] for e in seen] == list(range(1, 9))
            assert all("skipped" not in e for e in seen)
            await server.runtime.broadcast.publish(room, "detection_event", data)
            marked = await client.next("detection_event")
            assert marked["seq"] == 31 and marked["skipped"] == 22  # seqs 9..30
            await server.runtime.broadcast.publish(room, "detection_event", data)
            after = await client.next("detection_event")
            assert after["seq"] == 32 and "skipped" not in after
            assert client.sio.connected
        finally:
            await client.close()


async def test_slow_consumer_of_other_events_is_disconnected() -> None:
    async with running_server(test_settings(send_queue_limit=8)) as server:
        client = await server.client("u1", projects=["p1"])
        try:
            await client.call("join", {"room": "project_p1"})
            data = {"total": 10, "completed": 1, "percent": 10}
            for _ in range(30):
                await server.runtime.broadcast.publish(
                    "project_p1", "project_progress_update", data
                )
            await asyncio.wait_for(client.disconnected.wait(), 5)
            statuses = [d for n, d in client.log if n == "connection_status"]
            assert statuses[-1] == {"status": "disconnected", "reason": "slow_consumer"}
            seqs = [d["seq"] for n, d in client.log if n == "project_progress_update"]
            assert seqs == list(range(1, len(seqs) + 1))  # nothing silently skipped
        finally:
            await client.close()
