"""WebSocket frames (RFC 6455) from clients, parsed without I/O; the server's own frames.

A roomcast connection is mostly idle and its messages are small (an Engine.IO packet
of a few dozen bytes), so the parser is built for that case: a read that holds whole
frames is parsed straight from the bytes the transport handed over, and only the tail
of a frame still incomplete is kept (in a bytearray, dropped again once it is used).
Payloads are unmasked with one XOR of two big integers, the fastest way pure Python
has. No extension is ever negotiated, so a frame with an RSV bit set is an error.

`FrameParser.feed` turns bytes into events: a complete message (`str` for text,
`bytes` for binary, fragments reassembled), `Ping`, `Pong`, `Close` (the client's
close frame), or `Failure` (the connection must be failed with that close code:
1002 protocol error, 1007 invalid UTF-8, 1009 message too big). After a `Close` or
a `Failure` the parser takes nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

#: The close code of a close frame without one (RFC 6455 7.1.5); never sent.
NO_STATUS = 1005
PROTOCOL_ERROR = 1002
INVALID_DATA = 1007
MESSAGE_TOO_BIG = 1009

#: The largest control frame payload (RFC 6455 5.5).
MAX_CONTROL_PAYLOAD = 125

# Codes a peer may send in a close frame (RFC 6455 7.4, IANA registry): the reserved
# ones (1004-1006, 1015) and the unassigned ones are a protocol error.
_VALID_CLOSE_CODES = frozenset((1000, 1001, 1002, 1003, *range(1007, 1015)))


@dataclass(frozen=True, slots=True)
class Ping:
    """A ping from the client; the answer is a pong with the same payload."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class Pong:
    """A pong from the client (an answer, or an unsolicited heartbeat)."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class Close:
    """The client's close frame: `code` is NO_STATUS when it carried none."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Failure:
    """The client broke the protocol: fail the connection with this close code."""

    code: int
    reason: str


Event = str | bytes | Ping | Pong | Close | Failure


def is_valid_close_code(code: int) -> bool:
    """Whether a client may send `code` in a close frame."""
    return code in _VALID_CLOSE_CODES or 3000 <= code <= 4999


def unmask(payload: bytes | bytearray, mask: bytes | bytearray) -> bytes:
    """`payload` XOR the 4-byte `mask` repeated (RFC 6455 5.3)."""
    size = len(payload)
    if not size:
        return b""
    # Little-endian: the machine's own order, about 40% faster than big-endian here.
    key = int.from_bytes((mask * ((size + 3) >> 2))[:size], "little")
    return (int.from_bytes(payload, "little") ^ key).to_bytes(size, "little")


class FrameParser:
    """The frames of one client connection, fed as they arrive.

    `max_size` bounds one message (all its fragments): a frame whose header would
    take the message past it fails the connection with 1009 before its payload is
    buffered.
    """

    __slots__ = ("_buffer", "_done", "_fragment_opcode", "_fragments", "_max_size", "_size")

    def __init__(self, max_size: int) -> None:
        self._max_size = max_size
        self._buffer: bytearray | None = None  # the start of an incomplete frame
        self._fragments: list[bytes] | None = None  # the message being reassembled
        self._fragment_opcode = OP_CONTINUATION  # its opcode (text or binary)
        self._size = 0  # its size so far
        self._done = False  # a Close or a Failure was returned

    @property
    def buffered(self) -> int:
        """Bytes held: an incomplete frame and the fragments of an incomplete message."""
        fragments = self._size if self._fragments is not None else 0
        return (len(self._buffer) if self._buffer is not None else 0) + fragments

    def feed(self, data: bytes | bytearray) -> list[Event]:
        """The events completed by `data`, in order (empty when none is complete)."""
        if self._done:
            return []
        buffer = self._buffer
        view: bytes | bytearray
        if buffer is not None:
            buffer += data
            view = buffer
        else:
            view = data
        events: list[Event] = []
        end = len(view)
        pos = 0
        while end - pos >= 2:
            first = view[pos]
            second = view[pos + 1]
            if first & 0x70:
                return self._fail(events, PROTOCOL_ERROR, "reserved bits must be 0")
            if not second & 0x80:
                return self._fail(events, PROTOCOL_ERROR, "a client frame must be masked")
            length = second & 0x7F
            head = pos + 6
            if length > 125:
                if length == 126:
                    head = pos + 8
                    if end < head:
                        break
                    length = int.from_bytes(view[pos + 2 : pos + 4], "big")
                else:
                    head = pos + 14
                    if end < head:
                        break
                    length = int.from_bytes(view[pos + 2 : pos + 10], "big")
                    if length >> 63:
                        return self._fail(events, PROTOCOL_ERROR, "invalid payload length")
            opcode = first & 0x0F
            fin = first & 0x80
            if opcode >= OP_CLOSE:
                if opcode > OP_PONG:
                    return self._fail(events, PROTOCOL_ERROR, f"unknown opcode {opcode}")
                if not fin:
                    return self._fail(events, PROTOCOL_ERROR, "fragmented control frame")
                if length > MAX_CONTROL_PAYLOAD:
                    return self._fail(events, PROTOCOL_ERROR, "control frame too long")
            else:
                if opcode > OP_BINARY:
                    return self._fail(events, PROTOCOL_ERROR, f"unknown opcode {opcode}")
                if (opcode == OP_CONTINUATION) != (self._fragments is not None):
                    reason = (
                        "continuation frame outside a fragmented message"
                        if opcode == OP_CONTINUATION
                        else "new message inside a fragmented message"
                    )
                    return self._fail(events, PROTOCOL_ERROR, reason)
                if self._size + length > self._max_size:
                    return self._fail(events, MESSAGE_TOO_BIG, "message too big")
            stop = head + length
            if stop > end:
                break
            payload = unmask(view[head:stop], view[head - 4 : head])
            pos = stop
            if opcode == OP_TEXT and fin:
                try:
                    events.append(payload.decode())
                except UnicodeDecodeError:
                    return self._fail(events, INVALID_DATA, "invalid UTF-8 in a text message")
            elif opcode == OP_BINARY and fin:
                events.append(payload)
            elif opcode < OP_CLOSE:
                if self._fragments is None:
                    self._fragments = [payload]
                    self._fragment_opcode = opcode
                else:
                    self._fragments.append(payload)
                self._size += length
                if fin:
                    message = b"".join(self._fragments)
                    text = self._fragment_opcode == OP_TEXT
                    self._fragments = None
                    self._size = 0
                    if not text:
                        events.append(message)
                        continue
                    try:
                        events.append(message.decode())
                    except UnicodeDecodeError:
                        return self._fail(events, INVALID_DATA, "invalid UTF-8 in a text message")
            elif opcode == OP_PING:
                events.append(Ping(payload))
            elif opcode == OP_PONG:
                events.append(Pong(payload))
            else:
                return self._close(events, payload)
        if pos == end:
            self._buffer = None
        elif buffer is None:
            self._buffer = bytearray(view[pos:])
        elif pos:
            del buffer[:pos]
        return events

    def _close(self, events: list[Event], payload: bytes) -> list[Event]:
        if not payload:
            return self._end(events, Close(NO_STATUS, ""))
        if len(payload) == 1:
            return self._fail(events, PROTOCOL_ERROR, "close frame with a 1-byte payload")
        code = int.from_bytes(payload[:2], "big")
        if not is_valid_close_code(code):
            return self._fail(events, PROTOCOL_ERROR, f"invalid close code {code}")
        try:
            reason = payload[2:].decode()
        except UnicodeDecodeError:
            return self._fail(events, INVALID_DATA, "invalid UTF-8 in a close reason")
        return self._end(events, Close(code, reason))

    def _fail(self, events: list[Event], code: int, reason: str) -> list[Event]:
        return self._end(events, Failure(code, reason))

    def _end(self, events: list[Event], last: Close | Failure) -> list[Event]:
        events.append(last)
        self._done = True
        self._buffer = None
        self._fragments = None
        return events


# Server frames: unmasked, never fragmented.


def _frame(opcode: int, payload: bytes) -> bytes:
    return bytes((0x80 | opcode, len(payload))) + payload


def close_frame(code: int = 1000, reason: str = "") -> bytes:
    """A close frame with `code` and `reason` (cut to fit 125 bytes); none for NO_STATUS."""
    if code == NO_STATUS:
        return _frame(OP_CLOSE, b"")
    encoded = reason.encode()[: MAX_CONTROL_PAYLOAD - 2]
    while True:  # a cut may split a UTF-8 sequence: drop its remains
        try:
            encoded.decode()
            break
        except UnicodeDecodeError:
            encoded = encoded[:-1]
    return _frame(OP_CLOSE, code.to_bytes(2, "big") + encoded)


def pong_frame(payload: bytes) -> bytes:
    """The pong answering a ping with `payload` (at most 125 bytes, as every ping's)."""
    return _frame(OP_PONG, payload)


def ping_frame(payload: bytes = b"") -> bytes:
    """A ping with `payload` (at most 125 bytes)."""
    return _frame(OP_PING, payload[:MAX_CONTROL_PAYLOAD])
