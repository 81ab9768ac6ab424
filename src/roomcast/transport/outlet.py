"""EngineIOOutlet: delivers encoded events to Socket.IO connections, at most one write each.

python-socketio's own `emit` to a room starts one asyncio task per recipient, and each
message then crosses the Engine.IO queue, a writer task, the ASGI send and the
WebSocket framing. Here an event is encoded once, into both an Engine.IO packet and a
ready WebSocket frame (`wire.text_frame`). Per recipient:

- on a WebSocket whose Engine.IO writer is idle with nothing queued, the frame's
  bytes are written to the transport directly (the same object for every recipient);
- otherwise (long-polling, or a packet still on its way through Engine.IO) the packet
  is appended to the socket's queue behind it, so order is kept either way.

A connection is a slow consumer when its transport holds more than the byte limit
unsent, or its Engine.IO queue more than the packet limit.

Per recipient this reads Engine.IO's socket attributes (`closed`, `upgraded`,
`queue`) inline, as internals.py's assumptions E1-E3 describe: a call into
internals.py per recipient would slow the broadcast path down.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import socketio

from ..domain import JSON
from .internals import attach_wire, encode_event, encode_event_json
from .wire import Wire, text_frame


@dataclass(frozen=True, slots=True)
class EncodedEvent:
    """One event, encoded once for any number of recipients."""

    packet: Any  # engineio.packet.Packet, for the queue path
    frame: bytes  # the WebSocket frame, for the direct path


class EngineIOOutlet:
    def __init__(self, sio: socketio.AsyncServer, queue_limit: int, buffer_limit: int) -> None:
        self._sio = sio
        self._limit = queue_limit
        self._buffer_limit = buffer_limit
        self._sockets: dict[str, Any] = {}  # socket.io sid -> Engine.IO socket
        # Frames for the direct path wait here until the end of the loop iteration:
        # events published together (a batch, or several pub/sub messages read at
        # once) then leave in one write per socket instead of one write per event.
        self._corked: dict[Wire, list[bytes]] = {}

    def bind(self, sid: str, eio_sid: str, wire: Wire | None = None) -> None:
        socket = attach_wire(self._sio.eio, eio_sid, wire)
        if socket is not None:
            self._sockets[sid] = socket

    def unbind(self, sid: str) -> None:
        self._sockets.pop(sid, None)

    def size(self) -> int:
        return len(self._sockets)

    def encode(self, event: str, payload: JSON) -> EncodedEvent:
        packet, text = encode_event(event, payload)
        return EncodedEvent(packet, text_frame(text))

    def encode_json(self, event: str, payload_json: str) -> EncodedEvent:
        packet, text = encode_event_json(event, payload_json)
        return EncodedEvent(packet, text_frame(text))

    def push(self, sid: str, event: EncodedEvent, *, force: bool = False) -> bool:
        socket = self._sockets.get(sid)
        if socket is None or socket.closed:
            return True
        queue = socket.queue
        wire = queue.wire
        if wire is not None and queue.writer_idle and socket.upgraded and not queue.qsize():
            if not force and wire.backlog() > self._buffer_limit:
                return False
            frames = self._corked.get(wire)
            if frames is not None:
                frames.append(event.frame)
                return True
            if not self._corked:
                asyncio.get_running_loop().call_soon(self._flush)
            self._corked[wire] = [event.frame]
            return True
        if not force and queue.qsize() >= self._limit:
            return False
        queue.put_nowait(event.packet)
        return True

    def _flush(self) -> None:
        # Runs before anything else scheduled after the first frame was corked, so an
        # Engine.IO writer woken later in this iteration still writes after these.
        corked, self._corked = self._corked, {}
        for wire, frames in corked.items():
            wire.write_frames(frames)  # False: closing, and Engine.IO is closing it

    def notify_drained(self, sid: str, callback: Callable[[], None]) -> None:
        """Call `callback` once this socket's backlog drained (hub.DrainSignal).

        What held the socket back is waited out: its Engine.IO queue, found empty by
        its writer (internals E9), or its WebSocket transport's buffer (U9).
        """
        socket = self._sockets.get(sid)
        if socket is None or socket.closed:
            return
        queue = socket.queue
        wire = queue.wire
        if wire is not None and socket.upgraded and not queue.qsize():
            wire.notify_drained(callback)
        else:
            queue.notify_empty(callback)

    def writes_direct(self, sid: str) -> bool:
        """Whether an event to this connection would now go straight to its WebSocket."""
        socket = self._sockets.get(sid)
        if socket is None or socket.closed:
            return False
        queue = socket.queue
        return bool(queue.wire is not None and queue.writer_idle and socket.upgraded)

    def send(self, sid: str, event: str, payload: JSON) -> None:
        """Send one message to one socket, whatever its backlog (control messages)."""
        self.push(sid, self.encode(event, payload), force=True)
