"""GatewayPacket: Socket.IO packets decoded so that a client's junk never raises.

The gateway answers every client event with an ack; for that, whatever arrives must
reach it as an event. This decoder, installed with python-socketio's public
`serializer` option, turns what python-socketio would reject with a traceback (or
route to its own handlers) into the event JUNK_EVENT carrying a `Junk`.

No roomcast event carries binary data, so binary attachments are refused outright: a
BINARY_EVENT is answered `invalid_payload` like any junk and never waits for its
attachments, and a binary message (which could only be an attachment) is junk too.
python-socketio would otherwise hold every attachment a header announces, without
bound, until the last one arrived. Junk the Engine.IO layer caught below Socket.IO
arrives here as an `EngineIOJunk` message (internals.py, assumption E7).
"""

from __future__ import annotations

from typing import Any

from socketio import packet as sio_packet

from ..engine.junk import JUNK_EVENT, RESERVED_EVENTS, Junk
from ..errors import InvalidPayload, InvalidType

__all__ = ["JUNK_EVENT", "RESERVED_EVENTS", "EngineIOJunk", "GatewayPacket", "Junk"]


class EngineIOJunk(bytes):
    """What stands in for an Engine.IO packet that could not be decoded (internals.py, E7).

    A bytes subclass, so Engine.IO passes it up as a binary MESSAGE untouched; only the
    server makes one (a client's binary message is plain bytes), so it cannot be forged.
    """

    reason: str

    def __new__(cls, reason: str) -> EngineIOJunk:
        junk = super().__new__(cls, b"")
        junk.reason = reason
        return junk


class GatewayPacket(sio_packet.Packet):  # type: ignore[misc]
    """A Socket.IO packet whose decoding never raises at a client's junk.

    python-socketio decodes in its Engine.IO message handler, where an exception (bad
    JSON, a RecursionError of JSON nested ~1000 deep, an event that is not an array)
    becomes a logged traceback and no ack, and it routes events named like its own
    handlers to those handlers. Here such a packet becomes the event JUNK_EVENT with
    a `Junk` argument, keeping its ack id, so the gateway answers it like any other.
    A CONNECT whose auth payload does not parse connects without one (and is refused
    for want of a token). Installed through python-socketio's public `serializer`
    option: encoding is unchanged. A BINARY_EVENT or BINARY_ACK becomes junk at once,
    announcing no attachment, so python-socketio never keeps one pending; a binary
    message becomes junk without an ack id.
    """

    packet_type: int
    data: Any
    id: int | None
    namespace: str | None

    def __init__(self, *args: Any, encoded_packet: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, encoded_packet=encoded_packet, **kwargs)
        if isinstance(encoded_packet, EngineIOJunk):
            self._become_junk("engineio", encoded_packet.reason)
        elif isinstance(encoded_packet, bytes | bytearray):
            self._become_junk("binary", "binary data is not accepted: send JSON")
        elif encoded_packet is not None and len(encoded_packet) == 0:
            # An empty message: python-socketio skips decoding and would take it
            # for an event without data.
            self._become_junk("undecodable", "an empty packet")

    def decode(self, encoded_packet: Any) -> int:
        if isinstance(encoded_packet, bytes | bytearray):
            return 0  # __init__ makes it junk; Socket.IO's decoder would misread it
        try:
            attachments: int = super().decode(encoded_packet)
        except RecursionError:
            return self._become_junk("too_deep", "the packet is nested too deeply")
        except Exception:  # whatever a client sends, the decoder's failure is the client's
            return self._become_junk("undecodable", "the packet is not valid Socket.IO JSON")
        kind = self.packet_type
        if kind in (sio_packet.BINARY_EVENT, sio_packet.BINARY_ACK):
            return self._become_junk("binary", "binary attachments are not accepted: send JSON")
        if kind == sio_packet.EVENT:
            data = self.data
            if not isinstance(data, list) or not data or not isinstance(data[0], str):
                return self._become_junk(
                    "undecodable", "an event is a JSON array that starts with its name"
                )
            if data[0] in RESERVED_EVENTS:
                self.data = [
                    JUNK_EVENT,
                    Junk("reserved_event", InvalidType(f"unknown event {data[0][:64]!r}")),
                ]
        elif kind not in (sio_packet.CONNECT, sio_packet.DISCONNECT, sio_packet.ACK):
            # CONNECT_ERROR or an unknown type: python-socketio raises at them.
            return self._become_junk("undecodable", "not a packet a client may send")
        return attachments

    def _become_junk(self, reason: str, message: str) -> int:
        if self.packet_type == sio_packet.CONNECT:
            self.data = None
            return 0
        if self.packet_type not in (sio_packet.EVENT, sio_packet.BINARY_EVENT):
            self.id = None  # only an event's ack id is one the client waits on
        self.packet_type = sio_packet.EVENT
        self.namespace = self.namespace or "/"  # unset when there was nothing to decode
        self.data = [JUNK_EVENT, Junk(reason, InvalidPayload(message))]
        return 0
