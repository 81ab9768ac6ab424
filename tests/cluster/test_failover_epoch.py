"""Epochs across a Sentinel failover: kept when nothing was lost, new when writes were.

SPEC 5: the epoch changes when a room's history is lost, not on every failover, and
no (epoch, seq) ever names two different events. Real redis-server and sentinel
processes, a real roomcast server and Socket.IO clients.
"""

from __future__ import annotations

import asyncio
from typing import Any

from roomcast.brokers.redis import RedisBroker
from roomcast.errors import BrokerUnavailable
from tests.support.redis_procs import SentinelCluster, sentinel_cluster
from tests.support.server import RunningServer, running_server, test_settings

__all__ = ["sentinel_cluster"]
ROOMS = ["detection_stream_e1", "detection_stream_e2"]


def _settings(cluster: SentinelCluster) -> Any:
    return test_settings(
        redis_sentinels=cluster.sentinels_setting,
        redis_sentinel_master=cluster.master_name,
        key_prefix="ep",
        connect_rate_per_address=0,
    )


def _broker(server: RunningServer) -> RedisBroker:
    broker = server.runtime.broker
    assert isinstance(broker, RedisBroker)
    return broker


async def _publish(server: RunningServer, session: str, frame: int) -> tuple[str, str, int]:
    pub = await server.runtime.broadcast.detection_event(session, frame_id=frame, detections=[])
    return pub.id, pub.epoch, pub.seq


async def _publish_retrying(
    server: RunningServer, session: str, frame: int
) -> tuple[str, str, int]:
    async with asyncio.timeout(20):
        while True:
            try:
                return await _publish(server, session, frame)
            except BrokerUnavailable:
                await asyncio.sleep(0.1)  # until the new master takes writes


async def test_a_failover_that_lost_nothing_keeps_every_epoch(
    sentinel_cluster: SentinelCluster,
) -> None:
    cluster = sentinel_cluster
    async with running_server(_settings(cluster)) as server:
        broker = _broker(server)
        acked = {
            room: [await _publish(server, room[-2:], i) for i in range(1, 11)] for room in ROOMS
        }
        epochs = {room: acks[-1][1] for room, acks in acked.items()}
        assert cluster.replicated(1000)  # the replica has every write: nothing can be lost
        broker.switched.clear()
        old_port = cluster.manual_failover()
        await cluster.wait_for_new_master(old_port, timeout=20)
        async with asyncio.timeout(10):
            await broker.switched.wait()
        assert broker.last_settled is not None
        assert broker.last_settled.kept == len(ROOMS), broker.last_settled
        for room in ROOMS:
            after = await _publish_retrying(server, room[-2:], 11)
            assert after[1:] == (epochs[room], 11)  # same epoch, the next seq
            acked[room].append(after)
        # A client that saw the first 5 events catches up with every later one.
        client = await server.client("late", rooms=ROOMS)
        try:
            for room in ROOMS:
                ack = await client.call(
                    "join", {"room": room, "since": {"epoch": epochs[room], "seq": 5}}
                )
                assert ack["ok"] and ack["recovered"] is True, ack
                assert ack["epoch"] == epochs[room] and ack["replayed"] == 6
                replayed = [
                    d for n, d in client.log if n == "detection_event" and d["room"] == room
                ]
                assert [e["id"] for e in replayed] == [a[0] for a in acked[room][5:]]
        finally:
            await client.close()
        print(
            f"lossless failover: {broker.last_settled.kept} rooms kept their epoch, "
            f"0 events lost, catch-up recovered every event"
        )


async def test_a_failover_that_lost_writes_starts_new_epochs(
    sentinel_cluster: SentinelCluster,
) -> None:
    cluster = sentinel_cluster
    async with running_server(_settings(cluster)) as server:
        room = ROOMS[0]
        client = await server.client("late", rooms=[room])
        try:
            await _lossy_failover(cluster, server, client, room)
        finally:
            await client.close()
        print("lossy failover: 5 acknowledged writes lost, new epoch, recovered:false, no reuse")


async def _lossy_failover(
    cluster: SentinelCluster, server: RunningServer, client: Any, room: str
) -> None:
    if True:
        acked = [await _publish(server, "e1", i) for i in range(1, 6)]
        assert cluster.replicated(1000)
        cluster.cut_replica()
        try:
            # Acknowledged by the master, never replicated: lost in the failover.
            acked += [await _publish(server, "e1", i) for i in range(6, 11)]
            assert not cluster.replicated(100)
            old_port = cluster.kill_master()
        finally:
            cluster.resume_replica()
        await cluster.wait_for_new_master(old_port, timeout=30)
        old_epoch = acked[-1][1]
        after = [await _publish_retrying(server, "e1", 11)]
        after += [await _publish(server, "e1", i) for i in range(12, 21)]
        assert {epoch for _, epoch, _ in after} != {old_epoch}
        assert after[0][2] == 1 and after[0][1] != old_epoch  # a new epoch, from seq 1
        # No (epoch, seq) names two events, before and after.
        seen: dict[tuple[str, int], str] = {}
        for event_id, epoch, seq in acked + after:
            assert seen.setdefault((epoch, seq), event_id) == event_id
        async with asyncio.timeout(10):
            while True:  # the listener moves to the new master in about a second
                ack = await client.call(
                    "join", {"room": room, "since": {"epoch": old_epoch, "seq": 10}}
                )
                if ack["ok"] or ack["error"]["code"] != "broker_unavailable":
                    break
                await asyncio.sleep(0.1)
        assert ack["ok"] and ack["recovered"] is False and ack["epoch"] == after[-1][1], ack
