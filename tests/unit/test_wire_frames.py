"""The pre-built WebSocket frames are what a WebSocket client library decodes."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from roomcast.transport.wire import text_frame


def _parse(data: bytes) -> Frame:
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        frame: Frame = done.value
        return frame
    raise AssertionError("incomplete frame")


# Each boundary of the three length encodings (7-bit, 16-bit, 64-bit), and non-ASCII
# text, whose length in bytes is not its length in characters.
@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 200_000])
def test_text_frame_round_trips_at_every_length_encoding(size: int) -> None:
    payload = "x" * size
    frame = _parse(text_frame(payload))
    assert frame.opcode is Opcode.TEXT and frame.fin and not frame.rsv1
    assert frame.data.decode() == payload


def test_text_frame_length_counts_utf8_bytes() -> None:
    payload = "é" * 100  # 200 bytes: needs the 16-bit length
    raw = text_frame(payload)
    assert raw[1] == 126 and int.from_bytes(raw[2:4], "big") == 200
    assert _parse(raw).data.decode() == payload
