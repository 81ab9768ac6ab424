"""A platform backend that answers roomcast's publish proxy with its own versions,
receives roomcast's webhooks and persists annotations in PostgreSQL.

The worked example of docs/platform.md ("Integrating with your platform"). Run it with

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/annotations \
    ROOMCAST_WEBHOOK_SECRET=... ROOMCAST_PROXY_SECRET=... \
    uvicorn app:app --app-dir examples/platform_backend --port 9000

and point roomcast at it: ROOMCAST_WEBHOOK_URL=http://127.0.0.1:9000/roomcast/webhooks,
ROOMCAST_PROXY_PUBLISH_URL=http://127.0.0.1:9000/roomcast/publish (with the same two
secrets). Either half works alone: a secret left unset turns its endpoint off (401).

What it shows:
- the signature is verified over the raw body before anything is parsed, and a
  request older than 5 minutes is refused (the recipe needs only hmac and hashlib);
- a batch is applied in one transaction, and answered 2xx only once it is
  committed: anything else makes roomcast resend the whole batch;
- webhooks arrive at least once, so every event's `id` is recorded and a repeated
  one is skipped; an annotation's row only moves to a higher `version`, so even an
  old copy arriving late cannot roll it back;
- after each commit a NOTIFY on `annotations_changed` tells whoever listens;
- the publish proxy gives each annotation edit the platform's own version (in
  `annotation.attributes.db_version`, so every client sees it), in one transaction
  that also records the answer under (user, `client_event_id`): a retry (roomcast
  asks again after a timeout) gets the first answer and bumps nothing, and an
  advisory lock makes two concurrent tries of one edit wait for each other.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from fastapi import FastAPI, HTTPException, Request

MAX_AGE_SECONDS = 300

SCHEMA = """
CREATE TABLE IF NOT EXISTS webhook_events (
    id text PRIMARY KEY,
    kind text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS annotations (
    room text NOT NULL,
    annotation_id text NOT NULL,
    version integer NOT NULL,
    annotation jsonb,
    deleted boolean NOT NULL DEFAULT false,
    updated_by text,
    seq bigint NOT NULL,
    PRIMARY KEY (room, annotation_id)
);
CREATE TABLE IF NOT EXISTS platform_versions (
    room text NOT NULL,
    annotation_id text NOT NULL,
    version integer NOT NULL,
    PRIMARY KEY (room, annotation_id)
);
CREATE TABLE IF NOT EXISTS proxy_answers (
    user_id text NOT NULL,
    client_event_id text NOT NULL,
    answer jsonb NOT NULL,
    PRIMARY KEY (user_id, client_event_id)
);
CREATE TABLE IF NOT EXISTS room_activity (
    event_id text PRIMARY KEY REFERENCES webhook_events (id),
    room text NOT NULL,
    what text NOT NULL,
    user_id text
);
"""

UPSERT = """
INSERT INTO annotations (room, annotation_id, version, annotation, deleted, updated_by, seq)
VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7)
ON CONFLICT (room, annotation_id) DO UPDATE
SET version = EXCLUDED.version,
    annotation = COALESCE(EXCLUDED.annotation, annotations.annotation),
    deleted = EXCLUDED.deleted,
    updated_by = EXCLUDED.updated_by,
    seq = EXCLUDED.seq
WHERE annotations.version < EXCLUDED.version
"""


BUMP = """
INSERT INTO platform_versions (room, annotation_id, version) VALUES ($1, $2, 1)
ON CONFLICT (room, annotation_id) DO UPDATE SET version = platform_versions.version + 1
RETURNING version
"""


def verify_signature(secret: bytes, header: str, body: bytes, now: float | None = None) -> bool:
    """X-Roomcast-Signature: `t=<unix s>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, any v1."""
    fields = [part.strip().partition("=") for part in header.split(",")]
    stamps = [value for key, _, value in fields if key == "t" and value.isdigit()]
    macs = [value for key, _, value in fields if key == "v1"]
    if not stamps or not macs:
        return False
    if abs((time.time() if now is None else now) - int(stamps[0])) > MAX_AGE_SECONDS:
        return False
    expected = hmac.new(secret, stamps[0].encode() + b"." + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, mac) for mac in macs)


async def apply_event(conn: asyncpg.Connection, event: dict[str, Any]) -> None:
    """Record one webhook event, once: a repeated id changes nothing."""
    new = await conn.fetchval(
        "INSERT INTO webhook_events (id, kind) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING id",
        event["id"],
        event["kind"],
    )
    if new is None:
        return  # delivered before: at least once means duplicates, by id
    if event["kind"] == "client_event" and event["event"]["type"] == "annotation_update":
        envelope = event["event"]
        data = envelope["data"]
        annotation = data.get("annotation")
        await conn.execute(
            UPSERT,
            envelope["room"],
            data["annotation_id"],
            data["version"],
            json.dumps(annotation) if annotation is not None else None,
            data["action"] == "delete",
            (envelope.get("actor") or {}).get("user_id"),
            envelope["seq"],
        )
    elif event["kind"] in ("presence", "room"):
        member = event.get("joined") or event.get("left") or {}
        what = event.get("state") or ("joined" if event.get("joined") else "left")
        await conn.execute(
            "INSERT INTO room_activity (event_id, room, what, user_id) VALUES ($1, $2, $3, $4)",
            event["id"],
            event["room"],
            what,
            member.get("user_id"),
        )


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    pool = await asyncpg.create_pool(os.environ["DATABASE_URL"], min_size=1, max_size=4)
    async with pool.acquire() as conn:
        await conn.execute(SCHEMA)
    app.state.pool = pool
    try:
        yield
    finally:
        await pool.close()


app = FastAPI(lifespan=lifespan)
SECRET = os.environ.get("ROOMCAST_WEBHOOK_SECRET", "").encode()
PROXY_SECRET = os.environ.get("ROOMCAST_PROXY_SECRET", "").encode()


@app.post("/roomcast/webhooks", status_code=204)
async def webhooks(request: Request) -> None:
    body = await request.body()
    if not SECRET or not verify_signature(
        SECRET, request.headers.get("X-Roomcast-Signature", ""), body
    ):
        raise HTTPException(401, "bad signature")
    events = json.loads(body)["events"]
    async with request.app.state.pool.acquire() as conn, conn.transaction():
        for event in events:
            await apply_event(conn, event)
        if events:
            await conn.execute("SELECT pg_notify('annotations_changed', $1)", events[-1]["id"])


async def answer_publish(conn: asyncpg.Connection, body: dict[str, Any]) -> dict[str, Any]:
    """Allow the edit with the platform's own version in it (annotation rooms' updates)."""
    data = body["data"]
    if body["type"] != "annotation_update":
        return {"allow": True}
    version = await conn.fetchval(BUMP, body["room"], data["annotation_id"])
    if data.get("annotation") is None:
        return {"allow": True}  # a delete: versioned, nothing to carry it
    annotation = data["annotation"]
    attributes = {**annotation.get("attributes", {}), "db_version": version}
    return {"allow": True, "data": {**data, "annotation": {**annotation, "attributes": attributes}}}


@app.post("/roomcast/publish")
async def publish_proxy(request: Request) -> Any:
    body = await request.body()
    if not PROXY_SECRET or not verify_signature(
        PROXY_SECRET, request.headers.get("X-Roomcast-Signature", ""), body
    ):
        raise HTTPException(401, "bad signature")
    asked = json.loads(body)
    user, key = asked["user"]["user_id"], asked.get("client_event_id")
    async with request.app.state.pool.acquire() as conn, conn.transaction():
        if key is None:
            return await answer_publish(conn, asked)
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))", user, key)
        given = await conn.fetchval(
            "SELECT answer FROM proxy_answers WHERE user_id = $1 AND client_event_id = $2",
            user,
            key,
        )
        if given is not None:
            return json.loads(given)  # a retry: the first answer, nothing bumped again
        answer = await answer_publish(conn, asked)
        await conn.execute(
            "INSERT INTO proxy_answers (user_id, client_event_id, answer) VALUES ($1, $2, $3)",
            user,
            key,
            json.dumps(answer),
        )
        return answer
