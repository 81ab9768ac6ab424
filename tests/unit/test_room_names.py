"""Room names and the registry of room kinds (SPEC section 2)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from roomcast.errors import InvalidRoom
from roomcast.rooms.names import BUILTIN_KINDS, RoomKind, RoomKinds

VALID_ID = r"[A-Za-z0-9_-]{1,64}"
ANY_BUILTIN_ROOM = re.compile(r"(project_|annotation_|detection_stream_|user_)" + VALID_ID)

ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
valid_ids = st.text(alphabet=ID_ALPHABET, min_size=1, max_size=64)
builtin_kinds = st.sampled_from(BUILTIN_KINDS)


@pytest.fixture
def kinds() -> RoomKinds:
    return RoomKinds()


@pytest.mark.parametrize(
    ("name", "kind", "room_id"),
    [
        ("project_p7", "project", "p7"),
        ("annotation_42", "annotation", "42"),
        ("detection_stream_t9", "detection_stream", "t9"),
        ("user_u1", "user", "u1"),
        ("project_a_b", "project", "a_b"),
        ("annotation_session_1-x", "annotation", "session_1-x"),
        ("detection_stream_stream_2", "detection_stream", "stream_2"),
        ("user__", "user", "_"),
        ("user_-", "user", "-"),
        ("project_" + "x" * 64, "project", "x" * 64),
    ],
)
def test_parse_valid_names(kinds: RoomKinds, name: str, kind: str, room_id: str) -> None:
    ref = kinds.parse(name)
    assert ref.name == name
    assert ref.kind.name == kind
    assert ref.id == room_id


def test_detection_stream_prefix_is_matched_whole_before_shorter_prefixes() -> None:
    kinds = RoomKinds()
    kinds.add(RoomKind("detection", "detection_"))
    assert kinds.parse("detection_stream_t9").kind.name == "detection_stream"
    assert kinds.parse("detection_stream_t9").id == "t9"
    assert kinds.parse("detection_t9").kind.name == "detection"
    assert kinds.parse("detection_t9").id == "t9"


@pytest.mark.parametrize(
    "name",
    [
        "",
        "project_",
        "project",
        "projects_1",
        "Project_1",
        "annotation_",
        "detection_stream_",
        "detection_1",
        "user_",
        "project_" + "x" * 65,
        "project_a b",
        "project_a.b",
        "project_a/b",
        "project_a:b",
        "project_a\n",
        "project_\u0661",  # an Arabic-Indic digit: not in [0-9]
        "project_é",
        "_project_1",
        " project_1",
        "room_1",
        "KBlFFWOEiRVNY4stAAAB",  # a bare Socket.IO sid
        "/",
    ],
)
def test_parse_refuses_invalid_names(kinds: RoomKinds, name: str) -> None:
    with pytest.raises(InvalidRoom) as info:
        kinds.parse(name)
    assert info.value.code == "invalid_room"


@pytest.mark.parametrize("value", [None, 42, b"project_1", ["project_1"], {"room": "project_1"}])
def test_parse_refuses_non_strings(kinds: RoomKinds, value: object) -> None:
    with pytest.raises(InvalidRoom):
        kinds.parse(value)


def test_invalid_room_message_is_bounded(kinds: RoomKinds) -> None:
    with pytest.raises(InvalidRoom) as info:
        kinds.parse("x" * 10_000)
    assert len(info.value.message) < 200


def test_user_room(kinds: RoomKinds) -> None:
    ref = kinds.user_room("u1")
    assert ref.name == "user_u1"
    assert ref.kind.name == "user"
    assert ref.id == "u1"
    assert ref.kind.presence is False


def test_user_room_refuses_an_id_that_is_not_a_room_id(kinds: RoomKinds) -> None:
    with pytest.raises(InvalidRoom):
        kinds.user_room("alice@example.com")


def test_builtin_kind_flags(kinds: RoomKinds) -> None:
    assert kinds.get("annotation").bindable is True
    assert kinds.get("detection_stream").bindable is True
    assert kinds.get("project").bindable is False
    assert kinds.get("user").bindable is False
    assert kinds.get("project").presence is True
    with pytest.raises(KeyError):
        kinds.get("nope")


def test_add_custom_kind(kinds: RoomKinds) -> None:
    dataset = RoomKind("dataset", "dataset_", bindable=True)
    kinds.add(dataset)
    ref = kinds.parse("dataset_d_1")
    assert ref.kind is dataset
    assert ref.id == "d_1"
    assert kinds.get("dataset") is dataset
    # The built-ins still parse.
    assert kinds.parse("project_p").kind.name == "project"


def test_custom_kind_unknown_to_another_registry() -> None:
    kinds = RoomKinds()
    kinds.add(RoomKind("dataset", "dataset_"))
    with pytest.raises(InvalidRoom):
        RoomKinds().parse("dataset_d1")


@pytest.mark.parametrize(
    "kind",
    [
        RoomKind("project", "other_"),  # same name
        RoomKind("projects", "project_"),  # same prefix
        RoomKind("user", "user_"),  # both
    ],
)
def test_duplicate_kind_refused(kinds: RoomKinds, kind: RoomKind) -> None:
    with pytest.raises(ValueError, match="already registered"):
        kinds.add(kind)
    # The registry is unchanged.
    assert kinds.parse("project_1").kind.name == "project"
    assert kinds.parse("user_1").kind.name == "user"


@pytest.mark.parametrize(
    "prefix", ["Dataset_", "dataset", "_dataset_", "1dataset_", "data-set_", ""]
)
def test_bad_prefix_refused(kinds: RoomKinds, prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        kinds.add(RoomKind("dataset", prefix))
    with pytest.raises(KeyError):
        kinds.get("dataset")


def test_registry_with_only_some_kinds() -> None:
    kinds = RoomKinds((RoomKind("project", "project_"),))
    assert kinds.parse("project_1").kind.name == "project"
    with pytest.raises(InvalidRoom):
        kinds.parse("user_1")


@given(kind=builtin_kinds, room_id=valid_ids)
def test_any_valid_id_round_trips_for_every_kind(kind: RoomKind, room_id: str) -> None:
    kinds = RoomKinds()
    ref = kinds.parse(kind.prefix + room_id)
    assert ref.kind == kind
    assert ref.id == room_id
    assert ref.name == kind.prefix + room_id


@given(name=st.text(max_size=90))
def test_any_text_not_a_room_name_is_refused(name: str) -> None:
    kinds = RoomKinds()
    if ANY_BUILTIN_ROOM.fullmatch(name):
        assert kinds.parse(name).name == name
    else:
        with pytest.raises(InvalidRoom):
            kinds.parse(name)


@given(
    kind=builtin_kinds,
    head=st.text(alphabet=ID_ALPHABET, max_size=10),
    bad=st.characters(exclude_characters="_-", exclude_categories=("Cs",)).filter(
        lambda c: not re.fullmatch(r"[A-Za-z0-9]", c)
    ),
    tail=st.text(alphabet=ID_ALPHABET, max_size=10),
)
def test_one_bad_character_anywhere_in_the_id_is_refused(
    kind: RoomKind, head: str, bad: str, tail: str
) -> None:
    with pytest.raises(InvalidRoom):
        RoomKinds().parse(kind.prefix + head + bad + tail)


@given(kind=builtin_kinds, room_id=st.text(alphabet=ID_ALPHABET, min_size=65, max_size=80))
def test_ids_longer_than_64_are_refused(kind: RoomKind, room_id: str) -> None:
    with pytest.raises(InvalidRoom):
        RoomKinds().parse(kind.prefix + room_id)


@given(sid=st.text(alphabet=ID_ALPHABET, min_size=20, max_size=20))
def test_socketio_sids_never_parse(sid: str) -> None:
    kinds = RoomKinds()
    if ANY_BUILTIN_ROOM.fullmatch(sid):
        # Only a sid that happens to begin with a room prefix could; none we mint does.
        assert kinds.parse(sid).name == sid
    else:
        with pytest.raises(InvalidRoom):
            kinds.parse(sid)
