"""The PresenceStore contract (presence/base.py), over memory and Redis."""

from __future__ import annotations

from typing import Any

ROOM = "annotation_p"


async def test_first_arrival_and_last_departure_are_reported_once(make_presence: Any) -> None:
    store = await make_presence()
    first = await store.add(ROOM, "ann", "Ann", "s1")
    assert first.joined is not None and first.joined.user_id == "ann" and first.count == 1
    second = await store.add(ROOM, "ann", "Ann", "s2")
    assert second.joined is None and second.count == 1
    again = await store.add(ROOM, "ann", "Ann", "s2")
    assert again.joined is None
    other = await store.add(ROOM, "bob", None, "s3")
    assert other.joined is not None and other.count == 2
    members = await store.members(ROOM)
    assert [(m.user_id, m.name, m.connections) for m in members] == [
        ("ann", "Ann", 2),
        ("bob", None, 1),
    ]
    assert (await store.member(ROOM, "ann")).connections == 2
    assert (await store.remove(ROOM, "ann", "s1")).left is None
    last = await store.remove(ROOM, "ann", "s2")
    assert last.left is not None and last.left.user_id == "ann" and last.count == 1
    assert (await store.remove(ROOM, "ann", "s2")).left is None  # absent: no-op
    assert await store.member(ROOM, "ann") is None
    await store.remove(ROOM, "bob", "s3")
    assert await store.members(ROOM) == []


async def test_connection_registry_enforces_the_limit(make_presence: Any) -> None:
    store = await make_presence()
    assert await store.register_connection("u", "s1", 2)
    assert await store.register_connection("u", "s2", 2)
    assert await store.register_connection("u", "s2", 2)  # same connection again
    assert not await store.register_connection("u", "s3", 2)
    assert await store.user_connections("u") == 2
    await store.unregister_connection("u", "s1")
    assert await store.register_connection("u", "s3", 2)


async def test_heartbeat_lists_the_instance(make_presence: Any) -> None:
    store = await make_presence("inst-a")
    await store.heartbeat(7)
    instances = await store.instances()
    assert [(i.instance_id, i.connections) for i in instances] == [("inst-a", 7)]
    assert await store.reap_dead() == []
