"""A process serving only roomcast's engine, for footprint measurements.

`python -m tests.engine.serve_engine raw|uvicorn` binds a free loopback port, prints
it on one line, and serves the engine with a handler that admits everyone; GET /stats
answers, after a full garbage collection, the process's RSS, its asyncio tasks and the
engine's sessions.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
from pathlib import Path
from typing import Any

import uvicorn

from roomcast.engine.app import EngineASGIApp
from roomcast.engine.contract import Handshake
from roomcast.engine.server import EngineServer
from tests.support.server import free_socket


class Admit:
    async def connect(self, sid: str, handshake: Handshake) -> None:
        return None

    def connected(self, sid: str) -> None:
        return None

    async def event(self, sid: str, name: str, args: list[Any]) -> Any:
        return None

    async def disconnect(self, sid: str, reason: str) -> None:
        return None


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def stats_app(engine: EngineServer) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        gc.collect()
        body = json.dumps(
            {
                "rss": rss_bytes(),
                "tasks": len(asyncio.all_tasks()),
                "sessions": len(engine.sessions),
                "heartbeat": len(engine.heartbeat),
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


async def main(ws: str) -> None:
    engine = EngineServer()
    engine.serve(Admit())
    protocol: Any = "auto"
    if ws == "raw":
        from roomcast.engine.websocket import RawWebSocketProtocol

        protocol = RawWebSocketProtocol
    sock = free_socket()
    config = uvicorn.Config(
        EngineASGIApp(engine, stats_app(engine)),
        log_level="warning",
        lifespan="off",
        access_log=False,
        ws=protocol,
        backlog=4096,
    )
    server = uvicorn.Server(config)
    print(sock.getsockname()[1], flush=True)
    await server.serve(sockets=[sock])


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
