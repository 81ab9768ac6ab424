"""What an idle Socket.IO connection costs the engine's process: tasks and memory.

A separate process (serve_engine.py) serves the engine; N raw WebSocket clients
connect to namespace "/" and stay idle. Under roomcast's raw protocol a connection is
callbacks only: no asyncio task at all. Under uvicorn's own protocol (the ASGI
carrier) there is the protocol's task per connection. The RSS per connection is
printed, and bounded loosely (python-engineio on uvicorn measured ~45 KB).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.engine.engine_support import WS_PROTOCOLS

CONNECTIONS = 400


@contextlib.asynccontextmanager
async def engine_process(ws: str) -> AsyncIterator[str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.engine.serve_engine",
        ws,
        stdout=asyncio.subprocess.PIPE,
        cwd=os.getcwd(),
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(20):
            port = int((await proc.stdout.readline()).decode())
        yield f"127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(10):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def stats(http: aiohttp.ClientSession, address: str) -> dict[str, Any]:
    async with http.get(f"http://{address}/stats") as response:
        result: dict[str, Any] = await response.json()
        return result


async def socketio_client(address: str) -> ClientConnection:
    ws = await connect(f"ws://{address}/socket.io/?EIO=4&transport=websocket", compression=None)
    assert str(await ws.recv()).startswith("0")
    await ws.send("40")
    assert str(await ws.recv()).startswith("40")
    return ws


@pytest.mark.parametrize("ws", sorted(WS_PROTOCOLS))
async def test_idle_connection_tasks_and_memory(ws: str) -> None:
    clients: list[ClientConnection] = []
    async with engine_process(ws) as address, aiohttp.ClientSession() as http:
        try:
            for _ in range(20):  # warm up: first allocations, arenas
                clients.append(await socketio_client(address))
            before = await stats(http, address)
            batch = 50
            for _ in range(CONNECTIONS // batch):
                clients += await asyncio.gather(*(socketio_client(address) for _ in range(batch)))
            after = await stats(http, address)
            assert after["sessions"] == len(clients)
            tasks = (after["tasks"] - before["tasks"]) / CONNECTIONS
            rss = (after["rss"] - before["rss"]) / CONNECTIONS
            print(f"\nws={ws}: {tasks:.2f} tasks and {rss / 1024:.1f} KiB RSS per idle connection")
            print(json.dumps({"ws": ws, "tasks_per_conn": tasks, "rss_per_conn": rss}))
            if ws == "raw":
                assert tasks == 0
            else:
                assert tasks >= 1  # the ASGI call of each connection
            assert rss < 45 * 1024
        finally:
            await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
        async with asyncio.timeout(10):
            while (await stats(http, address))["sessions"]:  # noqa: ASYNC110 - another process
                await asyncio.sleep(0.05)
        final = await stats(http, address)
        assert final["heartbeat"] == 0
