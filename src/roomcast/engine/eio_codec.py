"""Engine.IO v4 packets, sans-I/O: one WebSocket message, or a long-polling payload.

A packet is its type digit followed by its data: open 0, close 1, ping 2, pong 3,
message 4, upgrade 5, noop 6. A binary WebSocket message is a message packet with
bytes data; on long-polling, packets are joined by the record separator "\\x1e" and a
binary one travels as "b" + base64.

Decoding never raises. What a client may not send (an empty message, an open or noop,
an unknown type) or what does not decode becomes an `EioJunk` whose reason is worded
as internals.engineio_junk words it for the python-engineio path, so both engines
count the same junk the same way. Like python-engineio, data that does not start with
a digit is read as JSON first: a JSON string stands for its value (so `4"40"` is the
message `40`), and any other JSON value is data no Socket.IO packet can be
(`NOT_TEXT`).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

OPEN: Final = "0"
CLOSE: Final = "1"
PING: Final = "2"
PONG: Final = "3"
MESSAGE: Final = "4"
UPGRADE: Final = "5"
NOOP: Final = "6"

#: The types a client sends: close, ping (the upgrade probe), pong, message, upgrade.
CLIENT_TYPES: Final = frozenset("12345")
SEPARATOR: Final = "\x1e"

NOT_A_CLIENT_PACKET: Final = "not an Engine.IO packet a client sends"
TOO_DEEP: Final = "the Engine.IO packet is nested too deeply"
UNDECODABLE: Final = "the Engine.IO packet does not decode"
BAD_BASE64: Final = "the Engine.IO packet does not decode"


class _NotText:
    """The data of a packet whose JSON is not a string (python-engineio hands such a
    value up decoded, and no Socket.IO packet is one)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NOT_TEXT"


NOT_TEXT: Final = _NotText()


@dataclass(frozen=True, slots=True)
class EioPacket:
    """One decoded packet: `kind` is its type digit; `data` the text after it, the bytes
    of a binary message, or NOT_TEXT."""

    kind: str
    data: str | bytes | _NotText = ""


@dataclass(frozen=True, slots=True)
class EioJunk:
    """A message that is no Engine.IO packet a client may send."""

    reason: str


def decode_message(message: str | bytes) -> EioPacket | EioJunk:
    """One WebSocket message as a packet, or junk."""
    if not isinstance(message, str):
        return EioPacket(MESSAGE, bytes(message))
    if not message or message[0] not in CLIENT_TYPES:
        return EioJunk(NOT_A_CLIENT_PACKET)
    kind = message[0]
    if len(message) == 1 or message[1].isnumeric():
        # A Socket.IO packet starts with its type digit: the common case, taken as is.
        return EioPacket(kind, message[1:])
    try:
        value = json.loads(message[1:])
    except RecursionError:
        return EioJunk(TOO_DEEP)
    except ValueError:
        return EioPacket(kind, message[1:])
    except Exception:  # whatever it raises, the client's packet is at fault
        return EioJunk(UNDECODABLE)
    return EioPacket(kind, value if isinstance(value, str) else NOT_TEXT)


def encode(kind: str, data: str = "") -> str:
    """A text packet."""
    return kind + data


def encode_payload(packets: Iterable[str | bytes]) -> str:
    """A long-polling response body: text packets as they are, binary as "b" + base64."""
    return SEPARATOR.join(
        p if isinstance(p, str) else "b" + base64.b64encode(p).decode("ascii") for p in packets
    )


def decode_payload(body: str) -> list[EioPacket | EioJunk]:
    """A long-polling request body: each packet decoded, junk in place of what is not one."""
    decoded: list[EioPacket | EioJunk] = []
    for part in body.split(SEPARATOR):
        if part[:1] == "b":
            try:
                decoded.append(EioPacket(MESSAGE, base64.b64decode(part[1:], validate=True)))
            except (binascii.Error, ValueError):
                decoded.append(EioJunk(BAD_BASE64))
        else:
            decoded.append(decode_message(part))
    return decoded
