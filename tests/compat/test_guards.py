"""One test per assumption of the guards in transport/internals.py (U8-U10, E7-E9, S6).

The guards protect the server from hostile input below roomcast's own code: request
heads that never end, handshakes websockets refuses, Engine.IO packets that do not
decode, clients that ignore a disconnect; and they say when a slow connection drained.
Each test drives the real library and fails naming the assumption an upgrade broke.
"""

from __future__ import annotations

import asyncio
import gc
import socket
from typing import Any

import engineio

from roomcast.transport.internals import (
    MAX_HEAD_BYTES,
    WIRE_EXTENSION,
    GuardedWebSocket,
    HeadLimitedHttpToolsProtocol,
    WiredEngineIOServer,
)
from roomcast.transport.packets import EngineIOJunk
from roomcast.transport.wire import text_frame
from tests.compat.harness import Bench, broken, scripted, serving
from tests.support.raw_socketio import RawSocketIO

ANSWER_WITHIN = 1.0


async def answer_to(host: str, request: bytes) -> tuple[bytes, bool]:
    """The first line the server answers `request` with, and whether it then closed."""
    name, port = host.split(":")
    reader, writer = await asyncio.open_connection(name, int(port))
    status = b""
    try:
        async with asyncio.timeout(ANSWER_WITHIN):
            writer.write(request)
            status = await reader.readline()
            while await reader.read(65536):
                pass
        return status, True
    except ConnectionResetError:
        return status, True
    except TimeoutError:
        return status, False
    finally:
        writer.close()


def upgrade(header_bytes: int, path: str = "/") -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        f"Authorization: Bearer {'a' * header_bytes}\r\n\r\n"
    ).encode()


async def accept_and_wait(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    while (await receive())["type"] != "websocket.disconnect":
        pass


# -- uvicorn -------------------------------------------------------------------------------


async def test_u8_a_handshake_websockets_refuses_is_answered_and_closed() -> None:
    async with serving(scripted(accept_and_wait)) as host:
        status, closed = await answer_to(host, upgrade(10_000))  # one line over 8 KiB
    assert status.startswith(b"HTTP/1.1 431") and closed, broken(
        "U8", f"a header line too long got {status!r}, closed: {closed}"
    )


async def test_u9_resume_writing_tells_who_waits_for_a_drain() -> None:
    drained = asyncio.Event()
    paused = asyncio.Event()

    async def script(scope: dict[str, Any], receive: Any, send: Any) -> None:
        wire = scope["extensions"][WIRE_EXTENSION]
        await receive()
        await send({"type": "websocket.accept"})
        frame = text_frame("x" * 65536)
        while wire.writable.is_set():  # until the transport pauses
            wire.write_frames([frame])
            await asyncio.sleep(0)
        wire.notify_drained(drained.set)
        paused.set()
        while (await receive())["type"] != "websocket.disconnect":
            pass

    async with serving(scripted(script)) as host:
        name, port = host.split(":")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (name, int(port)))
        reader, writer = await asyncio.open_connection(sock=sock)
        try:
            writer.write(upgrade(10))
            await reader.readuntil(b"\r\n\r\n")
            async with asyncio.timeout(10):
                await paused.wait()  # the server wrote until paused; we read nothing yet
                assert not drained.is_set(), broken("U9", "drained while still paused")
                while not drained.is_set():
                    await reader.read(1 << 20)  # now read: the buffer drains
        finally:
            writer.close()


async def test_u10_request_heads_over_the_limit_are_answered_431_and_closed() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": str(len(body)).encode()})
        else:
            await accept_and_wait(scope, receive, send)

    big = MAX_HEAD_BYTES + 1
    async with serving(app, http=HeadLimitedHttpToolsProtocol) as host:
        plain = await answer_to(
            host, f"GET / HTTP/1.1\r\nHost: x\r\nX: {'y' * big}\r\n\r\n".encode()
        )
        huge = await answer_to(
            host, f"GET / HTTP/1.1\r\nHost: x\r\nX: {'y' * 1_300_000}\r\n\r\n".encode()
        )
        ws = await answer_to(host, upgrade(big))
        body = b"b" * 300_000  # a body is not a head
        ok = await answer_to(
            host,
            b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body),
        )
    for name, (status, closed) in {"plain": plain, "huge": huge, "upgrade": ws}.items():
        assert status.startswith(b"HTTP/1.1 431") and closed, broken(
            "U10", f"a {name} head over the limit got {status!r}, closed: {closed}"
        )
    assert ok[0].startswith(b"HTTP/1.1 200"), broken("U10", f"a large body got {ok[0]!r}")


async def test_u10_an_upgraded_http_protocol_leaves_no_cycle_for_the_collector() -> None:
    """After the upgrade the HTTP protocol is done with: uvicorn breaks its cycle with
    its httptools parser (protocol -> parser -> bound callbacks -> protocol) only in
    `connection_lost`, which an upgraded connection's HTTP protocol never gets. Left,
    every WebSocket connect was ~22 objects of cyclic garbage (a young collection of
    8,500 objects every few hundred connects in `make bench`'s connect phase)."""
    async with serving(scripted(accept_and_wait), http=HeadLimitedHttpToolsProtocol) as host:
        gc.collect()
        gc.disable()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            for _ in range(5):
                reader, writer = await asyncio.open_connection(*host.split(":"))
                writer.write(upgrade(10))
                assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
                writer.close()
                await writer.wait_closed()
            gc.collect()
            left = [o for o in gc.garbage if isinstance(o, HeadLimitedHttpToolsProtocol)]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
    assert not left, broken("U10", f"{len(left)} upgraded HTTP protocols were cyclic garbage")


# -- python-engineio ------------------------------------------------------------------------


async def test_e7_what_engineio_cannot_decode_reaches_the_application_as_junk() -> None:
    eio = WiredEngineIOServer(async_mode="asgi", logger=False)
    assert eio._async["websocket"] is GuardedWebSocket, broken("E7", "not the guarded class")
    received: asyncio.Queue[Any] = asyncio.Queue()
    eio.on("message", lambda sid, data: received.put_nowait(data))
    async with serving(engineio.ASGIApp(eio)) as host:
        reader, writer = await asyncio.open_connection(*host.split(":"))
        raw = RawSocketIO(reader, writer)
        try:
            writer.write(upgrade(10, "/engine.io/?EIO=4&transport=websocket"))
            await reader.readuntil(b"\r\n\r\n")
            assert (await raw.recv()).startswith("0")
            for junk in ("x", "9", "4" + "[" * 3000):
                await raw.send(junk)
            await raw.send("4hello")
            async with asyncio.timeout(5):
                got = [await received.get() for _ in range(4)]
        finally:
            await raw.close()
    kinds = [type(g).__name__ for g in got]
    assert kinds == ["EngineIOJunk"] * 3 + ["str"] and got[3] == "hello", broken(
        "E7", f"Engine.IO handed on {kinds}"
    )
    assert all(isinstance(g, EngineIOJunk) and g.reason for g in got[:3])


async def test_e8_s6_a_server_disconnect_closes_the_websocket_of_a_deaf_client() -> None:
    bench = Bench()
    async with serving(bench.app) as host:
        raw = await RawSocketIO.connect(f"http://{host}", "t")
        try:
            sid = await asyncio.wait_for(bench.ready.get(), 5)
            await bench.sio.disconnect(sid)
            texts = []
            async with asyncio.timeout(5):
                while text := await raw.recv():  # "" once the WebSocket closed
                    texts.append(text)
        except TimeoutError:
            texts.append("(still open)")
        finally:
            await raw.close()
    assert texts[-2:] == ["41", "1"], broken("E8", f"after disconnect the client got {texts}")


async def test_e9_a_queue_says_when_its_writer_found_it_empty() -> None:
    bench = Bench()
    emptied = asyncio.Event()
    async with serving(bench.app) as host:
        raw = await RawSocketIO.connect(f"http://{host}", "t")
        try:
            sid = await asyncio.wait_for(bench.ready.get(), 5)
            queue = bench.queue(sid)
            await queue.settled()
            for i in range(5):
                queue.put_nowait(engineio.packet.Packet(engineio.packet.MESSAGE, data=f"2[{i}]"))
            queue.notify_empty(emptied.set)
            assert not emptied.is_set()
            await asyncio.wait_for(emptied.wait(), 5)
            assert not queue.qsize(), broken("E9", "notified with packets still queued")
        finally:
            await raw.close()


def ping_timers() -> set[asyncio.Task[Any]]:
    """The pending Engine.IO ping timers (`AsyncSocket._send_ping` tasks)."""
    return {
        task
        for task in asyncio.all_tasks()
        if getattr(task.get_coro(), "__qualname__", "") == "AsyncSocket._send_ping"
    }


async def test_e10_a_closed_sockets_ping_timer_ends_with_it() -> None:
    bench = Bench()
    async with serving(bench.app) as host:
        client = await RawSocketIO.connect(f"http://{host}", "t")
        try:
            await asyncio.wait_for(bench.ready.get(), 5)
            timers = ping_timers()
            assert len(timers) == 1, broken("E10", f"{len(timers)} ping timers for one socket")
        finally:
            await client.close()
        # Engine.IO's ping interval is 25 s: the timer ends at once, or the check fails.
        _, sleeping = await asyncio.wait(timers, timeout=5)
        assert not sleeping, broken(
            "E10", "a closed socket's ping timer sleeps on, keeping the connection in memory"
        )
