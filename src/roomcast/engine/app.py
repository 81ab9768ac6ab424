"""EngineASGIApp: `/socket.io/` to the engine, everything else to another ASGI app.

A WebSocket scope under the path is validated (protocol version, transport, origin:
403 before the accept when refused), accepted, and handed to the engine with its
carrier: the raw carrier roomcast's own WebSocket protocol puts into
`scope["extensions"]` (the ASGI call then returns at once: the connection lives as
callbacks), or else an `AsgiCarrier` whose receive loop keeps the call alive. HTTP
under the path is long-polling (polling.py); the rest, lifespan included, goes to
`other_asgi_app`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from . import polling
from .asgi_carrier import AsgiCarrier
from .server import _headers, _query

if TYPE_CHECKING:
    from .server import EngineServer

try:  # E1's raw protocol names its extension there
    from .websocket import CARRIER_EXTENSION
except ImportError:  # pragma: no cover - until engine/websocket.py exists
    CARRIER_EXTENSION = "roomcast.carrier"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Any]]
Send = Callable[[Any], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class EngineASGIApp:
    def __init__(
        self, engine: EngineServer, other_asgi_app: ASGIApp | None = None, path: str = "socket.io"
    ) -> None:
        self.engine = engine
        self.other = other_asgi_app
        self.path = "/" + path.strip("/")

    def _ours(self, scope: Scope) -> bool:
        path = str(scope.get("path", ""))
        return path == self.path or path.startswith(self.path + "/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind in ("http", "websocket") and self._ours(scope):
            query = _query(scope)
            headers = _headers(scope)
            if kind == "http":
                await polling.handle(self.engine, scope, receive, send, query, headers)
            else:
                await self._websocket(scope, receive, send, query, headers)
            return
        if self.other is not None:
            await self.other(scope, receive, send)
        elif kind == "http":
            await send(
                {
                    "type": "http.response.start",
                    "status": 404,
                    "headers": [(b"content-length", b"0")],
                }
            )
            await send({"type": "http.response.body", "body": b""})
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1008})

    async def _websocket(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        query: dict[str, str],
        headers: dict[str, str],
    ) -> None:
        engine = self.engine
        refused = (
            not polling.origin_allowed(engine.cors_allowed_origins, scope, headers)
            or query.get("EIO") != "4"
            or query.get("transport") != "websocket"
        )
        sid = query.get("sid")
        if not refused and sid is not None and engine.upgradable(sid) is None:
            refused = True
        if refused:
            await send({"type": "websocket.close", "code": 1008})  # 403 before the accept
            return
        extensions = scope.get("extensions") or {}
        carrier: Any = extensions.get(CARRIER_EXTENSION)
        fallback: AsgiCarrier | None = None
        if carrier is None:
            carrier = fallback = AsgiCarrier(receive, send, max_size=engine.max_payload)
        await send({"type": "websocket.accept"})
        if sid is None:
            engine.open_websocket(scope, carrier)
        else:
            session = engine.upgradable(sid)
            if session is None:  # closed while the accept went out
                carrier.close(1008)
            else:
                engine.upgrade_websocket(session, carrier)
        if fallback is not None:
            await fallback.run()
