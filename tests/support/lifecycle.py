"""The lifecycle shared by the test process helpers (redis-server, Sentinel, roomcast).

A helper defines `start()` and `teardown()`; this gives it `with` and `async with`,
the async forms running the blocking work in a thread so the test's event loop (and
the clients on it) keep running meanwhile.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Self


class Managed:
    def start(self) -> Self:
        raise NotImplementedError

    def teardown(self) -> object:
        raise NotImplementedError

    async def astart(self) -> Self:
        return await asyncio.to_thread(self.start)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.teardown()

    async def __aenter__(self) -> Self:
        return await self.astart()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.teardown)
