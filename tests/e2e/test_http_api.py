"""End-to-end tests of the HTTP API (SPEC section 6), against a real server.

Every test talks to a real uvicorn running the real application, over real HTTP and
real Socket.IO. Batch publishing is in test_http_publish_batch.py.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.server import API_KEY, Client, RunningServer, running_server, test_settings

ENVELOPE_KEYS = {"id", "type", "room", "epoch", "seq", "ts", "actor", "client_event_id", "data"}
WAIT = 5.0


# helpers ---------------------------------------------------------------------------


@asynccontextmanager
async def api(server: RunningServer, *, key: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    headers = server.api_headers if key else {}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=WAIT) as http:
        yield http


def error_of(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Assert `r` is the SPEC's error body with this status and code; return the error."""
    assert r.status_code == status, f"expected {status} {code}, got {r.status_code}: {r.text}"
    body = r.json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert error["code"] == code, body
    assert isinstance(error["message"], str) and error["message"], body
    return error


def progress(completed: int = 1, total: int = 10) -> dict[str, Any]:
    return {"total": total, "completed": completed, "percent": 100.0 * completed / total}


def progress_body(room: str = "project_p1", completed: int = 1, **extra: Any) -> dict[str, Any]:
    return {"room": room, "type": "project_progress_update", "data": progress(completed), **extra}


def detection_data(frame: str = "f1") -> dict[str, Any]:
    return {
        "frame_id": frame,
        "model": "yolo-test",
        "detections": [{"label": "car", "score": 0.9, "bbox": [1.0, 2.0, 3.0, 4.0]}],
    }


def bbox_annotation(label: str = "car") -> dict[str, Any]:
    return {
        "label": label,
        "shape": {"type": "bbox", "x": 1, "y": 2, "w": 3, "h": 4},
        "attributes": {},
    }


async def head_of(http: httpx.AsyncClient, room: str) -> int:
    r = await http.get(f"/api/v1/rooms/{room}/history")
    assert r.status_code == 200, r.text
    return int(r.json()["seq"])


async def status_of(client: Client) -> dict[str, Any]:
    status = await client.next("connection_status", timeout=WAIT)
    assert status["status"] == "connected", status
    return status  # type: ignore[no-any-return]


async def joined(client: Client, room: str) -> dict[str, Any]:
    ack = await client.call("join", {"room": room})
    assert ack["ok"] is True, ack
    return ack  # type: ignore[no-any-return]


async def together(*requests: Awaitable[httpx.Response]) -> list[httpx.Response]:
    """Send independent requests at once (each answer is checked on its own)."""
    return list(await asyncio.gather(*requests))


async def close_all(*clients: Client) -> None:
    for client in clients:
        await client.close()


# 401 unauthorized --------------------------------------------------------------------

ENDPOINTS: list[tuple[str, str, Any]] = [
    ("POST", "/api/v1/publish", progress_body()),
    ("POST", "/api/v1/publish/batch", {"events": [progress_body()]}),
    ("GET", "/api/v1/rooms/project_p1/history", None),
    ("GET", "/api/v1/rooms/annotation_s1/presence", None),
    ("PUT", "/api/v1/rooms/annotation_s1/binding", {"project_id": "p1"}),
    ("GET", "/api/v1/rooms/annotation_s1/binding", None),
    ("POST", "/api/v1/users/u1/disconnect", {"reason": "test"}),
    ("GET", "/api/v1/stats", None),
]

BAD_AUTH: list[dict[str, str]] = [
    {},  # no header at all
    {"Authorization": ""},
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer wrong-key"},
    {"Authorization": f"Bearer {API_KEY}x"},
    {"Authorization": f"Bearer {API_KEY[:-1]}"},
    {"Authorization": f"Bearer x{API_KEY}"},
    {"Authorization": API_KEY},  # no scheme
    {"Authorization": f"Basic {API_KEY}"},  # wrong scheme
    {"Authorization": f"Token {API_KEY}"},
    {"Authorization": f"Bearer{API_KEY}"},
    {"X-API-Key": API_KEY},  # the key, but not where the SPEC says
]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS, ids=[e[1] for e in ENDPOINTS])
async def test_every_api_endpoint_refuses_missing_or_wrong_key(
    server: RunningServer, method: str, path: str, body: Any
) -> None:
    user = await server.client("u1")
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http:
            answers = await together(
                *(http.request(method, path, json=body, headers=h) for h in BAD_AUTH)
            )
            for headers, r in zip(BAD_AUTH, answers, strict=True):
                assert r.status_code == 401, (headers, r.status_code, r.text)
                error_of(r, 401, "unauthorized")
            # The key is checked before the body is even looked at.
            r = await http.request(method, path, content=b"{not json", headers={})
            error_of(r, 401, "unauthorized")
        # Nothing happened: no event stored, no binding made, the user still connected.
        async with api(server) as http:
            history, binding, stats = await together(
                http.get("/api/v1/rooms/project_p1/history"),
                http.get("/api/v1/rooms/annotation_s1/binding"),
                http.get("/api/v1/stats"),
            )
        assert history.json()["seq"] == 0, history.text
        error_of(binding, 404, "not_found")
        assert stats.json()["instance"]["connections"] == 1, stats.text
        assert not user.disconnected.is_set()
        assert user.sio.connected
    finally:
        await user.close()


async def test_every_configured_key_is_accepted_and_only_those() -> None:
    settings = test_settings(api_keys="key-one, key-two")
    async with running_server(settings) as server, api(server, key=False) as http:
        for key in ("key-one", "key-two"):
            r = await http.get("/api/v1/stats", headers={"Authorization": f"Bearer {key}"})
            assert r.status_code == 200, (key, r.text)
        for key in ("key-one, key-two", "key-one,key-two", "key", API_KEY):
            r = await http.get("/api/v1/stats", headers={"Authorization": f"Bearer {key}"})
            error_of(r, 401, "unauthorized")


# publish and the envelope ----------------------------------------------------------


async def test_publish_returns_position_and_client_receives_the_envelope(
    server: RunningServer,
) -> None:
    room = "detection_stream_t9"
    client = await server.client("viewer", rooms=[room])
    try:
        await status_of(client)
        ack = await joined(client, room)
        async with api(server) as http:
            before = int(time.time() * 1000)
            r = await http.post(
                "/api/v1/publish",
                json={
                    "room": room,
                    "type": "detection_event",
                    "data": detection_data("f-17"),
                    "actor": {"user_id": "worker-3", "name": "Detector"},
                },
            )
            after = int(time.time() * 1000)
        assert r.status_code == 200, r.text
        result = r.json()
        assert set(result) == {"id", "epoch", "seq"}, result
        assert isinstance(result["id"], str) and result["id"]
        assert result["epoch"] == ack["epoch"]
        assert result["seq"] == ack["seq"] + 1 == 1

        event = await client.next("detection_event", timeout=WAIT)
        assert set(event) >= ENVELOPE_KEYS, event
        assert "skipped" not in event
        assert event["id"] == result["id"]
        assert event["type"] == "detection_event"
        assert event["room"] == room
        assert event["epoch"] == result["epoch"]
        assert event["seq"] == result["seq"]
        assert isinstance(event["ts"], int) and before - 1000 <= event["ts"] <= after + 1000
        assert event["actor"] == {"user_id": "worker-3", "name": "Detector"}
        assert event["client_event_id"] is None
        assert event["data"] == detection_data("f-17")
    finally:
        await client.close()


async def test_publish_without_actor_delivers_null_actor(server: RunningServer) -> None:
    client = await server.client("u1", projects=["p1"])
    try:
        await joined(client, "project_p1")
        async with api(server) as http:
            r = await http.post("/api/v1/publish", json=progress_body(completed=4))
            assert r.status_code == 200, r.text
        event = await client.next("project_progress_update", timeout=WAIT)
        assert event["actor"] is None
        assert event["id"] == r.json()["id"]
        assert event["data"]["completed"] == 4
    finally:
        await client.close()


async def test_published_events_are_sequenced_per_room(server: RunningServer) -> None:
    async with api(server) as http:
        seqs = []
        for n in range(1, 4):
            r = await http.post("/api/v1/publish", json=progress_body(completed=n))
            assert r.status_code == 200, r.text
            seqs.append(r.json()["seq"])
        other = await http.post("/api/v1/publish", json=progress_body("project_p2"))
        assert other.status_code == 200, other.text
    assert seqs == [1, 2, 3]
    assert other.json()["seq"] == 1


async def test_every_builtin_publishable_type_is_accepted_in_its_rooms(
    server: RunningServer,
) -> None:
    cases = [
        (
            "annotation_s1",
            "annotation_validated",
            {"annotation_id": "a1", "version": 2, "status": "accepted", "validator_id": "v1"},
        ),
        (
            "user_u1",
            "annotation_validated",
            {
                "annotation_id": "a1",
                "version": 2,
                "status": "needs_review",
                "validator_id": "v1",
                "comment": "check the wheel",
            },
        ),
        ("detection_stream_t_1-x", "detection_event", detection_data()),
        ("project_p1", "project_progress_update", progress()),
        ("user_u1", "notification", {"title": "hello", "level": "info"}),
        (
            "project_p1",
            "notification",
            {"title": "hello", "body": "b", "level": "warning", "link": "https://x.example/1"},
        ),
        (
            "annotation_s1",
            "annotation_update",
            {"action": "create", "annotation_id": "a1", "annotation": bbox_annotation()},
        ),
    ]
    async with api(server) as http:
        for room, event_type, data in cases:
            r = await http.post(
                "/api/v1/publish", json={"room": room, "type": event_type, "data": data}
            )
            assert r.status_code == 200, (room, event_type, r.text)


# idempotency -------------------------------------------------------------------------


async def test_idempotency_key_gives_same_result_and_one_delivery(server: RunningServer) -> None:
    client = await server.client("u1", projects=["p1"])
    try:
        await joined(client, "project_p1")
        async with api(server) as http:
            body = progress_body(completed=1, idempotency_key="job-42:step-1")
            first = await http.post("/api/v1/publish", json=body)
            again = await http.post("/api/v1/publish", json=body)
            assert first.status_code == again.status_code == 200, (first.text, again.text)
            assert again.json() == first.json()
            second = await http.post("/api/v1/publish", json=progress_body(completed=2))
            assert second.status_code == 200, second.text
            assert second.json()["seq"] == first.json()["seq"] + 1
            assert await head_of(http, "project_p1") == 2

        got = await client.next("project_progress_update", timeout=WAIT)
        assert got["id"] == first.json()["id"] and got["data"]["completed"] == 1
        # Had the retry been delivered, it would come next; the next one is the other event.
        nxt = await client.next("project_progress_update", timeout=WAIT)
        assert nxt["id"] == second.json()["id"] and nxt["data"]["completed"] == 2
    finally:
        await client.close()


async def test_idempotency_key_is_per_room(server: RunningServer) -> None:
    async with api(server) as http:
        a = await http.post(
            "/api/v1/publish", json=progress_body("project_p1", idempotency_key="k1")
        )
        b = await http.post(
            "/api/v1/publish", json=progress_body("project_p2", idempotency_key="k1")
        )
        assert a.status_code == b.status_code == 200, (a.text, b.text)
        assert a.json()["id"] != b.json()["id"]
        assert await head_of(http, "project_p1") == 1
        assert await head_of(http, "project_p2") == 1


# 400 invalid_room --------------------------------------------------------------------

BAD_ROOMS = [
    "lobby",
    "project",
    "project_",
    "project-p1",
    "Project_p1",
    "PROJECT_p1",
    "annotation_",
    "annotation_a b",
    "annotation_a.b",
    "annotation_a:b",
    "annotation_é",
    "annotation_" + "x" * 65,
    "detection_stream_",
    "detection_t1",
    "user_",
    "user_a.b",
    "user_a b",
    "user_u1 ",
    " user_u1",
    "user_" + "u" * 65,
    "user_u1\n",
]


async def test_publish_to_an_invalid_room_is_refused(server: RunningServer) -> None:
    async with api(server) as http:
        rooms = [*BAD_ROOMS, ""]
        data = {"title": "t", "level": "info"}
        answers = await together(
            *(
                http.post(
                    "/api/v1/publish", json={"room": room, "type": "notification", "data": data}
                )
                for room in rooms
            )
        )
        for room, r in zip(rooms, answers, strict=True):
            assert r.status_code == 400, (room, r.text)
            error_of(r, 400, "invalid_room")


@pytest.mark.parametrize("endpoint", ["history", "presence", "binding"])
async def test_room_endpoints_refuse_invalid_rooms(server: RunningServer, endpoint: str) -> None:
    async with api(server) as http:

        def request(room: str) -> Awaitable[httpx.Response]:
            path = f"/api/v1/rooms/{quote(room, safe='')}/{endpoint}"
            if endpoint == "binding":
                return http.put(path, json={"project_id": "p1"})
            return http.get(path)

        answers = await together(*(request(room) for room in BAD_ROOMS))
        for room, r in zip(BAD_ROOMS, answers, strict=True):
            assert r.status_code == 400, (room, r.text)
            error_of(r, 400, "invalid_room")
        # The longest valid id is accepted.
        room = "annotation_" + "x" * 64
        if endpoint == "binding":
            r = await http.put(f"/api/v1/rooms/{room}/binding", json={"project_id": "p1"})
        else:
            r = await http.get(f"/api/v1/rooms/{room}/{endpoint}")
        assert r.status_code == 200, r.text


async def test_publish_to_a_bare_socket_id_is_refused(server: RunningServer) -> None:
    client = await server.client("u1")
    try:
        sid = (await status_of(client))["sid"]
        async with api(server) as http:
            data = {"title": "to the sid", "level": "info"}
            r = await http.post(
                "/api/v1/publish", json={"room": sid, "type": "notification", "data": data}
            )
            error_of(r, 400, "invalid_room")
            error_of(
                await http.get(f"/api/v1/rooms/{quote(sid, safe='')}/history"), 400, "invalid_room"
            )
            # Nothing reached the socket: the next event it gets is this one.
            ok = await http.post(
                "/api/v1/publish",
                json={
                    "room": "user_u1",
                    "type": "notification",
                    "data": {"title": "to the user", "level": "info"},
                },
            )
            assert ok.status_code == 200, ok.text
        name, event = await client.next(timeout=WAIT)
        assert name == "notification" and event["data"]["title"] == "to the user", (name, event)
    finally:
        await client.close()


# 400 invalid_type --------------------------------------------------------------------


async def test_unknown_event_type_is_refused(server: RunningServer) -> None:
    async with api(server) as http:
        types = [
            "nope",
            "",
            "Notification",
            "notification ",
            "presence",
            "connection_status",
            "rate_limited",
            "join",
            "x" * 64,
        ]
        data = {"title": "t", "level": "info"}
        answers = await together(
            *(
                http.post("/api/v1/publish", json={"room": "user_u1", "type": t, "data": data})
                for t in types
            )
        )
        for event_type, r in zip(types, answers, strict=True):
            assert r.status_code == 400, (event_type, r.text)
            error_of(r, 400, "invalid_type")
        assert await head_of(http, "user_u1") == 0


async def test_server_only_type_cannot_be_published_over_http(server: RunningServer) -> None:
    data = {
        "annotation_id": "a1",
        "state": "locked",
        "holder": {"user_id": "u1"},
        "fencing_token": 1,
        "expires_at": 1,
    }
    async with api(server) as http:
        r = await http.post(
            "/api/v1/publish",
            json={"room": "annotation_s1", "type": "annotation_lock", "data": data},
        )
        assert 400 <= r.status_code < 500, r.text
        assert set(r.json()) == {"error"} and r.json()["error"]["code"], r.text
        assert await head_of(http, "annotation_s1") == 0


# 400 invalid_payload -----------------------------------------------------------------

ANN = "annotation_s1"
BAD_PUBLISH_BODIES: list[tuple[str, Any]] = [
    ("data missing", {"room": "project_p1", "type": "project_progress_update"}),
    ("data a list", {"room": "project_p1", "type": "project_progress_update", "data": [1]}),
    ("data null", {"room": "project_p1", "type": "project_progress_update", "data": None}),
    ("data a string", {"room": "project_p1", "type": "project_progress_update", "data": "x"}),
    ("room missing", {"type": "project_progress_update", "data": progress()}),
    ("type missing", {"room": "project_p1", "data": progress()}),
    ("unknown top-level field", {**progress_body(), "priority": "high"}),
    (
        "percent over 100",
        {
            "room": "project_p1",
            "type": "project_progress_update",
            "data": {"total": 10, "completed": 1, "percent": 150},
        },
    ),
    (
        "negative completed",
        {
            "room": "project_p1",
            "type": "project_progress_update",
            "data": {"total": 10, "completed": -1, "percent": 1},
        },
    ),
    (
        "total missing",
        {
            "room": "project_p1",
            "type": "project_progress_update",
            "data": {"completed": 1, "percent": 1},
        },
    ),
    (
        "notification level",
        {"room": "user_u1", "type": "notification", "data": {"title": "t", "level": "debug"}},
    ),
    ("notification title", {"room": "user_u1", "type": "notification", "data": {"level": "info"}}),
    (
        "score over 1",
        {
            "room": "detection_stream_t1",
            "type": "detection_event",
            "data": {
                "frame_id": "f",
                "detections": [{"label": "car", "score": 1.5, "bbox": [1, 2, 3, 4]}],
            },
        },
    ),
    (
        "bbox of 3",
        {
            "room": "detection_stream_t1",
            "type": "detection_event",
            "data": {
                "frame_id": "f",
                "detections": [{"label": "car", "score": 0.5, "bbox": [1, 2, 3]}],
            },
        },
    ),
    (
        "detections missing",
        {"room": "detection_stream_t1", "type": "detection_event", "data": {"frame_id": "f"}},
    ),
    (
        "frame_id missing",
        {"room": "detection_stream_t1", "type": "detection_event", "data": {"detections": []}},
    ),
    (
        "polygon of 2",
        {
            "room": ANN,
            "type": "annotation_update",
            "data": {
                "action": "create",
                "annotation_id": "a1",
                "annotation": {
                    "label": "car",
                    "shape": {"type": "polygon", "points": [[0, 0], [1, 1]]},
                },
            },
        },
    ),
    (
        "unknown shape",
        {
            "room": ANN,
            "type": "annotation_update",
            "data": {
                "action": "create",
                "annotation_id": "a1",
                "annotation": {"label": "car", "shape": {"type": "circle", "x": 1, "y": 1}},
            },
        },
    ),
    (
        "unknown action",
        {
            "room": ANN,
            "type": "annotation_update",
            "data": {"action": "rename", "annotation_id": "a1", "annotation": bbox_annotation()},
        },
    ),
    (
        "create with null annotation",
        {
            "room": ANN,
            "type": "annotation_update",
            "data": {"action": "create", "annotation_id": "a1", "annotation": None},
        },
    ),
    (
        "validated status",
        {
            "room": ANN,
            "type": "annotation_validated",
            "data": {"annotation_id": "a1", "version": 1, "status": "ok", "validator_id": "v1"},
        },
    ),
    ("actor without user_id", {**progress_body(), "actor": {"name": "Ann"}}),
    ("actor a string", {**progress_body(), "actor": "u1"}),
    ("room not a string", {**progress_body(), "room": ["project_p1"]}),
    # a type published into a room kind it does not belong to
    (
        "detection into project",
        {"room": "project_p1", "type": "detection_event", "data": detection_data()},
    ),
    (
        "detection into user",
        {"room": "user_u1", "type": "detection_event", "data": detection_data()},
    ),
    (
        "detection into annotation",
        {"room": ANN, "type": "detection_event", "data": detection_data()},
    ),
    (
        "progress into annotation",
        {"room": ANN, "type": "project_progress_update", "data": progress()},
    ),
    (
        "progress into user",
        {"room": "user_u1", "type": "project_progress_update", "data": progress()},
    ),
    (
        "annotation_update into user",
        {
            "room": "user_u1",
            "type": "annotation_update",
            "data": {"action": "create", "annotation_id": "a1", "annotation": bbox_annotation()},
        },
    ),
    (
        "annotation_update into project",
        {
            "room": "project_p1",
            "type": "annotation_update",
            "data": {"action": "create", "annotation_id": "a1", "annotation": bbox_annotation()},
        },
    ),
    (
        "notification into detection",
        {
            "room": "detection_stream_t1",
            "type": "notification",
            "data": {"title": "t", "level": "info"},
        },
    ),
    (
        "notification into annotation",
        {"room": ANN, "type": "notification", "data": {"title": "t", "level": "info"}},
    ),
    (
        "validated into project",
        {
            "room": "project_p1",
            "type": "annotation_validated",
            "data": {
                "annotation_id": "a1",
                "version": 1,
                "status": "accepted",
                "validator_id": "v1",
            },
        },
    ),
]


async def test_publish_schema_and_room_kind_violations_are_invalid_payload(
    server: RunningServer,
) -> None:
    async with api(server) as http:
        answers = await together(
            *(http.post("/api/v1/publish", json=body) for _, body in BAD_PUBLISH_BODIES)
        )
        for (label, _), r in zip(BAD_PUBLISH_BODIES, answers, strict=True):
            assert r.status_code == 400, (label, r.status_code, r.text)
            error_of(r, 400, "invalid_payload")
        for room in ("project_p1", "user_u1", "detection_stream_t1", ANN):
            assert await head_of(http, room) == 0, room


async def test_annotation_update_without_annotation_is_invalid_payload(
    server: RunningServer,
) -> None:
    async with api(server) as http:
        create = {"action": "create", "annotation_id": "a1"}
        r = await http.post(
            "/api/v1/publish", json={"room": ANN, "type": "annotation_update", "data": create}
        )
        error_of(r, 400, "invalid_payload")
        full = {**create, "annotation": bbox_annotation()}
        r = await http.post(
            "/api/v1/publish", json={"room": ANN, "type": "annotation_update", "data": full}
        )
        assert r.status_code == 200, r.text
        update = {"action": "update", "annotation_id": "a1", "base_version": 1}
        r = await http.post(
            "/api/v1/publish", json={"room": ANN, "type": "annotation_update", "data": update}
        )
        error_of(r, 400, "invalid_payload")


NOT_JSON_BODIES: list[bytes] = [
    b"",
    b"   ",
    b"not json",
    b"{",
    b'{"room": ',
    b"\xff\xfe\x00\x01",
    b"[]",
    b'"project_p1"',
    b"42",
    b"null",
    b"room=project_p1&type=notification",
]


@pytest.mark.parametrize("path", ["/api/v1/publish", "/api/v1/publish/batch"])
async def test_body_that_is_not_a_json_object_is_invalid_payload(
    server: RunningServer, path: str
) -> None:
    async with api(server) as http:
        headers = {"Content-Type": "application/json"}
        answers = await together(
            *(http.post(path, content=content, headers=headers) for content in NOT_JSON_BODIES)
        )
        for content, r in zip(NOT_JSON_BODIES, answers, strict=True):
            assert r.status_code == 400, (content, r.status_code, r.text)
            error_of(r, 400, "invalid_payload")


async def test_binding_body_violations_are_invalid_payload(server: RunningServer) -> None:
    path = "/api/v1/rooms/annotation_s1/binding"
    async with api(server) as http:
        answers = await together(*(http.put(path, content=c) for c in NOT_JSON_BODIES))
        for content, r in zip(NOT_JSON_BODIES, answers, strict=True):
            assert r.status_code == 400, (content, r.status_code, r.text)
            error_of(r, 400, "invalid_payload")
        bodies: list[Any] = [
            {},
            {"project_id": ""},
            {"project_id": "p 1"},
            {"project_id": 7},
            {"project_id": None},
            {"project_id": "p1", "extra": 1},
            {"project_id": "x" * 65},
        ]
        answers = await together(*(http.put(path, json=body) for body in bodies))
        for body, r in zip(bodies, answers, strict=True):
            assert r.status_code == 400, (body, r.text)
            error_of(r, 400, "invalid_payload")
        error_of(await http.get(path), 404, "not_found")


async def test_disconnect_body_type_violation_is_invalid_payload(server: RunningServer) -> None:
    async with api(server) as http:
        for body in ([], {"reason": 5}, {"reason": ["a"]}, "bye"):
            r = await http.post("/api/v1/users/u1/disconnect", json=body)
            assert r.status_code == 400, (body, r.text)
            error_of(r, 400, "invalid_payload")


async def test_disconnect_with_non_json_body_is_invalid_payload(server: RunningServer) -> None:
    async with api(server) as http:
        for content in (b"not json", b"{", b"\xff\xfe"):
            r = await http.post("/api/v1/users/u1/disconnect", content=content)
            error_of(r, 400, "invalid_payload")


async def test_nan_and_infinity_are_not_json(server: RunningServer) -> None:
    async with api(server) as http:
        for literal in (b"NaN", b"Infinity", b"-Infinity"):
            content = (
                b'{"room": "user_u1", "type": "notification", '
                b'"data": {"title": "t", "level": "info", "score": ' + literal + b"}}"
            )
            r = await http.post("/api/v1/publish", content=content)
            error_of(r, 400, "invalid_payload")
        assert await head_of(http, "user_u1") == 0


async def test_request_validation_errors_are_400_not_422(server: RunningServer) -> None:
    path = "/api/v1/rooms/project_p1/history"
    bad_queries: list[dict[str, Any]] = [
        {"limit": "abc"},
        {"limit": "1.5"},
        {"limit": ""},
        {"since_seq": "abc"},
        {"since_seq": "-1"},
        {"limit": "0"},
        {"limit": "-5"},
        {"limit": "1001"},
        {"limit": "100000000000000000000000"},
    ]
    async with api(server) as http:
        answers = await together(*(http.get(path, params=params) for params in bad_queries))
        for params, r in zip(bad_queries, answers, strict=True):
            assert r.status_code == 400, (params, r.status_code, r.text)
            error_of(r, 400, "invalid_payload")
        for params in ({"limit": "1"}, {"limit": "1000"}, {"since_seq": "0"}):
            r = await http.get(path, params=params)
            assert r.status_code == 200, (params, r.text)


# 413 payload_too_large ---------------------------------------------------------------


def notification_bytes(size: int, room: str = "user_u1") -> bytes:
    """A compact publish body of exactly `size` bytes."""

    def encode(pad: str) -> bytes:
        body = {
            "room": room,
            "type": "notification",
            "data": {"title": "t", "level": "info", "body": pad},
        }
        return json.dumps(body, separators=(",", ":")).encode()

    base = len(encode(""))
    content = encode("x" * (size - base))
    assert len(content) == size
    return content


async def test_publish_body_over_max_payload_bytes_is_413() -> None:
    settings = test_settings(max_payload_bytes=1024)
    async with running_server(settings) as server, api(server) as http:
        ok = await http.post("/api/v1/publish", content=notification_bytes(1024))
        assert ok.status_code == 200, ok.text
        sizes = (1025, 4096, 200_000)
        for r in await together(
            *(http.post("/api/v1/publish", content=notification_bytes(size)) for size in sizes)
        ):
            error_of(r, 413, "payload_too_large")
        # Bytes, not characters: 600 two-byte characters are over 1024 bytes.
        body = {
            "room": "user_u1",
            "type": "notification",
            "data": {"title": "t", "level": "info", "body": "é" * 600},
        }
        content = json.dumps(body, ensure_ascii=False).encode()
        assert len(content.decode()) < 1024 < len(content)
        error_of(await http.post("/api/v1/publish", content=content), 413, "payload_too_large")
        assert await head_of(http, "user_u1") == 1


# 409 conflict ------------------------------------------------------------------------


async def test_annotation_update_over_http_enforces_versions(server: RunningServer) -> None:
    room = "annotation_s7"
    client = await server.client("u1", rooms=[room])

    def update(action: str, base: int | None, annotation_id: str = "a1") -> dict[str, Any]:
        data: dict[str, Any] = {
            "action": action,
            "annotation_id": annotation_id,
            "base_version": base,
        }
        if action != "delete":
            data["annotation"] = bbox_annotation()
        return {
            "room": room,
            "type": "annotation_update",
            "data": data,
            "actor": {"user_id": "backend"},
        }

    try:
        await joined(client, room)
        async with api(server) as http:
            created = await http.post("/api/v1/publish", json=update("create", None))
            assert created.status_code == 200, created.text

            err = error_of(
                await http.post("/api/v1/publish", json=update("create", None)), 409, "conflict"
            )
            assert err["current_version"] == 1

            updated = await http.post("/api/v1/publish", json=update("update", 1))
            assert updated.status_code == 200, updated.text

            err = error_of(
                await http.post("/api/v1/publish", json=update("update", 1)), 409, "conflict"
            )
            assert err["current_version"] == 2
            err = error_of(
                await http.post("/api/v1/publish", json=update("update", None)), 409, "conflict"
            )
            assert err["current_version"] == 2
            err = error_of(
                await http.post("/api/v1/publish", json=update("update", 3)), 409, "conflict"
            )
            assert err["current_version"] == 2
            err = error_of(
                await http.post("/api/v1/publish", json=update("delete", 1)), 409, "conflict"
            )
            assert err["current_version"] == 2
            err = error_of(
                await http.post("/api/v1/publish", json=update("update", 0, "a9")), 409, "conflict"
            )
            assert "current_version" in err

            deleted = await http.post("/api/v1/publish", json=update("delete", 2))
            assert deleted.status_code == 200, deleted.text
            # Refused writes took no seq.
            assert [created.json()["seq"], updated.json()["seq"], deleted.json()["seq"]] == [
                1,
                2,
                3,
            ]
            assert await head_of(http, room) == 3

        versions = []
        for _ in range(3):
            event = await client.next("annotation_update", timeout=WAIT)
            versions.append((event["seq"], event["data"]["action"], event["data"]["version"]))
        assert versions == [(1, "create", 1), (2, "update", 2), (3, "delete", 3)]
    finally:
        await client.close()


# 404 not_found -----------------------------------------------------------------------


async def test_unknown_paths_are_not_found(server: RunningServer) -> None:
    async with api(server) as http:
        paths = ["/nope", "/api/v1/nope", "/api/v2/publish", "/api/v1/rooms/project_p1"]
        for r in await together(*(http.get(path) for path in paths)):
            error_of(r, 404, "not_found")
    async with api(server, key=False) as http:
        error_of(await http.get("/nope"), 404, "not_found")


async def test_binding_lookup_of_an_unbound_room_is_not_found(server: RunningServer) -> None:
    async with api(server) as http:
        error_of(await http.get("/api/v1/rooms/annotation_s404/binding"), 404, "not_found")
        error_of(await http.get("/api/v1/rooms/detection_stream_t404/binding"), 404, "not_found")


# history -----------------------------------------------------------------------------


async def test_history_pages_in_order_up_to_the_head(server: RunningServer) -> None:
    room = "project_hist"
    async with api(server) as http:
        empty = await http.get(f"/api/v1/rooms/{room}/history")
        assert empty.status_code == 200, empty.text
        page0 = empty.json()
        assert page0["room"] == room and page0["seq"] == 0 and page0["events"] == []
        assert page0["complete"] is True
        assert isinstance(page0["epoch"], str) and page0["epoch"]

        published = []
        for n in range(1, 8):
            r = await http.post(
                "/api/v1/publish", json=progress_body(room, completed=n, actor={"user_id": "b"})
            )
            assert r.status_code == 200, r.text
            published.append(r.json())
        assert {p["epoch"] for p in published} == {page0["epoch"]}

        since, pages, seen = 0, 0, []
        while True:
            r = await http.get(
                f"/api/v1/rooms/{room}/history", params={"since_seq": since, "limit": 3}
            )
            assert r.status_code == 200, r.text
            page = r.json()
            pages += 1
            assert page["room"] == room
            assert page["seq"] == 7  # the head, on every page
            assert page["epoch"] == page0["epoch"]
            assert page["complete"] is True
            seqs = [e["seq"] for e in page["events"]]
            assert seqs == list(range(since + 1, since + 1 + len(seqs)))
            assert 1 <= len(seqs) <= 3
            seen.extend(page["events"])
            since = seqs[-1]
            if since == page["seq"]:
                break
            assert pages < 10
        assert pages == 3
        assert [e["id"] for e in seen] == [p["id"] for p in published]
        for event, n in zip(seen, range(1, 8), strict=True):
            assert set(event) >= ENVELOPE_KEYS
            assert event["type"] == "project_progress_update"
            assert event["room"] == room and event["epoch"] == page0["epoch"]
            assert event["data"]["completed"] == n
            assert event["actor"]["user_id"] == "b"
            assert isinstance(event["ts"], int)
        assert [e["ts"] for e in seen] == sorted(e["ts"] for e in seen)

        r = await http.get(f"/api/v1/rooms/{room}/history", params={"since_seq": 5})
        assert [e["seq"] for e in r.json()["events"]] == [6, 7]
        r = await http.get(f"/api/v1/rooms/{room}/history", params={"since_seq": 7})
        assert r.json()["events"] == [] and r.json()["seq"] == 7


async def test_history_default_limit_is_100(server: RunningServer) -> None:
    room = "project_many"
    async with api(server) as http:
        r = await http.post(
            "/api/v1/publish/batch",
            json={"events": [progress_body(room, completed=n % 10) for n in range(105)]},
        )
        assert r.status_code == 200, r.text
        page = (await http.get(f"/api/v1/rooms/{room}/history")).json()
        assert page["seq"] == 105
        assert [e["seq"] for e in page["events"]] == list(range(1, 101))
        page = (await http.get(f"/api/v1/rooms/{room}/history", params={"since_seq": 100})).json()
        assert [e["seq"] for e in page["events"]] == list(range(101, 106))
        page = (await http.get(f"/api/v1/rooms/{room}/history", params={"limit": 1000})).json()
        assert len(page["events"]) == 105


async def test_history_is_incomplete_when_it_no_longer_reaches_back() -> None:
    room = "project_short"
    async with running_server(test_settings(history_size=5)) as server, api(server) as http:
        r = await http.post(
            "/api/v1/publish/batch",
            json={"events": [progress_body(room, completed=n) for n in range(1, 9)]},
        )
        assert r.status_code == 200, r.text
        assert r.json()["results"][-1]["seq"] == 8
        # Seqs 4..8 remain.
        sinces = list(range(9))
        pages = await together(
            *(
                http.get(f"/api/v1/rooms/{room}/history", params={"since_seq": since})
                for since in sinces
            )
        )
        for since, answer in zip(sinces, pages, strict=True):
            page = answer.json()
            assert page["seq"] == 8, page
            if since < 3:
                assert page["complete"] is False, (since, page)
            else:
                assert page["complete"] is True, (since, page)
                assert [e["seq"] for e in page["events"]] == list(range(since + 1, 9))


# presence ----------------------------------------------------------------------------


async def test_presence_lists_members_with_connection_counts(server: RunningServer) -> None:
    room = "annotation_pres"
    path = f"/api/v1/rooms/{room}/presence"
    a1 = await server.client("ann", name="Ann", rooms=[room])
    a2 = await server.client("ann", name="Ann", rooms=[room])
    b1 = await server.client("bob", rooms=[room])
    try:
        async with api(server) as http:
            r = await http.get(path)
            assert r.status_code == 200, r.text
            assert r.json() == {"room": room, "count": 0, "members": []}

            for client in (a1, a2, b1):
                await joined(client, room)
            r = await http.get(path)
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["room"] == room and body["count"] == 2
            members = sorted(body["members"], key=lambda m: m["user_id"])
            assert members == [
                {"user_id": "ann", "name": "Ann", "connections": 2},
                {"user_id": "bob", "name": None, "connections": 1},
            ]

            ack = await a2.call("leave", {"room": room})
            assert ack["ok"] is True, ack
            ack = await b1.call("leave", {"room": room})
            assert ack["ok"] is True, ack
            body = (await http.get(path)).json()
            assert body["count"] == 1
            assert body["members"] == [{"user_id": "ann", "name": "Ann", "connections": 1}]
    finally:
        await close_all(a1, a2, b1)


# binding -----------------------------------------------------------------------------


async def test_binding_lets_project_members_join(server: RunningServer) -> None:
    room = "annotation_bound"
    member = await server.client("m1", projects=["p9"])
    outsider = await server.client("o1", projects=["p8"])
    try:
        for client in (member, outsider):
            ack = await client.call("join", {"room": room})
            assert ack["ok"] is False and ack["error"]["code"] == "forbidden", ack
        async with api(server) as http:
            r = await http.put(f"/api/v1/rooms/{room}/binding", json={"project_id": "p9"})
            assert r.status_code == 200, r.text
            assert r.json() == {"room": room, "project_id": "p9"}
            r = await http.get(f"/api/v1/rooms/{room}/binding")
            assert r.status_code == 200, r.text
            assert r.json() == {"room": room, "project_id": "p9"}
        ack = await member.call("join", {"room": room})
        assert ack["ok"] is True and ack["room"] == room, ack
        ack = await outsider.call("join", {"room": room})
        assert ack["ok"] is False and ack["error"]["code"] == "forbidden", ack
    finally:
        await close_all(member, outsider)


async def test_detection_rooms_can_be_bound_too(server: RunningServer) -> None:
    room = "detection_stream_t5"
    member = await server.client("m1", projects=["p5"])
    try:
        ack = await member.call("join", {"room": room})
        assert ack["ok"] is False and ack["error"]["code"] == "forbidden", ack
        async with api(server) as http:
            r = await http.put(f"/api/v1/rooms/{room}/binding", json={"project_id": "p5"})
            assert r.status_code == 200, r.text
            assert r.json() == {"room": room, "project_id": "p5"}
        await joined(member, room)
    finally:
        await member.close()


async def test_project_and_user_rooms_cannot_be_bound(server: RunningServer) -> None:
    async with api(server) as http:
        for room in ("project_p1", "user_u1"):
            r = await http.put(f"/api/v1/rooms/{room}/binding", json={"project_id": "p1"})
            error_of(r, 400, "invalid_room")
            # Nothing was bound.
            error_of(await http.get(f"/api/v1/rooms/{room}/binding"), 404, "not_found")


# disconnect --------------------------------------------------------------------------


async def test_disconnect_closes_only_that_users_connections(server: RunningServer) -> None:
    t1 = await server.client("target", rooms=["annotation_d1"])
    t2 = await server.client("target")
    other = await server.client("bystander")
    try:
        await joined(t1, "annotation_d1")
        await status_of(other)
        async with api(server) as http:
            r = await http.post("/api/v1/users/target/disconnect", json={"reason": "banned"})
            assert r.status_code == 200, r.text
            assert r.json() == {"ok": True}
            async with asyncio.timeout(WAIT):
                await t1.disconnected.wait()
                await t2.disconnected.wait()
            # The bystander is still connected and still receives its events.
            assert not other.disconnected.is_set() and other.sio.connected
            r = await http.post(
                "/api/v1/publish",
                json={
                    "room": "user_bystander",
                    "type": "notification",
                    "data": {"title": "still here", "level": "info"},
                },
            )
            assert r.status_code == 200, r.text
        event = await other.next("notification", timeout=WAIT)
        assert event["data"]["title"] == "still here"
        assert not other.disconnected.is_set()
    finally:
        await close_all(t1, t2, other)


async def test_disconnect_body_is_optional_and_unknown_users_are_fine(
    server: RunningServer,
) -> None:
    client = await server.client("u1")
    try:
        async with api(server) as http:
            r = await http.post("/api/v1/users/nobody/disconnect")
            assert r.status_code == 200, r.text
            assert r.json() == {"ok": True}
            r = await http.post("/api/v1/users/u1/disconnect", json={})
            assert r.status_code == 200 and r.json() == {"ok": True}, r.text
        async with asyncio.timeout(WAIT):
            await client.disconnected.wait()
    finally:
        await client.close()


# stats -------------------------------------------------------------------------------


async def test_stats_shape_and_counts(server: RunningServer) -> None:
    async with api(server) as http:
        r = await http.get("/api/v1/stats")
        assert r.status_code == 200, r.text
        stats = r.json()
        assert set(stats) >= {"instance", "cluster"}
        inst = stats["instance"]
        assert set(inst) >= {
            "instance_id",
            "connections",
            "rooms",
            "events_in",
            "events_out",
            "started_at",
        }
        assert inst["instance_id"] == "test-instance"
        assert inst["connections"] == 0 and inst["rooms"] == 0
        assert inst["events_in"] == 0 and inst["events_out"] == 0
        now = int(time.time() * 1000)
        assert isinstance(inst["started_at"], int) and now - 60_000 < inst["started_at"] <= now
        cluster = stats["cluster"]
        assert set(cluster) >= {"instances_alive", "connections", "instances"}
        assert cluster["instances_alive"] >= 1 and cluster["connections"] == 0
        me = [i for i in cluster["instances"] if i["instance_id"] == "test-instance"]
        assert len(me) == 1 and set(me[0]) >= {"instance_id", "connections", "last_seen"}

        c1 = await server.client("u1", projects=["p1"])
        c2 = await server.client("u2", projects=["p1"])
        try:
            stats = (await http.get("/api/v1/stats")).json()
            assert stats["instance"]["connections"] == 2
            assert stats["cluster"]["connections"] == 2  # one instance: the cluster is it
            rooms_before = stats["instance"]["rooms"]
            await joined(c1, "project_p1")
            await joined(c2, "project_p1")
            stats = (await http.get("/api/v1/stats")).json()
            assert stats["instance"]["rooms"] == rooms_before + 1
            out_before = stats["instance"]["events_out"]

            r = await http.post("/api/v1/publish", json=progress_body())
            assert r.status_code == 200, r.text
            for client in (c1, c2):
                await client.next("project_progress_update", timeout=WAIT)
            stats = (await http.get("/api/v1/stats")).json()
            assert stats["instance"]["events_in"] == 1
            assert stats["instance"]["events_out"] == out_before + 2
            instances = stats["cluster"]["instances"]
            (me,) = [i for i in instances if i["instance_id"] == "test-instance"]
            assert me["connections"] == 2
            assert abs(me["last_seen"] - int(time.time() * 1000)) < 60_000
        finally:
            await close_all(c1, c2)


# health, readiness, metrics, OpenAPI -------------------------------------------------


async def test_healthz_needs_no_key(server: RunningServer) -> None:
    async with api(server, key=False) as http:
        assert (await http.get("/healthz")).status_code == 200
        r = await http.get("/healthz", headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 200


async def test_readyz_is_200_then_503_while_draining() -> None:
    async with running_server() as server, api(server, key=False) as http:
        r = await http.get("/readyz")
        assert r.status_code == 200, r.text
        await server.runtime.drain()
        r = await http.get("/readyz")
        assert r.status_code == 503, r.text
        assert "drain" in r.text.lower(), r.text
        # Still serving: health is a different question from readiness.
        assert (await http.get("/healthz")).status_code == 200


async def test_metrics_are_prometheus_text_without_room_or_user_labels(
    server: RunningServer,
) -> None:
    room = "annotation_zq7roomid4417"
    user = "zq7userid9902"
    actor = "zq7actorid3318"
    bad_room = "project_zq7badroom5521"
    client = await server.client(user, rooms=[room])
    try:
        await joined(client, room)
        async with api(server) as http:
            r = await http.post(
                "/api/v1/publish",
                json={
                    "room": room,
                    "type": "annotation_validated",
                    "actor": {"user_id": actor},
                    "data": {
                        "annotation_id": "a1",
                        "version": 1,
                        "status": "accepted",
                        "validator_id": actor,
                    },
                },
            )
            assert r.status_code == 200, r.text
            await client.next("annotation_validated", timeout=WAIT)
            bad = await http.post(
                "/api/v1/publish",
                json={"room": bad_room, "type": "project_progress_update", "data": {"total": -1}},
            )
            assert bad.status_code == 400
        async with api(server, key=False) as http:
            r = await http.get("/metrics")
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/plain")
        text = r.text
        families = {f.name: f for f in text_string_to_metric_families(text)}
        assert "roomcast_connections" in families
        assert [s.value for s in families["roomcast_connections"].samples] == [1.0]
        events_in = [
            s
            for s in families["roomcast_events_in"].samples
            if s.name == "roomcast_events_in_total"
        ]
        assert sum(s.value for s in events_in) == 1
        assert any(s.labels.get("type") == "annotation_validated" for s in events_in)
        events_out = [
            s
            for s in families["roomcast_events_out"].samples
            if s.name == "roomcast_events_out_total"
        ]
        assert sum(s.value for s in events_out) >= 1
        for secret in (room, "zq7roomid4417", user, actor, bad_room, "zq7badroom5521", "zq7"):
            assert secret not in text, secret
    finally:
        await client.close()


async def test_openapi_document_lists_the_api(server: RunningServer) -> None:
    async with api(server, key=False) as http:
        r = await http.get("/openapi.json")
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["openapi"].startswith("3.")
    paths = doc["paths"]
    for path in (
        "/api/v1/publish",
        "/api/v1/publish/batch",
        "/api/v1/rooms/{room}/history",
        "/api/v1/rooms/{room}/presence",
        "/api/v1/rooms/{room}/binding",
        "/api/v1/users/{user_id}/disconnect",
        "/api/v1/stats",
    ):
        assert path in paths, path
    assert "post" in paths["/api/v1/publish"]
