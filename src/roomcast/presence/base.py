"""The presence roles: room membership by user, the connection registry, the instances.

`PresenceStore` is the three together, as one backend (memory or Redis) implements
them; each consumer takes the role it uses (`RoomPresence` for rooms and the HTTP
presence endpoint, `ConnectionRegistry` for the gateway, `InstanceRegistry` for
housekeeping and /stats).

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

from ..domain import InstanceInfo, Member, PresenceChange


class RoomPresence(Protocol):
    """Who is in a room, by user; a user is in once however many connections it has."""

    async def add(self, room: str, user_id: str, name: str | None, conn_id: str) -> PresenceChange:
        """Record one connection of a user in a room; `joined` is set for its first."""

    async def arrive(
        self, room: str, user_id: str, name: str | None, conn_id: str
    ) -> tuple[PresenceChange, list[Member]]:
        """`add`, and the room's members just after it (as `members`), in one step.

        A join needs both (its announcement and its ack's snapshot): over Redis they
        are one script call instead of a script call and two reads.
        """

    async def remove(self, room: str, user_id: str, conn_id: str) -> PresenceChange:
        """Forget one connection of a user in a room (no-op when absent); `left` for its last.

        A removal that cannot reach the backend is kept and retried (never dropped), so
        a user is not left shown in a room it left.
        """

    async def members(self, room: str) -> list[Member]:
        """The room's users, each once, with its connection count."""

    async def member(self, room: str, user_id: str) -> Member | None:
        """One user's entry in the room, or None when it is not there."""

    async def reap_dead(self) -> list[PresenceChange]:
        """Remove dead instances' entries; one change for each user who thereby left."""


class ConnectionRegistry(Protocol):
    """How many connections each user has, cluster-wide (for max_connections_per_user)."""

    async def register_connection(self, user_id: str, conn_id: str, limit: int) -> bool:
        """Count a connection for the user; False (and nothing counted) past `limit`."""

    async def unregister_connection(self, user_id: str, conn_id: str) -> None:
        """Stop counting a connection (no-op when it was not counted)."""

    async def user_connections(self, user_id: str) -> int:
        """The user's connections counted now, on every instance."""


class InstanceRegistry(Protocol):
    """Which instances are alive, and how many connections each has (for /stats)."""

    async def heartbeat(self, connections: int) -> None:
        """Say this instance is alive (and how many connections it has)."""

    async def instances(self) -> list[InstanceInfo]:
        """The instances alive, with their connection counts."""


class PresenceStore(RoomPresence, ConnectionRegistry, InstanceRegistry, Protocol):
    """The three presence roles, as one backend implements them."""

    def size(self) -> int:
        """Entries this instance holds in memory, for leak checks."""
