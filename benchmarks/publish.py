"""Publishing throughput: events sequenced and stored per second, over Redis.

Starts a private redis-server on a free 127.0.0.1 port (stopped by its PID at the
end) and, for the HTTP rows, one `roomcast serve` subprocess on it. Each scenario
publishes ``detection_event``s (three detections each) for a bounded time and
counts what the broker sequenced (it checks each room's head afterwards):

- ``EventBroadcastService`` in this process (a worker): ``publish_many`` in batches,
  ``publish`` called concurrently (many tasks, as an asyncio worker or an ASGI
  handler would), and ``publish`` awaited one after the other;
- ``POST /api/v1/publish/batch`` of 1000 events, two requests in flight;
- the baseline, what a python-socketio user has: ``socketio.AsyncRedisManager(url,
  write_only=True).emit(...)``, which PUBLISHes a pickled message and stores nothing.

"1 room" publishes everything into one room; "1000 rooms" spreads the same events
round-robin over 1000 rooms. CPU columns are cores used on average: the load
generator (this process), redis-server, and the roomcast server for HTTP rows.

    flock /tmp/roomcast-bench.lock .venv/bin/python benchmarks/publish.py [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis
import socketio

from harness.procs import child_process, cpu_seconds, free_port
from harness.redis import room_meta_key
from roomcast import EventBroadcastService, Settings

HOST = "127.0.0.1"
API_KEY = "bench-key"
SECRET = "bench-secret-0123456789abcdef0123456789"
ROOMS_MANY = 1000
BATCH = 1000
HTTP_IN_FLIGHT = 2  # batch requests in flight
BASELINE_WINDOW = 50
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def detection(n: int) -> dict[str, Any]:
    return {
        "frame_id": f"f{n}",
        "model": "yolo-v8",
        "detections": [
            {"label": "car", "score": 0.93, "bbox": [10, 20, 30, 40]},
            {"label": "person", "score": 0.71, "bbox": [50, 60, 10, 30]},
            {"label": "bike", "score": 0.55, "bbox": [5, 5, 12, 9]},
        ],
        "latency_ms": 41,
    }


def batch_body(rooms: list[str], first: int) -> bytes:
    """A /publish/batch body of BATCH events, round-robin over the rooms."""
    events = [
        {"room": rooms[n % len(rooms)], "type": "detection_event", "data": detection(n)}
        for n in range(first, first + BATCH)
    ]
    return json.dumps({"events": events}).encode()


def room_names(count: int) -> list[str]:
    return [f"detection_stream_r{i}" for i in range(count)]


@dataclass
class Row:
    scenario: str
    server: str
    rooms: int
    events: int
    seconds: float
    loadgen_cpu: float
    redis_cpu: float
    server_cpu: float | None = None

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "server": self.server,
            "rooms": self.rooms,
            "events": self.events,
            "seconds": round(self.seconds, 3),
            "events_per_s": round(self.events_per_s),
            "loadgen_cpu_cores": round(self.loadgen_cpu, 2),
            "redis_cpu_cores": round(self.redis_cpu, 2),
            "server_cpu_cores": None if self.server_cpu is None else round(self.server_cpu, 2),
        }


class Bench:
    def __init__(self, redis_port: int, redis_pid: int, seconds: float, window: int) -> None:
        self.window = window
        self.url = f"redis://{HOST}:{redis_port}/0"
        self.redis_pid = redis_pid
        self.seconds = seconds
        self.rows: list[Row] = []
        self._prefixes = 0

    def prefix(self) -> str:
        self._prefixes += 1
        return f"bench{self._prefixes}"

    async def measure(
        self,
        scenario: str,
        server: str,
        rooms: int,
        step: Callable[[int], Awaitable[int]],
        *,
        server_pid: int | None = None,
        check: Callable[[int], Awaitable[None]] | None = None,
    ) -> Row:
        """Call `step(n)` (it publishes events n, n+1, ... and returns how many)
        until the time is up; one warm-up step is not counted."""
        await step(0)
        done = 0
        cpu0, redis0 = own_cpu_seconds(), cpu_seconds(self.redis_pid)
        server0 = cpu_seconds(server_pid) if server_pid else 0.0
        began = time.perf_counter()
        deadline = began + self.seconds
        while time.perf_counter() < deadline:
            done += await step(done + 1)
        wall = time.perf_counter() - began
        row = Row(
            scenario,
            server,
            rooms,
            done,
            wall,
            (own_cpu_seconds() - cpu0) / wall,
            (cpu_seconds(self.redis_pid) - redis0) / wall,
            (cpu_seconds(server_pid) - server0) / wall if server_pid else None,
        )
        if check is not None:
            await check(done)
        self.rows.append(row)
        print_row(row)
        return row

    async def heads(self, prefix: str, rooms: list[str]) -> int:
        """Sum of the rooms' heads (seq), read straight from Redis."""
        client = aioredis.Redis.from_url(self.url, decode_responses=True)
        try:
            async with client.pipeline(transaction=False) as pipe:
                for room in rooms:
                    pipe.hget(room_meta_key(prefix, room), "seq")
                values = await pipe.execute()
        finally:
            await client.aclose()
        return sum(int(v or 0) for v in values)

    def checker(
        self, prefix: str, rooms: list[str], warmup: int
    ) -> Callable[[int], Awaitable[None]]:
        async def check(done: int) -> None:
            head = await self.heads(prefix, rooms)
            if head != done + warmup:
                raise SystemExit(f"sequenced {head} events, expected {done + warmup}")

        return check

    # -- EventBroadcastService -------------------------------------------------------

    async def service(self, label: str, rooms: list[str], mode: str, batch: int = BATCH) -> None:
        prefix = self.prefix()
        settings = Settings(redis_url=self.url, key_prefix=prefix, log_level="warning")
        count = len(rooms)
        async with EventBroadcastService.from_settings(settings) as broadcast:

            async def many(n: int) -> int:
                events = [
                    {
                        "room": rooms[(n + i) % count],
                        "type": "detection_event",
                        "data": detection(n + i),
                    }
                    for i in range(batch)
                ]
                results = await broadcast.publish_many(events)
                bad = [r for r in results if isinstance(r, Exception)]
                if bad:
                    raise SystemExit(f"publish_many failed: {bad[0]!r}")
                return len(results)

            async def concurrent(n: int) -> int:
                await asyncio.gather(
                    *(
                        broadcast.publish(
                            rooms[(n + i) % count], "detection_event", detection(n + i)
                        )
                        for i in range(self.window)
                    )
                )
                return self.window

            async def sequential(n: int) -> int:
                for i in range(100):
                    await broadcast.publish(
                        rooms[(n + i) % count], "detection_event", detection(n + i)
                    )
                return 100

            step, warmup = {"publish_many": (many, batch), "concurrent": (concurrent, self.window),
                            "sequential": (sequential, 100)}[mode]  # fmt: skip
            await self.measure(
                label, "roomcast", count, step, check=self.checker(prefix, rooms, warmup)
            )

    # -- HTTP /api/v1/publish/batch ----------------------------------------------------

    async def http(self, rooms_many: list[str]) -> None:
        prefix = self.prefix()
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROOMCAST_")}
        env.update(
            ROOMCAST_REDIS_URL=self.url,
            ROOMCAST_KEY_PREFIX=prefix,
            ROOMCAST_JWT_SECRET=SECRET,
            ROOMCAST_API_KEYS=API_KEY,
            ROOMCAST_PORT=str(port),
            ROOMCAST_LOG_LEVEL="warning",
        )
        base = f"http://{HOST}:{port}"
        with child_process([sys.executable, "-m", "roomcast.cli", "serve"], env) as server:
            async with httpx.AsyncClient(
                base_url=base, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30
            ) as http:
                await wait_healthy(http, server)
                for label, rooms in (("http batch, 1 room", rooms_many[:1]),
                                     ("http batch, 1000 rooms", rooms_many)):  # fmt: skip
                    count = len(rooms)
                    bodies = [batch_body(rooms, k * BATCH) for k in range(HTTP_IN_FLIGHT)]

                    async def post(body: bytes) -> int:
                        r = await http.post(
                            "/api/v1/publish/batch",
                            content=body,
                            headers={"Content-Type": "application/json"},
                        )
                        r.raise_for_status()
                        results = r.json()["results"]
                        if any("error" in res for res in results):
                            raise SystemExit(f"batch refused: {results[:2]}")
                        return len(results)

                    async def step(n: int, bodies: list[bytes] = bodies) -> int:
                        return sum(await asyncio.gather(*(post(b) for b in bodies)))

                    await self.measure(
                        label,
                        "roomcast serve",
                        count,
                        step,
                        server_pid=server.pid,
                        check=self.checker(prefix, rooms, BATCH * HTTP_IN_FLIGHT),
                    )
                    # The server keeps its key prefix: the next rows count from zero.
                    await self._reset(prefix)

    async def _reset(self, prefix: str) -> None:
        client = aioredis.Redis.from_url(self.url, decode_responses=True)
        try:
            keys = [k async for k in client.scan_iter(f"{prefix}:*", count=1000)]
            for i in range(0, len(keys), 500):
                await client.delete(*keys[i : i + 500])
        finally:
            await client.aclose()

    # -- baseline: python-socketio's Redis manager ---------------------------------------

    async def baseline(self, rooms: list[str], concurrent: bool) -> None:
        manager = socketio.AsyncRedisManager(self.url, write_only=True, channel=self.prefix())
        count = len(rooms)
        # Its connection pool holds 100 connections: more calls in flight fail.
        window = BASELINE_WINDOW if concurrent else 1

        async def step(n: int) -> int:
            for base in range(n, n + 100, window):
                await asyncio.gather(
                    *(
                        manager.emit("detection_event", detection(i), room=rooms[i % count])
                        for i in range(base, base + window)
                    )
                )
            return 100 - 100 % window

        mode = f"x{window} concurrent" if concurrent else "sequential"
        label = f"AsyncRedisManager.emit {mode}, {count} room{'s' if count > 1 else ''}"
        try:
            await self.measure(label, "python-socketio", count, step)
        finally:
            redis = getattr(manager, "redis", None)
            if redis is not None:
                await redis.aclose()


async def wait_healthy(http: httpx.AsyncClient, server: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if server.poll() is not None:
            raise SystemExit(f"roomcast serve exited with {server.returncode}")
        try:
            if (await http.get("/readyz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit("roomcast serve did not become ready")


def print_header() -> None:
    print(f"| {'scenario':<58} | {'server':<16} | {'events/s':>9} | {'loadgen CPU':>11} "
          f"| {'redis CPU':>9} | {'server CPU':>10} |")  # fmt: skip
    print(f"|{'-' * 60}|{'-' * 18}|{'-' * 10}:|{'-' * 12}:|{'-' * 10}:|{'-' * 11}:|")


def print_row(row: Row) -> None:
    server_cpu = "" if row.server_cpu is None else f"{row.server_cpu:.2f}"
    print(
        f"| {row.scenario:<58} | {row.server:<16} | {row.events_per_s:>9,.0f} "
        f"| {row.loadgen_cpu:>11.2f} | {row.redis_cpu:>9.2f} | {server_cpu:>10} |",
        flush=True,
    )


async def run(args: argparse.Namespace) -> list[Row]:
    redis_port = free_port()
    tmp = tempfile.mkdtemp(prefix="roomcast-bench-publish-")
    argv = [shutil.which("redis-server") or "redis-server", "--port", str(redis_port),
            "--bind", HOST, "--save", "", "--appendonly", "no", "--dir", tmp]  # fmt: skip
    try:
        with child_process(argv) as redis_proc:
            await wait_redis(redis_port)
            bench = Bench(redis_port, redis_proc.pid, args.seconds, args.window)
            one, many = room_names(1), room_names(ROOMS_MANY)
            print_header()
            await bench.service(
                "EventBroadcastService.publish_many x1000, 1 room", one, "publish_many"
            )
            await bench.service(
                "EventBroadcastService.publish_many x1000, 1000 rooms", many, "publish_many"
            )
            await bench.service(
                "EventBroadcastService.publish_many x10000, 1000 rooms",
                many,
                "publish_many",
                batch=10 * BATCH,
            )
            await bench.service(
                f"EventBroadcastService.publish x{args.window} concurrent, 1 room",
                one,
                "concurrent",
            )
            await bench.service(
                f"EventBroadcastService.publish x{args.window} concurrent, 1000 rooms",
                many,
                "concurrent",
            )
            await bench.service(
                "EventBroadcastService.publish sequential, 1 room", one, "sequential"
            )
            if not args.no_http:
                await bench.http(many)
            await bench.baseline(one, concurrent=False)
            await bench.baseline(one, concurrent=True)
            await bench.baseline(many, concurrent=True)
            return bench.rows
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


async def wait_redis(port: int) -> None:
    client = aioredis.Redis(host=HOST, port=port)
    try:
        for _ in range(200):
            try:
                if await client.ping():
                    return
            except OSError:
                pass
            except aioredis.ConnectionError:
                pass
            await asyncio.sleep(0.05)
    finally:
        await client.aclose()
    raise SystemExit("redis-server did not answer PING")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="measured time per scenario")
    parser.add_argument("--window", type=int, default=1000, help="concurrent publish() calls")
    parser.add_argument("--json", type=Path, help="write the rows as a JSON list here")
    parser.add_argument("--tune-gc", action="store_true", help="gc.freeze() and a higher threshold")
    parser.add_argument("--no-http", action="store_true", help="skip the roomcast serve rows")
    args = parser.parse_args()
    if args.tune_gc:
        # What a publishing worker can do after start-up: the collector then runs
        # less often over the events in flight (see docs/platform.md).
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
    began = time.perf_counter()
    rows = asyncio.run(run(args))
    print(
        f"\n{len(rows)} scenarios in {time.perf_counter() - began:.0f} s on {os.cpu_count()} CPUs"
    )
    if args.json:
        gc_mode = "frozen, threshold 50000" if args.tune_gc else "default"
        dicts = [{**r.as_dict(), "loadgen_gc": gc_mode} for r in rows]
        args.json.write_text(json.dumps(dicts, indent=2) + "\n")


if __name__ == "__main__":
    main()
