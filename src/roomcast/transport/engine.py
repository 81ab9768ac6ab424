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

All of this subclasses or reads python-engineio's and python-socketio's internals,
so the code is in internals.py, whose docstring numbers each assumption (E1-E6,
S1-S5); this module names the pieces the application is built from.
"""

from __future__ import annotations

from .internals import (
    WiredASGIApp,
    WiredEngineIOServer,
    WiredSocketIOServer,
    WireQueue,
    attach_wire,
)

__all__ = ["WireQueue", "WiredASGIApp", "WiredEngineIOServer", "WiredSocketIOServer", "attach_wire"]
