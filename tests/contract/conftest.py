"""The contract suites, one per role, run over every backend: memory, a standalone
Redis, Redis behind Sentinel (a master, a replica and three sentinels) and a Redis
Cluster (three primaries, three replicas), each started once per module: each test
has its own key prefix."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from roomcast.brokers.memory import MemoryBroker
from roomcast.brokers.redis import RedisBroker
from roomcast.brokers.redis_client import connect, disconnect
from roomcast.config import Settings
from roomcast.presence.memory import MemoryPresenceStore
from roomcast.presence.redis import RedisPresenceStore
from tests.support.redis_cluster import RedisCluster
from tests.support.redis_procs import RedisServer, SentinelCluster

_prefixes = itertools.count()


@pytest.fixture(scope="module")
def shared_redis() -> Iterator[RedisServer]:
    """One redis-server for a module's contract tests; each test has its own key prefix."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def shared_sentinels() -> Iterator[SentinelCluster]:
    """One Sentinel set for a module's contract tests (started once: it takes seconds)."""
    cluster = SentinelCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def shared_cluster() -> Iterator[RedisCluster]:
    """One Redis Cluster for a module's contract tests (started once: it takes seconds)."""
    cluster = RedisCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


# Compares the broker's figure with `shared_redis`'s own INFO: over a cluster it must
# compare with the cluster's fullest primary instead (a change to that module).
@pytest.fixture(params=["memory", "redis", "sentinel", "cluster"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings_for(backend: str, request: pytest.FixtureRequest) -> Any:
    def make(**overrides: Any) -> Settings:
        base: dict[str, Any] = {"key_prefix": f"t{next(_prefixes)}", "instance_id": "i1"}
        if backend == "redis":
            base["redis_url"] = request.getfixturevalue("shared_redis").url
        elif backend == "sentinel":
            cluster: SentinelCluster = request.getfixturevalue("shared_sentinels")
            base["redis_sentinels"] = cluster.sentinels_setting
            base["redis_sentinel_master"] = cluster.master_name
        elif backend == "cluster":
            base["redis_cluster_nodes"] = request.getfixturevalue("shared_cluster").nodes_setting
        base.update(overrides)
        return Settings(**base)

    return make


@pytest.fixture
async def make_broker(backend: str, settings_for: Any) -> AsyncIterator[Any]:
    """Build brokers (started, with a recording sink); all are closed after the test."""
    made: list[Any] = []

    async def make(**overrides: Any) -> Any:
        settings = settings_for(**overrides)
        broker: Any
        if backend == "memory":
            broker = MemoryBroker(
                history_size=settings.history_size,
                history_ttl_seconds=settings.history_ttl_seconds,
            )
        else:
            broker = RedisBroker(
                connect(settings),
                prefix=settings.key_prefix,
                history_size=settings.history_size,
                history_ttl_seconds=settings.history_ttl_seconds,
            )
        from tests.contract.sink import RecordingSink

        sink = RecordingSink()
        broker.attach(sink)
        await broker.start()
        made.append(broker)
        return broker, sink

    yield make
    for broker in made:
        await broker.aclose()


@pytest.fixture
async def make_presence(backend: str, settings_for: Any) -> AsyncIterator[Any]:
    made: list[Any] = []

    async def make(instance_id: str = "i1", prefix: str | None = None) -> Any:
        settings = settings_for(**({"key_prefix": prefix} if prefix else {}))
        if backend == "memory":
            return MemoryPresenceStore(instance_id)
        client = connect(settings)
        made.append(client)
        return RedisPresenceStore(client, prefix=settings.key_prefix, instance_id=instance_id)

    yield make
    for client in made:
        await disconnect(client)  # the sentinels too, in Sentinel mode
