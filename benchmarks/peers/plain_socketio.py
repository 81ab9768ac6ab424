"""Baseline for the fan-out benchmark: a plain python-socketio server.

The same broadcast roomcast does, and nothing else: no authentication, no room
rules, no sequencing, no history, no rate limits. Clients emit ``join``
``{"room": name}`` (ack ``{"ok": true}``); ``POST /api/v1/publish`` with
``{"room", "type", "data"}`` emits ``data`` under the event name ``type`` to the
room and answers ``{"ok": true}``; a client's ``publish`` event with the same body
does the same (to the whole room, the sender included) and is acked ``{"ok": true}``.
The HTTP side is FastAPI and the server is uvicorn, like roomcast, so the comparison
isolates what roomcast adds.

    python benchmarks/peers/plain_socketio.py PORT [--host 127.0.0.1] [--redis URL]
        [--loop asyncio|uvloop|auto]

The event loop is chosen with --loop; the benchmark passes the one ``roomcast serve``
uses (uvloop where installed), so that the comparison is not about the loop.
"""

from __future__ import annotations

import argparse
from typing import Any

import socketio
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel


class PublishBody(BaseModel):
    room: str
    type: str
    data: dict[str, Any]


def build_app(redis_url: str | None = None) -> Any:
    manager = socketio.AsyncRedisManager(redis_url) if redis_url else None
    sio = socketio.AsyncServer(async_mode="asgi", client_manager=manager)

    @sio.on("join")  # type: ignore[untyped-decorator]
    async def join(sid: str, payload: Any) -> dict[str, Any]:
        room = payload.get("room") if isinstance(payload, dict) else None
        if not isinstance(room, str) or not room:
            return {"ok": False, "error": {"code": "invalid_room", "message": "room required"}}
        await sio.enter_room(sid, room)
        return {"ok": True, "room": room}

    @sio.on("publish")  # type: ignore[untyped-decorator]
    async def publish_from_client(sid: str, payload: Any) -> dict[str, Any]:
        try:
            body = PublishBody.model_validate(payload)
        except ValueError:
            return {"ok": False, "error": {"code": "invalid_payload", "message": "bad body"}}
        await sio.emit(body.type, body.data, room=body.room)
        return {"ok": True}

    api = FastAPI()

    @api.get("/healthz")
    async def healthz() -> dict[str, bool]:
        return {"ok": True}

    @api.post("/api/v1/publish")
    async def publish(body: PublishBody) -> dict[str, bool]:
        await sio.emit(body.type, body.data, room=body.room)
        return {"ok": True}

    return socketio.ASGIApp(sio, other_asgi_app=api)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--redis", default=None, help="redis:// URL: use AsyncRedisManager")
    parser.add_argument("--loop", default="asyncio", choices=["asyncio", "uvloop", "auto"])
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    uvicorn.run(
        build_app(args.redis),
        host=args.host,
        port=args.port,
        loop=args.loop,
        log_level=args.log_level,
        access_log=False,
    )


if __name__ == "__main__":
    main()
