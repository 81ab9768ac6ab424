"""An application of your own, served by `roomcast serve` itself.

    roomcast serve --app examples.custom_app:factory      # from the repository root

It adds a `review_{id}` room kind (reviewers join by role), a `review_comment`
event type that clients in those rooms may publish, and a join hook that admits the
users assigned to a review. Everything else (settings from ROOMCAST_* and the
command line, JSON logs, the WebSocket protocol, GC tuning, the drain on SIGTERM)
is what `roomcast serve` always does: the factory only builds the application.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from roomcast import (
    EventType,
    EventTypes,
    Identity,
    RoomKind,
    RoomKinds,
    RoomRef,
    Settings,
    create_app,
)

# review id -> users assigned to it; a real application asks its own database.
ASSIGNED: dict[str, frozenset[str]] = {"r1": frozenset({"ann"})}


class ReviewComment(BaseModel):
    """The data of a `review_comment` event."""

    comment_id: str = Field(min_length=1, max_length=64)
    text: str = Field(min_length=1, max_length=2000)


def is_reviewer(identity: Identity, room: RoomRef) -> bool:
    """The kind's own rule: anyone whose token has the `reviewer` role."""
    return "reviewer" in identity.roles


async def join_hook(identity: Identity, room: RoomRef) -> bool:
    """Asked only when no built-in rule and no kind rule admitted the user."""
    return room.kind.name == "review" and identity.user_id in ASSIGNED.get(room.id, frozenset())


def factory(settings: Settings) -> Any:
    """Called by `roomcast serve --app` with the settings it read; returns the app."""
    kinds = RoomKinds()
    kinds.add(RoomKind("review", "review_", rule=is_reviewer))
    types = EventTypes()
    types.add(EventType("review_comment", ReviewComment, frozenset({"review"})))
    publishable = ",".join(sorted(settings.client_publishable | {"review_comment"}))
    settings = settings.model_copy(update={"client_publishable_types": publishable})
    return create_app(settings, room_kinds=kinds, event_types=types, join_hook=join_hook)
