"""MemoryPresenceStore: users in rooms over connections, and connection counts."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roomcast.domain import Member, PresenceChange
from roomcast.presence.memory import MemoryPresenceStore

ROOM = "annotation_s1"


@pytest.fixture
def store() -> MemoryPresenceStore:
    return MemoryPresenceStore()


async def test_first_connection_joins(store: MemoryPresenceStore) -> None:
    change = await store.add(ROOM, "u1", "Ann", "sid-1")
    assert change == PresenceChange(ROOM, Member("u1", "Ann", 1), None, 1)
    assert change.is_visible is True
    assert change.to_wire() == {
        "room": ROOM,
        "joined": {"user_id": "u1", "name": "Ann", "connections": 1},
        "left": None,
        "count": 1,
    }


async def test_second_connection_is_not_a_join(store: MemoryPresenceStore) -> None:
    await store.add(ROOM, "u1", "Ann", "sid-1")
    change = await store.add(ROOM, "u1", "Ann", "sid-2")
    assert change == PresenceChange(ROOM, None, None, 1)
    assert change.is_visible is False
    assert await store.member(ROOM, "u1") == Member("u1", "Ann", 2)


async def test_adding_the_same_connection_twice_counts_it_once(store: MemoryPresenceStore) -> None:
    await store.add(ROOM, "u1", "Ann", "sid-1")
    again = await store.add(ROOM, "u1", "Ann", "sid-1")
    assert again.joined is None
    assert await store.member(ROOM, "u1") == Member("u1", "Ann", 1)
    left = await store.remove(ROOM, "u1", "sid-1")
    assert left.left == Member("u1", "Ann", 0)


async def test_count_is_users_not_connections(store: MemoryPresenceStore) -> None:
    await store.add(ROOM, "u1", "Ann", "s1")
    await store.add(ROOM, "u1", "Ann", "s2")
    change = await store.add(ROOM, "u2", "Bob", "s3")
    assert change.count == 2
    assert change.joined == Member("u2", "Bob", 1)


async def test_only_the_last_connection_leaves(store: MemoryPresenceStore) -> None:
    await store.add(ROOM, "u1", "Ann", "s1")
    await store.add(ROOM, "u1", "Ann", "s2")
    await store.add(ROOM, "u2", "Bob", "s3")
    first = await store.remove(ROOM, "u1", "s1")
    assert first == PresenceChange(ROOM, None, None, 2)
    last = await store.remove(ROOM, "u1", "s2")
    assert last == PresenceChange(ROOM, None, Member("u1", "Ann", 0), 1)
    assert last.is_visible is True
    assert await store.member(ROOM, "u1") is None


async def test_removing_an_unknown_connection_is_a_no_op(store: MemoryPresenceStore) -> None:
    assert await store.remove(ROOM, "u1", "s1") == PresenceChange(ROOM, None, None, 0)
    await store.add(ROOM, "u1", "Ann", "s1")
    assert await store.remove(ROOM, "u1", "other") == PresenceChange(ROOM, None, None, 1)
    assert await store.remove(ROOM, "u2", "s1") == PresenceChange(ROOM, None, None, 1)
    assert await store.member(ROOM, "u1") == Member("u1", "Ann", 1)


async def test_rooms_are_independent(store: MemoryPresenceStore) -> None:
    await store.add("project_p1", "u1", "Ann", "s1")
    change = await store.add("project_p2", "u1", "Ann", "s1")
    assert change.joined == Member("u1", "Ann", 1)
    assert change.count == 1
    await store.remove("project_p1", "u1", "s1")
    assert await store.members("project_p1") == []
    assert await store.members("project_p2") == [Member("u1", "Ann", 1)]


async def test_members_sorted_by_user(store: MemoryPresenceStore) -> None:
    await store.add(ROOM, "u2", "Bob", "s1")
    await store.add(ROOM, "u1", "Ann", "s2")
    await store.add(ROOM, "u1", "Ann", "s3")
    assert await store.members(ROOM) == [Member("u1", "Ann", 2), Member("u2", "Bob", 1)]
    assert await store.members("project_none") == []


async def test_name_of_the_first_connection_is_kept(store: MemoryPresenceStore) -> None:
    await store.add(ROOM, "u1", "Ann", "s1")
    await store.add(ROOM, "u1", "Annie", "s2")
    assert await store.member(ROOM, "u1") == Member("u1", "Ann", 2)


# connection registry ---------------------------------------------------------------------


async def test_register_connection_up_to_the_limit(store: MemoryPresenceStore) -> None:
    assert await store.register_connection("u1", "s1", limit=2) is True
    assert await store.register_connection("u1", "s2", limit=2) is True
    assert await store.register_connection("u1", "s3", limit=2) is False
    assert await store.user_connections("u1") == 2
    # Registering a known connection again is not a new one.
    assert await store.register_connection("u1", "s1", limit=2) is True
    assert await store.user_connections("u1") == 2


async def test_unregister_frees_a_slot(store: MemoryPresenceStore) -> None:
    await store.register_connection("u1", "s1", limit=1)
    assert await store.register_connection("u1", "s2", limit=1) is False
    await store.unregister_connection("u1", "s1")
    assert await store.register_connection("u1", "s2", limit=1) is True
    assert await store.user_connections("u1") == 1


async def test_limits_are_per_user(store: MemoryPresenceStore) -> None:
    assert await store.register_connection("u1", "s1", limit=1) is True
    assert await store.register_connection("u2", "s2", limit=1) is True
    assert await store.user_connections("u1") == 1
    assert await store.user_connections("u2") == 1
    assert await store.user_connections("u3") == 0


async def test_zero_limit_refuses_and_leaves_nothing(store: MemoryPresenceStore) -> None:
    assert await store.register_connection("u1", "s1", limit=0) is False
    assert await store.user_connections("u1") == 0
    assert store.size() == 0


async def test_unregister_unknown_is_a_no_op(store: MemoryPresenceStore) -> None:
    await store.unregister_connection("u1", "s1")
    await store.register_connection("u1", "s1", limit=5)
    await store.unregister_connection("u1", "other")
    assert await store.user_connections("u1") == 1


async def test_size_back_to_zero(store: MemoryPresenceStore) -> None:
    for i in range(3):
        await store.register_connection(f"u{i}", f"s{i}", limit=5)
        await store.add(ROOM, f"u{i}", None, f"s{i}")
        await store.add("project_p1", f"u{i}", None, f"s{i}")
    assert store.size() == 2 + 3
    for i in range(3):
        await store.remove(ROOM, f"u{i}", f"s{i}")
        await store.remove("project_p1", f"u{i}", f"s{i}")
        await store.unregister_connection(f"u{i}", f"s{i}")
    assert store.size() == 0


ops = st.lists(
    st.tuples(
        st.booleans(),  # add or remove
        st.sampled_from(["project_p1", "annotation_a1"]),
        st.sampled_from(["u1", "u2", "u3"]),
        st.sampled_from(["s1", "s2", "s3", "s4"]),
    ),
    max_size=60,
)


@settings(max_examples=80)
@given(ops=ops)
def test_joins_and_leaves_match_a_model(ops: list[tuple[bool, str, str, str]]) -> None:
    async def scenario() -> None:
        store = MemoryPresenceStore()
        model: dict[str, dict[str, set[str]]] = {}  # room -> user -> conns
        for is_add, room, user, conn in ops:
            users = model.setdefault(room, {})
            before = set(users.get(user, set()))
            if is_add:
                change = await store.add(room, user, None, conn)
                users.setdefault(user, set()).add(conn)
                assert (change.joined is not None) is (not before)
                assert change.left is None
                if change.joined is not None:
                    assert change.joined.connections == 1
            else:
                change = await store.remove(room, user, conn)
                if conn in before:
                    users[user].discard(conn)
                    if not users[user]:
                        del users[user]
                assert change.joined is None
                assert (change.left is not None) is (before == {conn})
            assert change.count == len(users)
            members = await store.members(room)
            assert {m.user_id: m.connections for m in members} == {
                u: len(c) for u, c in users.items()
            }
        for room, users in model.items():
            for user, conns in list(users.items()):
                for conn in conns:
                    await store.remove(room, user, conn)
        assert store.size() == 0

    asyncio.run(scenario())
