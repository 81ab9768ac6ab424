"""roomcast's benchmark suite (`make bench`): roomcast against Node socket.io, plain
python-socketio and a floor (raw uvloop), the same load generator for all, a report
in docs/benchmarks.md.

Scenarios (each server alone on the machine, a private redis-server per server and
scenario; ladders run in both topologies of harness/scenarios.py, `each` and `shared`):
  fanout     1 room x 1000 subscribers over 2 instances, published over HTTP
  rooms      1000 rooms x 5 members over 2 instances, publishes spread over every room
  clientpub  100 annotation rooms x 10 members over 2 instances, published from one
             client socket per room (roomcast's `annotation_update`, the peers' `publish`)
  idle       N idle connections (authenticated, each joined to a room) on 1 instance:
             RSS, tasks and heap per connection, connects/s 0 -> N/2 and N/2 -> N,
             then a burst of simultaneous handshakes
  publish    benchmarks/publish.py --json, when that file exists (its rows go in the report)
Every ladder steps its publish rate up under one stop rule (stats.should_stop): the
first step with p99 > 100 ms or anything lost, and one step more. The headline is the
highest rate with p99 <= 100 ms and nothing lost; the peak is shown with its p99.

    .venv/bin/python benchmarks/suite.py [--quick] [--output docs/benchmarks.md]
        [--servers roomcast,node,plain,floor,floor-write]
        [--roomcast-engines native,python-socketio] [--idle-connections 10000]
    .venv/bin/python benchmarks/suite.py --render RAW.json --output docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import re
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
    ENGINES,
    FLOOR,
    FLOOR_WRITE,
    NODE,
    PLAIN,
    ROOMCAST,
    ROOT,
    SERVERS,
    ensure_node_peer,
    snapshot_roomcast,
    software_versions,
)
from harness.stats import Idle, Ladder

SCENARIOS = ("fanout", "rooms", "clientpub", "idle", "publish")
LADDERS = ("fanout", "rooms", "clientpub")
PUBLISH_SCRIPT = ROOT / "benchmarks" / "publish.py"
NOTES_MARKER = "<!-- notes: written by hand, kept by benchmarks/suite.py -->"
KEPT_SECTION = re.compile(r"^## .*Redis Cluster", re.MULTILINE)  # E4's, written by hand


def _rates(start: float, count: int, factor: float = 1.5) -> list[float]:
    """`count` rates from `start`, x`factor` each, rounded to two significant digits."""
    out = []
    for i in range(count):
        r = start * factor**i
        digits = max(0, len(str(int(r))) - 2)
        out.append(float(round(r / 10**digits) * 10**digits))
    return out


FANOUT_RATES = _rates(10, 15)  # publishes/s into 1 room of 1000: 10k .. 2.9M deliveries/s
ROOMS_RATES = _rates(200, 14)  # publishes/s over 1000 rooms of 5: 1k .. 190k deliveries/s
CLIENT_RATES = _rates(20, 18)  # publishes/s over 100 rooms of 10: 200 .. 200k deliveries/s


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="short steps, every other rate")
    p.add_argument("--output", type=Path, help="write the Markdown report there")
    p.add_argument("--img-dir", type=Path, default=ROOT / "docs" / "img", help="PNG plots")
    p.add_argument(
        "--servers",
        default=",".join([ROOMCAST, NODE, PLAIN, FLOOR, FLOOR_WRITE]),
        help="roomcast (one per --roomcast-engines),node,plain,floor,floor-write",
    )
    p.add_argument(
        "--roomcast-engines",
        default=",".join(ENGINES),
        help="ROOMCAST_ENGINE values to run roomcast under (a column each)",
    )
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help=",".join(SCENARIOS))
    p.add_argument(
        "--topologies", default=",".join(scenarios.TOPOLOGIES), help="each,shared (ladders)"
    )
    p.add_argument("--workers", type=int, default=2, help="load-generator processes")
    p.add_argument("--subscribers", type=int, default=1000, help="fan-out room size")
    p.add_argument("--rooms", type=int, default=1000, help="rooms of the many-rooms scenario")
    p.add_argument("--members", type=int, default=5, help="members per room (many rooms)")
    p.add_argument("--client-rooms", type=int, default=100, help="rooms (clientpub)")
    p.add_argument("--client-members", type=int, default=10, help="members per room (clientpub)")
    p.add_argument("--idle-connections", "--idle", type=int, default=2000, dest="idle")
    p.add_argument("--burst", type=int, default=2000, help="simultaneous handshakes (idle)")
    p.add_argument("--raw", type=Path, help="write the raw figures there (JSON)")
    p.add_argument("--render", type=Path, metavar="RAW", help="only render a saved --raw file")
    args = p.parse_args(argv)
    servers = []
    for name in (s for s in args.servers.split(",") if s):
        if name == ROOMCAST:
            for engine in (e for e in args.roomcast_engines.split(",") if e):
                if engine not in ENGINES:
                    p.error(f"unknown roomcast engine {engine!r}: {', '.join(ENGINES)}")
                servers.append(ENGINES[engine])
        elif name in SERVERS:
            servers.append(name)
        else:
            p.error(f"unknown server {name!r}")
    args.server_list = servers
    args.scenario_list = [s for s in args.scenarios.split(",") if s]
    for name in args.scenario_list:
        if name not in SCENARIOS:
            p.error(f"unknown scenario {name!r}")
    args.topology_list = [t for t in args.topologies.split(",") if t]
    for name in args.topology_list:
        if name not in scenarios.TOPOLOGIES:
            p.error(f"unknown topology {name!r}")
    args.step_s = 1.0 if args.quick else 2.0
    args.drain_s = 2.0 if args.quick else 3.0
    pick = slice(None, None, 2) if args.quick else slice(None)
    args.fanout_rates = FANOUT_RATES[pick]
    args.rooms_rates = ROOMS_RATES[pick]
    args.client_rates = CLIENT_RATES[pick]
    return args


async def run(
    args: argparse.Namespace, procs: Processes, gen: LoadGen, workdir: Path
) -> dict[str, Any]:
    bench = scenarios.Bench(procs, gen, workdir, args.step_s, args.drain_s)
    out: dict[str, Any] = {key: [] for key in LADDERS}
    out.update(idle=[], publish=None, servers=args.server_list)
    timings: dict[str, float] = {}
    fan_rooms = ["project_fanout"] * args.subscribers
    many = [f"project_r{i % args.rooms}" for i in range(args.rooms * args.members)]
    n_client = args.client_rooms * args.client_members
    client_rooms = [f"annotation_b{i % args.client_rooms}" for i in range(n_client)]
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
        # scenario -> (instances, one room per client, deliveries per publish, rates, via)
        ladders = {
            "fanout": (2, fan_rooms, args.subscribers, args.fanout_rates, "http"),
            "rooms": (2, many, args.members, args.rooms_rates, "http"),
            "clientpub": (2, client_rooms, args.client_members, args.client_rates, "socket"),
        }
        for server in args.server_list:
            if scenario in ladders:
                instances, rooms, members, rates, via = ladders[scenario]
                out[scenario].extend(
                    await scenarios.ladder(
                        bench,
                        server,
                        instances=instances,
                        rooms=rooms,
                        members=members,
                        rates=rates,
                        label=scenario,
                        topologies=args.topology_list,
                        via=via,
                    )
                )
            elif scenario == "idle":
                res = await scenarios.idle(bench, server, args.idle, 64, args.burst)
                print(
                    f"[idle] {server}: {res.connected}/{res.connections} connected, "
                    f"{res.per_s_first:,.0f}/s then {res.per_s_second:,.0f}/s, "
                    f"{res.mb_per_1000:.1f} MB per 1000, tasks/conn {res.tasks_per_conn}, "
                    f"heap KB/conn {res.heap_kb_per_conn}, burst {res.burst_connected}/"
                    f"{res.burst} in {res.burst_s:.1f}s {res.burst_errors[:1]} "
                    f"{res.error_samples[:1]}",
                    flush=True,
                )
                out["idle"].append(res)
        timings[scenario] = time.monotonic() - t
    out["timings"] = timings
    return out


def to_json(results: dict[str, Any]) -> dict[str, Any]:
    data = dict(results)
    for key in LADDERS:
        data[key] = [ladder.to_json() for ladder in results.get(key, [])]
    data["idle"] = [vars(i) for i in results["idle"]]
    return data


def from_json(data: dict[str, Any]) -> dict[str, Any]:
    results = dict(data)
    for key in LADDERS:
        results[key] = [Ladder.from_json(x) for x in data.get(key, [])]
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
        text = carry_over(text, old)
        args.output.write_text(text)
        print(f"[done] wrote {args.output}", flush=True)
    else:
        print(text)


def carry_over(text: str, old: str) -> str:
    """The new report with the old file's hand-written parts: a "Redis Cluster" section
    (E4's) before the notes marker, kept verbatim, and everything from the marker on."""
    notes = old[old.index(NOTES_MARKER) :] if NOTES_MARKER in old else ""
    head = old[: old.index(NOTES_MARKER)] if NOTES_MARKER in old else old
    kept = []
    for found in KEPT_SECTION.finditer(head):
        rest = head[found.end() :]
        nxt = re.search(r"^## ", rest, re.MULTILINE)
        kept.append(head[found.start() : found.end() + (nxt.start() if nxt else len(rest))])
    out = text.rstrip("\n")
    for section in kept:
        if section.strip() not in out:
            out += "\n\n" + section.strip("\n")
    if notes:
        out += "\n\n" + notes
    return out if out.endswith("\n") else out + "\n"


if __name__ == "__main__":
    sys.exit(main())
