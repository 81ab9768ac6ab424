"""Socket.IO clients that read only when the test asks them to.

Real clients (python-socketio, aiohttp) keep reading whatever arrives, so the server
never sees a consumer that has stopped. This one speaks the WebSocket and Socket.IO
wire by hand over asyncio streams, with a small kernel receive buffer, and reads
nothing between calls to `recv`: what the server writes meanwhile piles up in its
own transport, which is exactly what slow-consumer handling must notice. The
handshake and the frames are `tests.support.wire`'s, shared with the benchmark's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import struct
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from tests.support.wire import ENGINEIO_POLLING_PATH, client_frame, upgrade_request


class RawSocketIO:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._ack_id = 0

    @classmethod
    async def connect(cls, url: str, token: str, *, rcvbuf: int = 4096) -> RawSocketIO:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=rcvbuf)
        writer.write(upgrade_request(host, port))
        client = cls(reader, writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 101"):
                raise ConnectionError(head.decode(errors="replace"))
            opening = await client.recv()
            if not opening.startswith("0"):
                raise ConnectionError(f"expected an Engine.IO open packet, got {opening!r}")
            await client.send("40" + json.dumps({"token": token}))
            connected = await client.recv()
            if not connected.startswith("40"):
                raise ConnectionError(f"connect refused: {connected!r}")
        except BaseException:
            await client.close()
            raise
        return client

    async def send(self, text: str) -> None:
        self._writer.write(client_frame(text.encode(), os.urandom(4)))
        await self._writer.drain()

    async def recv(self) -> str:
        """The next Engine.IO packet as text (answering pings on the way); '' on close."""
        while True:
            try:
                first, second = await self._reader.readexactly(2)
            except asyncio.IncompleteReadError:
                return ""
            size = second & 0x7F
            if size == 126:
                (size,) = struct.unpack("!H", await self._reader.readexactly(2))
            elif size == 127:
                (size,) = struct.unpack("!Q", await self._reader.readexactly(8))
            payload = await self._reader.readexactly(size)
            opcode = first & 0x0F
            if opcode == 0x8:
                return ""
            if opcode != 0x1:
                continue
            text = payload.decode()
            if text == "2":
                await self.send("3")
                continue
            return text

    async def call(self, event: str, data: Any) -> Any:
        """Emit with an ack and wait for it, keeping the events that come first."""
        self._ack_id += 1
        ack = f"43{self._ack_id}"
        await self.send(f"42{self._ack_id}" + json.dumps([event, data]))
        while True:
            text = await self.recv()
            if not text:
                raise ConnectionError("closed while waiting for an ack")
            if text.startswith(ack + "["):
                return json.loads(text[len(ack) :])[0]

    async def next_event(self) -> tuple[str, Any] | None:
        """The next Socket.IO event as (name, data); None once the connection closed."""
        while True:
            text = await self.recv()
            if text in ("", "1", "41"):  # closed, Engine.IO close, Socket.IO disconnect
                return None
            if text.startswith("42["):
                name, data = json.loads(text[2:])
                return name, data

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()


class RawPolling:
    """A Socket.IO client on Engine.IO long-polling that polls only when asked.

    Between two `poll` calls the server can only queue: this is the client whose
    Engine.IO queue overflows, deterministically.
    """

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self._http = http
        self._url = url
        self._ack_id = 0
        self.closed = False

    @classmethod
    async def connect(cls, url: str, token: str) -> RawPolling:
        http = aiohttp.ClientSession()
        try:
            async with http.get(url + ENGINEIO_POLLING_PATH) as response:
                opening = await response.text()
            if not opening.startswith("0"):
                raise ConnectionError(f"expected an Engine.IO open packet, got {opening!r}")
            sid = json.loads(opening[1:])["sid"]
            client = cls(http, f"{url}{ENGINEIO_POLLING_PATH}&sid={sid}")
            await client.post("40" + json.dumps({"token": token}))
            if not any(p.startswith("40") for p in await client.poll()):
                raise ConnectionError("connect refused")
            return client
        except BaseException:
            await http.close()
            raise

    async def post(self, *packets: str) -> None:
        async with self._http.post(self._url, data="\x1e".join(packets)) as response:
            response.raise_for_status()

    async def poll(self) -> list[str]:
        """Everything the server queued since the last poll (waits for at least one)."""
        async with self._http.get(self._url) as response:
            if response.status != 200:
                self.closed = True
                return []
            packets = (await response.text()).split("\x1e")
        if "2" in packets:
            await self.post("3")
        if "1" in packets or "41" in packets:  # Engine.IO close or Socket.IO disconnect
            self.closed = True
        return [p for p in packets if p not in ("2", "6")]

    async def call(self, event: str, data: Any) -> Any:
        self._ack_id += 1
        ack = f"43{self._ack_id}"
        await self.post(f"42{self._ack_id}" + json.dumps([event, data]))
        while not self.closed:
            for packet in await self.poll():
                if packet.startswith(ack + "["):
                    return json.loads(packet[len(ack) :])[0]
        raise ConnectionError("closed while waiting for an ack")

    async def events(self) -> list[tuple[str, Any]]:
        """The Socket.IO events of the next poll, as (name, data)."""
        found = []
        for packet in await self.poll():
            if packet.startswith("42["):
                name, data = json.loads(packet[2:])
                found.append((name, data))
        return found

    async def close(self) -> None:
        await self._http.close()
