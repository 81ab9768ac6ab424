"""The ConnectionRegistry role (presence/base.py), over memory, Redis and Sentinel."""

from __future__ import annotations

from typing import Any


async def test_connection_registry_enforces_the_limit(make_presence: Any) -> None:
    store = await make_presence()
    assert await store.register_connection("u", "s1", 2)
    assert await store.register_connection("u", "s2", 2)
    assert await store.register_connection("u", "s2", 2)  # same connection again
    assert not await store.register_connection("u", "s3", 2)
    assert await store.user_connections("u") == 2
    await store.unregister_connection("u", "s1")
    assert await store.register_connection("u", "s3", 2)


async def test_users_are_counted_apart_and_unknown_connections_are_a_no_op(
    make_presence: Any,
) -> None:
    store = await make_presence()
    assert await store.register_connection("u", "s1", 1)
    assert await store.register_connection("v", "s2", 1)
    assert await store.user_connections("w") == 0
    await store.unregister_connection("u", "never-registered")
    assert await store.user_connections("u") == 1
    await store.unregister_connection("u", "s1")
    assert await store.user_connections("u") == 0
    assert await store.user_connections("v") == 1
