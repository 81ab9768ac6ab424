"""The InstanceRegistry role (presence/base.py), over memory, Redis and Sentinel."""

from __future__ import annotations

from typing import Any


async def test_heartbeat_lists_the_instance(make_presence: Any) -> None:
    store = await make_presence("inst-a")
    await store.heartbeat(7)
    instances = await store.instances()
    assert [(i.instance_id, i.connections) for i in instances] == [("inst-a", 7)]
    assert await store.reap_dead() == []


async def test_a_later_heartbeat_replaces_the_count(make_presence: Any) -> None:
    store = await make_presence("inst-a")
    await store.heartbeat(7)
    await store.heartbeat(3)
    [instance] = await store.instances()
    assert (instance.instance_id, instance.connections) == ("inst-a", 3)
    assert instance.last_seen > 0
