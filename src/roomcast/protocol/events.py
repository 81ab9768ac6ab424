"""Schemas of the built-in event types, and the registry saying where each may go.

The same models validate a client's publish, an HTTP publish and a Python publish,
so an event has one shape whichever way it enters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..domain import JSON
from ..errors import InvalidPayload, InvalidType, invalid_payload

Coord = Annotated[float, Field(allow_inf_nan=False)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Open(BaseModel):
    """Event data that may carry fields a newer platform adds."""

    model_config = ConfigDict(extra="allow")


class BBox(_Model):
    type: Literal["bbox"]
    x: Coord
    y: Coord
    w: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    h: Annotated[float, Field(ge=0, allow_inf_nan=False)]


class Polygon(_Model):
    type: Literal["polygon"]
    points: list[tuple[Coord, Coord]] = Field(min_length=3, max_length=10000)


class Point(_Model):
    type: Literal["point"]
    x: Coord
    y: Coord


Shape = Annotated[BBox | Polygon | Point, Field(discriminator="type")]


class Annotation(_Model):
    label: str = Field(min_length=1, max_length=256)
    shape: Shape
    attributes: dict[str, Any] = Field(default_factory=dict)


class AnnotationUpdate(_Model):
    action: Literal["create", "update", "delete"]
    annotation_id: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")
    base_version: int | None = Field(default=None, ge=0)
    annotation: Annotation | None = None
    # roomcast extension: a lease holder may pass its fencing token so that a write
    # made after its lease ran out is refused rather than applied.
    fencing_token: int | None = Field(default=None, ge=1)
    version: int | None = Field(default=None, description="set by the server")

    @model_validator(mode="after")
    def _annotation_required(self) -> AnnotationUpdate:
        if self.annotation is None and self.action in ("create", "update"):
            raise ValueError("annotation is required for create and update")
        return self


class AnnotationValidated(_Open):
    annotation_id: str = Field(min_length=1, max_length=128)
    version: int = Field(ge=0)
    status: Literal["accepted", "rejected", "needs_review"]
    validator_id: str = Field(min_length=1, max_length=128)
    comment: str | None = Field(default=None, max_length=10000)


class Detection(_Model):
    label: str = Field(min_length=1, max_length=256)
    score: Annotated[float, Field(ge=0, le=1)]
    bbox: tuple[Coord, Coord, Coord, Coord]


class DetectionEvent(_Open):
    frame_id: str | int
    image_id: str | int | None = None
    model: str | None = None
    detections: list[Detection] = Field(max_length=10000)
    latency_ms: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None


class ProjectProgressUpdate(_Open):
    total: int = Field(ge=0)
    completed: int = Field(ge=0)
    validated: int | None = Field(default=None, ge=0)
    percent: Annotated[float, Field(ge=0, le=100)]
    stage: str | None = None


class Notification(_Open):
    title: str = Field(min_length=1, max_length=500)
    body: str | None = Field(default=None, max_length=10000)
    level: Literal["info", "warning", "error"]
    link: str | None = Field(default=None, max_length=2048)


class AnnotationLock(_Model):
    annotation_id: str
    state: Literal["locked", "released"]
    holder: dict[str, Any]
    fencing_token: int
    expires_at: int


class Actor(_Model):
    user_id: str = Field(min_length=1, max_length=128)
    name: str | None = Field(default=None, max_length=256)


@dataclass(frozen=True, slots=True)
class EventType:
    """An event type: its schema, the room kinds it may enter, who may publish it.

    `skippable`: a member whose queue is full skips events of this type (and is told
    how many it missed) instead of being disconnected as a slow consumer: for
    streams where the newest event supersedes the ones before it.
    """

    name: str
    model: type[BaseModel]
    room_kinds: frozenset[str]
    server_only: bool = False
    skippable: bool = False


BUILTIN_TYPES: tuple[EventType, ...] = (
    EventType("annotation_update", AnnotationUpdate, frozenset({"annotation"})),
    EventType("annotation_validated", AnnotationValidated, frozenset({"annotation", "user"})),
    EventType("detection_event", DetectionEvent, frozenset({"detection_stream"}), skippable=True),
    EventType("project_progress_update", ProjectProgressUpdate, frozenset({"project"})),
    EventType("notification", Notification, frozenset({"user", "project"})),
    EventType("annotation_lock", AnnotationLock, frozenset({"annotation"}), server_only=True),
)

# Unsequenced server events and protocol requests: their names may never be
# registered as room event types, or a client could not tell them apart.
RESERVED_NAMES = frozenset(
    {
        "presence",
        "connection_status",
        "rate_limited",
        "join",
        "leave",
        "lock",
        "unlock",
        "connect",
        "disconnect",
        "message",
    }
)


class EventTypes:
    """The event types one application knows; built-ins plus whatever it adds."""

    def __init__(self, types: tuple[EventType, ...] = BUILTIN_TYPES) -> None:
        self._types: dict[str, EventType] = {}
        for event_type in types:
            self.add(event_type)

    def add(self, event_type: EventType) -> None:
        if event_type.name in RESERVED_NAMES:
            raise ValueError(f"{event_type.name!r} is a reserved event name")
        self._types[event_type.name] = event_type

    def get(self, name: str) -> EventType:
        try:
            return self._types[name]
        except KeyError:
            raise InvalidType(f"unknown event type {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def names(self) -> list[str]:
        return sorted(self._types)

    def skippable(self) -> frozenset[str]:
        """The names of the types marked `skippable` (read once by the local fan-out)."""
        return frozenset(name for name, t in self._types.items() if t.skippable)

    def validate(self, name: str, room_kind: str, data: object) -> JSON:
        """Check that `data` fits the type and the type fits the room; return clean data.

        Raises InvalidType for an unknown type, InvalidPayload for a type sent to a
        room kind it does not belong to or data that does not fit its schema.
        """
        return self._model(name, room_kind, data).model_dump(mode="json", exclude_none=True)

    def validate_with_json(self, name: str, room_kind: str, data: object) -> tuple[JSON, str]:
        """`validate`, also returning the clean data as compact JSON text.

        pydantic writes that text several times faster than the json module, and a
        publisher over Redis needs it: it saves encoding the data a second time.
        """
        model = self._model(name, room_kind, data)
        return model.model_dump(mode="json", exclude_none=True), model.model_dump_json(
            exclude_none=True
        )

    def _model(self, name: str, room_kind: str, data: object) -> BaseModel:
        event_type = self.get(name)
        if room_kind not in event_type.room_kinds:
            raise InvalidPayload(
                f"{name} events may not be published to {room_kind} rooms",
                allowed_room_kinds=sorted(event_type.room_kinds),
            )
        if not isinstance(data, dict):
            raise InvalidPayload("data must be a JSON object")
        try:
            return event_type.model.model_validate(data)
        except ValidationError as exc:
            raise invalid_payload(
                exc.errors(), where="data", prefix=f"invalid {name} data: ", limit=3
            ) from None
