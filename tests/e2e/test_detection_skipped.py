"""A detection client that fell behind learns what it missed even when the stream stops.

Issue 10, finding 10: the `skipped` count rode on the next `detection_event` only, so
a client that fell behind just before the stream stopped never learned it had missed
frames. Now, once its backlog drains, it is sent the unsequenced notice `skipped`
`{"room", "skipped": n, "seq": <last seq skipped>}`. A raw client stops reading while
a burst is published, the stream stops, then it reads.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.support.raw_socketio import RawSocketIO
from tests.support.server import running_server, test_settings

ROOM = "detection_stream_burst"
PADDING = "x" * 16_000
MAX_PUBLISHES = 2_000  # bounds the burst: ~32 MB, far beyond any socket buffer
SKIPPED_AFTER = 5  # published once the first was skipped, while still not reading

CASES = {
    # WireProtocol, a limit under the transport's high-water mark: drained is rechecked
    "wire-small-limit": ("roomcast", {"send_buffer_limit_bytes": 1024}),
    # WireProtocol, the default 1 MiB limit: drained is the transport's resume_writing
    "wire-default-limit": ("roomcast", {}),
    # uvicorn's own WebSocket protocol: Engine.IO's queue, drained when its writer empties it
    "uvicorn-queue": ("uvicorn", {"send_queue_limit": 8}),
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_a_client_behind_a_stopped_stream_gets_the_skipped_count(case: str) -> None:
    ws, overrides = CASES[case]
    async with running_server(test_settings(**overrides), ws=ws) as server:
        raw = await RawSocketIO.connect(server.url, server.token("u1", rooms=[ROOM]))
        try:
            assert (await raw.call("join", {"room": ROOM}))["ok"] is True
            data = {"frame_id": "f", "detections": [], "padding": PADDING}
            publish = server.runtime.broadcast.publish
            counters = server.runtime.counters
            first_skipped = 0
            for seq in range(1, MAX_PUBLISHES + 1):
                before = counters.events_out
                await publish(ROOM, "detection_event", data)
                await asyncio.sleep(0)  # one loop iteration: the corked frame is written
                if counters.events_out == before:
                    first_skipped = seq
                    break
            assert first_skipped > 1, "the backlog never reached the limit"
            for _ in range(SKIPPED_AFTER):
                await publish(ROOM, "detection_event", data)
            last = first_skipped + SKIPPED_AFTER
            # The stream has stopped. Now the client reads.
            events: list[tuple[str, Any]] = []
            async with asyncio.timeout(10):
                while not events or events[-1][0] != "skipped":
                    event = await raw.next_event()
                    assert event is not None, events[-3:]
                    events.append(event)
        finally:
            await raw.close()
    seqs = [d["seq"] for name, d in events if name == "detection_event"]
    assert seqs == list(range(1, first_skipped)), seqs
    assert all("skipped" not in d for name, d in events if name == "detection_event")
    assert events[-1] == ("skipped", {"room": ROOM, "skipped": SKIPPED_AFTER + 1, "seq": last})
