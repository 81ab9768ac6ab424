"""A shard primary's failover, and a live room's slot migration, in Redis Cluster mode,
under a steady publish stream (SPEC 9).

Two brokers on a three-shard cluster: one publishes to a room on the shard that fails
over (or whose slot moves) and to a room on another shard, the other is subscribed to
both. Publishing to
the other shard's room never fails; the failed shard's room resumes by itself, under
a new epoch (the new primary's replication history differs: sequence.lua), and no
(epoch, seq) is handed out twice; the subscriber, whose shard subscription was
re-established on the new primary, gets every event of the new epoch and of the other
room, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import pytest

from roomcast.brokers.base import PublishCommand
from roomcast.brokers.redis import RedisBroker
from roomcast.brokers.redis_client import connect
from roomcast.config import Settings
from roomcast.errors import BrokerUnavailable
from tests.contract.sink import RecordingSink
from tests.support.redis_cluster import RedisCluster
from tests.support.redis_server import RedisServer

RESUME_WITHIN = 15.0  # seconds for the failed shard's room to take publishes again


def _room_on(cluster: RedisCluster, want: Callable[[RedisServer], bool], prefix: str) -> str:
    for n in range(1000):
        room = f"room{n}"
        if want(cluster.slot_owner(cluster.key_slot(f"{prefix}:{{{room}}}:meta"))):
            return room
    raise AssertionError("no room hashes there")


async def _broker(cluster: RedisCluster, sink: RecordingSink) -> RedisBroker:
    settings = Settings(redis_cluster_nodes=cluster.nodes_setting, key_prefix="cfo")
    broker = RedisBroker(
        connect(settings), prefix="cfo", history_size=10_000, history_ttl_seconds=600
    )
    broker.attach(sink)
    await broker.start()
    return broker


Fault = Callable[[RedisCluster, RedisServer, int], object]


async def _run(fault: Fault) -> None:
    cluster = await RedisCluster().astart()
    publisher: RedisBroker | None = None
    subscriber: RedisBroker | None = None
    try:
        failing = cluster.slot_owner(cluster.key_slot("cfo:{room0}:meta"))
        hit = _room_on(cluster, lambda node: node.port == failing.port, "cfo")
        other = _room_on(cluster, lambda node: node.port != failing.port, "cfo")
        sink = RecordingSink()
        publisher = await _broker(cluster, RecordingSink())
        subscriber = await _broker(cluster, sink)
        await subscriber.subscribe(hit)
        await subscriber.subscribe(other)

        acked: dict[str, list[tuple[str, int]]] = {hit: [], other: []}
        refused: dict[str, int] = {hit: 0, other: 0}
        stop = asyncio.Event()

        async def publish(room: str) -> None:
            assert publisher is not None
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    out = await publisher.publish(PublishCommand(room, "tick", {"n": n}))
                except BrokerUnavailable:
                    refused[room] += 1
                    await asyncio.sleep(0.02)  # a paced publisher, not a wait for an event
                    continue
                acked[room].append((out.publication.epoch, out.publication.seq))
                await asyncio.sleep(0.005)

        tasks = [asyncio.create_task(publish(hit)), asyncio.create_task(publish(other))]
        await sink.wait_for(lambda s: len(s.seqs(hit)) >= 20 and len(s.seqs(other)) >= 20)
        before = len(acked[hit])
        began = time.monotonic()
        await asyncio.to_thread(fault, cluster, failing, cluster.key_slot(f"cfo:{{{hit}}}:meta"))
        # The failed shard's room takes publishes again, under a new epoch.
        first_epoch = acked[hit][0][0]
        while not any(epoch != first_epoch for epoch, _ in acked[hit][before:]):
            assert time.monotonic() - began < RESUME_WITHIN, f"{hit} did not resume"
            await sink.wait_for(lambda s: True)  # woken by the next delivery
            await asyncio.sleep(0.05)
        await sink.wait_for(lambda s: len(s.seqs(hit)) >= 20 + 20)
        stop.set()
        await asyncio.gather(*tasks)

        assert refused[other] == 0, "the other shard's room must never stop"
        for room in (hit, other):
            assert len(set(acked[room])) == len(acked[room]), "an (epoch, seq) handed out twice"
        last_epoch = acked[hit][-1][0]
        assert last_epoch != first_epoch

        def delivered(s: RecordingSink, room: str, epoch: str | None = None) -> list[int]:
            return [p.seq for p in s.publications if p.room == room and epoch in (None, p.epoch)]

        want_hit = [seq for epoch, seq in acked[hit] if epoch == last_epoch]
        want_other = [seq for _, seq in acked[other]]
        try:
            await sink.wait_for(
                lambda s: (
                    delivered(s, hit, last_epoch) == want_hit and delivered(s, other) == want_other
                ),
                timeout=10,
            )
        except TimeoutError:
            got_hit, got_other = delivered(sink, hit, last_epoch), delivered(sink, other)
            raise AssertionError(
                f"{hit}: new epoch missing {sorted(set(want_hit) - set(got_hit))[:20]}"
                f" (ordered: {got_hit == sorted(got_hit)});"
                f" {other}: missing {sorted(set(want_other) - set(got_other))[:20]}"
                f" (ordered: {got_other == sorted(got_other)})"
            ) from None
        print(
            f"{fault.__name__}: {hit} refused {refused[hit]} publishes,"
            f" resumed under a new epoch; {other} refused none"
        )
    finally:
        for broker in (publisher, subscriber):
            if broker is not None:
                with contextlib.suppress(Exception):
                    await broker.aclose()
        cluster.stop()


def _graceful(cluster: RedisCluster, primary: RedisServer, slot: int) -> object:
    return cluster.failover(primary)


def _sigkill(cluster: RedisCluster, primary: RedisServer, slot: int) -> object:
    return cluster.kill_primary(primary)


def _reshard(cluster: RedisCluster, primary: RedisServer, slot: int) -> object:
    """The room's slot, keys included, moves to another primary while it is published to."""
    target = next(
        cluster.node_at(s["primary"])
        for s in cluster.shards()
        if s["primary"] != primary.port and s["slots"]
    )
    cluster.move_slot(slot, target)
    return target


@pytest.mark.parametrize(
    "fault", [_graceful, _sigkill, _reshard], ids=["cluster_failover", "sigkill", "reshard"]
)
async def test_a_shard_fails_over_under_publish_load(fault: Any) -> None:
    await _run(fault)
