"""Connections on this instance: who is on each socket and what it has joined."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field

from .domain import Identity
from .ratelimit.bucket import TokenBucket


@dataclass(slots=True)
class Connection:
    sid: str
    identity: Identity
    address: str
    bucket: TokenBucket
    rooms: set[str] = field(default_factory=set)  # joined, the user room included
    limited_since: float | None = None  # when the current run of refusals began
    last_refused: float = 0.0
    dropped: int = 0  # refused for rate since the last notice
    last_notice: float = 0.0
    closing: bool = False
    # The gateway has undone what the connection held (it closed): a join that
    # finishes after that undoes its own room (RoomService.join).
    forgotten: bool = False


class ConnectionTable:
    """sid -> Connection, and user -> sids, for this instance only."""

    def __init__(self) -> None:
        self._by_sid: dict[str, Connection] = {}
        self._by_user: dict[str, set[str]] = {}
        self._empty = asyncio.Event()
        self._empty.set()

    async def wait_empty(self) -> None:
        """Return once no connection is left (a drain waits for this)."""
        await self._empty.wait()

    def add(self, conn: Connection) -> None:
        self._empty.clear()
        self._by_sid[conn.sid] = conn
        self._by_user.setdefault(conn.identity.user_id, set()).add(conn.sid)

    def pop(self, sid: str) -> Connection | None:
        conn = self._by_sid.pop(sid, None)
        if conn is not None:
            sids = self._by_user.get(conn.identity.user_id)
            if sids is not None:
                sids.discard(sid)
                if not sids:
                    del self._by_user[conn.identity.user_id]
            if not self._by_sid:
                self._empty.set()
        return conn

    def get(self, sid: str) -> Connection | None:
        return self._by_sid.get(sid)

    def of_user(self, user_id: str) -> list[Connection]:
        return [self._by_sid[s] for s in self._by_user.get(user_id, ())]

    def __len__(self) -> int:
        return len(self._by_sid)

    def __iter__(self) -> Iterator[Connection]:
        return iter(list(self._by_sid.values()))

    def size(self) -> int:
        """Entries held in both maps, for leak checks."""
        return len(self._by_sid) + len(self._by_user)
