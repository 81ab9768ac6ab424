"""Optimistic concurrency of annotation writes, and editing leases."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from roomcast.domain import Lease, Member
from roomcast.editing.rules import (
    AnnotationState,
    AnnotationWrite,
    active_lease,
    apply_write,
    check_lease,
    grant_lease,
    lock_event_data,
)
from roomcast.errors import Conflict, Locked

ANN = "a1"
ROOM = "annotation_s1"
ANN_MEMBER = Member("u1", "Ann", 1)
BOB = Member("u2", "Bob", 2)


def write(
    action: str, base: int | None = None, user: str = "u1", fencing: int | None = None
) -> AnnotationWrite:
    return AnnotationWrite(ANN, action, base, user, fencing)


def lease(holder: Member = BOB, token: int = 5, expires_at: int = 2000) -> Lease:
    return Lease(ROOM, ANN, holder, token, expires_at)


# apply_write ---------------------------------------------------------------------------


def test_create_unknown() -> None:
    assert apply_write(AnnotationState(), write("create")) == AnnotationState(1, False)


def test_create_ignores_base_version() -> None:
    assert apply_write(AnnotationState(), write("create", base=7)).version == 1


def test_create_existing_is_a_conflict_with_current_version() -> None:
    with pytest.raises(Conflict) as info:
        apply_write(AnnotationState(version=3), write("create"))
    assert info.value.code == "conflict"
    assert info.value.details == {"current_version": 3}
    assert info.value.to_wire()["current_version"] == 3


def test_create_of_a_deleted_id_is_a_conflict() -> None:
    with pytest.raises(Conflict) as info:
        apply_write(AnnotationState(version=4, deleted=True), write("create"))
    assert info.value.details["current_version"] == 4


def test_update_with_the_current_version() -> None:
    assert apply_write(AnnotationState(version=3), write("update", base=3)) == AnnotationState(4)


@pytest.mark.parametrize("base", [2, 4, 0, None])
def test_update_with_a_stale_wrong_or_missing_base(base: int | None) -> None:
    with pytest.raises(Conflict) as info:
        apply_write(AnnotationState(version=3), write("update", base=base))
    assert info.value.details["current_version"] == 3


def test_update_of_unknown_annotation() -> None:
    with pytest.raises(Conflict) as info:
        apply_write(AnnotationState(), write("update", base=0))
    assert info.value.details["current_version"] == 0


def test_delete_increments_and_marks_deleted() -> None:
    assert apply_write(AnnotationState(version=2), write("delete", base=2)) == AnnotationState(
        3, deleted=True
    )


@pytest.mark.parametrize("action", ["update", "delete"])
def test_write_after_delete_is_a_conflict(action: str) -> None:
    deleted = apply_write(AnnotationState(version=2), write("delete", base=2))
    with pytest.raises(Conflict) as info:
        apply_write(deleted, write(action, base=3))
    assert info.value.details["current_version"] == 3


def test_state_is_not_mutated() -> None:
    state = AnnotationState(version=1)
    new = apply_write(state, write("update", base=1))
    assert state == AnnotationState(1, False)
    assert new == AnnotationState(2, False)


writes = st.lists(
    st.tuples(
        st.sampled_from(["create", "update", "delete"]),
        st.sampled_from(["current", "stale", "ahead", "missing"]),
    ),
    max_size=30,
)


@given(sequence=writes)
def test_version_counts_accepted_writes(sequence: list[tuple[str, str]]) -> None:
    state = AnnotationState()
    accepted = 0
    deleted = False
    for action, base_kind in sequence:
        base = {
            "current": state.version,
            "stale": state.version - 1,
            "ahead": state.version + 1,
            "missing": None,
        }[base_kind]
        if action == "create":
            should_accept = accepted == 0
        else:
            should_accept = accepted > 0 and not deleted and base_kind == "current"
        try:
            new = apply_write(state, write(action, base=base))
        except Conflict as exc:
            assert not should_accept
            assert exc.details["current_version"] == state.version
            continue
        assert should_accept
        accepted += 1
        deleted = action == "delete"
        assert new.version == state.version + 1
        state = new
        assert state.version == accepted
        assert state.deleted is deleted
    assert state.version == accepted


# check_lease -------------------------------------------------------------------------


def test_no_lease_passes() -> None:
    assert check_lease(write("update", base=1), None, now_ms=1000) is None


def test_other_users_live_lease_is_locked() -> None:
    with pytest.raises(Locked) as info:
        check_lease(write("update", base=1, user="u1"), lease(BOB, expires_at=2000), 1000)
    assert info.value.code == "locked"
    assert info.value.details == {
        "holder": {"user_id": "u2", "name": "Bob", "connections": 2},
        "expires_at": 2000,
    }


def test_own_lease_passes() -> None:
    check_lease(write("update", base=1, user="u2"), lease(BOB), now_ms=1000)
    check_lease(write("update", base=1, user="u2", fencing=5), lease(BOB, token=5), now_ms=1000)


def test_expired_lease_is_ignored() -> None:
    check_lease(write("update", base=1, user="u1"), lease(BOB, expires_at=1000), now_ms=1000)
    check_lease(write("update", base=1, user="u1"), lease(BOB, expires_at=1000), now_ms=5000)


def test_lease_live_until_just_before_expiry() -> None:
    with pytest.raises(Locked):
        check_lease(write("update", base=1, user="u1"), lease(BOB, expires_at=1000), now_ms=999)


def test_fencing_token_mismatch_is_locked() -> None:
    with pytest.raises(Locked) as info:
        check_lease(write("update", base=1, user="u2", fencing=4), lease(BOB, token=5), 1000)
    assert info.value.details["expires_at"] == 2000
    assert info.value.details["holder"]["user_id"] == "u2"


def test_fencing_token_without_a_live_lease_is_locked() -> None:
    with pytest.raises(Locked) as info:
        check_lease(write("update", base=1, user="u2", fencing=5), lease(BOB, token=5), 3000)
    assert info.value.details == {"holder": None, "expires_at": None}
    with pytest.raises(Locked):
        check_lease(write("update", base=1, user="u2", fencing=1), None, 1000)


# grant_lease ----------------------------------------------------------------------------


def grant(current: Lease | None, holder: Member, now: int, last: int, ttl: int = 30_000) -> Lease:
    return grant_lease(
        current,
        room=ROOM,
        annotation_id=ANN,
        holder=holder,
        ttl_ms=ttl,
        now_ms=now,
        last_fencing_token=last,
    )


def test_new_grant_takes_the_next_token() -> None:
    new = grant(None, ANN_MEMBER, now=1000, last=16)
    assert new == Lease(ROOM, ANN, ANN_MEMBER, 17, 31_000)


def test_renewal_keeps_token_and_extends() -> None:
    first = grant(None, ANN_MEMBER, now=1000, last=0)
    again = grant(first, Member("u1", "Ann", 3), now=20_000, last=9)
    assert again.fencing_token == first.fencing_token == 1
    assert again.expires_at == 50_000
    assert again.holder.connections == 3


def test_other_holder_is_locked() -> None:
    current = grant(None, BOB, now=1000, last=0)
    with pytest.raises(Locked) as info:
        grant(current, ANN_MEMBER, now=2000, last=1)
    assert info.value.details == {"holder": BOB.to_wire(), "expires_at": 31_000}


def test_expired_lease_is_granted_anew_with_a_new_token() -> None:
    current = grant(None, BOB, now=1000, last=3, ttl=1000)
    assert current.fencing_token == 4
    taken = grant(current, ANN_MEMBER, now=2000, last=4)
    assert taken.holder == ANN_MEMBER
    assert taken.fencing_token == 5
    assert taken.expires_at == 32_000


def test_own_expired_lease_gets_a_new_token() -> None:
    current = grant(None, ANN_MEMBER, now=1000, last=3, ttl=1000)
    again = grant(current, ANN_MEMBER, now=2500, last=4)
    assert again.fencing_token == 5


def test_stale_holder_cannot_write_under_a_newer_grant() -> None:
    old = grant(None, BOB, now=1000, last=0, ttl=1000)
    new = grant(old, BOB, now=5000, last=old.fencing_token)
    with pytest.raises(Locked):
        check_lease(write("update", base=1, user="u2", fencing=old.fencing_token), new, 5001)
    check_lease(write("update", base=1, user="u2", fencing=new.fencing_token), new, 5001)


def test_active_lease() -> None:
    held = lease(expires_at=2000)
    assert active_lease(held, 1999) is held
    assert active_lease(held, 2000) is None
    assert active_lease(None, 0) is None


def test_lock_event_data() -> None:
    assert lock_event_data(lease(BOB, token=5, expires_at=2000), "released") == {
        "annotation_id": ANN,
        "state": "released",
        "holder": {"user_id": "u2", "name": "Bob", "connections": 2},
        "fencing_token": 5,
        "expires_at": 2000,
    }


@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["u1", "u2"]), st.integers(min_value=0, max_value=40_000)),
        max_size=30,
    )
)
def test_fencing_tokens_only_grow_and_change_exactly_on_new_grants(
    steps: list[tuple[str, int]],
) -> None:
    now = 0
    current: Lease | None = None
    last = 0
    for user, advance in steps:
        now += advance
        live = active_lease(current, now)
        try:
            granted = grant(current, Member(user, None, 1), now=now, last=last, ttl=10_000)
        except Locked:
            assert live is not None
            assert live.holder.user_id != user
            continue
        if live is not None:
            assert live.holder.user_id == user
            assert granted.fencing_token == live.fencing_token
        else:
            assert granted.fencing_token == last + 1
        assert granted.expires_at == now + 10_000
        last = max(last, granted.fencing_token)
        current = granted
