"""One test per assumption of transport/internals.py and brokers/redis_internals.py.

Each test drives the real library (a uvicorn server running `WireProtocol`, real
Engine.IO sockets, a real redis-server) and fails with the assumption's number when
an upgrade breaks it. The lowest-versions CI run executes this module too, so it
needs nothing beyond the runtime dependencies, pytest, pytest-asyncio, aiohttp and
python-socketio's client.
"""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Any

import aiohttp
import engineio
import pytest
import socketio
import uvicorn
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import ResponseError

from roomcast.brokers import redis_internals
from roomcast.brokers.redis_client import disconnect
from roomcast.brokers.redis_internals import (
    CountingPubSub,
    client_for,
    drop_master_connections,
    send_pipeline,
    sentinel_clients,
)
from roomcast.dependency import IncompatibleDependency, installed_version
from roomcast.transport.internals import (
    WIRE_EXTENSION,
    WiredASGIApp,
    WiredEngineIOServer,
    WiredSocketIOServer,
    WireProtocol,
    WireQueue,
    encode_event,
)
from roomcast.transport.wire import text_frame
from tests.compat.harness import Bench, broken, scripted, serving
from tests.support.raw_socketio import RawSocketIO
from tests.support.redis_procs import RedisServer, SentinelCluster
from tests.support.server import Client, free_socket

# -- uvicorn ------------------------------------------------------------------------------


async def _texts(ws: aiohttp.ClientWebSocketResponse) -> list[str]:
    """Every text message until the server closes."""
    out = []
    async for message in ws:
        if message.type == aiohttp.WSMsgType.TEXT:
            out.append(message.data)
    return out


async def test_u1_wire_protocol_is_uvicorns_sans_io_protocol_and_serves() -> None:
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

    assert issubclass(WireProtocol, WebSocketsSansIOProtocol), broken("U1", "not a subclass")

    async def script(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "hello"})
        await send({"type": "websocket.close"})

    async with (
        serving(scripted(script)) as host,
        aiohttp.ClientSession() as http,
        http.ws_connect(f"ws://{host}/") as ws,
    ):
        assert await _texts(ws) == ["hello"], broken("U1", "uvicorn(ws=WireProtocol)")


async def test_u2_an_accepted_handshake_puts_the_protocol_into_the_scope() -> None:
    seen: list[Any] = []

    async def script(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope.get("extensions", {}).get(WIRE_EXTENSION))
        await receive()
        await send({"type": "websocket.close"})

    async with serving(scripted(script)) as host, aiohttp.ClientSession() as http:
        # A handshake uvicorn refuses (no key) has no scope; the server lives on.
        host_name, port = host.split(":")
        reader, writer = await asyncio.open_connection(host_name, int(port))
        writer.write(
            f"GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        status = await reader.readline()
        writer.close()
        await writer.wait_closed()
        assert not status.startswith(b"HTTP/1.1 101"), broken("U2", f"refused got {status!r}")
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await http.ws_connect(f"ws://{host}/")  # the app closes before accepting
    assert len(seen) == 1 and isinstance(seen[0], WireProtocol), broken(
        "U2", f"scope['extensions'] held {seen!r}, not the connection's WireProtocol"
    )


async def test_u3_request_and_response_are_not_read_after_the_accept() -> None:
    dropped: list[bool] = []

    async def script(scope: dict[str, Any], receive: Any, send: Any) -> None:
        wire = scope["extensions"][WIRE_EXTENSION]
        await receive()
        await send({"type": "websocket.accept"})
        dropped.append(wire.request is None and wire.response is None)
        message = await receive()
        await send({"type": "websocket.send", "text": "echo " + message["text"]})
        await send({"type": "websocket.close", "code": 1000})

    async with (
        serving(scripted(script)) as host,
        aiohttp.ClientSession() as http,
        http.ws_connect(f"ws://{host}/") as ws,
    ):
        await ws.send_str("hi")
        texts = await _texts(ws)
        code = ws.close_code
    assert dropped == [True], broken("U3", "WireProtocol.send did not see the accept")
    assert texts == ["echo hi"] and code == 1000, broken(
        "U3", f"after dropping request/response the connection gave {texts!r}, close {code}"
    )


async def test_u4_frames_are_refused_before_the_accept_and_after_a_close() -> None:
    results: dict[str, bool] = {}
    lost = asyncio.Event()

    async def script(scope: dict[str, Any], receive: Any, send: Any) -> None:
        wire = scope["extensions"][WIRE_EXTENSION]
        await receive()
        results["before accept"] = wire.write_frames([text_frame("early")])
        await send({"type": "websocket.accept"})
        results["after accept"] = wire.write_frames([text_frame("direct")])
        if scope["path"] == "/server-closes":
            await send({"type": "websocket.close"})
            results["after close"] = wire.write_frames([text_frame("late")])
        else:
            while (await receive())["type"] != "websocket.disconnect":
                pass
            results["after disconnect"] = wire.write_frames([text_frame("late")])
            lost.set()

    async with serving(scripted(script)) as host, aiohttp.ClientSession() as http:
        async with http.ws_connect(f"ws://{host}/server-closes") as ws:
            texts = await _texts(ws)
        async with http.ws_connect(f"ws://{host}/client-closes") as ws:
            assert (await ws.receive_str()) == "direct"
        await asyncio.wait_for(lost.wait(), 5)
    expected = {
        "before accept": False,
        "after accept": True,
        "after close": False,
        "after disconnect": False,
    }
    assert results == expected and texts == ["direct"], broken(
        "U4", f"handshake_complete/close_sent/disconnected gave {results}, client saw {texts}"
    )


async def test_u5_direct_frames_keep_their_place_among_uvicorns_own() -> None:
    big = "x" * 1_000_000  # far more than one write of the socket takes at once

    async def script(scope: dict[str, Any], receive: Any, send: Any) -> None:
        wire = scope["extensions"][WIRE_EXTENSION]
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "m1"})
        wire.write_frames([text_frame(big), text_frame("m3")])
        await send({"type": "websocket.send", "text": "m4"})
        wire.write_frames([text_frame("m5")])
        await send({"type": "websocket.close"})

    async with (
        serving(scripted(script)) as host,
        aiohttp.ClientSession() as http,
        http.ws_connect(f"ws://{host}/", max_msg_size=0) as ws,
    ):
        texts = await _texts(ws)
    assert texts == ["m1", big, "m3", "m4", "m5"], broken(
        "U5", f"frames written to the transport arrived as {[t[:8] for t in texts]}"
    )


async def test_u6_a_raw_frame_is_valid_on_a_connection_with_permessage_deflate() -> None:
    async def script(scope: dict[str, Any], receive: Any, send: Any) -> None:
        wire = scope["extensions"][WIRE_EXTENSION]
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "compressed " * 50})
        wire.write_frames([text_frame("raw")])
        await send({"type": "websocket.close"})

    async with (
        serving(scripted(script), ws_per_message_deflate=True) as host,
        aiohttp.ClientSession() as http,
        http.ws_connect(f"ws://{host}/", compress=15) as ws,
    ):
        negotiated = ws.compress
        texts = await _texts(ws)
    assert negotiated, broken("U6", "permessage-deflate was not negotiated at all")
    assert texts == ["compressed " * 50, "raw"], broken("U6", f"the client got {texts!r}")


async def test_u7_a_signal_reaches_handle_exit_and_should_exit_ends_serve() -> None:
    calls: list[int] = []
    unhandled: list[int] = []
    started = asyncio.Event()

    class Recording(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            calls.append(sig)
            self.should_exit = True  # what DrainingServer does once it has drained

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                    started.set()
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    previous = signal.signal(signal.SIGINT, lambda sig, frame: unhandled.append(sig))
    sock = free_socket()
    try:
        server = Recording(uvicorn.Config(app, log_level="warning", lifespan="on"))
        task = asyncio.create_task(server.serve(sockets=[sock]))
        await asyncio.wait_for(started.wait(), 5)
        signal.raise_signal(signal.SIGINT)
        await asyncio.wait_for(task, 5)
    finally:
        signal.signal(signal.SIGINT, previous)
        sock.close()
    assert calls == [signal.SIGINT] and not unhandled, broken(
        "U7", f"uvicorn.Server.handle_exit got {calls}, the previous handler {unhandled}"
    )


# -- python-engineio -------------------------------------------------------------------------


async def test_e1_every_socket_queue_comes_from_create_queue() -> None:
    bench = Bench()
    async with serving(bench.app) as host:
        client = Client()
        try:
            await client.connect(f"http://{host}", "t")
            sid = await asyncio.wait_for(bench.ready.get(), 5)
            queue = bench.socket(sid).queue
            assert isinstance(queue, WireQueue), broken(
                "E1", f"the socket's queue is a {type(queue).__name__}"
            )
            assert await client.next("greeting") == {"sid": sid}, broken("E1", "no greeting")
        finally:
            await client.close()


async def test_e2_the_writer_parks_in_get_having_written_what_it_took() -> None:
    bench = Bench()
    async with serving(bench.app) as host:
        raw = await RawSocketIO.connect(f"http://{host}", "t")
        try:
            sid = await asyncio.wait_for(bench.ready.get(), 5)
            assert await raw.next_event() == ("greeting", {"sid": sid})
            queue = bench.queue(sid)
            for i in range(20):
                await bench.sio.emit("queued", i, to=sid)  # through Engine.IO's queue
                try:
                    await queue.settled()
                except TimeoutError:
                    pytest.fail(broken("E2", "the writer never parked in queue.get() again"))
                assert queue.writer_idle and bench.outlet.writes_direct(sid), broken(
                    "E2", "a writer parked in get() on an empty queue is not writer_idle"
                )
                bench.outlet.push(sid, bench.outlet.encode("direct", i))
            got = [await raw.next_event() for _ in range(40)]
        finally:
            await raw.close()
    expected = [(name, i) for i in range(20) for name in ("queued", "direct")]
    assert got == expected, broken("E2", f"a direct frame overtook a queued packet: {got}")


async def test_e2_an_ack_and_a_direct_frame_leave_in_the_order_they_were_made() -> None:
    bench = Bench()
    direct: list[bool] = []

    async def frame_then_ack(sid: str, data: Any) -> str:
        direct.append(bench.outlet.writes_direct(sid) and not bench.queue(sid).qsize())
        bench.outlet.push(sid, bench.outlet.encode("frame", data))  # corked, direct
        return "ack"  # queued by python-socketio after this returns

    async def ack_then_frame(sid: str, data: Any) -> str:
        # Runs once python-socketio has queued the ack.
        asyncio.get_running_loop().call_soon(
            bench.outlet.push, sid, bench.outlet.encode("frame", data)
        )
        return "ack"

    bench.sio.on("frame_then_ack", frame_then_ack)
    bench.sio.on("ack_then_frame", ack_then_frame)
    async with serving(bench.app) as host:
        raw = await RawSocketIO.connect(f"http://{host}", "t")
        try:
            sid = await asyncio.wait_for(bench.ready.get(), 5)
            assert await raw.next_event() == ("greeting", {"sid": sid})
            order: dict[str, list[str]] = {}
            for n, event in enumerate(("frame_then_ack", "ack_then_frame"), start=1):
                await bench.queue(sid).settled()
                await raw.send(f"42{n}" + json.dumps([event, n]))
                order[event] = [(await raw.recv())[:3] for _ in range(2)]
        finally:
            await raw.close()
    assert direct == [True], broken("E2", "the frame before the ack did not go direct")
    assert order == {"frame_then_ack": ["42[", "431"], "ack_then_frame": ["432", "42["]}, broken(
        "E2", f"acks and direct frames left as {order}"
    )


async def test_e3_upgraded_and_closed_say_what_the_socket_is() -> None:
    bench = Bench()
    async with serving(bench.app) as host:
        flags = {}
        for transports in (["polling"], ["websocket"]):
            client = Client()
            try:
                await client.connect(f"http://{host}", "t", transports=transports)
                sid = await asyncio.wait_for(bench.ready.get(), 5)
                socket = bench.socket(sid)
                flags[transports[0]] = (socket.upgraded, socket.closed)
                await bench.sio.eio.disconnect(bench.connected[sid])
                flags[transports[0] + " closed"] = (socket.upgraded, socket.closed)
            finally:
                await client.close()
    assert flags == {
        "polling": (False, False),
        "polling closed": (False, True),
        "websocket": (True, False),
        "websocket closed": (True, True),
    }, broken("E3", f"socket.upgraded/socket.closed were {flags}")


async def test_e4_eio_sockets_maps_engineio_sids_to_their_sockets() -> None:
    bench = Bench()
    async with serving(bench.app) as host:
        client = Client()
        try:
            await client.connect(f"http://{host}", "t")
            sid = await asyncio.wait_for(bench.ready.get(), 5)
            eio_sid = bench.connected[sid]
            socket = bench.sio.eio.sockets.get(eio_sid)
            assert socket is not None and socket.sid == eio_sid, broken(
                "E4", f"eio.sockets has no socket {eio_sid!r}"
            )
        finally:
            await client.close()


async def test_e5_the_wire_is_found_from_the_environ_and_from_an_upgrade() -> None:
    bench = Bench()
    bench.sio.on("echo", lambda sid, data: data)
    async with serving(bench.app) as host:
        wires = {}
        for transports in (["websocket"], ["polling", "websocket"]):
            client = Client()
            try:
                await client.connect(f"http://{host}", "t", transports=transports)
                sid = await asyncio.wait_for(bench.ready.get(), 5)
                assert await client.call("echo", 1) == 1  # after the upgrade, if any
                scope = bench.environs[sid].get("asgi.scope")
                wires["+".join(transports)] = (
                    scope is not None and scope["type"],
                    type(bench.queue(sid).wire).__name__,
                )
            finally:
                await client.close()
    assert wires == {
        "websocket": ("websocket", "WireProtocol"),
        "polling+websocket": ("http", "WireProtocol"),
    }, broken("E5", f"environ['asgi.scope'] and the upgrade's sid gave {wires}")


def test_e6_a_message_packet_encodes_as_4_and_its_text() -> None:
    text = '2["e",{"name":"Zoë"}]'
    packet = engineio.packet.Packet(engineio.packet.MESSAGE, data=text)
    assert packet.encode() == "4" + text, broken("E6", f"got {packet.encode()!r}")
    _, encoded = encode_event("e", {"name": "Zoë"})
    decoded = engineio.packet.Packet(encoded_packet=encoded)
    assert decoded.packet_type == engineio.packet.MESSAGE, broken("E6", f"{encoded!r}")


# -- python-socketio -------------------------------------------------------------------------


def test_s1_the_engineio_server_comes_from_engineio_server_class() -> None:
    sio = WiredSocketIOServer(async_mode="asgi")
    assert isinstance(sio.eio, WiredEngineIOServer), broken(
        "S1", f"AsyncServer built a {type(sio.eio).__name__}"
    )


async def test_s2_the_managers_connect_follows_the_connect_packet() -> None:
    bench = Bench()
    async with serving(bench.app) as host:
        # RawSocketIO.connect fails unless "40" is the first packet after the open.
        raw = await RawSocketIO.connect(f"http://{host}", "t")
        try:
            sid = await asyncio.wait_for(bench.ready.get(), 5)
            first = await raw.next_event()
        finally:
            await raw.close()
    assert bench.greeted == [(sid, True)], broken(
        "S2", "AsyncManager.connect ran before the connect handler"
    )
    assert first == ("greeting", {"sid": sid}), broken("S2", f"first event was {first}")


async def test_s3_eio_sid_from_sid_names_the_connections_engineio_socket() -> None:
    bench = Bench()
    async with serving(bench.app) as host:
        client = Client()
        try:
            await client.connect(f"http://{host}", "t")
            sid = await asyncio.wait_for(bench.ready.get(), 5)
            eio_sid = bench.connected[sid]
            assert bench.sio.manager.sid_from_eio_sid(eio_sid, "/") == sid, broken(
                "S3", f"eio_sid_from_sid gave {eio_sid!r}"
            )
        finally:
            await client.close()


def test_s4_an_event_packet_encodes_as_2_and_its_json() -> None:
    payload = {"a": [1, 2.5, None, True], "s": 'quote" and Zoë'}
    text = socketio.packet.Packet(socketio.packet.EVENT, data=["name", payload]).encode()
    assert isinstance(text, str) and text.startswith('2["name",'), broken("S4", repr(text))
    assert json.loads(text[1:]) == ["name", payload], broken("S4", repr(text))


def test_s5_the_asgi_app_keeps_the_socketio_server() -> None:
    sio = WiredSocketIOServer(async_mode="asgi")
    app = WiredASGIApp(sio)
    assert app.engineio_server is sio and app.engineio_server.eio is sio.eio, broken(
        "S5", "ASGIApp.engineio_server is not the Socket.IO server"
    )


# -- redis-py --------------------------------------------------------------------------------


def _resp(*commands: tuple[str, ...]) -> bytes:
    out = b""
    for command in commands:
        out += f"*{len(command)}\r\n".encode()
        for arg in command:
            data = arg.encode()
            out += f"${len(data)}\r\n".encode() + data + b"\r\n"
    return out


async def test_r1_a_pooled_connection_is_the_callers_until_released(
    redis_server: RedisServer,
) -> None:
    client = redis_server.client(decode_responses=True)
    try:
        pool = client.connection_pool
        first = await pool.get_connection(*redis_internals.GET_CONNECTION_ARGS)
        second = await pool.get_connection(*redis_internals.GET_CONNECTION_ARGS)
        assert first is not second, broken("R1", "one connection handed out twice")
        await pool.release(first)
        await pool.release(second)

        async def one(n: int) -> list[Any]:
            return await send_pipeline(pool, _resp(*[("ECHO", f"{n}-{k}") for k in range(5)]), 5)

        replies = await asyncio.gather(*(one(n) for n in range(30)))
    finally:
        await client.aclose()
    assert replies == [[f"{n}-{k}" for k in range(5)] for n in range(30)], broken(
        "R1", "concurrent pipelines got each other's replies"
    )


async def test_r2_packed_commands_get_their_replies_in_order(redis_server: RedisServer) -> None:
    client = redis_server.client(decode_responses=True)
    try:
        payload = _resp(("SET", "k", "v"), ("INCR", "k"), ("ECHO", "after"))
        replies = await send_pipeline(client.connection_pool, payload, 3)
        again = await send_pipeline(client.connection_pool, _resp(("PING",)), 1)
    finally:
        await client.aclose()
    assert replies[0] == "OK" and isinstance(replies[1], ResponseError), broken(
        "R2", f"replies were {replies!r}"
    )
    assert replies[2] == "after" and again == ["PONG"], broken(
        "R2", f"after an error reply the connection gave {replies[2:]!r}, then {again!r}"
    )


async def test_r3_a_connection_closed_by_the_server_is_replaced(
    redis_server: RedisServer,
) -> None:
    client = redis_server.client(decode_responses=True)
    try:
        pool = client.connection_pool
        assert await send_pipeline(pool, _resp(("PING",)), 1) == ["PONG"]
        killed = redis_server.command("CLIENT", "KILL", "TYPE", "normal")
        replies = await send_pipeline(pool, _resp(("ECHO", "again")), 1)
    finally:
        await client.aclose()
    assert killed == 1, "the pooled connection was not there to be closed"
    assert replies == ["again"], broken("R3", f"after a server-side close: {replies!r}")


async def test_r4_on_connect_runs_on_every_reconnect_before_resubscribing(
    redis_server: RedisServer,
) -> None:
    # The retry roomcast's clients have (redis_client.connect): one, at once.
    client = redis_server.client(decode_responses=True, retry=Retry(NoBackoff(), 1))
    pubsub = CountingPubSub(client.connection_pool)
    try:
        await pubsub.subscribe("ch")
        async with asyncio.timeout(10):
            while (await pubsub.get_message(timeout=1)) is None:
                pass  # the subscribe confirmation
            baseline = pubsub.connects
            redis_server.command("CLIENT", "KILL", "TYPE", "pubsub")
            got = None
            while got is None or got.get("type") != "message":
                if pubsub.connects == baseline + 1:
                    await client.publish("ch", "after")
                got = await pubsub.get_message(timeout=0.2)
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await client.aclose()
    assert pubsub.connects == baseline + 1 and got["data"] == "after", broken(
        "R4", f"on_connect ran {pubsub.connects - baseline} times on a reconnect, then {got!r}"
    )


async def test_r5_a_sentinel_clients_sentinels_are_listed(
    sentinel_cluster: SentinelCluster,
) -> None:
    sentinel = Sentinel(sentinel_cluster.sentinels, socket_connect_timeout=1)  # type: ignore[no-untyped-call]
    client = sentinel.master_for(sentinel_cluster.master_name, decode_responses=True)
    try:
        assert await client.ping()
        ports = sorted(
            c.connection_pool.connection_kwargs["port"] for c in sentinel_clients(client)
        )
    finally:
        await disconnect(client)
    assert ports == sorted(port for _, port in sentinel_cluster.sentinels), broken(
        "R5", f"connection_pool.sentinel_manager.sentinels gave ports {ports}"
    )


async def test_r6_a_sentinel_pool_lets_go_of_the_master_it_knew(
    sentinel_cluster: SentinelCluster,
) -> None:
    sentinel = Sentinel(sentinel_cluster.sentinels, socket_connect_timeout=1)  # type: ignore[no-untyped-call]
    client = sentinel.master_for(sentinel_cluster.master_name, decode_responses=True)
    pool = client.connection_pool
    try:
        idle_id = await client.client_id()  # opens a connection, then leaves it idle
        held = await pool.get_connection()
        await drop_master_connections(client)
        after_id = await client.client_id()
        # redis-py < 6.1 has no mark_for_reconnect: a connection in use then reconnects
        # only when the old master refuses a write (R6), and there is nothing to check.
        marks = hasattr(held, "mark_for_reconnect")
        marked = held.should_reconnect() if marks else True
        await pool.release(held)
        released_connected = held.is_connected and marks
        direct = client_for(client, *sentinel_cluster.master_addr())
        try:
            direct_ping = await direct.ping()
        finally:
            await direct.aclose()
    finally:
        await disconnect(client)
    assert after_id != idle_id, broken(
        "R6", "pool.disconnect(inuse_connections=False) kept the idle connection to the master"
    )
    assert marked and not released_connected, broken(
        "R6", "a connection in use was not marked for reconnect, or kept its socket on release"
    )
    assert direct_ping, broken("R6", "connection_kwargs did not reach the master directly")


async def test_redis_py_parses_replies_with_hiredis(redis_server: RedisServer) -> None:
    """hiredis is a dependency for its speed only: redis-py falls back to its Python
    parser, silently, when the installed hiredis is one it does not support."""
    import redis.utils
    from redis._parsers import _AsyncHiredisParser

    assert redis.utils.HIREDIS_AVAILABLE, "redis-py does not use the installed hiredis"
    client = redis_server.client()
    try:
        connection = await client.connection_pool.get_connection()
        try:
            assert isinstance(connection._parser, _AsyncHiredisParser)
        finally:
            await client.connection_pool.release(connection)
    finally:
        await disconnect(client)


# -- failing loudly ------------------------------------------------------------------------


def test_a_broken_structural_assumption_stops_the_server_being_built() -> None:
    class Unwired(WiredSocketIOServer):
        def _engineio_server_class(self) -> type[engineio.AsyncServer]:
            return engineio.AsyncServer  # as if python-socketio ignored the hook

    with pytest.raises(IncompatibleDependency) as refused:
        Unwired(async_mode="asgi")
    message = str(refused.value)
    version = installed_version("python-socketio")
    assert message.startswith(f"python-socketio {version} breaks"), message
    assert "assumption S1" in message, message
