"""The client frame parser: every close code it can ask for, and any read boundary."""

from __future__ import annotations

import itertools
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roomcast.engine.frames import (
    INVALID_DATA,
    MESSAGE_TOO_BIG,
    NO_STATUS,
    PROTOCOL_ERROR,
    Close,
    Event,
    Failure,
    FrameParser,
    Ping,
    Pong,
    close_frame,
    is_valid_close_code,
    ping_frame,
    pong_frame,
    unmask,
)

TEXT, BINARY, CONT, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


def client_frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    masked: bool = True,
    length_form: int | None = None,
) -> bytes:
    """A client frame as a client library would write it (length_form forces 126/127)."""
    size = len(payload)
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    mask_bit = 0x80 if masked else 0
    form = length_form or (size if size < 126 else 126 if size < 1 << 16 else 127)
    if form == 126:
        head = bytes((first, mask_bit | 126)) + size.to_bytes(2, "big")
    elif form == 127:
        head = bytes((first, mask_bit | 127)) + size.to_bytes(8, "big")
    else:
        head = bytes((first, mask_bit | size))
    if not masked:
        return head + payload
    mask = os.urandom(4)
    # XOR by hand here, so the parser's own unmask is not what checks itself.
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def feed_all(parser: FrameParser, data: bytes, step: int | None = None) -> list[Event]:
    if step is None:
        return parser.feed(data)
    events: list[Event] = []
    for i in range(0, len(data), step):
        events += parser.feed(data[i : i + step])
    return events


def test_unmask_is_xor_with_the_repeated_mask() -> None:
    mask = b"\x01\x02\x03\x04"
    for size in (0, 1, 3, 4, 5, 100, 1001):
        payload = os.urandom(size)
        expected = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        assert unmask(payload, mask) == expected


def test_text_and_binary_messages() -> None:
    parser = FrameParser(1 << 20)
    data = client_frame(TEXT, '42["é"]'.encode()) + client_frame(BINARY, b"\x00\xff")
    assert parser.feed(data) == ['42["é"]', b"\x00\xff"]
    assert parser.buffered == 0


def test_an_empty_text_message() -> None:
    assert FrameParser(10).feed(client_frame(TEXT, b"")) == [""]


@pytest.mark.parametrize("size", [125, 126, 65535, 65536, 200_000])
def test_payload_length_forms(size: int) -> None:
    payload = os.urandom(size)
    assert FrameParser(1 << 20).feed(client_frame(BINARY, payload)) == [payload]


def test_a_small_payload_in_a_long_length_form_is_taken() -> None:
    for form in (126, 127):
        assert FrameParser(100).feed(client_frame(TEXT, b"hi", length_form=form)) == ["hi"]


def test_a_64_bit_length_with_its_top_bit_set_is_a_protocol_error() -> None:
    frame = bytes((0x82, 0x80 | 127)) + (1 << 63).to_bytes(8, "big") + b"mask"
    assert FrameParser(1 << 20).feed(frame) == [Failure(PROTOCOL_ERROR, "invalid payload length")]


@pytest.mark.parametrize("step", [1, 2, 3, 7, 64])
def test_frames_split_across_reads_at_any_byte(step: int) -> None:
    messages: list[str | bytes] = ["hello", b"\x01" * 300, "x" * 70_000, "", "é" * 10]
    data = b"".join(
        client_frame(
            TEXT if isinstance(m, str) else BINARY, m.encode() if isinstance(m, str) else m
        )
        for m in messages
    )
    data += client_frame(PING, b"p") + client_frame(CLOSE, (1000).to_bytes(2, "big") + b"bye")
    parser = FrameParser(1 << 20)
    events = feed_all(parser, data, step)
    assert events == [*messages, Ping(b"p"), Close(1000, "bye")]


def test_a_multibyte_character_split_between_fragments() -> None:
    encoded = "aé".encode()
    data = client_frame(TEXT, encoded[:2], fin=False) + client_frame(CONT, encoded[2:])
    assert FrameParser(100).feed(data) == ["aé"]


def test_fragments_are_reassembled_with_control_frames_between() -> None:
    data = (
        client_frame(TEXT, b"he", fin=False)
        + client_frame(PING, b"1")
        + client_frame(CONT, b"ll", fin=False)
        + client_frame(PONG, b"2")
        + client_frame(CONT, b"o")
        + client_frame(BINARY, b"a", fin=False)
        + client_frame(CONT, b"b")
    )
    for step in (None, 1):
        assert feed_all(FrameParser(100), data, step) == [Ping(b"1"), Pong(b"2"), "hello", b"ab"]


def test_nothing_is_buffered_once_a_read_is_used_up() -> None:
    parser = FrameParser(100)
    frame = client_frame(TEXT, b"abc")
    assert parser.feed(frame[:3]) == []
    assert parser.buffered == 3
    assert parser.feed(frame[3:]) == ["abc"]
    assert parser.buffered == 0 and parser._buffer is None
    assert parser.feed(client_frame(TEXT, b"a", fin=False)) == []
    assert parser.buffered == 1
    assert parser.feed(client_frame(CONT, b"b")) == ["ab"]
    assert parser._fragments is None and parser.buffered == 0


# Failures -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (client_frame(TEXT, b"hi", masked=False), PROTOCOL_ERROR),
        (client_frame(TEXT, b"hi", rsv=4), PROTOCOL_ERROR),  # RSV1: no deflate negotiated
        (client_frame(TEXT, b"hi", rsv=2), PROTOCOL_ERROR),
        (client_frame(TEXT, b"hi", rsv=1), PROTOCOL_ERROR),
        (client_frame(0x3, b"hi"), PROTOCOL_ERROR),  # reserved data opcode
        (client_frame(0xB, b"hi"), PROTOCOL_ERROR),  # reserved control opcode
        (client_frame(PING, b"x" * 126), PROTOCOL_ERROR),  # control frame too long
        (client_frame(PING, b"x", fin=False), PROTOCOL_ERROR),  # fragmented control frame
        (client_frame(CONT, b"x"), PROTOCOL_ERROR),  # continuation with nothing to continue
        (client_frame(TEXT, b"a", fin=False) + client_frame(TEXT, b"b"), PROTOCOL_ERROR),
        (client_frame(TEXT, b"\xff\xfe"), INVALID_DATA),
        (client_frame(TEXT, b"\xc3", fin=False) + client_frame(CONT, b"("), INVALID_DATA),
        (client_frame(BINARY, b"x" * 101), MESSAGE_TOO_BIG),
        (client_frame(TEXT, b"x" * 60, fin=False) + client_frame(CONT, b"x" * 41), MESSAGE_TOO_BIG),
        (client_frame(CLOSE, b"\x03"), PROTOCOL_ERROR),  # a 1-byte close payload
        (client_frame(CLOSE, (999).to_bytes(2, "big")), PROTOCOL_ERROR),
        (client_frame(CLOSE, (1005).to_bytes(2, "big")), PROTOCOL_ERROR),
        (client_frame(CLOSE, (1006).to_bytes(2, "big")), PROTOCOL_ERROR),
        (client_frame(CLOSE, (1015).to_bytes(2, "big")), PROTOCOL_ERROR),
        (client_frame(CLOSE, (2000).to_bytes(2, "big")), PROTOCOL_ERROR),
        (client_frame(CLOSE, (5000).to_bytes(2, "big")), PROTOCOL_ERROR),
        (client_frame(CLOSE, (1000).to_bytes(2, "big") + b"\xff"), INVALID_DATA),
    ],
    ids=[
        "unmasked",
        "rsv1",
        "rsv2",
        "rsv3",
        "opcode-3",
        "opcode-B",
        "long-ping",
        "fragmented-ping",
        "stray-continuation",
        "message-inside-message",
        "bad-utf8",
        "bad-utf8-fragmented",
        "too-big",
        "too-big-fragmented",
        "close-1-byte",
        "close-999",
        "close-1005",
        "close-1006",
        "close-1015",
        "close-2000",
        "close-5000",
        "close-bad-reason",
    ],
)
def test_protocol_violations_fail_with_their_close_code(data: bytes, code: int) -> None:
    for step in (None, 1):
        parser = FrameParser(100)
        events = feed_all(parser, data, step)
        assert len(events) == 1 and isinstance(events[0], Failure), events
        assert events[0].code == code
        assert parser.feed(client_frame(TEXT, b"more")) == []  # nothing after a failure
        assert parser.buffered == 0


def test_an_oversized_frame_fails_on_its_header_before_its_payload_arrives() -> None:
    parser = FrameParser(1000)
    frame = client_frame(BINARY, b"x" * 5000)
    assert parser.feed(frame[:10]) == [Failure(MESSAGE_TOO_BIG, "message too big")]


def test_messages_before_a_failure_are_returned_with_it() -> None:
    data = client_frame(TEXT, b"ok") + client_frame(TEXT, b"no", masked=False)
    events = FrameParser(100).feed(data)
    assert events[0] == "ok" and isinstance(events[1], Failure)


# Close frames ---------------------------------------------------------------------------


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1011, 1012, 1014, 3000, 4999])
def test_valid_close_codes(code: int) -> None:
    assert is_valid_close_code(code)
    frame = client_frame(CLOSE, code.to_bytes(2, "big") + "dé".encode())
    assert FrameParser(100).feed(frame) == [Close(code, "dé")]


def test_a_close_frame_without_a_payload_has_no_status() -> None:
    parser = FrameParser(100)
    assert parser.feed(client_frame(CLOSE) + client_frame(TEXT, b"late")) == [Close(NO_STATUS, "")]
    assert parser.feed(client_frame(TEXT, b"later")) == []


# Server frames --------------------------------------------------------------------------


def test_server_frames() -> None:
    assert close_frame(1000) == b"\x88\x02\x03\xe8"
    assert close_frame(1012, "server restart") == b"\x88\x10\x03\xf4server restart"
    assert close_frame(NO_STATUS) == b"\x88\x00"
    long_reason = close_frame(1000, "é" * 100)
    assert len(long_reason) == 2 + 124 and long_reason[4:].decode() == "é" * 61
    assert pong_frame(b"abc") == b"\x8a\x03abc"
    assert ping_frame(b"") == b"\x89\x00"


# Any messages, any fragmentation, any read boundaries ----------------------------------

_message = st.one_of(st.text(max_size=300), st.binary(max_size=300))


@given(
    messages=st.lists(st.tuples(_message, st.integers(1, 4)), max_size=8),
    cuts=st.lists(st.integers(0, 5000), max_size=12),
)
@settings(max_examples=200, deadline=None)
def test_any_messages_in_any_fragments_cut_anywhere(
    messages: list[tuple[str | bytes, int]], cuts: list[int]
) -> None:
    data = b""
    for message, pieces in messages:
        payload = message.encode() if isinstance(message, str) else message
        step = max(1, -(-len(payload) // pieces))
        chunks = [payload[i : i + step] for i in range(0, len(payload), step)] or [b""]
        for i, chunk in enumerate(chunks):
            opcode = (TEXT if isinstance(message, str) else BINARY) if i == 0 else CONT
            data += client_frame(opcode, chunk, fin=i == len(chunks) - 1)
            if i == 0 and len(chunks) > 1:
                data += client_frame(PING, b"between")
    bounds = sorted({min(cut, len(data)) for cut in cuts} | {0, len(data)})
    parser = FrameParser(1 << 20)
    events: list[Event] = []
    for start, stop in itertools.pairwise(bounds):
        events += parser.feed(data[start:stop])
    assert [e for e in events if not isinstance(e, Ping)] == [m for m, _ in messages]
    assert parser.buffered == 0
