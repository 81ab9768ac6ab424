"""Whether a client's position can be recovered from a room's history.

Recovery is decided here alone. A broker reports only what its history holds
(`HistoryPage.complete`, from `history_reaches`: does it still reach back to the
event after the one asked for?); `is_recoverable` decides on the first page of a
replay, and `decide` is the whole rule stated on the room's bounds. Pure functions.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..domain import HistoryPage, StreamPosition


@dataclass(frozen=True, slots=True)
class Recovery:
    recovered: bool
    replay_from: int | None  # first seq to replay; None: nothing to replay


def decide(since: StreamPosition | None, epoch: str, oldest_seq: int, head: int) -> Recovery:
    """Decide how to bring a client at `since` up to date.

    `oldest_seq` is the first seq still in history (head + 1 when history is empty).
    A position in another epoch, or ahead of the head (it cannot have been handed
    out in this epoch), or older than history reaches, is not recoverable.
    """
    if since is None:
        return Recovery(recovered=True, replay_from=None)
    if since.epoch != epoch or since.seq > head:
        return Recovery(recovered=False, replay_from=None)
    if since.seq == head:
        return Recovery(recovered=True, replay_from=None)
    if since.seq + 1 < oldest_seq:
        return Recovery(recovered=False, replay_from=None)
    return Recovery(recovered=True, replay_from=since.seq + 1)


def history_reaches(since_seq: int, oldest_seq: int) -> bool:
    """Whether history still holds every event after `since_seq` (`oldest_seq` is the
    first seq stored, head + 1 when history is empty)."""
    return since_seq + 1 >= oldest_seq


def is_recoverable(since: StreamPosition, page: HistoryPage) -> bool:
    """Can a client at `since` be brought up to date from this first history page?"""
    return since.epoch == page.epoch and since.seq <= page.head and page.complete
