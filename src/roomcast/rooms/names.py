"""Room names and the registry of room kinds.

A room name is `<prefix><id>`. Prefixes are matched longest first, so that
`detection_stream_t9` is a detection room and never some `detection_` kind, and an
id may itself contain `_`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ..domain import Identity
from ..errors import InvalidRoom

ROOM_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

#: A kind's own extra rule: may this identity join this room? (None: no opinion)
KindRule = Callable[[Identity, "RoomRef"], bool]


@dataclass(frozen=True, slots=True)
class RoomKind:
    """A family of rooms sharing a prefix and a join rule.

    `bindable`: the room may be bound to a project, whose members may then join.
    `presence`: joins and leaves are announced.
    `has_leases`: members may lock annotations in it (lock, unlock, the join ack's
    `locks`), and a user's leases end when its last connection leaves.
    `private_to_user`: the room belongs to one user: only that user joins it, every
    connection is in it from connect, and it cannot be left.
    `counts_toward_max_rooms`: a join counts against max_rooms_per_connection.
    `id_is_project`: the room's id names a project, so the members the token's
    `projects` claim lists may join (SPEC 2, rule 2).
    """

    name: str
    prefix: str
    bindable: bool = False
    presence: bool = True
    rule: KindRule | None = None
    has_leases: bool = False
    private_to_user: bool = False
    counts_toward_max_rooms: bool = True
    id_is_project: bool = False


@dataclass(frozen=True, slots=True)
class RoomRef:
    """A parsed, valid room name."""

    name: str
    kind: RoomKind
    id: str


BUILTIN_KINDS: tuple[RoomKind, ...] = (
    RoomKind("project", "project_", id_is_project=True),
    RoomKind("annotation", "annotation_", bindable=True, has_leases=True),
    RoomKind("detection_stream", "detection_stream_", bindable=True),
    RoomKind("user", "user_", presence=False, private_to_user=True, counts_toward_max_rooms=False),
)


class RoomKinds:
    """The room kinds one application accepts; built-ins plus whatever it adds."""

    def __init__(self, kinds: tuple[RoomKind, ...] = BUILTIN_KINDS) -> None:
        self._kinds: list[RoomKind] = []
        for kind in kinds:
            self.add(kind)

    def add(self, kind: RoomKind) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_]*_", kind.prefix):
            raise ValueError(f"room prefix {kind.prefix!r} must be lower-case and end in '_'")
        if any(k.prefix == kind.prefix or k.name == kind.name for k in self._kinds):
            raise ValueError(f"room kind {kind.name!r} ({kind.prefix}) is already registered")
        self._kinds.append(kind)
        self._kinds.sort(key=lambda k: len(k.prefix), reverse=True)

    def get(self, name: str) -> RoomKind:
        for kind in self._kinds:
            if kind.name == name:
                return kind
        raise KeyError(name)

    def parse(self, name: object) -> RoomRef:
        """Parse a room name; raise InvalidRoom for anything that is not one."""
        if not isinstance(name, str):
            raise InvalidRoom("room must be a string")
        for kind in self._kinds:
            if name.startswith(kind.prefix):
                room_id = name[len(kind.prefix) :]
                if ROOM_ID.fullmatch(room_id):
                    return RoomRef(name, kind, room_id)
                break
        raise InvalidRoom(f"{name[:80]!r} is not a valid room name")

    def user_room(self, user_id: str) -> RoomRef:
        """The user's private room (the kind marked `private_to_user`)."""
        kind = next(k for k in self._kinds if k.private_to_user)
        return self.parse(f"{kind.prefix}{user_id}")
