"""The servers under test, launched the same way: one process per instance.

- roomcast: `roomcast serve` through benchmarks/roomcast_launcher.py (which answers
  SIGUSR1 with its task count and heap), configured through ROOMCAST_* variables, with
  its per-connection and per-address rate limits raised out of the benchmark's way;
  clients authenticate with an HS256 access token. Two kinds: `roomcast` runs with
  ROOMCAST_ENGINE=native (roomcast's own Engine.IO engine), `roomcast-psio` with
  ROOMCAST_ENGINE=python-socketio (python-engineio's).
- plain: `benchmarks/peers/plain_socketio.py`, python-socketio's AsyncServer with
  AsyncRedisManager, under uvicorn with uvloop (as `roomcast serve` runs).
- node: `benchmarks/peers/node/server.mjs`, socket.io 4.8 with @socket.io/redis-adapter.
- floor, floor-write: `benchmarks/peers/floor.py`, raw uvloop (--mode cork, write).

All answer `GET /healthz`, take `POST /api/v1/publish {room, type, data}` and a
`join {room}` event acked with `{ok: true}`. A client publishes with roomcast's
`annotation_update {room, data}` (roomcast) or the peers' `publish {room, type, data}`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from .procs import HOST, Process, Processes, free_port, pinned, wait_for

ROOT = Path(__file__).resolve().parents[2]
PLAIN_PEER = ROOT / "benchmarks" / "peers" / "plain_socketio.py"
FLOOR_PEER = ROOT / "benchmarks" / "peers" / "floor.py"
LAUNCHER = ROOT / "benchmarks" / "roomcast_launcher.py"
NODE_DIR = ROOT / "benchmarks" / "peers" / "node"
JWT_SECRET = "bench-secret-not-for-production-0123456789abcdef"
API_KEY = "bench-api-key"

ROOMCAST, ROOMCAST_PSIO, NODE, PLAIN = "roomcast", "roomcast-psio", "node", "plain"
FLOOR, FLOOR_WRITE = "floor", "floor-write"
SERVERS = (ROOMCAST, ROOMCAST_PSIO, NODE, PLAIN, FLOOR, FLOOR_WRITE)
LABELS = {
    ROOMCAST: "roomcast",
    ROOMCAST_PSIO: "roomcast (python-socketio engine)",
    NODE: "Node socket.io",
    PLAIN: "plain python-socketio",
    FLOOR: "floor (corked)",
    FLOOR_WRITE: "floor (write per recipient)",
}
ENGINES = {"native": ROOMCAST, "python-socketio": ROOMCAST_PSIO}  # ROOMCAST_ENGINE values
ENGINE_OF = {kind: engine for engine, kind in ENGINES.items()}


def is_roomcast(kind: str) -> bool:
    return kind in ENGINE_OF


@dataclass
class Instance:
    """One running server process on HOST:port."""

    kind: str
    port: int
    proc: Process
    stats_file: Path | None = None  # where the roomcast launcher answers SIGUSR1

    @property
    def pid(self) -> int:
        return self.proc.pid


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/healthz", timeout=1) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _command(
    kind: str, port: int, redis_url: str, key_prefix: str, stats_file: Path | None
) -> tuple[list[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROOMCAST_")}
    if is_roomcast(kind):
        env.update(
            ROOMCAST_ENGINE=ENGINE_OF[kind],
            BENCH_STATS_FILE=str(stats_file or ""),
            ROOMCAST_HOST=HOST,
            ROOMCAST_PORT=str(port),
            ROOMCAST_REDIS_URL=redis_url,
            ROOMCAST_KEY_PREFIX=key_prefix,
            ROOMCAST_JWT_SECRET=JWT_SECRET,
            ROOMCAST_API_KEYS=API_KEY,
            ROOMCAST_RATE_LIMIT_PER_SECOND="1000000",
            ROOMCAST_RATE_LIMIT_BURST="1000000",
            ROOMCAST_CONNECT_RATE_PER_ADDRESS="0",
            ROOMCAST_MAX_CONNECTIONS_PER_USER="100000",
            ROOMCAST_LOG_LEVEL="warning",
        )
        return [sys.executable, str(LAUNCHER)], env
    if kind == PLAIN:
        cmd = [sys.executable, str(PLAIN_PEER), str(port), "--host", HOST, "--loop", "uvloop"]
        return [*cmd, "--redis", redis_url], env
    if kind in (FLOOR, FLOOR_WRITE):
        mode = "cork" if kind == FLOOR else "write"
        cmd = [sys.executable, str(FLOOR_PEER), str(port), "--host", HOST, "--mode", mode]
        return [*cmd, "--redis", redis_url], env
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node not found: needed for the Node socket.io peer")
    cmd = [node, str(NODE_DIR / "server.mjs"), str(port), "--host", HOST, "--redis", redis_url]
    return cmd, env


def start_instance(
    procs: Processes, kind: str, redis_url: str, *, cpu: int | None, name: str, key_prefix: str
) -> Instance:
    """Start one instance of `kind` on a free port, pinned to `cpu`, and wait for /healthz."""
    port = free_port()
    stats_file = procs.logdir / f"{name}.stats.json" if is_roomcast(kind) else None
    cmd, env = _command(kind, port, redis_url, key_prefix, stats_file)
    proc = procs.start(name, pinned(cmd, cpu), env=env, cwd=ROOT)
    wait_for(lambda: _healthy(port), "healthy /healthz", proc, timeout=60)
    return Instance(kind, port, proc, stats_file)


def ensure_node_peer() -> None:
    """`npm ci` the Node peer's dependencies on first use (from its package-lock.json)."""
    if (NODE_DIR / "node_modules" / "@socket.io" / "redis-adapter" / "package.json").exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm not found: needed for the Node socket.io peer")
    print(f"[setup] npm ci in {NODE_DIR}", flush=True)
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=NODE_DIR,
        check=True,
        timeout=600,
    )


def _dist(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"


def _node_package(name: str) -> str:
    with contextlib.suppress(OSError, ValueError, KeyError):
        data = json.loads((NODE_DIR / "node_modules" / name / "package.json").read_text())
        return str(data["version"])
    return "?"


def _output(cmd: list[str]) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=True)
    except (OSError, subprocess.SubprocessError):
        return "?"
    return done.stdout.strip().splitlines()[0] if done.stdout.strip() else "?"


def snapshot_roomcast(dest: Path) -> str:
    """Copy src/roomcast to dest/roomcast; return what it is (commit, uncommitted changes).

    The suite's processes import roomcast from this copy (PYTHONPATH), so that a run
    measures one version even while someone edits src/ during it."""
    shutil.copytree(ROOT / "src" / "roomcast", dest / "roomcast")
    commit = _output(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = _output(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"])
    return f"commit {commit}" + (" + uncommitted changes in src/" if dirty != "?" else "")


def software_versions() -> dict[str, str]:
    """Versions of what the servers run on, for the report."""
    redis = _output(["redis-server", "--version"])
    return {
        "roomcast": _dist("roomcast"),
        "python-socketio": _dist("python-socketio"),
        "python-engineio": _dist("python-engineio"),
        "uvicorn": _dist("uvicorn"),
        "uvloop": _dist("uvloop"),
        "redis-py": _dist("redis"),
        "node": _output(["node", "--version"]),
        "socket.io": _node_package("socket.io"),
        "@socket.io/redis-adapter": _node_package("@socket.io/redis-adapter"),
        "redis-server": redis.split(" v=")[1].split()[0] if " v=" in redis else redis,
    }
