"""A real uvicorn server running the real application, on a free loopback port.

The listening socket is bound and listening before uvicorn starts, so a client may
connect at once: the kernel queues it until the server accepts, and nothing has to
poll for readiness.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import socketio
import uvicorn

from roomcast import Roomcast, Settings, create_app
from roomcast.auth.tokens import mint_access_token
from roomcast.server import protocol_limits, websocket_protocol
from tests.support.credentials import API_KEY, SECRET

__all__ = [
    "API_KEY",
    "SECRET",
    "WS_PROTOCOLS",
    "Client",
    "RunningServer",
    "free_socket",
    "running_server",
    "test_settings",
    "uvicorn_serving",
]


def test_settings(**overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "jwt_secret": SECRET,
        "api_keys": API_KEY,
        "log_level": "warning",
        "instance_id": "test-instance",
    }
    base.update(overrides)
    return Settings(**base)


test_settings.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


@dataclass
class RunningServer:
    url: str
    runtime: Roomcast
    settings: Settings
    ws: str = "roomcast"  # the WebSocket protocol it runs (WS_PROTOCOLS)

    def token(self, user: str = "u1", **claims: Any) -> str:
        return mint_access_token(self.settings.jwt_secret.get_secret_value(), user, **claims)  # type: ignore[union-attr]

    @property
    def api_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.settings.api_key_list[0]}"}

    async def client(self, user: str = "u1", *, connect: bool = True, **claims: Any) -> Client:
        c = Client()
        if connect:
            await c.connect(self.url, self.token(user, **claims))
        return c


class Client:
    """A real python-socketio client that records every event it receives, in order."""

    def __init__(self) -> None:
        # The client owns its aiohttp session and closes it in close(): left to
        # python-socketio, a socket of a finished connection could outlive the test
        # and surface as a ResourceWarning in a later one.
        self.http = aiohttp.ClientSession()
        self.sio = socketio.AsyncClient(reconnection=False, http_session=self.http)
        self.events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.log: list[tuple[str, Any]] = []
        self.disconnected = asyncio.Event()
        self.sio.on("*", self._on_any)
        self.sio.on("disconnect", self._on_disconnect)

    async def _on_any(self, event: str, data: Any = None) -> None:
        self.log.append((event, data))
        self.events.put_nowait((event, data))

    async def _on_disconnect(self, reason: Any = None) -> None:
        self.disconnected.set()

    async def connect(self, url: str, token: str | None, **kwargs: Any) -> None:
        auth = {"token": token} if token is not None else None
        kwargs.setdefault("transports", ["websocket"])
        await self.sio.connect(url, auth=auth, wait_timeout=5, **kwargs)

    async def call(self, event: str, data: Any = None, timeout: float = 5) -> Any:
        return await self.sio.call(event, data, timeout=timeout)

    async def next(self, event: str | None = None, timeout: float = 5) -> Any:
        """The next received event (of this name, skipping others)."""
        async with asyncio.timeout(timeout):
            while True:
                name, data = await self.events.get()
                if event is None or name == event:
                    return data if event is not None else (name, data)

    async def close(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()
        if not self.http.closed:
            await self.http.close()


def free_socket() -> socket.socket:
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets it knows are TCP.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


# The WebSocket protocols a test server runs: roomcast's (what `roomcast serve` runs
# for the settings: see roomcast.server.websocket_protocol) and uvicorn's default,
# what `uvicorn mymodule:app` runs.
WS_PROTOCOLS: dict[str, Any] = {"roomcast": websocket_protocol, "uvicorn": lambda _: "auto"}


@contextlib.asynccontextmanager
async def running_server(
    settings: Settings | None = None, *, ws: str = "roomcast", **create_kwargs: Any
) -> AsyncIterator[RunningServer]:
    """The application on a free port, under `ws` (a key of WS_PROTOCOLS)."""
    settings = settings or test_settings()
    app = create_app(settings, **create_kwargs)
    async with uvicorn_serving(
        app,
        ws=WS_PROTOCOLS[ws](settings),
        **protocol_limits(app.roomcast),  # what `roomcast serve` runs: 431 for huge heads
    ) as url:
        yield RunningServer(url, app.roomcast, settings, ws)


@contextlib.asynccontextmanager
async def uvicorn_serving(app: Any, *, lifespan: str = "on", **config: Any) -> AsyncIterator[str]:
    """`app` under a real uvicorn in this loop, on a free loopback port; its base URL.

    The server stops when the block ends (3 s of graceful shutdown at most).
    """
    sock = free_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level="warning",
            lifespan=lifespan,
            access_log=False,
            timeout_graceful_shutdown=3,
            **config,
        )
    )
    server.install_signal_handlers = lambda: None  # type: ignore[attr-defined]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()
