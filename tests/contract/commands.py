"""Publish commands the broker contract suites share."""

from __future__ import annotations

from typing import Any

from roomcast.brokers.base import PublishCommand
from roomcast.editing.rules import AnnotationWrite

ROOM = "project_c"
DATA = {"total": 1, "completed": 0, "percent": 0.0}


def cmd(room: str = ROOM, **kwargs: Any) -> PublishCommand:
    return PublishCommand(room=room, type="project_progress_update", data=DATA, **kwargs)


def write(action: str, base: int | None = None, user: str = "u1", **kw: Any) -> PublishCommand:
    guard = AnnotationWrite("a1", action, base, user, **kw)
    return PublishCommand(
        room="annotation_c", type="annotation_update", data={"action": action}, guard=guard
    )
