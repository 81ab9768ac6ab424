"""Every reach into private internals of uvicorn, python-engineio and python-socketio.

roomcast writes a broadcast's pre-built WebSocket frame straight to each socket's
transport (wire.py, outlet.py), and that is only correct while these libraries
behave as below. The same goes for the guards against hostile input that sit at
these libraries' edges (U8, U10, E7, E8). Each assumption is numbered;
tests/compat/test_assumptions.py and test_guards.py have one test per number against
the real library, and the cheap structural ones are checked here, at import (U, S4,
E6, E10) or when the Socket.IO server is built (E1, E3, E4, E7, S1, S5), raising
`IncompatibleDependency` with the library's version.

uvicorn (its sans-I/O websockets protocol, `WireProtocol`'s base)

U1. `uvicorn.protocols.websockets.websockets_sansio_impl.WebSocketsSansIOProtocol`
    exists (uvicorn >= 0.35). Breaks: `import roomcast.transport` fails. Checked.
U2. `handle_connect(event)` runs once per handshake and, when it accepts, stores the
    ASGI scope as `self.scope` (with an `extensions` dict) before the application
    sees it; a refused handshake has no scope. roomcast puts the protocol into
    `scope["extensions"]["roomcast.wire"]`. Breaks: no connection gets a wire (every
    event then takes Engine.IO's queue: correct, slower) or a KeyError. Checked
    (the method exists and assigns `scope`).
U3. `send(message)` is the protocol's ASGI send, and once "websocket.accept" went out
    `self.request` and `self.response` are not read again; roomcast drops them
    (~3.5 KB per idle connection). Breaks: an AttributeError on a later send.
U4. `handshake_complete` and `close_sent` are the protocol's own record of the
    accept having been written and of its close frame having been written. A
    close frame from the client reaches `handle_close(event)`, which answers it
    and closes the transport without setting `close_sent`; a lost connection
    reaches `connection_lost`. `write_frames` refuses frames unless the accept
    went out and neither side has closed (WireProtocol notes the last two in
    `peer_gone`). Breaks: frames before the 101 response or after a close frame,
    a protocol error for the client. Checked (the flags are set by `__init__`,
    `handle_close` exists).
U5. `self.transport` is the asyncio transport that the protocol writes each of its
    own frames to whole, with nothing held back in the protocol. A frame roomcast
    writes there is ordered with uvicorn's (ASGI sends, pings, the close) by call
    order and never lands inside one. Breaks: interleaved or reordered frames.
U6. A server-to-client text frame is unmasked and, with RSV1 clear, valid whether
    or not permessage-deflate was negotiated (RFC 6455, RFC 7692), so one frame's
    bytes serve every connection. Breaks: clients failing the connection.
U7. `uvicorn.Server.handle_exit(sig, frame)` is what uvicorn's signal handling calls
    on SIGINT/SIGTERM, and `should_exit = True` ends `serve()`; server.py's
    `DrainingServer` drains on the first signal that way. Breaks: SIGTERM stops
    without a drain. Checked (the method exists).
U8. The protocol's websockets `ServerProtocol` is `self.conn`; when it refuses a
    handshake while parsing it (a header line over websockets' 8 KiB, too many
    headers) it sets `conn.handshake_exc`, queues its 4xx answer in
    `conn.data_to_send()` and yields no request, so uvicorn never writes that
    answer (`handshake_initiated` stays False). WireProtocol writes it and closes.
    Breaks: the refused client waits with an open socket and no answer (finding 8).
    Checked (`handshake_exc` is set by websockets' protocol, `handshake_initiated`
    by uvicorn's).
U9. The transport calls the protocol's `pause_writing()` when its buffer passes the
    high-water mark and `resume_writing()` when it drains below the low one, and
    uvicorn's `writable` event is clear exactly while paused. WireProtocol tells
    whoever waits for a slow connection to drain (`notify_drained`) from
    `resume_writing`. Breaks: a detection client that fell behind is told of its
    skipped events only with the next event (finding 10 again).
U10. `uvicorn.protocols.http.httptools_impl.HttpToolsProtocol` parses with httptools,
    calling `on_message_begin`, `on_url`, `on_header` and `on_headers_complete`
    (which starts the application, or returns for a WebSocket upgrade, done from
    `data_received` by `handle_websocket_upgrade`), then `on_body` and
    `on_message_complete`. `HeadLimitedHttpToolsProtocol` counts a request head
    there and answers 431 past `MAX_HEAD_BYTES` (httptools itself has no limit).
    After `handle_websocket_upgrade` the protocol is not called again, so it drops
    its `parser` (uvicorn does so only in `connection_lost`, which it then never
    gets). Breaks: oversized heads reach the application again (finding 8), or each
    upgrade leaves cyclic garbage. Checked (the class and its callbacks exist).

python-engineio (a socket's queue and its writer task)

E1. `AsyncServer.create_queue(*args, **kwargs)` makes every socket's outgoing
    `socket.queue`, which Engine.IO uses as an asyncio.Queue. roomcast returns a
    `WireQueue`. Breaks: no socket writes direct (slower), or, if the queue were
    bypassed by Engine.IO, frames out of order. Checked (a probe socket's queue).
E2. The WebSocket writer task of a socket takes packets with `await queue.get()`,
    drains the rest with `get_nowait()`, and hands every packet it took to the
    WebSocket before it calls `get()` again. So a writer parked in `get()` on an
    empty queue holds no packet (`WireQueue.writer_idle`), and a packet queued
    before a direct frame is written before it. Breaks: a direct frame overtakes
    an ack or an event still on Engine.IO's path (silent reordering).
E3. `socket.upgraded` is True once the socket speaks WebSocket and False on
    long-polling; `socket.closed` turns True when it is closed. outlet.py reads
    both, and `socket.queue`, per recipient on the broadcast path (inline, not
    through a function here, to keep that path as fast as it is). Checked (a probe
    socket has them).
E4. `eio.sockets` maps an Engine.IO sid to its socket. Checked.
E5. An Engine.IO `environ` holds the ASGI scope under `environ["asgi.scope"]`
    (gateway.py finds the wire of a connection there), and a WebSocket upgrade of
    a long-polling socket names its Engine.IO sid in the query string `sid`.
    Breaks: connections never get their wire (slower, still correct).
E6. `engineio.packet.Packet(MESSAGE, data=text).encode()` is "4" + text, the bytes
    of a frame's payload. Checked.
E7. Under ASGI, `AsyncServer._async["websocket"]` is the class of every socket's
    WebSocket (`cls(handler, server)`), and the socket's WebSocket loop decodes each
    message `wait()` returns with `engineio.packet.Packet(encoded_packet=...)`
    outside any `try` (a decoding error kills the connection with uvicorn's
    "Exception in ASGI application", an unknown type logs "Unknown receive error");
    a `bytes` message becomes a binary MESSAGE whose data is that very object, and
    a `None` ends the loop and closes the socket. `GuardedWebSocket` hands Engine.IO
    an `EngineIOJunk` (packets.py) in place of what Engine.IO cannot decode, which
    the Socket.IO gateway counts as junk. Breaks: junk kills connections with a
    traceback again. Checked (the server's class is engineio's ASGI WebSocket).
E8. `socket.close(wait=False)` queues Engine.IO's CLOSE packet (the text "1") for
    the writer, which sends it with the WebSocket's `send`, and marks the socket
    closed; on WebSocket the writer still sends what was queued before it (a
    long-polling socket refuses polls once closed). python-socketio's
    `disconnect(sid)` sends Socket.IO's DISCONNECT but leaves the Engine.IO socket
    open; `WiredSocketIOServer.disconnect` closes an upgraded one too, and
    `GuardedWebSocket` closes the WebSocket once the "1" went out, so a client that
    ignores both is still cut off. Breaks: a connection closed for abuse stays open
    for a hostile client.
E9. A socket's writer (WebSocket or long-polling) takes packets with the queue's
    `get()`, so a `get()` on an empty queue means everything queued was handed on;
    `WireQueue.notify_empty` fires there.
E10. A socket's ping timer is `server.start_background_task(socket._send_ping)`
    (one at a time: at the handshake and after each PONG); it sleeps
    `ping_interval` (25 s) holding the socket, and through its queue's wire the
    whole connection (~20 KB). Every close goes through `socket.close()`, which calls
    `server._trigger_event("disconnect", sid, ...)` before it marks the socket
    closed. `WiredEngineIOServer` cancels the timer of a socket there. Breaks: each
    closed connection stays in memory for 25 s, so RSS grows ~20 KB per
    connect/disconnect cycle under churn (finding 6). Checked (`schedule_ping`
    starts `_send_ping` that way, `close` triggers "disconnect").

python-socketio

S1. `AsyncServer._engineio_server_class()` is what the constructor calls to build
    `self.eio`; roomcast's returns `WiredEngineIOServer`. Checked.
S2. `AsyncManager.connect(sid, namespace)` is awaited after the connect handler
    accepted and the CONNECT packet was queued on the socket; `AfterConnectManager`
    sends `connection_status` from there. Breaks: the greeting reaches the client
    before its CONNECT and is dropped.
S3. `manager.eio_sid_from_sid(sid, "/")` gives a connected sid's Engine.IO sid
    (gateway.py binds the connection's socket with it).
S4. `socketio.packet.Packet(EVENT, data=[name, payload]).encode()` is the str
    `2["name",<payload as JSON>]` for a JSON payload. Checked.
S5. `socketio.ASGIApp` keeps the Socket.IO server as `self.engineio_server`, whose
    `eio` is the Engine.IO server. Checked.
S6. `AsyncServer.disconnect(sid, namespace=None, ignore_queue=False)` is how
    roomcast closes a connection; the override reads the Engine.IO sid first (S3).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import engineio
import socketio
import uvicorn
from engineio import packet as eio_packet
from engineio.async_drivers import asgi as eio_asgi
from engineio.async_socket import AsyncSocket
from socketio import packet as sio_packet
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..dependency import require
from ..engine.sio_codec import encode_event_json as sio_event_json
from .packets import EngineIOJunk

if TYPE_CHECKING:
    from .wire import Wire

from websockets.protocol import Protocol as WebSocketsProtocolBase

try:
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
except ImportError:  # pragma: no cover - only with an uvicorn older than 0.35
    require(False, "uvicorn", "U1", "it has no uvicorn.protocols.websockets.websockets_sansio_impl")
    raise

WIRE_EXTENSION = "roomcast.wire"


def _assigns(function: Any, *names: str) -> bool:
    """Whether a function's code stores these attribute names (cheap: no call)."""
    code = getattr(function, "__code__", None)
    return code is not None and all(name in code.co_names for name in names)


def _check_at_import() -> None:
    base = WebSocketsSansIOProtocol
    require(
        "pause_writing" in vars(base) and "resume_writing" in vars(base),
        "uvicorn",
        "U9",
        "WebSocketsSansIOProtocol does not pause and resume writing (before 0.52.1): "
        "a slow consumer would never be told it drained",
    )
    require(
        _assigns(getattr(base, "handle_connect", None), "scope", "request", "response"),
        "uvicorn",
        "U2",
        "WebSocketsSansIOProtocol.handle_connect no longer sets scope, request and response",
    )
    require(
        _assigns(base.__init__, "handshake_complete", "close_sent")
        and callable(getattr(base, "handle_close", None)),
        "uvicorn",
        "U4",
        "WebSocketsSansIOProtocol no longer keeps handshake_complete and close_sent, "
        "or has no handle_close",
    )
    require(
        callable(getattr(base, "send", None)) and _assigns(base.connection_made, "transport"),
        "uvicorn",
        "U3/U5",
        "WebSocketsSansIOProtocol has no send, or connection_made keeps no transport",
    )
    require(
        callable(getattr(uvicorn.Server, "handle_exit", None)),
        "uvicorn",
        "U7",
        "uvicorn.Server has no handle_exit(sig, frame)",
    )
    require(
        _assigns(base.handle_connect, "handshake_initiated")
        and _assigns(WebSocketsProtocolBase.__init__, "handshake_exc"),
        "uvicorn",
        "U8",
        "handle_connect no longer sets handshake_initiated, or websockets' protocol "
        "keeps no handshake_exc",
    )
    require(
        all(
            callable(getattr(HttpToolsProtocol, name, None))
            for name in ("on_message_begin", "on_url", "on_header", "on_headers_complete")
        )
        and callable(getattr(HttpToolsProtocol, "handle_websocket_upgrade", None)),
        "uvicorn",
        "U10",
        "HttpToolsProtocol's parser callbacks or handle_websocket_upgrade are gone",
    )
    require(
        callable(getattr(engineio.AsyncServer, "create_queue", None)),
        "python-engineio",
        "E1",
        "engineio.AsyncServer has no create_queue",
    )
    encoded = eio_packet.Packet(eio_packet.MESSAGE, data="x").encode()
    require(encoded == "4x", "python-engineio", "E6", f"a MESSAGE packet encodes as {encoded!r}")
    require(
        _assigns(AsyncSocket.schedule_ping, "start_background_task", "_send_ping")
        and _assigns(AsyncSocket.close, "_trigger_event"),
        "python-engineio",
        "E10",
        "AsyncSocket.schedule_ping no longer starts _send_ping with start_background_task, "
        "or close no longer triggers the disconnect event",
    )
    require(
        callable(getattr(socketio.AsyncServer, "_engineio_server_class", None)),
        "python-socketio",
        "S1",
        "socketio.AsyncServer has no _engineio_server_class",
    )
    encoded = sio_packet.Packet(sio_packet.EVENT, data=["e", {"k": 1}]).encode()
    require(
        encoded == '2["e",{"k":1}]',
        "python-socketio",
        "S4",
        f"an EVENT packet encodes as {encoded!r}",
    )


_check_at_import()


# uvicorn -----------------------------------------------------------------------------


#: How long a wait for a slow connection to drain rechecks when the transport is not
#: paused (a send-buffer limit below the transport's high-water mark, U9).
DRAIN_RECHECK_SECONDS = 0.05


class WireProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets protocol, offering `write_frames` to the application."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._drained: list[Callable[[], None]] = []  # called once the buffer drains

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self.handshake_initiated and self.conn.handshake_exc is not None:  # U8
            # websockets refused the request while parsing it and queued its answer
            # (431 for a header line too long): deliver it, then close.
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.close_sent = True
            self.transport.close()

    def resume_writing(self) -> None:
        super().resume_writing()
        waiting, self._drained = self._drained, []
        for callback in waiting:
            callback()

    def notify_drained(self, callback: Callable[[], None]) -> None:
        """Call `callback` once, when the transport's buffer has drained (U9)."""
        if self.close_sent or self.peer_gone:
            return  # never drains; the connection is going away
        if self.writable.is_set():
            # Not paused: the backlog is under the high-water mark, so no resume is
            # coming; look again shortly.
            self.loop.call_later(DRAIN_RECHECK_SECONDS, callback)
        else:
            self._drained.append(callback)

    def handle_connect(self, event: Any) -> None:
        self.peer_gone = False  # the client's close frame arrived or the connection is lost
        super().handle_connect(event)
        scope = getattr(self, "scope", None)  # U2
        if scope is not None:  # absent when the handshake was refused
            scope["extensions"][WIRE_EXTENSION] = self

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept":
            # U3: the handshake's request and response (their header objects are
            # ~3.5 KB) are not read again once the accept went out; an idle
            # connection should not carry them for its whole life.
            self.request = self.response = None  # type: ignore[assignment]

    def handle_close(self, event: Any) -> None:
        self.peer_gone = True  # U4: uvicorn answers it without setting close_sent
        super().handle_close(event)

    def connection_lost(self, exc: Exception | None) -> None:
        self.peer_gone = True
        self._drained.clear()
        super().connection_lost(exc)

    def write_frames(self, frames: list[bytes]) -> bool:
        # U4: frames may only follow the accept and must never follow a close frame,
        # ours or the one uvicorn sent in answer to the client's.
        if self.close_sent or self.peer_gone or not self.handshake_complete:
            return False
        if len(frames) == 1:  # U5
            self.transport.write(frames[0])
        else:
            self.transport.writelines(frames)  # one system call for all of them
        return True

    def backlog(self) -> int:
        return self.transport.get_write_buffer_size()


#: The largest request head (request line and headers) accepted, in bytes.
MAX_HEAD_BYTES = 64 * 1024
#: How long a refused connection is read and discarded before it is closed.
LINGER_SECONDS = 0.5

_HEAD_TOO_LARGE = b"request head too large: its request line and headers exceed %d bytes\n"


class HeadLimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, answering 431 to a request head over MAX_HEAD_BYTES.

    httptools buffers a head of any size, so a client could hold a socket open with
    a header that never ends. Each read that leaves a head unfinished is counted
    (a head that starts inside a read is counted from the next one: at most one
    read, 256 KiB, more than the limit), and a completed head is measured exactly;
    past the limit the answer is 431 with `connection: close`, then the socket is
    closed, before any of it reaches the application or the WebSocket handshake.
    """

    max_head_bytes = MAX_HEAD_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # the next bytes belong to a request head
        self._head_read = 0  # bytes of reads that ended inside the current head
        self._head_size = 0  # the current head's URL and headers, as parsed
        self._refused = False
        self._head_ended_in_read = False  # a head was completed during this read

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        in_head_before = self._in_head
        self._head_ended_in_read = False
        super().data_received(data)
        if self._refused or not (in_head_before and self._in_head) or self._head_ended_in_read:
            # Only a read that ended inside the head it began in is all head: one that
            # also finished it carries a body, or the start of the next request.
            return
        self._head_read += len(data)
        if self._head_read > self.max_head_bytes:
            self._refuse()

    def on_message_begin(self) -> None:
        self._in_head = True
        self._head_size = 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._head_size += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_ended_in_read = True
        self._head_read = 0
        if self._head_size > self.max_head_bytes:
            self._refuse()
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        super().on_message_complete()
        self._in_head = True

    def handle_websocket_upgrade(self) -> None:
        if not self._refused:
            super().handle_websocket_upgrade()
            # The connection is the WebSocket protocol's now, and this one hears no
            # more of it, not even connection_lost, where uvicorn would drop its
            # parser: drop it here, or protocol and parser (which holds the
            # protocol's callbacks) are left as a cycle for the collector (U10).
            self.parser = None  # type: ignore[assignment]

    def _refuse(self) -> None:
        self._refused = True
        body = _HEAD_TOO_LARGE % self.max_head_bytes
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
        )
        # Closing with the client's bytes unread would reset the connection, and a
        # reset can destroy the answer before the client reads it: end our side,
        # discard what still arrives (data_received), and close soon after.
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(LINGER_SECONDS, self.transport.close)
        else:
            self.transport.close()


# python-engineio ----------------------------------------------------------------------


class WireQueue(asyncio.Queue[Any]):
    """An Engine.IO socket queue that knows its wire and whether its writer is idle."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.wire: Wire | None = None
        self.writer_idle = False
        self._on_empty: list[Callable[[], None]] = []

    def notify_empty(self, callback: Callable[[], None]) -> None:
        """Call `callback` once, when the writer next finds the queue empty (E9)."""
        self._on_empty.append(callback)

    async def get(self) -> Any:
        if self._on_empty and not self.qsize():
            waiting, self._on_empty = self._on_empty, []
            for callback in waiting:
                callback()
        # E2: while a getter is parked here the queue is empty; once an item arrives
        # the queue is non-empty until the getter resumes, and the flag drops before
        # the getter hands the item on. Either way a direct write then waits its turn.
        self.writer_idle = True
        try:
            return await super().get()
        finally:
            self.writer_idle = False


#: The Engine.IO packet types a client sends over a WebSocket: CLOSE, PING (the upgrade
#: probe), PONG, MESSAGE, UPGRADE.
_CLIENT_PACKET_TYPES = frozenset("12345")
_ENGINEIO_CLOSE = "1"


def engineio_junk(message: Any) -> str | None:
    """Why Engine.IO could not take this WebSocket message, or None if it can (E7)."""
    if not isinstance(message, str):
        return None  # binary: Engine.IO passes it up; the Socket.IO decoder refuses it
    if not message or message[0] not in _CLIENT_PACKET_TYPES:
        return "not an Engine.IO packet a client sends"
    if len(message) > 1 and not message[1].isnumeric():
        # Engine.IO parses the rest as JSON (a Socket.IO packet starts with a digit).
        try:
            eio_packet.Packet(encoded_packet=message)
        except RecursionError:
            return "the Engine.IO packet is nested too deeply"
        except Exception:  # whatever it raises, the client's packet is at fault
            return "the Engine.IO packet does not decode"
    return None


class GuardedWebSocket(eio_asgi.WebSocket):  # type: ignore[misc]
    """Engine.IO's ASGI WebSocket that never hands Engine.IO a packet it cannot decode.

    Such a message reaches Engine.IO as an `EngineIOJunk` instead (E7), which the
    gateway answers like Socket.IO junk: counted, logged once a second, and the
    connection closed with `protocol_abuse` past its allowance. Once Engine.IO's
    CLOSE packet went out the WebSocket is closed and nothing more is read (E8).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._closing = False

    async def wait(self) -> Any:
        if self._closing:
            return None  # ends Engine.IO's loop, which then closes the socket
        message = await super().wait()
        if self._closing:
            return None
        reason = engineio_junk(message)
        return message if reason is None else EngineIOJunk(reason)

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message == _ENGINEIO_CLOSE:
            self._closing = True
            await self.close()


class WiredEngineIOServer(engineio.AsyncServer):  # type: ignore[misc]
    """Engine.IO server whose sockets get a `WireQueue` (E1) and a `GuardedWebSocket` (E7),
    and whose closed sockets are not kept alive by their ping timer (E10).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ping_timers: dict[str, asyncio.Task[Any]] = {}  # Engine.IO sid -> its timer
        drivers = getattr(self, "_async", None)
        if isinstance(drivers, dict) and drivers.get("websocket") is eio_asgi.WebSocket:
            # A copy for this server: the driver module's own dict stays as it is.
            self._async = {**drivers, "websocket": GuardedWebSocket}

    def create_queue(self, *args: Any, **kwargs: Any) -> WireQueue:
        return WireQueue(*args, **kwargs)

    def start_background_task(self, target: Any, *args: Any, **kwargs: Any) -> Any:
        task = super().start_background_task(target, *args, **kwargs)
        socket = getattr(target, "__self__", None)
        if isinstance(socket, AsyncSocket) and getattr(target, "__name__", "") == "_send_ping":
            sid: str = socket.sid  # E10: the socket's ping timer
            self._ping_timers[sid] = task
            task.add_done_callback(lambda done: self._forget_ping_timer(sid, done))
        return task

    def _forget_ping_timer(self, sid: str, task: asyncio.Task[Any]) -> None:
        if self._ping_timers.get(sid) is task:
            del self._ping_timers[sid]

    async def _trigger_event(self, event: str, *args: Any, **kwargs: Any) -> Any:
        # E10: a closing socket's ping timer would keep the whole connection alive
        # for ping_interval; under churn that is ~20 KB per connection closed in the
        # last 25 s. (Not when the timer itself is closing it: it ends by itself.)
        if event == "disconnect" and args:
            timer = self._ping_timers.pop(args[0], None)
            if timer is not None and timer is not asyncio.current_task():
                timer.cancel()
        return await super()._trigger_event(event, *args, **kwargs)


def attach_wire(eio: engineio.AsyncServer, eio_sid: str, wire: Wire | None) -> Any:
    """The Engine.IO socket of `eio_sid` (None if gone), given `wire` if there is one."""
    socket = eio.sockets.get(eio_sid)  # E4
    if wire is not None and socket is not None and isinstance(socket.queue, WireQueue):
        socket.queue.wire = wire
    return socket


def engine_binding(sio: Any, sid: str, environ: dict[str, Any]) -> tuple[str, Wire | None]:
    """A connecting sid's Engine.IO sid (S3) and the wire of its WebSocket, if any (E5)."""
    scope = environ.get("asgi.scope") or {}
    wire = (scope.get("extensions") or {}).get(WIRE_EXTENSION)
    eio_sid: str = sio.manager.eio_sid_from_sid(sid, "/")
    return eio_sid, wire if isinstance(wire, WireProtocol) else None


def encode_event(event: str, payload: Any) -> tuple[Any, str]:
    """An event's Engine.IO packet (for the queue path) and its text (for the frame)."""
    return _message(sio_packet.Packet(sio_packet.EVENT, data=[event, payload]).encode())  # S4


def encode_event_json(event: str, payload_json: str) -> tuple[Any, str]:
    """`encode_event` of a payload that is JSON text already: the text S4 gives for
    `[event, json.loads(payload_json)]`, without decoding the payload."""
    return _message(sio_event_json(event, payload_json))


def _message(text: str) -> tuple[Any, str]:
    """A Socket.IO packet's text as an Engine.IO message packet, and its encoding."""
    packet = eio_packet.Packet(eio_packet.MESSAGE, data=text)
    return packet, packet.encode()  # E6


def _check_engine(eio: Any) -> None:
    require(
        isinstance(eio, WiredEngineIOServer),
        "python-socketio",
        "S1",
        f"the server's eio is a {type(eio).__name__}, not built by _engineio_server_class",
    )
    require(
        isinstance(getattr(eio, "sockets", None), dict),
        "python-engineio",
        "E4",
        "AsyncServer.sockets is not a dict of sockets",
    )
    probe = AsyncSocket(eio, "roomcast-probe")
    require(
        isinstance(getattr(probe, "queue", None), WireQueue),
        "python-engineio",
        "E1",
        "a socket's queue does not come from AsyncServer.create_queue",
    )
    require(
        getattr(probe, "upgraded", None) is False and getattr(probe, "closed", None) is False,
        "python-engineio",
        "E3",
        "a new socket has no upgraded and closed flags set to False",
    )
    require(
        eio._async.get("websocket") is GuardedWebSocket,
        "python-engineio",
        "E7",
        "the ASGI driver's WebSocket class is not engineio.async_drivers.asgi.WebSocket",
    )


# python-socketio ----------------------------------------------------------------------


class WiredSocketIOServer(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's server on top of `WiredEngineIOServer` (S1)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _check_engine(self.eio)

    def _engineio_server_class(self) -> type[engineio.AsyncServer]:
        return WiredEngineIOServer

    async def disconnect(
        self, sid: str, namespace: str | None = None, ignore_queue: bool = False
    ) -> None:
        """python-socketio's disconnect, which then closes the Engine.IO socket too (E8).

        roomcast serves one namespace, so a connection it closes has nothing left on
        its Engine.IO socket; a client that ignored the DISCONNECT packet would
        otherwise keep it open.
        """
        eio_sid = self.manager.eio_sid_from_sid(sid, namespace or "/")  # S3
        await super().disconnect(sid, namespace=namespace, ignore_queue=ignore_queue)  # S6
        socket = self.eio.sockets.get(eio_sid) if eio_sid is not None else None  # E4
        # Long-polling is left as it was: a closed socket refuses the poll that would
        # carry the DISCONNECT packet (E3: `upgraded` is False there).
        if socket is not None and socket.upgraded and not socket.closed:
            await socket.close(wait=False, reason=self.eio.reason.SERVER_DISCONNECT)


class WiredASGIApp(socketio.ASGIApp):  # type: ignore[misc]
    """Socket.IO's ASGI app, handing the wire of an upgrading socket to its queue.

    A client that starts on long-polling (socket.io-client's default) upgrades with a
    second request naming its Engine.IO `sid` (E5); that request's scope holds the
    wire. A client that starts on WebSocket is given its wire when it connects (see
    the gateway), from the scope of its one request.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        require(
            isinstance(getattr(self.engineio_server, "eio", None), WiredEngineIOServer),
            "python-socketio",
            "S5",
            "ASGIApp.engineio_server is not the Socket.IO server it was given",
        )

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            wire = (scope.get("extensions") or {}).get(WIRE_EXTENSION)
            if wire is not None:
                sids = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("sid")
                if sids:
                    attach_wire(self.engineio_server.eio, sids[0], wire)  # S5, E5
        await super().__call__(scope, receive, send)


class AfterConnectManager(socketio.AsyncManager):  # type: ignore[misc]
    """Calls `on_connected(sid)` right after the CONNECT packet went out (S2).

    The connect handler runs before that packet is sent, so anything it emitted
    would reach the client before the connection exists for it; the greeting
    (`connection_status`) is therefore sent from here.
    """

    def __init__(self, on_connected: Callable[[str], None]) -> None:
        super().__init__()
        self._on_connected = on_connected

    async def connect(self, sid: str, namespace: str) -> Any:
        result = await super().connect(sid, namespace)
        self._on_connected(sid)
        return result
