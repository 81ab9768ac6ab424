"""The two narrow interfaces of roomcast's own Engine.IO server.

roomcast serves Engine.IO v4 and Socket.IO v5 itself (issue 12): a connection is a
protocol object driven by callbacks, with no asyncio task of its own, so an idle
connection costs a few kilobytes instead of python-engineio's and uvicorn's ~40.

- Below the engine, a `Carrier` moves whole WebSocket messages for one connection:
  roomcast's raw asyncio protocol under `roomcast serve` (engine/websocket.py), or an
  ASGI WebSocket under any other ASGI server (engine/asgi_carrier.py). The engine
  gives each carrier a `CarrierSink` for what arrives.
- Above it, a `SocketHandler` (the gateway) sees Socket.IO connections and events,
  never packets: it admits or refuses a connect, answers each event with the value
  its ack carries, and hears of every disconnect exactly once.

Long-polling needs no carrier: its HTTP requests reach the engine through ASGI.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

_OPCODE_TEXT_FIN = 0x81
_OPCODE_BINARY_FIN = 0x82


@dataclass(frozen=True, slots=True)
class Frame:
    """One outgoing WebSocket message, framed once.

    `data` is the message (Engine.IO text such as "42[...]", or bytes); `wire` is the
    whole unmasked, uncompressed WebSocket frame carrying it, header included. A
    server-to-client frame is not masked, so the same `wire` bytes serve every
    connection a broadcast reaches: a raw carrier writes them as they are, an ASGI
    carrier sends `data`.
    """

    data: str | bytes
    wire: bytes


def frame_of(data: str | bytes) -> Frame:
    """The Frame of one message: a text frame for `str`, a binary frame for `bytes`."""
    payload = data.encode() if isinstance(data, str) else bytes(data)
    first = _OPCODE_TEXT_FIN if isinstance(data, str) else _OPCODE_BINARY_FIN
    size = len(payload)
    if size < 126:
        header = bytes((first, size))
    elif size < 1 << 16:
        header = bytes((first, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((first, 127)) + size.to_bytes(8, "big")
    return Frame(data, header + payload)


class CarrierSink(Protocol):
    """What the engine hears from one carrier. Called from the event loop, never
    concurrently, in the order the messages arrived."""

    def on_message(self, data: str | bytes) -> None:
        """One complete WebSocket message (text as `str`, binary as `bytes`)."""

    def on_closed(self) -> None:
        """The connection is gone (either side closed it, or it was lost). Called once;
        nothing arrives after it."""


class Carrier(Protocol):
    """One WebSocket connection, as the engine drives it."""

    def attach(self, sink: CarrierSink) -> None:
        """Start handing messages to `sink` (messages that arrived before are handed
        now, in order). Called once, by the engine, right after it accepted."""

    def write(self, frames: Sequence[Frame]) -> bool:
        """Send `frames` in order, after everything written before. Never blocks and
        never drops: what the kernel does not take yet waits in the carrier's buffer
        (see `backlog`). False when the connection no longer takes frames (closing or
        closed); the frames are then discarded."""

    def backlog(self) -> int:
        """Bytes written but not yet taken by the kernel (the slow-consumer measure)."""

    def notify_drained(self, callback: Callable[[], None]) -> None:
        """Call `callback` once, when the backlog next falls to the transport's low-water
        mark (at once, from the loop, if it already is). Never called if the connection
        closes first."""

    def close(self, code: int = 1000) -> None:
        """Send a close frame after what was written, then close the connection.
        Idempotent. `on_closed` follows."""


@dataclass(frozen=True, slots=True)
class Handshake:
    """What a connecting client presented: its HTTP request and its CONNECT packet."""

    address: str  # the client's address (after trusted proxy headers), or "unknown"
    headers: Mapping[str, str]  # lower-case header names; repeated headers joined by ","
    query: Mapping[str, str]  # the Engine.IO request's query string
    auth: Any = None  # the CONNECT packet's JSON payload; None when absent or not JSON
    scope: Mapping[str, Any] = field(default_factory=dict)  # the ASGI scope it came in


class ConnectRefused(Exception):
    """Raised by `SocketHandler.connect` to refuse: the client gets Socket.IO's
    CONNECT_ERROR `{"message": message, "data": data}` and the connection is closed."""

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


class SocketHandler(Protocol):
    """What the engine asks of the layer above it (the gateway).

    `sid` is the Socket.IO session id (what the client sees as `socket.id`), distinct
    from the Engine.IO session id and never reused. For one sid, `connect` comes first
    and `disconnect` last, exactly once each if `connect` returned; events of one
    connection are handed over in arrival order, each in its own task (a slow join does
    not hold the next event back), as python-socketio does.
    """

    async def connect(self, sid: str, handshake: Handshake) -> None:
        """Admit the connection, or raise ConnectRefused. Nothing may be sent to `sid`
        until `connected` is called."""

    def connected(self, sid: str) -> None:
        """The CONNECT reply has been queued for the client: events sent from here on
        reach it after that reply."""

    async def event(self, sid: str, name: str, args: list[Any]) -> Any:
        """One client event. The return value is the ack's single argument, sent only
        when the client asked for an ack. Junk arrives here too, as the event
        `transport.junk.JUNK_EVENT` with one `Junk` argument."""

    async def disconnect(self, sid: str, reason: str) -> None:
        """The connection is gone (`reason`: "client", "server", "transport_close",
        "transport_error", "ping_timeout"). Called once per admitted connection."""
