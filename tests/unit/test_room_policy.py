"""Who may join a room: the six rules of SPEC section 2."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from roomcast.domain import Identity
from roomcast.rooms.names import RoomKind, RoomKinds, RoomRef
from roomcast.rooms.policy import JoinContext, can_join, is_allowed_by_claims

KINDS = RoomKinds()
NO_CONTEXT = JoinContext()


def room(name: str, kinds: RoomKinds = KINDS) -> RoomRef:
    return kinds.parse(name)


def who(
    user_id: str = "u1",
    *,
    projects: tuple[str, ...] = (),
    rooms: tuple[str, ...] = (),
    roles: tuple[str, ...] = (),
) -> Identity:
    return Identity(
        user_id=user_id,
        projects=frozenset(projects),
        rooms=frozenset(rooms),
        roles=frozenset(roles),
    )


class RecordingHook:
    """A join hook that answers `answer` and remembers what it was asked."""

    def __init__(self, answer: bool) -> None:
        self.answer = answer
        self.calls: list[tuple[str, str]] = []

    async def __call__(self, identity: Identity, ref: RoomRef) -> bool:
        self.calls.append((identity.user_id, ref.name))
        return self.answer


# rule 1: admin ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["project_p1", "annotation_a1", "detection_stream_t1"])
def test_admin_may_join_any_non_user_room(name: str) -> None:
    assert is_allowed_by_claims(who(roles=("admin",)), room(name), NO_CONTEXT) is True
    assert is_allowed_by_claims(who(roles=("viewer",)), room(name), NO_CONTEXT) is False


# rule 2: project membership ---------------------------------------------------------


def test_project_member_may_join_project_room() -> None:
    member = who(projects=("p1", "p2"))
    assert is_allowed_by_claims(member, room("project_p1"), NO_CONTEXT) is True
    assert is_allowed_by_claims(member, room("project_p3"), NO_CONTEXT) is False


def test_project_claim_does_not_open_other_kinds_with_the_same_id() -> None:
    member = who(projects=("p1",))
    assert is_allowed_by_claims(member, room("annotation_p1"), NO_CONTEXT) is False
    assert is_allowed_by_claims(member, room("detection_stream_p1"), NO_CONTEXT) is False


def test_project_membership_matches_whole_ids() -> None:
    member = who(projects=("p1",))
    assert is_allowed_by_claims(member, room("project_p10"), NO_CONTEXT) is False
    assert is_allowed_by_claims(member, room("project_p"), NO_CONTEXT) is False


# rule 3: rooms claim ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["project_p1", "annotation_a1", "detection_stream_t1"])
def test_rooms_claim_with_exact_name(name: str) -> None:
    assert is_allowed_by_claims(who(rooms=(name,)), room(name), NO_CONTEXT) is True
    assert is_allowed_by_claims(who(rooms=(name + "x",)), room(name), NO_CONTEXT) is False


def test_rooms_claim_is_not_a_prefix_or_id_match() -> None:
    identity = who(rooms=("annotation_a", "a1"))
    assert is_allowed_by_claims(identity, room("annotation_a1"), NO_CONTEXT) is False


# rule 4: room token -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["project_p1", "annotation_a1", "detection_stream_t1"])
def test_valid_room_token(name: str) -> None:
    ctx = JoinContext(room_token_valid=True)
    assert is_allowed_by_claims(who(), room(name), ctx) is True


# rule 5: binding --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["annotation_a1", "detection_stream_t1"])
def test_bound_room_admits_members_of_the_bound_project(name: str) -> None:
    ctx = JoinContext(bound_project="p1")
    assert is_allowed_by_claims(who(projects=("p1",)), room(name), ctx) is True
    assert is_allowed_by_claims(who(projects=("p2",)), room(name), ctx) is False
    assert is_allowed_by_claims(who(), room(name), ctx) is False


def test_unbound_room_admits_nobody_by_binding() -> None:
    ctx = JoinContext(bound_project=None)
    assert is_allowed_by_claims(who(projects=("p1",)), room("annotation_a1"), ctx) is False


def test_binding_applies_only_to_bindable_kinds() -> None:
    ctx = JoinContext(bound_project="p1")
    # project rooms are not bindable: a binding fact must not open project_p9.
    assert is_allowed_by_claims(who(projects=("p1",)), room("project_p9"), ctx) is False


# kind rule --------------------------------------------------------------------------


def test_custom_kind_rule() -> None:
    kinds = RoomKinds()
    seen: list[tuple[str, str]] = []

    def rule(identity: Identity, ref: RoomRef) -> bool:
        seen.append((identity.user_id, ref.id))
        return ref.id.startswith(identity.user_id + "-")

    kinds.add(RoomKind("workspace", "workspace_", rule=rule))
    assert is_allowed_by_claims(who("u1"), room("workspace_u1-main", kinds), NO_CONTEXT) is True
    assert is_allowed_by_claims(who("u2"), room("workspace_u1-main", kinds), NO_CONTEXT) is False
    assert seen == [("u1", "u1-main"), ("u2", "u1-main")]


def test_kind_without_rule_refuses_by_default() -> None:
    kinds = RoomKinds()
    kinds.add(RoomKind("workspace", "workspace_"))
    assert is_allowed_by_claims(who(), room("workspace_w1", kinds), NO_CONTEXT) is False
    assert is_allowed_by_claims(who(roles=("admin",)), room("workspace_w1", kinds), NO_CONTEXT)


# user rooms -------------------------------------------------------------------------


def test_user_room_of_oneself() -> None:
    assert is_allowed_by_claims(who("u1"), room("user_u1"), NO_CONTEXT) is True


def test_user_room_of_another_is_refused_whatever_the_claims() -> None:
    everything = who("u1", projects=("u2",), rooms=("user_u2",), roles=("admin",))
    ctx = JoinContext(room_token_valid=True, bound_project="u2")
    assert is_allowed_by_claims(everything, room("user_u2"), ctx) is False


def test_user_room_ids_compare_exactly() -> None:
    assert is_allowed_by_claims(who("u1"), room("user_u10"), NO_CONTEXT) is False
    assert is_allowed_by_claims(who("U1"), room("user_u1"), NO_CONTEXT) is False


@given(
    sub=st.text(alphabet="ab1_-", min_size=1, max_size=8),
    owner=st.text(alphabet="ab1_-", min_size=1, max_size=8),
    admin=st.booleans(),
    claim_room=st.booleans(),
    token=st.booleans(),
    bound=st.booleans(),
)
def test_user_rooms_admit_exactly_their_user(
    sub: str, owner: str, admin: bool, claim_room: bool, token: bool, bound: bool
) -> None:
    identity = who(
        sub,
        projects=("p1",),
        rooms=(f"user_{owner}",) if claim_room else (),
        roles=("admin",) if admin else (),
    )
    ctx = JoinContext(room_token_valid=token, bound_project="p1" if bound else None)
    assert is_allowed_by_claims(identity, room(f"user_{owner}"), ctx) is (sub == owner)


# can_join and the hook -----------------------------------------------------------------


async def test_can_join_without_hook_follows_claims() -> None:
    assert await can_join(who(projects=("p1",)), room("project_p1"), NO_CONTEXT, None) is True
    assert await can_join(who(), room("project_p1"), NO_CONTEXT, None) is False


async def test_hook_is_asked_only_when_claims_say_no() -> None:
    hook = RecordingHook(answer=False)
    assert await can_join(who(projects=("p1",)), room("project_p1"), NO_CONTEXT, hook) is True
    assert hook.calls == []
    assert await can_join(who(), room("project_p2"), NO_CONTEXT, hook) is False
    assert hook.calls == [("u1", "project_p2")]


async def test_hook_may_allow() -> None:
    hook = RecordingHook(answer=True)
    assert await can_join(who(), room("annotation_a1"), NO_CONTEXT, hook) is True
    assert hook.calls == [("u1", "annotation_a1")]


async def test_hook_may_allow_another_users_room() -> None:
    assert await can_join(who("u1"), room("user_u2"), NO_CONTEXT, RecordingHook(True)) is True
    assert await can_join(who("u1"), room("user_u2"), NO_CONTEXT, RecordingHook(False)) is False


async def test_hook_saying_no_does_not_override_claims() -> None:
    hook = RecordingHook(answer=False)
    assert await can_join(who("u1"), room("user_u1"), NO_CONTEXT, hook) is True
    assert await can_join(who(roles=("admin",)), room("project_x"), NO_CONTEXT, hook) is True
    assert hook.calls == []


@given(
    projects=st.frozensets(st.sampled_from(["p1", "p2", "p3"])),
    rooms=st.frozensets(st.sampled_from(["annotation_a1", "project_p1", "project_p2"])),
    admin=st.booleans(),
    token=st.booleans(),
    bound=st.sampled_from([None, "p1", "p2"]),
    name=st.sampled_from(["project_p1", "project_p2", "annotation_a1", "detection_stream_t1"]),
    hook_answer=st.sampled_from([None, True, False]),
)
def test_join_decision_matches_the_rules(
    projects: frozenset[str],
    rooms: frozenset[str],
    admin: bool,
    token: bool,
    bound: str | None,
    name: str,
    hook_answer: bool | None,
) -> None:
    identity = Identity(
        "u1", projects=projects, rooms=rooms, roles=frozenset({"admin"} if admin else set())
    )
    ref = room(name)
    ctx = JoinContext(room_token_valid=token, bound_project=bound)
    expected = (
        admin
        or (name.startswith("project_") and ref.id in projects)
        or name in rooms
        or token
        or (not name.startswith("project_") and bound is not None and bound in projects)
        or hook_answer is True
    )
    hook = None if hook_answer is None else RecordingHook(hook_answer)
    assert asyncio.run(can_join(identity, ref, ctx, hook)) is expected
