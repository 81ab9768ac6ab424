"""python-socketio on python-engineio as a `SocketServer` (`ROOMCAST_ENGINE=python-socketio`).

What this server was before roomcast had its own engine: python-socketio's handlers,
called with python-engineio's WSGI-style `environ`, are turned into the typed calls of
`engine.contract.SocketHandler`, and a refusal into python-socketio's connect error.
The frames a broadcast writes straight to a WebSocket go through `EngineIOOutlet`, and
every reach into these libraries' internals stays in internals.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import socketio

from ..config import Settings
from ..engine.contract import ConnectRefused, Handshake, SocketHandler
from .internals import AfterConnectManager, WiredASGIApp, WiredSocketIOServer, engine_binding
from .outlet import EngineIOOutlet
from .packets import JUNK_EVENT, GatewayPacket, Junk
from .sockets import ASGIApp

_PROTOCOL_EVENTS = ("join", "leave", "lock", "unlock")


class SocketIOServer:
    """python-socketio's AsyncServer, its outlet, and the adapter to a `SocketHandler`."""

    def __init__(self, settings: Settings) -> None:
        cors: Any = settings.cors_origin_list or None
        if cors == ["*"]:
            cors = "*"
        self._handler: SocketHandler | None = None
        self.sio = WiredSocketIOServer(
            async_mode="asgi",
            client_manager=AfterConnectManager(self._connected),
            serializer=GatewayPacket,
            cors_allowed_origins=cors,
            max_http_buffer_size=max(settings.max_payload_bytes * 4, 1_000_000),
            logger=False,
            engineio_logger=False,
        )
        self.outlet = EngineIOOutlet(
            self.sio, settings.send_queue_limit, settings.send_buffer_limit_bytes
        )
        self.max_message_bytes = int(self.sio.eio.max_http_buffer_size)

    def serve(self, handler: SocketHandler) -> None:
        self._handler = handler
        sio = self.sio
        sio.on("connect", self._on_connect)
        sio.on("disconnect", self._on_disconnect)
        for name in _PROTOCOL_EVENTS:
            sio.on(name, self._named(name))
        sio.on(JUNK_EVENT, self._on_junk)
        sio.on("*", self._on_any)

    def _served(self) -> SocketHandler:
        if self._handler is None:
            raise RuntimeError("SocketIOServer.serve(handler) was not called")
        return self._handler

    async def _on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        eio_sid, wire = engine_binding(self.sio, sid, environ)
        self.outlet.bind(sid, eio_sid, wire)
        try:
            await self._served().connect(sid, _handshake(environ, auth))
        except ConnectRefused as refused:
            self.outlet.unbind(sid)
            raise socketio.exceptions.ConnectionRefusedError(
                refused.message, refused.data
            ) from None
        except BaseException:
            self.outlet.unbind(sid)
            raise

    def _connected(self, sid: str) -> None:
        self._served().connected(sid)

    async def _on_disconnect(self, sid: str, reason: Any = None, *_: Any) -> None:
        await self._served().disconnect(sid, str(reason))

    def _named(self, name: str) -> Callable[..., Any]:
        async def handler(sid: str, *args: Any) -> Any:
            return await self._served().event(sid, name, list(args))

        return handler

    async def _on_any(self, event: str, sid: str, *args: Any) -> Any:
        return await self._served().event(sid, event, list(args))

    async def _on_junk(self, sid: str, junk: Junk, *_: Any) -> Any:
        return await self._served().event(sid, JUNK_EVENT, [junk])

    async def disconnect(self, sid: str) -> None:
        await self.sio.disconnect(sid)

    def asgi(self, other: ASGIApp) -> ASGIApp:
        app: ASGIApp = WiredASGIApp(self.sio, other_asgi_app=other, socketio_path="socket.io")
        return app

    async def aclose(self) -> None:
        """python-engineio stops its own tasks with its sockets."""


def _handshake(environ: dict[str, Any], auth: Any) -> Handshake:
    scope: dict[str, Any] = environ.get("asgi.scope") or {}
    client = scope.get("client")
    address = str(client[0]) if client else str(environ.get("REMOTE_ADDR", "unknown"))
    headers = {
        key[5:].lower().replace("_", "-"): str(value)
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    query = dict(parse_qsl(str(environ.get("QUERY_STRING", "")), keep_blank_values=True))
    return Handshake(address=address, headers=headers, query=query, auth=auth, scope=scope)
