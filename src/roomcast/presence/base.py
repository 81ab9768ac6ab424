"""The PresenceStore role: room membership by user, and the connection registry.

Semantics every implementation keeps:

- `add` and `remove` are atomic per room: of concurrent calls, exactly one sees a
  user's first connection arrive (`joined` set) and exactly one sees the last leave
  (`left` set), cluster-wide.
- Entries belong to an instance; `reap_instance` removes a dead instance's entries
  and reports each user that thereby left a room.
- `register_connection` counts a user's connections across instances and refuses
  the one past `limit` without counting it.
"""

from __future__ import annotations

from typing import Protocol

from ..types import InstanceInfo, Member, PresenceChange


class PresenceStore(Protocol):
    async def add(self, room: str, user_id: str, name: str | None, conn_id: str) -> PresenceChange:
        """Record one connection of a user in a room."""

    async def remove(self, room: str, user_id: str, conn_id: str) -> PresenceChange:
        """Forget one connection of a user in a room (no-op when absent)."""

    async def members(self, room: str) -> list[Member]: ...

    async def member(self, room: str, user_id: str) -> Member | None: ...

    async def register_connection(self, user_id: str, conn_id: str, limit: int) -> bool:
        """Count a connection for the user; False (and nothing counted) past `limit`."""

    async def unregister_connection(self, user_id: str, conn_id: str) -> None: ...

    async def user_connections(self, user_id: str) -> int: ...

    async def heartbeat(self, connections: int) -> None:
        """Say this instance is alive (and how many connections it has)."""

    async def instances(self) -> list[InstanceInfo]:
        """The instances alive, with their connection counts."""

    async def reap_dead(self) -> list[PresenceChange]:
        """Remove dead instances' entries; one change for each user who thereby left."""

    def size(self) -> int:
        """Entries this instance holds in memory, for leak checks."""
