"""The Bindings contract (brokers/base.py), over memory, Redis and Sentinel."""

from __future__ import annotations

from typing import Any


async def test_binding(make_broker: Any) -> None:
    broker, _ = await make_broker()
    assert await broker.binding("annotation_b") is None
    await broker.bind("annotation_b", "p7")
    assert await broker.binding("annotation_b") == "p7"
