"""Socket.IO v5 packets, sans-I/O, and the junk rules a client's packet is read under.

A packet is `<type>[<attachments>-][<namespace>,][<ack id>][<JSON data>]`. `encode`
and `parse` are the plain codec, binary attachments included (placeholders
`{"_placeholder": true, "num": n}`, reassembled by `Reassembly`). `decode` is what the
engine reads a client's message with: it never raises, and it turns into the event
JUNK_EVENT (one `Junk` argument) exactly what transport/packets.py's GatewayPacket
turns into junk, keeping an event's ack id the same way:

- a packet that does not parse: "undecodable" (or "too_deep" when the JSON is nested
  deeper than the recursion limit), keeping the ack id of an EVENT or BINARY_EVENT;
- a BINARY_EVENT or BINARY_ACK: "binary" at once, no attachment is ever waited for (a
  header announcing 99,999,999 of them holds nothing), the event's ack id kept;
- an EVENT that is not an array starting with a string: "undecodable", id kept;
- an event named like a reserved handler: "reserved_event", id kept;
- CONNECT_ERROR or an unknown type from a client: "undecodable", no id;
- a CONNECT whose auth does not parse connects with auth None.

Server events are encoded as python-socketio encodes them (json.dumps with compact
separators, the default ASCII escaping), so a client sees the same bytes from either
engine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final

from ..errors import InvalidPayload, InvalidType
from .junk import JUNK_EVENT, RESERVED_EVENTS, Junk

CONNECT: Final = 0
DISCONNECT: Final = 1
EVENT: Final = 2
ACK: Final = 3
CONNECT_ERROR: Final = 4
BINARY_EVENT: Final = 5
BINARY_ACK: Final = 6

#: The most digits an ack id may have (python-socketio's bound).
MAX_ID_DIGITS: Final = 100
#: The most digits an attachment count may have (python-socketio's bound).
MAX_ATTACHMENT_DIGITS: Final = 10

_dumps = json.JSONEncoder(separators=(",", ":")).encode
_loads = json.loads


@dataclass(slots=True)
class SioPacket:
    """One Socket.IO packet. `attachments` is the count a binary packet announces."""

    kind: int
    data: Any = None
    namespace: str = "/"
    id: int | None = None
    attachments: int = 0
    binary: list[bytes] = field(default_factory=list)


class PacketError(ValueError):
    """A packet that does not parse; `partial` holds what was read before the error."""

    def __init__(self, message: str, partial: SioPacket) -> None:
        super().__init__(message)
        self.partial = partial


# Encoding -----------------------------------------------------------------------------


def encode_event(event: str, payload: Any) -> str:
    """An EVENT on "/" without ack id: `2["event",payload]` (Engine.IO's "4" not included)."""
    return "2" + _dumps([event, payload])


def encode_event_json(event: str, payload_json: str) -> str:
    """`encode_event` of a payload given as JSON text (one JSON value, no binary)."""
    return "2[" + _dumps(event) + "," + payload_json + "]"


def encode(packet: SioPacket) -> list[str | bytes]:
    """The packet's messages: its text, then one binary message per attachment."""
    data = packet.data
    attachments: list[bytes] = []
    text = str(packet.kind)
    if packet.kind in (BINARY_EVENT, BINARY_ACK):
        data = _deconstruct(data, attachments)
        text += f"{len(attachments)}-"
    if packet.namespace and packet.namespace != "/":
        text += packet.namespace + ","
    if packet.id is not None:
        text += str(packet.id)
    if data is not None:
        text += _dumps(data)
    return [text, *attachments]


def _deconstruct(data: Any, attachments: list[bytes]) -> Any:
    if isinstance(data, bytes | bytearray):
        attachments.append(bytes(data))
        return {"_placeholder": True, "num": len(attachments) - 1}
    if isinstance(data, list | tuple):
        return [_deconstruct(item, attachments) for item in data]
    if isinstance(data, dict):
        return {key: _deconstruct(value, attachments) for key, value in data.items()}
    return data


# Decoding -----------------------------------------------------------------------------


def parse(text: str) -> SioPacket:
    """The packet `text` encodes; PacketError (or RecursionError) when it does not parse."""
    packet = SioPacket(EVENT, namespace="")
    if not text:
        raise PacketError("an empty packet", packet)
    first = text[0]
    if not "0" <= first <= "9":
        raise PacketError("no packet type", packet)
    packet.kind = int(first)
    size = len(text)
    pos = 1
    dash = text.find("-", 1)
    if dash > 1 and text[1:dash].isdigit():
        if dash - 1 > MAX_ATTACHMENT_DIGITS:
            raise PacketError("too many attachments", packet)
        try:
            packet.attachments = int(text[1:dash])
        except ValueError:
            raise PacketError("a bad attachment count", packet) from None
        pos = dash + 1
    if pos < size and text[pos] == "/":
        comma = text.find(",", pos)
        end = size if comma == -1 else comma
        namespace = text[pos:end]
        query = namespace.find("?")
        packet.namespace = namespace if query == -1 else namespace[:query]
        pos = end if comma == -1 else comma + 1
    if pos < size and text[pos].isdigit():
        end = pos + 1
        while end < size and end - pos < MAX_ID_DIGITS and text[end].isdigit():
            end += 1
        try:
            packet.id = int(text[pos:end])
        except ValueError:
            raise PacketError("a bad ack id", packet) from None
        pos = end
        if pos < size and text[pos].isdigit():
            raise PacketError("the ack id is too long", packet)
    if pos < size:
        try:
            packet.data = _loads(text[pos:])
        except ValueError:
            raise PacketError("the data is not JSON", packet) from None
    if not packet.namespace:
        packet.namespace = "/"
    return packet


def _junk(packet: SioPacket, reason: str, error: InvalidPayload | InvalidType) -> SioPacket:
    if packet.kind == CONNECT:
        packet.data = None
        packet.namespace = packet.namespace or "/"
        return packet
    if packet.kind not in (EVENT, BINARY_EVENT):
        packet.id = None  # only an event's ack id is one the client waits on
    packet.kind = EVENT
    packet.namespace = packet.namespace or "/"
    packet.attachments = 0
    packet.data = [JUNK_EVENT, Junk(reason, error)]
    return packet


def junk_event(reason: str, message: str) -> SioPacket:
    """The junk event, without ack id, for what never reached the Socket.IO decoder
    (an Engine.IO junk message, a binary message)."""
    return SioPacket(EVENT, [JUNK_EVENT, Junk(reason, InvalidPayload(message))])


def decode(text: Any) -> SioPacket:
    """A client's message as a packet, junk turned into the event JUNK_EVENT. Never raises.

    `text` is what Engine.IO carried: a str, bytes (a binary message) or anything else
    (eio_codec.NOT_TEXT: JSON that was no string).
    """
    if isinstance(text, bytes | bytearray):
        return junk_event("binary", "binary data is not accepted: send JSON")
    if not isinstance(text, str):
        return junk_event("undecodable", "not a packet a client may send")
    if not text:
        return junk_event("undecodable", "an empty packet")
    try:
        packet = parse(text)
    except PacketError as error:
        return _junk(
            error.partial, "undecodable", InvalidPayload("the packet is not valid Socket.IO JSON")
        )
    except RecursionError:
        # The partial packet is lost with the stack; read its header again without data.
        return _junk(_header(text), "too_deep", InvalidPayload("the packet is nested too deeply"))
    kind = packet.kind
    if kind == EVENT:
        data = packet.data
        if not isinstance(data, list) or not data or not isinstance(data[0], str):
            return _junk(
                packet,
                "undecodable",
                InvalidPayload("an event is a JSON array that starts with its name"),
            )
        if data[0] in RESERVED_EVENTS:
            packet.data = [
                JUNK_EVENT,
                Junk("reserved_event", InvalidType(f"unknown event {data[0][:64]!r}")),
            ]
        return packet
    if kind in (BINARY_EVENT, BINARY_ACK):
        return _junk(
            packet, "binary", InvalidPayload("binary attachments are not accepted: send JSON")
        )
    if kind not in (CONNECT, DISCONNECT, ACK):
        # CONNECT_ERROR or an unknown type.
        return _junk(packet, "undecodable", InvalidPayload("not a packet a client may send"))
    return packet


def _header(text: str) -> SioPacket:
    """The type, namespace and ack id of a packet whose data nests too deeply."""
    end = 1
    size = len(text)
    while end < size and text[end] not in '[{"':
        end += 1
    try:
        header = parse(text[:end])
    except PacketError as error:
        header = error.partial
    return header


# Attachments --------------------------------------------------------------------------


class Reassembly:
    """A binary packet waiting for its attachments (the codec's side; the engine itself
    never waits for one, see `decode`)."""

    def __init__(self, packet: SioPacket) -> None:
        if packet.kind not in (BINARY_EVENT, BINARY_ACK):
            raise ValueError("not a binary packet")
        self.packet = packet
        self._attachments: list[bytes] = []

    def add(self, attachment: bytes) -> SioPacket | None:
        """Take one attachment; the whole packet once the last one arrived."""
        if len(self._attachments) >= self.packet.attachments:
            raise ValueError("an unexpected binary attachment")
        self._attachments.append(bytes(attachment))
        if len(self._attachments) < self.packet.attachments:
            return None
        packet = self.packet
        packet.data = _reconstruct(packet.data, self._attachments)
        packet.binary = self._attachments
        return packet


def _reconstruct(data: Any, attachments: list[bytes]) -> Any:
    if isinstance(data, dict):
        if data.get("_placeholder") is True and "num" in data:
            num = data["num"]
            if not isinstance(num, int) or not 0 <= num < len(attachments):
                raise ValueError("a placeholder names no attachment")
            return attachments[num]
        return {key: _reconstruct(value, attachments) for key, value in data.items()}
    if isinstance(data, list):
        return [_reconstruct(item, attachments) for item in data]
    return data
