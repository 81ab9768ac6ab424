"""The ConnectionRegistry role (presence/base.py), over memory, Redis and Sentinel."""

from __future__ import annotations

import asyncio
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


async def test_concurrent_registrations_across_instances_stop_at_the_limit(
    make_presence: Any, backend: str
) -> None:
    # Calls made in one loop turn go out together (one pipeline over Redis): the limit
    # still holds for each, however many instances ask at once. (In memory there is
    # one instance.)
    a = await make_presence("inst-a")
    b = a if backend == "memory" else await make_presence("inst-b", a.keys.prefix)
    stores = [a, b]
    outcomes = await asyncio.gather(
        *(stores[i % 2].register_connection("u", f"s{i}", 10) for i in range(50)),
        *(stores[i % 2].register_connection("v", f"s{i}", 3) for i in range(9)),
    )
    assert sum(outcomes[:50]) == 10 and sum(outcomes[50:]) == 3
    assert await a.user_connections("u") == 10 and await b.user_connections("v") == 3
    await asyncio.gather(*(stores[i % 2].unregister_connection("u", f"s{i}") for i in range(50)))
    assert await a.user_connections("u") == 0


async def test_a_storm_of_registrations_waits_for_connections_rather_than_failing(
    make_presence: Any,
) -> None:
    # More at once than a pool has connections (100): over Redis Cluster, redis-py's
    # node pool refused the excess ("Too many connections") before they were bounded.
    store = await make_presence()
    outcomes = await asyncio.gather(
        *(store.register_connection(f"u{i}", f"s{i}", 1) for i in range(400)),
        return_exceptions=True,
    )
    assert outcomes == [True] * 400
    assert await store.user_connections("u399") == 1
