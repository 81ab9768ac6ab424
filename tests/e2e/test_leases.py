"""Editing leases: lock, unlock, fencing, expiry, release on leave (SPEC section 4)."""

from __future__ import annotations

from typing import Any

from tests.support.server import RunningServer, running_server, test_settings

ROOM = "annotation_s2"


def _create(aid: str = "a1") -> dict[str, Any]:
    return {
        "action": "create",
        "annotation_id": aid,
        "annotation": {"label": "cat", "shape": {"type": "point", "x": 1, "y": 2}},
    }


def _update(base: int, aid: str = "a1", **extra: Any) -> dict[str, Any]:
    return {**_create(aid), "action": "update", "base_version": base, **extra}


async def test_lease_blocks_others_and_lets_holder_write(server: RunningServer) -> None:
    ann = await server.client("ann", name="Ann", rooms=[ROOM])
    bob = await server.client("bob", rooms=[ROOM])
    try:
        for c in (ann, bob):
            await c.call("join", {"room": ROOM})
        assert (await ann.call("annotation_update", {"room": ROOM, "data": _create()}))["ok"]
        lock = await ann.call("lock", {"room": ROOM, "annotation_id": "a1", "ttl_ms": 10000})
        assert lock["ok"] and lock["annotation_id"] == "a1" and lock["fencing_token"] == 1
        event = await bob.next("annotation_lock")
        assert event["data"]["state"] == "locked" and event["data"]["holder"]["user_id"] == "ann"
        assert event["seq"] == 2  # leases are sequenced room events

        refused = await bob.call("lock", {"room": ROOM, "annotation_id": "a1"})
        assert refused["error"]["code"] == "locked"
        assert refused["error"]["holder"]["user_id"] == "ann"
        assert refused["error"]["expires_at"] == lock["expires_at"]
        blocked = await bob.call("annotation_update", {"room": ROOM, "data": _update(1)})
        assert blocked["error"]["code"] == "locked"
        assert (await ann.call("annotation_update", {"room": ROOM, "data": _update(1)}))["ok"]

        joiner = await server.client("carl", rooms=[ROOM])
        try:
            ack = await joiner.call("join", {"room": ROOM})
            assert [lease["annotation_id"] for lease in ack["locks"]] == ["a1"]
            assert ack["locks"][0]["fencing_token"] == 1
        finally:
            await joiner.close()

        renewed = await ann.call("lock", {"room": ROOM, "annotation_id": "a1", "ttl_ms": 20000})
        assert renewed["fencing_token"] == 1 and renewed["expires_at"] > lock["expires_at"]
        assert (await ann.call("unlock", {"room": ROOM, "annotation_id": "a1"})) == {"ok": True}
        released = None
        while released is None or released["data"]["state"] != "released":
            released = await bob.next("annotation_lock")
        second = await bob.call("lock", {"room": ROOM, "annotation_id": "a1"})
        assert second["ok"] and second["fencing_token"] == 2
    finally:
        await ann.close()
        await bob.close()


async def test_stale_fencing_token_is_refused(server: RunningServer) -> None:
    ann = await server.client("ann", rooms=[ROOM])
    try:
        await ann.call("join", {"room": ROOM})
        await ann.call("annotation_update", {"room": ROOM, "data": _create()})
        first = await ann.call("lock", {"room": ROOM, "annotation_id": "a1"})
        await ann.call("unlock", {"room": ROOM, "annotation_id": "a1"})
        second = await ann.call("lock", {"room": ROOM, "annotation_id": "a1"})
        assert second["fencing_token"] > first["fencing_token"]
        stale = await ann.call(
            "annotation_update",
            {"room": ROOM, "data": _update(1, fencing_token=first["fencing_token"])},
        )
        assert stale["error"]["code"] == "locked"
        fresh = await ann.call(
            "annotation_update",
            {"room": ROOM, "data": _update(1, fencing_token=second["fencing_token"])},
        )
        assert fresh["ok"]
    finally:
        await ann.close()


async def test_lease_expires_and_is_announced() -> None:
    async with running_server(test_settings(lease_ttl_ms=300)) as server:
        ann = await server.client("ann", rooms=[ROOM])
        bob = await server.client("bob", rooms=[ROOM])
        try:
            for c in (ann, bob):
                await c.call("join", {"room": ROOM})
            lock = await ann.call("lock", {"room": ROOM, "annotation_id": "a9"})
            assert lock["ok"]
            event = await bob.next("annotation_lock")
            assert event["data"]["state"] == "locked"
            event = await bob.next("annotation_lock", timeout=5)
            assert event["data"]["state"] == "released"
            assert event["data"]["fencing_token"] == lock["fencing_token"]
            assert (await bob.call("lock", {"room": ROOM, "annotation_id": "a9"}))["ok"]
        finally:
            await ann.close()
            await bob.close()


async def test_lease_ends_when_holder_leaves_or_disconnects(server: RunningServer) -> None:
    ann = await server.client("ann", rooms=[ROOM])
    bob = await server.client("bob", rooms=[ROOM])
    try:
        for c in (ann, bob):
            await c.call("join", {"room": ROOM})
        assert (await ann.call("lock", {"room": ROOM, "annotation_id": "x"}))["ok"]
        await ann.call("leave", {"room": ROOM})
        states = []
        while len(states) < 2:
            states.append((await bob.next("annotation_lock"))["data"]["state"])
        assert states == ["locked", "released"]

        await ann.call("join", {"room": ROOM})
        assert (await ann.call("lock", {"room": ROOM, "annotation_id": "x"}))["ok"]
        assert (await bob.next("annotation_lock"))["data"]["state"] == "locked"
        await ann.close()
        assert (await bob.next("annotation_lock"))["data"]["state"] == "released"
    finally:
        await ann.close()
        await bob.close()


async def test_lock_errors(server: RunningServer) -> None:
    client = await server.client("u1", rooms=[ROOM], projects=["p1"])
    try:
        not_joined = await client.call("lock", {"room": ROOM, "annotation_id": "a"})
        assert not_joined["error"]["code"] == "not_joined"
        await client.call("join", {"room": "project_p1"})
        wrong_kind = await client.call("lock", {"room": "project_p1", "annotation_id": "a"})
        assert wrong_kind["error"]["code"] == "invalid_payload"
        missing = await client.call("lock", {"room": ROOM})
        assert missing["error"]["code"] == "invalid_payload"
    finally:
        await client.close()
