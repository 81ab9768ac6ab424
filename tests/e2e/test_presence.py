"""Presence events and snapshots (SPEC section 5)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from roomcast.errors import BrokerUnavailable
from tests.support.server import RunningServer

ROOM = "annotation_p1"


async def test_presence_announces_first_join_and_last_leave_per_user(server: RunningServer) -> None:
    watcher = await server.client("w", rooms=[ROOM])
    ann1 = await server.client("ann", name="Ann", rooms=[ROOM])
    ann2 = await server.client("ann", name="Ann", rooms=[ROOM])
    try:
        await watcher.call("join", {"room": ROOM})
        ack = await ann1.call("join", {"room": ROOM})
        assert {m["user_id"] for m in ack["presence"]} == {"w", "ann"}
        own = await watcher.next("presence")
        assert own["joined"]["user_id"] == "w" and own["count"] == 1
        event = await watcher.next("presence")
        assert event == {
            "room": ROOM,
            "joined": {"user_id": "ann", "name": "Ann", "connections": 1},
            "left": None,
            "count": 2,
        }
        ack2 = await ann2.call("join", {"room": ROOM})
        ann = next(m for m in ack2["presence"] if m["user_id"] == "ann")
        assert ann["connections"] == 2
        await ann1.call("leave", {"room": ROOM})
        await ann2.call("leave", {"room": ROOM})
        event = await watcher.next("presence")
        assert event["joined"] is None and event["left"]["user_id"] == "ann"
        assert event["count"] == 1
        presence_events = [d for n, d in watcher.log if n == "presence"]
        # the watcher's own join, Ann's first join and Ann's last leave: nothing for conn 2
        assert [(e["joined"] or e["left"])["user_id"] for e in presence_events] == [
            "w",
            "ann",
            "ann",
        ]
    finally:
        for c in (watcher, ann1, ann2):
            await c.close()


async def test_disconnect_counts_as_leaving(server: RunningServer) -> None:
    watcher = await server.client("w", rooms=[ROOM])
    bob = await server.client("bob", rooms=[ROOM])
    try:
        await watcher.call("join", {"room": ROOM})
        await bob.call("join", {"room": ROOM})
        assert (await watcher.next("presence"))["joined"]["user_id"] == "w"
        assert (await watcher.next("presence"))["joined"]["user_id"] == "bob"
        await bob.close()
        left = await watcher.next("presence")
        assert left["left"]["user_id"] == "bob" and left["count"] == 1
    finally:
        await watcher.close()
        await bob.close()


async def test_user_rooms_have_no_presence(server: RunningServer) -> None:
    a = await server.client("solo")
    b = await server.client("solo")
    try:
        await a.next("connection_status")
        await b.next("connection_status")
        ack = await a.call("join", {"room": "user_solo"})
        assert ack["ok"] and ack["presence"] == []
        assert not [n for n, _ in a.log if n == "presence"]
    finally:
        await a.close()
        await b.close()


@pytest.mark.parametrize("failing", ["publish_transient", "leases"])
async def test_a_join_that_fails_after_its_presence_entry_leaves_no_ghost(
    server: RunningServer, monkeypatch: Any, failing: str
) -> None:
    """The join adds its presence entry, announces it, then reads the room's leases:
    when the announcement or the lease read fails, the join is refused and its entry
    must go too, or the user stays listed in a room it never joined (under Redis,
    kept alive by this instance's heartbeat for as long as it lives). Members who
    were told of the arrival are told of the departure."""
    broker = server.runtime.broker
    call = getattr(broker, failing)
    failed = False

    async def refused_once(*args: Any) -> Any:
        nonlocal failed
        if not failed:
            failed = True
            raise BrokerUnavailable("Redis did not answer in time")
        return await call(*args)

    watcher = await server.client("w", rooms=[ROOM])
    ghost = await server.client("ghost", rooms=[ROOM])
    try:
        await watcher.call("join", {"room": ROOM})
        assert (await watcher.next("presence"))["joined"]["user_id"] == "w"
        monkeypatch.setattr(broker, failing, refused_once)
        ack = await ghost.call("join", {"room": ROOM})
        assert failed and ack["error"]["code"] == "broker_unavailable"
        assert [m.user_id for m in await server.runtime.presence.members(ROOM)] == ["w"]
        if failing == "leases":  # the arrival went out: so does the departure
            assert (await watcher.next("presence"))["joined"]["user_id"] == "ghost"
            left = await watcher.next("presence")
            assert left["left"]["user_id"] == "ghost" and left["count"] == 1
        again = await ghost.call("join", {"room": ROOM})  # and it may simply try again
        assert again["ok"] and {m["user_id"] for m in again["presence"]} == {"w", "ghost"}
        event = await watcher.next("presence")
        # Told nothing more of the failed join than it saw: the next event is the retry.
        assert event["joined"]["user_id"] == "ghost" and event["count"] == 2
    finally:
        await ghost.close()
        await watcher.close()


async def test_a_join_still_running_when_its_connection_closes_is_undone(
    server: RunningServer, monkeypatch: Any
) -> None:
    """The disconnect is handled as soon as the socket closes, while the client's last
    `join` may still be waiting on the broker; that join then finishes for a
    connection already forgotten, and what it added (presence, the hub's member, the
    room's subscription) must not outlive it."""
    presence = server.runtime.presence
    arrive = presence.arrive
    gateway = server.runtime.gateway
    forget = gateway.disconnect
    entered, release, forgotten = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def held(room: str, user_id: str, name: str | None, conn_id: str) -> Any:
        if user_id == "ghost":
            entered.set()
            await release.wait()
        return await arrive(room, user_id, name, conn_id)

    async def disconnect(sid: str, reason: str) -> None:
        await forget(sid, reason)
        forgotten.set()

    watcher = await server.client("w", rooms=[ROOM])
    ghost = await server.client("ghost", rooms=[ROOM])
    try:
        await watcher.call("join", {"room": ROOM})
        assert (await watcher.next("presence"))["joined"]["user_id"] == "w"
        monkeypatch.setattr(presence, "arrive", held)
        monkeypatch.setattr(gateway, "disconnect", disconnect)
        await ghost.sio.emit("join", {"room": ROOM})
        await asyncio.wait_for(entered.wait(), 5)
        await ghost.close()
        await asyncio.wait_for(forgotten.wait(), 5)
        assert len(gateway.connections) == 1
        release.set()
        # The join's arrival is announced, then taken back.
        assert (await watcher.next("presence"))["joined"]["user_id"] == "ghost"
        left = await watcher.next("presence")
        assert left["left"]["user_id"] == "ghost" and left["count"] == 1
        assert [m.user_id for m in await presence.members(ROOM)] == ["w"]
        assert server.runtime.hub.member_count(ROOM) == 1
    finally:
        release.set()
        await ghost.close()
        await watcher.close()
