"""The floor: the least a server can do for the suite's load, in raw uvloop.

Enough Engine.IO v4 / Socket.IO v5 over WebSocket for the suite's load generator and
nothing else: the upgrade, the open packet, CONNECT, `join` with its ack, a `publish`
client event (`{room, type, data}`, acked, delivered to the whole room, the sender
included), `POST /api/v1/publish` and `GET /healthz`. No authentication, no
validation beyond what parsing needs, no ping timer (the open packet asks for none).
A publish builds its `42["type",data]` WebSocket frame once, whatever the number of
recipients. Two ways to write it (--mode):

- `write`: `transport.write(frame)` per recipient, one send per recipient;
- `cork`: frames are queued per socket and written once per event-loop iteration,
  one `write` of everything that socket got during that iteration.

With --redis the instances form one service over Redis pub/sub (one channel, the
instance's id in front of each message so that it skips its own).

    python benchmarks/peers/floor.py PORT [--host 127.0.0.1] [--redis URL]
        [--mode write|cork]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import signal
from collections import defaultdict
from typing import Any
from urllib.parse import urlsplit

import uvloop

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OPEN = b'0{"sid":"floor","upgrades":[],"pingInterval":3600000,"pingTimeout":3600000,' \
       b'"maxPayload":1000000}'  # fmt: skip
CHANNEL = b"floor"


def ws_frame(payload: bytes) -> bytes:
    """One unmasked server text frame."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 1 << 16:
        return bytes((0x81, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + n.to_bytes(8, "big") + payload


def http_answer(status: str, body: bytes) -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


OK_BODY = b'{"ok":true}'


class Hub:
    """Rooms of one instance, the write mode, and the Redis link to the others."""

    def __init__(self, mode: str) -> None:
        self.rooms: dict[str, set[Conn]] = defaultdict(set)
        self.cork = mode == "cork"
        self.dirty: list[Conn] = []
        self.loop = asyncio.get_running_loop()
        self.instance = os.urandom(6).hex().encode()
        self.redis: asyncio.Transport | None = None

    def deliver(self, room: str, packet: bytes) -> None:
        members = self.rooms.get(room)
        if not members:
            return
        frame = ws_frame(packet)
        if not self.cork:
            for conn in members:
                conn.transport.write(frame)
            return
        dirty = self.dirty
        if not dirty:
            self.loop.call_soon(self.flush)
        for conn in members:
            if not conn.pending:
                dirty.append(conn)
            conn.pending.append(frame)

    def flush(self) -> None:
        dirty, self.dirty = self.dirty, []
        for conn in dirty:
            pending, conn.pending = conn.pending, []
            if conn.open:
                conn.transport.write(b"".join(pending) if len(pending) > 1 else pending[0])

    def publish(self, room: str, event: str, data: Any) -> None:
        packet = b"42" + json.dumps([event, data], separators=(",", ":")).encode()
        self.deliver(room, packet)
        if self.redis is not None:
            message = self.instance + b" " + room.encode() + b"\n" + packet
            self.redis.write(resp(b"PUBLISH", CHANNEL, message))

    def from_redis(self, message: bytes) -> None:
        origin, _, rest = message.partition(b" ")
        if origin == self.instance:
            return
        room, _, packet = rest.partition(b"\n")
        self.deliver(room.decode(), packet)


class Conn(asyncio.Protocol):
    """One client connection: HTTP requests until a WebSocket upgrade, then frames."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.buf = b""
        self.ws = False
        self.open = False
        self.pending: list[bytes] = []
        self.joined: set[str] = set()
        self.transport: asyncio.Transport = None  # type: ignore[assignment]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.open = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        for room in self.joined:
            members = self.hub.rooms.get(room)
            if members is not None:
                members.discard(self)
                if not members:
                    del self.hub.rooms[room]
        self.joined.clear()

    def data_received(self, data: bytes) -> None:
        self.buf = self.buf + data if self.buf else data
        if self.ws:
            self.frames()
        else:
            self.requests()

    def requests(self) -> None:
        while not self.ws:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].decode("latin-1")
            lines = head.split("\r\n")
            method, path = [*lines[0].split(" "), "", ""][:2]
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0") or 0)
            if len(self.buf) < end + 4 + length:
                return
            body = self.buf[end + 4 : end + 4 + length]
            self.buf = self.buf[end + 4 + length :]
            self.request(method, path, headers, body)
        if self.buf:
            self.frames()

    def request(self, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        if path.startswith("/socket.io/") and headers.get("upgrade", "").lower() == "websocket":
            key = headers.get("sec-websocket-key", "").encode()
            accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
            self.transport.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
                + ws_frame(OPEN)
            )  # fmt: skip
            self.ws = True
        elif method == "GET" and path.startswith("/healthz"):
            self.transport.write(http_answer("200 OK", OK_BODY))
        elif method == "POST" and path.startswith("/api/v1/publish"):
            try:
                msg = json.loads(body)
                self.hub.publish(msg["room"], msg["type"], msg["data"])
            except (ValueError, KeyError, TypeError):
                self.transport.write(http_answer("400 Bad Request", b'{"ok":false}'))
            else:
                self.transport.write(http_answer("200 OK", OK_BODY))
        else:
            self.transport.write(http_answer("404 Not Found", b'{"ok":false}'))

    def frames(self) -> None:
        buf = self.buf
        n = len(buf)
        pos = 0
        while n - pos >= 2:
            opcode = buf[pos] & 0x0F
            masked = buf[pos + 1] & 0x80
            length = buf[pos + 1] & 0x7F
            start = pos + 2
            if length == 126:
                if n - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                start = pos + 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                start = pos + 10
            mask = buf[start : start + 4] if masked else b""
            start += 4 if masked else 0
            end = start + length
            if end > n:
                break
            payload = buf[start:end]
            if mask and mask != b"\0\0\0\0":
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            pos = end
            if opcode == 8:
                self.transport.write(bytes((0x88, 0)))
                self.transport.close()
                break
            if opcode == 9:
                self.transport.write(bytes((0x8A, len(payload))) + payload)
            elif opcode == 1:
                self.packet(payload)
        self.buf = buf[pos:]

    def packet(self, p: bytes) -> None:
        if p.startswith(b"40"):
            self.transport.write(ws_frame(b'40{"sid":"floor"}'))
        elif p.startswith(b"42"):
            i = 2
            while i < len(p) and 48 <= p[i] <= 57:
                i += 1
            ack_id = p[2:i]
            try:
                name, arg = json.loads(p[i:])
                answer = self.event(name, arg)
            except (ValueError, KeyError, TypeError):
                answer = {"ok": False, "error": {"code": "invalid_payload"}}
            if ack_id:
                reply = json.dumps([answer], separators=(",", ":")).encode()
                self.transport.write(ws_frame(b"43" + ack_id + reply))

    def event(self, name: str, arg: dict[str, Any]) -> dict[str, Any]:
        if name == "join":
            room = arg["room"]
            self.hub.rooms[room].add(self)
            self.joined.add(room)
            return {"ok": True, "room": room}
        if name == "publish":
            self.hub.publish(arg["room"], arg["type"], arg["data"])
            return {"ok": True}
        return {"ok": False, "error": {"code": "unknown_event"}}


def resp(*parts: bytes) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


def parse_resp(buf: bytes, pos: int) -> tuple[Any, int] | None:
    """One RESP2 value from buf[pos:]: (value, next position), or None when incomplete."""
    line_end = buf.find(b"\r\n", pos)
    if line_end < 0:
        return None
    kind, rest = buf[pos : pos + 1], buf[pos + 1 : line_end]
    if kind == b"$":
        size = int(rest)
        if size < 0:
            return None, line_end + 2
        end = line_end + 2 + size
        if len(buf) < end + 2:
            return None
        return buf[line_end + 2 : end], end + 2
    if kind == b"*":
        items = []
        pos = line_end + 2
        for _ in range(int(rest)):
            got = parse_resp(buf, pos)
            if got is None:
                return None
            item, pos = got
            items.append(item)
        return items, pos
    return rest, line_end + 2  # +simple, :integer, -error


class RedisSub(asyncio.Protocol):
    """The SUBSCRIBE connection: every message on CHANNEL goes to the hub."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(resp(b"SUBSCRIBE", CHANNEL))  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        pos = 0
        while True:
            got = parse_resp(self.buf, pos)
            if got is None:
                break
            value, pos = got
            if isinstance(value, list) and len(value) == 3 and value[0] == b"message":
                self.hub.from_redis(value[2])
        self.buf = self.buf[pos:]


class RedisPub(asyncio.Protocol):
    """The PUBLISH connection; its integer replies are read and dropped."""

    def data_received(self, data: bytes) -> None:
        pass


async def serve(host: str, port: int, redis_url: str | None, mode: str) -> None:
    loop = asyncio.get_running_loop()
    hub = Hub(mode)
    if redis_url:
        url = urlsplit(redis_url)
        rhost, rport = url.hostname or "127.0.0.1", url.port or 6379
        await loop.create_connection(lambda: RedisSub(hub), rhost, rport)
        transport, _ = await loop.create_connection(RedisPub, rhost, rport)
        hub.redis = transport
    server = await loop.create_server(lambda: Conn(hub), host, port, backlog=4096)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()  # no wait for the clients: the process ends here


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("port", type=int)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--redis", default=None, help="redis:// URL: instances share rooms")
    parser.add_argument("--mode", default="cork", choices=["write", "cork"])
    args = parser.parse_args()
    uvloop.run(serve(args.host, args.port, args.redis, args.mode))


if __name__ == "__main__":
    main()
