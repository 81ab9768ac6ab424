"""roomcast's benchmark suite (`make bench`): roomcast against Node socket.io and plain
python-socketio, the same load generator for all three, a report in docs/benchmarks.md.

Scenarios (each server alone on the machine, instance i pinned to CPU i, a private
redis-server per server and scenario):
  fanout    1 room x 1000 subscribers over 2 instances: publish rate stepped up;
            peak deliveries/s and the highest rate with p99 <= 100 ms
  scaling   the same ladder on 1 instance: deliveries/s with 2 instances over 1
  rooms     1000 rooms x 5 members over 2 instances, publishes spread over every room
  idle      2000 idle authenticated connections on 1 instance: MB per 1000, connects/s
  publish   benchmarks/publish.py --json, when that file exists (its rows go in the report)

    .venv/bin/python benchmarks/suite.py [--quick] [--output docs/benchmarks.md]
    .venv/bin/python benchmarks/suite.py --render RAW.json --output docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import resource
import shlex
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import plots, report, scenarios
from harness.loadgen import LoadGen
from harness.procs import Processes
from harness.servers import (
    NODE,
    ROOT,
    SERVERS,
    ensure_node_peer,
    snapshot_roomcast,
    software_versions,
)
from harness.stats import Idle, Ladder

SCENARIOS = ("fanout", "scaling", "rooms", "idle", "publish")
PUBLISH_SCRIPT = ROOT / "benchmarks" / "publish.py"
NOTES_MARKER = "<!-- notes: written by hand, kept by benchmarks/suite.py -->"

FANOUT_RATES = [
    2,
    3,
    5,
    7,
    10,
    14,
    20,
    28,
    40,
    56,
    80,
    110,
    150,
    200,
    260,
    340,
    440,
    600,
    800,
    1100,
]
ROOMS_RATES = [250, 350, 500, 700, 1000, 1400, 2000, 2800, 4000, 5600, 8000, 11000]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="short steps and few rates (~2 min)")
    p.add_argument("--output", type=Path, help="write the Markdown report there")
    p.add_argument("--img-dir", type=Path, default=ROOT / "docs" / "img", help="PNG plots")
    p.add_argument("--servers", default=",".join(SERVERS), help="roomcast,node,plain")
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help=",".join(SCENARIOS))
    p.add_argument("--workers", type=int, default=2, help="load-generator processes")
    p.add_argument("--subscribers", type=int, default=1000, help="fan-out room size")
    p.add_argument("--rooms", type=int, default=1000, help="rooms of the many-rooms scenario")
    p.add_argument("--members", type=int, default=5, help="members per room (many rooms)")
    p.add_argument("--idle", type=int, default=2000, help="idle connections")
    p.add_argument("--raw", type=Path, help="write the raw figures there (JSON)")
    p.add_argument("--render", type=Path, metavar="RAW", help="only render a saved --raw file")
    args = p.parse_args(argv)
    args.server_list = [s for s in args.servers.split(",") if s]
    args.scenario_list = [s for s in args.scenarios.split(",") if s]
    for name in args.server_list:
        if name not in SERVERS:
            p.error(f"unknown server {name!r}")
    for name in args.scenario_list:
        if name not in SCENARIOS:
            p.error(f"unknown scenario {name!r}")
    args.step_s = 1.0 if args.quick else 3.0
    args.drain_s = 2.0 if args.quick else 3.0
    args.ladder_s = 25.0 if args.quick else 130.0  # per server and ladder
    args.fanout_rates = FANOUT_RATES[::3] if args.quick else FANOUT_RATES
    args.rooms_rates = ROOMS_RATES[::3] if args.quick else ROOMS_RATES
    return args


async def run(
    args: argparse.Namespace, procs: Processes, gen: LoadGen, workdir: Path
) -> dict[str, Any]:
    bench = scenarios.Bench(procs, gen, workdir, args.step_s, args.drain_s, 0.0)
    out: dict[str, Any] = {"fanout": [], "scaling": [], "rooms": [], "idle": [], "publish": None}
    timings: dict[str, float] = {}
    fan_rooms = ["project_fanout"] * args.subscribers
    many = [f"project_r{i % args.rooms}" for i in range(args.rooms * args.members)]
    out["background_cores"] = await scenarios.background_load(3.0)
    print(f"[setup] other work on the machine: {out['background_cores']:.2f} cores", flush=True)
    for scenario in args.scenario_list:
        t = time.monotonic()
        if scenario == "publish":
            if PUBLISH_SCRIPT.exists():
                print("[publish] running benchmarks/publish.py --json ...", flush=True)
                out["publish"] = await scenarios.run_publish_script(
                    procs, PUBLISH_SCRIPT, workdir, timeout=300.0 if not args.quick else 120.0
                )
            else:
                out["publish"] = {"rows": [], "note": "benchmarks/publish.py does not exist yet"}
        # scenario -> (instances, one room per client, deliveries per publish, rates)
        ladders = {
            "fanout": (2, fan_rooms, args.subscribers, args.fanout_rates),
            "scaling": (1, fan_rooms, args.subscribers, args.fanout_rates),
            "rooms": (2, many, args.members, args.rooms_rates),
        }
        for server in args.server_list:
            bench.deadline = time.monotonic() + args.ladder_s
            if scenario in ladders:
                instances, rooms, members, rates = ladders[scenario]
                out[scenario].append(
                    await scenarios.ladder(
                        bench,
                        server,
                        instances=instances,
                        rooms=rooms,
                        members=members,
                        rates=rates,
                        label=scenario,
                    )
                )
            elif scenario == "idle":
                res = await scenarios.idle(bench, server, args.idle, concurrency=64)
                print(
                    f"[idle] {server}: {res.connected}/{res.connections} connected, "
                    f"{res.per_s:,.0f}/s, {res.mb_per_1000:.1f} MB per 1000, generator "
                    f"{res.gen_cores:.2f} cores",
                    flush=True,
                )
                out["idle"].append(res)
        timings[scenario] = time.monotonic() - t
    out["timings"] = timings
    return out


def to_json(results: dict[str, Any]) -> dict[str, Any]:
    data = dict(results)
    for key in ("fanout", "scaling", "rooms"):
        data[key] = [ladder.to_json() for ladder in results[key]]
    data["idle"] = [vars(i) for i in results["idle"]]
    return data


def from_json(data: dict[str, Any]) -> dict[str, Any]:
    results = dict(data)
    for key in ("fanout", "scaling", "rooms"):
        results[key] = [Ladder.from_json(x) for x in data[key]]
    results["idle"] = [Idle(**x) for x in data["idle"]]
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:
        data = from_json(json.loads(args.render.read_text()))
        emit(args, data)
        return 0
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # unwind like Ctrl-C
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if NODE in args.server_list:
        ensure_node_peer()
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="roomcast-bench-"))
    source = snapshot_roomcast(workdir / "src")
    procs = Processes(workdir, env={"PYTHONPATH": str(workdir / "src")})
    gen: LoadGen | None = None
    try:
        gen = LoadGen(args.workers)
        results = asyncio.run(run(args, procs, gen, workdir))
    finally:
        if gen is not None:
            gen.stop()
        procs.stop_all()
    results["elapsed_s"] = time.monotonic() - started
    results["when"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    words = sys.argv[1:] if argv is None else argv
    results["command"] = shlex.join([".venv/bin/python", "benchmarks/suite.py", *words])
    if words == ["--output", "docs/benchmarks.md"]:
        results["command"] = f"make bench   # runs: {results['command']}"
    results["machine"] = report.machine()
    results["versions"] = software_versions()
    results["versions"]["roomcast source"] = source
    results["workers"] = args.workers
    raw = args.raw or workdir / "results.json"
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text(json.dumps(to_json(results), indent=1))
    print(f"[done] raw figures in {raw}; logs in {workdir}", flush=True)
    emit(args, results)
    print(f"[done] {results['elapsed_s']:.0f} s", flush=True)
    return 0


def emit(args: argparse.Namespace, results: dict[str, Any]) -> None:
    images = plots.draw(results, args.img_dir) if args.output else {}
    text = report.render(results, images, args.output.parent if args.output else ROOT)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        # a hand-written part after the marker survives a new run
        old = args.output.read_text() if args.output.exists() else ""
        if NOTES_MARKER in old:
            text = text.rstrip("\n") + "\n\n" + old[old.index(NOTES_MARKER) :]
        args.output.write_text(text)
        print(f"[done] wrote {args.output}", flush=True)
    else:
        print(text)


if __name__ == "__main__":
    sys.exit(main())
