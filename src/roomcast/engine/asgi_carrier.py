"""AsgiCarrier: a `Carrier` over ASGI websocket messages, for any ASGI server.

Under an ASGI server that does not run roomcast's raw protocol (uvicorn's own
WebSocket implementations, hypercorn...), the connection's ASGI call stays alive
reading `receive()` (`run`), and writes leave through `send()` from a sender task
that exists only while frames wait. Correct and ordered; slower than the raw carrier
(a task per connection, one ASGI message per frame).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from .contract import CarrierSink, Frame

Receive = Callable[[], Awaitable[Any]]
Send = Callable[[Any], Awaitable[None]]


class AsgiCarrier:
    """One ASGI WebSocket as a Carrier (see the module docstring)."""

    def __init__(self, receive: Receive, send: Send, *, max_size: int | None = None) -> None:
        self._receive = receive
        self._send = send
        self._max_size = max_size
        self._sink: CarrierSink | None = None
        self._early: list[str | bytes] = []
        self._out: deque[str | bytes] = deque()
        self._backlog = 0
        self._sender: asyncio.Task[None] | None = None
        self._drained: list[Callable[[], None]] = []
        self._close_code: int | None = None  # set once close() was called
        self._closed = False  # the connection is gone (or our close frame went out)
        self._told = False  # on_closed was called

    # Carrier --------------------------------------------------------------------------

    def attach(self, sink: CarrierSink) -> None:
        self._sink = sink
        early, self._early = self._early, []
        for message in early:
            sink.on_message(message)

    def write(self, frames: Sequence[Frame]) -> bool:
        if self._closed or self._close_code is not None:
            return False
        for frame in frames:
            self._out.append(frame.data)
            self._backlog += len(frame.data)
        self._start_sender()
        return True

    def backlog(self) -> int:
        return self._backlog

    def notify_drained(self, callback: Callable[[], None]) -> None:
        if self._closed:
            return
        if not self._backlog:
            asyncio.get_running_loop().call_soon(callback)
        else:
            self._drained.append(callback)

    def close(self, code: int = 1000) -> None:
        if self._close_code is not None or self._closed:
            return
        self._close_code = code
        self._start_sender()

    # The connection's task ------------------------------------------------------------

    async def run(self) -> None:
        """Read the connection until it ends (the ASGI call's body)."""
        try:
            while not self._closed:
                message = await self._receive()
                kind = message.get("type")
                if kind == "websocket.disconnect":
                    break
                if kind != "websocket.receive":
                    continue
                data = message.get("text")
                if data is None:
                    data = message.get("bytes") or b""
                if self._max_size is not None and len(data) > self._max_size:
                    self.close(1009)
                    continue
                if self._sink is None:
                    self._early.append(data)
                else:
                    self._sink.on_message(data)
        finally:
            self._closed = True
            if self._sender is not None and not self._sender.done():
                self._sender.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._sender
            self._out.clear()
            self._backlog = 0
            self._drained = []
            self._tell_closed()

    def _tell_closed(self) -> None:
        if not self._told:
            self._told = True
            if self._sink is not None:
                self._sink.on_closed()

    def _start_sender(self) -> None:
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self._out:
                data = self._out.popleft()
                if isinstance(data, str):
                    await self._send({"type": "websocket.send", "text": data})
                else:
                    await self._send({"type": "websocket.send", "bytes": data})
                self._backlog -= len(data)
                if not self._out and self._drained:
                    drained, self._drained = self._drained, []
                    for callback in drained:
                        callback()
            if self._close_code is not None and not self._closed:
                self._closed = True
                await self._send({"type": "websocket.close", "code": self._close_code})
        except Exception:  # the connection is gone: run() hears the disconnect
            self._closed = True
            self._out.clear()
            self._backlog = 0
