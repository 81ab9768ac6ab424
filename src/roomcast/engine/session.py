"""One Engine.IO session, and the one ordered road of everything sent to its client.

Every message to a client (the open packet, the CONNECT reply, acks, the outlet's
events, pings, the close) goes through `Session.send` or `Session.push_frame`, so what
the client receives is in call order whatever produced it:

- on WebSocket, frames collect in `frames` during one loop iteration and leave with
  one `carrier.write(frames)` at its end; one `loop.call_soon` per iteration serves
  every dirty session (`Flusher`), so a broadcast of N events to a socket is one write;
- on long-polling (and while upgrading), texts wait in `queue` for the next GET.

A session is also the `CarrierSink` of its WebSocket: what arrives goes to the engine
(`SessionEvents`), which owns the protocol; the session only holds state. It has
`__slots__` and no task: an idle WebSocket session is this object, its carrier and
its heartbeat entry.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any, Final, Protocol

from .contract import Carrier, Frame, frame_of

POLLING: Final = 0
UPGRADING: Final = 1  # polling, with a WebSocket probing to take over
WEBSOCKET: Final = 2
CLOSED: Final = 3

# The Socket.IO side of a session.
SIO_NONE: Final = 0  # no CONNECT yet
SIO_CONNECTING: Final = 1  # the handler's connect is running
SIO_CONNECTED: Final = 2
SIO_DONE: Final = 3  # refused, or disconnected (handler.disconnect called or due)


class SessionEvents(Protocol):
    """The engine, as a session's carrier reaches it."""

    def on_ws_message(self, session: Session, data: str | bytes) -> None: ...

    def on_ws_closed(self, session: Session) -> None: ...


class Flusher:
    """Writes the frames of every dirty WebSocket session once per loop iteration."""

    __slots__ = ("_dirty", "_loop")

    def __init__(self) -> None:
        self._dirty: list[Session] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def mark(self, session: Session) -> None:
        """`session` has frames to write (called with its first frame of the iteration)."""
        if not self._dirty:
            loop = self._loop
            if loop is None or loop.is_closed():
                loop = self._loop = asyncio.get_running_loop()
            loop.call_soon(self.flush)
        self._dirty.append(session)

    def flush(self) -> None:
        dirty, self._dirty = self._dirty, []
        for session in dirty:
            session.flush()


class Session:
    """One Engine.IO session (see the module docstring)."""

    __slots__ = (
        "carrier",
        "close_reason",
        "drained",
        "eio_sid",
        "events",
        "flusher",
        "frames",
        "hb_key",
        "hb_ping_key",
        "hb_waiting",
        "inflight",
        "pending",
        "poller",
        "queue",
        "scope",
        "sid",
        "sio_state",
        "state",
        "unconnected_pings",
    )

    def __init__(
        self,
        eio_sid: str,
        state: int,
        events: SessionEvents,
        flusher: Flusher,
        scope: dict[str, Any] | None,
    ) -> None:
        self.eio_sid = eio_sid
        self.state = state
        self.events = events
        self.flusher = flusher
        self.scope = scope  # the handshake request's scope, until the CONNECT
        self.sid: str | None = None  # the Socket.IO sid, once a CONNECT arrived
        self.sio_state = SIO_NONE
        self.carrier: Carrier | None = None
        self.frames: list[Frame] | None = None  # WebSocket frames of this iteration
        self.queue: list[str] = []  # long-polling texts for the next GET
        self.poller: asyncio.Future[None] | None = None  # the GET waiting, if any
        self.drained: list[Callable[[], None]] | None = None  # waiting for an empty queue
        self.close_reason = ""
        self.hb_key: int | None = None  # the heartbeat wheel's bucket holding it
        self.hb_ping_key = 0  # the tick of the last ping
        self.hb_waiting = False  # a ping went out and no pong came yet
        self.unconnected_pings = 0  # pings due while no Socket.IO CONNECT had come
        self.inflight = 0  # event handlers of this session running now
        self.pending: deque[Any] | None = None  # events waiting for one to finish

    # The ordered road --------------------------------------------------------------

    def send(self, text: str) -> None:
        """One Engine.IO text packet to the client, after everything sent before."""
        if self.state == WEBSOCKET:
            self.push_frame(frame_of(text))
        elif self.state != CLOSED:
            self.queue.append(text)
            self.wake_poller()

    def push_frame(self, frame: Frame) -> None:
        """A frame to the WebSocket, written at the end of this loop iteration."""
        frames = self.frames
        if frames is None:
            self.frames = [frame]
            self.flusher.mark(self)
        else:
            frames.append(frame)

    def flush(self) -> None:
        """Write this iteration's frames now (the flusher, or before a close)."""
        frames = self.frames
        if frames is None:
            return
        self.frames = None
        carrier = self.carrier
        if carrier is not None and self.state == WEBSOCKET:
            carrier.write(frames)  # False: closing, and on_closed follows

    def wake_poller(self) -> None:
        poller = self.poller
        if poller is not None and not poller.done():
            poller.set_result(None)

    def take_queue(self) -> list[str]:
        """Everything queued for long-polling (a GET's answer, or the upgrade's flush)."""
        queue, self.queue = self.queue, []
        return queue

    def polled_empty(self) -> None:
        """A GET found nothing queued: the client has read everything sent before, so
        whoever waits for this session's backlog to drain is told now (not when a GET
        takes the queue: its answer is then still on its way to the client)."""
        drained, self.drained = self.drained, None
        if drained:
            for callback in drained:
                callback()

    # CarrierSink ---------------------------------------------------------------------

    def on_message(self, data: str | bytes) -> None:
        self.events.on_ws_message(self, data)

    def on_closed(self) -> None:
        self.events.on_ws_closed(self)
