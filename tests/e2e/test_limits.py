"""Per-connection rate limiting and slow consumers (SPEC sections 4, 5, 8)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tests.support.raw_socketio import RawPolling, RawSocketIO
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


async def test_slow_polling_consumer_in_detection_room_gets_newest_with_skipped_marker() -> None:
    # On long-polling every message waits in the Engine.IO queue until the client's
    # next GET: the packet limit applies there.
    async with running_server(test_settings(send_queue_limit=8)) as server:
        room = "detection_stream_slow"
        client = await RawPolling.connect(server.url, server.token("u1", rooms=[room]))
        try:
            assert (await client.call("join", {"room": room}))["ok"] is True
            data = {"frame_id": "f", "detections": []}
            for _ in range(30):  # the client does not poll meanwhile
                await server.runtime.broadcast.publish(room, "detection_event", data)
            seen = [d for n, d in await client.events() if n == "detection_event"]
            assert [e["seq"] for e in seen] == list(range(1, 9))
            assert all("skipped" not in e for e in seen)
            await server.runtime.broadcast.publish(room, "detection_event", data)
            await server.runtime.broadcast.publish(room, "detection_event", data)
            marked, after = [d for n, d in await client.events() if n == "detection_event"]
            assert marked["seq"] == 31 and marked["skipped"] == 22  # seqs 9..30
            assert after["seq"] == 32 and "skipped" not in after
            assert server.runtime.gateway.connections
        finally:
            await client.close()


async def test_slow_polling_consumer_of_other_events_is_disconnected() -> None:
    async with running_server(test_settings(send_queue_limit=8)) as server:
        client = await RawPolling.connect(server.url, server.token("u1", projects=["p1"]))
        try:
            assert (await client.call("join", {"room": "project_p1"}))["ok"] is True
            data = {"total": 10, "completed": 1, "percent": 10}
            for _ in range(30):
                await server.runtime.broadcast.publish(
                    "project_p1", "project_progress_update", data
                )
            events: list[tuple[str, Any]] = []
            while not client.closed:
                events += await client.events()
            seqs = [d["seq"] for n, d in events if n == "project_progress_update"]
            assert seqs == list(range(1, len(seqs) + 1))  # nothing silently skipped
            assert events[-1] == (
                "connection_status",
                {"status": "disconnected", "reason": "slow_consumer"},
            )
        finally:
            await client.close()


# On WebSocket, events are written straight to the transport: a consumer is slow when
# more than send_buffer_limit_bytes wait there unsent. The raw client below stops
# reading after its join, so the server's buffer grows once the kernel's are full.

PADDING = "x" * 16_000
MAX_PUBLISHES = 2_000  # bounds the loops below: ~32 MB, far beyond any socket buffer


async def test_websocket_consumer_that_stops_reading_gets_newest_with_skipped_marker() -> None:
    async with running_server(test_settings(send_buffer_limit_bytes=1024)) as server:
        room = "detection_stream_slow"
        raw = await RawSocketIO.connect(server.url, server.token("u1", rooms=[room]))
        try:
            assert (await raw.call("join", {"room": room}))["ok"] is True
            data = {"frame_id": "f", "detections": [], "padding": PADDING}
            publish = server.runtime.broadcast.publish
            counters = server.runtime.counters
            # Publish until one is not delivered: the member's backlog passed the limit.
            first_skipped = 0
            for seq in range(1, MAX_PUBLISHES + 1):
                before = counters.events_out
                await publish(room, "detection_event", data)
                await asyncio.sleep(0)  # one loop iteration: the corked frame is written
                if counters.events_out == before:
                    first_skipped = seq
                    break
            assert first_skipped > 1, "the backlog never reached the limit"
            for _ in range(3):  # still not reading: these are skipped as well
                await publish(room, "detection_event", data)
            received = []
            while len(received) < first_skipped - 1:
                event = await raw.next_event()
                assert event is not None
                if event[0] == "detection_event":
                    received.append(event[1])
            assert [e["seq"] for e in received] == list(range(1, first_skipped))
            assert all("skipped" not in e for e in received)
            # The client has read everything the server wrote: once its backlog drained it
            # is told what was skipped, without waiting for a further event (finding 10).
            event = await raw.next_event()
            assert event == ("skipped", {"room": room, "skipped": 4, "seq": first_skipped + 3})
            await publish(room, "detection_event", data)
            event = await raw.next_event()
            assert event is not None and event[0] == "detection_event"
            assert event[1]["seq"] == first_skipped + 4 and "skipped" not in event[1]
        finally:
            await raw.close()


async def test_websocket_consumer_that_stops_reading_is_disconnected() -> None:
    async with running_server(test_settings(send_buffer_limit_bytes=1024)) as server:
        raw = await RawSocketIO.connect(server.url, server.token("u1", projects=["p1"]))
        try:
            assert (await raw.call("join", {"room": "project_p1"}))["ok"] is True
            data = {"total": 10, "completed": 1, "percent": 10, "padding": PADDING}
            counters = server.runtime.counters
            for _ in range(MAX_PUBLISHES):
                before = counters.events_out
                await server.runtime.broadcast.publish(
                    "project_p1", "project_progress_update", data
                )
                await asyncio.sleep(0)  # one loop iteration: the corked frame is written
                if counters.events_out == before:
                    break  # not delivered: the consumer was found slow
            else:
                raise AssertionError("the backlog never reached the limit")
            await asyncio.wait_for(server.runtime.gateway.connections.wait_empty(), 5)
            events = []
            while (event := await raw.next_event()) is not None:
                events.append(event)
            seqs = [d["seq"] for n, d in events if n == "project_progress_update"]
            assert seqs == list(range(1, len(seqs) + 1))  # nothing silently skipped
            assert events[-1] == (
                "connection_status",
                {"status": "disconnected", "reason": "slow_consumer"},
            )
        finally:
            await raw.close()
