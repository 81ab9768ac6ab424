"""LocalHub over a recording Outlet (a pure in-process stand-in for the transport)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roomcast.domain import JSON, Publication
from roomcast.hub.hub import SKIPPED_EVENT, DrainSignal, LocalHub, Outlet

DETECTION_ROOM = "detection_stream_t1"
ROOM = "annotation_s1"


@dataclass(frozen=True)
class Packet:
    number: int
    event: str
    payload: JSON


class RecordingOutlet:
    """Encodes into numbered packets; each sid has a bounded queue (unbounded unless set)."""

    def __init__(self) -> None:
        self.encoded: list[Packet] = []
        self.from_text = 0  # packets encoded from an envelope's text (encode_json)
        self.queues: dict[str, list[Packet]] = {}
        self.capacity: dict[str, int] = {}
        self.waiting: dict[str, list[Callable[[], None]]] = {}  # sid -> drain callbacks

    def encode(self, event: str, payload: JSON) -> Any:
        packet = Packet(len(self.encoded), event, payload)
        self.encoded.append(packet)
        return packet

    def encode_json(self, event: str, payload_json: str) -> Any:
        self.from_text += 1
        return self.encode(event, json.loads(payload_json))

    def push(self, sid: str, packet: Any, *, force: bool = False) -> bool:
        queue = self.queues.setdefault(sid, [])
        if not force and len(queue) >= self.capacity.get(sid, 1_000_000):
            return False
        queue.append(packet)
        return True

    def drain(self, sid: str) -> list[Packet]:
        taken, self.queues[sid] = self.queues.get(sid, []), []
        return taken

    def notify_drained(self, sid: str, callback: Callable[[], None]) -> None:
        self.waiting.setdefault(sid, []).append(callback)

    def drained(self, sid: str) -> None:
        """The socket's backlog drained: what the transport tells its waiters."""
        for callback in self.waiting.pop(sid, []):
            callback()


class Harness:
    def __init__(self) -> None:
        self.outlet = RecordingOutlet()
        outlet: Outlet = self.outlet
        self.slow: list[str] = []
        self.controls: list[JSON] = []
        self.delivered: list[tuple[str, int]] = []
        self.fanout = LocalHub(
            outlet,
            on_slow_consumer=self.slow.append,
            on_control=self.controls.append,
            on_delivered=lambda event, n: self.delivered.append((event, n)),
        )


def pub(seq: int, room: str = ROOM, type_: str = "annotation_update") -> Publication:
    return Publication(
        id=f"id{seq}", type=type_, room=room, epoch="e1", seq=seq, ts=1000 + seq, data={"n": seq}
    )


def detection(seq: int) -> Publication:
    return pub(seq, DETECTION_ROOM, "detection_event")


@pytest.fixture
def h() -> Harness:
    return Harness()


# membership -----------------------------------------------------------------------------


def test_add_and_remove(h: Harness) -> None:
    _, created = h.fanout.add(ROOM, "s1", catching_up=False)
    _, created_again = h.fanout.add(ROOM, "s2", catching_up=False)
    assert (created, created_again) == (True, False)
    assert h.fanout.has_room(ROOM)
    assert h.fanout.member_count(ROOM) == 2
    assert h.fanout.room_count() == 1
    assert h.fanout.remove(ROOM, "s1") is False
    assert h.fanout.remove(ROOM, "s2") is True
    assert h.fanout.has_room(ROOM) is False
    assert h.fanout.member_count(ROOM) == 0
    assert h.fanout.room_count() == 0
    assert h.fanout.remove(ROOM, "s2") is False


def test_adding_twice_keeps_one_membership(h: Harness) -> None:
    first, _ = h.fanout.add(ROOM, "s1", catching_up=False)
    again, created = h.fanout.add(ROOM, "s1", catching_up=True)
    assert again is first
    assert created is False
    assert h.fanout.member_count(ROOM) == 1
    assert again.buffer == []


# delivery -------------------------------------------------------------------------------


def test_encoded_once_for_every_member(h: Harness) -> None:
    for i in range(50):
        h.fanout.add(ROOM, f"s{i}", catching_up=False)
    publication = pub(1)
    h.fanout.on_publication(publication)
    assert len(h.outlet.encoded) == 1
    packet = h.outlet.encoded[0]
    assert packet.event == "annotation_update"
    assert packet.payload == publication.envelope()
    assert all(h.outlet.queues[f"s{i}"] == [packet] for i in range(50))
    assert h.delivered == [("annotation_update", 50)]


def test_an_envelope_read_as_text_is_framed_from_its_text(h: Harness) -> None:
    for i in range(3):
        h.fanout.add(ROOM, f"s{i}", catching_up=False)
    stored = pub(1)
    publication = Publication.from_wire(json.dumps(stored.envelope()))
    h.fanout.on_publication(publication)
    assert h.outlet.from_text == 1
    assert [p.payload for p in h.outlet.encoded] == [stored.envelope()]
    assert all(len(h.outlet.queues[f"s{i}"]) == 1 for i in range(3))


def test_other_rooms_get_nothing(h: Harness) -> None:
    h.fanout.add("project_p1", "s1", catching_up=False)
    h.fanout.on_publication(pub(1))
    assert h.outlet.encoded == []
    assert h.outlet.queues == {}
    assert h.delivered == []


def test_events_delivered_in_order(h: Harness) -> None:
    h.fanout.add(ROOM, "s1", catching_up=False)
    for seq in range(1, 6):
        h.fanout.on_publication(pub(seq))
    assert [p.payload["seq"] for p in h.outlet.drain("s1")] == [1, 2, 3, 4, 5]


# catching up ----------------------------------------------------------------------------


def test_catching_up_member_has_events_parked(h: Harness) -> None:
    h.fanout.add(ROOM, "live", catching_up=False)
    h.fanout.add(ROOM, "late", catching_up=True)
    for seq in (4, 5, 6):
        h.fanout.on_publication(pub(seq))
    assert [p.payload["seq"] for p in h.outlet.drain("live")] == [4, 5, 6]
    assert h.outlet.queues.get("late", []) == []
    assert h.delivered == [("annotation_update", 1)] * 3
    # The replay sent up to seq 5: only 6 is still owed.
    owed = h.fanout.go_live(ROOM, "late", last_seq=5)
    assert [p.seq for p in owed] == [6]
    h.fanout.on_publication(pub(7))
    assert [p.payload["seq"] for p in h.outlet.drain("late")] == [7]


def test_go_live_with_nothing_parked(h: Harness) -> None:
    h.fanout.add(ROOM, "s1", catching_up=True)
    assert h.fanout.go_live(ROOM, "s1", last_seq=0) == []
    h.fanout.on_publication(pub(1))
    assert len(h.outlet.drain("s1")) == 1


def test_go_live_of_a_live_member(h: Harness) -> None:
    h.fanout.add(ROOM, "s1", catching_up=False)
    assert h.fanout.go_live(ROOM, "s1", last_seq=0) == []


@given(
    parked=st.lists(st.integers(min_value=1, max_value=100), unique=True, max_size=30).map(sorted),
    last=st.integers(min_value=0, max_value=110),
)
def test_go_live_returns_exactly_the_parked_events_after_last(parked: list[int], last: int) -> None:
    h = Harness()
    h.fanout.add(ROOM, "s1", catching_up=True)
    for seq in parked:
        h.fanout.on_publication(pub(seq))
    owed = h.fanout.go_live(ROOM, "s1", last_seq=last)
    assert [p.seq for p in owed] == [s for s in parked if s > last]
    assert h.outlet.queues.get("s1", []) == []


# slow consumers ---------------------------------------------------------------------------


def test_full_queue_in_a_detection_room_skips_and_marks(h: Harness) -> None:
    h.fanout.add(DETECTION_ROOM, "slow", catching_up=False)
    h.fanout.add(DETECTION_ROOM, "fast", catching_up=False)
    h.outlet.capacity["slow"] = 1
    for seq in (1, 2, 3, 4):
        h.fanout.on_publication(detection(seq))
    assert [p.payload["seq"] for p in h.outlet.drain("slow")] == [1]
    assert h.slow == []
    h.fanout.on_publication(detection(5))
    (marked,) = h.outlet.drain("slow")
    assert marked.payload["seq"] == 5
    assert marked.payload["skipped"] == 3  # 2, 3 and 4
    # The fast member's copy is the shared, unmarked packet.
    fast = h.outlet.drain("fast")
    assert [p.payload["seq"] for p in fast] == [1, 2, 3, 4, 5]
    assert all("skipped" not in p.payload for p in fast)
    h.fanout.on_publication(detection(6))
    (after,) = h.outlet.drain("slow")
    assert "skipped" not in after.payload
    assert after.payload["seq"] == 6


def test_skip_counts_only_undelivered_events(h: Harness) -> None:
    h.fanout.add(DETECTION_ROOM, "slow", catching_up=False)
    h.outlet.capacity["slow"] = 0
    for seq in range(1, 8):
        h.fanout.on_publication(detection(seq))
    h.outlet.capacity["slow"] = 10
    h.fanout.on_publication(detection(8))
    (marked,) = h.outlet.drain("slow")
    assert (marked.payload["seq"], marked.payload["skipped"]) == (8, 7)
    assert [d for d in h.delivered] == [("detection_event", 0)] * 7 + [("detection_event", 1)]


def test_full_queue_for_another_type_is_a_slow_consumer(h: Harness) -> None:
    h.fanout.add(ROOM, "slow", catching_up=False)
    h.fanout.add(ROOM, "fast", catching_up=False)
    h.outlet.capacity["slow"] = 2
    for seq in (1, 2, 3):
        h.fanout.on_publication(pub(seq))
    assert h.slow == ["slow"]
    assert [p.payload["seq"] for p in h.outlet.drain("slow")] == [1, 2]
    assert [p.payload["seq"] for p in h.outlet.drain("fast")] == [1, 2, 3]
    assert h.delivered[-1] == ("annotation_update", 1)


def test_non_detection_event_in_a_detection_room_is_never_skipped(h: Harness) -> None:
    h.fanout.add(DETECTION_ROOM, "slow", catching_up=False)
    h.outlet.capacity["slow"] = 0
    h.fanout.on_publication(pub(1, DETECTION_ROOM, "notification"))
    assert h.slow == ["slow"]


def test_parked_member_is_not_a_slow_consumer(h: Harness) -> None:
    h.fanout.add(ROOM, "late", catching_up=True)
    h.outlet.capacity["late"] = 0
    for seq in range(1, 4):
        h.fanout.on_publication(pub(seq))
    assert h.slow == []
    assert [p.seq for p in h.fanout.go_live(ROOM, "late", last_seq=0)] == [1, 2, 3]


def skipped_notices(h: Harness, sid: str) -> list[JSON]:
    return [p.payload for p in h.outlet.drain(sid) if p.event == SKIPPED_EVENT]


def test_recording_outlet_is_a_drain_signal(h: Harness) -> None:
    assert isinstance(h.outlet, DrainSignal)


def test_a_skipped_member_that_catches_up_is_told_without_a_further_event(h: Harness) -> None:
    h.fanout.add(DETECTION_ROOM, "slow", catching_up=False)
    h.outlet.capacity["slow"] = 1
    for seq in (1, 2, 3, 4):
        h.fanout.on_publication(detection(seq))
    assert [p.payload["seq"] for p in h.outlet.drain("slow")] == [1]
    assert len(h.outlet.waiting["slow"]) == 1  # one wait, however many were skipped
    h.outlet.drained("slow")  # the client read everything; the stream has stopped
    assert skipped_notices(h, "slow") == [{"room": DETECTION_ROOM, "skipped": 3, "seq": 4}]
    h.fanout.on_publication(detection(5))
    (after,) = h.outlet.drain("slow")
    assert after.payload["seq"] == 5 and "skipped" not in after.payload


def test_no_notice_once_an_event_carried_the_count(h: Harness) -> None:
    h.fanout.add(DETECTION_ROOM, "slow", catching_up=False)
    h.outlet.capacity["slow"] = 0
    h.fanout.on_publication(detection(1))
    h.outlet.capacity["slow"] = 10
    h.fanout.on_publication(detection(2))
    (marked,) = h.outlet.drain("slow")
    assert marked.payload["skipped"] == 1
    h.outlet.drained("slow")
    assert h.outlet.drain("slow") == []


def test_no_notice_after_leaving_or_to_a_new_membership(h: Harness) -> None:
    h.fanout.add(DETECTION_ROOM, "slow", catching_up=False)
    h.outlet.capacity["slow"] = 0
    h.fanout.on_publication(detection(1))
    h.fanout.remove(DETECTION_ROOM, "slow")
    h.fanout.add(DETECTION_ROOM, "slow", catching_up=False)
    h.outlet.capacity["slow"] = 10
    h.outlet.drained("slow")
    assert h.outlet.drain("slow") == []


def test_a_member_still_behind_when_drained_waits_again(h: Harness) -> None:
    h.fanout.add(DETECTION_ROOM, "slow", catching_up=False)
    h.outlet.capacity["slow"] = 0
    for seq in (1, 2):
        h.fanout.on_publication(detection(seq))
    h.outlet.drained("slow")  # drained, but full again before the notice could go
    assert h.outlet.drain("slow") == [] and len(h.outlet.waiting["slow"]) == 1
    h.fanout.on_publication(detection(3))
    h.outlet.capacity["slow"] = 10
    h.outlet.drained("slow")
    assert skipped_notices(h, "slow") == [{"room": DETECTION_ROOM, "skipped": 3, "seq": 3}]


@settings(max_examples=80)
@given(
    steps=st.lists(
        st.tuples(st.integers(min_value=0, max_value=3), st.booleans(), st.booleans()),
        min_size=1,
        max_size=40,
    ),
)
def test_detection_stream_never_has_a_silent_gap(steps: list[tuple[int, bool, bool]]) -> None:
    """Every seq a slow client misses is counted, by its next event or by a notice."""
    h = Harness()
    h.fanout.add(DETECTION_ROOM, "s1", catching_up=False)
    received: list[tuple[str, JSON]] = []
    for seq, (capacity, reads, drains) in enumerate(steps, start=1):
        h.outlet.capacity["s1"] = capacity
        h.fanout.on_publication(detection(seq))
        if reads:
            received.extend((p.event, p.payload) for p in h.outlet.drain("s1"))
        if drains:
            h.outlet.drained("s1")
    h.outlet.capacity["s1"] = 1_000_000
    h.outlet.drained("s1")  # the client caught up with a stopped stream
    received.extend((p.event, p.payload) for p in h.outlet.drain("s1"))
    assert h.slow == []
    previous = 0
    for event, envelope in received:
        assert envelope["seq"] > previous
        # An event's seq follows what it says was skipped; a notice names the last one.
        told = envelope.get("skipped", 0) + (0 if event == SKIPPED_EVENT else 1)
        assert told == envelope["seq"] - previous
        previous = envelope["seq"]
    assert previous == len(steps)  # nothing left untold at the end
    delivered = sum(n for _, n in h.delivered)
    assert delivered == sum(1 for event, _ in received if event != SKIPPED_EVENT)


# transient and control --------------------------------------------------------------------


def test_transient_goes_to_every_member_even_when_full(h: Harness) -> None:
    h.fanout.add(ROOM, "s1", catching_up=False)
    h.fanout.add(ROOM, "s2", catching_up=True)
    h.outlet.capacity["s1"] = 0
    h.fanout.on_transient(ROOM, "presence", {"count": 2})
    assert len(h.outlet.encoded) == 1
    assert h.outlet.queues.get("s1", []) == []  # dropped, not forced
    assert [p.payload for p in h.outlet.drain("s2")] == [{"count": 2}]
    assert h.slow == []
    h.fanout.on_transient("project_none", "presence", {"count": 0})
    assert len(h.outlet.encoded) == 1


def test_control_is_handed_on(h: Harness) -> None:
    h.fanout.on_control({"type": "disconnect_user", "user_id": "u1"})
    assert h.controls == [{"type": "disconnect_user", "user_id": "u1"}]
