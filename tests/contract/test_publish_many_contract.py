"""The Broker contract for batches: `publish_many`, and concurrent `publish` calls
(which the Redis broker coalesces into batches), over memory and Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from roomcast.brokers.base import PublishCommand, PublishOutcome
from roomcast.brokers.redis_batch import MAX_CALL_EVENTS, MAX_PIPELINE_EVENTS
from roomcast.domain import Member
from roomcast.editing.rules import AnnotationWrite
from roomcast.errors import Conflict, Locked
from tests.contract.test_streams_contract import cmd


def write(
    action: str, base: int | None = None, user: str = "u1", aid: str = "a1"
) -> PublishCommand:
    return PublishCommand(
        room="annotation_c",
        type="annotation_update",
        data={"action": action, "annotation_id": aid},
        guard=AnnotationWrite(aid, action, base, user),
    )


def published(results: list[Any]) -> list[PublishOutcome]:
    assert all(isinstance(r, PublishOutcome) for r in results), results
    return results


async def test_results_in_order_and_each_room_sequenced_in_order(make_broker: Any) -> None:
    broker, sink = await make_broker()
    rooms = ["project_a", "project_b", "project_c"]
    for room in rooms:
        await broker.subscribe(room)
    commands = [
        PublishCommand(
            room=rooms[n % 3],
            type="project_progress_update",
            data={"total": 100, "completed": n, "percent": 1.0},
        )
        for n in range(30)
    ]
    results = published(await broker.publish_many(commands))
    assert [r.publication.room for r in results] == [c.room for c in commands]
    assert [r.publication.data["completed"] for r in results] == list(range(30))
    for room in rooms:
        mine = [r.publication for r in results if r.publication.room == room]
        assert [p.seq for p in mine] == list(range(1, 11))
        assert len({p.epoch for p in mine}) == 1 and len({p.id for p in mine}) == 10
        await sink.wait_for(lambda s, room=room: len(s.seqs(room)) == 10)
        delivered = [p for p in sink.publications if p.room == room]
        assert delivered == mine  # the returned publications are what was delivered
        page = await broker.history(room, 0, 100)
        assert list(page.events) == mine and page.complete


async def test_a_refused_event_takes_no_seq_and_stops_nothing(make_broker: Any) -> None:
    broker, sink = await make_broker()
    await broker.subscribe("annotation_c")
    results = await broker.publish_many(
        [
            write("create"),
            write("create"),  # exists already
            write("update", 1),
            write("update", 1),  # stale
            write("delete", 2),
            write("update", 3),  # deleted
        ]
    )
    ok = [r for r in results if isinstance(r, PublishOutcome)]
    assert [r.publication.seq for r in ok] == [1, 2, 3]
    assert [r.publication.data["version"] for r in ok] == [1, 2, 3]
    assert ok[0].publication.data == {"action": "create", "annotation_id": "a1", "version": 1}
    refused = [results[1], results[3], results[5]]
    assert all(isinstance(r, Conflict) for r in refused)
    assert [r.details["current_version"] for r in refused] == [1, 2, 3]  # type: ignore[union-attr]
    await sink.wait_for(lambda s: len(s.seqs("annotation_c")) == 3)
    assert [p.data["version"] for p in sink.publications] == [1, 2, 3]
    assert (await broker.position("annotation_c")).seq == 3


async def test_a_leased_annotation_is_refused_in_its_slot(make_broker: Any) -> None:
    broker, _ = await make_broker()
    await broker.lock("annotation_c", "a1", Member("ann", "Ann", 1), 10_000)
    results = await broker.publish_many(
        [
            write("create", user="bob"),
            write("create", user="bob", aid="a2"),
            write("create", user="ann"),
        ]
    )
    assert isinstance(results[0], Locked) and results[0].details["holder"]["user_id"] == "ann"
    assert isinstance(results[1], PublishOutcome) and results[1].publication.seq == 2
    assert isinstance(results[2], PublishOutcome) and results[2].publication.seq == 3


async def test_idempotency_keys_inside_and_across_batches(make_broker: Any) -> None:
    broker, sink = await make_broker()
    await broker.subscribe("project_c")
    first = published(
        await broker.publish_many(
            [cmd(idempotency_key="k1"), cmd(idempotency_key="k2"), cmd(idempotency_key="k1")]
        )
    )
    assert [r.duplicate for r in first] == [False, False, True]
    assert first[2].publication == first[0].publication
    again = published(await broker.publish_many([cmd(idempotency_key="k2"), cmd()]))
    assert again[0].duplicate and again[0].publication == first[1].publication
    assert again[1].publication.seq == 3
    await sink.wait_for(lambda s: len(s.seqs("project_c")) == 3)
    assert sink.seqs("project_c") == [1, 2, 3]


async def test_batches_larger_than_one_call_keep_room_order(make_broker: Any) -> None:
    broker, _ = await make_broker(history_size=5000)
    count = MAX_PIPELINE_EVENTS + MAX_CALL_EVENTS + 7
    commands = [
        PublishCommand(
            room="project_big" if n % 4 else "project_small",
            type="project_progress_update",
            data={"total": count, "completed": n, "percent": 0.0},
        )
        for n in range(count)
    ]
    results = published(await broker.publish_many(commands))
    for room in ("project_big", "project_small"):
        mine = [r.publication for r in results if r.publication.room == room]
        assert [p.seq for p in mine] == list(range(1, len(mine) + 1))
        page = await broker.history(room, 0, 5000)
        assert [p.data["completed"] for p in page.events] == [p.data["completed"] for p in mine]


async def test_history_stays_bounded_within_a_batch(make_broker: Any) -> None:
    broker, _ = await make_broker(history_size=3)
    published(await broker.publish_many([cmd() for _ in range(6)]))
    page = await broker.history("project_c", 0, 100)
    assert page.complete is False and page.head == 6
    assert [p.seq for p in page.events] == [4, 5, 6]


async def test_concurrent_publishes_keep_their_call_order_per_room(make_broker: Any) -> None:
    broker, sink = await make_broker()
    rooms = ["project_x", "project_y"]
    for room in rooms:
        await broker.subscribe(room)
    commands = [
        PublishCommand(
            room=rooms[n % 2],
            type="project_progress_update",
            data={"total": 600, "completed": n, "percent": 0.0},
        )
        for n in range(600)
    ]
    outcomes = await asyncio.gather(*(broker.publish(c) for c in commands))
    for room in rooms:
        mine = [o.publication for o in outcomes if o.publication.room == room]
        assert [p.seq for p in mine] == list(range(1, 301))
        assert [p.data["completed"] for p in mine] == sorted(p.data["completed"] for p in mine)
        await sink.wait_for(lambda s, room=room: len(s.seqs(room)) == 300)
        assert sink.seqs(room) == list(range(1, 301))


async def test_concurrent_publishes_get_their_own_errors(make_broker: Any) -> None:
    broker, _ = await make_broker()
    results = await asyncio.gather(
        broker.publish(write("create")),
        broker.publish(write("create")),
        broker.publish(cmd()),
        return_exceptions=True,
    )
    assert isinstance(results[0], PublishOutcome)
    assert isinstance(results[1], Conflict)
    assert isinstance(results[2], PublishOutcome) and results[2].publication.seq == 1


async def test_empty_batch(make_broker: Any) -> None:
    broker, _ = await make_broker()
    assert await broker.publish_many([]) == []


async def test_lost_script_cache_is_reloaded(make_broker: Any, backend: str) -> None:
    if backend == "memory":
        pytest.skip("Redis only: a restart or failover empties the script cache")
    broker, _ = await make_broker()
    published(await broker.publish_many([cmd()]))
    await broker._redis.script_flush()
    results = published(await broker.publish_many([cmd(), cmd("project_other")]))
    assert [r.publication.seq for r in results] == [2, 1]
    assert (await broker.publish(cmd())).publication.seq == 3
