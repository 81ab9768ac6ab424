"""`POST /api/v1/publish/batch` over Redis: per-event errors inside one batch call,
and what the request answers when Redis is down (SPEC sections 6 and 9)."""

from __future__ import annotations

import time
from typing import Any

from tests.e2e.test_http_api import WAIT, api, bbox_annotation, detection_data, head_of
from tests.e2e.test_http_publish_batch import assert_published, assert_refused
from tests.support.redis_procs import RedisServer, redis_server
from tests.support.server import running_server, test_settings

__all__ = ["redis_server"]  # imported so that pytest registers the fixture here

ANN = "annotation_r1"


def update(action: str, aid: str, base: int | None = None, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"action": action, "annotation_id": aid, "base_version": base}
    if action != "delete":
        data["annotation"] = bbox_annotation()
    return {"room": ANN, "type": "annotation_update", "data": data, **extra}


def detection(room: str, frame: str) -> dict[str, Any]:
    return {"room": room, "type": "detection_event", "data": detection_data(frame)}


async def test_one_bad_event_in_a_room_batch_spares_the_others(redis_server: RedisServer) -> None:
    settings = test_settings(redis_url=redis_server.url, key_prefix="b1")
    async with running_server(settings) as server:
        client = await server.client("ann", rooms=[ANN])
        try:
            assert (await client.call("join", {"room": ANN}))["ok"]
            lock = await client.call("lock", {"room": ANN, "annotation_id": "held"})
            assert lock["ok"] is True, lock
            events = [
                update("create", "a1"),
                update("create", "a1"),  # conflict: exists
                update("update", "a1", 1),
                update("update", "a1", 1),  # conflict: stale
                update("create", "held", actor={"user_id": "bob"}),  # locked by ann
                {"room": ANN, "type": "annotation_update", "data": {"action": "zap"}},
                update("create", "a2", idempotency_key="a2-create"),
                update("create", "a2", idempotency_key="a2-create"),  # a repeat, not a conflict
                detection("detection_stream_r1", "f1"),
                update("delete", "a1", 2),
                detection("detection_stream_r2", "f1"),
                detection("detection_stream_r1", "f2"),
            ]
            async with api(server) as http:
                r = await http.post("/api/v1/publish/batch", json={"events": events})
                assert r.status_code == 200, r.text
                results = r.json()["results"]
                assert len(results) == len(events)
                # seq 1 is the lease grant
                assert_published(results[0], seq=2)
                assert assert_refused(results[1], "conflict")["current_version"] == 1
                assert_published(results[2], seq=3)
                assert assert_refused(results[3], "conflict")["current_version"] == 2
                assert assert_refused(results[4], "locked")["holder"]["user_id"] == "ann"
                assert_refused(results[5], "invalid_payload")
                assert_published(results[6], seq=4)
                assert results[7] == results[6]
                assert_published(results[8], seq=1)
                assert_published(results[9], seq=5)
                assert_published(results[10], seq=1)
                assert_published(results[11], seq=2)
                assert await head_of(http, ANN) == 5

                history = await http.get(f"/api/v1/rooms/{ANN}/history")
                stored = history.json()["events"]
                assert [e["seq"] for e in stored] == [1, 2, 3, 4, 5]
                assert [e["id"] for e in stored[1:]] == [results[i]["id"] for i in (0, 2, 6, 9)]
                assert [e["data"].get("version") for e in stored[1:]] == [1, 2, 1, 3]

            updates = []
            while len(updates) < 4:
                updates.append(await client.next("annotation_update", timeout=WAIT))
            assert [(u["seq"], u["data"]["version"]) for u in updates] == [
                (2, 1),
                (3, 2),
                (4, 1),
                (5, 3),
            ]
        finally:
            await client.close()


async def test_redis_down_fails_the_batch_fast_with_503(redis_server: RedisServer) -> None:
    settings = test_settings(redis_url=redis_server.url, key_prefix="b2")
    async with running_server(settings) as server, api(server) as http:
        events = [detection("detection_stream_r1", f"f{n}") for n in range(50)]
        r = await http.post("/api/v1/publish/batch", json={"events": events})
        assert r.status_code == 200, r.text

        await redis_server.akill()
        started = time.monotonic()
        r = await http.post(
            "/api/v1/publish/batch",
            json={"events": [{"room": "lobby", "type": "detection_event", "data": {}}, *events]},
        )
        assert time.monotonic() - started < 3.5  # fast, not a hang
        assert r.status_code == 503, r.text
        error = r.json()["error"]
        assert error["code"] == "broker_unavailable" and error["temporary"] is True

        # Nothing for the broker to do: the refusals are answered as usual.
        r = await http.post(
            "/api/v1/publish/batch",
            json={"events": [{"room": "lobby", "type": "detection_event", "data": {}}]},
        )
        assert r.status_code == 200, r.text
        assert_refused(r.json()["results"][0], "invalid_room")

        await redis_server.arestart()
        r = await http.post("/api/v1/publish/batch", json={"events": events[:3]})
        assert r.status_code == 200, r.text
        # Redis came back empty: a new epoch, counted from 1.
        assert [res["seq"] for res in r.json()["results"]] == [1, 2, 3]
