"""Engine.IO sockets whose outgoing queue knows when frames may bypass it.

Engine.IO gives each socket a queue and a writer task that moves its packets to the
WebSocket one by one. A frame written straight to the wire (see `wire.py`) must not
overtake a packet that is still on that path, so a direct write is only allowed when

- the socket has finished its upgrade to WebSocket (`socket.upgraded`),
- its queue is empty, and
- its writer is parked in `get()` on that empty queue: it is not holding a packet it
  took earlier and has not yet handed to the transport.

`WireQueue` records the last condition, which asyncio.Queue cannot tell, and holds
the connection's wire. Everything Engine.IO itself sends (acks, pings, the close
packet) still goes through the queue and the writer, unchanged.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs

import engineio
import socketio

from .wire import Wire, wire_of


class WireQueue(asyncio.Queue[Any]):
    """An Engine.IO socket queue that knows its wire and whether its writer is idle."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.wire: Wire | None = None
        self.writer_idle = False

    async def get(self) -> Any:
        # While a getter is parked here the queue is empty; once an item arrives the
        # queue is non-empty until the getter resumes, and the flag drops before the
        # getter hands the item on. Either way a direct write then waits its turn.
        self.writer_idle = True
        try:
            return await super().get()
        finally:
            self.writer_idle = False


class WiredEngineIOServer(engineio.AsyncServer):  # type: ignore[misc]
    """Engine.IO server whose sockets get a `WireQueue`."""

    def create_queue(self, *args: Any, **kwargs: Any) -> WireQueue:
        return WireQueue(*args, **kwargs)


class WiredSocketIOServer(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's server on top of `WiredEngineIOServer`."""

    def _engineio_server_class(self) -> type[engineio.AsyncServer]:
        return WiredEngineIOServer


class WiredASGIApp(socketio.ASGIApp):  # type: ignore[misc]
    """Socket.IO's ASGI app, handing the wire of an upgrading socket to its queue.

    A client that starts on long-polling (socket.io-client's default) upgrades with a
    second request naming its Engine.IO `sid`; that request's scope holds the wire. A
    client that starts on WebSocket is given its wire when it connects (see the
    gateway), from the scope of its one request.
    """

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            wire = wire_of(scope)
            if wire is not None:
                sids = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("sid")
                if sids:
                    attach_wire(self.engineio_server.eio, sids[0], wire)
        await super().__call__(scope, receive, send)


def attach_wire(eio: engineio.AsyncServer, eio_sid: str, wire: Wire | None) -> None:
    if wire is None:
        return
    socket = eio.sockets.get(eio_sid)
    if socket is not None and isinstance(socket.queue, WireQueue):
        socket.queue.wire = wire
