"""The native engine end to end: a real uvicorn, the real python-socketio AsyncClient.

Each test runs under roomcast's raw WebSocket protocol (the carrier lives as
callbacks) and uvicorn's default one (the engine's ASGI carrier), and over each
transport python-socketio's client offers: WebSocket only, long-polling only, and
long-polling upgraded to WebSocket.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import socketio
from websockets.asyncio.client import connect

from tests.engine.engine_support import WS_PROTOCOLS, EngineUnderTest, next_of, serving

TRANSPORTS = {
    "websocket": ["websocket"],
    "polling": ["polling"],
    "upgrade": ["polling", "websocket"],
}


@pytest.fixture(params=sorted(WS_PROTOCOLS), ids=lambda ws: f"ws={ws}")
async def served(request: pytest.FixtureRequest) -> AsyncIterator[EngineUnderTest]:
    async with serving(request.param, ping_interval=25.0, ping_timeout=20.0) as running:
        yield running


class Client:
    """python-socketio's AsyncClient, recording every event in order."""

    def __init__(self) -> None:
        self.http = aiohttp.ClientSession()
        self.sio = socketio.AsyncClient(reconnection=False, http_session=self.http)
        self.events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.disconnected = asyncio.Event()
        self.connect_errors: list[Any] = []
        self.sio.on("*", self._any)
        self.sio.on("disconnect", self._disconnect)
        self.sio.on("connect_error", self._connect_error)

    async def _any(self, event: str, data: Any = None) -> None:
        self.events.put_nowait((event, data))

    async def _disconnect(self, reason: Any = None) -> None:
        self.disconnected.set()

    async def _connect_error(self, data: Any = None) -> None:
        self.connect_errors.append(data)

    async def connect(self, url: str, transports: list[str], token: str = "ok") -> None:
        await self.sio.connect(url, auth={"token": token}, transports=transports, wait_timeout=5)

    async def next(self, event: str, timeout: float = 5) -> Any:
        async with asyncio.timeout(timeout):
            while True:
                name, data = await self.events.get()
                if name == event:
                    return data

    async def close(self) -> None:
        if self.sio.connected:
            # python-engineio's client drops its DISCONNECT and CLOSE packets when it
            # disconnects while a long-polling POST is still in flight (its write loop
            # then sees the state change and quits): the server would hear of the
            # disconnect only from the heartbeat. Let what it sent be answered first.
            async with asyncio.timeout(5):
                await self.sio.eio.queue.join()
            await self.sio.disconnect()
        await self.http.close()


async def connected_client(served: EngineUnderTest, transport: str) -> tuple[Client, str]:
    client = Client()
    await client.connect(served.url, TRANSPORTS[transport])
    sid = await next_of(served.handler.on_connected)
    assert await client.next("welcome") == {"sid": sid}
    assert client.sio.get_sid() == sid
    return client, sid


async def wait_for(check: Any, what: str, timeout: float = 5.0) -> None:
    """Until `check()` holds: for state the engine reaches without telling anyone."""
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)
    assert check(), what


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
async def test_connect_ack_and_client_disconnect(served: EngineUnderTest, transport: str) -> None:
    client, sid = await connected_client(served, transport)
    try:
        assert await client.sio.call("echo", {"a": [1, "é"]}, timeout=5) == {"a": [1, "é"]}
        assert await client.sio.call("echo", None, timeout=5) is None
        await client.sio.emit("plain", [1, 2])
        assert (await next_of(served.handler.on_event))[1] == "echo"
        assert (await next_of(served.handler.on_event))[1] == "echo"
        assert await next_of(served.handler.on_event) == (sid, "plain", [[1, 2]])
        handshake = served.handler.connects[0][1]
        assert handshake.address == "127.0.0.1"
        assert handshake.query["EIO"] == "4"
        assert "host" in handshake.headers
    finally:
        await client.close()
    # On WebSocket python-engineio's client closes the socket before its write loop
    # sends DISCONNECT and CLOSE (it yields only in ws.close()): the server then sees
    # the WebSocket go. test_raw_client_disconnect sends them for sure.
    reasons = {"client"} if transport == "polling" else {"client", "transport_close"}
    gone, reason = await next_of(served.handler.on_disconnect)
    assert gone == sid and reason in reasons
    await wait_for(lambda: not served.engine.sessions, "the session table empties")
    assert served.handler.disconnects == [(sid, reason)]
    assert served.engine.outlet.size() == 0
    assert len(served.engine.heartbeat) == 0 and not served.engine.heartbeat.running


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
async def test_refused_connect_reaches_the_client(served: EngineUnderTest, transport: str) -> None:
    client = Client()
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(served.url, TRANSPORTS[transport], token="bad")
        assert client.connect_errors == [{"message": "unauthorized", "data": {"token": "refused"}}]
    finally:
        await client.close()
    await wait_for(lambda: not served.engine.sessions, "the refused session is dropped")
    assert served.handler.disconnects == []
    assert served.handler.connected_sids == []


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
async def test_server_disconnect_reaches_the_client_once(
    served: EngineUnderTest, transport: str
) -> None:
    client, sid = await connected_client(served, transport)
    try:
        await served.engine.disconnect(sid)
        async with asyncio.timeout(5):
            await client.disconnected.wait()
        await served.engine.disconnect(sid)  # a second time: nothing more
    finally:
        await client.close()
    assert await next_of(served.handler.on_disconnect) == (sid, "server")
    await wait_for(lambda: not served.engine.sessions, "the session table empties")
    assert served.handler.disconnects == [(sid, "server")]


async def test_events_in_order_across_the_upgrade(served: EngineUnderTest) -> None:
    client = Client()
    await client.connect(served.url, TRANSPORTS["upgrade"])
    sid = await next_of(served.handler.on_connected)
    try:
        outlet = served.engine.outlet
        for n in range(200):
            assert outlet.push(sid, outlet.encode("n", n))
            if n % 10 == 0:
                await asyncio.sleep(0.005)  # let the upgrade happen meanwhile
        received = [await client.next("n") for _ in range(200)]
        assert received == list(range(200))
        await wait_for(lambda: outlet.writes_direct(sid), "the session upgraded")
        assert client.sio.transport() == "websocket"
        assert await client.sio.call("echo", "after", timeout=5) == "after"
    finally:
        await client.close()
    assert client.events.empty() or all(name != "n" for name, _ in _drain(client.events))


def _drain(queue: asyncio.Queue[Any]) -> list[Any]:
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items


async def test_heartbeat_closes_a_client_that_stops_answering() -> None:
    async with serving("uvicorn", ping_interval=0.2, ping_timeout=0.3) as served:
        url = served.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        async with connect(url, compression=None) as ws:
            opening = json.loads(str(await ws.recv())[1:])
            assert opening["pingInterval"] == 200 and opening["pingTimeout"] == 300
            await ws.send('40{"token":"ok"}')
            assert str(await ws.recv()).startswith("40")
            sid = await next_of(served.handler.on_connected)
            pings = 0
            async with asyncio.timeout(5):
                async for message in ws:
                    if message == "2":
                        pings += 1
                        if pings <= 3:
                            await ws.send("3")  # answers the first three pings only
        assert pings == 4
        assert await next_of(served.handler.on_disconnect) == (sid, "ping_timeout")
        await wait_for(lambda: not served.engine.sessions, "the session table empties")
        assert len(served.engine.heartbeat) == 0 and not served.engine.heartbeat.running
