"""The Control contract (brokers/base.py), over memory, Redis and Sentinel."""

from __future__ import annotations

from typing import Any


async def test_control_messages(make_broker: Any) -> None:
    broker, sink = await make_broker()
    await broker.publish_control({"kind": "canary", "n": 1})
    await sink.wait_for(lambda s: s.controls)
    assert sink.controls == [{"kind": "canary", "n": 1}]


async def test_a_started_broker_answers_and_listens(make_broker: Any) -> None:
    broker, _ = await make_broker()
    await broker.ping()
    assert broker.listening
