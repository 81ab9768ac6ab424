"""The RoomPresence role (presence/base.py), over memory, Redis and Sentinel."""

from __future__ import annotations

import asyncio
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


async def test_rooms_are_apart_and_a_room_nobody_joined_is_empty(make_presence: Any) -> None:
    store = await make_presence()
    await store.add(ROOM, "ann", "Ann", "s1")
    assert await store.members("annotation_other") == []
    assert await store.member("annotation_other", "ann") is None
    change = await store.add("annotation_other", "ann", "Ann", "s1")
    assert change.joined is not None and change.count == 1  # first arrival there too
    assert [m.user_id for m in await store.members(ROOM)] == ["ann"]


async def test_with_every_instance_alive_nobody_is_reaped(make_presence: Any) -> None:
    store = await make_presence("inst-a")
    await store.heartbeat(1)
    await store.add(ROOM, "ann", "Ann", "s1")
    assert await store.reap_dead() == []
    assert [m.user_id for m in await store.members(ROOM)] == ["ann"]


async def test_arrive_is_add_with_the_members_after_it(make_presence: Any) -> None:
    store = await make_presence()
    change, members = await store.arrive(ROOM, "bob", None, "s1")
    assert change.joined is not None and change.joined.user_id == "bob" and change.count == 1
    assert [(m.user_id, m.name, m.connections) for m in members] == [("bob", None, 1)]
    change, members = await store.arrive(ROOM, "ann", "Ann", "s2")
    assert change.joined is not None and change.count == 2
    change, members = await store.arrive(ROOM, "ann", "Ann", "s3")
    assert change.joined is None and change.count == 2
    assert [(m.user_id, m.name, m.connections) for m in members] == [
        ("ann", "Ann", 2),
        ("bob", None, 1),
    ]
    assert members == await store.members(ROOM)
    again, _ = await store.arrive(ROOM, "ann", "Ann", "s3")  # the same connection: no-op
    assert again.joined is None and (await store.member(ROOM, "ann")).connections == 2
    await store.remove(ROOM, "ann", "s2")
    last = await store.remove(ROOM, "ann", "s3")
    assert last.left is not None and last.left.name == "Ann"


async def test_concurrent_arrivals_see_one_first_and_every_member(make_presence: Any) -> None:
    store = await make_presence()
    results = await asyncio.gather(
        *(store.arrive(ROOM, f"u{i % 5}", None, f"s{i}") for i in range(40))
    )
    assert sum(1 for change, _ in results if change.joined is not None) == 5
    final = await store.members(ROOM)
    assert [(m.user_id, m.connections) for m in final] == [(f"u{i}", 8) for i in range(5)]
    # Each snapshot includes its own arrival and is ordered by user.
    for n, (_, members) in enumerate(results):
        assert f"u{n % 5}" in [m.user_id for m in members]
        assert [m.user_id for m in members] == sorted(m.user_id for m in members)
