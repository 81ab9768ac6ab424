"""Broker.memory_usage (brokers/base.py), over memory and Redis: one figure for all."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

PERIOD = 60.0  # longer than the test: every call below falls in one period


async def test_instances_in_one_period_get_the_same_figure(
    make_broker: Any, backend: str, request: pytest.FixtureRequest
) -> None:
    first, _ = await make_broker(key_prefix="mem_contract")
    second, _ = await make_broker(key_prefix="mem_contract")
    measured = await first.memory_usage(PERIOD)
    # Called together, as the instances' housekeeping would: still one figure.
    again, other = await asyncio.gather(first.memory_usage(PERIOD), second.memory_usage(PERIOD))
    assert again == measured and other == measured
    if backend == "memory":
        assert measured is None  # nothing outside this process to measure
        return
    if backend == "cluster":
        # The figure is the fullest primary's.
        cluster = request.getfixturevalue("shared_cluster")
        infos = [
            await asyncio.to_thread(cluster.node_at(s["primary"]).info, "memory")
            for s in cluster.shards()
            if s["slots"]
        ]
        info = max(infos, key=lambda i: int(i["used_memory"]))
    else:
        info = await asyncio.to_thread(request.getfixturevalue("shared_redis").info, "memory")
    assert measured.max_bytes == int(info["maxmemory"])
    assert measured.used_bytes > 0
    # Same order of magnitude as the server's own figure now (it moves with every command).
    assert measured.used_bytes / 2 < int(info["used_memory"]) < measured.used_bytes * 2
