"""Junk: a client packet that is not a protocol event, and the event it becomes.

The gateway answers every client event with an ack, so whatever arrives, however
malformed, must reach it as an event: both Socket.IO servers roomcast can run
(its own engine, and python-socketio through transport/packets.py) turn what they
cannot decode into the event JUNK_EVENT carrying a `Junk`, keeping the packet's ack id
when it had one.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import RoomcastError

#: The event a junk packet becomes (see `GatewayPacket`); a client's own event of this
#: name is junk too, so only the decoder produces it.
JUNK_EVENT = "roomcast.junk"
#: Names python-socketio gives to its own handlers ("connect" would call the connect
#: handler, "*" the catch-all with shifted arguments), and the junk event.
RESERVED_EVENTS = frozenset({"connect", "disconnect", "message", "*", JUNK_EVENT})


@dataclass(frozen=True, slots=True)
class Junk:
    """Why a client packet is not a protocol event (`reason` is a metric label)."""

    # undecodable | too_deep | reserved_event | arguments | unknown_event | binary | engineio
    reason: str
    error: RoomcastError
