"""Webhooks over Redis (SPEC 10): any instance's events, one deliverer, resumed after death."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from tests.support.instances import RoomcastProcess
from tests.support.redis_procs import RedisServer
from tests.support.server import Client
from tests.support.webhook_receiver import WebhookReceiver, client_events

ROOM = "annotation_wh"
SECRET = "webhook-secret-of-the-tests-32-bytes-long"


def _create(aid: str) -> dict[str, Any]:
    return {
        "action": "create",
        "annotation_id": aid,
        "base_version": None,
        "annotation": {"label": "car", "shape": {"type": "bbox", "x": 1, "y": 2, "w": 3, "h": 4}},
    }


def _env(redis: RedisServer, receiver: WebhookReceiver, prefix: str, name: str) -> dict[str, str]:
    return {
        "ROOMCAST_REDIS_URL": redis.url,
        "ROOMCAST_KEY_PREFIX": prefix,
        "ROOMCAST_INSTANCE_ID": name,
        "ROOMCAST_WEBHOOK_URL": receiver.url,
        "ROOMCAST_WEBHOOK_SECRET": SECRET,
    }


async def _publish(client: Client, aid: str) -> dict[str, Any]:
    ack: dict[str, Any] = await client.call(
        "annotation_update", {"room": ROOM, "data": _create(aid)}
    )
    assert ack["ok"], ack
    return ack


async def _lease_holder(redis: RedisServer, prefix: str) -> str:
    client = aioredis.Redis.from_url(redis.url, decode_responses=True)
    try:
        holder = await client.get(f"{prefix}:webhooks:lease")
    finally:
        await client.aclose()
    assert holder is not None
    return str(holder).split("/", 1)[0]


async def test_two_instances_receiver_down_then_deliverer_killed(redis: RedisServer) -> None:
    prefix = "wh"
    async with (
        WebhookReceiver(SECRET) as receiver,
        RoomcastProcess(_env(redis, receiver, prefix, "one")) as one,
        RoomcastProcess(_env(redis, receiver, prefix, "two")) as two,
    ):
        ann, ben = Client(), Client()
        acks: list[dict[str, Any]] = []
        try:
            await ann.connect(one.url, one.token("ann", rooms=[ROOM]))
            await ben.connect(two.url, two.token("ben", rooms=[ROOM]))
            assert (await ann.call("join", {"room": ROOM}))["ok"]
            assert (await ben.call("join", {"room": ROOM}))["ok"]
            for i in range(10):  # both instances publish into the one room
                acks.append(await _publish(ann if i % 2 else ben, f"a{i}"))
            await receiver.wait_for(lambda r: len(client_events(r.events)) >= 10)

            await receiver.stop()  # the platform goes down mid-stream
            for i in range(10, 20):
                acks.append(await _publish(ann if i % 2 else ben, f"a{i}"))
            await receiver.start()
            await receiver.wait_for(lambda r: len(client_events(r.unique())) >= 20)

            # The deliverer dies while a batch is being refused: the other resumes.
            receiver.status = 503
            for i in range(20, 30):
                acks.append(await _publish(ann if i % 2 else ben, f"a{i}"))
            await receiver.wait_for(lambda r: r.refused >= 1)
            holder = await _lease_holder(redis, prefix)
            victim, survivor = (one, two) if holder == "one" else (two, one)
            victim_client = ann if victim is one else ben
            await victim.akill()
            receiver.status = 200
            await receiver.wait_for(lambda r: len(client_events(r.unique())) >= 30, timeout=30)
            # The reaper's departure of the dead instance's user is sent too.
            gone = "ann" if victim_client is ann else "ben"
            await receiver.wait_for(
                lambda r: any(
                    e["kind"] == "presence" and (e["left"] or {}).get("user_id") == gone
                    for e in r.unique()
                ),
                timeout=30,
            )
            assert survivor.running
        finally:
            await ann.close()
            await ben.close()
    envelopes = client_events(receiver.unique(), ROOM)
    assert [e["id"] for e in envelopes] == [a["id"] for a in acks]  # nothing lost, in order
    assert [e["seq"] for e in envelopes] == list(range(1, 31))
    states = [e["state"] for e in receiver.unique() if e["kind"] == "room"]
    assert states[0] == "occupied" and states.count("occupied") == 1  # two users, one room
    assert receiver.bad_signatures == 0
    print(
        f"received {len(receiver.events)} events in {receiver.batches} batches, "
        f"{len(receiver.events) - len(receiver.unique())} resent, {receiver.refused} refused"
    )
