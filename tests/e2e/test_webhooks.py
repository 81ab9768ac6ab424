"""Webhooks in memory mode (SPEC section 10): signed batches, at least once, in room order."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest

from tests.support.processes import HOST, free_port, launch, stop_pid, wait_until
from tests.support.server import running_server, test_settings
from tests.support.webhook_receiver import WebhookReceiver, client_events

ROOM = "annotation_w1"
SECRET = "webhook-secret-of-the-tests-32-bytes-long"


def _create(aid: str) -> dict[str, Any]:
    return {
        "action": "create",
        "annotation_id": aid,
        "base_version": None,
        "annotation": {"label": "car", "shape": {"type": "bbox", "x": 1, "y": 2, "w": 3, "h": 4}},
    }


async def test_receiver_down_mid_stream_loses_nothing_and_keeps_room_order() -> None:
    async with WebhookReceiver(SECRET) as receiver:
        settings = test_settings(webhook_url=receiver.url, webhook_secret=SECRET)
        async with running_server(settings) as server:
            ann = await server.client("ann", name="Ann", rooms=[ROOM])
            bob = await server.client("bob", rooms=[ROOM])
            try:
                await ann.call("join", {"room": ROOM})
                await bob.call("join", {"room": ROOM})
                acks = []
                for i in range(10):
                    body = {"room": ROOM, "data": _create(f"a{i}"), "client_event_id": f"c{i}"}
                    acks.append(await ann.call("annotation_update", body))
                await receiver.wait_for(lambda r: len(client_events(r.events)) >= 10)
                await receiver.stop()  # the platform goes down mid-stream
                for i in range(10, 30):
                    body = {"room": ROOM, "data": _create(f"a{i}"), "client_event_id": f"c{i}"}
                    acks.append(await bob.call("annotation_update", body))
                await bob.call("leave", {"room": ROOM})
                await receiver.start()
                await receiver.wait_for(lambda r: len(client_events(r.unique())) >= 30)
                await receiver.wait_for(
                    lambda r: any(e.get("left") for e in r.unique() if e["kind"] == "presence")
                )
            finally:
                await ann.close()
                await bob.close()
            await receiver.wait_for(
                lambda r: any(e.get("state") == "vacated" for e in r.unique()), timeout=10
            )
            async with httpx.AsyncClient(base_url=server.url) as http:
                metrics = (await http.get("/metrics")).text
        assert all(ack["ok"] for ack in acks)
        unique = receiver.unique()
        envelopes = client_events(unique, ROOM)
        assert [e["id"] for e in envelopes] == [a["id"] for a in acks]  # nothing lost
        assert [e["seq"] for e in envelopes] == list(range(1, 31))  # room order
        assert envelopes[0]["actor"] == {"user_id": "ann", "name": "Ann"}
        assert envelopes[-1]["client_event_id"] == "c29"
        assert envelopes[0]["data"]["version"] == 1
        room_changes = [(e["kind"], e.get("state")) for e in unique if e["kind"] == "room"]
        assert room_changes == [("room", "occupied"), ("room", "vacated")]
        presence = [
            (e["joined"] or {}).get("user_id") or "-" + e["left"]["user_id"]
            for e in unique
            if e["kind"] == "presence"
        ]
        assert presence == ["ann", "bob", "-bob", "-ann"]
        assert unique[0]["kind"] == "room" and unique[-1]["state"] == "vacated"
        assert len({e["id"] for e in receiver.events}) == len(unique)  # duplicates only by id
        assert receiver.bad_signatures == 0
        assert 'roomcast_webhook_batches_total{outcome="delivered"}' in metrics
        assert "roomcast_webhook_dead_letters_total 0.0" in metrics
        assert "roomcast_webhook_lag_seconds" in metrics


async def test_a_refused_batch_is_retried_until_acknowledged() -> None:
    async with WebhookReceiver(SECRET) as receiver:
        receiver.status = 503
        settings = test_settings(
            webhook_url=receiver.url, webhook_secret=SECRET, webhook_events="client_event"
        )
        async with running_server(settings) as server:
            ann = await server.client("ann", rooms=[ROOM])
            try:
                await ann.call("join", {"room": ROOM})
                ack = await ann.call("annotation_update", {"room": ROOM, "data": _create("a")})
                assert ack["ok"]
                async with httpx.AsyncClient(base_url=server.url) as http:
                    await receiver.wait_for(lambda r: r.refused >= 2)  # retried after a 503
                    receiver.status = 200
                    await receiver.wait_for(lambda r: len(r.events) >= 1)
                    metrics = (await http.get("/metrics")).text
            finally:
                await ann.close()
        assert [e["event"]["id"] for e in receiver.events] == [ack["id"]]  # no presence kinds
        assert 'roomcast_webhook_batches_total{outcome="refused"}' in metrics


async def test_no_webhook_url_means_no_webhook_parts() -> None:
    async with running_server(test_settings()) as server:
        assert server.runtime.webhooks is None  # the publish path checks one None


# The docs' worked example (examples/platform_backend), run as written, over PostgreSQL.

ROOT = Path(__file__).resolve().parents[2]
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


async def _admin() -> Any:
    try:
        return await asyncpg.connect(PG_ADMIN, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        pytest.skip(f"PostgreSQL on 127.0.0.1:5432 is unreachable: {exc!r}")


@contextlib.asynccontextmanager
async def _database() -> AsyncIterator[str]:
    admin = await _admin()
    name = f"roomcast_wh_{secrets.token_hex(4)}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@contextlib.asynccontextmanager
async def _backend(database_url: str) -> AsyncIterator[str]:
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "app:app", "--app-dir", "examples/platform_backend"]
    argv += ["--host", HOST, "--port", str(port), "--log-level", "warning"]
    env = {**os.environ, "DATABASE_URL": database_url, "ROOMCAST_WEBHOOK_SECRET": SECRET}
    proc = launch(argv, env=env, cwd=ROOT)
    try:

        def listening() -> bool:
            with socket.create_connection((HOST, port), timeout=1):
                return True

        await asyncio.to_thread(
            wait_until, listening, alive=lambda: proc.poll() is None, what="backend", timeout=15
        )
        yield f"http://{HOST}:{port}/roomcast/webhooks"
    finally:
        await asyncio.to_thread(stop_pid, proc)


async def test_platform_backend_example_persists_annotations_in_postgresql() -> None:
    async with _database() as database_url, _backend(database_url) as hook_url:
        db = await asyncpg.connect(database_url)
        changed: asyncio.Queue[str] = asyncio.Queue()
        await db.add_listener("annotations_changed", lambda *args: changed.put_nowait(args[-1]))
        try:
            async with httpx.AsyncClient() as http:
                forged = await http.post(
                    hook_url,
                    content=b'{"events": []}',
                    headers={"X-Roomcast-Signature": "t=1,v1=0"},
                )
            assert forged.status_code == 401
            settings = test_settings(webhook_url=hook_url, webhook_secret=SECRET)
            async with running_server(settings) as server:
                ann = await server.client("ann", rooms=[ROOM])
                try:
                    await ann.call("join", {"room": ROOM})
                    base = None
                    for _ in range(3):  # a1 at versions 1, 2, 3
                        data = {**_create("a1"), "action": "update" if base else "create"}
                        ack = await ann.call(
                            "annotation_update",
                            {"room": ROOM, "data": {**data, "base_version": base}},
                        )
                        assert ack["ok"], ack
                        base = (base or 0) + 1
                    await ann.call("annotation_update", {"room": ROOM, "data": _create("a2")})
                    gone = {"action": "delete", "annotation_id": "a2", "base_version": 1}
                    assert (await ann.call("annotation_update", {"room": ROOM, "data": gone}))["ok"]

                    query = "SELECT annotation_id, version, deleted, updated_by FROM annotations"
                    expected = [("a1", 3, False, "ann"), ("a2", 2, True, "ann")]
                    rows: list[tuple[Any, ...]] = []
                    async with asyncio.timeout(15):
                        while rows != expected:
                            await changed.get()  # a batch was committed
                            rows = [tuple(r) for r in await db.fetch(query + " ORDER BY 1")]
                finally:
                    await ann.close()
            activity = [tuple(r) for r in await db.fetch("SELECT what, user_id FROM room_activity")]
            assert ("occupied", None) in activity and ("joined", "ann") in activity
            label = await db.fetchval(
                "SELECT annotation->>'label' FROM annotations WHERE annotation_id = 'a1'"
            )
            assert label == "car"
        finally:
            await db.close()


async def test_webhooks_run_embedded_in_a_host_application() -> None:
    from fastapi import FastAPI

    host = FastAPI()

    @host.get("/host/ping")
    async def ping() -> dict[str, bool]:
        return {"pong": True}

    async with WebhookReceiver(SECRET) as receiver:
        settings = test_settings(webhook_url=receiver.url, webhook_secret=SECRET)
        async with running_server(settings, app=host) as server:
            ann = await server.client("ann", name="Ann", rooms=[ROOM])
            try:
                await ann.call("join", {"room": ROOM})
                body = {"room": ROOM, "data": _create("e1"), "client_event_id": "ce1"}
                ack = await ann.call("annotation_update", body)
                await receiver.wait_for(lambda r: len(client_events(r.events, ROOM)) >= 1)
                async with httpx.AsyncClient(base_url=server.url) as http:
                    assert (await http.get("/host/ping")).json() == {"pong": True}
            finally:
                await ann.close()
        [envelope] = client_events(receiver.unique(), ROOM)
        assert envelope["id"] == ack["id"] and envelope["seq"] == 1
        assert receiver.bad_signatures == 0
