"""An open-loop HTTP/1.1 publisher: `POST /api/v1/publish` at a fixed rate.

Publish *i* is due at *i*/rate seconds; due publishes go out on idle keep-alive
connections of a bounded pool (one request in flight per connection). When every
connection is busy a due publish is skipped and counted, so a slow server is
offered the same schedule and its slowness shows as skips, not as a slower clock.
The response parser reads the status line and Content-Length and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections import deque
from dataclasses import dataclass, field
from typing import cast

from .wsclient import EVENT

TICK_S = 0.002  # the scheduler's period; due publishes are sent in a burst per tick
CONNECT_TIMEOUT_S = 10.0
ANSWER_TIMEOUT_S = 10.0


@dataclass
class PublishTally:
    ok: int = 0
    errors: int = 0
    skipped: int = 0
    error_samples: list[str] = field(default_factory=list)

    def error(self, text: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 3:
            self.error_samples.append(text)


class HttpConn(asyncio.Protocol):
    def __init__(self, pool: Pool, port: int) -> None:
        self.pool = pool
        self.port = port
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.busy = False
        self.made: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.made.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.pool.lost(self, f"connection lost: {exc!r}" if exc else "closed by server")

    def send(self, request: bytes) -> None:
        assert self.transport is not None
        self.busy = True
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        while True:
            if len(buf) >= 12 and not (buf.startswith(b"HTTP/1.") and buf[9:12].isdigit()):
                # not a response where one must start: count it and drop the connection
                self.buf = b""
                reason = f"unparsable response: {buf[:80]!r}"
                if not self.busy:
                    self.pool.tally.error(reason)
                self.pool.lost(self, reason)
                if self.transport is not None:
                    self.transport.close()
                return
            head_end = buf.find(b"\r\n\r\n")
            if head_end < 0:
                break
            head = buf[:head_end].lower()
            i = head.find(b"content-length:")
            # Content-Length may be the last header: then no CRLF follows it in `head`.
            j = head.find(b"\r\n", i)
            length = int(head[i + 15 : j if j >= 0 else len(head)]) if i >= 0 else 0
            end = head_end + 4 + length
            if len(buf) < end:
                break
            status = int(buf[9:12])
            body = buf[head_end + 4 : end]
            buf = buf[end:]
            self.busy = False
            self.pool.answered(self, status, body)
        self.buf = buf


class Pool:
    """Keep-alive connections to several instances; requests go round-robin over them."""

    def __init__(self, tally: PublishTally) -> None:
        self.tally = tally
        self.idle: deque[HttpConn] = deque()
        self.conns: list[HttpConn] = []
        self.in_flight = 0
        self.drained = asyncio.Event()

    async def open(self, host: str, ports: list[int], per_port: int) -> None:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            for _ in range(per_port):
                for port in ports:
                    _, conn = await loop.create_connection(
                        functools.partial(HttpConn, self, port), host, port
                    )
                    self.conns.append(conn)
                    self.idle.append(conn)  # interleaved: consecutive requests alternate ports

    def answered(self, conn: HttpConn, status: int, body: bytes) -> None:
        self.in_flight -= 1
        if status == 200:
            self.tally.ok += 1
        else:
            self.tally.error(f"HTTP {status}: {body[:160]!r}")
        self.idle.append(conn)
        if self.in_flight == 0:
            self.drained.set()

    def lost(self, conn: HttpConn, reason: str) -> None:
        if conn.busy:
            conn.busy = False
            self.in_flight -= 1
            self.tally.error(reason)
            if self.in_flight == 0:
                self.drained.set()
        with contextlib.suppress(ValueError):
            self.idle.remove(conn)

    def close(self) -> None:
        for conn in self.conns:
            if conn.transport is not None:
                conn.transport.close()


def publish_request(host: str, port: int, api_key: str, room: str, stage: str) -> bytes:
    data = f'{{"total":100,"completed":50,"percent":50.0,"stage":"{stage}"}}'
    body = f'{{"room":"{room}","type":"{EVENT}","data":{data}}}'.encode()
    head = (
        f"POST /api/v1/publish HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {api_key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


async def publish(
    host: str,
    ports: list[int],
    api_key: str,
    rooms: list[str],
    total: int,
    duration: float,
    tag: str,
    connections: int,
    room_offset: int = 0,
    phase: float = 0.0,
) -> PublishTally:
    """Publish `total` events round-robin over `rooms` and `ports`, evenly over `duration`.

    Returns once every sent publish is answered (or ANSWER_TIMEOUT_S passed, the rest
    counting as errors). `phase` (0..1) shifts the schedule by that part of one period,
    so that several workers at the same rate interleave. The event's `stage` is
    "<tag>:<time_ns at send>".
    """
    tally = PublishTally()
    if total <= 0:
        return tally
    pool = Pool(tally)
    try:
        await pool.open(host, ports, max(1, connections // len(ports)))
        rate = total / duration
        t0 = time.perf_counter() + phase / rate  # workers interleave their schedules
        sent = 0
        while sent < total:
            due = min(total, int((time.perf_counter() - t0) * rate) + 1)
            while sent < due:
                if not pool.idle:
                    tally.skipped += due - sent
                    sent = due
                    break
                conn = pool.idle.popleft()
                room = rooms[(room_offset + sent) % len(rooms)]
                stage = f"{tag}:{time.time_ns()}"
                conn.send(publish_request(host, conn.port, api_key, room, stage))
                pool.in_flight += 1
                pool.drained.clear()
                sent += 1
            if sent < total:
                # a fixed tick: the loop's timers have millisecond resolution, so sleeping
                # until the next publish's exact time would spin
                await asyncio.sleep(TICK_S)
        if pool.in_flight:
            try:
                await asyncio.wait_for(pool.drained.wait(), ANSWER_TIMEOUT_S)
            except TimeoutError:
                for _ in range(pool.in_flight):
                    tally.error(f"no answer within {ANSWER_TIMEOUT_S:g}s")
    finally:
        pool.close()
    return tally
