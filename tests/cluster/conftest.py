from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from roomcast import Settings
from tests.support.redis_procs import RedisServer
from tests.support.server import test_settings

_prefixes = itertools.count()


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


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
