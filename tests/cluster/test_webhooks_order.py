"""Webhooks in room order across instances (SPEC 10): one room, two publishing instances.

Many clients on two `roomcast serve` processes publish into ONE room at the same
moment. The receiver refuses batches while they publish, so the whole journal is
still in Redis afterwards: its raw order must already be the room's seq order
(each client event is journaled in the step that sequences it, not after it),
and once the receiver accepts, the room's client events arrive in strictly
increasing seq with no gap and nothing missing.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import redis.asyncio as aioredis

from tests.support.instances import RoomcastProcess
from tests.support.redis_procs import RedisServer
from tests.support.server import Client
from tests.support.webhook_receiver import WebhookReceiver, client_events

ROOM = "annotation_order"
SECRET = "webhook-secret-of-the-tests-32-bytes-long"
CLIENTS_PER_INSTANCE = 10
EVENTS_PER_CLIENT = 10
TOTAL = 2 * CLIENTS_PER_INSTANCE * EVENTS_PER_CLIENT


def _env(redis: RedisServer, receiver: WebhookReceiver, prefix: str, name: str) -> dict[str, str]:
    return {
        "ROOMCAST_REDIS_URL": redis.url,
        "ROOMCAST_KEY_PREFIX": prefix,
        "ROOMCAST_INSTANCE_ID": name,
        "ROOMCAST_WEBHOOK_URL": receiver.url,
        "ROOMCAST_WEBHOOK_SECRET": SECRET,
        "ROOMCAST_WEBHOOK_EVENTS": "client_event",
        "ROOMCAST_CONNECT_RATE_PER_ADDRESS": "0",
    }


def _create(aid: str) -> dict[str, Any]:
    return {
        "action": "create",
        "annotation_id": aid,
        "base_version": None,
        "annotation": {"label": "car", "shape": {"type": "bbox", "x": 1, "y": 2, "w": 3, "h": 4}},
    }


async def _publish_all(client: Client, name: str) -> list[dict[str, Any]]:
    """One client's events, each sent as soon as the previous was acknowledged."""
    acks = []
    for i in range(EVENTS_PER_CLIENT):
        ack: dict[str, Any] = await client.call(
            "annotation_update", {"room": ROOM, "data": _create(f"{name}-{i}")}
        )
        assert ack["ok"], ack
        acks.append(ack)
    return acks


async def _journal_seqs(redis: RedisServer, prefix: str) -> list[int]:
    """The seqs of the room's client events in the journal, in its raw order."""
    client = aioredis.Redis.from_url(redis.url, decode_responses=True)
    try:
        entries = await client.xrange(f"{prefix}:webhooks:stream")
    finally:
        await client.aclose()
    seqs = []
    for _, fields in entries:
        event = json.loads(fields["e"])
        if event["kind"] == "client_event" and event["event"]["room"] == ROOM:
            seqs.append(int(event["event"]["seq"]))
    return seqs


def inversions(seqs: list[int]) -> int:
    """Adjacent pairs out of order: 0 when the journal is in seq order."""
    return sum(1 for a, b in itertools.pairwise(seqs) if b < a)


async def test_one_room_two_instances_delivered_in_seq_order(redis: RedisServer) -> None:
    prefix = "who"
    async with (
        WebhookReceiver(SECRET) as receiver,
        RoomcastProcess(_env(redis, receiver, prefix, "one")) as one,
        RoomcastProcess(_env(redis, receiver, prefix, "two")) as two,
    ):
        clients = [Client() for _ in range(2 * CLIENTS_PER_INSTANCE)]
        try:
            for n, client in enumerate(clients):
                server = one if n % 2 else two
                await client.connect(server.url, server.token(f"u{n}", rooms=[ROOM]))
                assert (await client.call("join", {"room": ROOM}))["ok"]
            receiver.status = 503  # nothing acknowledged: the journal keeps every entry
            acks = await asyncio.gather(*(_publish_all(c, f"u{n}") for n, c in enumerate(clients)))
            journaled = await _journal_seqs(redis, prefix)
            receiver.status = 200
            await receiver.wait_for(
                lambda r: len(client_events(r.unique(), ROOM)) >= TOTAL, timeout=30
            )
        finally:
            for client in clients:
                await client.close()
    delivered = [e["seq"] for e in client_events(receiver.unique(), ROOM)]
    print(f"inversions: journal {inversions(journaled)}, delivered {inversions(delivered)}")
    assert sorted(journaled) == list(range(1, TOTAL + 1))
    assert inversions(journaled) == 0, journaled
    assert delivered == list(range(1, TOTAL + 1))  # strictly increasing, no gap
    assert {a["id"] for batch in acks for a in batch} == {
        e["id"] for e in client_events(receiver.unique(), ROOM)
    }
    assert receiver.bad_signatures == 0
