"""A BrokerSink that records what a broker delivers and lets a test await it."""

from __future__ import annotations

import asyncio
from typing import Any

from roomcast.domain import Publication


class RecordingSink:
    def __init__(self) -> None:
        self.publications: list[Publication] = []
        self.transients: list[tuple[str, str, Any]] = []
        self.controls: list[Any] = []
        self._changed = asyncio.Event()

    def on_publication(self, publication: Publication) -> None:
        self.publications.append(publication)
        self._changed.set()

    def on_transient(self, room: str, event: str, data: Any) -> None:
        self.transients.append((room, event, data))
        self._changed.set()

    def on_control(self, message: Any) -> None:
        self.controls.append(message)
        self._changed.set()

    async def wait_for(self, predicate: Any, timeout: float = 5) -> None:
        """Return once `predicate(self)` holds; every delivery wakes the check."""
        async with asyncio.timeout(timeout):
            while not predicate(self):
                self._changed.clear()
                await self._changed.wait()

    def seqs(self, room: str) -> list[int]:
        return [p.seq for p in self.publications if p.room == room]
