"""Fan-out benchmark: one roomcast instance against a plain python-socketio server.

Both servers run as subprocesses on 127.0.0.1, in memory (no Redis). Each gets the
same number of subscribers (default 200) in one room; an HTTP publisher posts
``project_progress_update`` events to ``POST /api/v1/publish`` at rising rates, in
short sub-steps alternating between the two servers, so that both are measured in
the same run under the same machine noise. For every rate it records the deliveries
per second the subscribers saw, the end-to-end latency (receive time minus the send
time carried in the event, one machine clock), HTTP errors, the servers' CPU time,
the load generator's own CPU time and the rest of the machine's load.

The subscribers are minimal Socket.IO v5 / Engine.IO v4 websocket clients over
aiohttp, spread over worker processes, each with its own event loop (a full
``socketio.AsyncClient`` used about twice the CPU per received event, and on a small
machine the load generator competes with the server). Before the load, one real
``socketio.AsyncClient`` per server checks that the event arrives as expected.

    .venv/bin/python benchmarks/fanout.py [--quick] [--output docs/benchmarks.md]
    .venv/bin/python benchmarks/fanout.py --render RAW.json [--output FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import multiprocessing as mp
import os
import platform
import resource
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
PEER = ROOT / "benchmarks" / "peers" / "plain_socketio.py"
EVENT = "project_progress_update"
PROJECT = "p1"
ROOM = f"project_{PROJECT}"
HOST = "127.0.0.1"
JWT_SECRET = "bench-secret-not-for-production-0123456789abcdef"
API_KEY = "bench-api-key"

BASELINE = "baseline"
ROOMCAST = "roomcast"
LABELS = {BASELINE: "plain python-socketio", ROOMCAST: "roomcast"}

MAX_IN_FLIGHT = 256  # publishes awaiting an HTTP answer; beyond this a publish is skipped
HTTP_TIMEOUT_S = 10.0
QUIET_S = 1.0  # drain ends when no delivery arrived for this long
QUIET_LOAD = 0.2  # cores used by other work, under which the machine counts as quiet


# --------------------------------------------------------------------------- utilities


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _own_cpu_ticks(pid: int) -> tuple[int, int] | None:
    """(ppid, utime+stime ticks) of one process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[1]), int(fields[11]) + int(fields[12])


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by a process and its live descendants."""
    table: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = _own_cpu_ticks(int(entry))
            if info is not None:
                table[int(entry)] = info
    total, stack, seen = 0, [pid], set()
    while stack:
        p = stack.pop()
        if p in seen or p not in table:
            continue
        seen.add(p)
        total += table[p][1]
        stack.extend(c for c, (ppid, _) in table.items() if ppid == p)
    return total / _CLK_TCK


def machine_busy_seconds() -> float:
    """CPU seconds all CPUs of the machine spent busy (not idle, not waiting on I/O)."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal guest guest_nice (guest is in user)
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / _CLK_TCK


def percentile(sorted_values: Sequence[int], q: float) -> float | None:
    """Nearest-rank percentile of an ascending sequence (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), int(-(-q * len(sorted_values) // 100))))
    return float(sorted_values[rank - 1])


def mint_token(user_id: str) -> str:
    """An access token for one subscriber, minted by roomcast's own helper."""
    try:
        from roomcast.auth.tokens import mint_access_token
    except ImportError:
        sys.path.insert(0, str(ROOT / "src"))
        from roomcast.auth.tokens import mint_access_token
    return str(mint_access_token(JWT_SECRET, user_id, projects=[PROJECT], ttl_seconds=3600))


def event_stage(data: Any) -> str | None:
    if isinstance(data, dict):
        stage = data.get("stage")
        if isinstance(stage, str):
            return stage
    return None


# --------------------------------------------------------------------------- servers


@dataclass
class Server:
    name: str
    cmd: list[str]
    env: dict[str, str]
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    _log: Any = None

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            self.cmd, env=self.env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode} before it was ready; "
                    f"log:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.base}/healthz", timeout=1) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready within {timeout}s; log:\n{self.log_tail()}")

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.proc.pid) if self.proc else 0.0

    def event_loop(self) -> str:
        """'uvloop' when the uvloop extension is mapped into the server process."""
        if self.proc is None:
            return "unknown"
        try:
            with open(f"/proc/{self.proc.pid}/maps") as f:
                return "uvloop" if "uvloop" in f.read() else "asyncio"
        except OSError:
            return "unknown"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None


def roomcast_command() -> list[str]:
    exe = Path(sys.executable).with_name("roomcast")
    if exe.exists():
        return [str(exe), "serve"]
    return [
        sys.executable,
        "-c",
        "import sys; from roomcast.cli import main; sys.exit(main())",
        "serve",
    ]


def make_servers(names: Sequence[str], logdir: Path, baseline_loop: str) -> dict[str, Server]:
    servers: dict[str, Server] = {}
    for name in names:
        port = free_port()
        env = dict(os.environ)
        if name == BASELINE:
            cmd = [sys.executable, str(PEER), str(port), "--host", HOST, "--loop", baseline_loop]
        else:
            cmd = roomcast_command()
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(ROOT / "src"), env.get("PYTHONPATH", "")) if p
            )
            env.update(
                ROOMCAST_HOST=HOST,
                ROOMCAST_PORT=str(port),
                ROOMCAST_JWT_SECRET=JWT_SECRET,
                ROOMCAST_API_KEYS=API_KEY,
                ROOMCAST_RATE_LIMIT_PER_SECOND="100000",
                ROOMCAST_RATE_LIMIT_BURST="100000",
                ROOMCAST_CONNECT_RATE_PER_ADDRESS="0",
                ROOMCAST_LOG_LEVEL="warning",
            )
            env.pop("ROOMCAST_REDIS_URL", None)
            env.pop("ROOMCAST_REDIS_SENTINELS", None)
        servers[name] = Server(name, cmd, env, port, logdir / f"{name}.log")
    return servers


# --------------------------------------------------------------------------- subscribers
# Runs in worker processes. Socket.IO v5 over Engine.IO v4, websocket transport only:
#   server "0{open}"; client "40{auth}"; server "40{sid}" (or "44{error}");
#   client "420[\"join\",{...}]"; server "430[ack]"; events "42[name, arg]";
#   server ping "2", client pong "3".


class StepStats:
    __slots__ = ("count", "dups", "first_ns", "gaps", "last_ns", "lat_us")

    def __init__(self) -> None:
        self.count = 0
        self.gaps = 0
        self.dups = 0
        self.first_ns = 0
        self.last_ns = 0
        self.lat_us = array("q")


class Subscriber:
    def __init__(
        self, worker: Worker, server: str, url: str, token: str | None, envelope: bool
    ) -> None:
        self.worker = worker
        self.server = server
        self.url = url
        self.token = token
        self.envelope = envelope
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.task: asyncio.Task[None] | None = None
        self.connected = False
        self.closing = False
        self.last_seq: int | None = None
        self.close_info = ""

    async def _expect(self, prefix: str) -> str:
        assert self.ws is not None
        while True:
            msg = await self.ws.receive()
            if msg.type is not aiohttp.WSMsgType.TEXT:
                raise ConnectionError(f"websocket {msg.type.name} {msg.data!r} {msg.extra!r}")
            text = str(msg.data)
            if text == "2":
                await self.ws.send_str("3")
            elif text.startswith(prefix):
                return text
            elif text.startswith("44"):
                raise ConnectionError(f"connect refused: {text[2:]}")

    async def connect(self, session: aiohttp.ClientSession) -> None:
        self.last_seq = None
        self.closing = False
        self.close_info = ""
        async with asyncio.timeout(15):
            self.ws = await session.ws_connect(self.url, max_msg_size=0, autoping=True)
            try:
                await self._expect("0")
                auth = json.dumps({"token": self.token}) if self.token else ""
                await self.ws.send_str("40" + auth)
                await self._expect("40")
                await self.ws.send_str("420" + json.dumps(["join", {"room": ROOM}]))
                ack = json.loads((await self._expect("430"))[3:])
                if not (ack and isinstance(ack[0], dict) and ack[0].get("ok") is True):
                    raise ConnectionError(f"join refused: {ack!r}")
            except BaseException:
                await self.ws.close()
                raise
        self.connected = True
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        ws = self.ws
        assert ws is not None
        on_event = self._on_event
        try:
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    text = msg.data
                    if text.startswith("42["):
                        on_event(text)
                    elif text == "2":
                        await ws.send_str("3")
                    elif text.startswith("1") or text.startswith("41"):
                        self.close_info = f"server closed: {text[:200]}"
                        break
                elif msg.type is aiohttp.WSMsgType.ERROR:
                    self.close_info = f"error: {ws.exception()!r}"
                    break
        finally:
            if not self.close_info:
                self.close_info = f"websocket closed code={ws.close_code}"
            self.connected = False
            if not self.closing:  # a close the benchmark asked for is not news
                self.worker.closed.setdefault(self.server, []).append(self.close_info)

    def _on_event(self, text: str) -> None:
        now = time.time_ns()
        packet = json.loads(text[2:])
        if packet[0] != EVENT or len(packet) < 2:
            return
        arg = packet[1]
        data = arg.get("data") if self.envelope and isinstance(arg, dict) else arg
        stage = event_stage(data)
        if stage is None or ":" not in stage:
            self.worker.foreign += 1
            return
        step, _, sent = stage.partition(":")
        key = (self.server, step)
        stats = self.worker.stats.get(key)
        if stats is None:
            stats = self.worker.stats[key] = StepStats()
            stats.first_ns = now
        stats.count += 1
        stats.last_ns = now
        stats.lat_us.append((now - int(sent)) // 1000)
        if self.envelope:
            seq = arg.get("seq")
            if isinstance(seq, int):
                if self.last_seq is not None:
                    if seq <= self.last_seq:
                        stats.dups += 1
                    elif seq != self.last_seq + 1:
                        stats.gaps += seq - self.last_seq - 1
                self.last_seq = seq

    async def close(self) -> None:
        self.closing = True
        self.connected = False
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.send_str("41")
            with contextlib.suppress(Exception):
                await self.ws.close()
        if self.task is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self.task, 2)


class Worker:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.subs: dict[str, list[Subscriber]] = {}
        self.stats: dict[tuple[str, str], StepStats] = {}
        self.closed: dict[str, list[str]] = {}
        self.foreign = 0
        self.pending: set[asyncio.Task[None]] = set()
        self.done = asyncio.Event()
        self.session: aiohttp.ClientSession | None = None

    async def run(self) -> None:
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        loop = asyncio.get_running_loop()
        # Commands are read by a thread: the pipe stays blocking, so answers of any size
        # can be written back from the event loop.
        threading.Thread(target=self._read_commands, args=(loop,), daemon=True).start()
        try:
            await self.done.wait()
        finally:
            for subs in self.subs.values():
                await asyncio.gather(*(s.close() for s in subs), return_exceptions=True)
            await self.session.close()

    def _read_commands(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            try:
                cmd = self.conn.recv()
            except (EOFError, OSError):
                loop.call_soon_threadsafe(self.done.set)
                return
            loop.call_soon_threadsafe(self._start, cmd)
            if cmd[0] == "stop":
                return

    def _start(self, cmd: tuple[Any, ...]) -> None:
        task = asyncio.create_task(self._answer(cmd))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def _answer(self, cmd: tuple[Any, ...]) -> None:
        try:
            result: Any = await getattr(self, "cmd_" + cmd[0])(*cmd[1:])
        except Exception as exc:  # reported to the orchestrator, which stops the run
            result = {"error": f"{type(exc).__name__}: {exc}"}
        self.conn.send(result)

    async def _connect_all(self, subs: list[Subscriber]) -> dict[str, Any]:
        gate = asyncio.Semaphore(20)
        errors: list[str] = []

        async def one(sub: Subscriber) -> None:
            async with gate:
                try:
                    assert self.session is not None
                    await sub.connect(self.session)
                except Exception as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")

        await asyncio.gather(*(one(s) for s in subs if not s.connected))
        return {
            "connected": sum(s.connected for s in subs),
            "errors": errors[:5],
            "n_errors": len(errors),
        }

    async def cmd_setup(
        self, server: str, url: str, tokens: list[str | None], envelope: bool
    ) -> dict[str, Any]:
        subs = [Subscriber(self, server, url, t, envelope) for t in tokens]
        self.subs[server] = subs
        return await self._connect_all(subs)

    async def cmd_ensure(self, server: str) -> dict[str, Any]:
        return await self._connect_all(self.subs.get(server, []))

    async def cmd_close(self, server: str) -> int:
        subs = self.subs.get(server, [])
        await asyncio.gather(*(s.close() for s in subs), return_exceptions=True)
        return len(subs)

    async def cmd_cpu(self) -> float:
        return time.process_time()

    async def cmd_count(self, server: str, step: str) -> tuple[int, int]:
        stats = self.stats.get((server, step))
        return (stats.count, stats.last_ns) if stats else (0, 0)

    async def cmd_report(self, server: str, step: str) -> dict[str, Any]:
        stats = self.stats.pop((server, step), None) or StepStats()
        closed = self.closed.pop(server, [])
        return {
            "cpu": time.process_time(),
            "count": stats.count,
            "first_ns": stats.first_ns,
            "last_ns": stats.last_ns,
            "gaps": stats.gaps,
            "dups": stats.dups,
            "lat": stats.lat_us.tobytes(),
            "alive": sum(s.connected for s in self.subs.get(server, [])),
            "closed": closed,
            "foreign": self.foreign,
        }

    async def cmd_stop(self) -> bool:
        self.done.set()
        return True


def worker_main(conn: Connection) -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(Worker(conn).run())


class WorkerHandle:
    def __init__(self, ctx: Any) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=worker_main, args=(child,), daemon=True)
        self.proc.start()
        child.close()
        self.lock = asyncio.Lock()

    async def call(self, *cmd: Any, timeout: float = 60.0) -> Any:
        async with self.lock:
            self.conn.send(cmd)
            ready = await asyncio.to_thread(self.conn.poll, timeout)
            if not ready:
                raise TimeoutError(f"subscriber worker did not answer {cmd[0]} in {timeout}s")
            result = self.conn.recv()
        if isinstance(result, dict) and "error" in result and len(result) == 1:
            raise RuntimeError(f"subscriber worker failed on {cmd[0]}: {result['error']}")
        return result

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.send(("stop",))
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(3)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(3)


# --------------------------------------------------------------------------- one step


@dataclass
class StepResult:
    server: str
    rate: int
    duration: float
    subscribers: int
    planned: int = 0
    ok: int = 0
    http_errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    skipped: int = 0
    publish_s: float = 0.0
    window_s: float = 0.0
    deliveries: int = 0
    expected: int = 0
    lat_p50_ms: float | None = None
    lat_p99_ms: float | None = None
    lat_max_ms: float | None = None
    http_p50_ms: float | None = None
    server_cpu_s: float = 0.0
    machine_busy_s: float = 0.0
    cpu_wall_s: float = 0.0  # the wall time over which the CPU figures were taken
    gen_cpu_s: float = 0.0
    gen_busiest: float = 0.0  # the busiest generator process, in cores (1.0 = one full core)
    alive_after: int = 0
    gaps: int = 0
    dups: int = 0
    closed: list[str] = field(default_factory=list)
    rounds: int = 1
    lat_us: list[int] = field(default_factory=list, repr=False)
    http_lat_s: list[float] = field(default_factory=list, repr=False)

    def finalize(self) -> None:
        self.lat_us.sort()
        self.http_lat_s.sort()
        lat = self.lat_us
        self.lat_p50_ms = None if not lat else percentile(lat, 50) / 1000  # type: ignore[operator]
        self.lat_p99_ms = None if not lat else percentile(lat, 99) / 1000  # type: ignore[operator]
        self.lat_max_ms = None if not lat else lat[-1] / 1000
        http = self.http_lat_s
        self.http_p50_ms = 1000 * http[len(http) // 2] if http else None

    @property
    def delivered_per_s(self) -> float:
        return self.deliveries / self.window_s if self.window_s > 0 else 0.0

    @property
    def delivered_frac(self) -> float:
        return self.deliveries / self.expected if self.expected else 0.0

    @property
    def server_us_per_delivery(self) -> float | None:
        return 1e6 * self.server_cpu_s / self.deliveries if self.deliveries else None

    @property
    def wall_s(self) -> float:
        return max(self.cpu_wall_s, 1e-9)

    @property
    def other_load(self) -> float:
        """Cores used by everything but the server under test and the load generator."""
        return max(0.0, (self.machine_busy_s - self.server_cpu_s - self.gen_cpu_s) / self.wall_s)

    @property
    def saturated(self) -> bool:
        """The server did not deliver what was offered (latency alone does not count:
        on a shared machine it also measures the neighbours)."""
        return (
            self.delivered_frac < 0.98
            or self.skipped > 0
            or self.http_errors > 0.01 * max(1, self.planned)
            or self.alive_after < self.subscribers
        )


def merge(parts: list[StepResult]) -> StepResult:
    """One result from the rounds of one server at one rate."""
    first = parts[0]
    res = StepResult(first.server, first.rate, 0.0, min(p.subscribers for p in parts))
    for p in parts:
        res.duration += p.duration
        for name in (
            "planned",
            "ok",
            "http_errors",
            "skipped",
            "deliveries",
            "expected",
            "gaps",
            "dups",
        ):
            setattr(res, name, getattr(res, name) + getattr(p, name))
        for name in (
            "publish_s",
            "window_s",
            "server_cpu_s",
            "machine_busy_s",
            "gen_cpu_s",
            "cpu_wall_s",
        ):
            setattr(res, name, getattr(res, name) + getattr(p, name))
        res.error_samples.extend(p.error_samples)
        res.closed.extend(p.closed)
        res.lat_us.extend(p.lat_us)
        res.http_lat_s.extend(p.http_lat_s)
        res.gen_busiest = max(res.gen_busiest, p.gen_busiest)
    res.alive_after = min(p.alive_after for p in parts)
    res.rounds = len(parts)
    res.finalize()
    return res


class Bench:
    def __init__(
        self, args: argparse.Namespace, servers: dict[str, Server], workers: list[WorkerHandle]
    ) -> None:
        self.args = args
        self.servers = servers
        self.workers = workers
        self.session: aiohttp.ClientSession | None = None
        self.step_no = 0

    async def all(self, *cmd: Any, timeout: float = 60.0) -> list[Any]:
        return list(await asyncio.gather(*(w.call(*cmd, timeout=timeout) for w in self.workers)))

    async def attach(self, name: str) -> None:
        server = self.servers[name]
        n, nw = self.args.subscribers, len(self.workers)
        url = f"ws://{HOST}:{server.port}/socket.io/?EIO=4&transport=websocket"
        tokens: list[str | None] = (
            [mint_token(f"bench-{i:04d}") for i in range(n)] if name == ROOMCAST else [None] * n
        )
        answers = await asyncio.gather(
            *(
                w.call("setup", name, url, tokens[i::nw], name == ROOMCAST, timeout=120.0)
                for i, w in enumerate(self.workers)
            )
        )
        connected = sum(a["connected"] for a in answers)
        if connected < n:
            errors = [e for a in answers for e in a["errors"]]
            raise RuntimeError(
                f"{name}: only {connected}/{n} subscribers connected and joined {ROOM}; "
                f"first errors: {errors[:5]}; server log:\n{server.log_tail()}"
            )

    async def publish(
        self, server: Server, step: str, i: int, n: int, res: StepResult, http_lat: list[float]
    ) -> None:
        assert self.session is not None
        sent_ns = time.time_ns()
        body = {
            "room": ROOM,
            "type": EVENT,
            "data": {
                "total": n,
                "completed": i + 1,
                "percent": round(100.0 * (i + 1) / n, 3),
                "stage": f"{step}:{sent_ns}",
            },
        }
        t0 = time.perf_counter()
        try:
            async with self.session.post(
                f"{server.base}/api/v1/publish",
                json=body,
                headers={"Authorization": f"Bearer {API_KEY}"},
            ) as r:
                text = await r.read()
                if r.status == 200:
                    res.ok += 1
                    http_lat.append(time.perf_counter() - t0)
                    return
                sample = f"HTTP {r.status}: {text[:200]!r}"
        except Exception as exc:
            sample = f"{type(exc).__name__}: {exc}"
        res.http_errors += 1
        if len(res.error_samples) < 5:
            res.error_samples.append(sample)

    async def step(self, name: str, rate: int, duration: float, drain_max: float) -> StepResult:
        server = self.servers[name]
        self.step_no += 1
        step = f"s{self.step_no}"
        n = max(1, round(rate * duration))
        res = StepResult(name, rate, duration, self.args.subscribers, planned=n)

        ensure = await self.all("ensure", name, timeout=60.0)
        res.subscribers = sum(a["connected"] for a in ensure)
        cpu_w0 = await self.all("cpu")
        cpu_m0 = time.process_time()
        cpu_s0 = server.cpu_seconds()
        busy0 = machine_busy_seconds()
        cpu_t0 = time.perf_counter()

        http_lat: list[float] = []
        tasks: set[asyncio.Task[None]] = set()
        t0 = time.perf_counter()
        t0_ns = time.time_ns()
        for i in range(n):
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(tasks) >= MAX_IN_FLIGHT:
                res.skipped += 1
                continue
            task = asyncio.create_task(self.publish(server, step, i, n, res, http_lat))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            _, pending = await asyncio.wait(set(tasks), timeout=HTTP_TIMEOUT_S)
            for task in pending:
                task.cancel()
            if pending:
                res.http_errors += len(pending)
                res.error_samples.append(
                    f"{len(pending)} publishes unanswered after {HTTP_TIMEOUT_S}s"
                )
        res.publish_s = time.perf_counter() - t0

        # Drain: wait for every expected delivery, or until nothing arrived for QUIET_S.
        res.expected = res.ok * res.subscribers
        drain_end = time.perf_counter() + drain_max
        last_count, last_change = -1, time.perf_counter()
        while time.perf_counter() < drain_end:
            counts = await self.all("count", name, step)
            count = sum(c for c, _ in counts)
            now = time.perf_counter()
            if count >= res.expected:
                break
            if count != last_count:
                last_count, last_change = count, now
            elif now - last_change >= QUIET_S:
                break
            await asyncio.sleep(0.1)

        reports = await self.all("report", name, step, timeout=120.0)
        cpu_m1 = time.process_time()
        res.server_cpu_s = server.cpu_seconds() - cpu_s0
        res.machine_busy_s = machine_busy_seconds() - busy0
        res.cpu_wall_s = time.perf_counter() - cpu_t0
        lat: list[int] = []
        last_ns = 0
        for rep in reports:
            res.deliveries += rep["count"]
            res.gaps += rep["gaps"]
            res.dups += rep["dups"]
            res.alive_after += rep["alive"]
            res.closed.extend(rep["closed"])
            last_ns = max(last_ns, rep["last_ns"])
            chunk = array("q")
            chunk.frombytes(rep["lat"])
            lat.extend(chunk)
        res.window_s = (last_ns - t0_ns) / 1e9 if last_ns else res.publish_s
        wall = res.wall_s
        gen = [cpu_m1 - cpu_m0] + [r["cpu"] - c0 for r, c0 in zip(reports, cpu_w0, strict=True)]
        res.gen_cpu_s = sum(gen)
        res.gen_busiest = max(gen) / wall
        res.lat_us = lat
        res.http_lat_s = http_lat
        res.finalize()
        return res

    async def check_with_socketio_client(self, name: str) -> str:
        """One real python-socketio client receives one published event."""
        import socketio

        server = self.servers[name]
        client = socketio.AsyncClient(reconnection=False)
        got: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        @client.on(EVENT)  # type: ignore[untyped-decorator]
        async def on_event(arg: Any) -> None:
            if not got.done():
                got.set_result(arg)

        token = mint_token("bench-check") if name == ROOMCAST else None
        try:
            await client.connect(
                server.base,
                auth={"token": token} if token else None,
                transports=["websocket"],
                wait_timeout=10,
            )
            ack = await client.call("join", {"room": ROOM}, timeout=10)
            if not (isinstance(ack, dict) and ack.get("ok") is True):
                raise RuntimeError(f"{name}: join ack {ack!r}")
            res = StepResult(name, 1, 0, 1)
            await self.publish(server, "check", 0, 1, res, [])
            if res.ok != 1:
                raise RuntimeError(f"{name}: check publish failed: {res.error_samples}")
            arg = await asyncio.wait_for(got, 10)
        finally:
            await client.disconnect()
        data = arg.get("data") if name == ROOMCAST else arg
        if not (event_stage(data) or "").startswith("check:"):
            raise RuntimeError(f"{name}: unexpected event argument {arg!r}")
        if name == ROOMCAST:
            missing = {"id", "type", "room", "epoch", "seq", "ts", "data"} - set(arg)
            if missing:
                raise RuntimeError(f"{name}: envelope lacks {sorted(missing)}: {arg!r}")
        return json.dumps(arg)[:300]


# --------------------------------------------------------------------------- run


async def run(
    args: argparse.Namespace, servers: dict[str, Server], workers: list[WorkerHandle]
) -> dict[str, Any]:
    bench = Bench(args, servers, workers)
    names = list(servers)
    log: dict[str, Any] = {"checks": {}, "results": [], "notes": [], "loops": {}}
    started = time.monotonic()
    # Idle keep-alive connections are dropped by the client before uvicorn's 5 s
    # timeout closes them, so that no publish is written into a connection being closed.
    connector = aiohttp.TCPConnector(limit=64, keepalive_timeout=2.0)
    timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        bench.session = session
        for name in names:
            log["checks"][name] = await bench.check_with_socketio_client(name)
            print(
                f"[check] {name}: a socketio.AsyncClient got {log['checks'][name][:120]}...",
                flush=True,
            )
        for name in names:
            t = time.monotonic()
            await bench.attach(name)
            print(
                f"[setup] {name}: {args.subscribers} subscribers joined {ROOM} "
                f"in {time.monotonic() - t:.1f}s",
                flush=True,
            )
        # Wait (bounded) for the rest of the machine to be quiet before the steps begin.
        waited = time.monotonic()
        log["background"] = await background_load(bench)
        while log["background"] > QUIET_LOAD and time.monotonic() - waited < args.wait_quiet:
            log["background"] = await background_load(bench)
        log["waited_s"] = time.monotonic() - waited
        print(
            f"[setup] background load: {log['background']:.2f} cores busy outside the "
            f"benchmark (after waiting {log['waited_s']:.0f} s)",
            flush=True,
        )
        for name in names:  # warm-up, not reported
            await bench.step(name, args.warmup_rate, args.warmup_s, 2.0)

        # At each rate, every server runs `rounds` sub-steps, alternating A B / B A / ...,
        # so that both see the same machine noise; a server that saturates stops there.
        active = set(names)
        sub_s = args.duration / args.rounds
        turn = 0
        for rate in args.rates:
            parts: dict[str, list[StepResult]] = {name: [] for name in names}
            running = [name for name in names if name in active]
            for _ in range(args.rounds):
                order = running if turn % 2 == 0 else running[::-1]
                turn += 1
                for name in order:
                    if name not in active or (parts[name] and parts[name][-1].saturated):
                        continue
                    if time.monotonic() - started + sub_s + args.drain_max > args.deadline:
                        log["notes"].append(
                            f"{LABELS[name]} at {rate}/s: stopped, the time budget "
                            f"({args.deadline:.0f} s) was reached"
                        )
                        active.discard(name)
                        continue
                    part = await bench.step(name, rate, sub_s, args.drain_max)
                    parts[name].append(part)
                    if not servers[name].alive():
                        raise RuntimeError(
                            f"{name} died during the run; log:\n{servers[name].log_tail()}"
                        )
            for name in names:
                if not parts[name]:
                    continue
                res = merge(parts[name])
                log["results"].append(res)
                print(row_text(res), flush=True)
                if res.saturated and name in active:
                    active.discard(name)
                    log["notes"].append(
                        f"{LABELS[name]} saturated at {rate} publishes/s "
                        f"({describe_saturation(res)}): not driven higher"
                    )
                    # drop its subscribers so its backlog stops loading the machine
                    await bench.all("close", name)
                    await asyncio.sleep(1.0)
    log["loops"] = {name: s.event_loop() for name, s in servers.items()}
    log["elapsed_s"] = time.monotonic() - started
    return log


async def background_load(bench: Bench, seconds: float = 2.0) -> float:
    """Cores the machine spends on other work while the benchmark is idle."""

    async def ours() -> float:
        workers = float(sum(await bench.all("cpu")))
        return time.process_time() + workers + sum(s.cpu_seconds() for s in bench.servers.values())

    t0, busy0, ours0 = time.perf_counter(), machine_busy_seconds(), await ours()
    await asyncio.sleep(seconds)
    busy1, ours1 = machine_busy_seconds(), await ours()
    return max(0.0, (busy1 - busy0) - (ours1 - ours0)) / (time.perf_counter() - t0)


def saturation_cause(server_cores: float, machine_busy: float) -> str:
    """A reading of the CPU figures of a saturated step (empty when they say nothing)."""
    busy_server, full_machine = server_cores >= 0.8, machine_busy >= 0.9
    if busy_server and full_machine:
        return (
            "The server used most of a core and the machine's CPUs were nearly full: the "
            "server's event loop and the shared machine were both at their limit."
        )
    if busy_server:
        return "The server used most of a core: its single event loop was the limit."
    if full_machine:
        return (
            "The server got less than a core because the machine's CPUs were full: the "
            "shared machine was the limit, not the server alone."
        )
    return ""


def describe_saturation(r: StepResult) -> str:
    why = []
    if r.delivered_frac < 0.98:
        why.append(f"{100 * r.delivered_frac:.1f}% delivered within the drain time")
    if r.skipped:
        why.append(f"{r.skipped} publishes not sent: {MAX_IN_FLIGHT} already in flight")
    if r.http_errors > 0.01 * max(1, r.planned):
        why.append(f"{r.http_errors} HTTP errors")
    if r.alive_after < r.subscribers:
        why.append(f"{r.subscribers - r.alive_after} subscribers disconnected")
    return ", ".join(why)


def fmt(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{x:,.{digits}f}"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "—"
    return f"{a / b:.2f}"


def row_text(r: StepResult) -> str:
    return (
        f"[rate] {r.server:9s} {r.rate:5d} pub/s x{r.rounds}: {r.delivered_per_s:9,.0f} "
        "deliveries/s "
        f"({100 * r.delivered_frac:5.1f}%), p50 {fmt(r.lat_p50_ms)} ms, "
        f"p99 {fmt(r.lat_p99_ms)} ms, HTTP errors {r.http_errors}, skipped {r.skipped}, "
        f"server CPU {r.server_cpu_s:.2f}s, generator CPU {r.gen_cpu_s:.2f}s "
        f"(busiest {100 * r.gen_busiest:.0f}% of a core), other load {r.other_load:.2f} cores, "
        f"subscribers {r.alive_after}"
        + (f", seq gaps {r.gaps} dups {r.dups}" if r.server == ROOMCAST else "")
    )


# --------------------------------------------------------------------------- report


def machine() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break

    def version(pkg: str) -> str:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "python-socketio": version("python-socketio"),
        "python-engineio": version("python-engineio"),
        "uvicorn": version("uvicorn"),
        "fastapi": version("fastapi"),
        "aiohttp": version("aiohttp"),
        "roomcast": version("roomcast"),
    }


def render(args: argparse.Namespace, log: dict[str, Any], command: str) -> str:
    results: list[StepResult] = log["results"]
    by = {(r.server, r.rate): r for r in results}
    m = log["machine"]
    now = log["when"]
    out: list[str] = []
    w = out.append
    w("# Benchmarks\n")
    w(f"## Fan-out: one instance, {args.subscribers} subscribers in one room\n")
    w(
        f"One server process on {HOST}, in memory (no Redis), {args.subscribers} websocket "
        f"subscribers in the room `{ROOM}`, and an HTTP publisher posting `{EVENT}` "
        "events to `POST /api/v1/publish` at rising rates. At each rate: the events "
        "delivered per second, as the subscribers counted them, and the end-to-end "
        "latency from the publish request to the subscriber's receive, for roomcast and, "
        "in the same run, for a plain python-socketio server doing the same broadcast.\n"
    )
    w("Command (`make bench`):\n")
    w(f"```\n{public_command(command)}\n```\n")
    w(
        "`--quick` runs three rates with one short step each (about 40 s); `--help` lists "
        "the knobs (rates, step length, rounds, subscribers, worker processes).\n"
    )
    w(
        f"This run: {now}, {log['elapsed_s']:.0f} s. Machine: {m['nproc']} CPUs "
        f"({m['cpu']}), Linux {m['kernel']}, Python {m['python']}, python-socketio "
        f"{m['python-socketio']}, python-engineio {m['python-engineio']}, uvicorn "
        f"{m['uvicorn']}, FastAPI {m['fastapi']}, aiohttp {m['aiohttp']}, roomcast "
        f"{m['roomcast']}. Both servers, the publisher and the subscribers share these "
        f"CPUs, and the machine is shared: other work used {log['background']:.2f} cores "
        f"just before the steps began, after waiting {log['waited_s']:.0f} s (at most "
        f"{args.wait_quiet:g} s) for it to drop under {QUIET_LOAD:g}; the *other load* "
        "column gives it for every step.\n"
    )

    w("### Results\n")
    w(
        "Ratios are roomcast / baseline, from sub-steps alternated between the two servers "
        "(see *How it is measured*). Deliveries/s: "
        "higher is better; latency and server CPU per delivery: lower is better.\n"
    )
    w(
        "| publishes/s | deliveries/s baseline | deliveries/s roomcast | ratio "
        "| p50 ms baseline | p50 ms roomcast | ratio | p99 ms baseline | p99 ms roomcast "
        "| ratio | server CPU µs/delivery baseline | roomcast | ratio |"
    )
    w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for rate in args.rates:
        b, r = by.get((BASELINE, rate)), by.get((ROOMCAST, rate))
        if b is None and r is None:
            continue

        def val(x: StepResult | None, attr: str, digits: int = 1) -> str:
            return fmt(getattr(x, attr), digits) if x else "—"

        def rat(attr: str, b: StepResult | None = b, r: StepResult | None = r) -> str:
            return ratio(getattr(r, attr), getattr(b, attr)) if b and r else "—"

        w(
            f"| {rate} | {val(b, 'delivered_per_s', 0)} | {val(r, 'delivered_per_s', 0)} "
            f"| {rat('delivered_per_s')} | {val(b, 'lat_p50_ms')} | {val(r, 'lat_p50_ms')} "
            f"| {rat('lat_p50_ms')} | {val(b, 'lat_p99_ms')} | {val(r, 'lat_p99_ms')} "
            f"| {rat('lat_p99_ms')} | {val(b, 'server_us_per_delivery')} "
            f"| {val(r, 'server_us_per_delivery')} | {rat('server_us_per_delivery')} |"
        )
    w("")
    w(
        "A dash: that server was not run at that rate, because it had saturated at a lower "
        "one (see the notes below).\n"
    )
    w("Every step, in the order of the table:\n")
    w(
        "| server | publishes/s | sent | HTTP errors | delivered | deliveries/s | p50 ms "
        "| p99 ms | max ms | HTTP p50 ms | server CPU | generator CPU | busiest | "
        "other load | subscribers after | seq gaps / dups |"
    )
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for res in sorted(results, key=lambda x: (x.rate, x.server)):
        wall = res.wall_s
        w(
            f"| {res.server} | {res.rate} | {res.planned - res.skipped} | {res.http_errors} "
            f"| {100 * res.delivered_frac:.1f}% | {res.delivered_per_s:,.0f} "
            f"| {fmt(res.lat_p50_ms)} | {fmt(res.lat_p99_ms)} | {fmt(res.lat_max_ms)} "
            f"| {fmt(res.http_p50_ms)} | {res.server_cpu_s / wall:.2f} "
            f"| {res.gen_cpu_s / wall:.2f} | {100 * res.gen_busiest:.0f}% "
            f"| {res.other_load:.2f} "
            f"| {res.alive_after}/{res.subscribers} "
            f"| {f'{res.gaps} / {res.dups}' if res.server == ROOMCAST else 'n/a'} |"
        )
    w("")
    w(
        "*sent*: publishes sent (a publish is not sent when "
        f"{MAX_IN_FLIGHT} are already waiting for an answer). *delivered*: share of "
        "(successful publishes times subscribers) that arrived. *HTTP p50*: time to the "
        "publish answer. *server CPU*, *generator CPU*: CPU seconds over the step divided "
        "by its length (1.00 = one core); the generator is the publisher process plus the "
        "subscriber worker processes, *busiest* is its most loaded process (near 100% it "
        "would be the bottleneck). *other load*: the rest of the machine's busy CPU during "
        "the step (the idle other server and everything else on the machine). *seq "
        "gaps / dups*: roomcast's envelopes carry a per-room `seq`; every subscriber "
        "checks that it grows by exactly one.\n"
    )
    if log["notes"]:
        w("Notes from the run:\n")
        for note in log["notes"]:
            w(f"- {note}")
        w("")
    errors = [(r.server, r.rate, s) for r in results for s in r.error_samples]
    closed = [(r.server, r.rate, c) for r in results for c in r.closed]
    if errors or closed:
        w("Errors seen:\n")
        for server, rate, s in errors[:10]:
            w(f"- {server} at {rate}/s: publish error `{s}`")
        for server, rate, c in closed[:10]:
            w(f"- {server} at {rate}/s: a subscriber was disconnected (`{c}`)")
        w("")
    w("### Reading the figures\n")
    for line in interpretation(args, log):
        w(f"- {line}")
    w("")
    w("### How it is measured\n")
    for line in (
        f"At each rate, each server gets {args.duration:g} s of publishing, in {args.rounds} "
        f"sub-step(s) of {args.duration / args.rounds:g} s that alternate between the two "
        "servers (A B, B A, A B, ...), so that both see the same machine noise; the figures "
        "of a rate pool its sub-steps (a server that saturates in a sub-step runs no more "
        "sub-steps at that rate). Publishing is open loop: publish *i* is sent at "
        "*i*/rate seconds whether or not earlier ones were answered (a slow server is not "
        "offered less), over a pool of 64 HTTP keep-alive connections.",
        'Each event carries its send time in `data.stage` (`"<step>:<time_ns>"`); the '
        "latency is the subscriber's receive time minus that, on the same machine clock. "
        "It covers the HTTP request, the server's fan-out, the websocket frame and the "
        "client's read, including any time the event waited in a queue.",
        "After the last answer, a sub-step waits for every expected delivery, or until "
        f"none arrived for {QUIET_S:g} s, at most {args.drain_max:g} s. Deliveries/s is "
        "the deliveries of the step's events divided by the time from its first publish "
        "to its last delivery, so a server that falls behind is charged for its backlog.",
        "A server saturates at a rate when under 98% of the deliveries arrived in time, "
        "publishes failed or could not be sent, or subscribers were lost (high latency "
        "alone does not count: on a shared machine it also measures the neighbours). It "
        "is then not driven to higher rates, and its subscribers are closed so that its "
        "backlog does not load the machine during the other server's steps.",
        "The two servers run side by side for the whole run, each with its "
        f"{args.subscribers} subscribers, after one warm-up step each at "
        f"{args.warmup_rate} publishes/s.",
        "Baseline: `benchmarks/peers/plain_socketio.py`, a plain python-socketio "
        "`AsyncServer` (default in-memory manager) with a FastAPI endpoint doing "
        "`await sio.emit(type, data, room=room)`, under uvicorn, with no authentication, "
        "room rules, sequencing or history. Event loops in this run (seen from the "
        "processes' memory maps): "
        + ", ".join(f"{name} {loop}" for name, loop in log["loops"].items())
        + f" (`--baseline-loop {args.baseline_loop}`; by default the baseline uses uvloop, "
        "as `roomcast serve` does where uvloop is installed, so that the loop is not what "
        "is compared). roomcast: "
        "`roomcast serve` configured through `ROOMCAST_*` variables, with its per-connection "
        "rate limit and connect rate limit raised out of the way; subscribers authenticate "
        "with HS256 access tokens and join through the room rules.",
        "Subscribers: minimal Socket.IO v5 (Engine.IO v4) websocket clients on aiohttp, "
        f"spread over {args.workers} worker processes with their own uvloop event loops. "
        "A full `socketio.AsyncClient` per subscriber used about twice the CPU per "
        "received event in a side test on this machine, and the generator shares the "
        "server's two CPUs; before the steps, "
        "one real `socketio.AsyncClient` per server receives one event to check that "
        "both servers deliver what a standard client expects.",
    ):
        w(f"- {line}")
    w("")
    return "\n".join(out)


def public_command(command: str) -> str:
    """The command without `--raw FILE`, which only says where the raw figures went."""
    words = shlex.split(command)
    kept = [w for i, w in enumerate(words) if w != "--raw" and words[i - 1 : i] != ["--raw"]]
    return " ".join(shlex.quote(w) for w in kept if not w.startswith("--raw="))


def interpretation(args: argparse.Namespace, log: dict[str, Any]) -> list[str]:
    results: list[StepResult] = log["results"]
    ncpu = int(log.get("machine", {}).get("nproc") or os.cpu_count() or 1)
    by = {(r.server, r.rate): r for r in results}
    lines: list[str] = []
    for name in (BASELINE, ROOMCAST):
        steps = [r for r in results if r.server == name]
        if not steps:
            continue
        ok = [r for r in steps if not r.saturated]
        best = max(steps, key=lambda r: r.delivered_per_s)
        sat = next((r for r in steps if r.saturated), None)
        text = (
            f"{LABELS[name]}: at most {best.delivered_per_s:,.0f} deliveries/s "
            f"(at {best.rate} publishes/s)"
        )
        text += (
            f"; kept up with every rate up to {max(r.rate for r in ok)} publishes/s"
            if ok
            else "; did not keep up even at the lowest rate"
        )
        if sat:
            text += f"; saturated at {sat.rate} publishes/s ({describe_saturation(sat)})"
        else:
            text += "; did not saturate at the rates tried"
        lines.append(text + ".")
    both = [x for x in args.rates if (BASELINE, x) in by and (ROOMCAST, x) in by]
    clean = [x for x in both if not by[(BASELINE, x)].saturated]
    clean = [x for x in clean if not by[(ROOMCAST, x)].saturated]

    def ratios(attr: str, rates: list[int]) -> str:
        return ", ".join(
            f"{ratio(getattr(by[(ROOMCAST, x)], attr), getattr(by[(BASELINE, x)], attr))} at {x}/s"
            for x in rates
        )

    def trend(attr: str, rates: list[int]) -> str:
        """'roomcast lower from 100/s', grouping consecutive rates by the ratio's side."""
        groups: list[tuple[str, list[int]]] = []
        for x in rates:
            a, b = getattr(by[(ROOMCAST, x)], attr), getattr(by[(BASELINE, x)], attr)
            if not a or not b:
                continue
            side = "lower" if a / b < 0.9 else "higher" if a / b > 1.1 else "within 10%"
            if groups and groups[-1][0] == side:
                groups[-1][1].append(x)
            else:
                groups.append((side, [x]))
        parts = []
        for i, (side, xs) in enumerate(groups):
            at = (
                f"from {xs[0]}/s up"
                if i == len(groups) - 1 and len(xs) > 1
                else f"at {xs[0]}/s"
                if len(xs) == 1
                else f"from {xs[0]}/s to {xs[-1]}/s"
            )
            parts.append(f"{side} {at}" if side == "within 10%" else f"roomcast {side} {at}")
        return ", ".join(parts) or "no data"

    if clean:
        lines.append(
            "Where both kept up ("
            + ", ".join(f"{x}/s" for x in clean)
            + "), deliveries/s mostly follows the offered rate (both delivered everything; "
            "a server that queued more took longer to drain). There, roomcast/baseline "
            "server CPU per delivery: "
            + ratios("server_us_per_delivery", clean)
            + f" ({trend('server_us_per_delivery', clean)}); p50 latency: "
            + ratios("lat_p50_ms", clean)
            + f" ({trend('lat_p50_ms', clean)}); p99 latency: "
            + ratios("lat_p99_ms", clean)
            + f" ({trend('lat_p99_ms', clean)})."
        )
    if both:
        top = both[-1]
        b, r = by[(BASELINE, top)], by[(ROOMCAST, top)]
        lines.append(
            f"At {top} publishes/s, the highest rate both were driven at, roomcast "
            f"delivered {ratio(r.delivered_per_s, b.delivered_per_s)}x the baseline's "
            f"events per second, with p50 latency {ratio(r.lat_p50_ms, b.lat_p50_ms)}x "
            "the baseline's."
        )
    cpu_ratios = sorted(
        by[(ROOMCAST, x)].server_cpu_s
        * by[(BASELINE, x)].deliveries
        / (by[(BASELINE, x)].server_cpu_s * by[(ROOMCAST, x)].deliveries)
        for x in both
        if by[(BASELINE, x)].server_cpu_s and by[(ROOMCAST, x)].deliveries
    )
    median = cpu_ratios[len(cpu_ratios) // 2] if cpu_ratios else 1.0
    how = (
        "python-socketio's `emit` to a room encodes the packet once, then starts one "
        "asyncio task per recipient and waits for all of them (the baseline's HTTP answer "
        "waits for that too, hence its higher *HTTP p50*); roomcast's fan-out "
        "(`src/roomcast/transport/outlet.py` at the time of this run) appends the same "
        "encoded Engine.IO packet to each recipient's bounded queue, without a task per "
        "recipient"
    )
    if not cpu_ratios:
        pass
    elif median < 0.95:
        lines.append(
            "roomcast does more per publish than the baseline (API key, schema validation, "
            "sequencing, history) yet used less server CPU per delivery (median ratio "
            f"{median:.2f} over the rates both ran). The difference is in the fan-out: {how}. "
            f"With {args.subscribers} recipients the per-recipient cost dominates; the "
            "per-publish work weighs most at low rates."
        )
    elif median > 1.05:
        lines.append(
            "roomcast used more server CPU per delivery than the baseline: it does more per "
            "publish (API key, schema validation, sequencing, history), although its "
            f"fan-out itself is leaner: {how}."
        )
    else:
        lines.append(
            "Per delivery, the two servers cost about the same CPU: roomcast's extra work "
            "per publish (API key, schema validation, sequencing, history) is offset by a "
            f"leaner fan-out: {how}."
        )
    for res in results:
        if res.saturated:
            wall = res.wall_s
            total = res.machine_busy_s / wall
            cause = saturation_cause(res.server_cpu_s / wall, total / ncpu)
            lines.append(
                f"When {LABELS[res.server]} saturated ({res.rate} publishes/s), the machine "
                f"was {100 * total / ncpu:.0f}% busy: the server {res.server_cpu_s / wall:.2f} "
                f"cores, the load generator {res.gen_cpu_s / wall:.2f}, other work "
                f"{res.other_load:.2f}." + (f" {cause}" if cause else "")
            )
    gaps = sum(r.gaps + r.dups for r in results if r.server == ROOMCAST)
    lost = sum(r.subscribers - r.alive_after for r in results)
    errors = sum(r.http_errors for r in results)
    lines.append(
        f"Correctness under load: {errors} publish errors, {lost} subscribers lost, "
        f"{gaps} gaps or duplicates in roomcast's per-room sequence, over every step."
    )
    busiest = max((r.gen_busiest for r in results), default=0.0)
    others = [r.other_load for r in results]
    top_gen = max(results, key=lambda r: r.gen_cpu_s / r.wall_s, default=None)
    if top_gen is not None:
        lines.append(
            "No load-generator process was a bottleneck: the busiest used at most "
            f"{100 * busiest:.0f}% of a core in any step. Together they used up to "
            f"{top_gen.gen_cpu_s / top_gen.wall_s:.2f} cores ({top_gen.server} at "
            f"{top_gen.rate} publishes/s), on the same {ncpu} CPUs as the server under test "
            f"and other work (from {min(others):.2f} to {max(others):.2f} cores during the "
            "steps). At the top rates the server and its load compete for CPU, so absolute "
            "figures depend on this machine and move from run to run; the ratios, from "
            "steps alternated under the same conditions, are the figures to compare."
        )
    return lines


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Fan-out benchmark: roomcast vs plain python-socketio, one instance, one room."
    )
    p.add_argument("--quick", action="store_true", help="a ~40 s run: fewer, shorter steps")
    p.add_argument(
        "--output",
        type=Path,
        default=None,
        help="write the Markdown report there (e.g. docs/benchmarks.md)",
    )
    p.add_argument("--subscribers", type=int, default=200)
    p.add_argument("--workers", type=int, default=2, help="subscriber processes")
    p.add_argument(
        "--rates",
        type=lambda s: [int(x) for x in s.split(",")],
        default=None,
        help="publishes per second, comma-separated (default 25,50,100,150,200,300,400,600)",
    )
    p.add_argument("--duration", type=float, default=None, help="seconds of publishing per step")
    p.add_argument(
        "--drain-max",
        type=float,
        default=None,
        help="at most this long to wait for late deliveries after a step",
    )
    p.add_argument(
        "--servers", default=f"{BASELINE},{ROOMCAST}", help="which servers to run (default both)"
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="alternating sub-steps per server and rate (default 3; 1 with --quick)",
    )
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=None,
        help="wait up to this many seconds for other work on the machine to use under "
        f"{QUIET_LOAD} cores before the steps (default 30; 0 with --quick)",
    )
    p.add_argument(
        "--raw",
        type=Path,
        default=None,
        help="write the raw figures there as JSON (default: in the run's temporary directory)",
    )
    p.add_argument(
        "--render",
        type=Path,
        default=None,
        metavar="RAW",
        help="run nothing: render the report of a saved --raw file (to --output or stdout)",
    )
    p.add_argument(
        "--baseline-loop",
        default="uvloop",
        choices=["asyncio", "uvloop", "auto"],
        help="event loop of the baseline server (default uvloop, as under roomcast serve)",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.rates = args.rates or [25, 75, 200]
        args.duration = args.duration or 2.5
        args.drain_max = args.drain_max or 3.0
        args.deadline = 40.0
        args.warmup_s = 1.0
        args.rounds = args.rounds or 1
        args.wait_quiet = 0.0 if args.wait_quiet is None else args.wait_quiet
    else:
        args.rates = args.rates or [25, 50, 100, 150, 200, 300, 400, 600]
        args.duration = args.duration or 6.0
        args.drain_max = args.drain_max or 6.0
        args.deadline = 170.0
        args.warmup_s = 2.0
        args.rounds = args.rounds or 3
        args.wait_quiet = 30.0 if args.wait_quiet is None else args.wait_quiet
    args.warmup_rate = 20
    args.server_names = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = set(args.server_names) - {BASELINE, ROOMCAST}
    if unknown:
        p.error(f"unknown servers {sorted(unknown)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:
        saved_args, log, command = load_raw(args.render)
        saved_args.output = args.output
        emit_report(saved_args, log, command)
        return 0
    # SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C, so the finally blocks stop the servers.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    command = ".venv/bin/python benchmarks/fanout.py" + "".join(
        " " + shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)
    )
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    logdir = Path(tempfile.mkdtemp(prefix="roomcast-bench-"))
    servers = make_servers(args.server_names, logdir, args.baseline_loop)
    workers: list[WorkerHandle] = []
    started = time.monotonic()
    try:
        for s in servers.values():
            s.start()
        for s in servers.values():
            s.wait_ready()
            print(
                f"[server] {s.name} ready on {s.base} (pid {s.proc.pid if s.proc else '?'}, "
                f"log {s.log_path})",
                flush=True,
            )
        ctx = mp.get_context("spawn")
        workers = [WorkerHandle(ctx) for _ in range(args.workers)]
        log = asyncio.run(run(args, servers, workers))
    finally:
        for w in workers:
            w.stop()
        for s in servers.values():
            s.stop()
    log["machine"] = machine()
    log["when"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    raw = args.raw or logdir / "fanout.json"
    save_raw(raw, args, log, command)
    print(f"[done] raw results in {raw}", flush=True)
    emit_report(args, log, command)
    print(f"[done] {time.monotonic() - started:.0f}s total")
    return 0


RAW_ARGS = (
    "rates", "duration", "rounds", "drain_max", "subscribers", "workers", "wait_quiet",
    "warmup_rate", "warmup_s", "deadline", "baseline_loop", "quick",
)  # fmt: skip


def save_raw(path: Path, args: argparse.Namespace, log: dict[str, Any], command: str) -> None:
    """The figures of a run, enough to render its report again (`--render`)."""
    results = []
    for res in log["results"]:
        fields = dataclasses.asdict(res)
        del fields["lat_us"], fields["http_lat_s"]  # the percentiles are kept
        results.append(fields)
    data = {
        "command": command,
        "args": {name: getattr(args, name) for name in RAW_ARGS},
        "log": {**log, "results": results},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))


def load_raw(path: Path) -> tuple[argparse.Namespace, dict[str, Any], str]:
    data = json.loads(path.read_text())
    log = data["log"]
    log["results"] = [StepResult(**fields) for fields in log["results"]]
    return argparse.Namespace(**data["args"]), log, data["command"]


def emit_report(args: argparse.Namespace, log: dict[str, Any], command: str) -> None:
    report = render(args, log, command)
    print()
    print(report)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(report)
        print(f"[done] wrote {args.output}")


if __name__ == "__main__":
    sys.exit(main())
