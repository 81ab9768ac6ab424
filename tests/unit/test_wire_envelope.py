"""An envelope read from Redis as text is framed as it is, not decoded and encoded again.

`Publication.from_wire` keeps the text; the outlets' `encode_json` must give the
packet `encode` gives for the decoded envelope, under both engines, so a client sees
the same event whichever road it took.
"""

from __future__ import annotations

import json

from roomcast.domain import Publication
from roomcast.engine.outlet import NativeOutlet
from roomcast.engine.session import Flusher
from roomcast.transport.internals import encode_event, encode_event_json

ENVELOPE = {
    "id": "e1",
    "type": "annotation_update",
    "room": "annotation_s1",
    "epoch": "7f",
    "seq": 42,
    "ts": 1796227623780,
    "actor": {"user_id": "u1", "name": "Zoë \u2603"},
    "client_event_id": None,
    "data": {"boxes": [[1, 2.5, 3, 4]], "label": 'line\nbreak "quoted"', "ok": True},
}
TEXT = json.dumps(ENVELOPE, separators=(",", ":"))


def test_from_wire_keeps_the_text_and_reads_the_same_publication() -> None:
    publication = Publication.from_wire(TEXT)
    assert publication.wire == TEXT
    assert publication == Publication.from_envelope(ENVELOPE)  # the text is not identity
    assert publication.envelope() == ENVELOPE


def test_the_native_frame_of_the_text_is_the_frame_of_the_envelope() -> None:
    outlet = NativeOutlet(Flusher(), queue_limit=10, buffer_limit=1000)
    from_text = outlet.encode_json("annotation_update", TEXT)
    from_dict = outlet.encode("annotation_update", ENVELOPE)
    assert from_text.data[:2] == from_dict.data[:2] == "42"
    assert json.loads(from_text.data[2:]) == json.loads(from_dict.data[2:])
    assert json.loads(from_text.data[2:]) == ["annotation_update", ENVELOPE]


def test_the_python_socketio_packet_of_the_text_is_the_packet_of_the_envelope() -> None:
    packet_text, text = encode_event_json("annotation_update", TEXT)
    _, expected = encode_event("annotation_update", ENVELOPE)
    assert text[:2] == expected[:2] == "42"
    assert json.loads(text[2:]) == json.loads(expected[2:])
    assert packet_text.encode() == text  # the queue path sends what the frame holds


def test_an_event_name_is_escaped_as_json() -> None:
    outlet = NativeOutlet(Flusher(), queue_limit=10, buffer_limit=1000)
    frame = outlet.encode_json('we"ird', "{}")
    assert json.loads(frame.data[2:]) == ['we"ird', {}]
