"""Churn leaves a `roomcast serve` process's memory flat (issue 10, finding 6).

Each cycle is what a flapping client does: connect, join a `project_` room, leave,
disconnect (every other one says a Socket.IO goodbye first, the rest just drop the
TCP connection). After a warm-up (allocator pools, caches, the first GC
generations), 5,000 cycles must not grow the process's VmRSS by 5 MB (1 kB a
cycle). Before the fix each closed connection stayed alive for Engine.IO's
ping interval (25 s): its ping timer slept holding the socket, and through the
socket's queue the whole connection, ~20 kB, so RSS grew by ~20 kB per cycle as
long as connections closed faster than 25 s went by (~95 MB over 5,000 cycles).

The RSS is read from /proc/<pid>/status of a separate server process, so the
clients' own memory does not count. `churn` and `rss_mb` are shared with
tests/cluster/test_churn_redis.py and benchmarks/churn_memory.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest

from tests.support.instances import RoomcastProcess
from tests.support.raw_socketio import RawSocketIO

ROOM = "project_churn"
WARMUP = 2000
CYCLES = 5000
PARALLEL = 10  # clients in flight at once
LIMIT_MB = 5.0
USERS = 13


def rss_mb(pid: int) -> float:
    """The process's resident set size (VmRSS), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def tokens_for(instance: RoomcastProcess) -> list[str]:
    """One token per user, minted once (minting is the driver's cost, not the server's)."""
    return [instance.token(f"churn{n}", projects=["churn"]) for n in range(USERS)]


async def cycle(url: str, token: str, n: int) -> None:
    client = await RawSocketIO.connect(url, token)
    try:
        for event in ("join", "leave"):
            answer = await client.call(event, {"room": ROOM})
            if not answer["ok"]:
                raise RuntimeError(f"{event} refused: {answer}")
        if n % 2:
            await client.send("41")  # a Socket.IO disconnect before the TCP close
    finally:
        await client.close()


async def churn(
    instances: Sequence[RoomcastProcess],
    tokens: Sequence[Sequence[str]],
    start: int,
    count: int,
) -> None:
    """`count` cycles, PARALLEL at a time, cycle n on instance n % len(instances)."""
    for first in range(start, start + count, PARALLEL):
        await asyncio.gather(
            *(
                cycle(instances[n % len(instances)].url, tokens[n % len(instances)][n % USERS], n)
                for n in range(first, min(first + PARALLEL, start + count))
            )
        )


async def wait_idle(instance: RoomcastProcess, timeout: float = 10.0) -> None:
    """Until the instance has handled every disconnect (its stats say 0 connections).

    The server handles a disconnect after the client has gone, and nothing tells the
    test when: this reads /api/v1/stats until it says so, for at most `timeout` s.
    """
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=instance.url, headers=instance.api_headers) as http:
        while True:
            stats = (await http.get("/api/v1/stats")).json()
            if stats["instance"]["connections"] == 0:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{instance} still has {stats['instance']['connections']}")
            await asyncio.sleep(0.05)


async def measure(
    instances: Sequence[RoomcastProcess], warmup: int = WARMUP, cycles: int = CYCLES
) -> list[tuple[float, float, float]]:
    """Each instance's RSS (MiB) after the warm-up, after half the cycles, after all."""
    tokens = [tokens_for(i) for i in instances]
    marks: list[list[float]] = [[] for _ in instances]
    await churn(instances, tokens, 0, warmup)
    for start, count in ((warmup, 0), (warmup, cycles // 2), (warmup + cycles // 2, cycles // 2)):
        await churn(instances, tokens, start, count)
        for instance, mark in zip(instances, marks, strict=True):
            await wait_idle(instance)
            mark.append(rss_mb(instance.pid))
    return [(m[0], m[1], m[2]) for m in marks]


@pytest.mark.timeout(90)
async def test_churn_leaves_rss_flat_in_memory_mode() -> None:
    async with RoomcastProcess() as instance:
        began = time.monotonic()
        [(base, half, end)] = await measure([instance])
        took = time.monotonic() - began
    marks = f"{base:.1f} -> {half:.1f} -> {end:.1f} MiB"
    print(f"RSS {marks} over {CYCLES} cycles in {took:.1f} s")
    assert end - base < LIMIT_MB, f"grew {end - base:.1f} MiB: {marks}"
