"""Who may join a room: the six rules of SPEC section 2, as plain functions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..domain import Identity
from .names import RoomRef

#: An application's last word on a join: may this identity join this room?
JoinHook = Callable[[Identity, RoomRef], Awaitable[bool]]

#: The platform's word on a join (SPEC 10's join proxy), asked with the room's name
#: after every built-in rule and the hook said no: it returns to admit and raises a
#: RoomcastError to refuse (the platform's code, or platform_unavailable).
JoinProxy = Callable[[Identity, str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class JoinContext:
    """Facts gathered before the decision: a verified room token, the room's binding."""

    room_token_valid: bool = False
    bound_project: str | None = None


def is_allowed_by_claims(identity: Identity, room: RoomRef, ctx: JoinContext) -> bool:
    """Rules 1 to 5 and the kind's own rule; False means "ask the hook".

    A room private to a user (`user_`) admits only its own user: the claims-based
    rules never open another user's room, not even to an admin.
    """
    if room.kind.private_to_user:
        return room.id == identity.user_id
    if identity.is_admin:
        return True
    if room.kind.id_is_project and room.id in identity.projects:
        return True
    if room.name in identity.rooms:
        return True
    if ctx.room_token_valid:
        return True
    if room.kind.bindable and ctx.bound_project in identity.projects:
        return True
    return room.kind.rule is not None and room.kind.rule(identity, room)


async def can_join(
    identity: Identity,
    room: RoomRef,
    ctx: JoinContext,
    hook: JoinHook | None,
    proxy: JoinProxy | None = None,
) -> bool:
    """The built-in rules, then the in-process hook, then the platform, in that order.

    The platform is asked last because it is the one remote, failure-prone step: a
    join any local rule admits never waits for it nor fails with it.
    """
    if is_allowed_by_claims(identity, room, ctx):
        return True
    if hook is not None and await hook(identity, room):
        return True
    if proxy is None:
        return False
    await proxy(identity, room.name)
    return True
