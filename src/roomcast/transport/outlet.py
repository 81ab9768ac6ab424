"""EngineIOOutlet: puts encoded packets straight into Engine.IO socket queues.

python-socketio's own `emit` to a room starts one asyncio task per recipient. Here
an event is encoded once into an Engine.IO packet and the same object is appended
to each recipient's outgoing queue, which that socket's writer drains; per
recipient that is a dictionary look-up, a length check and an append.
"""

from __future__ import annotations

from typing import Any

import engineio
import socketio
from socketio import packet as sio_packet

from ..types import JSON


class EngineIOOutlet:
    def __init__(self, sio: socketio.AsyncServer, queue_limit: int) -> None:
        self._sio = sio
        self._limit = queue_limit
        self._eio_sids: dict[str, str] = {}  # socket.io sid -> engine.io sid

    def bind(self, sid: str, eio_sid: str) -> None:
        self._eio_sids[sid] = eio_sid

    def unbind(self, sid: str) -> None:
        self._eio_sids.pop(sid, None)

    def size(self) -> int:
        return len(self._eio_sids)

    def encode(self, event: str, payload: JSON) -> Any:
        encoded = sio_packet.Packet(sio_packet.EVENT, data=[event, payload]).encode()
        return engineio.packet.Packet(engineio.packet.MESSAGE, data=encoded)

    def push(self, sid: str, packet: Any, *, force: bool = False) -> bool:
        eio_sid = self._eio_sids.get(sid)
        if eio_sid is None:
            return True
        socket = self._sio.eio.sockets.get(eio_sid)
        if socket is None or socket.closed:
            return True
        queue = socket.queue
        if not force and queue.qsize() >= self._limit:
            return False
        queue.put_nowait(packet)
        return True

    def send(self, sid: str, event: str, payload: JSON) -> None:
        """Send one message to one socket, whatever its queue holds (control messages)."""
        self.push(sid, self.encode(event, payload), force=True)
