"""A private redis-server on a free loopback port, for one run of the suite."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

from .procs import HOST, Process, Processes, free_port, wait_for


def _pong(port: int) -> bool:
    with socket.create_connection((HOST, port), timeout=1) as s:
        s.sendall(b"PING\r\n")
        return s.recv(64).startswith(b"+PONG")


def start_redis(procs: Processes, workdir: Path, name: str = "redis") -> tuple[Process, str]:
    """Start redis-server (no persistence, loopback only); return it and its URL.

    The port is chosen by binding port 0 and reading it back (`--port 0` would turn
    TCP off in Redis). Raises RuntimeError when the binary is missing or it does not
    answer PING within 15 s.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server not found (make system-deps installs it)")
    port = free_port()
    data = workdir / name
    data.mkdir(parents=True, exist_ok=True)
    cmd = [
        binary,
        "--port", str(port),
        "--bind", HOST,
        "--save", "",
        "--appendonly", "no",
        "--dir", str(data),
        "--protected-mode", "yes",
    ]  # fmt: skip
    proc = procs.start(name, cmd)
    wait_for(lambda: _pong(port), "PING answer", proc, timeout=15)
    return proc, f"redis://{HOST}:{port}/0"
