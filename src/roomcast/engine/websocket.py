"""roomcast's WebSocket protocol for uvicorn: a connection that lives as callbacks.

`uvicorn.Config(ws=RawWebSocketProtocol)` hands every WebSocket upgrade to this
class. The upgrade becomes one short ASGI call of the application, with a standard
websocket scope whose `extensions[CARRIER_EXTENSION]` is the protocol itself (a
`contract.Carrier`). roomcast's engine sends `websocket.accept`, calls
`attach(sink)` and returns: from then on each message reaches the sink from
`data_received`, and the connection holds no task, queue, event or future, nor its
request head: an idle attached connection costs about 1.9 KB of Python memory
(tracemalloc, 2000 connections), of which this protocol and its FrameParser are
264 bytes and the rest asyncio's transport, socket and selector key.

Any other ASGI websocket application (a host's own route) keeps calling `receive()`
and `send()` instead, and is served the standard ASGI websocket messages; only that
path queues messages and parks futures.

What it leaves out, on purpose:
- permessage-deflate is never negotiated (a deployment that wants compression runs
  uvicorn's own protocol);
- `ws_ping_interval` and `ws_ping_timeout` are ignored: Engine.IO has its own
  heartbeat, from one timer per process, and a timer per connection is what this
  protocol exists to avoid. Client pings are answered.
`ws_max_size` is honoured (close 1009 past it), and uvicorn's shutdown closes every
connection with 1012.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from .contract import CarrierSink, Frame, frame_of
from .frames import Close, Failure, FrameParser, Ping, close_frame, pong_frame
from .handshake import (
    MAX_LINE_BYTES,
    Refusal,
    accept_key,
    local_address,
    parse_upgrade,
    phrase,
    remote_address,
)

if TYPE_CHECKING:
    from uvicorn.config import Config
    from uvicorn.server import ServerState

CARRIER_EXTENSION = "roomcast.carrier"

#: The largest request head taken (uvicorn's http protocol bounds it first).
MAX_HEAD_BYTES = 64 * 1024
#: How long a close frame we sent waits for the client's before the socket is cut.
CLOSE_TIMEOUT = 3.0
#: Messages a generic ASGI application may leave unread before reading pauses.
PAUSE_READING_AT = 16

logger = logging.getLogger("uvicorn.error")

# The connection's life.
_HEAD = 0  # reading the upgrade request
_CONNECTING = 1  # the application has the scope and has not answered yet
_OPEN = 2  # accepted
_CLOSING = 3  # our close frame went out; the client's is awaited
_CLOSED = 4  # over: the transport is closed or closing

# What the application does with it, once accepted.
_NEW = 0  # `websocket.connect` not yet received
_UNDECIDED = 1
_ATTACHED = 2  # a sink takes the messages
_GENERIC = 3  # the application receives them through ASGI


class WebSocketClosed(OSError):
    """An ASGI send on a connection that is gone (ASGI asks servers for an OSError)."""


class RawWebSocketProtocol(asyncio.Protocol):
    """One WebSocket connection under uvicorn, and its `Carrier`."""

    __slots__ = (
        "_app_state",
        "_close_code",
        "_close_timer",
        "_config",
        "_connections",
        "_drained",
        "_handshake",
        "_head",
        "_mode",
        "_parser",
        "_paused",
        "_pending",
        "_reading_paused",
        "_reply",
        "_scope",
        "_server_state",
        "_sink",
        "_state",
        "_transport",
        "_waiter",
    )

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not config.loaded:
            config.load()
        self._config = config
        self._server_state = server_state
        self._app_state = app_state
        self._connections = server_state.connections
        self._transport: asyncio.Transport = None  # type: ignore[assignment]
        self._state = _HEAD
        self._mode = _NEW
        self._head: bytearray | None = None  # an incomplete request head
        self._reply: bytes | None = None  # the 101 response, until it is written
        self._parser: FrameParser | None = None
        self._scope: dict[str, Any] | None = None  # until the application answers
        self._handshake: Any = None  # the accept token, then a denial response under way
        self._sink: CarrierSink | None = None
        self._pending: list[str | bytes] | None = None  # messages nobody took yet
        self._waiter: asyncio.Future[None] | None = None  # a generic receive() waiting
        self._drained: list[Callable[[], None]] | None = None
        self._paused = False  # writing
        self._reading_paused = False
        self._close_timer: asyncio.TimerHandle | None = None
        self._close_code = 0  # how the connection ended, for a generic application

    # asyncio --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._connections.add(self)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if parser is None:
            self._head_received(data)
            return
        events = parser.feed(data)
        for event in events:
            kind = type(event)
            if kind is str or kind is bytes:
                if self._state != _OPEN:
                    continue  # before the accept, or after our close frame: discarded
                sink = self._sink
                if sink is not None:
                    sink.on_message(event)  # type: ignore[arg-type]
                else:
                    self._queue(event)  # type: ignore[arg-type]
            elif kind is Ping:
                # Not while the client leaves our writes unread: pings would then grow
                # the buffer without bound (RFC 6455 5.5.3 lets a pong answer only the
                # latest ping, so skipping some is fine).
                if self._state == _OPEN and not self._paused:
                    self._transport.write(pong_frame(event.payload))  # type: ignore[union-attr]
            elif kind is Close:
                self._peer_closed(event.code)  # type: ignore[union-attr]
            elif kind is Failure:
                self._fail(event.code, event.reason)  # type: ignore[union-attr]
            # A Pong needs nothing: this protocol sends no pings of its own.

    def eof_received(self) -> bool | None:
        return None  # close the transport (a half-open WebSocket is of no use)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        waiting, self._drained = self._drained, None
        if waiting:
            for callback in waiting:
                callback()

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.discard(self)
        self._end(1006)
        self._parser = None
        self._head = None

    def shutdown(self) -> None:
        """uvicorn stops: close with 1012, or refuse a handshake still under way."""
        if self._state == _OPEN:
            self.close(1012, "server restart")
        elif self._state == _CONNECTING:
            self._answer(500, b"server shutting down")
        elif self._state == _HEAD:
            self._end(1006)

    # Carrier --------------------------------------------------------------------------

    def attach(self, sink: CarrierSink) -> None:
        if self._mode in (_ATTACHED, _GENERIC):
            raise RuntimeError("the connection already has its reader")
        if self._state < _OPEN:
            raise RuntimeError("attach() before websocket.accept")
        self._mode = _ATTACHED
        self._sink = sink
        pending, self._pending = self._pending, None
        if pending:
            self._resume_reading()
            for message in pending:
                if self._sink is not sink or self._state == _CLOSING:
                    break  # the sink closed the connection meanwhile
                sink.on_message(message)
        if self._state == _CLOSED and self._sink is sink:  # it ended before the attach
            self._sink = None
            sink.on_closed()

    def write(self, frames: Sequence[Frame]) -> bool:
        if self._state != _OPEN:
            return False
        reply = self._reply
        if reply is not None:
            self._reply = None
            self._transport.writelines([reply, *(frame.wire for frame in frames)])
            return True
        if len(frames) == 1:
            self._transport.write(frames[0].wire)
        else:
            self._transport.writelines([frame.wire for frame in frames])
        return True

    def _send_reply(self) -> None:
        """Write the 101 response if no frame has taken it along yet."""
        reply = self._reply
        if reply is not None:
            self._reply = None
            transport = self._transport
            if transport is not None and not transport.is_closing():
                transport.write(reply)

    def backlog(self) -> int:
        return self._transport.get_write_buffer_size() if self._transport is not None else 0

    def notify_drained(self, callback: Callable[[], None]) -> None:
        if self._state != _OPEN:
            return
        if not self._paused:
            asyncio.get_running_loop().call_soon(self._drained_now, callback)
        elif self._drained is None:
            self._drained = [callback]
        else:
            self._drained.append(callback)

    def close(self, code: int = 1000, reason: str = "") -> None:
        if self._state != _OPEN:
            return
        self._state = _CLOSING
        self._close_code = code
        self._send_reply()
        self._transport.write(close_frame(code, reason))
        self._resume_reading()  # the client's close frame must get through
        self._release_drain_waiters()
        self._close_timer = asyncio.get_running_loop().call_later(
            CLOSE_TIMEOUT, self._close_timed_out
        )
        self._wake()

    # The connection's end -------------------------------------------------------------

    def _drained_now(self, callback: Callable[[], None]) -> None:
        if self._state == _OPEN:
            callback()

    def _peer_closed(self, code: int) -> None:
        if self._state == _OPEN:
            self._send_reply()
            self._transport.write(close_frame(code))  # echoed (RFC 6455 5.5.1)
        self._end(code)

    def _fail(self, code: int, reason: str) -> None:
        logger.debug("WebSocket failed: %d %s", code, reason)
        if self._state == _OPEN:
            self._send_reply()
            self._transport.write(close_frame(code, reason))
        self._end(code)

    def _close_timed_out(self) -> None:
        self._close_timer = None
        self._end(self._close_code, abort=True)

    def _end(self, code: int, *, abort: bool = False) -> None:
        if self._state == _CLOSED:
            return
        self._state = _CLOSED
        if not self._close_code:
            self._close_code = code
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        self._release_drain_waiters()
        if self._transport is not None:
            if abort:
                self._transport.abort()
            else:
                self._transport.close()
        self._wake()
        sink, self._sink = self._sink, None
        if sink is not None:
            sink.on_closed()

    def _release_drain_waiters(self) -> None:
        # A sink's callbacks are never called once the connection closes; a generic
        # application's senders are woken, to find the connection gone.
        waiting, self._drained = self._drained, None
        if waiting and self._mode != _ATTACHED:
            for callback in waiting:
                callback()

    # The upgrade request --------------------------------------------------------------

    def _head_received(self, data: bytes) -> None:
        if self._state != _HEAD:
            return  # refused: what still arrives is discarded
        head = self._head
        if head is not None:
            head += data
            buffer: bytes | bytearray = head
        else:
            buffer = data
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            line = len(buffer) - buffer.rfind(b"\n") - 1
            if len(buffer) > MAX_HEAD_BYTES or line > MAX_LINE_BYTES:
                self._answer(431, b"request head too large")
            elif head is None:
                self._head = bytearray(data)
            return
        rest = buffer[end + 4 :]
        self._head = None
        try:
            scope = self._scope_of(bytes(buffer[:end]))
        except Refusal as refusal:
            self._answer(refusal.status, refusal.detail.encode(), refusal.headers)
            return
        self._parser = FrameParser(self._config.ws_max_size)
        self._start(scope)
        if rest:
            self.data_received(bytes(rest))

    def _scope_of(self, head: bytes) -> dict[str, Any]:
        target, headers = parse_upgrade(head)
        self._handshake = accept_key(headers)
        raw_path, _, query_string = target.partition(b"?")
        root_path: str = self._config.root_path
        subprotocols = [
            token.strip()
            for name, value in headers
            if name == b"sec-websocket-protocol"
            for token in value.decode("latin-1").split(",")
        ]
        transport = self._transport
        return {
            "type": "websocket",
            "asgi": {"version": self._config.asgi_version, "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": "wss" if transport.get_extra_info("sslcontext") else "ws",
            "server": local_address(transport.get_extra_info("sockname")),
            "client": remote_address(transport.get_extra_info("peername")),
            "root_path": root_path,
            "path": root_path + unquote(raw_path.decode("latin-1")),
            "raw_path": root_path.encode("ascii") + raw_path,
            "query_string": query_string,
            "headers": headers,
            "subprotocols": subprotocols,
            "state": self._app_state.copy(),
            "extensions": {"websocket.http.response": {}, CARRIER_EXTENSION: self},
        }

    def _answer(self, status: int, body: bytes, headers: Sequence[bytes] = ()) -> None:
        """An HTTP answer instead of the upgrade, then the end."""
        if self._state >= _OPEN:
            return
        lines = [b"HTTP/1.1 %d %s\r\n" % (status, phrase(status).encode())]
        lines += [name + b": " + value + b"\r\n" for name, value in self._default_headers()]
        lines += [line + b"\r\n" for line in headers]
        lines.append(
            b"content-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
        )
        lines.append(body)
        self._transport.write(b"".join(lines))
        self._end(1006)

    def _default_headers(self) -> list[tuple[bytes, bytes]]:
        return list(self._server_state.default_headers)

    # The ASGI call --------------------------------------------------------------------

    def _start(self, scope: dict[str, Any]) -> None:
        self._state = _CONNECTING
        self._scope = scope
        task = asyncio.get_running_loop().create_task(self._run(scope))
        tasks = self._server_state.tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def _run(self, scope: dict[str, Any]) -> None:
        try:
            await self._config.loaded_app(scope, self._receive, self._send)
        except WebSocketClosed:
            return
        except Exception:
            logger.exception("Exception in ASGI application\n")
            failed = True
        else:
            failed = False
        if self._state == _CONNECTING:
            if not failed:
                logger.error("ASGI callable returned without completing handshake.")
            self._answer(500, b"Internal Server Error")
        elif self._mode != _ATTACHED:
            self.close(1011 if failed else 1000)

    async def _receive(self) -> dict[str, Any]:
        mode = self._mode
        if mode == _NEW:
            self._mode = _UNDECIDED
            return {"type": "websocket.connect"}
        if mode == _ATTACHED:
            raise RuntimeError("receive() on a connection attached to a sink")
        self._mode = _GENERIC
        while True:
            pending = self._pending
            if pending:
                message = pending.pop(0)
                if not pending:
                    self._pending = None
                    self._resume_reading()
                if type(message) is str:
                    return {"type": "websocket.receive", "text": message}
                return {"type": "websocket.receive", "bytes": message}
            if self._state >= _CLOSING:
                return {"type": "websocket.disconnect", "code": self._close_code or 1006}
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            await waiter

    async def _send(self, message: Mapping[str, Any]) -> None:
        kind = message["type"]
        state = self._state
        if state == _CONNECTING:
            self._handshake_reply(message)
        elif state == _OPEN:
            if kind == "websocket.send":
                if self._paused:
                    await self._writable()
                    if self._state != _OPEN:
                        raise WebSocketClosed("the WebSocket is closed")
                data = message.get("bytes")
                if data is None:
                    data = message.get("text") or ""
                self._send_reply()
                self._transport.write(frame_of(data).wire)
            elif kind == "websocket.close":
                self.close(message.get("code") or 1000, message.get("reason") or "")
            else:
                raise RuntimeError(f"unexpected ASGI message {kind!r} on an open WebSocket")
        elif state == _CLOSING and kind == "websocket.close":
            return
        else:
            raise WebSocketClosed("the WebSocket is closed")

    def _handshake_reply(self, message: Mapping[str, Any]) -> None:
        kind = message["type"]
        denial = self._handshake if isinstance(self._handshake, tuple) else None
        if denial is not None:
            if kind != "websocket.http.response.body":
                raise RuntimeError(f"expected websocket.http.response.body, got {kind!r}")
            denial[2].extend(message.get("body", b""))
            if not message.get("more_body", False):
                self._deny(*denial)
        elif kind == "websocket.accept":
            self._accept(message)
        elif kind == "websocket.close":
            self._log("403")
            self._answer(403, b"")
        elif kind == "websocket.http.response.start":
            status = message["status"]
            if not 100 <= status < 600:
                raise RuntimeError(f"invalid HTTP status code {status} in response")
            self._handshake = (status, list(message.get("headers", [])), bytearray())
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} before websocket.accept")

    def _accept(self, message: Mapping[str, Any]) -> None:
        self._log("[accepted]")
        lines = [
            b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
            b"sec-websocket-accept: ",
            self._handshake,
            b"\r\n",
        ]
        subprotocol = message.get("subprotocol")
        if subprotocol:
            lines.append(b"sec-websocket-protocol: " + subprotocol.encode("latin-1") + b"\r\n")
        for name, value in [*self._default_headers(), *message.get("headers", [])]:
            lines += [name.lower(), b": ", value, b"\r\n"]
        lines.append(b"\r\n")
        # Written with the first frames (the engine's open packet, in the same loop
        # turn): one write and one syscall fewer per connection. Two turns from now
        # at the latest, for an application that sends nothing at once.
        self._reply = b"".join(lines)
        loop = asyncio.get_running_loop()
        loop.call_soon(loop.call_soon, self._send_reply)
        self._state = _OPEN
        self._handshake = None
        self._scope = None

    def _deny(self, status: int, headers: list[tuple[bytes, bytes]], body: bytearray) -> None:
        self._log(str(status))
        names = {name.lower() for name, _ in headers}
        defaults = {
            b"date": email.utils.formatdate(usegmt=True).encode(),
            b"connection": b"close",
            b"content-length": b"%d" % len(body),
            b"content-type": b"text/plain; charset=utf-8",
        }
        lines = [b"HTTP/1.1 %d %s\r\n" % (status, phrase(status).encode())]
        lines += [name + b": " + value + b"\r\n" for name, value in headers]
        lines += [
            name + b": " + value + b"\r\n" for name, value in defaults.items() if name not in names
        ]
        self._transport.write(b"".join(lines) + b"\r\n" + bytes(body))
        self._end(1006)

    def _log(self, outcome: str) -> None:
        scope = self._scope
        if scope is None or not logger.isEnabledFor(logging.INFO):
            return
        client = scope["client"]
        path = quote(scope["path"])
        if scope["query_string"]:
            path += "?" + scope["query_string"].decode("latin-1")
        who = f"{client[0]}:{client[1]}" if client else ""
        logger.info('%s - "WebSocket %s" %s', who, path, outcome)

    # The generic path's queue and flow control -----------------------------------------

    def _queue(self, message: str | bytes) -> None:
        if self._pending is None:
            self._pending = [message]
        else:
            self._pending.append(message)
            if len(self._pending) >= PAUSE_READING_AT and not self._reading_paused:
                self._reading_paused = True
                self._transport.pause_reading()
        self._wake()

    def _resume_reading(self) -> None:
        if self._reading_paused:
            self._reading_paused = False
            self._transport.resume_reading()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _writable(self) -> None:
        drained = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not drained.done():
                drained.set_result(None)

        if self._drained is None:
            self._drained = [wake]
        else:
            self._drained.append(wake)
        await drained
