"""Connection benchmark: idle-connection memory and connect rate, three servers.

For roomcast (``roomcast serve``), a plain python-socketio server
(``benchmarks/peers/plain_socketio.py``) and a Node socket.io 4.8 server
(``benchmarks/peers/node/server.mjs``), one instance each on 127.0.0.1, one server
at a time, this measures in the same run:

1. the connect rate: N new Socket.IO connections (websocket transport, Engine.IO
   open packet, Socket.IO ``40`` connect with auth where the server needs it, up to
   the ``40{"sid":...}`` ack), with a bounded number of attempts in flight;
2. idle memory: the server's RSS (``VmRSS`` from ``/proc/<pid>/status``, summed
   over its process tree) once those N connections are established and idle, minus
   its RSS just before connecting, per 1000 connections.

Every round starts each server afresh (so freed memory of an earlier round does not
hide the cost), warms it up with a few connections, then connects N, holds them,
samples the RSS, and closes them. Rounds alternate the server order.

The load generator is lean Socket.IO v5 / Engine.IO v4 websocket clients on aiohttp,
spread over worker processes with their own event loops; it answers pings and
reports its own CPU. Clients do not offer permessage-deflate (roomcast and Node
socket.io do not compress by default; the plain peer would otherwise accept it).

    .venv/bin/python benchmarks/connections.py [--connections 2000] [--concurrency 50]
        [--rounds 3] [--servers roomcast,plain,node] [--output FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import multiprocessing as mp
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from importlib import metadata
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
PLAIN_PEER = ROOT / "benchmarks" / "peers" / "plain_socketio.py"
NODE_DIR = ROOT / "benchmarks" / "peers" / "node"
HOST = "127.0.0.1"
JWT_SECRET = "bench-secret-not-for-production-0123456789abcdef"
API_KEY = "bench-api-key"

ROOMCAST = "roomcast"
PLAIN = "plain"
NODE = "node"
SERVERS = (ROOMCAST, PLAIN, NODE)
LABELS = {ROOMCAST: "roomcast", PLAIN: "plain python-socketio", NODE: "Node socket.io"}

READY_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 15.0  # one connection attempt, handshake included
PHASE_TIMEOUT_S = 120.0  # one worker command
STOP_TIMEOUT_S = 10.0
WARMUP_CONNECTIONS = 50


# --------------------------------------------------------------------------- utilities


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def port_is_listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        return s.connect_ex((HOST, port)) == 0


def process_tree(pid: int) -> list[int]:
    """pid and its descendants (via /proc/<pid>/task/*/children)."""
    seen: list[int] = []
    todo = [pid]
    for _ in range(1000):  # bounded walk
        if not todo:
            break
        current = todo.pop()
        if current in seen:
            continue
        seen.append(current)
        task_dir = Path(f"/proc/{current}/task")
        with contextlib.suppress(OSError):
            for task in task_dir.iterdir():
                with contextlib.suppress(OSError):
                    todo.extend(int(c) for c in (task / "children").read_text().split())
    return seen


def rss_kib(pid: int) -> int:
    total = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
    return total


def cpu_seconds(pid: int) -> float:
    """utime + stime of pid and its descendants."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for member in process_tree(pid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = Path(f"/proc/{member}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def command_output(cmd: list[str]) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=True)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() or "unknown"


def version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def node_package_version(name: str) -> str:
    with contextlib.suppress(OSError, ValueError, KeyError):
        data = json.loads((NODE_DIR / "node_modules" / name / "package.json").read_text())
        return str(data["version"])
    return "?"


def ensure_node_peer() -> None:
    """Install the Node peer's dependencies on first use."""
    if (NODE_DIR / "node_modules" / "socket.io" / "package.json").exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm not found: needed for the Node socket.io peer")
    has_lock = (NODE_DIR / "package-lock.json").exists()
    cmd = [npm, "ci" if has_lock else "install", "--no-audit", "--no-fund"]
    print(f"installing the Node peer: {' '.join(cmd[1:])} in {NODE_DIR}", flush=True)
    subprocess.run(cmd, cwd=NODE_DIR, check=True, timeout=300)


# --------------------------------------------------------------------------- servers


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    def command(self) -> tuple[list[str], dict[str, str]]:
        env = dict(os.environ)
        if self.name == ROOMCAST:
            for key in [k for k in env if k.startswith("ROOMCAST_")]:
                env.pop(key)
            env.update(
                ROOMCAST_HOST=HOST,
                ROOMCAST_PORT=str(self.port),
                ROOMCAST_JWT_SECRET=JWT_SECRET,
                ROOMCAST_API_KEYS=API_KEY,
                ROOMCAST_LOG_LEVEL="warning",
                ROOMCAST_CONNECT_RATE_PER_ADDRESS="0",
                ROOMCAST_MAX_CONNECTIONS_PER_USER="100000",
            )
            return [str(VENV_BIN / "roomcast"), "serve"], env
        if self.name == PLAIN:
            cmd = [sys.executable, str(PLAIN_PEER), str(self.port)]
            return [*cmd, "--host", HOST, "--loop", "uvloop"], env
        node = shutil.which("node") or "node"
        return [node, str(NODE_DIR / "server.mjs"), str(self.port), "--host", HOST], env

    def start(self, log_dir: Path) -> None:
        cmd, env = self.command()
        self.log_path = log_dir / f"{self.name}-{self.port}.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
            )
        url = f"http://{HOST}:{self.port}/healthz"
        deadline = time.monotonic() + READY_TIMEOUT_S
        for _ in range(int(READY_TIMEOUT_S / 0.1) + 1):  # bounded readiness poll
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log_tail()}")
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(url, timeout=2) as resp,
            ):
                if resp.status == 200:
                    return
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        raise RuntimeError(
            f"{self.name} not ready after {READY_TIMEOUT_S:.0f} s:\n{self.log_tail()}"
        )

    def log_tail(self) -> str:
        if self.log_path is None:
            return ""
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-20:])
        return ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        children = process_tree(proc.pid)[1:]
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT_S)
        for child in children:  # none expected; by pid, only this server's own
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(child, signal.SIGKILL)


# --------------------------------------------------------------------------- workers


class HandshakeError(Exception):
    pass


async def _handshake(
    session: aiohttp.ClientSession, url: str, auth: str
) -> aiohttp.ClientWebSocketResponse:
    ws = await session.ws_connect(url, max_msg_size=0, autoping=True, compress=0)
    try:
        opened = False
        for _ in range(8):  # open packet, then the connect ack; pings answered in between
            msg = await ws.receive()
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise HandshakeError(f"unexpected frame {msg.type.name}")
            data: str = msg.data
            if data == "2":
                await ws.send_str("3")
            elif data.startswith("0") and not opened:
                opened = True
                await ws.send_str("40" + auth)
            elif data.startswith("40") and opened:
                return ws
            elif data.startswith("44"):
                raise HandshakeError(f"connect refused: {data[:120]}")
            else:
                raise HandshakeError(f"unexpected packet {data[:60]!r}")
        raise HandshakeError("no connect ack")
    except BaseException:
        await ws.close()
        raise


async def _keep_alive(ws: aiohttp.ClientWebSocketResponse) -> None:
    """Answer Engine.IO pings until the connection closes."""
    async for msg in ws:
        if msg.type == aiohttp.WSMsgType.TEXT and msg.data == "2":
            await ws.send_str("3")


class Worker:
    def __init__(self) -> None:
        self.session: aiohttp.ClientSession | None = None
        self.sockets: list[aiohttp.ClientWebSocketResponse] = []
        self.readers: list[asyncio.Task[None]] = []

    async def connect(self, cmd: dict[str, Any]) -> dict[str, Any]:
        if self.session is None:
            connector = aiohttp.TCPConnector(limit=0, force_close=True)
            self.session = aiohttp.ClientSession(connector=connector)
        session = self.session
        url = cmd["url"]
        indices = list(cmd["indices"])
        if cmd["auth"]:
            from roomcast.auth.tokens import mint_access_token

            auths = [
                json.dumps({"token": mint_access_token(JWT_SECRET, f"bench-{cmd['tag']}-{i}")})
                for i in indices
            ]
        else:
            auths = ["" for _ in indices]
        pending = list(zip(indices, auths, strict=True))
        pending.reverse()
        errors: list[str] = []
        ok = 0
        delay = cmd["start_at"] - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        cpu0 = time.process_time()
        t0 = time.monotonic()

        async def lane() -> None:
            nonlocal ok
            for _ in range(len(indices)):  # bounded: at most one attempt per index
                if not pending:
                    return
                _, auth = pending.pop()
                try:
                    async with asyncio.timeout(CONNECT_TIMEOUT_S):
                        ws = await _handshake(session, url, auth)
                except (TimeoutError, aiohttp.ClientError, HandshakeError, OSError) as exc:
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])
                    continue
                ok += 1
                self.sockets.append(ws)
                self.readers.append(asyncio.create_task(_keep_alive(ws)))

        await asyncio.gather(*(lane() for _ in range(cmd["concurrency"])))
        t1 = time.monotonic()
        return {
            "ok": ok,
            "errors": len(errors),
            "error_samples": errors[:3],
            "t0": t0,
            "t1": t1,
            "cpu": time.process_time() - cpu0,
        }

    async def status(self) -> dict[str, Any]:
        return {"open": sum(1 for ws in self.sockets if not ws.closed)}

    async def close(self) -> dict[str, Any]:
        cpu0 = time.process_time()
        sockets, self.sockets = self.sockets, []
        readers, self.readers = self.readers, []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(30):
                await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        return {"closed": len(sockets), "cpu": time.process_time() - cpu0}

    async def shutdown(self) -> None:
        await self.close()
        if self.session is not None:
            await self.session.close()
            self.session = None


async def _worker_main(conn: Connection) -> None:
    worker = Worker()
    loop = asyncio.get_running_loop()
    try:
        for _ in range(10_000):  # bounded command loop
            cmd: dict[str, Any] = await loop.run_in_executor(None, conn.recv)
            op = cmd["op"]
            if op == "connect":
                conn.send(await worker.connect(cmd))
            elif op == "status":
                conn.send(await worker.status())
            elif op == "close":
                conn.send(await worker.close())
            elif op == "stop":
                break
    finally:
        await worker.shutdown()
        conn.send({"stopped": True})


def worker_entry(conn: Connection) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    del soft
    sys.path.insert(0, str(ROOT / "src"))
    try:
        import uvloop

        uvloop.run(_worker_main(conn))
    except ImportError:
        asyncio.run(_worker_main(conn))


@dataclass
class Pool:
    size: int
    procs: list[Any] = field(default_factory=list)
    conns: list[Connection] = field(default_factory=list)

    def start(self) -> None:
        ctx = mp.get_context("spawn")
        for _ in range(self.size):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=worker_entry, args=(child,), daemon=True)
            proc.start()
            child.close()
            self.procs.append(proc)
            self.conns.append(parent)

    def ask_all(self, cmds: list[dict[str, Any]], timeout: float) -> list[dict[str, Any]]:
        for conn, cmd in zip(self.conns, cmds, strict=True):
            conn.send(cmd)
        answers = []
        deadline = time.monotonic() + timeout
        for conn in self.conns:
            if not conn.poll(max(0.0, deadline - time.monotonic())):
                raise RuntimeError(f"load-generator worker gave no answer in {timeout:.0f} s")
            answers.append(conn.recv())
        return answers

    def stop(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(OSError, BrokenPipeError):
                conn.send({"op": "stop"})
        for conn in self.conns:
            with contextlib.suppress(OSError, EOFError):
                if conn.poll(15):
                    conn.recv()
        for proc in self.procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)


# --------------------------------------------------------------------------- measurement


@dataclass
class Measurement:
    server: str
    round: int
    connections: int
    ok: int
    errors: int
    error_samples: list[str]
    seconds: float
    rate: float
    rss_before_kib: int
    rss_idle_kib: int
    rss_closed_kib: int
    open_at_sample: int
    server_cpu: float  # CPU seconds during the connect phase
    generator_cpu: float
    busiest_worker_cpu: float

    @property
    def cpu_ms_per_connection(self) -> float:
        return self.server_cpu / self.ok * 1000 if self.ok > 0 else float("nan")

    @property
    def mb_per_1000(self) -> float:
        if self.ok <= 0:
            return float("nan")
        return (self.rss_idle_kib - self.rss_before_kib) / 1024 * 1000 / self.ok


def run_connects(
    pool: Pool, url: str, auth: bool, indices: range, concurrency: int, tag: str
) -> tuple[list[dict[str, Any]], float]:
    parts = [list(indices[i :: pool.size]) for i in range(pool.size)]
    lanes = [
        max(1, concurrency // pool.size + (1 if i < concurrency % pool.size else 0))
        for i in range(pool.size)
    ]
    start_at = time.monotonic() + 0.5
    cmds = [
        {
            "op": "connect",
            "url": url,
            "auth": auth,
            "indices": part,
            "concurrency": lane,
            "start_at": start_at,
            "tag": tag,
        }
        for part, lane in zip(parts, lanes, strict=True)
    ]
    answers = pool.ask_all(cmds, PHASE_TIMEOUT_S)
    seconds = max(a["t1"] for a in answers) - min(a["t0"] for a in answers)
    return answers, seconds


def measure(
    server: Server, pool: Pool, n: int, concurrency: int, settle: float, round_no: int
) -> Measurement:
    url = f"ws://{HOST}:{server.port}/socket.io/?EIO=4&transport=websocket"
    auth = server.name == ROOMCAST
    tag = f"{round_no}"
    # Warm-up: a few connections opened and closed, so that lazily imported code and
    # first-use allocations are in the "before" figure.
    run_connects(pool, url, auth, range(WARMUP_CONNECTIONS), concurrency, f"w{tag}")
    pool.ask_all([{"op": "close"}] * pool.size, PHASE_TIMEOUT_S)
    time.sleep(1.0)
    rss_before = rss_kib(server.pid)
    cpu_before = cpu_seconds(server.pid)
    answers, seconds = run_connects(pool, url, auth, range(n), concurrency, tag)
    server_cpu = cpu_seconds(server.pid) - cpu_before
    ok = sum(a["ok"] for a in answers)
    errors = sum(a["errors"] for a in answers)
    samples = [s for a in answers for s in a["error_samples"]][:3]
    time.sleep(settle)  # idle: no traffic but the (rare) Engine.IO pings
    readings = []
    for _ in range(3):
        readings.append(rss_kib(server.pid))
        time.sleep(0.5)
    rss_idle = int(statistics.median(readings))
    still_open = sum(a["open"] for a in pool.ask_all([{"op": "status"}] * pool.size, 30))
    pool.ask_all([{"op": "close"}] * pool.size, PHASE_TIMEOUT_S)
    time.sleep(0.5)
    rss_closed = rss_kib(server.pid)
    gen_cpu = [a["cpu"] for a in answers]
    return Measurement(
        server=server.name,
        round=round_no,
        connections=n,
        ok=ok,
        errors=errors,
        error_samples=samples,
        seconds=seconds,
        rate=ok / seconds if seconds > 0 else float("nan"),
        rss_before_kib=rss_before,
        rss_idle_kib=rss_idle,
        rss_closed_kib=rss_closed,
        open_at_sample=still_open,
        server_cpu=server_cpu,
        generator_cpu=sum(gen_cpu),
        busiest_worker_cpu=max(gen_cpu),
    )


# --------------------------------------------------------------------------- report


def fmt(value: float, digits: int = 1) -> str:
    if value != value:  # NaN
        return "—"
    return f"{value:,.{digits}f}"


def summarize(results: list[Measurement], names: list[str]) -> dict[str, dict[str, float]]:
    summary: dict[str, dict[str, float]] = {}
    for name in names:
        runs = [m for m in results if m.server == name]
        if not runs:
            continue
        summary[name] = {
            "mb": statistics.median(m.mb_per_1000 for m in runs),
            "rate": statistics.median(m.rate for m in runs),
            "cpu": statistics.median(m.cpu_ms_per_connection for m in runs),
            "mb_min": min(m.mb_per_1000 for m in runs),
            "mb_max": max(m.mb_per_1000 for m in runs),
            "rate_min": min(m.rate for m in runs),
            "rate_max": max(m.rate for m in runs),
        }
    return summary


def ratio(a: dict[str, dict[str, float]], key: str, other: str) -> str:
    if ROOMCAST not in a or other not in a or not a[other][key]:
        return "—"
    return f"{a[ROOMCAST][key] / a[other][key]:.2f}"


def render(
    results: list[Measurement], names: list[str], args: argparse.Namespace, info: dict[str, str]
) -> str:
    summary = summarize(results, names)
    lines = [
        "# Benchmarks: idle connections and connect rate",
        "",
        "Three Socket.IO servers, one instance each, on 127.0.0.1, in memory (no Redis), "
        "measured one after the other in the same run: roomcast (`roomcast serve`), a plain "
        "python-socketio server (`benchmarks/peers/plain_socketio.py`, uvloop) and a Node "
        "socket.io server (`benchmarks/peers/node/server.mjs`). For each: the server's memory "
        f"per 1000 idle websocket connections ({args.connections:,} held open), and the rate "
        f"of new connections with {args.concurrency} connection attempts in flight.",
        "",
        "Command:",
        "",
        "```",
        ".venv/bin/python benchmarks/connections.py --output docs/benchmarks-connections.md",
        "```",
        "",
        "`--help` lists the knobs (connections, concurrency, rounds, servers, workers). "
        "The Node peer's dependencies are installed with `npm ci` on first use.",
        "",
        f"This run: {info['date']}, {info['duration']}. Machine: {info['nproc']} CPUs "
        f"({info['cpu']}), Linux {info['kernel']}, Python {info['python']}, Node "
        f"{info['node']}; python-socketio {info['python-socketio']}, python-engineio "
        f"{info['python-engineio']}, uvicorn {info['uvicorn']}, websockets {info['websockets']}, "
        f"aiohttp {info['aiohttp']}, roomcast {info['roomcast']}, socket.io (Node) "
        f"{info['socket.io']}, engine.io (Node) {info['engine.io']}, ws {info['ws']}. "
        "Server and load generator share these CPUs.",
        "",
        "## Results",
        "",
        f"Median over {args.rounds} round(s); each round starts every server afresh. "
        "MB per 1000 idle connections: lower is better; connections/s: higher is better.",
        "",
        "| server | MB per 1000 idle connections | connections/s | server CPU ms per connection |",
        "|---|---:|---:|---:|",
    ]
    for name in names:
        if name in summary:
            s = summary[name]
            lines.append(
                f"| {LABELS[name]} | {fmt(s['mb'], 2)} | {fmt(s['rate'], 0)} | {fmt(s['cpu'], 2)} |"
            )
    lines += [
        "",
        "| ratio | MB per 1000 idle connections | connections/s | server CPU ms per connection |",
        "|---|---:|---:|---:|",
    ]
    for other in (PLAIN, NODE):
        lines.append(
            f"| roomcast / {LABELS[other]} | {ratio(summary, 'mb', other)} "
            f"| {ratio(summary, 'rate', other)} | {ratio(summary, 'cpu', other)} |"
        )
    lines += [
        "",
        "*server CPU ms per connection*: the server's CPU time during the connect phase "
        "divided by the connections made (handshake, connect handler, greeting).",
        "",
        "Every round:",
        "",
        "| round | server | connected | errors | seconds | connections/s | RSS before MB "
        "| RSS idle MB | MB / 1000 | RSS after close MB | open at sample | server CPU "
        "| CPU ms / conn | generator CPU | busiest worker |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in results:
        cores = m.server_cpu / m.seconds if m.seconds > 0 else float("nan")
        gen = m.generator_cpu / m.seconds if m.seconds > 0 else float("nan")
        busiest = m.busiest_worker_cpu / m.seconds if m.seconds > 0 else float("nan")
        lines.append(
            f"| {m.round} | {LABELS[m.server]} | {m.ok:,}/{m.connections:,} | {m.errors} "
            f"| {m.seconds:.2f} | {fmt(m.rate, 0)} | {m.rss_before_kib / 1024:.1f} "
            f"| {m.rss_idle_kib / 1024:.1f} | {fmt(m.mb_per_1000, 2)} "
            f"| {m.rss_closed_kib / 1024:.1f} | {m.open_at_sample:,} | {fmt(cores, 2)} "
            f"| {fmt(m.cpu_ms_per_connection, 2)} "
            f"| {fmt(gen, 2)} | {busiest:.0%} |"
        )
    lines += [
        "",
        "*server CPU*, *generator CPU*: CPU seconds during the connect phase divided by its "
        "length (1.00 = one core); the generator is its worker processes together, *busiest* "
        "the most loaded one (near 100% it would be the bottleneck). *open at sample*: client "
        "connections still open after the RSS was sampled.",
    ]
    errors = [m for m in results if m.errors]
    if errors:
        lines += ["", "Connection errors seen:", ""]
        for m in errors:
            lines.append(f"- {LABELS[m.server]}, round {m.round}: {'; '.join(m.error_samples)}")
    lines += ["", INTERPRETATION_MARKER, ""]
    return "\n".join(lines)


INTERPRETATION_MARKER = "<!-- interpretation -->"


def machine_info(started: float) -> dict[str, str]:
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "duration": f"{time.monotonic() - started:.0f} s",
        "nproc": str(os.cpu_count()),
        "cpu": cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": command_output([shutil.which("node") or "node", "--version"]).lstrip("v"),
        "python-socketio": version("python-socketio"),
        "python-engineio": version("python-engineio"),
        "uvicorn": version("uvicorn"),
        "websockets": version("websockets"),
        "aiohttp": version("aiohttp"),
        "roomcast": version("roomcast"),
        "socket.io": node_package_version("socket.io"),
        "engine.io": node_package_version("engine.io"),
        "ws": node_package_version("ws"),
    }


def print_table(results: list[Measurement], names: list[str]) -> None:
    summary = summarize(results, names)
    print()
    print(f"{'server':<24}{'MB/1000 idle':>14}{'conn/s':>10}{'CPU ms/conn':>13}   (median)")
    for name in names:
        if name not in summary:
            continue
        s = summary[name]
        print(
            f"{LABELS[name]:<24}{fmt(s['mb'], 2):>14}{fmt(s['rate'], 0):>10}"
            f"{fmt(s['cpu'], 2):>13}   range: MB {fmt(s['mb_min'], 2)}-{fmt(s['mb_max'], 2)}, "
            f"conn/s {fmt(s['rate_min'], 0)}-{fmt(s['rate_max'], 0)}"
        )
    for other in (PLAIN, NODE):
        print(
            f"roomcast / {LABELS[other]}: memory {ratio(summary, 'mb', other)}, "
            f"connect rate {ratio(summary, 'rate', other)}, "
            f"server CPU per connection {ratio(summary, 'cpu', other)}"
        )


def write_output(path: Path, text: str) -> None:
    """Write the report, keeping a hand-written interpretation already in the file."""
    kept = ""
    if path.exists():
        old = path.read_text()
        if INTERPRETATION_MARKER in old:
            kept = old.split(INTERPRETATION_MARKER, 1)[1].strip()
    if kept:
        text = text.rstrip("\n") + "\n" + kept + "\n"
    path.write_text(text)


def raise_nofile() -> None:
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=2000, help="connections per server")
    parser.add_argument("--concurrency", type=int, default=50, help="attempts in flight")
    parser.add_argument("--rounds", type=int, default=3, help="fresh-server rounds")
    parser.add_argument("--workers", type=int, default=2, help="load-generator processes")
    parser.add_argument("--settle", type=float, default=2.0, help="idle seconds before RSS")
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated subset")
    parser.add_argument("--output", type=Path, default=None, help="write a Markdown report")
    parser.add_argument("--json", type=Path, default=None, help="write raw results as JSON")
    args = parser.parse_args()
    names = [n.strip() for n in args.servers.split(",") if n.strip()]
    unknown = [n for n in names if n not in SERVERS]
    if unknown or not names:
        parser.error(f"unknown server(s) {unknown}; choose from {', '.join(SERVERS)}")
    if args.connections < 1 or args.concurrency < 1 or args.rounds < 1 or args.workers < 1:
        parser.error("--connections, --concurrency, --rounds and --workers must be >= 1")
    raise_nofile()
    if NODE in names:
        ensure_node_peer()

    started = time.monotonic()
    log_dir = Path(tempfile.mkdtemp(prefix="roomcast-bench-connections-"))
    results: list[Measurement] = []
    pool = Pool(args.workers)
    started_servers: list[Server] = []
    try:
        pool.start()
        for round_no in range(1, args.rounds + 1):
            order = names if round_no % 2 else list(reversed(names))
            for name in order:
                server = Server(name, free_port())
                started_servers.append(server)
                try:
                    server.start(log_dir)
                    m = measure(
                        server, pool, args.connections, args.concurrency, args.settle, round_no
                    )
                finally:
                    server.stop()
                results.append(m)
                print(
                    f"round {round_no} {LABELS[name]:<22} {m.ok}/{m.connections} connected "
                    f"({m.errors} errors) in {m.seconds:.2f} s = {m.rate:,.0f}/s; "
                    f"RSS {m.rss_before_kib / 1024:.1f} -> {m.rss_idle_kib / 1024:.1f} MB "
                    f"= {m.mb_per_1000:.2f} MB/1000; generator CPU "
                    f"{m.generator_cpu / m.seconds:.2f} cores",
                    flush=True,
                )
    finally:
        pool.stop()
        for server in started_servers:
            server.stop()
    leftovers = [s for s in started_servers if s.proc is not None and s.proc.poll() is None]
    leftovers_ports = [s.port for s in started_servers if port_is_listening(s.port)]
    alive_workers = [p.pid for p in pool.procs if p.is_alive()]
    if leftovers or leftovers_ports or alive_workers:
        print(
            f"WARNING: still running: servers {[s.pid for s in leftovers]}, ports "
            f"{leftovers_ports}, workers {alive_workers}",
            file=sys.stderr,
        )
    else:
        print("all servers and workers stopped; no port still listening")
    shutil.rmtree(log_dir, ignore_errors=True)

    print_table(results, names)
    if args.json:
        args.json.write_text(json.dumps([m.__dict__ for m in results], indent=2))
    if args.output:
        text = render(results, names, args, machine_info(started))
        write_output(args.output, text)
        print(f"wrote {args.output}")
    failed = any(m.ok < m.connections for m in results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
