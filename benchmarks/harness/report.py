"""docs/benchmarks.md from one run's results: summary, per-scenario tables, method."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .servers import LABELS, NODE, PLAIN, ROOMCAST, SERVERS
from .stats import P99_GOAL_MS, Idle, Ladder, Step
from .wsclient import BULK_TICK_S, PROBE_EVERY


def machine() -> dict[str, str]:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpus": str(os.cpu_count()),
        "cpu": cpu,
        "memory_gib": f"{mem_kib / 1024 / 1024:.0f}",
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def num(x: float | str | None, digits: int = 0) -> str:
    if isinstance(x, str):
        return x
    return "—" if x is None else f"{x:,.{digits}f}"


def ratio(a: float | str | None, b: float | str | None) -> str:
    if not isinstance(a, float | int) or not isinstance(b, float | int) or b == 0:
        return "—"
    return f"{a / b:.2f}"


def within_goal(ladder: Ladder) -> float | str | None:
    """Deliveries/s of the best step within the p99 goal; "< N" when even the first missed."""
    best = ladder.best_within_goal
    if best is not None:
        return best.deliveries_per_s
    if ladder.steps:
        return f"< {ladder.steps[0].deliveries_per_s:,.0f}"
    return None


def _by_server(items: list[Any]) -> dict[str, Any]:
    return {x.server: x for x in items}


def _gen(step: Step | None) -> str:
    if step is None:
        return "—"
    return f"{step.gen_cores:.2f} ({100 * step.gen_busiest:.0f}%)"


class Summary:
    """The summary table: one row per measure, the three servers side by side."""

    def __init__(self) -> None:
        self.rows: list[str] = []

    def add(
        self,
        scenario: str,
        measure: str,
        values: dict[str, float | str | None],
        gen: str,
        digits: int = 0,
        ratios: bool = True,
    ) -> None:
        r, n, p = (values.get(s) for s in (ROOMCAST, NODE, PLAIN))
        rn, rp = (ratio(r, n), ratio(r, p)) if ratios else ("—", "—")
        self.rows.append(
            f"| {scenario} | {measure} | {num(r, digits)} | {num(n, digits)} | {num(p, digits)} "
            f"| {rn} | {rp} | {gen} |"
        )

    def render(self) -> list[str]:
        return [
            "| scenario | measure | roomcast | Node socket.io | plain python-socketio "
            "| roomcast ÷ Node | roomcast ÷ plain | generator CPU: roomcast · Node · plain |",
            "|---|---|---:|---:|---:|---:|---:|---|",
            *self.rows,
        ]


def _gens(ladders: dict[str, Ladder], pick: Callable[[Ladder], Step | None]) -> str:
    return " · ".join(_gen(pick(ladders[s])) if s in ladders else "—" for s in SERVERS)


def _ladder_table(ladders: list[Ladder]) -> list[str]:
    out = [
        "| server | publishes/s | deliveries/s | delivered | p50 ms | p99 ms | server cores "
        "(busiest instance) | Redis cores | other cores (machine busy) | generator cores (in the "
        "kernel; busiest "
        "process) "
        "| publish errors / skipped |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for ladder in ladders:
        for s in ladder.steps:
            out.append(
                f"| {LABELS[ladder.server]} | {s.rate:g} | {s.deliveries_per_s:,.0f} "
                f"| {100 * s.delivered_frac:.1f}% | {num(s.p50_ms, 1)} | {num(s.p99_ms, 1)} "
                f"| {s.server_cores:.2f} ({s.server_busiest:.2f}) "
                f"| {s.redis_cpu_s / max(s.wall_s, 1e-9):.2f} "
                f"| {s.other_cores:.2f} ({s.machine_cores:.2f}) "
                f"| {s.gen_cores:.2f} ({s.gen_sys_s / max(s.wall_s, 1e-9):.2f}; "
                f"{100 * s.gen_busiest:.0f}%) | {s.errors} / {s.skipped} |"
            )
    notes = [
        f"- {LABELS[x.server]}: other work used {x.background_cores:.2f} cores before the "
        f"ladder (after waiting {x.waited_s:.0f} s for a quiet machine); clients connected "
        f"and joined in {x.setup_s:.1f} s; {x.note or 'did not saturate at the rates tried'}."
        for x in ladders
    ]
    return [*out, "", *notes, ""]


def _image(images: dict[str, Path], key: str, base: Path, alt: str) -> list[str]:
    path = images.get(key)
    if path is None:
        return []
    return [f"![{alt}]({os.path.relpath(path, base)})", ""]


def render(results: dict[str, Any], images: dict[str, Path], base: Path) -> str:
    """The Markdown report; `base` is the directory it is written to (for image links)."""
    fan = _by_server(results.get("fanout", []))
    one = _by_server(results.get("scaling", []))
    rooms = _by_server(results.get("rooms", []))
    idle: dict[str, Idle] = _by_server(results.get("idle", []))
    publish = results.get("publish") or {"rows": [], "note": ""}
    m, v = results["machine"], results["versions"]
    out: list[str] = []
    w = out.extend

    summary = Summary()
    if fan:
        subs = next(iter(fan.values())).subscribers
        name = f"1 · fan-out, 1 room x {subs}, 2 instances"
        summary.add(
            name,
            "peak deliveries/s",
            {s: x.peak.deliveries_per_s if x.peak else None for s, x in fan.items()},
            _gens(fan, lambda x: x.peak),
        )
        summary.add(
            name,
            f"deliveries/s with p99 ≤ {P99_GOAL_MS:g} ms",
            {s: within_goal(x) for s, x in fan.items()},
            _gens(fan, lambda x: x.best_within_goal),
        )
    if rooms:
        x0 = next(iter(rooms.values()))
        members = x0.steps[0].members if x0.steps else 0
        summary.add(
            f"2 · {x0.subscribers // max(1, members)} rooms x {members}, 2 instances",
            "peak deliveries/s",
            {s: x.peak.deliveries_per_s if x.peak else None for s, x in rooms.items()},
            _gens(rooms, lambda x: x.peak),
        )
    if idle:
        gens = " · ".join(
            f"{idle[s].gen_cores:.2f} ({100 * idle[s].gen_busiest:.0f}%)" if s in idle else "—"
            for s in SERVERS
        )
        n = next(iter(idle.values())).connections
        summary.add(
            f"3 · {n:,} idle connections, 1 instance",
            "MB per 1000 connections (lower is better)",
            {s: x.mb_per_1000 for s, x in idle.items()},
            "—",
            digits=1,
        )
        summary.add(
            f"3 · {n:,} idle connections, 1 instance",
            "new authenticated connections/s",
            {s: x.per_s for s, x in idle.items()},
            gens,
        )
    if one:
        summary.add(
            "4 · fan-out on 1 instance",
            "peak deliveries/s",
            {s: x.peak.deliveries_per_s if x.peak else None for s, x in one.items()},
            _gens(one, lambda x: x.peak),
        )
        if fan:
            scale = {}
            for s in SERVERS:
                a, b = fan.get(s), one.get(s)
                if a and b and a.peak and b.peak and b.peak.deliveries_per_s:
                    scale[s] = a.peak.deliveries_per_s / b.peak.deliveries_per_s
            summary.add(
                "4 · scaling", "2 instances ÷ 1 (goal ≥ 1.7)", scale, "—", digits=2, ratios=False
            )
    pub_rows = publish["rows"]
    for count in sorted({int(r.get("rooms", 0)) for r in pub_rows}):

        def best(server: str, count: int = count) -> float | None:
            rates = [
                float(r["events_per_s"])
                for r in pub_rows
                if int(r.get("rooms", 0)) == count and str(r.get("server")).startswith(server)
            ]
            return max(rates, default=None)

        summary.add(
            f"5 · publish, {count} room" + ("s" if count != 1 else ""),
            "events/s, best row (publish.py)",
            {ROOMCAST: best("roomcast"), PLAIN: best("python-socketio")},
            "see below",
        )

    w(["# Benchmarks", ""])
    w(
        [
            "roomcast against two peers doing the same broadcast and nothing else: "
            "**Node socket.io** 4.8 with `@socket.io/redis-adapter` "
            "(`benchmarks/peers/node/`) and **plain python-socketio** with "
            "`AsyncRedisManager` (`benchmarks/peers/plain_socketio.py`). Every server runs "
            "its instances over a private `redis-server`, one instance per core, with the "
            "same load generator. Higher is better except where a row says otherwise; a "
            "ratio above 1 means roomcast has more of that measure.",
            "",
            f"Run of {results['when']}, {results['elapsed_s'] / 60:.1f} minutes, with:",
            "",
            "```",
            str(results["command"]),
            "```",
            "",
            f"Machine: {m['cpus']} CPUs ({m['cpu']}), {m['memory_gib']} GiB, Linux "
            f"{m['kernel']}, Python {m['python']}. Software: roomcast {v['roomcast']} "
            f"({v.get('roomcast source', 'source not recorded')}, copied at the start "
            "of the run), "
            f"python-socketio {v['python-socketio']}, python-engineio {v['python-engineio']}, "
            f"uvicorn {v['uvicorn']}, uvloop {v['uvloop']}, redis-py {v['redis-py']}, "
            f"Node {v['node']}, socket.io {v['socket.io']}, @socket.io/redis-adapter "
            f"{v['@socket.io/redis-adapter']}, redis-server {v['redis-server']}. The servers, "
            "the load generator, redis-server and the kernel's loopback networking share "
            "these CPUs; the *machine cores busy* columns say how full the machine was. "
            "The machine is shared: other work used "
            f"{results.get('background_cores', 0.0):.2f} cores in the 3 s before the run "
            "started, and whatever *machine cores busy* holds beyond the server, Redis and "
            "the generator is other work plus the kernel's network processing.",
            "",
            "## Summary",
            "",
            *summary.render(),
            "",
            "*generator CPU*: the load generator's cores (all its processes) at the step "
            "the figure comes from, and in brackets its busiest process's share of one core.",
            "",
        ]
    )
    if fan or one:
        w(["## 1 · Fan-out: one room, two instances", ""])
        w(_image(images, "fanout", base, "deliveries/s and p99 against publishes/s"))
        w(
            [
                "Every subscriber joins the same room, half on each instance; publishes go "
                "to the instances in turn. The publish rate steps up until the server "
                "saturates (see *How it is measured*); solid lines two instances, dashed "
                "one instance (scenario 4).",
                "",
            ]
        )
        w(_ladder_table([fan[s] for s in SERVERS if s in fan]))
    if rooms:
        w(["## 2 · Many rooms, publishers in every room", ""])
        w(_image(images, "rooms", base, "many rooms: deliveries/s and p99 against publishes/s"))
        w(
            [
                "Each room's members are spread over both instances; publishes go round-"
                "robin over every room and both instances.",
                "",
            ]
        )
        w(_ladder_table([rooms[s] for s in SERVERS if s in rooms]))
    if idle:
        w(
            [
                "## 3 · Idle connections",
                "",
                "One fresh instance (with its Redis) per server. After 20 warm-up "
                "connections, the clients connect with 64 handshakes in flight, each "
                "sending a JWT in the Socket.IO `40` packet (the peers ignore it), and "
                "stay idle; memory is the server's RSS (its process tree) once they are all "
                "connected, minus its RSS before.",
                "",
                "| server | connected | errors | connections/s | server CPU ms per connection "
                "| RSS before MB | RSS idle MB | MB per 1000 | generator cores (busiest) "
                "| other work before, cores |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            ]
        )
        for s in SERVERS:
            if s not in idle:
                continue
            x = idle[s]
            cpu_ms = 1000 * x.server_cpu_s / x.connected if x.connected else None
            w(
                [
                    f"| {LABELS[s]} | {x.connected:,}/{x.connections:,} | {x.errors} "
                    f"| {x.per_s:,.0f} | {num(cpu_ms, 2)} | {x.rss_before_kib / 1024:.1f} "
                    f"| {x.rss_idle_kib / 1024:.1f} | {x.mb_per_1000:.1f} "
                    f"| {x.gen_cores:.2f} ({100 * x.gen_busiest:.0f}%) "
                    f"| {x.background_cores:.2f} |"
                ]
            )
        w([""])
    if one:
        w(["## 4 · Scaling: one instance", "", _scaling_text(fan, one), ""])
        w(_ladder_table([one[s] for s in SERVERS if s in one]))
    w(["## 5 · Publish scenarios (`benchmarks/publish.py`)", ""])
    if pub_rows:
        keys = [k for k in pub_rows[0] if k not in ("scenario", "server")]
        w(
            [
                "Rows as `benchmarks/publish.py --json` wrote them (its own docstring "
                "describes each scenario).",
                "",
                "| scenario | server | " + " | ".join(keys) + " |",
                "|---|---|" + "---:|" * len(keys),
            ]
        )
        for r in pub_rows:
            cells = [_cell(r.get(k)) for k in keys]
            w([f"| {r.get('scenario')} | {r.get('server')} | " + " | ".join(cells) + " |"])
        w([""])
    else:
        w([f"No rows: {publish.get('note') or 'not run'}.", ""])
    w(_method(results))
    return "\n".join(out)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "—" if value is None else str(value)


def _scaling_text(fan: dict[str, Ladder], one: dict[str, Ladder]) -> str:
    parts = []
    for s in SERVERS:
        a, b = fan.get(s), one.get(s)
        if a and b and a.peak and b.peak:
            parts.append(
                f"{LABELS[s]} {b.peak.deliveries_per_s:,.0f} → "
                f"{a.peak.deliveries_per_s:,.0f} deliveries/s "
                f"(x{a.peak.deliveries_per_s / b.peak.deliveries_per_s:.2f})"
            )
    return (
        "The fan-out ladder again with every subscriber on one instance (pinned to CPU 0), "
        "against the two-instance figures of scenario 1: " + "; ".join(parts) + ". On a "
        "two-core machine the second instance takes the core the load generator, Redis "
        "and the kernel's loopback networking were using, so the ratio here is a floor, "
        "not what a second machine would add."
    )


def _method(results: dict[str, Any]) -> list[str]:
    timings = results.get("timings", {})
    spent = ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
    return [
        "## How it is measured",
        "",
        "- **Processes.** Each scenario starts, per server, a private `redis-server` "
        "(free loopback port, no persistence) and one or two instances, instance *i* pinned "
        "to CPU *i* with `taskset`, and stops them by PID before the next server starts, so "
        "the servers never run at the same time. roomcast is `roomcast serve` with its "
        "rate limits raised out of the way; the plain peer runs under uvicorn with uvloop, "
        "as roomcast does. Everything listens on 127.0.0.1.",
        f"- **Load generator.** {results.get('workers', 2)} worker processes (uvloop), "
        "spawned once for the run, unpinned. Subscribers are raw Socket.IO-over-WebSocket "
        "clients (`benchmarks/harness/wsclient.py`): the handshake, a JWT in the `40` "
        "packet, a `join` with its ack, pong for ping; then per frame only the header and "
        "the event name's prefix are read, and every event frame is counted. One client "
        f"in {PROBE_EVERY} is a *probe*, read as soon as data arrives, which also reads "
        "each event's send time for latency; the others are read every "
        f"{1000 * BULK_TICK_S:.0f} ms from an epoll set, one `recv` taking every frame that "
        "piled up (a kernel read per frame was most of the generator's CPU). The server "
        "cannot tell probes from the rest. Publishers are raw HTTP/1.1 keep-alive "
        "connections (`httppub.py`), 64 per worker, one request in flight each.",
        "- **A step.** Open loop: publish *i* is due at *i*/rate s, split over the workers "
        "with interleaved schedules, whatever the server answered; a publish due while "
        "every connection is busy is skipped and counted. Each event carries "
        '`data.stage = "<step>:<time_ns>"`. After the last answer the step waits for '
        "every expected delivery, or until none arrived for 0.5 s, at most the drain time. "
        "*deliveries/s* is the step's deliveries over the time from its first publish to "
        "its last delivery (at least the publishing time), so a server that falls behind "
        "is charged for its backlog. *p50/p99*: publish-to-receive time of the probes' "
        "events, one machine clock; it includes the HTTP request and any queueing.",
        "- **The ladder.** Publish rates rise by about x1.4 per step; a ladder stops "
        "after the first step where the server saturates: fewer than 90% of the offered "
        "deliveries per second, under 98% of the accepted publishes' deliveries arriving "
        "within the drain time, more than 1% of publishes failing or skipped, or a "
        "subscriber disconnected. *Peak* is the step with the most deliveries/s; "
        f"*p99 ≤ {P99_GOAL_MS:g} ms* is the highest-rate step that did not saturate and "
        "kept p99 within it. Each server's ladder also has a time budget.",
        "- **What limits the generator.** The machine has two CPUs and the instances are "
        "pinned to both, so the generator, Redis and the kernel's loopback TCP work take "
        "CPU from the servers; *machine busy* near 2.00 means the machine, not one "
        "server's core, was the limit. *other cores* is what the machine was busy with "
        "beyond the server, Redis and the generator: the kernel's loopback network "
        "processing (softirq time is charged to no process) and other work on this shared "
        "machine; before each ladder the suite waits (at most 20 s) for other work to "
        "drop under 0.25 cores. The generator's CPU is in every table "
        "(its busiest process far below 100% means no generator process was saturated); "
        "the kernel's per-segment work (one TCP segment per frame the server writes) is "
        "paid on the machine either way.",
        "- **Not compared.** The peers have no authentication, room rules, sequencing, "
        "history or presence; roomcast does all of these on every join and publish "
        "(roomcast's joins, which announce presence to the room, are why its clients "
        "take longer to join).",
        f"- Time per scenario in this run: {spent}.",
        "",
        "Cross-instance latency alone is measured by `benchmarks/cluster_latency.py` "
        "([benchmarks-cluster.md](benchmarks-cluster.md)).",
        "",
    ]
