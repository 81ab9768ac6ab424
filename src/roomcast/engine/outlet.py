"""NativeOutlet: the hub's road to the native engine's sessions.

An event is encoded once per broadcast, into a `Frame` whose text is the Engine.IO
message "42[...]" and whose wire bytes are the whole WebSocket frame. Per recipient,
`push` appends that same object to the session's frames of this loop iteration (on
WebSocket) or its text to the polling queue: no allocation beyond the append, and
the same ordered road as the session's acks and control packets.

A session is a slow consumer when its carrier holds more than `buffer_limit` bytes
unsent (WebSocket) or its polling queue `queue_limit` packets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .contract import Frame, frame_of
from .session import CLOSED, WEBSOCKET, Flusher, Session
from .sio_codec import encode_event, encode_event_json


class NativeOutlet:
    """Implements hub.Outlet, hub.DrainSignal and transport.sockets.SocketOutlet."""

    def __init__(self, flusher: Flusher, queue_limit: int, buffer_limit: int) -> None:
        self._flusher = flusher
        self._limit = queue_limit
        self._buffer_limit = buffer_limit
        self._sessions: dict[str, Session] = {}  # Socket.IO sid -> its session

    def bind(self, sid: str, session: Session) -> None:
        self._sessions[sid] = session

    def unbind(self, sid: str) -> None:
        self._sessions.pop(sid, None)

    def session(self, sid: str) -> Session | None:
        return self._sessions.get(sid)

    def size(self) -> int:
        return len(self._sessions)

    def encode(self, event: str, payload: Any) -> Frame:
        return frame_of("4" + encode_event(event, payload))

    def encode_json(self, event: str, payload_json: str) -> Frame:
        return frame_of("4" + encode_event_json(event, payload_json))

    def push(self, sid: str, packet: Frame, *, force: bool = False) -> bool:
        session = self._sessions.get(sid)
        if session is None:
            return True
        state = session.state
        if state == WEBSOCKET:
            carrier = session.carrier
            if carrier is None:
                return True
            if not force and carrier.backlog() > self._buffer_limit:
                return False
            frames = session.frames
            if frames is None:
                session.frames = [packet]
                self._flusher.mark(session)
            else:
                frames.append(packet)
            return True
        if state == CLOSED:
            return True
        queue = session.queue
        if not force and len(queue) >= self._limit:
            return False
        text = packet.data
        queue.append(text if isinstance(text, str) else text.decode())
        session.wake_poller()
        return True

    def notify_drained(self, sid: str, callback: Callable[[], None]) -> None:
        """Call `callback` once the session's backlog drained (never if it closes first):
        its carrier's buffer on WebSocket, its queue taken by a GET on polling."""
        session = self._sessions.get(sid)
        if session is None or session.state == CLOSED:
            return
        carrier = session.carrier
        if session.state == WEBSOCKET and carrier is not None:
            carrier.notify_drained(callback)
            return
        if session.drained is None:
            session.drained = [callback]
        else:
            session.drained.append(callback)

    def writes_direct(self, sid: str) -> bool:
        session = self._sessions.get(sid)
        return session is not None and session.state == WEBSOCKET

    def send(self, sid: str, event: str, payload: Any) -> None:
        """One message to one socket, whatever its backlog (control messages)."""
        self.push(sid, self.encode(event, payload), force=True)
