"""SocketServer: what the rest of roomcast needs from the server that speaks Socket.IO.

Two implement it: roomcast's own engine (engine/, the default: a connection is a
protocol object with no task of its own) and python-socketio on python-engineio
(transport/socketio_server.py, `ROOMCAST_ENGINE=python-socketio`). The gateway, the hub
and app.py see only this; which one runs is decided once, in `make_socket_server`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from ..domain import JSON
from ..engine.contract import SocketHandler

#: An ASGI application: (scope, receive, send) -> None.
ASGIApp = Callable[..., Awaitable[None]]


class SocketOutlet(Protocol):
    """The road to a connection's socket: the hub's `Outlet` and `DrainSignal`
    (hub/hub.py, whose docstrings hold the semantics), plus what the gateway uses."""

    def encode(self, event: str, payload: JSON, /) -> Any:
        """One event, encoded once for any number of recipients."""

    def encode_json(self, event: str, payload_json: str, /) -> Any:
        """`encode`, of a payload that is JSON text already."""

    def push(self, sid: str, packet: Any, /, *, force: bool = False) -> bool:
        """Queue an encoded event; False when the socket is a slow consumer."""

    def notify_drained(self, sid: str, callback: Callable[[], None], /) -> None:
        """Call `callback` once this socket's backlog drained."""

    def writes_direct(self, sid: str, /) -> bool:
        """Whether an event to this socket now goes straight to its WebSocket."""

    def send(self, sid: str, event: str, payload: JSON, /) -> None:
        """One message to one socket, whatever its backlog (control messages)."""

    def unbind(self, sid: str, /) -> None:
        """Forget the socket of `sid` (its connection is gone)."""

    def size(self) -> int:
        """How many sockets the outlet holds (leak checks)."""


class SocketServer(Protocol):
    """One Socket.IO server: namespace "/", the events routed to one `SocketHandler`."""

    @property
    def outlet(self) -> SocketOutlet:
        """The road to each connection's socket."""

    @property
    def max_message_bytes(self) -> int:
        """The largest WebSocket message or polling body accepted (uvicorn's ws_max_size)."""

    def serve(self, handler: SocketHandler) -> None:
        """Route every connection and event to `handler` (called once, before start)."""

    async def disconnect(self, sid: str) -> None:
        """Close a connection from the server side: the client is told (Socket.IO's
        DISCONNECT, then Engine.IO's close) and `handler.disconnect` follows."""

    def asgi(self, other: ASGIApp) -> ASGIApp:
        """The ASGI application serving `/socket.io/` and passing the rest to `other`."""

    async def aclose(self) -> None:
        """Stop what the server runs on its own (timers), at application shutdown."""
