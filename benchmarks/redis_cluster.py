"""One Redis against a three-shard Redis Cluster: publishes into 1000 rooms, delivered
across two instances, stepped up to the same stop rule for both.

For each backend it starts its own Redis (one redis-server, or three cluster
primaries joined by `redis-cli --cluster create`) and two `roomcast serve`
instances, on free loopback ports, each stopped by its PID. Ten subscribers on each
instance (raw Socket.IO over WebSocket, in a child process so that reading does not
delay publishing; connected afresh for each step, as a raw client left idle for
about 40 s is closed by the server) join 100 rooms each, so every room has one
subscriber on each instance. Publishers POST `/api/v1/publish/batch` every 20 ms,
alternately to the two instances, so half of all deliveries cross instances
through Redis.

Both backends are up at once and each rate runs on both back to back, the order
alternating, so that load elsewhere on a shared machine falls on both alike. Each
step publishes at one rate for `--seconds`, waits for what is in flight, then
checks that every accepted (room, epoch, seq) reached each of the room's two
subscribers exactly once, and reads the CPU time (utime + stime, /proc/<pid>/stat)
that each redis-server primary and the roomcast instances used. Rates go up until
p99 > 100 ms, a loss, or a refused publish; the headline of a backend is the highest
rate that kept p99 <= 100 ms with nothing lost or refused.

    .venv/bin/python benchmarks/redis_cluster.py [--rates 500,1000,2000] [--seconds 4]
        [--replicas 0] [--out results.md]

The machine is shared and small (all processes on the same cores): read the ratios
between the backends of one run, not the absolute figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # tests.support: the tests' process helpers

import aiohttp  # noqa: E402
from redis.crc import key_slot  # noqa: E402
from tests.support.credentials import API_KEY, SECRET  # noqa: E402
from tests.support.instances import RoomcastProcess  # noqa: E402
from tests.support.raw_socketio import RawSocketIO  # noqa: E402
from tests.support.redis_cluster import RedisCluster  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402

from roomcast.auth.tokens import mint_access_token  # noqa: E402

ROOMS = 1000
CLIENTS_PER_INSTANCE = 10
ROOMS_PER_CLIENT = ROOMS // CLIENTS_PER_INSTANCE  # the default max_rooms_per_connection
TICK = 0.02  # seconds between two batches
MAX_IN_FLIGHT = 100  # batches awaiting an answer; a tick past that is not sent (overload)
DRAIN_TIMEOUT = 5.0  # seconds to wait for what is in flight after a step
P99_LIMIT_MS = 100.0
IDLE_WINDOW = 3.0  # seconds of no publishing, to measure each Redis's background CPU
RUN_BUDGET = 300.0  # seconds: no new step starts past this (whole run within 6 min)
PREFIX = "roomcast"
EVENT = "project_progress_update"
CLOCK_TICK = os.sysconf("SC_CLK_TCK")


def room_name(n: int) -> str:
    return f"project_b{n:04d}"


def client_rooms(index: int) -> list[str]:
    """The rooms of subscriber `index` (the same split on both instances)."""
    first = index * ROOMS_PER_CLIENT
    return [room_name(n) for n in range(first, first + ROOMS_PER_CLIENT)]


def room_slot(room: str) -> int:
    """The slot of a room: every key of it carries the hash tag {<room>}."""
    return int(key_slot(f"{PREFIX}:{{{room}}}:meta".encode()))


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK


# -- the subscribers' process -------------------------------------------------------------


def subscriber_main(conn: Connection) -> None:
    """The child process: connect, join, record deliveries, hand them over on request."""
    asyncio.run(_subscribers(conn))


async def _subscribers(conn: Connection) -> None:
    loop = asyncio.get_running_loop()
    pipe = ThreadPoolExecutor(1)
    urls: list[str] = await loop.run_in_executor(pipe, conn.recv)
    records: list[tuple[int, str, str, int, int, int]] = []  # client, room, epoch, seq, sent, got
    enough = asyncio.Event()
    want = [0]

    async def read(index: int, client: RawSocketIO) -> None:
        while (event := await client.next_event()) is not None:
            name, data = event
            if name != EVENT:
                continue
            got = time.time_ns()
            records.append(
                (index, data["room"], data["epoch"], data["seq"], int(data["data"]["stage"]), got)
            )
            if len(records) >= want[0]:
                enough.set()

    async def join(index: int, url: str) -> RawSocketIO:
        token = mint_access_token(SECRET, f"bench{index}", roles=["admin"])
        client = await RawSocketIO.connect(url, token, rcvbuf=1 << 20)
        for room in client_rooms(index % CLIENTS_PER_INSTANCE):
            ack = await client.call("join", {"room": room})
            if not ack.get("ok"):
                raise RuntimeError(f"join {room} refused: {ack}")
        return client

    clients = list(
        await asyncio.gather(
            *(join(i * CLIENTS_PER_INSTANCE + c, url)
              for i, url in enumerate(urls) for c in range(CLIENTS_PER_INSTANCE))
        )
    )  # fmt: skip
    readers = [asyncio.create_task(read(n, c)) for n, c in enumerate(clients)]
    conn.send("joined")
    try:
        while True:
            command = await loop.run_in_executor(pipe, conn.recv)
            if command is None:
                break
            expected, timeout = command
            want[0] = expected
            if len(records) < expected:
                enough.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(enough.wait(), timeout)
            conn.send(records)
            records = []  # the readers look the name up: they append to the new list
    finally:
        for task in readers:
            task.cancel()
        for client in clients:
            await client.close()
        pipe.shutdown(wait=False)


# -- the backends -------------------------------------------------------------------------


@dataclass
class Backend:
    """One Redis deployment under test: its primaries' PIDs and which rooms each serves."""

    name: str
    env: dict[str, str]
    primaries: list[int]  # redis-server PIDs, one per shard
    shard_of: dict[str, int]  # room -> index into primaries
    replicas: list[int] = field(default_factory=list)
    idle: list[float] = field(default_factory=list)  # CPU seconds per second per primary, idle


@contextlib.contextmanager
def standalone() -> Iterator[Backend]:
    server = RedisServer().start()
    try:
        rooms = {room_name(n): 0 for n in range(ROOMS)}
        yield Backend("one Redis", {"ROOMCAST_REDIS_URL": server.url}, [server.pid], rooms)
    finally:
        server.stop()


@contextlib.contextmanager
def cluster(replicas: int) -> Iterator[Backend]:
    nodes = RedisCluster(replicas_per_primary=replicas).start()
    try:
        shards = [shard for shard in nodes.shards() if shard["slots"]]
        shards.sort(key=lambda shard: min(start for start, _ in shard["slots"]))
        ports = [int(shard["primary"]) for shard in shards]

        def shard(room: str) -> int:
            slot = room_slot(room)
            return next(
                i for i, s in enumerate(shards) if any(a <= slot <= b for a, b in s["slots"])
            )

        yield Backend(
            f"cluster of {len(shards)}",
            {"ROOMCAST_REDIS_CLUSTER_NODES": nodes.nodes_setting},
            [nodes.node_at(port).pid for port in ports],
            {room_name(n): shard(room_name(n)) for n in range(ROOMS)},
            [node.pid for node in nodes.nodes if node.port not in ports],
        )
    finally:
        nodes.stop()


@contextlib.contextmanager
def instances(env: dict[str, str]) -> Iterator[list[RoomcastProcess]]:
    started: list[RoomcastProcess] = []
    try:
        for name in ("a", "b"):
            process = RoomcastProcess({**env, "ROOMCAST_INSTANCE_ID": name})
            started.append(process)
            process.start()
        yield started
    finally:
        for process in started:
            with contextlib.suppress(Exception):
                process.terminate()
            process.close()


# -- one step -----------------------------------------------------------------------------


@dataclass
class Step:
    backend: str
    rate: int
    accepted: int = 0
    refused: int = 0
    unsent: int = 0  # events of ticks skipped because MAX_IN_FLIGHT batches were pending
    seconds: float = 0.0
    deliveries: int = 0
    delivery_seconds: float = 0.0
    p50: float = 0.0
    p99: float = 0.0
    lost: int = 0
    duplicated: int = 0
    per_shard: list[int] = field(default_factory=list)  # accepted publishes per shard
    shard_cpu: list[float] = field(default_factory=list)  # CPU seconds per primary, less idle
    replica_cpu: float = 0.0
    idle: list[float] = field(default_factory=list)  # the backend's idle CPU, for the report
    timeline: str = ""  # p99 of the events sent in each half second
    roomcast_cpu: float = 0.0

    @property
    def ok(self) -> bool:
        return (
            self.p99 <= P99_LIMIT_MS
            and not (self.lost or self.duplicated or self.refused or self.unsent)
            and self.accepted > 0
        )

    def cpu_per_publish(self) -> list[float]:
        """Microseconds of each primary's CPU per publish that its rooms got."""
        return [
            1e6 * cpu / count if count else 0.0
            for cpu, count in zip(self.shard_cpu, self.per_shard, strict=True)
        ]


async def publish_step(
    http: aiohttp.ClientSession, urls: Sequence[str], rate: int, seconds: float
) -> tuple[list[tuple[str, str, int]], int, int, float]:
    """Open-loop batches at `rate` events/s; (accepted (room, epoch, seq), refused, unsent, s)."""
    accepted: list[tuple[str, str, int]] = []
    refused = unsent = 0
    pending: set[asyncio.Task[None]] = set()
    headers = {"Authorization": f"Bearer {API_KEY}"}

    async def post(url: str, rooms: list[str]) -> None:
        nonlocal refused
        stage = str(time.time_ns())
        data = {"total": 1, "completed": 0, "percent": 0, "stage": stage}
        body = {"events": [{"room": room, "type": EVENT, "data": data} for room in rooms]}
        try:
            async with http.post(f"{url}/api/v1/publish/batch", json=body, headers=headers) as r:
                answer = await r.json() if r.status == 200 else None
        except (aiohttp.ClientError, TimeoutError):
            answer = None
        if answer is None:
            refused += len(rooms)
            return
        for room, result in zip(rooms, answer["results"], strict=True):
            if "seq" in result:
                accepted.append((room, result["epoch"], result["seq"]))
            else:
                refused += 1

    began = time.monotonic()
    ticks = max(1, round(seconds / TICK))
    next_room = 0
    owed = 0.0
    for tick in range(ticks):
        await asyncio.sleep(max(0.0, began + tick * TICK - time.monotonic()))  # open-loop pacing
        owed += rate * TICK
        count, owed = int(owed), owed - int(owed)
        rooms = [room_name((next_room + k) % ROOMS) for k in range(count)]
        next_room = (next_room + count) % ROOMS
        if not rooms:
            continue
        if len(pending) >= MAX_IN_FLIGHT:
            unsent += len(rooms)
            continue
        task = asyncio.create_task(post(urls[tick % len(urls)], rooms))
        pending.add(task)
        task.add_done_callback(pending.discard)
    if pending:
        await asyncio.gather(*pending)
    return accepted, refused, unsent, time.monotonic() - began


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def check(
    step: Step,
    accepted: list[tuple[str, str, int]],
    records: list[tuple[int, str, str, int, int, int]],
    clients: int,
) -> None:
    """Loss and duplicates: each accepted event at each of its room's subscribers, once."""
    want: Counter[tuple[int, str, str, int]] = Counter()
    for room, epoch, seq in accepted:
        index = int(room.removeprefix("project_b")) // ROOMS_PER_CLIENT
        for instance in range(clients // CLIENTS_PER_INSTANCE):
            want[(instance * CLIENTS_PER_INSTANCE + index, room, epoch, seq)] += 1
    got = Counter((c, room, epoch, seq) for c, room, epoch, seq, _, _ in records)
    step.lost = sum((want - got).values())
    step.duplicated = sum((got - want).values())


async def run_step(
    backend: Backend,
    urls: Sequence[str],
    http: aiohttp.ClientSession,
    conn: Connection,
    rate: int,
    seconds: float,
    roomcast_pids: Sequence[int],
) -> Step:
    loop = asyncio.get_running_loop()
    step = Step(backend.name, rate, idle=backend.idle)
    cpu0 = [cpu_seconds(pid) for pid in backend.primaries]
    rep0 = sum(cpu_seconds(pid) for pid in backend.replicas)
    rc0 = sum(cpu_seconds(pid) for pid in roomcast_pids)
    started_ns = time.time_ns()
    accepted, step.refused, step.unsent, step.seconds = await publish_step(
        http, urls, rate, seconds
    )
    clients = CLIENTS_PER_INSTANCE * len(urls)
    expected = len(accepted) * len(urls)
    conn.send((expected, DRAIN_TIMEOUT))
    records = await loop.run_in_executor(None, conn.recv)
    spent = (time.time_ns() - started_ns) / 1e9
    idle = backend.idle or [0.0] * len(backend.primaries)
    step.shard_cpu = [
        max(0.0, cpu_seconds(pid) - before - background * spent)
        for pid, before, background in zip(backend.primaries, cpu0, idle, strict=True)
    ]
    step.replica_cpu = sum(cpu_seconds(pid) for pid in backend.replicas) - rep0
    step.roomcast_cpu = sum(cpu_seconds(pid) for pid in roomcast_pids) - rc0
    step.accepted = len(accepted)
    shards = Counter(backend.shard_of[room] for room, _, _ in accepted)
    step.per_shard = [shards[i] for i in range(len(backend.primaries))]
    latencies = [(got - sent) / 1e6 for _, _, _, _, sent, got in records]
    step.deliveries = len(records)
    if records:
        step.delivery_seconds = (max(r[5] for r in records) - started_ns) / 1e9
    step.p50 = statistics.median(latencies) if latencies else 0.0
    step.p99 = percentile(latencies, 0.99)
    buckets: dict[int, list[float]] = {}
    for _, _, _, _, sent, got in records:
        buckets.setdefault((sent - started_ns) // 500_000_000, []).append((got - sent) / 1e6)
    step.timeline = " ".join(f"{percentile(buckets[b], 0.99):.0f}" for b in sorted(buckets))
    check(step, accepted, records, clients)
    return step


@contextlib.asynccontextmanager
async def subscribers(urls: list[str]) -> AsyncIterator[Connection]:
    """A child process with the subscribers connected and joined; its end of a pipe."""
    loop = asyncio.get_running_loop()
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    sub = ctx.Process(target=subscriber_main, args=(child,), daemon=True)
    sub.start()
    try:
        parent.send(urls)
        joined = await loop.run_in_executor(None, _recv_within, parent, 60.0)
        if joined != "joined":
            raise RuntimeError(f"subscribers did not join: {joined!r}")
        yield parent
        parent.send(None)
    finally:
        sub.join(10)
        if sub.is_alive():
            sub.kill()  # our own child, by its handle
            sub.join()


@dataclass
class Rig:
    """A backend with its two instances and a publisher."""

    backend: Backend
    urls: list[str]
    pids: list[int]  # the roomcast instances
    http: aiohttp.ClientSession

    async def step(self, rate: int, seconds: float) -> Step:
        async with subscribers(self.urls) as conn:
            return await run_step(
                self.backend, self.urls, self.http, conn, rate, seconds, self.pids
            )


@contextlib.asynccontextmanager
async def rig(backend: Backend, procs: list[RoomcastProcess]) -> AsyncIterator[Rig]:
    """Warm every room up (its epoch and first event), measure idle CPU."""
    urls = [p.url for p in procs]
    connector = aiohttp.TCPConnector(limit=MAX_IN_FLIGHT * 2)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        one = Rig(backend, urls, [p.pid for p in procs], http)
        await one.step(ROOMS, 1.0)  # not measured
        backend.idle = await idle_cpu(backend.primaries, IDLE_WINDOW)
        yield one


async def run_all(
    rigs: Sequence[Rig],
    rates: Sequence[int],
    seconds: float,
    deadline: float,
    keep_going: bool = False,
    timeline: bool = False,
) -> dict[str, list[Step]]:
    """Each rate on every backend still going, back to back, the order alternating
    (A B, B A, ...), so that a load elsewhere on the machine falls on both."""
    results: dict[str, list[Step]] = {r.backend.name: [] for r in rigs}
    going = list(rigs)
    for n, rate in enumerate(rates):
        if not going:
            break
        if time.monotonic() > deadline:
            print("  run budget spent, stopping", file=sys.stderr)
            break
        for one in going if n % 2 == 0 else going[::-1]:
            step = await one.step(rate, seconds)
            results[one.backend.name].append(step)
            print("  " + row(step), file=sys.stderr)
            if timeline:
                print("    p99 per 0.5 s: " + step.timeline, file=sys.stderr)
        going = [one for one in going if keep_going or results[one.backend.name][-1].ok]
    return results


async def idle_cpu(pids: Sequence[int], seconds: float) -> list[float]:
    """CPU seconds per second of each process with nothing published (heartbeats,
    housekeeping, canaries): what a step's figure per publish is net of."""
    before = [cpu_seconds(pid) for pid in pids]
    await asyncio.sleep(seconds)  # a measuring window, not a wait for an event
    return [(cpu_seconds(pid) - b) / seconds for pid, b in zip(pids, before, strict=True)]


def _recv_within(conn: Connection, timeout: float) -> Any:
    if not conn.poll(timeout):
        raise TimeoutError("no answer from the subscribers' process")
    return conn.recv()


# -- output -------------------------------------------------------------------------------


def row(step: Step) -> str:
    cpu = " / ".join(f"{us:.0f}" for us in step.cpu_per_publish())
    shares = " / ".join(str(n) for n in step.per_shard)
    return (
        f"| {step.backend} | {step.rate} | {step.accepted / step.seconds:.0f} "
        f"| {step.deliveries / max(step.delivery_seconds, 1e-9):.0f} "
        f"| {step.p50:.1f} | {step.p99:.1f} | {step.lost + step.duplicated} "
        f"| {step.refused + step.unsent} | {shares} | {cpu} "
        f"| {1e6 * step.replica_cpu / max(step.accepted, 1):.0f} "
        f"| {1e6 * step.roomcast_cpu / max(step.accepted, 1):.0f} |"
    )


HEADER = (
    "| backend | target/s | accepted/s | deliveries/s | p50 ms | p99 ms | lost+dup "
    "| refused | publishes per shard | Redis CPU µs/publish per shard, less idle "
    "| replicas CPU µs/publish | roomcast CPU µs/publish |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|"
)


def headline(steps: list[Step]) -> Step | None:
    """The highest rate that kept p99 <= 100 ms with nothing lost or refused."""
    good = [s for s in steps if s.ok]
    return max(good, key=lambda s: s.rate) if good else None


def report(results: dict[str, list[Step]], argv: Sequence[str]) -> str:
    lines = [f"`{' '.join(argv)}`", "", HEADER]
    for steps in results.values():
        lines += [row(step) for step in steps]
    lines.append("")
    best = {name: headline(steps) for name, steps in results.items()}
    for name, steps in results.items():
        top = best[name]
        peak = max(steps, key=lambda s: s.accepted / s.seconds) if steps else None
        text = f"- **{name}**: "
        text += (
            f"{top.accepted / top.seconds:.0f} publishes/s accepted (target {top.rate}/s) "
            f"with p99 {top.p99:.1f} ms, nothing lost"
            if top
            else "no step kept p99 <= 100 ms with nothing lost"
        )
        if peak is not None and peak is not top:
            text += (
                f"; peak {peak.accepted / peak.seconds:.0f}/s accepted at p99 {peak.p99:.1f} ms"
                f", {peak.lost + peak.duplicated} lost, {peak.refused + peak.unsent} refused"
            )
        lines.append(text)
    names = list(results)
    if len(names) == 2 and best[names[0]] and best[names[1]]:
        single, many = best[names[0]], best[names[1]]
        assert single is not None and many is not None
        ratio = (many.accepted / many.seconds) / (single.accepted / single.seconds)
        lines.append(f"- headline ratio {names[1]} ÷ {names[0]}: {ratio:.2f}")
    if len(names) == 2:
        # CPU per publish compared at one rate: the highest that both backends ran.
        by_rate = [{s.rate: s for s in results[name]} for name in names]
        common = sorted(set(by_rate[0]) & set(by_rate[1]))
        if common:
            rate = common[-1]
            one, shards = by_rate[0][rate].cpu_per_publish()[0], by_rate[1][rate].cpu_per_publish()
            if one:
                each = " / ".join(f"{c / one:.2f}" for c in shards)
                lines.append(
                    f"- Redis CPU per publish at {rate}/s, each shard's ÷ one Redis's: {each}"
                )
    for name, steps in results.items():
        if steps and steps[0].idle:
            idle = " / ".join(f"{1000 * c:.1f}" for c in steps[0].idle)
            lines.append(f"- {name}, idle Redis CPU (ms per s, per primary): {idle}")
    return "\n".join(lines) + "\n"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="250,500,1000,2000,3000,4000,6000,8000")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--replicas", type=int, default=0, help="replicas per cluster primary")
    parser.add_argument("--backends", default="single,cluster", help="single, cluster or both")
    parser.add_argument("--keep-going", action="store_true", help="run every rate (profiling)")
    parser.add_argument("--timeline", action="store_true", help="p99 per 0.5 s, to stderr")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    deadline = time.monotonic() + RUN_BUDGET
    async with contextlib.AsyncExitStack() as stack:
        started = []
        for kind in args.backends.split(","):
            backend = stack.enter_context(
                standalone() if kind == "single" else cluster(args.replicas)
            )
            started.append((backend, stack.enter_context(instances(backend.env))))
        rigs = [await stack.enter_async_context(rig(*one)) for one in started]
        results = await run_all(rigs, rates, args.seconds, deadline, args.keep_going, args.timeline)
    text = report(results, ["benchmarks/redis_cluster.py", *sys.argv[1:]])
    print(text)
    if args.out is not None:
        args.out.write_text(text)


if __name__ == "__main__":
    asyncio.run(main())
