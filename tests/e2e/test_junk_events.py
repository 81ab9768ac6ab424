"""Junk from clients: every event with an ack id is answered once, junk is cheap.

Issue 10, finding 4: an event with two arguments, JSON nested ~1000 deep, and the
names python-socketio keeps for itself (`connect`, `disconnect`, `message`) got no
ack or an empty one, and 2,000 junk packets wrote 4,000 tracebacks. These tests send
such packets from the stock python-socketio client and from a raw Socket.IO client
(which writes any text it is given) to a real server, and count acks and log lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.raw_socketio import RawSocketIO
from tests.support.server import RunningServer, running_server, test_settings

SENTINEL_ID = 999_999


class LogCount(logging.Handler):
    """Counts what reaches the root logger (structlog and the libraries end there)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def tracebacks(self) -> int:
        return sum(1 for r in self.records if r.exc_info)

    @property
    def text_bytes(self) -> int:
        return sum(len(self.format(r)) for r in self.records)


@contextlib.contextmanager
def counting_logs() -> Iterator[LogCount]:
    handler = LogCount()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


async def read_acks(client: RawSocketIO, until_id: int) -> tuple[Counter[int], list[Any]]:
    """Acks by id, and the events seen, until the ack of `until_id` (or the close)."""
    acks: Counter[int] = Counter()
    bodies: dict[int, Any] = {}
    events: list[Any] = []
    async with asyncio.timeout(10):
        while True:
            text = await client.recv()
            if text in ("", "1", "41"):
                break
            if text.startswith("43"):
                digits = len(text) - len(text[2:].lstrip("0123456789"))
                ack_id = int(text[2:digits])
                acks[ack_id] += 1
                bodies[ack_id] = json.loads(text[digits:])
                if ack_id == until_id:
                    break
            elif text.startswith("42["):
                events.append(json.loads(text[2:]))
    return acks, [bodies, events]


def error_code(ack: list[Any]) -> str:
    assert len(ack) == 1 and ack[0]["ok"] is False, ack
    return str(ack[0]["error"]["code"])


# the stock client ----------------------------------------------------------------------


async def test_stock_client_event_with_extra_arguments_gets_an_error_ack(
    server: RunningServer,
) -> None:
    client = await server.client("u1", projects=["p1"])
    try:
        two = await client.sio.call("join", ({"room": "project_p1"}, "extra"), timeout=5)
        three = await client.sio.call("leave", ({"room": "project_p1"}, 1, 2), timeout=5)
        none = await client.sio.call("join", timeout=5)
        assert two["ok"] is False and two["error"]["code"] == "invalid_payload"
        assert three["error"]["code"] == "invalid_payload"
        assert none["error"]["code"] == "invalid_payload"
        assert "one argument" in two["error"]["message"]
        # The connection is still fine.
        assert (await client.call("join", {"room": "project_p1"}))["ok"] is True
    finally:
        await client.close()


@pytest.mark.parametrize("name", ["connect", "disconnect", "message", "*"])
async def test_stock_client_reserved_event_names_get_an_error_ack(
    server: RunningServer, name: str
) -> None:
    client = await server.client("u1", projects=["p1"])
    try:
        ack = await client.call(name, {"room": "project_p1"})
        assert ack["ok"] is False and ack["error"]["code"] == "invalid_type"
        # An event called `disconnect` did not make the server forget the connection.
        assert len(server.runtime.gateway.connections) == 1
        assert (await client.call("join", {"room": "project_p1"}))["ok"] is True
    finally:
        await client.close()


# the raw client ------------------------------------------------------------------------


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


JUNK = [
    # (packet after the ack id, expected error code)
    ('["join",{"room":"project_p1"},"extra"]', "invalid_payload"),
    ('["join"]', "invalid_payload"),
    ('["connect",{}]', "invalid_type"),
    ('["disconnect","client disconnect"]', "invalid_type"),
    ('["message",{}]', "invalid_type"),
    ('["*",{}]', "invalid_type"),
    ('["no_such_event",{}]', "invalid_type"),
    ('["join",{"room":', "invalid_payload"),  # truncated JSON
    ('{"event":"join"}', "invalid_payload"),  # not an array
    ("[]", "invalid_payload"),
    ("[5,{}]", "invalid_payload"),  # a name that is not a string
    ("[null]", "invalid_payload"),
    ('["join",' + nested(40) + "]", "invalid_payload"),
    ('["join",' + nested(900) + "]", "invalid_payload"),
    ('["join",' + nested(1200) + "]", "invalid_payload"),
    ('["join",' + nested(20000) + "]", "invalid_payload"),
    (
        '["join",{"room":"project_p1","since":' + '{"a":' * 5000 + "1" + "}" * 5000 + "}]",
        "invalid_payload",
    ),
]


async def test_every_junk_event_with_an_ack_id_is_answered_exactly_once(
    server: RunningServer,
) -> None:
    client = await RawSocketIO.connect(server.url, server.token("u1", projects=["p1"]))
    try:
        with counting_logs() as logs:
            for ack_id, (body, _) in enumerate(JUNK, start=1):
                await client.send(f"42{ack_id}{body}")
            await client.send(f'42{SENTINEL_ID}["join",{{"room":"project_p1"}}]')
            acks, (bodies, _) = await read_acks(client, SENTINEL_ID)
        assert set(acks) == {*range(1, len(JUNK) + 1), SENTINEL_ID}
        assert set(acks.values()) == {1}
        for ack_id, (_, code) in enumerate(JUNK, start=1):
            assert error_code(bodies[ack_id]) == code, JUNK[ack_id - 1][0][:80]
        assert bodies[SENTINEL_ID][0]["ok"] is True
        assert logs.tracebacks == 0
        # One line for the first junk packet, the rest within the same second are
        # folded into the next line.
        assert len(logs.records) <= 2, [r.getMessage()[:200] for r in logs.records]
    finally:
        await client.close()


async def test_junk_without_an_ack_id_is_dropped_quietly(server: RunningServer) -> None:
    client = await RawSocketIO.connect(server.url, server.token("u1", projects=["p1"]))
    try:
        with counting_logs() as logs:
            for body, _ in JUNK:
                await client.send(f"42{body}")
            # Socket.IO packets of no type a client may send (CONNECT_ERROR, 7, 9), and
            # one that is no packet at all.
            for packet in ("44{}", "47[]", "49", "4bad", "4"):
                await client.send(packet)
            await client.send(f'42{SENTINEL_ID}["join",{{"room":"project_p1"}}]')
            acks, _ = await read_acks(client, SENTINEL_ID)
        assert dict(acks) == {SENTINEL_ID: 1}
        assert logs.tracebacks == 0
        assert len(logs.records) <= 2
        assert len(server.runtime.gateway.connections) == 1
    finally:
        await client.close()


def junk_total(server: RunningServer) -> dict[str, float]:
    found: dict[str, float] = {}
    for family in server.runtime.metrics.registry.collect():
        if family.name == "roomcast_junk_packets":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    found[sample.labels["reason"]] = sample.value
    return found


async def test_a_junk_flood_is_counted_logged_once_a_second_and_closed() -> None:
    async with running_server(test_settings()) as server:
        watcher = await server.client("u2", projects=["p1"])
        flooder = await RawSocketIO.connect(server.url, server.token("u1", projects=["p1"]))
        try:
            assert (await watcher.call("join", {"room": "project_p1"}))["ok"] is True
            junk = [body for body, _ in JUNK[:12]]
            sent = 0
            with counting_logs() as logs:
                started = time.monotonic()
                publishing = asyncio.create_task(publish_numbered(server, "project_p1", 50))
                with contextlib.suppress(ConnectionError, OSError):
                    for i in range(2000):
                        await flooder.send(f"42{i + 1}{junk[i % len(junk)]}")
                        sent += 1
                acks, (_, events) = await read_acks(flooder, -1)
                elapsed = time.monotonic() - started
                await publishing
            statuses = [data for name, data in events if name == "connection_status"]
            assert statuses[-1] == {"status": "disconnected", "reason": "protocol_abuse"}
            assert set(acks.values()) == {1}
            assert 50 <= len(acks) < 2000
            assert logs.tracebacks == 0
            assert len(logs.records) <= 2 * (int(elapsed) + 1) + 1, [
                r.getMessage()[:200] for r in logs.records
            ]
            counted = junk_total(server)
            assert sum(counted.values()) >= len(acks)
            assert set(counted) <= {
                "undecodable",
                "too_deep",
                "reserved_event",
                "arguments",
                "unknown_event",
            }
            # The other client is not disturbed: every event, in order.
            seqs = []
            while len(seqs) < 50:
                event = await watcher.next("notification")
                seqs.append(event["data"]["title"])
            assert seqs == [f"n{i}" for i in range(50)]
            assert [c.identity.user_id for c in server.runtime.gateway.connections] == ["u2"]
        finally:
            await flooder.close()
            await watcher.close()


async def publish_numbered(server: RunningServer, room: str, count: int) -> None:
    for i in range(count):
        await server.runtime.broadcast.publish(
            room, "notification", {"title": f"n{i}", "level": "info"}
        )
        await asyncio.sleep(0)
