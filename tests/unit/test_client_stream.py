"""The client's ordering state machine (pure)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from roomcast.client import Decision, RoomStream


def env(seq: int, epoch: str = "e1", **extra: object) -> dict[str, object]:
    return {"room": "r", "epoch": epoch, "seq": seq, **extra}


def test_in_order_events_are_delivered_and_duplicates_dropped() -> None:
    stream = RoomStream()
    assert stream.offer(env(1)) is Decision.DELIVER
    assert stream.offer(env(2)) is Decision.DELIVER
    assert stream.offer(env(2)) is Decision.DUPLICATE
    assert stream.offer(env(1)) is Decision.DUPLICATE
    assert stream.position == {"epoch": "e1", "seq": 2}


def test_a_gap_is_not_delivered_and_keeps_the_position() -> None:
    stream = RoomStream("e1", 3)
    assert stream.offer(env(5)) is Decision.GAP
    assert stream.position == {"epoch": "e1", "seq": 3}
    assert stream.offer(env(4)) is Decision.DELIVER
    assert stream.offer(env(5)) is Decision.DELIVER


def test_skipped_marks_a_jump_as_intended() -> None:
    stream = RoomStream("e1", 3)
    assert stream.offer(env(9, skipped=5)) is Decision.DELIVER
    assert stream.offer(env(12, skipped=1)) is Decision.GAP


def test_a_skipped_notice_moves_past_the_skipped_events() -> None:
    stream = RoomStream("e1", 8)
    assert stream.skipped({"room": "r", "skipped": 22, "seq": 30}) is Decision.DELIVER
    assert stream.position == {"epoch": "e1", "seq": 30}
    assert stream.offer(env(31)) is Decision.DELIVER
    assert stream.skipped({"room": "r", "skipped": 2, "seq": 31}) is Decision.DUPLICATE


def test_a_skipped_notice_that_does_not_meet_the_position_is_a_gap() -> None:
    stream = RoomStream("e1", 8)
    assert stream.skipped({"room": "r", "skipped": 3, "seq": 30}) is Decision.GAP
    assert stream.position == {"epoch": "e1", "seq": 8}
    assert RoomStream().skipped({"room": "r", "skipped": 1, "seq": 2}) is Decision.DUPLICATE


def test_new_epoch_delivers_and_asks_for_resync() -> None:
    stream = RoomStream("e1", 40)
    assert stream.offer(env(1, epoch="e2")) is Decision.RESYNC
    assert stream.position == {"epoch": "e2", "seq": 1}


def test_join_acks() -> None:
    fresh = RoomStream()
    assert fresh.joined({"epoch": "e1", "seq": 7, "recovered": True}) is False
    assert fresh.position == {"epoch": "e1", "seq": 7}
    assert fresh.joined({"epoch": "e1", "seq": 9, "recovered": True}) is False
    assert fresh.position == {"epoch": "e1", "seq": 9}
    assert fresh.joined({"epoch": "e1", "seq": 4, "recovered": True}) is False
    assert fresh.position == {"epoch": "e1", "seq": 9}  # never backwards
    assert fresh.joined({"epoch": "e2", "seq": 3, "recovered": False}) is True
    assert fresh.position == {"epoch": "e2", "seq": 3}


@given(st.lists(st.integers(1, 30), max_size=200))
def test_delivered_sequence_is_always_contiguous(offers: list[int]) -> None:
    stream = RoomStream()
    delivered: list[int] = []
    for seq in [1, *offers]:
        if stream.offer(env(seq)) is Decision.DELIVER:
            delivered.append(seq)
    assert delivered == list(range(1, len(delivered) + 1))
