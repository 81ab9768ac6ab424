"""A subscriber whose catch-up failed still gets a restarted room's events in order.

Found in a fresh-clone CI run of test_redis_cluster_failover (cluster_failover): the
subscriber's session was reopened while the shard failed over, its catch-up read of
the failed shard's room was refused (the slot map was still moving) and the events
the new primary had taken meanwhile, the first of a new epoch, never came: the next
live event opened the new epoch and nothing filled the seqs before it. Here the same
path is made on purpose with one Redis: the room's stream restarts (its keys gone, as
after a restart of a Redis without persistence), Redis drops the subscriber over its
pub/sub output limit at the new epoch's first event, and the catch-up read after the
reconnect is refused once. Before the fix the new epoch's first event was lost both
when another event followed and when none did.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis

from roomcast.brokers.base import HistoryPage, PublishCommand
from roomcast.brokers.redis import RedisBroker
from roomcast.brokers.redis_client import connect
from roomcast.config import Settings
from roomcast.errors import BrokerUnavailable
from tests.contract.sink import RecordingSink
from tests.support.redis_procs import RedisServer

ROOM = "project_p"
PUBSUB_DEFAULT = "pubsub 33554432 8388608 60"


def _broker(redis: RedisServer, sink: RecordingSink | None = None) -> RedisBroker:
    broker = RedisBroker(
        connect(Settings(redis_url=redis.url)),
        prefix="cu",
        history_size=100,
        history_ttl_seconds=600,
    )
    if sink is not None:
        broker.attach(sink)
    return broker


@pytest.mark.parametrize("then_live", [True, False], ids=["then_a_live_event", "then_quiet"])
async def test_a_new_epoch_missed_live_is_filled_from_history(
    redis: RedisServer, monkeypatch: Any, then_live: bool
) -> None:
    """Filled by the next live event's gap check, or, when none comes, by the
    catch-up tried again once the listener is idle."""
    sink = RecordingSink()
    publisher, subscriber = _broker(redis), _broker(redis, sink)
    admin = aioredis.Redis.from_url(redis.url, decode_responses=True)
    try:
        await publisher.start()
        await subscriber.start()
        await subscriber.subscribe(ROOM)
        old = [await publisher.publish(PublishCommand(ROOM, "tick", {"n": n})) for n in (1, 2)]
        await sink.wait_for(lambda s: s.seqs(ROOM) == [1, 2])

        refused = asyncio.Event()
        history = subscriber.history

        async def refused_once(room: str, since_seq: int, limit: int) -> HistoryPage:
            if not refused.is_set():
                refused.set()
                raise BrokerUnavailable("the slot's owner cannot answer now")
            return await history(room, since_seq, limit)

        monkeypatch.setattr(subscriber, "history", refused_once)
        room_keys = subscriber.keys.room(ROOM)
        await admin.delete(room_keys.meta, room_keys.hist)
        # The new epoch's first event is over the pub/sub output limit: Redis closes the
        # subscriber's connection instead of sending it.
        await admin.config_set("client-output-buffer-limit", "pubsub 1024 0 0")
        try:
            big = "x" * 64_000
            first = await publisher.publish(PublishCommand(ROOM, "tick", {"n": 3, "pad": big}))
        finally:
            await admin.config_set("client-output-buffer-limit", PUBSUB_DEFAULT)
        assert first.publication.epoch != old[0].publication.epoch
        assert first.publication.seq == 1
        await asyncio.wait_for(refused.wait(), 10)  # reconnected; its catch-up refused

        new_epoch = first.publication.epoch
        want = [1]
        if then_live:
            second = await publisher.publish(PublishCommand(ROOM, "tick", {"n": 4}))
            assert second.publication.epoch == new_epoch
            want = [1, 2]

        def delivered(s: RecordingSink) -> list[int]:
            return [p.seq for p in s.publications if p.epoch == new_epoch]

        await sink.wait_for(lambda s: want[-1] in delivered(s))
        assert delivered(sink) == want
        assert [p.data["n"] for p in sink.publications] == [1, 2, 3, 4][: 2 + len(want)]
    finally:
        await admin.aclose()
        await subscriber.aclose()
        await publisher.aclose()
