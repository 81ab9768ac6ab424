"""Events written straight to the WebSocket keep their order with everything else.

A broadcast bypasses Engine.IO's queue only while that queue is empty and its writer
idle (transport/internals.py, E2); these tests drive the cases where both paths meet: a
client that starts on long-polling and upgrades while events flow, and acks that
travel through the queue while events do not.
"""

from __future__ import annotations

import asyncio

from tests.support.raw_socketio import RawSocketIO
from tests.support.server import running_server, test_settings

EVENTS = 300


async def _publish_stream(server: object, room: str, count: int) -> None:
    broadcast = server.runtime.broadcast  # type: ignore[attr-defined]
    for i in range(count):
        await broadcast.publish(room, "notification", {"title": f"n{i}", "level": "info"})
        await asyncio.sleep(0.002)  # pacing: the stream must span the client's upgrade


async def test_client_upgrading_from_polling_gets_every_event_in_order() -> None:
    async with running_server(test_settings()) as server:
        client = await server.client("u1", connect=False)
        # Events into the user's own room start before the client even connects: they
        # cross its polling phase, the upgrade and the direct path.
        publisher = asyncio.create_task(_publish_stream(server, "user_u1", EVENTS))
        try:
            await client.connect(
                server.url, server.token("u1"), transports=["polling", "websocket"]
            )
            await publisher
            last = None
            while last is None or last["seq"] < EVENTS:
                last = await client.next("notification")
            seqs = [d["seq"] for n, d in client.log if n == "notification"]
            assert seqs == list(range(seqs[0], EVENTS + 1))
            assert client.sio.transport() == "websocket"
            assert server.runtime.outlet.writes_direct(client.sio.get_sid())
        finally:
            publisher.cancel()
            await client.close()


async def test_acks_through_the_queue_never_overtake_direct_events() -> None:
    room = "annotation_s1"
    async with running_server(test_settings()) as server:
        client = await server.client("u1", rooms=[room])
        try:
            assert server.runtime.outlet.writes_direct(client.sio.get_sid())
            await client.call("join", {"room": room})
            # A client update is broadcast (straight to the sockets) before its ack is
            # answered (through Engine.IO's queue); the backend's events in between go
            # straight too. When an ack arrives, its event must already be there.
            for i in range(1, 41):
                await server.runtime.broadcast.publish(
                    room,
                    "annotation_validated",
                    {
                        "annotation_id": f"b{i}",
                        "version": 1,
                        "status": "accepted",
                        "validator_id": "v",
                    },
                )
                ack = await client.call(
                    "annotation_update",
                    {
                        "room": room,
                        "data": {
                            "action": "create",
                            "annotation_id": f"a{i}",
                            "base_version": None,
                            "annotation": {
                                "label": "car",
                                "shape": {"type": "bbox", "x": 1, "y": 2, "w": 3, "h": 4},
                            },
                        },
                    },
                )
                assert ack["ok"] is True and ack["seq"] == 2 * i
                seqs = [d["seq"] for n, d in client.log if n.startswith("annotation_")]
                assert seqs == list(range(1, 2 * i + 1))
        finally:
            await client.close()


async def test_greeting_written_direct_follows_the_queued_connect_packet() -> None:
    # The CONNECT packet goes through Engine.IO's queue; the greeting right after it
    # must wait behind it, or the client would see an event before its namespace.
    async with running_server(test_settings()) as server:
        for _ in range(20):
            raw = await RawSocketIO.connect(server.url, server.token("u1"))  # checks "40" first
            try:
                event = await raw.next_event()
                assert event is not None and event[0] == "connection_status"
                assert event[1]["status"] == "connected"
            finally:
                await raw.close()
