"""Self-tests of `python -m tests.support.cli`: what the JavaScript tests rely on."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from tests.support.instances import REPO
from tests.support.processes import gone
from tests.support.redis_procs import command

LINE_TIMEOUT = 30.0


class Cli:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def line(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), LINE_TIMEOUT)
        assert raw, "the CLI closed stdout without a line"
        record: dict[str, Any] = json.loads(raw)
        return record


@asynccontextmanager
async def cli(*args: str, env: dict[str, str] | None = None) -> AsyncIterator[Cli]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.cli",
        *args,
        cwd=REPO,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        yield Cli(proc)
    finally:
        if proc.returncode is None:
            proc.kill()  # by its PID; it is our child
        await proc.wait()


async def test_redis_answers_and_stops_on_stdin_eof() -> None:
    async with cli("redis") as c:
        ready = await c.line()
        assert ready["kind"] == "redis"
        assert ready["url"] == f"redis://127.0.0.1:{ready['port']}/0"
        assert command(ready["port"], "PING") == "PONG"
        assert c.proc.stdin is not None
        c.proc.stdin.close()
        exited = await c.line()
        assert exited == {"event": "exited", "pid": ready["pid"], "returncode": 0}
        assert await asyncio.wait_for(c.proc.wait(), LINE_TIMEOUT) == 0
        assert gone(ready["pid"])


async def test_serve_takes_roomcast_env_and_drains_on_sigterm() -> None:
    env = {**os.environ, "ROOMCAST_INSTANCE_ID": "cli-a"}
    async with cli("serve", env=env) as c:
        ready = await c.line()
        assert ready["kind"] == "serve"
        async with httpx.AsyncClient(base_url=ready["url"], timeout=5) as http:
            health = await http.get("/healthz")
        assert health.status_code == 200
        assert health.json()["instance_id"] == "cli-a"
        c.proc.send_signal(signal.SIGTERM)
        exited = await c.line()
        assert exited == {"event": "exited", "pid": ready["pid"], "returncode": 0}
        assert await asyncio.wait_for(c.proc.wait(), LINE_TIMEOUT) == 0
        assert gone(ready["pid"])


async def test_serve_reports_a_sigkill_sent_to_its_pid() -> None:
    async with cli("serve") as c:
        ready = await c.line()
        os.kill(ready["pid"], signal.SIGKILL)
        exited = await c.line()
        assert exited == {"event": "exited", "pid": ready["pid"], "returncode": -9}
        assert await asyncio.wait_for(c.proc.wait(), LINE_TIMEOUT) == 0
