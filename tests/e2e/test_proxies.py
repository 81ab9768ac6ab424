"""The platform's verdict over HTTP: SPEC 10's join and publish proxies, end to end.

Real processes only: the tests' platform backend (FastAPI under uvicorn, verifying
every signature, keeping its versions, edits and answers in a PostgreSQL database of
the test's own) and roomcast under uvicorn, both on free loopback ports, with real
Socket.IO clients. Without PostgreSQL on 127.0.0.1:5432 these tests are skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest
from fastapi import FastAPI

from roomcast.integration.proxy_breaker import CircuitBreaker
from tests.support.platform_backend import (
    PROXY_SECRET,
    PlatformBackend,
    postgres_database,
    running_platform,
)
from tests.support.processes import HOST, free_port, launch, stop_pid, wait_until
from tests.support.redis_procs import RedisServer, redis_server
from tests.support.server import Client, RunningServer, running_server, test_settings

ROOM = "annotation_42"

__all__ = ["redis_server"]  # imported so that pytest registers the fixture here


def _update(aid: str, action: str = "create", base: int | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"action": action, "annotation_id": aid, "base_version": base}
    if action != "delete":
        data["annotation"] = {
            "label": "car",
            "shape": {"type": "bbox", "x": 1, "y": 2, "w": 3, "h": 4},
            "attributes": {},
        }
    return data


@pytest.fixture
async def platform() -> AsyncIterator[PlatformBackend]:
    async with postgres_database() as database_url, running_platform(database_url) as backend:
        yield backend


def _settings(platform: PlatformBackend, **overrides: Any) -> Any:
    base: dict[str, Any] = {
        "proxy_join_url": f"{platform.url}/proxy/join",
        "proxy_publish_url": f"{platform.url}/proxy/publish",
        "proxy_secret": PROXY_SECRET,
        "proxy_timeout_ms": 2000,
    }
    base.update(overrides)
    return test_settings(**base)


@pytest.fixture
async def server(platform: PlatformBackend) -> AsyncIterator[RunningServer]:
    async with running_server(_settings(platform, proxy_timeout_ms=300)) as running:
        yield running


async def _joined(server: RunningServer, user: str, **claims: Any) -> Client:
    client = await server.client(user, name=user.title(), rooms=[ROOM], **claims)
    ack = await client.call("join", {"room": ROOM})
    assert ack["ok"], ack
    return client


def _metric(server: RunningServer, line_start: str) -> float:
    for line in server.runtime.metrics.render().decode().splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_join_is_allowed_or_refused_by_the_platform(
    server: RunningServer, platform: PlatformBackend
) -> None:
    platform.members["ann"] = {ROOM}
    ann = await server.client("ann", name="Ann", projects=["p1"], roles=["annotator"])
    ben = await server.client("ben")
    claimed = await server.client("cat", rooms=[ROOM])
    try:
        ack = await ann.call("join", {"room": ROOM})
        assert ack["ok"] and ack["room"] == ROOM
        assert platform.join_requests == [
            {
                "user": {
                    "user_id": "ann",
                    "name": "Ann",
                    "roles": ["annotator"],
                    "projects": ["p1"],
                },
                "room": ROOM,
            }
        ]
        refused = await ben.call("join", {"room": ROOM})
        assert refused["ok"] is False
        assert refused["error"]["code"] == "forbidden"
        assert refused["error"]["message"] == "not a member of this session"
        # A built-in rule admits: the platform is not asked.
        assert (await claimed.call("join", {"room": ROOM}))["ok"]
        assert len(platform.join_requests) == 2 and platform.bad_signatures == 0
        assert _metric(server, 'roomcast_proxy_calls_total{outcome="allow",proxy="join"}') == 1
        assert _metric(server, 'roomcast_proxy_calls_total{outcome="refuse",proxy="join"}') == 1
        assert _metric(server, 'roomcast_proxy_latency_seconds_count{proxy="join"}') == 2
    finally:
        for client in (ann, ben, claimed):
            await client.close()


async def test_publish_allowed_replaced_and_refused(
    server: RunningServer, platform: PlatformBackend
) -> None:
    platform.refusals["stale"] = ("conflict", "the platform has version 7", {"current_version": 7})
    platform.refusals["big"] = ("quota_exceeded", "3 boxes at most", {"limit": 3})
    platform.garbage.add("junk")
    ann = await _joined(server, "ann")
    ben = await _joined(server, "ben")
    try:
        # Allowed with replaced data: the platform's own version reaches every member.
        ack = await ann.call(
            "annotation_update", {"room": ROOM, "data": _update("a1"), "client_event_id": "e1"}
        )
        assert ack["ok"] and ack["seq"] == 1
        event = await ben.next("annotation_update")
        assert event["id"] == ack["id"]
        assert event["data"]["annotation"]["attributes"] == {"db_version": 1}
        assert event["data"]["version"] == 1  # roomcast's own version rules still apply
        request = platform.publish_requests[0]
        assert request["user"]["user_id"] == "ann" and request["room"] == ROOM
        assert request["type"] == "annotation_update" and request["client_event_id"] == "e1"
        assert request["data"]["annotation_id"] == "a1"

        # Refused with conflict: code, message and details reach the ack.
        conflict = await ann.call(
            "annotation_update", {"room": ROOM, "data": _update("stale"), "client_event_id": "e2"}
        )
        assert conflict == {
            "ok": False,
            "error": {
                "code": "conflict",
                "message": "the platform has version 7",
                "current_version": 7,
            },
        }
        # A code of the platform's own, as is.
        quota = await ann.call("annotation_update", {"room": ROOM, "data": _update("big")})
        assert quota["error"] == {
            "code": "quota_exceeded",
            "message": "3 boxes at most",
            "limit": 3,
        }
        # Replaced data is checked against the schema like the client's.
        junk = await ann.call("annotation_update", {"room": ROOM, "data": _update("junk")})
        assert junk["error"]["code"] == "invalid_payload"

        # The version rules apply to what the platform allowed: a second create conflicts.
        again = await ann.call("annotation_update", {"room": ROOM, "data": _update("a1")})
        assert again["error"]["code"] == "conflict" and again["error"]["current_version"] == 1

        marker = await ann.call("annotation_update", {"room": ROOM, "data": _update("a2")})
        assert marker["ok"] and marker["seq"] == 2
        assert (await ben.next("annotation_update"))["seq"] == 2
        assert [e["seq"] for n, e in ben.log if n == "annotation_update"] == [1, 2]
        assert platform.bad_signatures == 0
        assert _metric(server, 'roomcast_proxy_calls_total{outcome="refuse",proxy="publish"}') == 2
    finally:
        await ann.close()
        await ben.close()


async def test_a_lease_refuses_before_the_platform_is_asked(
    server: RunningServer, platform: PlatformBackend
) -> None:
    ann = await _joined(server, "ann")
    ben = await _joined(server, "ben")
    try:
        assert (await ben.call("lock", {"room": ROOM, "annotation_id": "a1"}))["ok"]
        locked = await ann.call("annotation_update", {"room": ROOM, "data": _update("a1")})
        assert locked["error"]["code"] == "locked"
        assert locked["error"]["holder"]["user_id"] == "ben"
        assert platform.publish_requests == []
        assert (await ben.call("annotation_update", {"room": ROOM, "data": _update("a1")}))["ok"]
        assert len(platform.publish_requests) == 1
    finally:
        await ann.close()
        await ben.close()


async def test_slow_platform_gets_platform_unavailable_and_each_retry_lands_once(
    server: RunningServer, platform: PlatformBackend
) -> None:
    ann = await _joined(server, "ann")
    ben = await _joined(server, "ben")
    ids = [f"edit-{i}" for i in range(5)]
    try:
        acks: dict[str, Any] = {}
        for i, key in enumerate(ids):
            body = {"room": ROOM, "data": _update(f"box{i}"), "client_event_id": key}
            platform.hold()  # slower than the 300 ms timeout: it stores, then waits
            failed = await ann.call("annotation_update", body)
            assert failed["ok"] is False
            assert failed["error"]["code"] == "platform_unavailable"
            assert failed["error"]["temporary"] is True
            platform.release()
            first = await ann.call("annotation_update", body)  # the client's retry
            again = await ann.call("annotation_update", body)  # and one more
            assert first["ok"] and again == first
            acks[key] = first
        marker = await ann.call("annotation_update", {"room": ROOM, "data": _update("end")})
        assert marker["ok"]
        while (await ben.next("annotation_update"))["id"] != marker["id"]:
            pass
        seen = [e["client_event_id"] for n, e in ben.log if n == "annotation_update"]
        assert seen == [*ids, None]  # each edit once, in order
        assert [acks[k]["seq"] for k in ids] == [1, 2, 3, 4, 5]
        for key in ids:
            assert await platform.edits_of(key) == 1  # one row in the platform's database
            assert sum(1 for r in platform.publish_requests if r["client_event_id"] == key) == 3
        rows = await platform.edit_rows()
        assert rows == [*((k, f"box{i}", 1) for i, k in enumerate(ids)), (None, "end", 1)]
        # What every member got carries the platform's version, from its database.
        got = [e for n, e in ben.log if n == "annotation_update"]
        assert all(e["data"]["annotation"]["attributes"] == {"db_version": 1} for e in got)
        assert _metric(server, 'roomcast_proxy_calls_total{outcome="timeout",proxy="publish"}') == 5
    finally:
        await ann.close()
        await ben.close()


async def test_over_redis_a_retry_on_another_instance_lands_once(
    platform: PlatformBackend, redis_server: RedisServer
) -> None:
    """The first try times out on one instance; the retry, sent to another, lands once."""
    shared = {"redis_url": redis_server.url, "key_prefix": "px1", "proxy_timeout_ms": 300}
    async with (
        running_server(_settings(platform, **shared, instance_id="i1")) as one,
        running_server(_settings(platform, **shared, instance_id="i2")) as two,
    ):
        ann_one = await _joined(one, "ann")
        ann_two = await _joined(two, "ann")
        watcher = await _joined(two, "ben")
        try:
            body = {"room": ROOM, "data": _update("r1"), "client_event_id": "across-1"}
            platform.hold()
            failed = await ann_one.call("annotation_update", body)
            assert failed["error"]["code"] == "platform_unavailable"
            platform.release()
            first = await ann_two.call("annotation_update", body)
            again = await ann_one.call("annotation_update", body)
            assert first["ok"] and again == first
            marker = await ann_two.call("annotation_update", {"room": ROOM, "data": _update("m")})
            while (await watcher.next("annotation_update"))["id"] != marker["id"]:
                pass
            seen = [e["client_event_id"] for n, e in watcher.log if n == "annotation_update"]
            assert seen == ["across-1", None]
            assert await platform.edits_of("across-1") == 1 and platform.bad_signatures == 0
        finally:
            for client in (ann_one, ann_two, watcher):
                await client.close()


async def test_circuit_breaker_opens_then_closes(
    server: RunningServer, platform: PlatformBackend
) -> None:
    caller = server.runtime.proxies.caller("publish")
    assert caller is not None
    cooldown = 0.5
    caller.breaker = CircuitBreaker(failures=3, cooldown=cooldown)
    ann = await _joined(server, "ann")
    try:
        platform.hold()
        for i in range(3):
            ack = await ann.call("annotation_update", {"room": ROOM, "data": _update(f"b{i}")})
            assert ack["error"]["code"] == "platform_unavailable"
        asked = len(platform.publish_requests)
        assert asked == 3 and caller.breaker.is_open
        started = time.perf_counter()
        fast = await ann.call("annotation_update", {"room": ROOM, "data": _update("b9")})
        assert fast["error"]["code"] == "platform_unavailable"
        assert time.perf_counter() - started < 0.25  # at once, not after the 300 ms timeout
        assert len(platform.publish_requests) == asked  # the platform was not asked
        assert _metric(server, 'roomcast_proxy_calls_total{outcome="open",proxy="publish"}') == 1
        platform.release()
        await asyncio.sleep(cooldown)  # the cool-down is the timer under test
        trial = await ann.call("annotation_update", {"room": ROOM, "data": _update("b9")})
        assert trial["ok"] and not caller.breaker.is_open
        assert (await ann.call("annotation_update", {"room": ROOM, "data": _update("c1")}))["ok"]
    finally:
        await ann.close()


async def test_a_broken_platform_is_platform_unavailable(platform: PlatformBackend) -> None:
    settings = _settings(platform, proxy_publish_url=f"{platform.url}/proxy/broken")
    async with running_server(settings) as server:
        ann = await _joined(server, "ann")
        try:
            ack = await ann.call("annotation_update", {"room": ROOM, "data": _update("x")})
            assert ack["error"]["code"] == "platform_unavailable"
            assert (
                _metric(server, 'roomcast_proxy_calls_total{outcome="error",proxy="publish"}') == 1
            )
        finally:
            await ann.close()


async def test_embedded_in_a_host_app_the_proxies_answer(platform: PlatformBackend) -> None:
    host = FastAPI(title="host")

    @host.get("/host")
    async def host_route() -> dict[str, str]:
        return {"host": "ok"}

    platform.members["ann"] = {ROOM}
    async with running_server(_settings(platform), app=host) as server:
        ann = await server.client("ann")
        ben = await server.client("ben", rooms=[ROOM])
        try:
            assert (await ann.call("join", {"room": ROOM}))["ok"]
            assert (await ben.call("join", {"room": ROOM}))["ok"]
            ack = await ben.call(
                "annotation_update", {"room": ROOM, "data": _update("a1"), "client_event_id": "h1"}
            )
            assert ack["ok"]
            event = await ann.next("annotation_update")
            assert event["data"]["annotation"]["attributes"] == {"db_version": 1}
            async with httpx.AsyncClient() as http:
                assert (await http.get(f"{server.url}/host")).json() == {"host": "ok"}
            assert await platform.edits_of("h1") == 1 and platform.bad_signatures == 0
        finally:
            await ann.close()
            await ben.close()


# The docs' worked example (examples/platform_backend), run as written, as the publish proxy.

ROOT = Path(__file__).resolve().parents[2]
WEBHOOK_SECRET = "webhook-secret-of-the-example-32-bytes-long"


@contextlib.asynccontextmanager
async def _example(database_url: str) -> AsyncIterator[str]:
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "app:app", "--app-dir", "examples/platform_backend"]
    argv += ["--host", HOST, "--port", str(port), "--log-level", "warning"]
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "ROOMCAST_PROXY_SECRET": PROXY_SECRET,
        "ROOMCAST_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    proc = launch(argv, env=env, cwd=ROOT)
    try:

        def listening() -> bool:
            with socket.create_connection((HOST, port), timeout=1):
                return True

        await asyncio.to_thread(
            wait_until, listening, alive=lambda: proc.poll() is None, what="example", timeout=15
        )
        yield f"http://{HOST}:{port}"
    finally:
        await asyncio.to_thread(stop_pid, proc)


async def test_the_docs_example_answers_the_publish_proxy_with_its_own_versions() -> None:
    async with postgres_database("roomcast_ex") as database_url, _example(database_url) as base:
        async with httpx.AsyncClient() as http:
            forged = await http.post(
                f"{base}/roomcast/publish",
                content=b"{}",
                headers={"X-Roomcast-Signature": "t=1,v1=0"},
            )
        assert forged.status_code == 401
        settings = test_settings(
            proxy_publish_url=f"{base}/roomcast/publish", proxy_secret=PROXY_SECRET
        )
        async with running_server(settings) as server:
            ann = await _joined(server, "ann")
            ben = await _joined(server, "ben")
            db = await asyncpg.connect(database_url)
            try:
                body = {"room": ROOM, "data": _update("a1"), "client_event_id": "x1"}
                first = await ann.call("annotation_update", body)
                assert first["ok"], first
                assert await ann.call("annotation_update", body) == first  # a retry
                update = {"room": ROOM, "data": _update("a1", "update", 1), "client_event_id": "x2"}
                assert (await ann.call("annotation_update", update))["ok"]
                got = [await ben.next("annotation_update") for _ in range(2)]
                assert [e["data"]["annotation"]["attributes"] for e in got] == [
                    {"db_version": 1},
                    {"db_version": 2},
                ]
                assert [e["data"]["version"] for e in got] == [1, 2]
                version = await db.fetchval(
                    "SELECT version FROM platform_versions WHERE annotation_id = 'a1'"
                )
                answers = await db.fetchval("SELECT count(*) FROM proxy_answers")
                assert version == 2 and answers == 2  # the retry bumped nothing
            finally:
                await db.close()
                await ann.close()
                await ben.close()
