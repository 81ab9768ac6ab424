"""Junk below Socket.IO: Engine.IO packets that do not decode are counted, never fatal.

Found alongside issue 10's finding 4: `"9"` (no such Engine.IO packet type) logged
"Unknown receive error" with a traceback per packet, and `"x"`, or `"4"` followed by
3,000 `[`, escaped Engine.IO's WebSocket loop and killed the connection with
uvicorn's "Exception in ASGI application". Now such a packet is junk like Socket.IO
junk (internals.py, E7): counted in `roomcast_junk_packets_total{reason="engineio"}`,
logged at most once a second per connection without a traceback, and a connection
that keeps sending it is closed with `protocol_abuse`. Raw frames, a real server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

import httpx
import pytest

from tests.support.raw_socketio import RawSocketIO
from tests.support.server import RunningServer

ENGINEIO_JUNK = ["9", "x", "4" + "[" * 3000, "0", "6", "b!!", "", "3" + "[" * 5000]


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def tracebacks(self) -> list[str]:
        return [r.getMessage() for r in self.records if r.exc_info]

    def junk_lines(self) -> int:
        return sum(1 for r in self.records if "event.junk" in r.getMessage())


@contextlib.contextmanager
def recording() -> Iterator[Records]:
    handler = Records()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


async def junk_count(server: RunningServer) -> float:
    async with httpx.AsyncClient(base_url=server.url) as http:
        text = (await http.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith('roomcast_junk_packets_total{reason="engineio"}'):
            return float(line.split()[-1])
    return 0.0


@pytest.mark.parametrize("junk", ENGINEIO_JUNK, ids=lambda j: repr(j[:8]))
async def test_an_engineio_packet_that_does_not_decode_is_counted_and_the_connection_lives(
    server: RunningServer, junk: str
) -> None:
    with recording() as logs:
        client = await RawSocketIO.connect(server.url, server.token("u1", projects=["p1"]))
        try:
            async with asyncio.timeout(10):
                for _ in range(3):
                    await client.send(junk)
                ack = await client.call("join", {"room": "project_p1"})
        finally:
            await client.close()
    assert ack["ok"] is True, ack
    assert logs.tracebacks() == []
    assert logs.junk_lines() == 1  # three junk packets within a second: one line
    assert await junk_count(server) == 3


async def test_sustained_engineio_junk_closes_the_connection_and_no_other(
    server: RunningServer,
) -> None:
    bystander = await server.client("u2", projects=["p1"])
    with recording() as logs:
        client = await RawSocketIO.connect(server.url, server.token("u1"))
        try:
            async with asyncio.timeout(10):
                for _ in range(200):
                    await client.send("x")
                events = []
                while (event := await client.next_event()) is not None:
                    events.append(event)
                while await client.recv():  # "41", "1": the server then closes the WebSocket
                    pass
            assert (
                "connection_status",
                {"status": "disconnected", "reason": "protocol_abuse"},
            ) in (events)
            assert (await bystander.call("join", {"room": "project_p1"}))["ok"] is True
        finally:
            await client.close()
            await bystander.close()
    assert logs.tracebacks() == []
    assert logs.junk_lines() <= 2
