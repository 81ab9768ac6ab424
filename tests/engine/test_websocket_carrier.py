"""RawWebSocketProtocol under a real uvicorn, driven by real WebSocket clients.

The application here is the test's own: on /echo it accepts, attaches a sink that
echoes (and obeys a few commands) and returns, as roomcast's engine does; on
/generic it is a plain ASGI websocket application (receive/send loop); other paths
refuse or deny the upgrade. Clients: the `websockets` library, aiohttp, and raw
sockets for what no client library will send.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import uvicorn
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from roomcast.engine.contract import Carrier, frame_of
from roomcast.engine.websocket import CARRIER_EXTENSION, CLOSE_TIMEOUT, RawWebSocketProtocol
from roomcast.transport.internals import HeadLimitedHttpToolsProtocol
from tests.engine.test_frames import BINARY, CLOSE, PING, PONG, TEXT, client_frame
from tests.support.processes import HOST

MAX_SIZE = 4096
KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455's example answer to KEY


def _as_carrier(protocol: RawWebSocketProtocol) -> Carrier:
    return protocol  # mypy checks here that the protocol is a contract.Carrier


class EchoSink:
    """Echoes each message; "close:<code>" closes, "flood:<n>:<size>" floods."""

    def __init__(self, app: EchoApp, carrier: Carrier) -> None:
        self.app = app
        self.carrier = carrier
        self.closed = 0
        self.received: list[str | bytes] = []

    def on_message(self, data: str | bytes) -> None:
        if isinstance(data, str) and data.startswith("close:"):
            self.carrier.close(int(data[6:]))
            return
        if isinstance(data, str) and data.startswith("flood:"):
            count, size = map(int, data[6:].split(":"))
            frame = frame_of(b"x" * size)
            for _ in range(count // 16):
                assert self.carrier.write([frame] * 16)
            backlog = self.carrier.backlog()
            self.carrier.notify_drained(self.drained)
            self.app.flooded.set_result(backlog)
            return
        self.received.append(data)
        self.carrier.write([frame_of(data)])
        if data == "after" and not self.app.after.done():
            self.app.after.set_result(None)

    def drained(self) -> None:
        self.app.drained.set_result(self.carrier.backlog())
        self.carrier.write([frame_of("drained")])

    def on_closed(self) -> None:
        self.closed += 1
        self.app.closed.put_nowait(self)


@dataclass
class EchoApp:
    sinks: list[EchoSink] = field(default_factory=list)
    carriers: list[Any] = field(default_factory=list)
    closed: asyncio.Queue[EchoSink] = field(default_factory=asyncio.Queue)
    generic_ended: asyncio.Future[dict[str, Any]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    flooded: asyncio.Future[int] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    drained: asyncio.Future[int] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    generic_backlog: asyncio.Future[int] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    release: asyncio.Future[None] = field(  # when /late attaches
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    after: asyncio.Future[None] = field(  # a sink heard "after"
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    scopes: list[dict[str, Any]] = field(default_factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        self.scopes.append(scope)
        assert (await receive())["type"] == "websocket.connect"
        path = scope["path"]
        if path == "/echo":
            carrier = scope["extensions"][CARRIER_EXTENSION]
            await send({"type": "websocket.accept", "headers": [(b"x-test", b"1")]})
            sink = EchoSink(self, carrier)
            self.sinks.append(sink)
            self.carriers.append(carrier)
            carrier.attach(sink)
        elif path == "/late":
            carrier = scope["extensions"][CARRIER_EXTENSION]
            await send({"type": "websocket.accept"})
            await self.release
            sink = EchoSink(self, carrier)
            self.sinks.append(sink)
            carrier.attach(sink)
        elif path == "/generic":
            await self.generic(scope, receive, send)
        elif path == "/refuse":
            await send({"type": "websocket.close"})
        elif path == "/deny":
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": 401,
                    "headers": [(b"x-why", b"token")],
                }
            )
            await send({"type": "websocket.http.response.body", "body": b"no ", "more_body": True})
            await send({"type": "websocket.http.response.body", "body": b"token"})
        elif path == "/fail":
            raise RuntimeError("the application fails before accepting")

    async def generic(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        subprotocol = scope["subprotocols"][0] if scope["subprotocols"] else None
        await send({"type": "websocket.accept", "subprotocol": subprotocol})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                self.generic_ended.set_result(message)
                return
            if message.get("text") == "bye":
                await send({"type": "websocket.close", "code": 4001})
                continue
            if message.get("text", "").startswith("flood:"):
                await self.generic_flood(scope, message["text"], send)
                continue
            if message.get("text") is not None:
                await send({"type": "websocket.send", "text": message["text"].upper()})
            else:
                await send({"type": "websocket.send", "bytes": message["bytes"][::-1]})

    async def generic_flood(self, scope: dict[str, Any], command: str, send: Any) -> None:
        count, size = map(int, command[6:].split(":"))
        carrier = scope["extensions"][CARRIER_EXTENSION]
        most = 0
        for _ in range(count):
            await send({"type": "websocket.send", "bytes": b"x" * size})
            most = max(most, carrier.backlog())
        await send({"type": "websocket.send", "text": "done"})
        self.generic_backlog.set_result(most)


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


@dataclass
class Served:
    app: EchoApp
    server: uvicorn.Server
    port: int

    def url(self, path: str) -> str:
        return f"ws://{HOST}:{self.port}{path}"

    @property
    def connections(self) -> set[Any]:
        return self.server.server_state.connections

    @property
    def tasks(self) -> set[asyncio.Task[None]]:
        return self.server.server_state.tasks


@contextlib.asynccontextmanager
async def serving(
    app: EchoApp, http: Any = HeadLimitedHttpToolsProtocol
) -> AsyncIterator[tuple[Served, asyncio.Task[None]]]:
    """`app` under uvicorn with roomcast's protocols, on a pre-bound free port."""
    sock = free_socket()
    config = uvicorn.Config(
        app,
        ws=RawWebSocketProtocol,
        http=http,
        lifespan="off",
        log_level="warning",
        ws_max_size=MAX_SIZE,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield Served(app, server, sock.getsockname()[1]), task
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    async with serving(EchoApp()) as (running, _):
        yield running


async def raw_upgrade(
    served: Served, path: str = "/echo", *, rcvbuf: int | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw socket through the handshake, for frames no client library sends."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (HOST, served.port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 20)
    writer.write(request(path))
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 "), head
    assert b"sec-websocket-accept: " + ACCEPT + b"\r\n" in head, head
    return reader, writer


def request(path: str = "/echo", extra: bytes = b"", version: bytes = b"13") -> bytes:
    return (
        b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: " + KEY + b"\r\n"
        b"Sec-WebSocket-Version: " + version + b"\r\n" + extra + b"\r\n"
    )


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """(opcode, payload) of one server frame, which is unmasked and unfragmented."""
    first, second = await reader.readexactly(2)
    assert first & 0x80 and not second & 0x80, (first, second)
    size = second & 0x7F
    if size == 126:
        size = int.from_bytes(await reader.readexactly(2), "big")
    elif size == 127:
        size = int.from_bytes(await reader.readexactly(8), "big")
    return first & 0x0F, await reader.readexactly(size)


async def answer_of(served: Served, data: bytes) -> bytes:
    """The whole HTTP answer to `data` (the server closes after it)."""
    reader, writer = await asyncio.open_connection(HOST, served.port)
    try:
        writer.write(data)
        async with asyncio.timeout(5):
            return await reader.read(-1)
    finally:
        writer.close()


# Messages -------------------------------------------------------------------------------


async def test_echo_with_websockets(served: Served) -> None:
    async with connect(served.url("/echo")) as ws:
        assert ws.response is not None and ws.response.headers["x-test"] == "1"
        assert ws.response.headers.get("sec-websocket-extensions") is None  # no deflate
        messages: list[str | bytes] = ["hello", "é" * 1000, b"\x00\x01", b""]
        for message in messages:
            await ws.send(message)
            assert await ws.recv() == message
        await ws.send(["frag", "mented ", "text"])  # one message in three frames
        assert await ws.recv() == "fragmented text"
        await ws.send([b"bin", b"ary"])
        assert await ws.recv() == b"binary"
        latency = await ws.ping(b"are you there")
        await asyncio.wait_for(latency, 5)
    sink = await asyncio.wait_for(served.app.closed.get(), 5)
    assert sink.closed == 1
    assert not served.tasks  # the application's call ended with the accept


@pytest.mark.parametrize("http", ["h11", "httptools"])
async def test_echo_under_uvicorns_own_http_protocols(http: str) -> None:
    async with serving(EchoApp(), http) as (served, _):
        async with connect(served.url("/echo?q=1")) as ws:
            await ws.send("through " + http)
            assert await ws.recv() == "through " + http
        assert served.app.scopes[0]["query_string"] == b"q=1"


async def test_echo_with_aiohttp(served: Served) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(served.url("/echo"), autoping=False) as ws:
            await ws.send_str("hi")
            assert (await ws.receive()).data == "hi"
            await ws.send_bytes(b"\xff" * 3000)
            assert (await ws.receive()).data == b"\xff" * 3000
            await ws.ping(b"p")
            pong = await ws.receive()
            assert pong.type == aiohttp.WSMsgType.PONG and pong.data == b"p"
            await ws.close(code=4002)
        assert ws.close_code == 4002  # our echo of its close
    assert (await asyncio.wait_for(served.app.closed.get(), 5)).closed == 1


async def test_messages_split_and_batched_across_reads(served: Served) -> None:
    reader, writer = await raw_upgrade(served)
    frames = b"".join(client_frame(TEXT, f"m{i}".encode()) for i in range(50))
    frames += client_frame(TEXT, b"frag", fin=False) + client_frame(0, b"ment")
    for i in range(0, len(frames), 7):
        writer.write(frames[i : i + 7])
        await writer.drain()
    for i in range(50):
        assert await read_frame(reader) == (TEXT, f"m{i}".encode())
    assert await read_frame(reader) == (TEXT, b"fragment")
    writer.write(client_frame(PING, b"1") + client_frame(BINARY, b"b"))
    assert await read_frame(reader) == (PONG, b"1")
    assert await read_frame(reader) == (BINARY, b"b")
    writer.close()


# Failures -------------------------------------------------------------------------------


async def test_an_oversized_message_closes_1009(served: Served) -> None:
    async with connect(served.url("/echo")) as ws:
        await ws.send("x" * MAX_SIZE)
        assert await ws.recv() == "x" * MAX_SIZE
        await ws.send("x" * (MAX_SIZE + 1))
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    assert (await asyncio.wait_for(served.app.closed.get(), 5)).closed == 1


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (client_frame(TEXT, b"plain", masked=False), 1002),
        (client_frame(TEXT, b"\xc3\x28"), 1007),
        (client_frame(TEXT, b"deflated?", rsv=4), 1002),
        (client_frame(CLOSE, (1005).to_bytes(2, "big")), 1002),
    ],
    ids=["unmasked", "bad-utf8", "rsv1", "close-1005"],
)
async def test_a_protocol_violation_closes_with_its_code(
    served: Served, frame: bytes, code: int
) -> None:
    reader, writer = await raw_upgrade(served)
    writer.write(client_frame(TEXT, b"before") + frame + client_frame(TEXT, b"after"))
    assert await read_frame(reader) == (TEXT, b"before")
    opcode, payload = await read_frame(reader)
    assert opcode == CLOSE and int.from_bytes(payload[:2], "big") == code
    assert await asyncio.wait_for(reader.read(), 5) == b""  # and the server closed
    writer.close()
    assert (await asyncio.wait_for(served.app.closed.get(), 5)).closed == 1


# Closing --------------------------------------------------------------------------------


async def test_the_client_closes(served: Served) -> None:
    reader, writer = await raw_upgrade(served)
    writer.write(client_frame(CLOSE, (1001).to_bytes(2, "big") + b"going"))
    assert await read_frame(reader) == (CLOSE, (1001).to_bytes(2, "big"))
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    sink = await asyncio.wait_for(served.app.closed.get(), 5)
    assert sink.closed == 1
    assert not sink.carrier.write([frame_of("late")])


async def test_a_lost_connection_is_closed_once(served: Served) -> None:
    _, writer = await raw_upgrade(served)
    writer.write(client_frame(TEXT, b"half a frame")[:5])
    writer.transport.abort()  # no close frame: the TCP connection just goes
    sink = await asyncio.wait_for(served.app.closed.get(), 5)
    assert sink.closed == 1 and sink.received == []
    assert not sink.carrier.write([frame_of("late")])
    assert not served.connections


async def test_the_server_closes_and_waits_for_the_client(served: Served) -> None:
    async with connect(served.url("/echo")) as ws:
        await ws.send("close:4000")
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 4000
    sink = await asyncio.wait_for(served.app.closed.get(), 5)
    assert sink.closed == 1
    sink.carrier.close()  # idempotent
    assert not sink.carrier.write([frame_of("late")])
    await asyncio.sleep(0)
    assert sink.closed == 1


async def test_a_client_that_never_answers_the_close_is_cut_off(served: Served) -> None:
    reader, writer = await raw_upgrade(served)
    writer.write(client_frame(TEXT, b"close:1000") + client_frame(TEXT, b"ignored"))
    assert await read_frame(reader) == (CLOSE, (1000).to_bytes(2, "big"))
    async with asyncio.timeout(CLOSE_TIMEOUT + 2):
        assert await reader.read() == b""  # no echo of "ignored", then the cut
    writer.close()
    assert (await served.app.closed.get()).closed == 1


async def test_many_connections(served: Served) -> None:
    clients = await asyncio.gather(*(connect(served.url("/echo")) for _ in range(200)))
    try:
        assert len(served.connections) == 200
        assert not served.tasks
        await asyncio.gather(*(ws.send(f"n{i}") for i, ws in enumerate(clients)))
        answers = await asyncio.gather(*(ws.recv() for ws in clients))
        assert answers == [f"n{i}" for i in range(200)]
    finally:
        await asyncio.gather(*(ws.close() for ws in clients))
    for _ in range(200):
        assert (await asyncio.wait_for(served.app.closed.get(), 5)).closed == 1
    assert not served.connections


async def test_an_idle_attached_connection_keeps_no_handshake_state(served: Served) -> None:
    async with connect(served.url("/echo")) as ws:
        await ws.send("x")
        await ws.recv()
        (carrier,) = served.app.carriers
        assert not served.tasks
        for name in ("_head", "_scope", "_handshake", "_pending", "_waiter", "_drained"):
            assert getattr(carrier, name) is None, name
        assert carrier._parser._buffer is None and carrier._parser._fragments is None
        assert not hasattr(carrier, "__dict__")
        assert sys.getsizeof(carrier) + sys.getsizeof(carrier._parser) < 400


# Flow control ---------------------------------------------------------------------------


async def test_a_client_that_stops_reading_builds_a_backlog_then_drains(served: Served) -> None:
    reader, writer = await raw_upgrade(served, rcvbuf=4096)
    count, size = 512, 32 * 1024  # 16 MiB: past what the kernel buffers will take
    writer.write(client_frame(TEXT, f"flood:{count}:{size}".encode()))
    backlog = await asyncio.wait_for(served.app.flooded, 5)
    assert backlog > 64 * 1024  # the transport holds the rest, past its high-water mark
    assert not served.app.drained.done()  # the client reads nothing yet
    for _ in range(count):  # now the client reads
        assert await read_frame(reader) == (BINARY, b"x" * size)
    assert await read_frame(reader) == (TEXT, b"drained")
    assert await served.app.drained <= 64 * 1024
    writer.close()


async def test_pings_are_not_answered_while_the_client_leaves_writes_unread(
    served: Served,
) -> None:
    reader, writer = await raw_upgrade(served, rcvbuf=4096)
    count, size = 512, 32 * 1024
    writer.write(client_frame(TEXT, f"flood:{count}:{size}".encode()))
    await asyncio.wait_for(served.app.flooded, 5)
    writer.write(b"".join(client_frame(PING, b"%d" % i) for i in range(1000)))
    writer.write(client_frame(TEXT, b"after"))
    await asyncio.wait_for(served.app.after, 5)  # the server has read every ping
    opcodes = []
    while (frame := await read_frame(reader)) != (TEXT, b"after"):
        opcodes.append(frame[0])
    assert opcodes.count(BINARY) == count and PONG not in opcodes
    assert await read_frame(reader) == (TEXT, b"drained")
    writer.write(client_frame(PING, b"now"))
    assert await read_frame(reader) == (PONG, b"now")
    writer.close()


async def test_notify_drained_without_a_backlog_is_called_from_the_loop(served: Served) -> None:
    async with connect(served.url("/echo")) as ws:
        await ws.send("x")
        await ws.recv()
        (carrier,) = served.app.carriers
        called: list[int] = []
        carrier.notify_drained(lambda: called.append(1))
        assert not called
        await asyncio.sleep(0)
        assert called == [1]


# The generic ASGI path ------------------------------------------------------------------


async def test_a_generic_asgi_application(served: Served) -> None:
    async with connect(served.url("/generic"), subprotocols=["chat"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "chat"
        await ws.send("hello")
        assert await ws.recv() == "HELLO"
        await ws.send(b"abc")
        assert await ws.recv() == b"cba"
        for i in range(40):  # more than it reads at once: reading pauses, then resumes
            await ws.send(f"m{i}")
        for i in range(40):
            assert await ws.recv() == f"M{i}"
        await ws.close(1001)
    ended = await asyncio.wait_for(served.app.generic_ended, 5)
    assert ended["code"] == 1001
    assert not served.tasks or await _tasks_end(served)


async def test_a_generic_application_closes(served: Served) -> None:
    async with connect(served.url("/generic")) as ws:
        await ws.send("bye")
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 4001
    ended = await asyncio.wait_for(served.app.generic_ended, 5)
    assert ended["code"] == 4001


async def test_a_generic_application_waits_for_a_slow_client(served: Served) -> None:
    reader, writer = await raw_upgrade(served, "/generic", rcvbuf=4096)
    count, size = 512, 32 * 1024
    writer.write(client_frame(TEXT, f"flood:{count}:{size}".encode()))
    for _ in range(count):
        assert await read_frame(reader) == (BINARY, b"x" * size)
    assert await read_frame(reader) == (TEXT, b"done")
    # Each send waited while the transport was past its high-water mark (64 KiB).
    assert await served.app.generic_backlog <= 64 * 1024 + size + 16
    writer.close()


async def test_messages_before_a_late_attach_are_handed_over_in_order(served: Served) -> None:
    reader, writer = await raw_upgrade(served, "/late")
    writer.write(b"".join(client_frame(TEXT, b"m%d" % i) for i in range(3)))
    writer.write(client_frame(CLOSE, (1000).to_bytes(2, "big")))
    assert await read_frame(reader) == (CLOSE, (1000).to_bytes(2, "big"))
    assert await reader.read() == b""
    assert not served.app.sinks
    served.app.release.set_result(None)
    sink = await asyncio.wait_for(served.app.closed.get(), 5)
    assert sink.received == ["m0", "m1", "m2"] and sink.closed == 1
    writer.close()


async def test_a_fastapi_websocket_route() -> None:
    api = FastAPI()
    ended: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    @api.websocket("/ws/{name}")
    async def route(websocket: WebSocket, name: str) -> None:
        await websocket.accept()
        try:
            while True:
                await websocket.send_text(name + ": " + await websocket.receive_text())
        except WebSocketDisconnect as disconnect:
            ended.set_result(disconnect.code)

    async with serving(api) as (served, _):  # type: ignore[arg-type]
        async with connect(served.url("/ws/bob")) as ws:
            await ws.send("hi")
            assert await ws.recv() == "bob: hi"
        assert await asyncio.wait_for(ended, 5) == 1000


async def _tasks_end(served: Served) -> bool:
    await asyncio.wait_for(asyncio.gather(*served.tasks), 5)
    return True


async def test_the_scope_is_uvicorns(served: Served) -> None:
    async with connect(served.url("/echo?a=1&b=%20")) as ws:
        await ws.send("x")
        await ws.recv()
    (scope,) = served.app.scopes
    assert scope["type"] == "websocket" and scope["scheme"] == "ws"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["path"] == "/echo" and scope["raw_path"] == b"/echo"
    assert scope["query_string"] == b"a=1&b=%20"
    assert scope["server"] == (HOST, served.port)
    assert scope["client"][0] == HOST
    assert scope["root_path"] == "" and scope["subprotocols"] == []
    assert (b"upgrade", b"websocket") in scope["headers"]
    assert all(name == name.lower() for name, _ in scope["headers"])
    assert "websocket.http.response" in scope["extensions"]
    assert scope["state"] == {}


# Refusals -------------------------------------------------------------------------------


async def test_closing_before_accept_is_403(served: Served) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await connect(served.url("/refuse"))
    assert refused.value.response.status_code == 403


async def test_the_denial_extension_sends_its_response(served: Served) -> None:
    answer = await answer_of(served, request("/deny"))
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401 Unauthorized\r\n")
    assert b"x-why: token" in head and b"content-length: 8" in head
    assert body == b"no token"


async def test_an_application_that_fails_before_accepting_is_500(served: Served) -> None:
    answer = await answer_of(served, request("/fail"))
    assert answer.startswith(b"HTTP/1.1 500 ")


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (request(extra=b"Authorization: Bearer " + b"a" * 10_000 + b"\r\n"), b"431"),
        (request(extra=b"".join(b"X-%d: y\r\n" % i for i in range(130))), b"431"),
        (request(version=b"8"), b"426"),
        (request().replace(KEY, b"short"), b"400"),
        (request().replace(b"Sec-WebSocket-Key: " + KEY + b"\r\n", b""), b"400"),
        (request().replace(b"GET ", b"POST "), b"400"),
    ],
    ids=["line-10kB", "130-headers", "version-8", "bad-key", "no-key", "post"],
)
async def test_a_bad_upgrade_request_is_answered_and_closed(
    served: Served, data: bytes, status: bytes
) -> None:
    answer = await answer_of(served, data)
    assert answer.startswith(b"HTTP/1.1 " + status + b" "), answer[:100]
    assert not served.app.scopes


async def test_headers_within_the_limits_are_served(served: Served) -> None:
    async with connect(
        served.url("/echo"), additional_headers={"Authorization": "Bearer " + "a" * 8000}
    ) as ws:
        await ws.send("ok")
        assert await ws.recv() == "ok"


# Shutdown -------------------------------------------------------------------------------


async def test_shutdown_closes_1012() -> None:
    async with serving(EchoApp()) as (served, task):
        clients = [await connect(served.url("/echo")) for _ in range(3)]
        generic = await connect(served.url("/generic"))
        served.server.should_exit = True
        await asyncio.wait_for(task, 10)
        for ws in [*clients, generic]:
            await asyncio.wait_for(ws.wait_closed(), 5)
            assert ws.close_code == 1012 and ws.close_reason == "server restart"
        assert (await served.app.generic_ended)["code"] == 1012
        assert not served.connections
        for _ in clients:
            assert (served.app.closed.get_nowait()).closed == 1
