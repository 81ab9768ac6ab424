"""Publishing from clients: validation, idempotency, optimistic concurrency (SPEC 4)."""

from __future__ import annotations

from typing import Any

from tests.support.server import RunningServer, running_server, test_settings

ROOM = "annotation_s1"


def _update(action: str, base: int | None = None, aid: str = "a1", **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"action": action, "annotation_id": aid, "base_version": base}
    if action != "delete":
        data["annotation"] = {
            "label": "car",
            "shape": {"type": "bbox", "x": 1, "y": 2, "w": 3, "h": 4},
            "attributes": {},
        }
    data.update(extra)
    return data


async def test_update_reaches_every_member_with_actor_and_version(server: RunningServer) -> None:
    ann = await server.client("ann", name="Ann", rooms=[ROOM])
    bob = await server.client("bob", rooms=[ROOM])
    try:
        await ann.call("join", {"room": ROOM})
        await bob.call("join", {"room": ROOM})
        ack = await ann.call(
            "annotation_update", {"room": ROOM, "data": _update("create"), "client_event_id": "c-1"}
        )
        assert ack["ok"] and ack["seq"] == 1 and ack["id"] and ack["epoch"]
        for client in (ann, bob):
            event = await client.next("annotation_update")
            assert event["id"] == ack["id"] and event["seq"] == 1
            assert event["actor"] == {"user_id": "ann", "name": "Ann"}
            assert event["client_event_id"] == "c-1"
            assert event["data"]["version"] == 1 and event["data"]["action"] == "create"
            assert event["type"] == "annotation_update" and event["room"] == ROOM
    finally:
        await ann.close()
        await bob.close()


async def test_client_event_id_makes_publish_idempotent(server: RunningServer) -> None:
    client = await server.client("u1", rooms=[ROOM])
    try:
        await client.call("join", {"room": ROOM})
        body = {"room": ROOM, "data": _update("create"), "client_event_id": "retry-1"}
        first = await client.call("annotation_update", body)
        second = await client.call("annotation_update", body)
        assert first["ok"] and second == first
        marker = await client.call(
            "annotation_update",
            {"room": ROOM, "data": _update("update", 1), "client_event_id": "retry-2"},
        )
        assert marker["seq"] == 2
        assert [e["seq"] for n, e in client.log if n == "annotation_update"] in ([1], [1, 2])
        assert (await client.next("annotation_update"))["seq"] == 1
        assert (await client.next("annotation_update"))["seq"] == 2
    finally:
        await client.close()


async def test_conflicts_carry_the_current_version(server: RunningServer) -> None:
    client = await server.client("u1", rooms=[ROOM])
    try:
        await client.call("join", {"room": ROOM})
        assert (await client.call("annotation_update", {"room": ROOM, "data": _update("create")}))[
            "ok"
        ]
        again = await client.call("annotation_update", {"room": ROOM, "data": _update("create")})
        assert again["error"]["code"] == "conflict" and again["error"]["current_version"] == 1
        ok = await client.call("annotation_update", {"room": ROOM, "data": _update("update", 1)})
        assert ok["ok"]
        stale = await client.call("annotation_update", {"room": ROOM, "data": _update("update", 1)})
        assert stale["error"]["code"] == "conflict" and stale["error"]["current_version"] == 2
        missing = await client.call("annotation_update", {"room": ROOM, "data": _update("delete")})
        assert missing["error"]["code"] == "conflict"
        deleted = await client.call(
            "annotation_update", {"room": ROOM, "data": _update("delete", 2)}
        )
        assert deleted["ok"]
        assert (await client.next("annotation_update"))["data"]["version"] == 1
        assert (await client.next("annotation_update"))["data"]["version"] == 2
        assert (await client.next("annotation_update"))["data"]["version"] == 3
    finally:
        await client.close()


async def test_publish_errors(server: RunningServer) -> None:
    client = await server.client("u1", rooms=[ROOM], projects=["p1"])
    try:
        not_joined = await client.call(
            "annotation_update", {"room": ROOM, "data": _update("create")}
        )
        assert not_joined["error"]["code"] == "not_joined"
        await client.call("join", {"room": ROOM})
        bad = await client.call(
            "annotation_update", {"room": ROOM, "data": {"action": "paint", "annotation_id": "a"}}
        )
        assert bad["error"]["code"] == "invalid_payload"
        polygon = _update("create")
        polygon["annotation"]["shape"] = {"type": "polygon", "points": [[0, 0], [1, 1]]}
        assert (await client.call("annotation_update", {"room": ROOM, "data": polygon}))["error"][
            "code"
        ] == "invalid_payload"
        server_only = await client.call(
            "detection_event", {"room": ROOM, "data": {"frame_id": "f", "detections": []}}
        )
        assert server_only["error"]["code"] == "forbidden"
        lock_event = await client.call("annotation_lock", {"room": ROOM, "data": {}})
        assert lock_event["error"]["code"] == "forbidden"
        bad_room = await client.call(
            "annotation_update", {"room": "bad room", "data": _update("create")}
        )
        assert bad_room["error"]["code"] == "invalid_room"
        ok = await client.call("annotation_update", {"room": ROOM, "data": _update("create")})
        assert ok["ok"] and ok["seq"] == 1
    finally:
        await client.close()


async def test_payload_too_large_is_refused_and_connection_survives() -> None:
    async with running_server(test_settings(max_payload_bytes=1024)) as server:
        client = await server.client("u1", rooms=[ROOM])
        try:
            await client.call("join", {"room": ROOM})
            big = _update("create")
            big["annotation"]["attributes"] = {"blob": "x" * 5000}
            refused = await client.call("annotation_update", {"room": ROOM, "data": big})
            assert refused["error"]["code"] == "payload_too_large"
            ok = await client.call("annotation_update", {"room": ROOM, "data": _update("create")})
            assert ok["ok"]
        finally:
            await client.close()


async def test_configured_client_publishable_type() -> None:
    settings = test_settings(client_publishable_types="annotation_update,notification")
    async with running_server(settings) as server:
        client = await server.client("u1", projects=["p1"])
        try:
            await client.call("join", {"room": "project_p1"})
            ack = await client.call(
                "notification", {"room": "project_p1", "data": {"title": "hi", "level": "info"}}
            )
            assert ack["ok"] and ack["seq"] == 1
            assert (await client.next("notification"))["actor"]["user_id"] == "u1"
        finally:
            await client.close()
