"""Assumption R7 of brokers/redis_internals.py: the parts of redis-py's asyncio
RedisCluster that brokers/redis_sharded.py reaches into, against a real cluster.

R7 has four parts, one test each (an upgrade that breaks one names it):
  R7.1 `nodes_manager.get_node_from_slot(client.keyslot(key))` names the primary
       that serves `key` (as the cluster itself says, CLUSTER SHARDS);
  R7.2 `nodes_manager.initialize()` reads the slot map again (a moved slot's new owner);
  R7.3 a `ClusterNode` lends a connection with `acquire_connection()`, the caller's
       alone until `release()`, on which pre-packed commands get their replies in order;
  R7.4 a `ClusterNode` carries the `connection_kwargs` (password) and
       `connection_class` (SSLConnection with TLS) that reach it: a pool built from
       them, as ShardedPubSub builds its subscriptions' pools, is let in.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import ConnectionPool, SSLConnection
from redis.exceptions import AuthenticationError, ResponseError

from roomcast.brokers.redis_internals import GET_CONNECTION_ARGS, send_pipeline
from roomcast.brokers.redis_sharded import NodePool, give_back, owner
from tests.compat.harness import broken
from tests.support.redis_cluster import RedisCluster as ClusterProcesses
from tests.support.redis_cluster import redis_cluster

__all__ = ["redis_cluster"]  # imported so that pytest registers the fixture here

PASSWORD = "r7-password-0123456789"


@pytest.fixture
async def client(redis_cluster: ClusterProcesses) -> AsyncIterator[RedisCluster]:
    nodes = [ClusterNode(host, port) for host, port in redis_cluster.addresses]
    cluster = RedisCluster(startup_nodes=nodes, decode_responses=True)
    await cluster.initialize()
    try:
        yield cluster
    finally:
        await cluster.aclose()


def _keys_on_every_primary(cluster: ClusterProcesses) -> dict[int, str]:
    """A key per primary port (room-style hash tags), found by asking the cluster."""
    found: dict[int, str] = {}
    for n in range(1000):
        key = f"r7:{{room{n}}}:meta"
        found.setdefault(cluster.slot_owner(cluster.key_slot(key)).port, key)
        if len(found) == cluster.primaries:
            return found
    raise AssertionError("no key hashes to some primary")


async def test_r7_1_get_node_from_slot_names_the_primary_serving_a_key(
    redis_cluster: ClusterProcesses, client: RedisCluster
) -> None:
    for port, key in _keys_on_every_primary(redis_cluster).items():
        node = owner(client, key)
        assert node.port == port, broken(
            "R7", f"get_node_from_slot(keyslot({key!r})) gave {node.port}, the cluster says {port}"
        )
        assert client.keyslot(key) == redis_cluster.key_slot(key), broken(
            "R7", "RedisCluster.keyslot differs from CLUSTER KEYSLOT"
        )


async def test_r7_2_initialize_reads_a_moved_slot_from_the_cluster(
    redis_cluster: ClusterProcesses, client: RedisCluster
) -> None:
    keys = _keys_on_every_primary(redis_cluster)
    source_port, key = next(iter(keys.items()))
    target_port = next(port for port in keys if port != source_port)
    slot = redis_cluster.key_slot(key)
    assert owner(client, key).port == source_port
    redis_cluster.move_slot(slot, redis_cluster.node_at(target_port))
    # The client's map is the one it read: it still names the old owner...
    assert owner(client, key).port == source_port
    await client.nodes_manager.initialize()
    # ...until it reads the map again.
    assert owner(client, key).port == target_port, broken(
        "R7", "nodes_manager.initialize() did not pick up a slot that moved"
    )


async def test_r7_3_a_node_lends_a_connection_until_released(
    redis_cluster: ClusterProcesses, client: RedisCluster
) -> None:
    key = next(iter(_keys_on_every_primary(redis_cluster).values()))
    node = owner(client, key)
    first = node.acquire_connection()
    second = node.acquire_connection()
    assert first is not second, broken("R7", "acquire_connection lent one connection twice")
    give_back(node, second)
    give_back(node, first)
    again = node.acquire_connection()
    assert again in (first, second), broken("R7", "give_back did not return the connection")
    commands = [("SET", key, "v1"), ("INCR", key), ("GET", key)]
    payload = b"".join(again.pack_commands(commands))
    give_back(node, again)

    # NodePool is how the broker pipelines a shard's calls: replies in order, the
    # error reply in its place, on a connection that stays usable.
    replies = await send_pipeline(NodePool(node), payload, 3)
    assert replies[0] in (True, "OK", b"OK"), broken("R7", f"SET replied {replies[0]!r}")
    assert isinstance(replies[1], ResponseError), broken("R7", f"INCR replied {replies[1]!r}")
    assert replies[2] in ("v1", b"v1"), broken("R7", f"GET replied {replies[2]!r}")
    await client.delete(key)


@pytest.fixture(scope="module")
def password_cluster() -> Iterator[ClusterProcesses]:
    """Three primaries (no replicas) that require a password once joined."""
    cluster = ClusterProcesses(replicas_per_primary=0).start()
    try:
        for node in cluster.nodes:
            node.command("CONFIG", "SET", "requirepass", PASSWORD)
            node.password = PASSWORD
        yield cluster
    finally:
        cluster.stop()


async def test_r7_4_a_node_carries_the_options_that_reach_it(
    password_cluster: ClusterProcesses,
) -> None:
    nodes = [ClusterNode(host, port) for host, port in password_cluster.addresses]
    client = RedisCluster(startup_nodes=nodes, password=PASSWORD, decode_responses=True)
    try:
        await client.initialize()
        node = owner(client, "r7:{room0}:ch")
        assert node.connection_kwargs.get("password") == PASSWORD, broken(
            "R7", "a ClusterNode's connection_kwargs lack the client's password"
        )
        pool = ConnectionPool(connection_class=node.connection_class, **node.connection_kwargs)
        bare = ConnectionPool(host=node.host, port=node.port)
        try:
            ping = await pool.get_connection(*GET_CONNECTION_ARGS)
            try:
                await ping.send_command("PING")
                assert await ping.read_response() in ("PONG", b"PONG")
            finally:
                await pool.release(ping)
            # Without the password the same node refuses: the options are what let it in.
            with pytest.raises((AuthenticationError, ResponseError)):
                refused = await bare.get_connection(*GET_CONNECTION_ARGS)
                await refused.send_command("GET", "r7:{room0}:meta")
                await refused.read_response()
        finally:
            await pool.aclose()
            await bare.aclose()
    finally:
        await client.aclose()

    tls = RedisCluster(startup_nodes=nodes, ssl=True)  # not connected: its nodes only
    try:
        classes = {node.connection_class for node in tls.nodes_manager.startup_nodes.values()}
        assert classes and all(issubclass(c, SSLConnection) for c in classes), broken(
            "R7", f"a TLS client's nodes connect with {classes}"
        )
    finally:
        await tls.aclose()
