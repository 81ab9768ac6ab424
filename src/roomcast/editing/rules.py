"""The rules of annotation writes and editing leases, free of any storage.

A broker keeps the state (per room: each annotation's version, each lease, the
fencing counter) and applies these functions inside its one atomic step; the Redis
broker's Lua script mirrors them line for line.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..domain import Lease, Member
from ..errors import Conflict, Locked


@dataclass(frozen=True, slots=True)
class AnnotationState:
    version: int = 0  # 0: never created
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class AnnotationWrite:
    """The guard of an `annotation_update`: what the writer believes and who it is."""

    annotation_id: str
    action: str  # create | update | delete
    base_version: int | None
    user_id: str
    fencing_token: int | None = None


def active_lease(lease: Lease | None, now_ms: int) -> Lease | None:
    return lease if lease is not None and lease.expires_at > now_ms else None


def check_lease(write: AnnotationWrite, lease: Lease | None, now_ms: int) -> None:
    """Refuse a write that another user's live lease covers, or a stale fencing token."""
    lease = active_lease(lease, now_ms)
    if lease is not None and lease.holder.user_id != write.user_id:
        raise Locked(
            f"annotation {write.annotation_id} is locked by another user",
            holder=lease.holder.to_wire(),
            expires_at=lease.expires_at,
        )
    if write.fencing_token is not None and (
        lease is None or lease.fencing_token != write.fencing_token
    ):
        raise Locked(
            f"fencing token {write.fencing_token} is no longer valid for {write.annotation_id}",
            holder=lease.holder.to_wire() if lease else None,
            expires_at=lease.expires_at if lease else None,
        )


def apply_write(state: AnnotationState, write: AnnotationWrite) -> AnnotationState:
    """The state after `write`, or Conflict (carrying current_version) when it is stale."""
    current = state.version
    if write.action == "create":
        if current != 0:
            raise Conflict(
                f"annotation {write.annotation_id} already exists", current_version=current
            )
        return AnnotationState(version=1)
    if current == 0 or state.deleted:
        raise Conflict(f"annotation {write.annotation_id} does not exist", current_version=current)
    if write.base_version != current:
        raise Conflict(
            f"base_version {write.base_version} is not the current version {current}",
            current_version=current,
        )
    return AnnotationState(version=current + 1, deleted=write.action == "delete")


def grant_lease(
    current: Lease | None,
    *,
    room: str,
    annotation_id: str,
    holder: Member,
    ttl_ms: int,
    now_ms: int,
    last_fencing_token: int,
) -> Lease:
    """Grant or renew a lease; raise Locked while someone else holds it.

    A renewal keeps the fencing token; a new grant takes the next one in the room,
    so a holder whose lease ran out can never write under a newer grant's token.
    """
    live = active_lease(current, now_ms)
    if live is not None and live.holder.user_id != holder.user_id:
        raise Locked(
            f"annotation {annotation_id} is locked by another user",
            holder=live.holder.to_wire(),
            expires_at=live.expires_at,
        )
    if live is not None:
        return replace(live, holder=holder, expires_at=now_ms + ttl_ms)
    return Lease(
        room=room,
        annotation_id=annotation_id,
        holder=holder,
        fencing_token=last_fencing_token + 1,
        expires_at=now_ms + ttl_ms,
    )


def lock_event_data(lease: Lease, state: str) -> dict[str, object]:
    return {
        "annotation_id": lease.annotation_id,
        "state": state,
        "holder": lease.holder.to_wire(),
        "fencing_token": lease.fencing_token,
        "expires_at": lease.expires_at,
    }
