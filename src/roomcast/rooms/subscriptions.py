"""Reference-counted broker subscriptions: an instance listens to a room's channel
only while it has a local member there."""

from __future__ import annotations

import asyncio

from ..brokers.base import Broker


class Subscriptions:
    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._counts: dict[str, int] = {}  # room -> local memberships
        self._live: set[str] = set()  # rooms the broker is subscribed to
        # Serialises subscribe/unsubscribe so a quick leave-then-join of a room
        # cannot reach the broker in the opposite order.
        self._lock = asyncio.Lock()

    async def acquire(self, room: str) -> None:
        """Count one member; returns once the room's delivery is live.

        On failure the count is given back, so the caller has nothing to undo.
        """
        self._counts[room] = self._counts.get(room, 0) + 1
        live = room in self._live
        try:
            if not live:
                async with self._lock:
                    if room not in self._live:
                        await self._broker.subscribe(room)
                        self._live.add(room)
            live = True
        finally:
            if not live:
                await self.release(room)

    async def release(self, room: str) -> None:
        count = self._counts.get(room, 0) - 1
        if count > 0:
            self._counts[room] = count
            return
        self._counts.pop(room, None)
        if room in self._live:
            async with self._lock:
                if room in self._live and room not in self._counts:
                    self._live.discard(room)
                    await self._broker.unsubscribe(room)

    def size(self) -> int:
        return len(self._counts) + len(self._live)
