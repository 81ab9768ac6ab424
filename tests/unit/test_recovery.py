"""Recovery decisions: replay from history, or tell the client to reload."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from roomcast.domain import HistoryPage, StreamPosition
from roomcast.history.recovery import Recovery, decide, is_recoverable


def at(seq: int, epoch: str = "e1") -> StreamPosition:
    return StreamPosition(epoch, seq)


def test_no_since_is_recovered_with_nothing_to_replay() -> None:
    assert decide(None, "e1", oldest_seq=5, head=10) == Recovery(True, None)


def test_epoch_mismatch_is_not_recovered() -> None:
    assert decide(at(3, "e0"), "e1", oldest_seq=1, head=10) == Recovery(False, None)


def test_since_ahead_of_head_is_not_recovered() -> None:
    # A seq this epoch never handed out: the client saw another history.
    assert decide(at(11), "e1", oldest_seq=1, head=10) == Recovery(False, None)


def test_since_at_head_is_up_to_date() -> None:
    assert decide(at(10), "e1", oldest_seq=1, head=10) == Recovery(True, None)


def test_since_at_head_with_history_trimmed_is_still_up_to_date() -> None:
    assert decide(at(10), "e1", oldest_seq=11, head=10) == Recovery(True, None)


def test_normal_replay() -> None:
    assert decide(at(7), "e1", oldest_seq=1, head=10) == Recovery(True, 8)


def test_replay_from_exactly_the_oldest_stored_event() -> None:
    assert decide(at(4), "e1", oldest_seq=5, head=10) == Recovery(True, 5)


def test_since_older_than_history_is_not_recovered() -> None:
    assert decide(at(3), "e1", oldest_seq=5, head=10) == Recovery(False, None)


def test_empty_room_from_zero() -> None:
    assert decide(at(0), "e1", oldest_seq=1, head=0) == Recovery(True, None)


def test_all_history_expired_but_head_kept() -> None:
    # History is empty (oldest = head + 1): any position behind head is lost.
    assert decide(at(9), "e1", oldest_seq=11, head=10) == Recovery(False, None)


@given(
    data=st.data(),
    head=st.integers(min_value=0, max_value=200),
    same_epoch=st.booleans(),
)
def test_decision_matches_what_history_holds(
    data: st.DataObject, head: int, same_epoch: bool
) -> None:
    oldest = data.draw(st.integers(min_value=1, max_value=head + 1), label="oldest")
    since = data.draw(st.integers(min_value=0, max_value=head + 10), label="since")
    epoch = "e1" if same_epoch else "e2"
    result = decide(StreamPosition(epoch, since), "e1", oldest_seq=oldest, head=head)

    needed = set(range(since + 1, head + 1))  # what the client has not seen
    stored = set(range(oldest, head + 1))
    recoverable = same_epoch and since <= head and needed <= stored
    assert result.recovered is recoverable
    if recoverable and needed:
        assert result.replay_from == since + 1
        assert oldest <= result.replay_from <= head
    else:
        assert result.replay_from is None


def page(epoch: str = "e1", head: int = 10, complete: bool = True) -> HistoryPage:
    return HistoryPage(epoch=epoch, head=head, events=(), complete=complete)


@pytest.mark.parametrize(
    ("since", "history", "expected"),
    [
        (at(5), page(), True),
        (at(10), page(), True),
        (at(0), page(), True),
        (at(11), page(), False),
        (at(5, "e0"), page(), False),
        (at(5), page(complete=False), False),
    ],
)
def test_is_recoverable(since: StreamPosition, history: HistoryPage, expected: bool) -> None:
    assert is_recoverable(since, history) is expected


@given(
    since=st.integers(min_value=0, max_value=50),
    head=st.integers(min_value=0, max_value=50),
    complete=st.booleans(),
    same_epoch=st.booleans(),
)
def test_is_recoverable_needs_epoch_position_and_completeness(
    since: int, head: int, complete: bool, same_epoch: bool
) -> None:
    result = is_recoverable(at(since, "e1" if same_epoch else "e2"), page("e1", head, complete))
    assert result is (same_epoch and since <= head and complete)
