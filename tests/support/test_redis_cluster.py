"""Self-tests of the Redis Cluster helper: six real nodes joined, every slot served, all stopped."""

from __future__ import annotations

import os

import pytest
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

from tests.support.redis_cluster import SLOTS, RedisCluster, cluster_info


def assert_gone(pid: int) -> None:
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_cluster_starts_serves_every_slot_and_stops_every_pid() -> None:
    cluster = await RedisCluster().astart()
    pids = cluster.pids
    try:
        assert cluster.started_in is not None
        print(f"cluster of {len(pids)} nodes ready in {cluster.started_in:.2f} s")
        assert len(pids) == 6 and len(set(pids)) == 6
        for node in cluster.nodes:
            info = cluster_info(node)
            assert info["cluster_state"] == "ok"
            assert info["cluster_slots_assigned"] == str(SLOTS)

        shards = cluster.shards()
        assert len(shards) == 3
        covered = sorted(r for shard in shards for r in shard["slots"])
        slots = [s for start, end in covered for s in range(start, end + 1)]
        assert slots == list(range(SLOTS))  # each slot once, none missing
        for shard in shards:
            assert shard["primary"] is not None and len(shard["replicas"]) == 1

        # A cluster client writes to keys on every shard and reads them back.
        host, port = cluster.addresses[0]
        client = AsyncRedisCluster(host=host, port=port, decode_responses=True)
        try:
            keys = [f"probe:{{{n}}}" for n in range(30)]
            owners = {cluster.slot_owner(cluster.key_slot(k)).port for k in keys}
            assert len(owners) == 3
            for key in keys:
                await client.set(key, key)
            assert [await client.get(k) for k in keys] == keys
        finally:
            await client.aclose()
    finally:
        cluster.stop()
    for pid in pids:
        assert_gone(pid)
    assert all(not node.running for node in cluster.nodes)
