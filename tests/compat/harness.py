"""Bare servers for the compatibility tests: the libraries, roomcast's subclasses, no app.

Each assumption of transport/internals.py is exercised on the smallest real setup
that shows it: a uvicorn server running `WireProtocol` under a scripted ASGI app, or
a `WiredSocketIOServer` whose queues also say when their writer parks in `get()`.
Only the runtime dependencies, pytest and aiohttp are needed (the lowest-versions
run uses them too).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import uvicorn

from roomcast.transport.internals import (
    AfterConnectManager,
    WiredASGIApp,
    WiredEngineIOServer,
    WiredSocketIOServer,
    WireProtocol,
    WireQueue,
    engine_binding,
)
from roomcast.transport.outlet import EngineIOOutlet
from tests.support.server import free_socket

Script = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def broken(assumption: str, what: str) -> str:
    """An assertion message naming the assumption of the fence's docstring."""
    return f"assumption {assumption} of roomcast's internals fences no longer holds: {what}"


@contextlib.asynccontextmanager
async def serving(app: Any, **config: Any) -> AsyncIterator[str]:
    """A real uvicorn server for `app` on a free loopback port; yields its base URL."""
    sock = free_socket()
    port = sock.getsockname()[1]
    config.setdefault("ws", WireProtocol)
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False, **config)
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


def scripted(script: Script) -> Any:
    """An ASGI app that runs `script(scope, receive, send)` for each WebSocket."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await script(scope, receive, send)

    return app


class ProbeQueue(WireQueue):
    """A WireQueue that also counts how often its writer parked in `get()` on it empty."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.parks = 0
        self._next_park: asyncio.Future[None] | None = None

    async def get(self) -> Any:
        if not self.qsize():
            self.parks += 1
            if self._next_park is not None and not self._next_park.done():
                self._next_park.set_result(None)
        return await super().get()

    async def settled(self, timeout: float = 5) -> None:
        """Wait until the writer took everything queued and parked in `get()` again."""
        if not self.qsize() and self.writer_idle:
            return
        after = self.parks
        async with asyncio.timeout(timeout):
            while self.parks <= after:
                self._next_park = asyncio.get_running_loop().create_future()
                await self._next_park


class ProbeEngineIOServer(WiredEngineIOServer):
    def create_queue(self, *args: Any, **kwargs: Any) -> ProbeQueue:
        return ProbeQueue(*args, **kwargs)


class ProbeSocketIOServer(WiredSocketIOServer):
    def _engineio_server_class(self) -> type[WiredEngineIOServer]:
        return ProbeEngineIOServer


class Bench:
    """A Socket.IO server wired as roomcast wires it (gateway-style binding), no rooms."""

    def __init__(self) -> None:
        self.greeted: list[tuple[str, bool]] = []  # (sid, connect handler had run)
        self.connected: dict[str, str] = {}  # sid -> Engine.IO sid
        self.environs: dict[str, dict[str, Any]] = {}
        self.sio = ProbeSocketIOServer(
            async_mode="asgi",
            client_manager=AfterConnectManager(self._greet),
            logger=False,
            engineio_logger=False,
        )
        self.outlet = EngineIOOutlet(self.sio, 1000, 1 << 20)
        self.app = WiredASGIApp(self.sio)
        self.sio.on("connect", self._on_connect)
        self.ready: asyncio.Queue[str] = asyncio.Queue()

    async def _on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        eio_sid, wire = engine_binding(self.sio, sid, environ)  # as the gateway binds
        self.connected[sid] = eio_sid
        self.environs[sid] = environ
        self.outlet.bind(sid, eio_sid, wire)

    def _greet(self, sid: str) -> None:
        self.greeted.append((sid, sid in self.connected))
        self.outlet.send(sid, "greeting", {"sid": sid})
        self.ready.put_nowait(sid)

    def socket(self, sid: str) -> Any:
        return self.sio.eio.sockets[self.connected[sid]]

    def queue(self, sid: str) -> ProbeQueue:
        queue: ProbeQueue = self.socket(sid).queue
        return queue
