"""The native engine end to end: a real uvicorn, the real python-socketio AsyncClient.

Each test runs under roomcast's raw WebSocket protocol (the carrier lives as
callbacks) and uvicorn's default one (the engine's ASGI carrier), and over each
transport python-socketio's client offers: WebSocket only, long-polling only, and
long-polling upgraded to WebSocket.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin

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
        while not check():  # noqa: ASYNC110 - nothing signals these states
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


async def test_a_session_that_never_sends_connect_is_closed_after_the_connect_timeout() -> None:
    """Engine.IO alone, answering every ping, holds no place for ever (Node closes such a
    client at its connectTimeout, 45 s): closed at the first ping past the timeout."""
    async with serving(
        "uvicorn", ping_interval=0.2, ping_timeout=0.3, connect_timeout=0.5
    ) as served:
        async with connect(ws_url(served), compression=None) as ws:
            assert str(await ws.recv()).startswith('0{"sid":')
            pings, others = await answer_pings(ws)
            assert all(m == "1" for m in others)  # the close packet, then the close
        assert pings == 2  # at 0.2 and 0.4 s; the third, at 0.6 s, closes it
        await wait_for(lambda: not served.engine.sessions, "the session table empties")
        assert served.handler.disconnects == []  # never admitted: no disconnect to tell


async def test_a_connected_session_is_not_closed_by_the_connect_timeout() -> None:
    async with (
        serving("uvicorn", ping_interval=0.2, ping_timeout=0.3, connect_timeout=0.3) as served,
        connect(ws_url(served), compression=None) as ws,
    ):
        assert str(await ws.recv()).startswith('0{"sid":')
        await ws.send('40{"token":"ok"}')
        await answer_pings(ws, most=5)
        assert served.engine.sessions  # still open after five pings (1 s)


async def answer_pings(ws: Any, most: int | None = None) -> tuple[int, list[Any]]:
    """Answer each Engine.IO ping until the socket closes or `most` were answered;
    returns the pings answered and every other message, in order."""
    pings, others = 0, []
    async with asyncio.timeout(5):
        async for message in ws:
            if message != "2":
                others.append(message)
                continue
            pings += 1
            await ws.send("3")
            if pings == most:
                break
    return pings, others


def ws_url(served: EngineUnderTest, query: str = "") -> str:
    base = served.url.replace("http://", "ws://")
    return f"{base}/socket.io/?EIO=4&transport=websocket{query}"


async def raw_connected(served: EngineUnderTest) -> tuple[Any, str]:
    ws = await connect(ws_url(served), compression=None, max_size=None)
    assert str(await ws.recv()).startswith('0{"sid":')
    await ws.send('40{"token":"ok"}')
    reply = str(await ws.recv())
    sid = json.loads(reply[2:])["sid"]
    assert reply == '40{"sid":"' + sid + '"}'
    assert await ws.recv() == '42["welcome",{"sid":"' + sid + '"}]'
    return ws, sid


async def test_junk_reaches_the_handler_and_events_are_acked(served: EngineUnderTest) -> None:
    ws, sid = await raw_connected(served)
    async with ws:
        await ws.send("x")  # Engine.IO junk: no ack
        await ws.send(b"\x00\x01")  # a binary message: no ack
        await ws.send('421["connect",{}]')  # a reserved name
        await ws.send('4599999999-2["upload",{"_placeholder":true,"num":0}]')
        await ws.send("423[bad")
        await ws.send('424["echo","still here"]')
        await ws.send('447{"message":"x"}')  # CONNECT_ERROR from a client: no ack
        await ws.send("4" + "[" * 5000)  # Engine.IO junk (nested too deeply): no ack
        await ws.send('425["echo","last"]')
        acks = [str(await ws.recv()) for _ in range(5)]
    assert acks == [
        '431[{"error":"invalid_type","reason":"reserved_event"}]',
        '432[{"error":"invalid_payload","reason":"binary"}]',
        '433[{"error":"invalid_payload","reason":"undecodable"}]',
        '434["still here"]',
        '435["last"]',
    ]
    reasons = [
        args[0].reason if name == "roomcast.junk" else name
        for _, name, args in served.handler.events
    ]
    assert reasons == [
        "engineio",
        "binary",
        "reserved_event",
        "binary",
        "undecodable",
        "echo",
        "undecodable",
        "engineio",
        "echo",
    ]
    assert await next_of(served.handler.on_disconnect) == (sid, "transport_close")


async def test_raw_client_disconnect_and_server_close_order(served: EngineUnderTest) -> None:
    ws, sid = await raw_connected(served)
    async with ws:
        await ws.send("41")
        assert await next_of(served.handler.on_disconnect) == (sid, "client")
    ws, sid = await raw_connected(served)
    async with ws:
        await ws.send('421["close_me"]')
        messages = [message async for message in ws]
    assert messages == ['431["bye"]', "41", "1"]
    assert await next_of(served.handler.on_disconnect) == (sid, "server")
    await wait_for(lambda: not served.engine.sessions, "the session table empties")


async def test_message_over_max_payload_closes_the_websocket() -> None:
    async with serving("raw" if "raw" in WS_PROTOCOLS else "uvicorn", max_payload=2000) as served:
        ws, sid = await raw_connected(served)
        async with ws:
            await ws.send('42["echo","' + "a" * 3000 + '"]')
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        gone, _ = await next_of(served.handler.on_disconnect)
        assert gone == sid


async def test_namespace_other_than_root_is_refused(served: EngineUnderTest) -> None:
    async with connect(ws_url(served), compression=None) as ws:
        await ws.recv()
        await ws.send('40/admin,{"token":"ok"}')
        assert await ws.recv() == '44/admin,{"message":"Invalid namespace"}'
        await ws.send('40{"token":"ok"}')
        assert str(await ws.recv()).startswith('40{"sid":')


async def _get(http: aiohttp.ClientSession, url: str, **kwargs: Any) -> tuple[int, Any]:
    async with http.request(kwargs.pop("method", "GET"), url, **kwargs) as response:
        text = await response.text()
        is_json = response.content_type == "application/json"
        return response.status, json.loads(text) if is_json else text


async def test_polling_errors_as_engine_io_servers_answer_them(served: EngineUnderTest) -> None:
    base = served.url + "/socket.io/"
    async with aiohttp.ClientSession() as http:
        assert await _get(http, base + "?transport=polling") == (
            400,
            {"code": 5, "message": "Unsupported protocol version"},
        )
        assert await _get(http, base + "?EIO=4&transport=carrier-pigeon") == (
            400,
            {"code": 0, "message": "Transport unknown"},
        )
        assert await _get(http, base + "?EIO=4&transport=polling&sid=nope") == (
            400,
            {"code": 1, "message": "Session ID unknown"},
        )
        assert await _get(http, base + "?EIO=4&transport=polling", method="POST", data="x") == (
            400,
            {"code": 2, "message": "Bad handshake method"},
        )
        status, opening = await _get(http, base + "?EIO=4&transport=polling")
        assert status == 200 and opening.startswith("0")
        handshake = json.loads(opening[1:])
        assert handshake["upgrades"] == ["websocket"]
        assert handshake["pingInterval"] == 25000 and handshake["pingTimeout"] == 20000
        url = base + "?EIO=4&transport=polling&sid=" + handshake["sid"]
        assert (await _get(http, url, method="PUT"))[0] == 400
        big = "4" + "x" * (served.engine.max_payload + 1)
        assert (await _get(http, url, method="POST", data=big))[0] == 413
        assert await _get(http, url, method="POST", data='40{"token":"ok"}') == (200, "ok")
        status, body = await _get(http, url)
        assert status == 200 and body.startswith('40{"sid":')
        # A second GET while one waits: 400, and the session is closed.
        first = asyncio.ensure_future(_get(http, url))
        await wait_for(lambda: served.engine.sessions[handshake["sid"]].poller is not None, "GET")
        assert (await _get(http, url))[0] == 400
        assert (await first)[0] in (200, 400)
        _, reason = await next_of(served.handler.on_disconnect)
        assert reason == "transport_error"
        assert (await _get(http, url))[0] == 400


async def test_origins() -> None:
    async with serving("uvicorn", cors_allowed_origins=["https://app.example"]) as served:
        base = served.url + "/socket.io/?EIO=4&transport=polling"
        async with aiohttp.ClientSession() as http:
            status, body = await _get(http, base, headers={"Origin": "https://evil.example"})
            assert (status, body) == (403, {"code": 4, "message": "Forbidden"})
            async with http.get(base, headers={"Origin": "https://app.example"}) as response:
                assert response.status == 200
                assert response.headers["access-control-allow-origin"] == "https://app.example"
                assert response.headers["access-control-allow-credentials"] == "true"
            preflight = {
                "Origin": "https://app.example",
                "Access-Control-Request-Headers": "content-type",
            }
            async with http.options(base, headers=preflight) as response:
                assert response.status == 204
                assert "POST" in response.headers["access-control-allow-methods"]
                assert response.headers["access-control-allow-headers"] == "content-type"
            assert (await _get(http, base))[0] == 200  # no Origin: not a browser
        with pytest.raises(InvalidStatus) as refused:
            await connect(ws_url(served), origin=Origin("https://evil.example"))
        assert refused.value.response.status_code == 403
    async with serving("uvicorn") as served:  # None: the request's own origin only
        base = served.url + "/socket.io/?EIO=4&transport=polling"
        async with aiohttp.ClientSession() as http:
            assert (await _get(http, base, headers={"Origin": "http://other:1"}))[0] == 403
            assert (await _get(http, base, headers={"Origin": served.url}))[0] == 200


NODE_CLIENT = Path(__file__).with_name("node_client.js")
NODE_MODULES = Path(__file__).parents[2] / "clients" / "js" / "node_modules"


@pytest.mark.skipif(
    shutil.which("node") is None or not (NODE_MODULES / "socket.io-client").is_dir(),
    reason="node or socket.io-client missing",
)
@pytest.mark.parametrize("transports", ["polling,websocket", "websocket", "polling"])
async def test_socket_io_client_under_node(served: EngineUnderTest, transports: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(NODE_CLIENT),
        served.url,
        transports,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "NODE_PATH": str(NODE_MODULES)},
    )
    async with asyncio.timeout(20):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    seen = json.loads(out.decode().strip().splitlines()[-1])
    assert seen["refused"] == {"message": "unauthorized", "data": {"token": "refused"}}
    admitted = seen["admitted"]
    assert admitted["welcome"] is True
    assert admitted["ack"] == {"hello": "wörld"}
    assert admitted["numbers"] == list(range(100))
    expected = "polling" if transports == "polling" else "websocket"
    assert admitted["transports"] == [expected]
    assert admitted["disconnect"] == "io server disconnect"
    sid = served.handler.connected_sids[0]
    assert await next_of(served.handler.on_disconnect) == (sid, "server")
