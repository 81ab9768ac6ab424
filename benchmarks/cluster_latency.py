"""Cross-instance delivery latency: publish on instance A, receive on instance B.

Starts a private redis-server and two `roomcast serve` processes on free loopback
ports, connects subscribers to B, publishes over HTTP to A at a steady rate, and
prints p50/p99 of publish-to-receive latency (one machine clock) per rate.

    .venv/bin/python benchmarks/cluster_latency.py [--rates 50,200] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time

import httpx
import socketio

from harness.procs import child_process, free_port
from roomcast.auth.tokens import mint_access_token

SECRET = "bench-secret-0123456789abcdef0123456789"
KEY = "bench-key"


async def wait_healthy(url: str) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(200):
            try:
                if (await http.get(f"{url}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)  # a process start has no event to await
    raise RuntimeError(f"{url} did not come up")


async def measure(a: str, b: str, rate: int, seconds: float, subscribers: int) -> list[float]:
    count = int(rate * seconds)
    expected = count * subscribers
    latencies: list[float] = []
    all_in = asyncio.Event()
    clients = []
    for n in range(subscribers):
        sio = socketio.AsyncClient()

        @sio.on("project_progress_update")
        async def on_event(event: dict[str, object]) -> None:
            sent = int(str(event["data"]["stage"]))  # type: ignore[index]
            latencies.append((time.time_ns() - sent) / 1e6)
            if len(latencies) >= expected:
                all_in.set()

        token = mint_access_token(SECRET, f"s{n}", projects=["lat"])
        await sio.connect(b, auth={"token": token}, transports=["websocket"])
        await sio.call("join", {"room": "project_lat"})
        clients.append(sio)
    async with httpx.AsyncClient(base_url=a, headers={"Authorization": f"Bearer {KEY}"}) as http:
        start = time.monotonic()
        for i in range(count):
            await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))  # open-loop pacing
            body = {
                "room": "project_lat",
                "type": "project_progress_update",
                "data": {
                    "total": count,
                    "completed": i,
                    "percent": 0,
                    "stage": str(time.time_ns()),
                },
            }
            (await http.post("/api/v1/publish", json=body)).raise_for_status()
    try:
        await asyncio.wait_for(all_in.wait(), 10)  # what is still in flight
    except TimeoutError:
        print(f"  {expected - len(latencies)} deliveries missing after 10 s", file=sys.stderr)
    for sio in clients:
        await sio.disconnect()
    return latencies


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rates", default="50,200")
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--subscribers", type=int, default=20)
    args = parser.parse_args()
    redis_port, port_a, port_b = free_port(), free_port(), free_port()
    tmp = tempfile.mkdtemp(prefix="roomcast-bench-")
    redis_argv = ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                  "--save", "", "--appendonly", "no", "--dir", tmp]  # fmt: skip
    base = {k: v for k, v in os.environ.items() if not k.startswith("ROOMCAST_")}
    common = {
        **base,
        "ROOMCAST_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "ROOMCAST_JWT_SECRET": SECRET,
        "ROOMCAST_API_KEYS": KEY,
        "ROOMCAST_LOG_LEVEL": "warning",
        "ROOMCAST_CONNECT_RATE_PER_ADDRESS": "0",
    }
    serve = [sys.executable, "-m", "roomcast.cli", "serve"]
    env_a = {**common, "ROOMCAST_PORT": str(port_a), "ROOMCAST_INSTANCE_ID": "a"}
    env_b = {**common, "ROOMCAST_PORT": str(port_b), "ROOMCAST_INSTANCE_ID": "b"}
    try:
        with child_process(redis_argv), child_process(serve, env_a), child_process(serve, env_b):
            a, b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
            await wait_healthy(a)
            await wait_healthy(b)
            print("| publishes/s | subscribers on B | deliveries | p50 ms | p99 ms |")
            print("|---:|---:|---:|---:|---:|")
            for rate in (int(r) for r in args.rates.split(",")):
                lat = sorted(await measure(a, b, rate, args.seconds, args.subscribers))
                p50 = statistics.median(lat)
                p99 = lat[int(len(lat) * 0.99) - 1]
                print(f"| {rate} | {args.subscribers} | {len(lat)} | {p50:.1f} | {p99:.1f} |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
