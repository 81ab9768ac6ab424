"""Every log line of `roomcast serve` is one JSON object with the same fields (SPEC 7).

The server runs as a process at log level info and is driven through a connect, a
refused connect, a publish, bad requests that uvicorn and python-engineio log
themselves, and a SIGTERM drain; then every line it wrote, on stdout and stderr,
must parse. uvicorn's lines (and engineio's, under ROOMCAST_ENGINE=python-socketio)
must be among them, so a library that went back to its own format fails the test
rather than going unnoticed.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
from typing import Any

import httpx
import pytest
import socketio

from roomcast.auth.tokens import mint_access_token
from tests.e2e.test_cli_serve import (
    API_KEY,
    PYTHON_M,
    SECRET,
    Process,
    clean_env,
    free_port,
    roomcast,
    wait_healthy,
)
from tests.support.server import Client

FIELDS = {"timestamp", "level", "logger", "event", "instance"}
INSTANCE = "log-test-1"


def parse_lines(text: str, stream: str) -> list[dict[str, Any]]:
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            record = json.loads(line)
        except ValueError:
            raise AssertionError(f"{stream} line {number} is not JSON: {line!r}") from None
        assert isinstance(record, dict), f"{stream} line {number}: {line!r}"
        missing = FIELDS - record.keys()
        assert not missing, f"{stream} line {number} lacks {sorted(missing)}: {line!r}"
        assert record["instance"] == INSTANCE, line
        records.append(record)
    return records


def send_garbage(port: int) -> bytes:
    """Bytes that are not HTTP; uvicorn answers 400, logs a warning and hangs up."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    return answer


async def drive(process: Process, port: int) -> None:
    base = f"http://127.0.0.1:{port}"
    await wait_healthy(process, base)
    client, stranger = Client(), Client()
    try:
        await client.connect(base, mint_access_token(SECRET, "u1", projects=["p1"]))
        assert (await client.next("connection_status"))["status"] == "connected"
        assert (await client.call("join", {"room": "project_p1"}))["ok"] is True
        # refused by roomcast: a `connection.refused` line
        with pytest.raises(socketio.exceptions.ConnectionError):
            await stranger.connect(base, "not-a-jwt")
        async with httpx.AsyncClient(base_url=base, timeout=5) as http:
            published = await http.post(
                "/api/v1/publish",
                headers={"Authorization": f"Bearer {API_KEY}"},
                json={
                    "room": "project_p1",
                    "type": "project_progress_update",
                    "data": {"total": 4, "completed": 1, "percent": 25},
                },
            )
            assert published.status_code == 200, published.text
            assert (await client.next("project_progress_update"))["seq"] == published.json()["seq"]
            # engineio logs an unknown session itself
            bogus = await http.get(
                "/socket.io/", params={"EIO": "4", "transport": "polling", "sid": "nope"}
            )
            assert bogus.status_code == 400
        assert (await asyncio.to_thread(send_garbage, port)).startswith(b"HTTP/1.1 400")

        process.proc.send_signal(signal.SIGTERM)
        assert await client.next("connection_status", timeout=10) == {"status": "draining"}
        async with asyncio.timeout(10):
            await client.disconnected.wait()
        assert await process.exit_code(timeout=10) == 0, process.output()
    finally:
        await client.close()
        await stranger.close()


# The loggers each engine's run must show: python-engineio logs the unknown session
# itself; roomcast's own engine answers it 400 without a line.
ENGINE_LOGGERS = {
    "native": {"roomcast", "uvicorn.error"},
    "python-socketio": {"roomcast", "uvicorn.error", "engineio.server"},
}


@pytest.mark.parametrize("engine", sorted(ENGINE_LOGGERS))
async def test_every_line_of_a_run_is_json_with_the_same_fields(engine: str) -> None:
    port = free_port()
    env = clean_env(
        ROOMCAST_ENGINE=engine,
        ROOMCAST_JWT_SECRET=SECRET,
        ROOMCAST_API_KEYS=API_KEY,
        ROOMCAST_PORT=str(port),
        ROOMCAST_LOG_LEVEL="info",
        ROOMCAST_INSTANCE_ID=INSTANCE,
    )
    async with roomcast("serve", env=env, command=PYTHON_M) as process:
        await drive(process, port)
    # close() has joined the reader threads: both streams are complete.
    assert "".join(process.stdout) == ""
    records = parse_lines("".join(process.stderr), "stderr")
    loggers = {r["logger"] for r in records}
    events = [r["event"] for r in records]
    assert ENGINE_LOGGERS[engine] <= loggers, loggers
    for expected in ("instance.started", "connection.refused", "instance.stopped"):
        assert expected in events, events
    assert any(e.startswith("Invalid HTTP request") for e in events), events
    assert any(e.startswith("Uvicorn running on") for e in events), events
    # python-engineio logs the unknown session at error; nothing does under the native
    # engine, whose run still has lines at info and warning.
    levels = {"info", "warning", "error"} if engine == "python-socketio" else {"info", "warning"}
    assert {r["level"] for r in records} >= levels
    for record in records:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", record["timestamp"]), record


async def test_demo_banner_is_on_stdout_and_the_logs_stay_json_on_stderr() -> None:
    """The banner is text for people, not a log line: it never shares a stream with one."""
    port = free_port()
    env = clean_env(ROOMCAST_LOG_LEVEL="info", ROOMCAST_INSTANCE_ID=INSTANCE)
    async with roomcast("serve", "--demo", "--port", str(port), env=env) as process:
        await wait_healthy(process, f"http://127.0.0.1:{port}")
        process.proc.send_signal(signal.SIGTERM)
        assert await process.exit_code(timeout=15) == 0, process.output()
    assert "JWT secret" in "".join(process.stdout)
    records = parse_lines("".join(process.stderr), "stderr")
    assert "instance.started" in [r["event"] for r in records]
