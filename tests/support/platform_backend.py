"""A platform backend of the tests': FastAPI on uvicorn, answering SPEC 10's proxies.

It verifies every request's `X-Roomcast-Signature` with integration.signing.verify
(401 otherwise, and counted), and keeps what a platform keeps in its database in
PostgreSQL (a database of the test's own: `postgres_database`): the platform's own
version of each annotation, every edit it accepted (one row each) and the answer
it gave each `client_event_id`. A publish is one transaction, serialised per
`client_event_id` by an advisory lock, so its answers are idempotent by that id, as
SPEC 10 asks of a platform: a retry gets the first answer, and an edit is stored once
however often, and however concurrently, it is asked. An allowed annotation comes
back with replaced data: the platform's version in `attributes.db_version`.

What is test set-up rather than platform state stays in memory: who may join which
room, the refusals and garbage to answer, and a record of the requests.

`hold` slows it past any timeout without a sleep: while set, every proxy request
is recorded (and an edit committed) and then waits for `release()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from roomcast.integration.signing import HEADER, verify
from tests.support.server import free_socket

PROXY_SECRET = "platform-proxy-secret-of-the-tests-0123456789"
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"

SCHEMA = """
CREATE TABLE annotation_versions (
    room text NOT NULL,
    annotation_id text NOT NULL,
    version integer NOT NULL,
    PRIMARY KEY (room, annotation_id)
);
CREATE TABLE edits (
    id bigserial PRIMARY KEY,
    client_event_id text,  -- not UNIQUE: a duplicate must be countable, not an error
    room text NOT NULL,
    annotation_id text NOT NULL,
    version integer NOT NULL,
    data jsonb NOT NULL
);
CREATE INDEX edits_by_client_event_id ON edits (client_event_id);
CREATE TABLE proxy_answers (
    client_event_id text PRIMARY KEY,
    answer jsonb NOT NULL
);
"""

BUMP = """
INSERT INTO annotation_versions (room, annotation_id, version) VALUES ($1, $2, 1)
ON CONFLICT (room, annotation_id) DO UPDATE SET version = annotation_versions.version + 1
RETURNING version
"""


@contextlib.asynccontextmanager
async def postgres_database(prefix: str = "roomcast_px") -> AsyncIterator[str]:
    """A fresh database on the machine's PostgreSQL, dropped afterwards; skip without one."""
    try:
        admin = await asyncpg.connect(f"{PG_SERVER}/postgres", timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        pytest.skip(f"PostgreSQL on 127.0.0.1:5432 is unreachable: {exc!r}")
    name = f"{prefix}_{secrets.token_hex(4)}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{PG_SERVER}/{name}"
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@dataclass
class PlatformBackend:
    secret: bytes
    pool: Any  # asyncpg.Pool of the test's database
    url: str = ""
    #: user_id -> rooms the platform lets that user join
    members: dict[str, set[str]] = field(default_factory=dict)
    #: annotation_id -> (code, message, details) the platform refuses that annotation with
    refusals: dict[str, tuple[str, str, dict[str, Any]]] = field(default_factory=dict)
    #: annotation_ids whose data the platform replaces with data no schema accepts
    garbage: set[str] = field(default_factory=set)
    join_requests: list[dict[str, Any]] = field(default_factory=list)
    publish_requests: list[dict[str, Any]] = field(default_factory=list)
    bad_signatures: int = 0
    held: asyncio.Event = field(default_factory=asyncio.Event)  # set: answers wait
    _released: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Queue[str] = field(default_factory=asyncio.Queue)  # "join"/"publish"

    def hold(self) -> None:
        self._released.clear()
        self.held.set()

    def release(self) -> None:
        self.held.clear()
        self._released.set()

    async def edits_of(self, client_event_id: str) -> int:
        """How many rows the platform stored for this edit (one, if it is idempotent)."""
        query = "SELECT count(*) FROM edits WHERE client_event_id = $1"
        count: int = await self.pool.fetchval(query, client_event_id)
        return count

    async def edit_rows(self) -> list[tuple[str | None, str, int]]:
        """(client_event_id, annotation_id, version) of every stored edit, in order."""
        query = "SELECT client_event_id, annotation_id, version FROM edits ORDER BY id"
        return [tuple(row) for row in await self.pool.fetch(query)]

    async def _wait_if_held(self) -> None:
        if self.held.is_set():
            await self._released.wait()

    async def _publish_answer(self, body: dict[str, Any]) -> dict[str, Any]:
        key = body.get("client_event_id")
        async with self.pool.acquire() as conn, conn.transaction():
            if key is not None:
                # Two tries of one edit at once: the second waits, then finds the answer.
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", key)
                stored = await conn.fetchval(
                    "SELECT answer FROM proxy_answers WHERE client_event_id = $1", key
                )
                if stored is not None:
                    answer: dict[str, Any] = json.loads(stored)
                    return answer  # idempotent by client_event_id
            answer = await self._decide(conn, body)
            if key is not None:
                await conn.execute(
                    "INSERT INTO proxy_answers (client_event_id, answer) VALUES ($1, $2::jsonb)",
                    key,
                    json.dumps(answer),
                )
        return answer

    async def _decide(self, conn: Any, body: dict[str, Any]) -> dict[str, Any]:
        data = dict(body["data"])
        aid = data.get("annotation_id", "")
        refusal = self.refusals.get(aid)
        if refusal is not None:
            code, message, details = refusal
            return {"allow": False, "code": code, "message": message, "details": details}
        if aid in self.garbage:
            return {"allow": True, "data": {"action": "explode"}}
        version: int = await conn.fetchval(BUMP, body["room"], aid)
        answer: dict[str, Any] = {"allow": True}
        if data.get("annotation") is not None:
            annotation = dict(data["annotation"])
            annotation["attributes"] = {**annotation.get("attributes", {}), "db_version": version}
            data["annotation"] = annotation
            answer["data"] = data
        await conn.execute(
            "INSERT INTO edits (client_event_id, room, annotation_id, version, data)"
            " VALUES ($1, $2, $3, $4, $5::jsonb)",
            body.get("client_event_id"),
            body["room"],
            aid,
            version,
            json.dumps(data),
        )
        return answer

    def app(self) -> FastAPI:
        api = FastAPI(title="platform")

        async def checked(request: Request) -> dict[str, Any] | None:
            raw = await request.body()
            if not verify(self.secret, request.headers.get(HEADER, ""), raw):
                self.bad_signatures += 1
                return None
            body: dict[str, Any] = await request.json()
            return body

        @api.post("/proxy/join")
        async def join(request: Request) -> JSONResponse:
            body = await checked(request)
            if body is None:
                return JSONResponse({"error": "bad signature"}, status_code=401)
            self.join_requests.append(body)
            self.arrived.put_nowait("join")
            await self._wait_if_held()
            if body["room"] in self.members.get(body["user"]["user_id"], set()):
                return JSONResponse({"allow": True})
            return JSONResponse(
                {"allow": False, "code": "forbidden", "message": "not a member of this session"}
            )

        @api.post("/proxy/publish")
        async def publish(request: Request) -> JSONResponse:
            body = await checked(request)
            if body is None:
                return JSONResponse({"error": "bad signature"}, status_code=401)
            self.publish_requests.append(body)
            self.arrived.put_nowait("publish")
            answer = await self._publish_answer(body)  # committed before it is slow
            await self._wait_if_held()
            return JSONResponse(answer)

        @api.post("/proxy/broken")
        async def broken() -> JSONResponse:
            return JSONResponse({"error": "database down"}, status_code=500)

        return api


@contextlib.asynccontextmanager
async def running_platform(
    database_url: str, secret: str = PROXY_SECRET
) -> AsyncIterator[PlatformBackend]:
    """The backend on a free loopback port, under uvicorn, over `database_url`."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=8)
    try:
        await pool.execute(SCHEMA)
        backend = PlatformBackend(secret.encode(), pool)
        sock = free_socket()
        backend.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(
            backend.app(),
            log_level="warning",
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        server.install_signal_handlers = lambda: None  # type: ignore[attr-defined]
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            yield backend
        finally:
            backend.release()  # let held answers finish, so the server stops promptly
            server.should_exit = True
            await asyncio.wait_for(task, 10)
            sock.close()
    finally:
        await pool.close()
