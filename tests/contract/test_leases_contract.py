"""The Leases contract (brokers/base.py), over memory, Redis and Sentinel."""

from __future__ import annotations

from typing import Any

import pytest

from roomcast.domain import Member
from roomcast.errors import Locked
from tests.contract.commands import write


async def test_leases_are_sequenced_exclusive_and_fenced(make_broker: Any) -> None:
    broker, sink = await make_broker()
    room = "annotation_c"
    await broker.subscribe(room)
    ann, bob = Member("ann", "Ann", 1), Member("bob", None, 1)
    first = await broker.lock(room, "a1", ann, 10_000)
    assert first.lease.fencing_token == 1 and first.publication.type == "annotation_lock"
    assert first.publication.data["state"] == "locked"
    with pytest.raises(Locked) as exc:
        await broker.lock(room, "a1", bob, 10_000)
    assert exc.value.details["holder"]["user_id"] == "ann"
    renewed = await broker.lock(room, "a1", ann, 20_000)
    assert renewed.lease.fencing_token == 1
    assert [lease.annotation_id for lease in await broker.leases(room)] == ["a1"]
    with pytest.raises(Locked):
        await broker.publish(write("create", user="bob"))
    await broker.publish(write("create", user="ann", fencing_token=1))
    with pytest.raises(Locked):
        await broker.unlock(room, "a1", "bob")
    released = await broker.unlock(room, "a1", "ann")
    assert released is not None and released.data["state"] == "released"
    second = await broker.lock(room, "a1", bob, 10_000)
    assert second.lease.fencing_token == 2
    assert [p.data["state"] for p in await broker.release_holder(room, "bob")] == ["released"]
    await sink.wait_for(lambda s: len(s.seqs(room)) == 6)
    assert sink.seqs(room) == [1, 2, 3, 4, 5, 6]


async def test_expired_leases_are_released_and_announced(make_broker: Any) -> None:
    broker, _ = await make_broker()
    room = "annotation_c"
    granted = await broker.lock(room, "a1", Member("ann", None, 1), 1)
    released: list[Any] = []
    while not released:  # a 1 ms lease is due on the next call or the one after
        released = await broker.expire_leases()
    assert [(p.room, p.data["state"], p.data["fencing_token"]) for p in released] == [
        (room, "released", granted.lease.fencing_token)
    ]
    assert await broker.leases(room) == []
