"""A platform's webhook endpoint for tests: verifies X-Roomcast-Signature, records events.

An aiohttp server on a loopback port that stays the same across `stop()` and
`start()`, so a test can take "the platform" down mid-stream and bring it back at
the address roomcast keeps POSTing to. Every batch is verified before it is parsed
(a bad signature is answered 401 and counted); `status` makes it answer something
other than 200 (the batch is then not acknowledged, and not recorded). `events`
holds every event of every acknowledged batch, resends included; `unique()` the
first copy of each id, in arrival order. `wait_for` waits on a condition that each
batch notifies, so a test waits for events, never for time.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any, Self

from aiohttp import web

from roomcast.integration.signing import HEADER, verify
from tests.support.processes import HOST, free_port


class WebhookReceiver:
    def __init__(self, secret: str, port: int | None = None) -> None:
        self.secret = secret.encode()
        self.port = port or free_port()
        self.events: list[dict[str, Any]] = []
        self.batches = 0
        self.refused = 0
        self.bad_signatures = 0
        self.status = 200
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/hooks"

    async def start(self) -> Self:
        app = web.Application()
        app.router.add_post("/hooks", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, HOST, self.port, reuse_address=True).start()
        return self

    async def stop(self) -> None:
        """Stop listening and end open connections: roomcast's POSTs now fail."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not verify(self.secret, request.headers.get(HEADER, ""), body):
            self.bad_signatures += 1
            return web.Response(status=401)
        if self.status != 200:
            async with self._changed:
                self.refused += 1
                self._changed.notify_all()
            return web.Response(status=self.status)
        batch = json.loads(body)
        async with self._changed:
            self.batches += 1
            self.events.extend(batch["events"])
            self._changed.notify_all()
        return web.Response(status=200)

    def unique(self) -> list[dict[str, Any]]:
        seen: set[str] = set()
        first: list[dict[str, Any]] = []
        for event in self.events:
            if event["id"] not in seen:
                seen.add(event["id"])
                first.append(event)
        return first

    async def wait_for(self, done: Callable[[WebhookReceiver], bool], timeout: float = 15) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: done(self))


def client_events(events: list[dict[str, Any]], room: str | None = None) -> list[dict[str, Any]]:
    """The envelopes of the `client_event`s (of one room), in order."""
    return [
        e["event"]
        for e in events
        if e["kind"] == "client_event" and (room is None or e["event"]["room"] == room)
    ]
