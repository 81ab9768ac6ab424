from __future__ import annotations

import itertools
from typing import Any

import pytest

from roomcast import Settings
from tests.support.redis_procs import RedisServer, redis_server
from tests.support.server import test_settings

_prefixes = itertools.count()


@pytest.fixture
def redis(redis_server: RedisServer) -> RedisServer:
    """The cluster's Redis (the support module's fixture, under a shorter name)."""
    return redis_server


@pytest.fixture
def cluster_settings(redis: RedisServer) -> Any:
    """Settings for instance `n` of one cluster sharing a Redis and a key prefix."""
    prefix = f"c{next(_prefixes)}"

    def make(n: int, **overrides: Any) -> Settings:
        return test_settings(
            redis_url=redis.url,
            key_prefix=prefix,
            instance_id=f"inst{n}",
            connect_rate_per_address=0,
            **overrides,
        )

    return make


__all__ = ["redis_server"]  # imported so that pytest registers the fixture here
