"""RSS of `roomcast serve` under connect/join/leave/disconnect churn (issue 10, finding 6).

Starts one instance in memory mode, or two over a private redis-server (`--redis`),
drives `--cycles` cycles after `--warmup` ones (tests/e2e/test_churn_rss.py's driver:
raw WebSocket clients, 10 in flight), and prints each instance's VmRSS after the
warm-up, at half and at the end, with the growth per cycle. Run from the repository:

    .venv/bin/python benchmarks/churn_memory.py [--redis] [--cycles 5000] [--warmup 2000]

`--arena-max 2` runs the servers with MALLOC_ARENA_MAX=2, to tell memory that glibc
keeps for its arenas from objects that stay alive (the growth stays the same when
they do).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.test_churn_rss import measure
from tests.support.instances import RoomcastProcess
from tests.support.redis_procs import RedisServer


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis", action="store_true", help="two instances over Redis")
    parser.add_argument("--cycles", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=2000)
    parser.add_argument("--arena-max", type=int, default=0, help="MALLOC_ARENA_MAX")
    args = parser.parse_args()
    env = {"MALLOC_ARENA_MAX": str(args.arena_max)} if args.arena_max else {}
    with contextlib.ExitStack() as stack:
        if args.redis:
            redis = stack.enter_context(RedisServer())
            env |= {"ROOMCAST_REDIS_URL": redis.url, "ROOMCAST_KEY_PREFIX": "bench"}
            names = ["rss1", "rss2"]
        else:
            names = ["memory"]
        instances = [
            stack.enter_context(RoomcastProcess({**env, "ROOMCAST_INSTANCE_ID": n})) for n in names
        ]
        began = time.monotonic()
        marks = await measure(instances, args.warmup, args.cycles)
        took = time.monotonic() - began
    per_instance = args.cycles / len(instances)
    arena = f", MALLOC_ARENA_MAX={args.arena_max}" if args.arena_max else ""
    mode = "redis, 2 instances" if args.redis else "memory"
    print(f"{mode}: {args.cycles} cycles after {args.warmup} warm-up, {took:.1f} s{arena}")
    for name, (base, half, end) in zip(names, marks, strict=True):
        per_cycle = (end - base) * 1024 * 1024 / per_instance
        print(
            f"  {name}: RSS {base:.1f} -> {half:.1f} -> {end:.1f} MiB, "
            f"{per_cycle:,.0f} B per cycle ({per_instance:.0f} cycles)"
        )


if __name__ == "__main__":
    asyncio.run(main())
