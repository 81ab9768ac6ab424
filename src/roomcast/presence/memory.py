"""MemoryPresenceStore: presence and connection counts inside one process."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..domain import InstanceInfo, Member, PresenceChange


@dataclass(slots=True)
class _Present:
    name: str | None
    conns: set[str] = field(default_factory=set)


class MemoryPresenceStore:
    """The only instance is this one: heartbeats record it, nothing is ever reaped."""

    def __init__(self, instance_id: str = "local") -> None:
        self._instance = InstanceInfo(instance_id, 0, time.time())
        self._rooms: dict[str, dict[str, _Present]] = {}  # room -> user -> connections
        self._users: dict[str, set[str]] = {}  # user -> connection ids

    async def add(self, room: str, user_id: str, name: str | None, conn_id: str) -> PresenceChange:
        users = self._rooms.setdefault(room, {})
        present = users.get(user_id)
        first = present is None
        if present is None:
            present = users[user_id] = _Present(name)
        present.conns.add(conn_id)
        member = Member(user_id, present.name, len(present.conns))
        return PresenceChange(room, member if first else None, None, len(users))

    async def arrive(
        self, room: str, user_id: str, name: str | None, conn_id: str
    ) -> tuple[PresenceChange, list[Member]]:
        change = await self.add(room, user_id, name, conn_id)
        return change, await self.members(room)

    async def remove(self, room: str, user_id: str, conn_id: str) -> PresenceChange:
        users = self._rooms.get(room)
        present = users.get(user_id) if users else None
        if users is None or present is None or conn_id not in present.conns:
            return PresenceChange(room, None, None, len(users) if users else 0)
        present.conns.discard(conn_id)
        left = None
        if not present.conns:
            del users[user_id]
            left = Member(user_id, present.name, 0)
        if not users:
            del self._rooms[room]
        return PresenceChange(room, None, left, len(users))

    async def members(self, room: str) -> list[Member]:
        users = self._rooms.get(room, {})
        return [Member(uid, p.name, len(p.conns)) for uid, p in sorted(users.items())]

    async def member(self, room: str, user_id: str) -> Member | None:
        present = self._rooms.get(room, {}).get(user_id)
        return Member(user_id, present.name, len(present.conns)) if present else None

    async def register_connection(self, user_id: str, conn_id: str, limit: int) -> bool:
        conns = self._users.setdefault(user_id, set())
        if conn_id not in conns and len(conns) >= limit:
            if not conns:
                del self._users[user_id]
            return False
        conns.add(conn_id)
        return True

    async def unregister_connection(self, user_id: str, conn_id: str) -> None:
        conns = self._users.get(user_id)
        if conns is not None:
            conns.discard(conn_id)
            if not conns:
                del self._users[user_id]

    async def user_connections(self, user_id: str) -> int:
        return len(self._users.get(user_id, ()))

    def size(self) -> int:
        """Entries held, for leak checks."""
        return len(self._rooms) + len(self._users)

    async def heartbeat(self, connections: int) -> None:
        self._instance = InstanceInfo(self._instance.instance_id, connections, time.time())

    async def instances(self) -> list[InstanceInfo]:
        return [self._instance]

    async def reap_dead(self) -> list[PresenceChange]:
        return []
