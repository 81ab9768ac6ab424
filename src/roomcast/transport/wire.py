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
negotiated: a message whose RSV1 bit is clear is simply not compressed.
"""

from __future__ import annotations

from typing import Any, Protocol

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

WIRE_EXTENSION = "roomcast.wire"

_OPCODE_TEXT_FIN = 0x81


class Wire(Protocol):
    """What a broadcast needs from a connection's WebSocket."""

    def write_frames(self, frames: list[bytes]) -> bool:
        """Write complete frames, in order; False when the connection no longer takes frames."""

    def backlog(self) -> int:
        """Bytes written but not yet taken by the kernel (the slow-consumer measure)."""


def text_frame(payload: str) -> bytes:
    """One unfragmented, unmasked text frame carrying `payload`."""
    data = payload.encode()
    size = len(data)
    if size < 126:
        header = bytes((_OPCODE_TEXT_FIN, size))
    elif size < 1 << 16:
        header = bytes((_OPCODE_TEXT_FIN, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((_OPCODE_TEXT_FIN, 127)) + size.to_bytes(8, "big")
    return header + data


def wire_of(scope: dict[str, Any] | None) -> Wire | None:
    """The wire of an ASGI websocket scope, if the server runs `WireProtocol`."""
    if not scope:
        return None
    extensions = scope.get("extensions") or {}
    wire = extensions.get(WIRE_EXTENSION)
    return wire if isinstance(wire, WireProtocol) else None


class WireProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets protocol, offering `write_frames` to the application."""

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:  # absent when the handshake was refused
            scope["extensions"][WIRE_EXTENSION] = self

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept":
            # The handshake's request and response (their header objects are ~3.5 KB)
            # are not read again once the accept went out; an idle connection should
            # not carry them for its whole life.
            self.request = self.response = None  # type: ignore[assignment]

    def write_frames(self, frames: list[bytes]) -> bool:
        # Frames may only follow the accept and must never follow a close frame;
        # the flags are uvicorn's own record of both.
        if self.close_sent or self.disconnected or not self.handshake_complete:
            return False
        if len(frames) == 1:
            self.transport.write(frames[0])
        else:
            self.transport.writelines(frames)  # one system call for all of them
        return True

    def backlog(self) -> int:
        return self.transport.get_write_buffer_size()
