"""A real uvicorn serving roomcast's engine with a small SocketHandler of the tests' own."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from roomcast.engine.app import EngineASGIApp
from roomcast.engine.contract import ConnectRefused, Handshake
from roomcast.engine.junk import JUNK_EVENT, Junk
from roomcast.engine.server import EngineServer
from roomcast.engine.websocket import RawWebSocketProtocol
from tests.support.server import uvicorn_serving

#: The WebSocket protocols the engine is served under: roomcast's raw carrier, and
#: uvicorn's default (the engine's ASGI carrier).
WS_PROTOCOLS: dict[str, Any] = {"uvicorn": "auto", "raw": RawWebSocketProtocol}


@dataclass
class EchoHandler:
    """Admits a token other than "bad"; answers "echo" with its argument, junk with its
    reason; records everything, in order."""

    connects: list[tuple[str, Handshake]] = field(default_factory=list)
    connected_sids: list[str] = field(default_factory=list)
    events: list[tuple[str, str, list[Any]]] = field(default_factory=list)
    disconnects: list[tuple[str, str]] = field(default_factory=list)
    on_connected: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    on_event: asyncio.Queue[tuple[str, str, list[Any]]] = field(default_factory=asyncio.Queue)
    on_disconnect: asyncio.Queue[tuple[str, str]] = field(default_factory=asyncio.Queue)
    engine: EngineServer | None = None

    async def connect(self, sid: str, handshake: Handshake) -> None:
        self.connects.append((sid, handshake))
        auth = handshake.auth
        if not isinstance(auth, dict) or auth.get("token") == "bad":
            raise ConnectRefused("unauthorized", {"token": "refused"})

    def connected(self, sid: str) -> None:
        self.connected_sids.append(sid)
        assert self.engine is not None
        self.engine.outlet.send(sid, "welcome", {"sid": sid})
        self.on_connected.put_nowait(sid)

    async def event(self, sid: str, name: str, args: list[Any]) -> Any:
        self.events.append((sid, name, args))
        self.on_event.put_nowait((sid, name, args))
        if name == "echo":
            return args[0] if args else None
        if name == "slow":
            await asyncio.sleep(float(args[0]))
            return "slow"
        if name == "publish":
            asyncio.get_running_loop().create_task(self._publish(sid, int(args[0])))
            return None
        if name == "close_me":
            assert self.engine is not None
            asyncio.get_running_loop().create_task(self.engine.disconnect(sid))
            return "bye"
        if name == JUNK_EVENT:
            junk = args[0]
            assert isinstance(junk, Junk)
            return {"error": junk.error.code, "reason": junk.reason}
        return None

    async def _publish(self, sid: str, count: int) -> None:
        """`count` events "n", a few per loop iteration, so a transport upgrade
        happens while they flow."""
        assert self.engine is not None
        outlet = self.engine.outlet
        for n in range(count):
            outlet.push(sid, outlet.encode("n", n), force=True)
            if n % 5 == 4:
                await asyncio.sleep(0.002)

    async def disconnect(self, sid: str, reason: str) -> None:
        self.disconnects.append((sid, reason))
        self.on_disconnect.put_nowait((sid, reason))


@dataclass
class EngineUnderTest:
    url: str
    engine: EngineServer
    handler: EchoHandler
    ws: str


@contextlib.asynccontextmanager
async def serving(ws: str = "uvicorn", **engine_kwargs: Any) -> AsyncIterator[EngineUnderTest]:
    engine = EngineServer(**engine_kwargs)
    handler = EchoHandler(engine=engine)
    engine.serve(handler)
    app = EngineASGIApp(engine, None)
    async with uvicorn_serving(
        app, lifespan="off", ws=WS_PROTOCOLS[ws], ws_max_size=engine.max_message_bytes
    ) as url:
        try:
            yield EngineUnderTest(url, engine, handler, ws)
        finally:
            await engine.aclose()


async def next_of(queue: asyncio.Queue[Any], timeout: float = 5.0) -> Any:
    async with asyncio.timeout(timeout):
        return await queue.get()
