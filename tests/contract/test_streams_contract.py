"""The RoomStreams contract (brokers/base.py): sequenced, stored, delivered room
events and transient messages, over memory, Redis and Sentinel."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from roomcast.errors import Conflict
from tests.contract.commands import ROOM, cmd, write


async def test_publish_sequences_stores_and_delivers_in_order(make_broker: Any) -> None:
    broker, sink = await make_broker()
    await broker.subscribe(ROOM)
    position = await broker.position(ROOM)
    assert position.seq == 0 and position.epoch
    outcomes = [await broker.publish(cmd()) for _ in range(5)]
    assert [o.publication.seq for o in outcomes] == [1, 2, 3, 4, 5]
    assert {o.publication.epoch for o in outcomes} == {position.epoch}
    await sink.wait_for(lambda s: len(s.seqs(ROOM)) == 5)
    assert sink.seqs(ROOM) == [1, 2, 3, 4, 5]
    assert sink.publications[0] == outcomes[0].publication
    page = await broker.history(ROOM, 2, 10)
    assert [p.seq for p in page.events] == [3, 4, 5] and page.head == 5 and page.complete


async def test_position_is_stable_until_the_first_event(make_broker: Any) -> None:
    broker, _ = await make_broker()
    first = await broker.position("project_new")
    again = await broker.position("project_new")
    assert first == again
    published = (await broker.publish(cmd("project_new"))).publication
    assert (published.epoch, published.seq) == (first.epoch, 1)


async def test_idempotency_key_returns_first_outcome_and_delivers_once(make_broker: Any) -> None:
    broker, sink = await make_broker()
    await broker.subscribe(ROOM)
    first = await broker.publish(cmd(idempotency_key="k1"))
    second = await broker.publish(cmd(idempotency_key="k1"))
    assert not first.duplicate and second.duplicate
    assert second.publication == first.publication
    other = await broker.publish(cmd(idempotency_key="k2"))
    assert other.publication.seq == 2
    await sink.wait_for(lambda s: 2 in s.seqs(ROOM))
    assert sink.seqs(ROOM) == [1, 2]


async def test_history_is_bounded_and_reports_incomplete(make_broker: Any) -> None:
    broker, _ = await make_broker(history_size=3)
    for _ in range(6):
        await broker.publish(cmd())
    page = await broker.history(ROOM, 0, 100)
    assert page.complete is False and page.head == 6
    kept = await broker.history(ROOM, 3, 100)
    assert kept.complete and [p.seq for p in kept.events] == [4, 5, 6]
    paged = await broker.history(ROOM, 3, 2)
    assert [p.seq for p in paged.events] == [4, 5]
    assert (await broker.history(ROOM, 6, 10)).events == ()


async def test_only_subscribed_rooms_are_delivered(make_broker: Any) -> None:
    broker, sink = await make_broker()
    await broker.subscribe("project_a")
    await broker.publish(cmd("project_b"))
    await broker.publish(cmd("project_a"))
    await sink.wait_for(lambda s: s.seqs("project_a") == [1])
    await broker.unsubscribe("project_a")
    await broker.subscribe("project_b")
    await broker.publish(cmd("project_a"))
    await broker.publish(cmd("project_b"))
    await sink.wait_for(lambda s: s.seqs("project_b") == [2])
    assert sink.seqs("project_a") == [1]


async def test_delivery_reaches_every_subscribed_broker(make_broker: Any, backend: str) -> None:
    if backend == "memory":
        pytest.skip("a memory broker is one process")
    a, sink_a = await make_broker()
    b, sink_b = await make_broker(key_prefix=a.keys.prefix)
    await a.subscribe(ROOM)
    await b.subscribe(ROOM)
    for i in range(10):
        await (a if i % 2 else b).publish(cmd())
    for sink in (sink_a, sink_b):
        await sink.wait_for(lambda s: len(s.seqs(ROOM)) == 10)
        assert sink.seqs(ROOM) == list(range(1, 11))


async def test_annotation_writes_are_guarded(make_broker: Any) -> None:
    broker, _ = await make_broker()
    created = await broker.publish(write("create"))
    assert created.publication.data["version"] == 1
    with pytest.raises(Conflict) as exc:
        await broker.publish(write("create"))
    assert exc.value.details["current_version"] == 1
    with pytest.raises(Conflict):
        await broker.publish(write("update", 0))
    updated = await broker.publish(write("update", 1))
    assert updated.publication.data == {"action": "update", "version": 2}
    assert updated.publication.seq == 2  # refused writes took no seq


async def test_transient_messages(make_broker: Any) -> None:
    broker, sink = await make_broker()
    await broker.subscribe(ROOM)
    await broker.publish_transient(ROOM, "presence", {"count": 1})
    await sink.wait_for(lambda s: s.transients)
    assert sink.transients == [(ROOM, "presence", {"count": 1})]


async def test_rooms_subscribed_at_once_are_each_live_when_subscribe_returns(
    make_broker: Any,
) -> None:
    # Concurrent subscribes share SUBSCRIBE commands over Redis (channel_writer.py);
    # each must still return only once its own room's delivery is live.
    broker, sink = await make_broker()
    rooms = [f"project_many{i}" for i in range(60)]
    await asyncio.gather(*(broker.subscribe(room) for room in rooms))
    await asyncio.gather(*(broker.publish(cmd(room)) for room in rooms))
    await sink.wait_for(lambda s: all(s.seqs(room) == [1] for room in rooms))
    # Half leave at once, half stay: the leavers get nothing more, the others do.
    await asyncio.gather(*(broker.unsubscribe(room) for room in rooms[::2]))
    await asyncio.gather(*(broker.publish(cmd(room)) for room in rooms))
    await sink.wait_for(lambda s: all(s.seqs(room) == [1, 2] for room in rooms[1::2]))
    assert all(sink.seqs(room) == [1] for room in rooms[::2])
