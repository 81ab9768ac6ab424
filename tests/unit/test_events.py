"""Event type schemas and where each type may go (SPEC sections 4 and 5)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from roomcast.errors import InvalidPayload, InvalidType
from roomcast.protocol.events import (
    BUILTIN_TYPES,
    RESERVED_NAMES,
    EventType,
    EventTypes,
    Notification,
)

BBOX = {"type": "bbox", "x": 1, "y": 2, "w": 3, "h": 4}
CREATE = {
    "action": "create",
    "annotation_id": "a1",
    "annotation": {"label": "car", "shape": BBOX, "attributes": {"occluded": True}},
}

VALID: dict[str, tuple[str, dict[str, Any]]] = {
    "annotation_update": ("annotation", CREATE),
    "annotation_validated": (
        "annotation",
        {"annotation_id": "a1", "version": 3, "status": "accepted", "validator_id": "v1"},
    ),
    "detection_event": (
        "detection_stream",
        {
            "frame_id": "f1",
            "image_id": 9,
            "model": "yolo",
            "detections": [{"label": "car", "score": 0.9, "bbox": [1, 2, 3, 4]}],
            "latency_ms": 12.5,
        },
    ),
    "project_progress_update": (
        "project",
        {"total": 100, "completed": 10, "validated": 5, "percent": 10.0, "stage": "labelling"},
    ),
    "notification": ("user", {"title": "Done", "body": "Export ready", "level": "info"}),
    "annotation_lock": (
        "annotation",
        {
            "annotation_id": "a1",
            "state": "locked",
            "holder": {"user_id": "u1", "name": None, "connections": 1},
            "fencing_token": 1,
            "expires_at": 1764150000123,
        },
    ),
}

ROOM_KINDS = {
    "annotation_update": {"annotation"},
    "annotation_validated": {"annotation", "user"},
    "detection_event": {"detection_stream"},
    "project_progress_update": {"project"},
    "notification": {"user", "project"},
    "annotation_lock": {"annotation"},
}
ALL_KINDS = ("project", "annotation", "detection_stream", "user")


@pytest.fixture
def types() -> EventTypes:
    return EventTypes()


def update(**fields: Any) -> dict[str, Any]:
    return {"action": "update", "annotation_id": "a1", "base_version": 1, **fields}


def with_shape(shape: dict[str, Any]) -> dict[str, Any]:
    return update(annotation={"label": "car", "shape": shape})


def refused(types: EventTypes, name: str, kind: str, data: object) -> InvalidPayload:
    with pytest.raises(InvalidPayload) as info:
        types.validate(name, kind, data)
    assert info.value.code == "invalid_payload"
    return info.value


def test_builtin_names(types: EventTypes) -> None:
    assert types.names() == sorted(VALID)
    assert {t.name for t in BUILTIN_TYPES} == set(VALID)
    assert types.get("annotation_lock").server_only is True
    assert types.get("annotation_update").server_only is False


@pytest.mark.parametrize("name", sorted(VALID))
def test_each_builtin_type_accepts_valid_data(types: EventTypes, name: str) -> None:
    kind, data = VALID[name]
    clean = types.validate(name, kind, data)
    for key, value in data.items():
        if value is not None:
            assert key in clean
    if name == "detection_event":
        assert clean["detections"] == [{"label": "car", "score": 0.9, "bbox": [1, 2, 3, 4]}]


@pytest.mark.parametrize("name", sorted(VALID))
@pytest.mark.parametrize("kind", ALL_KINDS)
def test_room_kinds_of_each_type(types: EventTypes, name: str, kind: str) -> None:
    data = VALID[name][1]
    if kind in ROOM_KINDS[name]:
        assert types.validate(name, kind, data)
    else:
        error = refused(types, name, kind, data)
        assert error.details["allowed_room_kinds"] == sorted(ROOM_KINDS[name])


@pytest.mark.parametrize("name", ["bogus", "", "Annotation_update", "presence"])
def test_unknown_type(types: EventTypes, name: str) -> None:
    with pytest.raises(InvalidType) as info:
        types.validate(name, "annotation", {})
    assert info.value.code == "invalid_type"
    assert name not in types


@pytest.mark.parametrize("data", [None, [], "x", 3, [CREATE]])
def test_data_must_be_an_object(types: EventTypes, data: object) -> None:
    refused(types, "annotation_update", "annotation", data)


def test_clean_data_fills_defaults_and_drops_nulls(types: EventTypes) -> None:
    clean = types.validate(
        "annotation_update",
        "annotation",
        update(
            annotation={
                "label": "car",
                "shape": BBOX,
            },
            fencing_token=None,
        ),
    )
    assert clean == {
        "action": "update",
        "annotation_id": "a1",
        "base_version": 1,
        "annotation": {"label": "car", "shape": {**BBOX, "x": 1.0}, "attributes": {}},
    }
    assert "fencing_token" not in clean


# annotation_update --------------------------------------------------------------------


def test_bbox(types: EventTypes) -> None:
    clean = types.validate("annotation_update", "annotation", with_shape(BBOX))
    assert clean["annotation"]["shape"] == {"type": "bbox", "x": 1, "y": 2, "w": 3, "h": 4}


def test_polygon(types: EventTypes) -> None:
    shape = {"type": "polygon", "points": [[0, 0], [1, 0], [1, 1]]}
    clean = types.validate("annotation_update", "annotation", with_shape(shape))
    assert clean["annotation"]["shape"]["points"] == [[0, 0], [1, 0], [1, 1]]


@pytest.mark.parametrize("points", [[], [[0, 0]], [[0, 0], [1, 1]]])
def test_polygon_needs_three_points(types: EventTypes, points: list[list[int]]) -> None:
    refused(
        types, "annotation_update", "annotation", with_shape({"type": "polygon", "points": points})
    )


@pytest.mark.parametrize("points", [[[0, 0], [1], [1, 1]], [[0, 0, 0], [1, 0], [1, 1]]])
def test_polygon_points_are_pairs(types: EventTypes, points: list[list[int]]) -> None:
    refused(
        types, "annotation_update", "annotation", with_shape({"type": "polygon", "points": points})
    )


def test_point(types: EventTypes) -> None:
    clean = types.validate(
        "annotation_update", "annotation", with_shape({"type": "point", "x": 5, "y": 6})
    )
    assert clean["annotation"]["shape"] == {"type": "point", "x": 5, "y": 6}


@pytest.mark.parametrize(
    "shape",
    [
        {"type": "circle", "x": 1, "y": 1, "r": 2},
        {"type": "bbox", "x": 1, "y": 2, "w": 3},
        {"type": "bbox", "x": 1, "y": 2, "w": -3, "h": 4},
        {"type": "bbox", "x": 1, "y": 2, "w": 3, "h": 4, "z": 1},
        {"type": "point", "x": 1},
        {"type": "point", "x": "left", "y": 1},
        {"x": 1, "y": 2},
    ],
)
def test_bad_shapes(types: EventTypes, shape: dict[str, Any]) -> None:
    refused(types, "annotation_update", "annotation", with_shape(shape))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize(
    "make_shape",
    [
        lambda v: {"type": "bbox", "x": v, "y": 2, "w": 3, "h": 4},
        lambda v: {"type": "bbox", "x": 1, "y": 2, "w": v, "h": 4},
        lambda v: {"type": "point", "x": 1, "y": v},
        lambda v: {"type": "polygon", "points": [[0, 0], [v, 0], [1, 1]]},
    ],
)
def test_non_finite_coordinates_refused(types: EventTypes, bad: float, make_shape: Any) -> None:
    refused(types, "annotation_update", "annotation", with_shape(make_shape(bad)))


def test_create_with_explicit_null_annotation_refused(types: EventTypes) -> None:
    data = {"action": "create", "annotation_id": "a1", "annotation": None}
    error = refused(types, "annotation_update", "annotation", data)
    assert "annotation" in error.message


@pytest.mark.parametrize("action", ["create", "update"])
def test_create_or_update_without_annotation_refused(types: EventTypes, action: str) -> None:
    data = {"action": action, "annotation_id": "a1", "base_version": 1}
    refused(types, "annotation_update", "annotation", data)


def test_delete_needs_no_annotation(types: EventTypes) -> None:
    data = {"action": "delete", "annotation_id": "a1", "base_version": 2}
    assert types.validate("annotation_update", "annotation", data) == data


@pytest.mark.parametrize(
    "data",
    [
        {**CREATE, "action": "upsert"},
        {**CREATE, "annotation_id": ""},
        {**CREATE, "annotation_id": "a 1"},
        {**CREATE, "annotation_id": "a" * 129},
        {**CREATE, "base_version": -1},
        {**CREATE, "fencing_token": 0},
        {**CREATE, "surprise": 1},
        {**CREATE, "annotation": {**CREATE["annotation"], "label": ""}},
        {**CREATE, "annotation": {**CREATE["annotation"], "extra": 1}},
        {k: v for k, v in CREATE.items() if k != "action"},
        {k: v for k, v in CREATE.items() if k != "annotation_id"},
    ],
)
def test_annotation_update_refusals(types: EventTypes, data: dict[str, Any]) -> None:
    refused(types, "annotation_update", "annotation", data)


@given(
    coords=st.lists(
        st.tuples(
            st.floats(allow_nan=False, allow_infinity=False),
            st.floats(allow_nan=False, allow_infinity=False),
        ),
        min_size=3,
        max_size=20,
    )
)
def test_any_finite_polygon_of_three_or_more_points_is_accepted(
    coords: list[tuple[float, float]],
) -> None:
    shape = {"type": "polygon", "points": [list(p) for p in coords]}
    clean = EventTypes().validate("annotation_update", "annotation", with_shape(shape))
    assert clean["annotation"]["shape"]["points"] == [list(p) for p in coords]


# detection_event ------------------------------------------------------------------------


def detection(**overrides: Any) -> dict[str, Any]:
    item = {"label": "car", "score": 0.5, "bbox": [1, 2, 3, 4]}
    item.update(overrides)
    return {"frame_id": "f1", "detections": [item]}


@pytest.mark.parametrize("score", [0, 0.0, 0.5, 1, 1.0])
def test_scores_in_range(types: EventTypes, score: float) -> None:
    clean = types.validate("detection_event", "detection_stream", detection(score=score))
    assert clean["detections"][0]["score"] == score


@pytest.mark.parametrize("score", [-0.01, 1.01, 2, -1, math.nan, math.inf, -math.inf, "high"])
def test_scores_out_of_range(types: EventTypes, score: object) -> None:
    refused(types, "detection_event", "detection_stream", detection(score=score))


@pytest.mark.parametrize(
    "bbox", [[1, 2, 3], [1, 2, 3, 4, 5], [1, 2, math.nan, 4], [math.inf, 2, 3, 4], "1,2,3,4"]
)
def test_detection_bbox(types: EventTypes, bbox: object) -> None:
    refused(types, "detection_event", "detection_stream", detection(bbox=bbox))


@given(score=st.floats(allow_nan=True, allow_infinity=True))
def test_score_accepted_exactly_within_zero_to_one(score: float) -> None:
    types = EventTypes()
    if 0 <= score <= 1:
        clean = types.validate("detection_event", "detection_stream", detection(score=score))
        assert clean["detections"][0]["score"] == score
    else:
        with pytest.raises(InvalidPayload):
            types.validate("detection_event", "detection_stream", detection(score=score))


def test_detection_event_keeps_unknown_top_level_fields(types: EventTypes) -> None:
    clean = types.validate("detection_event", "detection_stream", {**detection(), "camera": "c2"})
    assert clean["camera"] == "c2"


@pytest.mark.parametrize(
    "data",
    [
        {"detections": []},
        {"frame_id": "f1"},
        {"frame_id": "f1", "detections": [], "latency_ms": -1},
        {"frame_id": "f1", "detections": [], "latency_ms": math.nan},
        {"frame_id": "f1", "detections": [{"label": "", "score": 0.5, "bbox": [1, 2, 3, 4]}]},
        {"frame_id": "f1", "detections": [{"score": 0.5, "bbox": [1, 2, 3, 4]}]},
    ],
)
def test_detection_event_refusals(types: EventTypes, data: dict[str, Any]) -> None:
    refused(types, "detection_event", "detection_stream", data)


# other types ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        {"annotation_id": "a1", "version": 1, "status": "maybe", "validator_id": "v"},
        {"annotation_id": "a1", "version": -1, "status": "accepted", "validator_id": "v"},
        {"annotation_id": "a1", "status": "accepted", "validator_id": "v"},
        {"annotation_id": "", "version": 1, "status": "accepted", "validator_id": "v"},
    ],
)
def test_annotation_validated_refusals(types: EventTypes, data: dict[str, Any]) -> None:
    refused(types, "annotation_validated", "annotation", data)


@pytest.mark.parametrize(
    "data",
    [
        {"total": 10, "completed": 1, "percent": 101},
        {"total": 10, "completed": 1, "percent": -1},
        {"total": 10, "completed": 1, "percent": math.nan},
        {"total": -1, "completed": 1, "percent": 10},
        {"total": 10, "completed": -1, "percent": 10},
        {"total": 10, "completed": 1},
    ],
)
def test_project_progress_refusals(types: EventTypes, data: dict[str, Any]) -> None:
    refused(types, "project_progress_update", "project", data)


@pytest.mark.parametrize(
    "data",
    [
        {"title": "t", "level": "debug"},
        {"title": "", "level": "info"},
        {"level": "info"},
        {"title": "t"},
    ],
)
def test_notification_refusals(types: EventTypes, data: dict[str, Any]) -> None:
    refused(types, "notification", "project", data)


def test_annotation_lock_state(types: EventTypes) -> None:
    data = {**VALID["annotation_lock"][1], "state": "stolen"}
    refused(types, "annotation_lock", "annotation", data)


def test_error_message_names_the_field(types: EventTypes) -> None:
    error = refused(types, "notification", "user", {"title": "t", "level": "loud"})
    assert "level" in error.message


# registry ------------------------------------------------------------------------------


class Ping(BaseModel):
    n: int


def test_custom_type_can_be_registered(types: EventTypes) -> None:
    types.add(EventType("ping", Ping, frozenset({"project"})))
    assert "ping" in types
    assert types.validate("ping", "project", {"n": "3"}) == {"n": 3}
    refused(types, "ping", "user", {"n": 3})
    refused(types, "ping", "project", {"n": "three"})


@pytest.mark.parametrize("name", sorted(RESERVED_NAMES))
def test_reserved_names_cannot_be_registered(types: EventTypes, name: str) -> None:
    with pytest.raises(ValueError, match="reserved"):
        types.add(EventType(name, Notification, frozenset({"user"})))
    assert name not in types


def test_reserved_names_include_the_unsequenced_events() -> None:
    assert {"presence", "connection_status", "rate_limited", "join", "leave"} <= RESERVED_NAMES


def test_reserved_names_refused_at_construction() -> None:
    with pytest.raises(ValueError):
        EventTypes((EventType("presence", Notification, frozenset({"user"})),))
