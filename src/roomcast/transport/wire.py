"""The WebSocket wire: one event framed once, the same bytes written to every socket.

A server-to-client WebSocket frame is not masked (RFC 6455, section 5.1), so without
per-message compression the bytes of a text frame depend on its payload alone. A
broadcast can therefore build the frame once and hand the very same `bytes` object
to each recipient's transport: per recipient that is one `transport.write`, with no
task wake-up, no ASGI message and no framing.

`WireProtocol` is uvicorn's sans-I/O websockets protocol plus that one operation. It
puts itself into the ASGI scope under `extensions["roomcast.wire"]`, so the Socket.IO
layer above can find the wire of a connection without holding on to uvicorn. A raw
frame is always a valid message on the connection, even when permessage-deflate was
negotiated: a message whose RSV1 bit is clear is simply not compressed. The protocol
subclasses uvicorn's internals, so it lives with the other such reaches in
internals.py (assumptions U1-U6); it is importable from here too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ..engine.contract import frame_of
from .internals import WIRE_EXTENSION, WireProtocol

__all__ = ["WIRE_EXTENSION", "Wire", "WireProtocol", "text_frame", "wire_of"]


class Wire(Protocol):
    """What a broadcast needs from a connection's WebSocket."""

    def write_frames(self, frames: list[bytes]) -> bool:
        """Write complete frames, in order; False when the connection no longer takes frames."""

    def backlog(self) -> int:
        """Bytes written but not yet taken by the kernel (the slow-consumer measure)."""

    def notify_drained(self, callback: Callable[[], None]) -> None:
        """Call `callback` once, when the backlog has drained (never if the connection closes)."""


def text_frame(payload: str) -> bytes:
    """One unfragmented, unmasked text frame carrying `payload` (the engine's framing)."""
    return frame_of(payload).wire


def wire_of(scope: dict[str, Any] | None) -> Wire | None:
    """The wire of an ASGI websocket scope, if the server runs `WireProtocol`."""
    if not scope:
        return None
    extensions = scope.get("extensions") or {}
    wire = extensions.get(WIRE_EXTENSION)
    return wire if isinstance(wire, WireProtocol) else None
