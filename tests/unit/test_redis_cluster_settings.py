"""ROOMCAST_REDIS_CLUSTER_NODES: parsed, a Redis mode of its own, refused where it cannot work."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from redis.asyncio.cluster import RedisCluster

from roomcast.brokers.redis_client import connect, timeout_of
from roomcast.config import Settings


def test_cluster_nodes_are_parsed_and_use_redis() -> None:
    settings = Settings(redis_cluster_nodes="127.0.0.1:7000, [::1]:7001,")
    assert settings.cluster_node_list == [("127.0.0.1", 7000), ("::1", 7001)]
    assert settings.uses_redis
    assert not Settings().uses_redis


def test_connect_makes_a_cluster_client_with_the_same_timeouts_and_password() -> None:
    settings = Settings(
        redis_cluster_nodes="127.0.0.1:7000", redis_timeout_ms=250, redis_password="pw"
    )
    client = connect(settings)  # lazy: nothing is contacted yet
    assert isinstance(client, RedisCluster)
    options = client.get_connection_kwargs()
    assert options["password"] == "pw"
    assert options["socket_timeout"] == options["socket_connect_timeout"] == 0.25
    assert timeout_of(client) == 0.25


@pytest.mark.parametrize(
    "other",
    [
        {"redis_url": "redis://127.0.0.1:7000/0"},
        {"redis_sentinels": "127.0.0.1:26379"},
        {"redis_db": 2},
        {"webhook_url": "http://127.0.0.1:9/hook", "webhook_secret": "s"},
    ],
)
def test_cluster_mode_refuses_what_it_cannot_honour(other: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Settings(redis_cluster_nodes="127.0.0.1:7000", **other)
