"""The Engine.IO codec: packets, long-polling payloads, and the same junk as internals.py.

The python-engineio path (`internals.engineio_junk` in front of python-engineio's own
decoder) is the reference: a message is junk for one engine exactly when it is for the
other, with the same wording, and otherwise carries the same data.
"""

from __future__ import annotations

import pytest
from engineio import packet as eio_packet

from roomcast.engine import eio_codec
from roomcast.engine.eio_codec import NOT_TEXT, EioJunk, EioPacket
from roomcast.transport.internals import engineio_junk

MESSAGES = [
    "",
    "0",
    "0{}",
    "6",
    "7",
    "x",
    "1",
    "2",
    "2probe",
    "3",
    "3probe",
    "4",
    "40",
    '42["echo",1]',
    '4"40"',
    '4{"a":1}',
    "4[1,2]",
    "4 5",
    "4hello",
    "4" + "[" * 5000,
    "5",
    "2" + "{" * 3000,
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: repr(m)[:30])
def test_junk_and_data_match_python_engineio(message: str) -> None:
    ours = eio_codec.decode_message(message)
    reason = engineio_junk(message)
    if reason is not None:
        assert ours == EioJunk(reason)
        return
    assert isinstance(ours, EioPacket)
    theirs = eio_packet.Packet(encoded_packet=message)
    assert int(ours.kind) == theirs.packet_type
    if isinstance(theirs.data, str):
        assert ours.data == theirs.data
    else:  # python-engineio hands up a decoded JSON value no Socket.IO packet can be
        assert ours.data is NOT_TEXT


def test_binary_message_is_a_message_of_bytes() -> None:
    assert eio_codec.decode_message(b"\x01\x02") == EioPacket("4", b"\x01\x02")


def test_payload_round_trip_with_binary() -> None:
    packets: list[str | bytes] = ["0{}", '42["a",1]', b"\x00\xffbin", "6", "2"]
    body = eio_codec.encode_payload(packets)
    assert body == '0{}\x1e42["a",1]\x1ebAP9iaW4=\x1e6\x1e2'
    assert eio_codec.decode_payload('42["a",1]\x1ebAP9iaW4=\x1e3') == [
        EioPacket("4", '2["a",1]'),
        EioPacket("4", b"\x00\xffbin"),
        EioPacket("3", ""),
    ]


def test_payload_matches_python_engineio_encoding() -> None:
    from engineio import payload

    texts = ['42["a",1]', "2", "3probe"]
    theirs = payload.Payload(packets=[eio_packet.Packet(encoded_packet=t) for t in texts]).encode()
    assert eio_codec.encode_payload(texts) == theirs


def test_bad_base64_and_empty_parts_are_junk() -> None:
    assert eio_codec.decode_payload("b!!!\x1e") == [
        EioJunk(eio_codec.UNDECODABLE),
        EioJunk(eio_codec.NOT_A_CLIENT_PACKET),
    ]


def test_encode() -> None:
    assert eio_codec.encode(eio_codec.PING) == "2"
    assert eio_codec.encode(eio_codec.MESSAGE, '2["a"]') == '42["a"]'
