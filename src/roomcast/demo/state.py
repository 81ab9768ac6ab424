"""The annotation session's current state, folded from the room's history.

The demo has no platform database behind it: the room's history is the record. A page
that opens (or whose history was lost: `recovered: false`) loads this state, then
applies live events whose `data.version` is newer than what it holds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from ..domain import JSON, HistoryPage, Publication

HistoryReader = Callable[[str, int, int], Awaitable[HistoryPage]]
PAGE = 1000


def fold_annotations(events: Iterable[Publication]) -> dict[str, JSON]:
    """annotation_id -> {version, annotation, deleted, actor, status}, from events in order."""
    state: dict[str, JSON] = {}
    for event in events:
        data = event.data
        if not isinstance(data, dict):
            continue
        annotation_id = data.get("annotation_id")
        if not isinstance(annotation_id, str):
            continue
        if event.type == "annotation_update":
            entry = state.setdefault(annotation_id, {"status": None})
            entry["version"] = data.get("version")
            entry["actor"] = event.actor
            if data.get("action") == "delete":
                entry["deleted"] = True
            else:
                entry["deleted"] = False
                entry["annotation"] = data.get("annotation")
                entry["status"] = None  # an edit needs a new review
        elif (
            event.type == "annotation_validated"
            and annotation_id in state
            and state[annotation_id].get("version") == data.get("version")
        ):
            state[annotation_id]["status"] = data.get("status")
    return state


async def load_state(history: HistoryReader, room: str) -> JSON:
    """The room's annotations and the position they reflect.

    `complete` is False when the history no longer reaches back to the first event:
    the state then lacks what was edited before (the demo has nothing older).
    """
    events: list[Publication] = []
    since = 0
    first = await history(room, since, PAGE)
    page = first
    while True:
        events.extend(page.events)
        if not page.events or page.events[-1].seq >= page.head or page.epoch != first.epoch:
            break
        since = page.events[-1].seq
        page = await history(room, since, PAGE)
    return {
        "room": room,
        "epoch": first.epoch,
        "seq": events[-1].seq if events else first.head,
        "complete": first.complete,
        "annotations": fold_annotations(events),
    }
