"""End-to-end tests of `POST /api/v1/publish/batch` (SPEC section 6)."""

from __future__ import annotations

import json
from typing import Any

from tests.e2e.test_http_api import (
    WAIT,
    api,
    bbox_annotation,
    detection_data,
    error_of,
    head_of,
    progress_body,
)
from tests.support.server import RunningServer, running_server, test_settings


def assert_published(result: dict[str, Any], seq: int | None = None) -> None:
    assert set(result) == {"id", "epoch", "seq"}, result
    assert isinstance(result["id"], str) and result["id"]
    assert isinstance(result["epoch"], str) and result["epoch"]
    if seq is not None:
        assert result["seq"] == seq, result


def assert_refused(result: dict[str, Any], code: str) -> dict[str, Any]:
    assert set(result) == {"error"}, result
    assert result["error"]["code"] == code, result
    assert isinstance(result["error"]["message"], str) and result["error"]["message"]
    return result["error"]  # type: ignore[no-any-return]


async def test_batch_answers_in_order_with_successes_and_errors(server: RunningServer) -> None:
    ann = "annotation_b1"
    client = await server.client("u1", projects=["p1"], rooms=[ann])
    create = {"action": "create", "annotation_id": "a1", "annotation": bbox_annotation()}
    events: list[dict[str, Any]] = [
        progress_body(completed=1, actor={"user_id": "svc", "name": "Service"}),
        {"room": "lobby", "type": "notification", "data": {"title": "t", "level": "info"}},
        {"room": "user_u1", "type": "notification", "data": {"title": "hi", "level": "info"}},
        {"room": "project_p1", "type": "no_such_type", "data": {}},
        {
            "room": "project_p1",
            "type": "project_progress_update",
            "data": {"total": 10, "completed": 1, "percent": 150},
        },
        {"room": "project_p1", "type": "detection_event", "data": detection_data()},
        {"room": ann, "type": "annotation_update", "data": create},
        {"room": ann, "type": "annotation_update", "data": create},
        progress_body(completed=2),
        {"room": "project_p1", "type": "project_progress_update"},
        progress_body(completed=3, idempotency_key="batch-dup"),
        progress_body(completed=3, idempotency_key="batch-dup"),
    ]
    try:
        await client.call("join", {"room": "project_p1"})
        ack = await client.call("join", {"room": ann})
        assert ack["ok"] is True, ack
        async with api(server) as http:
            r = await http.post("/api/v1/publish/batch", json={"events": events})
            assert r.status_code == 200, r.text
            body = r.json()
            assert set(body) == {"results"}
            results = body["results"]
            assert len(results) == len(events)

            assert_published(results[0], seq=1)
            assert_refused(results[1], "invalid_room")
            assert_published(results[2], seq=1)
            assert_refused(results[3], "invalid_type")
            assert_refused(results[4], "invalid_payload")
            assert_refused(results[5], "invalid_payload")
            assert_published(results[6], seq=1)
            assert assert_refused(results[7], "conflict")["current_version"] == 1
            assert_published(results[8], seq=2)
            assert_refused(results[9], "invalid_payload")
            assert_published(results[10], seq=3)
            assert results[11] == results[10]
            assert results[0]["epoch"] == results[8]["epoch"] == results[10]["epoch"]

            assert await head_of(http, "project_p1") == 3
            assert await head_of(http, ann) == 1
            after = await http.post("/api/v1/publish", json=progress_body(completed=4))
            assert after.status_code == 200, after.text

        got = []
        for _ in range(4):
            event = await client.next("project_progress_update", timeout=WAIT)
            got.append((event["id"], event["seq"], event["data"]["completed"]))
        # The duplicate was not delivered: the event after seq 3 is the later publish.
        assert got == [
            (results[0]["id"], 1, 1),
            (results[8]["id"], 2, 2),
            (results[10]["id"], 3, 3),
            (after.json()["id"], 4, 4),
        ]
        first = (await http_history(server, "project_p1"))[0]
        assert first["actor"] == {"user_id": "svc", "name": "Service"}
        # The annotation event went out between seq 1 and seq 2 of the project room, so
        # it is already in the client's log (next() above skipped past it).
        updates = [data for name, data in client.log if name == "annotation_update"]
        assert [(u["id"], u["data"]["version"]) for u in updates] == [(results[6]["id"], 1)]
    finally:
        await client.close()


async def http_history(server: RunningServer, room: str) -> list[dict[str, Any]]:
    async with api(server) as http:
        r = await http.get(f"/api/v1/rooms/{room}/history")
        assert r.status_code == 200, r.text
        return r.json()["events"]  # type: ignore[no-any-return]


async def test_batch_of_more_than_1000_events_is_refused(server: RunningServer) -> None:
    async with api(server) as http:
        events = [progress_body(completed=n % 10) for n in range(1001)]
        r = await http.post("/api/v1/publish/batch", json={"events": events})
        error_of(r, 400, "invalid_payload")
        assert await head_of(http, "project_p1") == 0

        r = await http.post("/api/v1/publish/batch", json={"events": events[:1000]})
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        assert [res["seq"] for res in results] == list(range(1, 1001))
        assert await head_of(http, "project_p1") == 1000


async def test_empty_batch_publishes_nothing(server: RunningServer) -> None:
    async with api(server) as http:
        r = await http.post("/api/v1/publish/batch", json={"events": []})
        assert r.status_code == 200, r.text
        assert r.json() == {"results": []}


async def test_batch_body_violations_are_invalid_payload(server: RunningServer) -> None:
    bodies: list[Any] = [
        {},
        {"events": None},
        {"events": {"room": "project_p1"}},
        {"events": "x"},
        {"events": [progress_body()], "extra": 1},
        [progress_body()],
    ]
    async with api(server) as http:
        for body in bodies:
            r = await http.post("/api/v1/publish/batch", json=body)
            assert r.status_code == 400, (body, r.text)
            error_of(r, 400, "invalid_payload")
        assert await head_of(http, "project_p1") == 0


async def test_batch_event_over_max_payload_bytes_is_refused_in_its_slot() -> None:
    async with running_server(test_settings(max_payload_bytes=1024)) as server:
        big = {
            "room": "user_u1",
            "type": "notification",
            "data": {"title": "t", "level": "info", "body": "x" * 2000},
        }
        events = [progress_body(completed=1), big, progress_body(completed=2)]
        async with api(server) as http:
            r = await http.post("/api/v1/publish/batch", json={"events": events})
            assert r.status_code == 200, r.text
            results = r.json()["results"]
            assert_published(results[0], seq=1)
            assert_refused(results[1], "payload_too_large")
            assert_published(results[2], seq=2)
            assert await head_of(http, "user_u1") == 0


async def test_batch_measures_events_in_bytes_like_publish() -> None:
    async with running_server(test_settings(max_payload_bytes=1024)) as server:
        event = {
            "room": "user_u1",
            "type": "notification",
            "data": {"title": "t", "level": "info", "body": "é" * 400},
        }
        compact = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
        assert len(compact) < 1024
        async with api(server) as http:
            alone = await http.post("/api/v1/publish", content=compact)
            assert alone.status_code == 200, alone.text
            r = await http.post("/api/v1/publish/batch", json={"events": [event]})
            assert r.status_code == 200, r.text
            assert_published(r.json()["results"][0], seq=2)


async def test_batch_events_reach_joined_clients_in_order(server: RunningServer) -> None:
    room = "detection_stream_tb"
    client = await server.client("viewer", rooms=[room])
    try:
        ack = await client.call("join", {"room": room})
        assert ack["ok"] is True, ack
        events = [
            {"room": room, "type": "detection_event", "data": detection_data(f"f{n}")}
            for n in range(20)
        ]
        async with api(server) as http:
            r = await http.post("/api/v1/publish/batch", json={"events": events})
            assert r.status_code == 200, r.text
        results = r.json()["results"]
        for n in range(20):
            event = await client.next("detection_event", timeout=WAIT)
            assert event["seq"] == n + 1 and event["id"] == results[n]["id"]
            assert event["data"]["frame_id"] == f"f{n}"
    finally:
        await client.close()


async def test_batch_event_with_a_number_json_cannot_carry_is_refused_in_its_slot(
    server: RunningServer,
) -> None:
    # 1e400 parses as an infinity: that event is invalid_payload, not a server error.
    body = (
        b'{"events": ['
        + json.dumps(progress_body(completed=1)).encode()
        + b', {"room": "project_p1", "type": "project_progress_update",'
        b' "data": {"total": 10, "completed": 1, "percent": 10, "eta": 1e400}}, '
        + json.dumps(progress_body(completed=2)).encode()
        + b"]}"
    )
    async with api(server) as http:
        r = await http.post(
            "/api/v1/publish/batch", content=body, headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        assert_published(results[0], seq=1)
        assert_refused(results[1], "invalid_payload")
        assert_published(results[2], seq=2)
