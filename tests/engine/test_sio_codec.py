"""The Socket.IO codec: round trips, attachments, and the same junk as GatewayPacket.

The python-socketio path (transport/packets.py) is the reference for what a client's
packet becomes: every input below is decoded by both and must give the same packet
type, namespace, ack id and data (a Junk compared by reason and error).
"""

from __future__ import annotations

from typing import Any

import pytest

from roomcast.engine import sio_codec
from roomcast.engine.junk import JUNK_EVENT, Junk
from roomcast.engine.sio_codec import (
    ACK,
    BINARY_ACK,
    BINARY_EVENT,
    CONNECT,
    CONNECT_ERROR,
    DISCONNECT,
    EVENT,
    Reassembly,
    SioPacket,
)
from roomcast.transport.internals import encode_event as python_socketio_encode_event
from roomcast.transport.packets import GatewayPacket

DEEP = "[" * 5000 + "]" * 5000

CLIENT_INPUTS = [
    "0",
    '0{"token":"t"}',
    "0{bad json",
    '0/admin,{"token":"t"}',
    "0/admin?x=1,{}",
    "0" + DEEP,
    "1",
    "1/admin,",
    '2["echo",{"a":1}]',
    '21["echo",1]',
    '2123["echo"]',
    '2/admin,5["echo"]',
    '2["connect",{}]',
    '27["disconnect"]',
    '2["message"]',
    '2["*"]',
    f'2["{JUNK_EVENT}"]',
    "2[]",
    "2[1]",
    '2{"a":1}',
    '24"text"',
    "25[bad",
    "2" + DEEP,
    "29" + DEEP,
    "2/x,3" + DEEP,
    "3",
    "31[true]",
    '4{"message":"x"}',
    '47{"message":"x"}',
    '51-["upload",{"_placeholder":true,"num":0}]',
    '599999999-3["upload",{"_placeholder":true,"num":0}]',
    '612-4[{"_placeholder":true,"num":0}]',
    "7",
    "9[1]",
    "x",
    "",
    "2" + "1" * 101 + '["e"]',
    "21-",
    '2["' + "é" * 10 + '"]',
    '2["e",NaN]',
]


def _view(data: Any) -> Any:
    if isinstance(data, list):
        return [_view(item) for item in data]
    if isinstance(data, Junk):
        return ("Junk", data.reason, type(data.error).__name__, data.error.message)
    return data


def _gateway(text: str) -> tuple[int, str, int | None, Any]:
    packet = GatewayPacket(encoded_packet=text)
    return packet.packet_type, packet.namespace or "/", packet.id, _view(packet.data)


def _ours(text: Any) -> tuple[int, str, int | None, Any]:
    packet = sio_codec.decode(text)
    return packet.kind, packet.namespace, packet.id, _view(packet.data)


@pytest.mark.parametrize("text", CLIENT_INPUTS, ids=lambda t: repr(t)[:40])
def test_decode_matches_python_socketio_gateway_packet(text: str) -> None:
    assert _ours(text) == _gateway(text)


def test_binary_message_is_junk_without_ack_like_gateway_packet() -> None:
    assert _ours(b"\x00\x01") == _gateway(b"\x00\x01")  # type: ignore[arg-type]
    assert _ours(b"")[3][1][1] == "binary"


def test_junk_keeps_the_ack_id_of_events_only() -> None:
    assert sio_codec.decode('27["connect"]').id == 7
    assert sio_codec.decode("25[bad").id == 5
    assert sio_codec.decode('599999999-3["upload"]').id == 3
    assert sio_codec.decode('612-4["x"]').id is None
    assert sio_codec.decode('47{"message":"x"}').id is None
    too_deep = sio_codec.decode("29" + DEEP)
    assert too_deep.id == 9 and too_deep.data[1].reason == "too_deep"


def test_a_connect_whose_auth_does_not_parse_connects_without_auth() -> None:
    packet = sio_codec.decode("0{bad json")
    assert (packet.kind, packet.namespace, packet.data) == (CONNECT, "/", None)
    assert sio_codec.decode('0/admin,{"a":1}').namespace == "/admin"


@pytest.mark.parametrize(
    ("event", "payload"),
    [
        ("progress", {"total": 4, "completed": 1, "percent": 25.5}),
        ("text", {"s": 'é 漢字 \u2028 "quoted" \\ </script>', "emoji": "😀"}),
        ("nested", {"a": [1, [2, [3, {"b": None, "c": True, "d": False}]]]}),
        ("numbers", [0, -1, 1.5e300, 2**70, -0.0]),
        ("empty", {}),
        ("null", None),
    ],
)
def test_encode_event_is_byte_identical_to_python_socketio(event: str, payload: Any) -> None:
    _, text = python_socketio_encode_event(event, payload)
    assert "4" + sio_codec.encode_event(event, payload) == text


@pytest.mark.parametrize(
    "packet",
    [
        SioPacket(CONNECT, {"token": "t"}),
        SioPacket(CONNECT, None, namespace="/admin"),
        SioPacket(DISCONNECT),
        SioPacket(EVENT, ["echo", {"a": 1}], id=12),
        SioPacket(EVENT, ["echo"], namespace="/admin", id=0),
        SioPacket(ACK, [None], id=3),
        SioPacket(CONNECT_ERROR, {"message": "Invalid namespace"}, namespace="/x"),
    ],
)
def test_text_packets_round_trip(packet: SioPacket) -> None:
    (text,) = sio_codec.encode(packet)
    assert isinstance(text, str) and sio_codec.parse(text) == packet


def test_binary_event_round_trip_through_reassembly() -> None:
    data = ["upload", {"file": b"\x00\xff" * 10, "parts": [b"a", "text", b""]}]
    packet = SioPacket(BINARY_EVENT, data, namespace="/files", id=4)
    text, *rest = sio_codec.encode(packet)
    attachments = [bytes(a) for a in rest if isinstance(a, bytes)]
    assert text == (
        '53-/files,4["upload",{"file":{"_placeholder":true,"num":0},'
        '"parts":[{"_placeholder":true,"num":1},"text",{"_placeholder":true,"num":2}]}]'
    )
    assert attachments == [b"\x00\xff" * 10, b"a", b""]
    header = sio_codec.parse(str(text))
    assert (header.kind, header.attachments, header.namespace, header.id) == (
        BINARY_EVENT,
        3,
        "/files",
        4,
    )
    reassembly = Reassembly(header)
    assert reassembly.add(attachments[0]) is None
    assert reassembly.add(attachments[1]) is None
    whole = reassembly.add(attachments[2])
    assert whole is not None and whole.data == data
    with pytest.raises(ValueError, match="unexpected"):
        reassembly.add(b"one too many")


def test_binary_ack_matches_python_socketio_encoding() -> None:
    from socketio import packet as sio_packet

    theirs = sio_packet.Packet(sio_packet.ACK, data=[b"xyz", {"k": b"q"}], id=9).encode()
    ours = sio_codec.encode(SioPacket(BINARY_ACK, [b"xyz", {"k": b"q"}], id=9))
    assert ours == theirs


def test_a_placeholder_naming_no_attachment_is_refused() -> None:
    header = sio_codec.parse('51-["e",{"_placeholder":true,"num":5}]')
    with pytest.raises(ValueError, match="placeholder"):
        Reassembly(header).add(b"x")


def test_a_huge_attachment_count_parses_without_holding_anything() -> None:
    header = sio_codec.parse('599999999-["upload",{"_placeholder":true,"num":0}]')
    assert header.attachments == 99_999_999 and header.binary == []
    with pytest.raises(sio_codec.PacketError, match="too many"):
        sio_codec.parse("5" + "9" * 11 + '-["upload"]')
