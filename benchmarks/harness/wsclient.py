"""A raw Socket.IO v5 / Engine.IO v4 client over WebSocket, made to cost little per frame.

The exchange (websocket transport only):
    client: HTTP GET /socket.io/?EIO=4&transport=websocket, Upgrade: websocket
    server: 101, then text frames: "0{open}"
    client: "40" + auth JSON        server: "40{sid}" (or "44{error}")
    client: '420["join",{"room":R}]' server: '430[{"ok":true,...}]'
    server events: '42["<name>",<arg>]'; server ping "2", client pong "3".

`WsConn` is fed bytes and parses frames: per frame it reads the header and, for an
event frame, only checks the event-name prefix and counts it in the worker's `Tally`.
A *probe* connection also reads each event's send time (the `stage` field carries
"<tag>:<time_ns>") for latency; nothing is JSON-decoded. Server frames are never
masked or fragmented by these servers; client frames and the handshake request are
`tests.support.wire`'s (masked with a zero key), shared with the tests' raw clients.

Reading, after the handshake, is where the generator spends its CPU (a kernel read
per frame on a VM costs several microseconds). So most connections are *bulk*: a
`BulkReader` polls them every `BULK_TICK_S` and reads whatever piled up in one
`recv`, several frames per system call; they are counted, not timed. Probes (one
connection in `PROBE_EVERY`) are read as soon as data arrives, so their latency
is the server's, not the generator's tick; the server cannot tell them apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import time
from array import array

from tests.support.wire import ZERO_MASK, upgrade_request
from tests.support.wire import client_frame as text_frame

EVENT = "project_progress_update"  # what the HTTP publisher sends
CLIENT_EVENT = "annotation_update"  # what a publishing client sends (roomcast's client event)
_EVENT_PREFIX = (b'42["' + EVENT.encode() + b'"', b'42["' + CLIENT_EVENT.encode() + b'"')
_STAGE = b'"stage"'
BULK_TICK_S = 0.05
PROBE_EVERY = 8
RECV_BYTES = 1 << 18


class Tally:
    """Counters one worker process shares between all its connections."""

    __slots__ = ("events", "last_ns", "lat_us", "tag")

    def __init__(self) -> None:
        self.events = 0
        self.last_ns = 0
        self.tag = b""  # "<tag>:" of the current step; samples of other steps are dropped
        self.lat_us = array("q")


_PONG = text_frame(b"3")
_CLOSE = bytes((0x88, 0x82)) + ZERO_MASK + (1000).to_bytes(2, "big")


class Acks:
    """A publishing connection's answers: acked ok, refused, and how many are awaited."""

    __slots__ = ("error_samples", "errors", "in_flight", "ok")

    def __init__(self) -> None:
        self.ok = 0
        self.errors = 0
        self.in_flight = 0
        self.error_samples: list[str] = []


class WsConn:
    """One Socket.IO connection's parser; `ready` resolves once connected (and joined).

    A publisher (`acks` given) counts the acks of what it emits; its own copies of the
    room's events are not counted (its `tally` is its own)."""

    def __init__(
        self,
        tally: Tally,
        sock: socket.socket,
        host: str,
        port: int,
        auth: bytes,
        room: bytes,
        probe: bool,
        acks: Acks | None = None,
    ) -> None:
        self.acks = acks
        self.immediate = probe or acks is not None  # read as soon as data arrives
        self.next_ack = 1
        self.tally = tally
        self.sock = sock
        self.auth = auth
        self.room = room
        self.probe = probe
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.upgraded = False
        self.open = False
        self.close_reason = ""
        self.buf = b""
        self.request = upgrade_request(host, port)

    def write(self, data: bytes) -> None:
        # small frames into an almost empty send buffer: a non-blocking send takes them
        with contextlib.suppress(OSError):
            self.sock.send(data)

    def feed(self, data: bytes) -> None:
        if self.buf:
            data = self.buf + data
            self.buf = b""
        if not self.upgraded:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self.buf = data
                return
            if b" 101 " not in data[: data.find(b"\r\n")]:
                self.fail(f"upgrade refused: {data[:120]!r}")
                return
            self.upgraded = True
            data = data[end + 4 :]
        tally = self.tally
        probe = self.probe
        n = len(data)
        pos = 0
        while n - pos >= 2:
            length = data[pos + 1] & 0x7F
            if length < 126:
                start = pos + 2
            elif length == 126:
                if n - pos < 4:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 4], "big")
                start = pos + 4
            else:
                if n - pos < 10:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                start = pos + 10
            end = start + length
            if end > n:
                break
            if data.startswith(_EVENT_PREFIX, start):
                tally.events += 1
                if probe:
                    self._sample(data, start, end)
            else:
                self._control(data[pos] & 0x0F, data[start:end])
            pos = end
        if pos < n:
            self.buf = data[pos:]
        tally.last_ns = time.time_ns()

    def _sample(self, data: bytes, start: int, end: int) -> None:
        i = data.find(_STAGE, start, end)
        if i < 0:
            return
        i = data.find(b'"', i + len(_STAGE), end) + 1
        j = data.find(b'"', i, end)
        tag = self.tally.tag
        if i <= 0 or j < 0 or not tag or not data.startswith(tag, i, j):
            return
        sent = int(data[i + len(tag) : j])
        self.tally.lat_us.append((time.time_ns() - sent) // 1000)

    def _control(self, opcode: int, payload: bytes) -> None:
        if opcode == 8:
            self.lost(f"websocket close {payload[:2].hex()} {payload[2:80]!r}")
        elif opcode == 9:  # websocket ping: pong with the same payload
            self.write(bytes((0x8A, 0x80 | len(payload))) + ZERO_MASK + payload)
        elif opcode != 1:
            return
        elif payload == b"2":
            self.write(_PONG)
        elif payload.startswith(b"0{"):
            self.write(text_frame(b"40" + self.auth))
        elif payload.startswith(b"40"):
            if self.room:
                self.write(text_frame(b'420["join",{"room":"' + self.room + b'"}]'))
            else:
                self._ready()
        elif payload.startswith(b"43") and self.open and self.acks is not None:
            acks = self.acks
            acks.in_flight -= 1
            if b'"ok":true' in payload or b'"ok": true' in payload:
                acks.ok += 1
            else:
                acks.errors += 1
                if len(acks.error_samples) < 3:
                    acks.error_samples.append(payload[:200].decode(errors="replace"))
        elif payload.startswith(b"43"):
            if b'"ok":true' in payload or b'"ok": true' in payload:
                self._ready()
            else:
                self.fail(f"join refused: {payload[:200]!r}")
        elif payload.startswith(b"44"):
            self.fail(f"connect refused: {payload[:200]!r}")
        elif payload.startswith((b"1", b"41")):
            self.lost(f"server closed: {payload[:200]!r}")

    def emit(self, packet_body: bytes) -> None:
        """Send `42<ack id>` + packet_body (a JSON array) and await its ack."""
        assert self.acks is not None
        ack_id = str(self.next_ack).encode()
        self.next_ack += 1
        self.acks.in_flight += 1
        self.write(text_frame(b"42" + ack_id + packet_body))

    def _ready(self) -> None:
        self.open = True
        if not self.ready.done():
            self.ready.set_result(None)

    def fail(self, reason: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(reason))

    def lost(self, reason: str) -> None:
        """The server ended the connection (or it broke)."""
        if self.open or not self.close_reason:
            self.close_reason = reason
        self.open = False
        self.fail(reason)

    def close(self) -> None:
        """Send a WebSocket close and close the socket (no wait for the answer)."""
        if self.open and self.upgraded:
            self.write(_CLOSE)
        self.open = False
        self.close_reason = self.close_reason or "closed by the benchmark"
        self.sock.close()


class Readers:
    """Reads a worker's connections: probes as soon as data arrives (`add_reader`), bulk
    connections every BULK_TICK_S from a level-triggered epoll, one `recv` each."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.epoll = select.epoll()
        self.bulk: dict[int, WsConn] = {}
        self.task: asyncio.Task[None] | None = None
        # one reused buffer: a fresh 256 KiB bytes per recv would be an mmap + munmap
        self.buf = bytearray(RECV_BYTES)
        self.view = memoryview(self.buf)

    def add(self, conn: WsConn) -> None:
        fd = conn.sock.fileno()
        if conn.immediate:
            self.loop.add_reader(fd, self._read, conn)
            return
        self.bulk[fd] = conn
        self.epoll.register(fd, select.EPOLLIN)
        if self.task is None:
            self.task = asyncio.create_task(self._tick())

    def remove(self, conn: WsConn) -> None:
        fd = conn.sock.fileno()
        if fd < 0:
            return
        if conn.immediate:
            self.loop.remove_reader(fd)
        elif self.bulk.pop(fd, None) is not None:
            with contextlib.suppress(OSError):
                self.epoll.unregister(fd)

    def _read(self, conn: WsConn) -> None:
        try:
            n = conn.sock.recv_into(self.buf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.remove(conn)
            conn.lost(f"connection lost: {exc!r}")
            return
        if n:
            conn.feed(self.view[:n].tobytes())
        else:
            self.remove(conn)
            conn.lost("closed by server")

    async def _tick(self) -> None:
        poll, bulk, read = self.epoll.poll, self.bulk, self._read
        while True:
            for fd, _ in poll(0):
                conn = bulk.get(fd)
                if conn is not None:
                    read(conn)
            await asyncio.sleep(BULK_TICK_S)

    def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        self.epoll.close()


async def connect(
    tally: Tally,
    readers: Readers,
    host: str,
    port: int,
    auth: bytes,
    room: bytes,
    probe: bool,
    timeout: float,
    acks: Acks | None = None,
) -> WsConn:
    """Open one connection, wait until connected (and joined), hand it to `readers`."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn = WsConn(tally, sock, host, port, auth, room, probe, acks)
    try:
        async with asyncio.timeout(timeout):
            await loop.sock_connect(sock, (host, port))
            conn.write(conn.request)
            while not conn.ready.done():
                data = await loop.sock_recv(sock, 4096)
                if not data:
                    conn.lost("closed by server during the handshake")
                    break
                conn.feed(data)
            await conn.ready
    except BaseException:
        if not conn.ready.done():
            conn.ready.cancel()
        conn.close()
        raise
    readers.add(conn)
    return conn
