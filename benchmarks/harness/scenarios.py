"""The scenarios: fan-out ladders, many rooms (published over HTTP or from client
sockets), idle connections.

Each scenario starts what it measures (a private redis-server and one or two
instances of one server), runs, and stops it before the next server starts, so the
servers never share the machine with each other. Where the processes run is the
topology (TOPOLOGIES), applied to running processes (sched_setaffinity), so that one
set of connected clients is measured in both:

- `each`: one core each: instance *i* on CPU *i*; the generator and Redis unpinned;
- `shared`: the server's instances and its Redis share CPU 1; the generator (and this
  suite's process) has CPU 0.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from array import array
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.redis_procs import RedisServer

from . import sockpub
from .loadgen import LoadGen
from .procs import HOST, Processes, cpu_seconds, machine_busy_seconds, rss_kib, set_affinity
from .redis import start_redis
from .servers import API_KEY, JWT_SECRET, ROOT, Instance, is_roomcast, start_instance
from .stats import Idle, Ladder, Step, percentile, should_stop
from .wsclient import CLIENT_EVENT, EVENT

CONNECT_TIMEOUT_S = 20.0
QUIET_S = 0.5  # a drain ends when no delivery arrived for this long
QUIET_CORES = 0.25  # other work under which the machine counts as quiet
QUIET_WAIT_S = 10.0  # at most this long to wait for it, per ladder
PUBLISH_CONNECTIONS = 64  # HTTP keep-alive connections per worker (one request in flight each)
TOPOLOGIES = {
    "each": "one core each: instance i on CPU i, the generator and Redis unpinned",
    "shared": "the instances and Redis on CPU 1, the generator on CPU 0",
}


@dataclass
class Bench:
    """What every scenario uses: the process registry, the generator, the run's knobs."""

    procs: Processes
    gen: LoadGen
    workdir: Path
    step_s: float
    drain_s: float
    step_no: int = 0

    def tag(self) -> str:
        self.step_no += 1
        return f"s{self.step_no}"


@dataclass
class Cluster:
    kind: str
    instances: list[Instance]
    redis: RedisServer

    @property
    def ports(self) -> list[int]:
        return [i.port for i in self.instances]

    def apply(self, topology: str, gen: LoadGen) -> None:
        """Move the running processes to `topology` (TOPOLOGIES)."""
        if topology == "shared":
            for inst in self.instances:
                set_affinity(inst.pid, {1})
            set_affinity(self.redis.pid, {1})
            for w in gen.workers:
                set_affinity(w.pid, {0})
            set_affinity(os.getpid(), {0}, tree=False)  # its children are the servers
        else:
            for i, inst in enumerate(self.instances):
                set_affinity(inst.pid, {i})
            set_affinity(self.redis.pid, None)
            for w in gen.workers:
                set_affinity(w.pid, None)
            set_affinity(os.getpid(), None, tree=False)

    def cpu(self) -> list[float]:
        return [cpu_seconds(i.pid) for i in self.instances]

    def check_alive(self) -> None:
        for i in self.instances:
            if not i.proc.alive():
                raise RuntimeError(f"{i.proc.name} died; log:\n{i.proc.log_tail()}")


@asynccontextmanager
async def cluster(bench: Bench, kind: str, n: int, label: str) -> AsyncIterator[Cluster]:
    """A private redis-server and `n` instances of `kind` on it; all stopped on exit."""
    started = []
    redis_proc, url = await asyncio.to_thread(start_redis, bench.procs)
    try:
        for i in range(n):
            inst = await asyncio.to_thread(
                start_instance,
                bench.procs,
                kind,
                url,
                cpu=i,
                name=f"{label}-{kind}-{i}",
                key_prefix=f"bench{bench.step_no}",
            )
            started.append(inst)
        yield Cluster(kind, started, redis_proc)
    finally:
        await bench.gen.all("close_all")
        for inst in reversed(started):
            bench.procs.stop(inst.proc)
        bench.procs.stop(redis_proc)


async def background_load(seconds: float = 1.0) -> float:
    """Cores the machine spends on work that is not this process's, over `seconds`.

    Called while none of the suite's servers run; the idle generator workers count as
    other work (they use next to nothing)."""
    own0, busy0, t0 = time.process_time(), machine_busy_seconds(), time.perf_counter()
    await asyncio.sleep(seconds)
    own = time.process_time() - own0
    return max(0.0, machine_busy_seconds() - busy0 - own) / (time.perf_counter() - t0)


async def wait_quiet(
    threshold: float = QUIET_CORES, max_wait: float = QUIET_WAIT_S
) -> tuple[float, float]:
    """Wait (bounded) until other work uses under `threshold` cores; (that load, seconds waited).

    The machine is shared; a scenario started in someone else's burst measures the burst."""
    t0 = time.monotonic()
    load = await background_load()
    while load > threshold and time.monotonic() - t0 < max_wait:
        load = await background_load()
    return load, time.monotonic() - t0


def mint_token(user_id: str, room: str) -> str:
    """An access token that may join `room`: `project_{p}` by the `projects` claim,
    any other room by name in the `rooms` claim (SPEC section 2)."""
    from roomcast.auth.tokens import mint_access_token

    if room.startswith("project_"):
        projects, rooms = [room.removeprefix("project_")], []
    else:
        projects, rooms = [], [room]
    return str(
        mint_access_token(JWT_SECRET, user_id, projects=projects, rooms=rooms, ttl_seconds=3600)
    )


def specs_for(
    kind: str, ports: Sequence[int], rooms: Sequence[str], who: str = "sub"
) -> list[tuple[int, bytes, bytes]]:
    """One (port, auth, room) per client: client i joins rooms[i] on instance i % len(ports).

    Every client sends a token (the peers ignore it), so all servers read the same bytes.
    """
    specs = []
    for i, room in enumerate(rooms):
        token = mint_token(f"bench-{kind}-{who}{i}", room)
        specs.append((ports[i % len(ports)], json.dumps({"token": token}).encode(), room.encode()))
    return specs


def dialect(kind: str) -> str:
    return sockpub.ROOMCAST_DIALECT if is_roomcast(kind) else sockpub.PEER_DIALECT


async def connect_all(
    bench: Bench, specs: list[tuple[int, bytes, bytes]], concurrency: int, strict: bool = True
) -> dict[str, Any]:
    """Spread the clients over the workers; raise unless every one connected (`strict`)."""
    n = len(bench.gen.workers)
    per = max(1, concurrency // n)
    answers = await bench.gen.each(
        [("connect", HOST, specs[w::n], per, CONNECT_TIMEOUT_S) for w in range(n)]
    )
    connected = sum(a["connected"] for a in answers)
    errors = [e for a in answers for e in a["errors"]]
    if strict and connected < len(specs):
        raise RuntimeError(f"only {connected}/{len(specs)} clients connected: {errors[:3]}")
    return {
        "connected": connected,
        "errors": errors[:3],
        "elapsed": max(a["elapsed"] for a in answers),
        "cpu": [a["cpu"] for a in answers],
    }


async def connect_publishers(
    bench: Bench, kind: str, ports: Sequence[int], rooms: Sequence[str]
) -> None:
    """One publishing client per room, joined to it, spread over the workers."""
    n = len(bench.gen.workers)
    specs = specs_for(kind, ports, rooms, who="pub")
    answers = await bench.gen.each(
        [
            ("connect_publishers", HOST, specs[w::n], 32, CONNECT_TIMEOUT_S, dialect(kind))
            for w in range(n)
        ]
    )
    connected = sum(a["connected"] for a in answers)
    if connected < len(specs):
        errors = [e for a in answers for e in a["errors"]]
        raise RuntimeError(f"only {connected}/{len(specs)} publishers connected: {errors[:3]}")


async def step(
    bench: Bench,
    c: Cluster,
    rooms: list[str],
    members: int,
    rate: float,
    duration: float,
    via: str = "http",
) -> Step:
    """Publish at `rate` for `duration` (over HTTP, or from the publishing clients when
    `via` is "socket"), drain, and read what arrived."""
    gen = bench.gen
    n = len(gen.workers)
    tag = bench.tag()
    res = Step(rate, members, duration, planned=max(1, round(rate * duration)))
    await gen.all("begin", tag)
    before = await gen.all("status")
    server0, busy0, t0 = c.cpu(), machine_busy_seconds(), time.perf_counter()
    redis0 = cpu_seconds(c.redis.pid)
    start_ns = time.time_ns()
    # the step's publishes split over the workers; each starts at another room (together
    # they cover every room) and a shifted schedule (together they publish evenly)
    counts = [res.planned // n + (w < res.planned % n) for w in range(n)]
    common = (HOST, c.ports, API_KEY, rooms)
    cmds: list[tuple[Any, ...]]
    if via == "socket":
        cmds = [("client_publish", counts[w], duration, tag, w / n, w) for w in range(n)]
    else:
        cmds = [
            ("publish", *common, counts[w], duration, tag, PUBLISH_CONNECTIONS, w * 7919, w / n)
            for w in range(n)
        ]
    answers = await gen.each(cmds)
    for a in answers:
        res.ok += a["ok"]
        res.errors += a["errors"]
        res.skipped += a["skipped"]
        res.error_samples.extend(a["error_samples"])
    expected = sum(b["events"] for b in before) + res.ok * members
    drain_end = time.perf_counter() + bench.drain_s
    last, changed = -1, time.perf_counter()
    while True:
        now_status = await gen.all("status")
        count = sum(s["events"] for s in now_status)
        now = time.perf_counter()
        if count >= expected or now >= drain_end:
            break
        if count != last:
            last, changed = count, now
        elif now - changed >= QUIET_S:
            break
        await asyncio.sleep(0.05)
    after = await gen.all("status")
    res.wall_s = time.perf_counter() - t0
    server = [b - a for a, b in zip(server0, c.cpu(), strict=True)]
    res.server_cpu_s, res.server_busiest_s = sum(server), max(server)
    res.machine_busy_s = machine_busy_seconds() - busy0
    res.redis_cpu_s = cpu_seconds(c.redis.pid) - redis0
    gen_cpu = [a["cpu"] - b["cpu"] for a, b in zip(after, before, strict=True)]
    res.gen_cpu_s, res.gen_busiest_s = sum(gen_cpu), max(gen_cpu)
    res.gen_sys_s = sum(a["sys"] - b["sys"] for a, b in zip(after, before, strict=True))
    res.deliveries = sum(a["events"] - b["events"] for a, b in zip(after, before, strict=True))
    last_ns = max(a["last_ns"] for a in after)
    res.window_s = max(duration, (last_ns - start_ns) / 1e9)
    res.lost = sum(b["open"] - a["open"] for a, b in zip(after, before, strict=True))
    res.error_samples.extend(r for a in after for r in a["lost"][: 1 if res.lost else 0])
    lat = array("q")
    for chunk in await gen.all("samples"):
        lat.frombytes(chunk)
    ordered = sorted(lat)
    res.samples = len(ordered)
    p50, p99 = percentile(ordered, 50), percentile(ordered, 99)
    res.p50_ms = None if p50 is None else p50 / 1000
    res.p99_ms = None if p99 is None else p99 / 1000
    c.check_alive()
    return res


async def check_with_socketio_client(
    c: Cluster, room: str, via: str = "http", timeout: float = 10.0
) -> None:
    """A real python-socketio client on the first instance gets an event published on the
    last one (over HTTP), or one it emitted itself (`via` "socket"): the raw clients'
    exchange is one a standard client accepts. Raises if not."""
    import aiohttp
    import socketio

    client = socketio.AsyncClient(reconnection=False)
    got: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    name = CLIENT_EVENT if via == "socket" else EVENT

    @client.on(name)  # type: ignore[untyped-decorator]
    async def on_event(arg: Any) -> None:
        if not got.done():
            got.set_result(arg)

    try:
        await client.connect(
            f"http://{HOST}:{c.ports[0]}",
            auth={"token": mint_token("bench-check", room)},
            transports=["websocket"],
            wait_timeout=timeout,
        )
        ack = await client.call("join", {"room": room}, timeout=timeout)
        if not (isinstance(ack, dict) and ack.get("ok") is True):
            raise RuntimeError(f"{c.kind}: join ack {ack!r}")
        if via == "socket":
            body = json.loads(sockpub.packet(dialect(c.kind), room.encode(), "check-0", "check:0"))
            ack = await client.call(body[0], body[1], timeout=timeout)
            if not (isinstance(ack, dict) and ack.get("ok") is True):
                raise RuntimeError(f"{c.kind}: client publish ack {ack!r}")
        else:
            body = {"room": room, "type": EVENT, "data": {"total": 1, "completed": 1,
                    "percent": 100.0, "stage": "check:0"}}  # fmt: skip
            async with aiohttp.ClientSession() as http:
                url = f"http://{HOST}:{c.ports[-1]}/api/v1/publish"
                headers = {"Authorization": f"Bearer {API_KEY}"}
                async with http.post(url, json=body, headers=headers) as r:
                    if r.status != 200:
                        raise RuntimeError(f"{c.kind}: check publish HTTP {r.status}")
        arg = await asyncio.wait_for(got, timeout)
    finally:
        await client.disconnect()
    data = arg.get("data", arg) if isinstance(arg, dict) else None
    if via == "socket" and isinstance(data, dict):
        data = data.get("annotation", {}).get("attributes")
    if not (isinstance(data, dict) and data.get("stage") == "check:0"):
        raise RuntimeError(f"{c.kind}: a socketio.AsyncClient got {arg!r}")


def step_line(label: str, s: Step) -> str:
    p99 = "—" if s.p99_ms is None else f"{s.p99_ms:.1f}"
    return (
        f"[{label}] {s.rate:7.0f} pub/s: {s.deliveries_per_s:9,.0f} deliveries/s "
        f"({100 * s.delivered_frac:5.1f}%), p99 {p99} ms, server {s.server_cores:.2f} cores "
        f"(busiest instance {s.server_busiest:.2f}), machine {s.machine_cores:.2f}, "
        f"generator {s.gen_cores:.2f} cores (sys {s.gen_sys_s / s.wall_s:.2f}, "
        f"busiest {100 * s.gen_busiest:.0f}%)"
        + (f", errors {s.errors} (first: {s.error_samples[:1]})" if s.errors else "")
        + (f", skipped {s.skipped}" if s.skipped else "")
        + (f", lost {s.lost}" if s.lost else "")
    )


async def ladder(
    bench: Bench,
    kind: str,
    *,
    instances: int,
    rooms: list[str],
    members: int,
    rates: Sequence[float],
    label: str,
    topologies: Sequence[str],
    via: str = "http",
    concurrency: int = 64,
) -> list[Ladder]:
    """Clients join `rooms` (one client per entry; with `via` "socket" one publishing
    client per distinct room too); then, per topology, step the publish rate up until
    the stop rule (`stats.should_stop`) ends it or the rates run out."""
    distinct = sorted(set(rooms))
    out = []
    async with cluster(bench, kind, instances, label) as c:
        t = time.perf_counter()
        await connect_all(bench, specs_for(kind, c.ports, rooms), concurrency)
        if via == "socket":
            await connect_publishers(bench, kind, c.ports, distinct)
        setup_s = time.perf_counter() - t
        print(f"[{label}] {kind}: {len(rooms)} clients joined in {setup_s:.1f}s", flush=True)
        await check_with_socketio_client(c, distinct[0], via)
        for topology in topologies:
            c.apply(topology, bench.gen)
            result = Ladder(kind, instances, len(rooms), topology=topology, via=via)
            result.setup_s = setup_s
            result.background_cores, result.waited_s = await wait_quiet()
            # warm-up, not recorded: JITs, caches, connection pools, the new placement
            await step(bench, c, distinct, members, rates[0], bench.step_s, via)
            for rate in rates:
                s = await step(bench, c, distinct, members, rate, bench.step_s, via)
                result.steps.append(s)
                print(step_line(f"{label}/{topology} {kind}", s), flush=True)
                if should_stop(result.steps):
                    first = next(x for x in result.steps if not x.within_goal)
                    result.note = f"stopped: {first.rate:g} publishes/s missed the goal " \
                                  f"({first.why_not()}), and one step more was run"  # fmt: skip
                    break
            else:
                missed = [x for x in result.steps if not x.within_goal]
                result.note = (
                    f"the rates ran out; {missed[0].rate:g} publishes/s, the last, missed the "
                    f"goal ({missed[0].why_not()})"
                    if missed
                    else "the rates ran out before the goal was missed"
                )
            out.append(result)
        c.apply("each", bench.gen)
    return out


async def process_stats(inst: Instance, timeout: float = 10.0) -> dict[str, Any] | None:
    """Ask a roomcast instance (the launcher) for its tasks and heap; None for the others."""
    if inst.stats_file is None:
        return None
    before = inst.stats_file.read_text() if inst.stats_file.exists() else ""
    os.kill(inst.pid, signal.SIGUSR1)
    # the answer is a file the process writes: nothing to await but its appearance
    for _ in range(int(timeout / 0.05)):
        await asyncio.sleep(0.05)
        text = inst.stats_file.read_text() if inst.stats_file.exists() else ""
        if text and text != before:
            data: dict[str, Any] = json.loads(text)
            return data
    raise RuntimeError(f"{inst.proc.name}: no answer to SIGUSR1 in {timeout:g}s")


def _heap(stats: dict[str, Any] | None) -> int | None:
    return None if stats is None else int(stats["pymalloc_bytes"]) + int(stats["malloc_bytes"])


async def idle(bench: Bench, kind: str, connections: int, concurrency: int, burst: int) -> Idle:
    """Connect `connections` clients, each authenticated and joined to `project_{i % 100}`,
    to one fresh instance (topology `shared`), in two halves; hold them idle; then start
    `burst` more handshakes at once and count the refused."""
    res = Idle(kind, connections)
    res.background_cores, _ = await wait_quiet()
    async with cluster(bench, kind, 1, "idle") as c:
        c.apply("shared", bench.gen)
        inst = c.instances[0]
        warm = specs_for(kind, c.ports, [f"project_{i % 100}" for i in range(20)], who="warm")
        await connect_all(bench, warm, concurrency)
        await bench.gen.all("close_all")
        await asyncio.sleep(1.0)  # let the server settle after the warm-up closes
        stats0 = await process_stats(inst)
        res.rss_before_kib = rss_kib(inst.pid)
        specs = specs_for(kind, c.ports, [f"project_{i % 100}" for i in range(connections)])
        half = connections // 2
        server0 = sum(c.cpu())
        try:
            first = await connect_all(bench, specs[:half], concurrency)
            second = await connect_all(bench, specs[half:], concurrency)
        except RuntimeError as exc:
            res.error_samples.append(str(exc))
            c.apply("each", bench.gen)
            return res
        res.server_cpu_s = sum(c.cpu()) - server0
        after = await bench.gen.all("status")
        res.seconds_first, res.seconds_second = first["elapsed"], second["elapsed"]
        res.connected = sum(a["open"] for a in after)
        res.gen_cpu_s = sum(first["cpu"]) + sum(second["cpu"])
        res.gen_busiest_s = max(a + b for a, b in zip(first["cpu"], second["cpu"], strict=True))
        await asyncio.sleep(1.0)  # idle: whatever the connect left behind settles
        res.rss_idle_kib = rss_kib(inst.pid)
        stats1 = await process_stats(inst)
        if stats0 is not None and stats1 is not None:
            res.tasks_before, res.tasks_idle = int(stats0["tasks"]), int(stats1["tasks"])
            res.heap_before, res.heap_idle = _heap(stats0), _heap(stats1)
        if burst:
            rooms = [f"project_{i % 100}" for i in range(burst)]
            more = specs_for(kind, c.ports, rooms, who="burst")
            done = await connect_all(bench, more, concurrency=burst, strict=False)
            res.burst, res.burst_connected = burst, done["connected"]
            res.burst_s, res.burst_errors = done["elapsed"], done["errors"]
        c.apply("each", bench.gen)
    return res


async def run_publish_script(
    procs: Processes, script: Path, workdir: Path, timeout: float
) -> dict[str, Any]:
    """Run `benchmarks/publish.py --json PATH`; its rows, or a note saying why there are none."""
    out = workdir / "publish.json"
    proc = procs.start("publish", [sys.executable, str(script), "--json", str(out)], cwd=ROOT)
    try:
        rc = await asyncio.to_thread(proc.popen.wait, timeout)
    except subprocess.TimeoutExpired:
        return {"rows": [], "note": f"publish.py did not finish within {timeout:.0f}s"}
    finally:
        procs.stop(proc)
    if rc != 0 or not out.exists():
        tail = " / ".join(proc.log_tail(4).splitlines())
        return {"rows": [], "note": f"publish.py exited with {rc}: {tail}"}
    rows = json.loads(out.read_text())
    return {"rows": rows if isinstance(rows, list) else [], "note": ""}
