"""docs/benchmarks.md from one run's results: summary, per-scenario tables, method."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from .scenarios import CONNECT_TIMEOUT_S, TOPOLOGIES
from .servers import FLOOR, LABELS, NODE, PLAIN, ROOMCAST, ROOMCAST_PSIO, SERVERS
from .sockpub import MAX_IN_FLIGHT
from .stats import P99_GOAL_MS, Idle, Ladder
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


SCENARIO_TITLES = {
    "fanout": "fan-out (HTTP publish)",
    "rooms": "many rooms (HTTP publish)",
    "clientpub": "many rooms (client-socket publish)",
}


def headline(ladder: Ladder) -> float | None:
    """Deliveries/s of the highest-rate step with p99 <= goal and nothing lost."""
    best = ladder.best_within_goal
    return best.deliveries_per_s if best is not None else None


def peak_text(ladder: Ladder) -> str:
    peak = ladder.peak
    if peak is None:
        return "—"
    return f"{peak.deliveries_per_s:,.0f} (p99 {num(peak.p99_ms)} ms)"


def _roomcast_of(servers: list[str]) -> str | None:
    """The roomcast column the ratios are taken from: the native engine's, else the other."""
    return next((s for s in (ROOMCAST, ROOMCAST_PSIO) if s in servers), None)


class Summary:
    """The summary table: one row per measure, the servers side by side, two ratios."""

    def __init__(self, servers: list[str]) -> None:
        self.servers = servers
        self.main = _roomcast_of(servers)
        self.rows: list[str] = []

    def add(
        self,
        scenario: str,
        measure: str,
        values: dict[str, float | str | None],
        shown: dict[str, str] | None = None,
        digits: int = 0,
        ratios: bool = True,
    ) -> None:
        """`values` are what the ratios use; `shown` replaces a cell's text where given."""
        shown = shown or {}
        cells = [shown.get(s, num(values.get(s), digits)) for s in self.servers]
        r = values.get(self.main) if self.main else None
        rn = ratio(r, values.get(NODE)) if ratios else "—"
        rf = ratio(r, values.get(FLOOR)) if ratios else "—"
        self.rows.append(f"| {scenario} | {measure} | " + " | ".join(cells) + f" | {rn} | {rf} |")

    def render(self) -> list[str]:
        main = LABELS[self.main] if self.main else "roomcast"
        return [
            "| scenario | measure | " + " | ".join(LABELS[s] for s in self.servers)
            + f" | {main} ÷ Node | {main} ÷ floor (corked) |",
            "|---|---|" + "---:|" * (len(self.servers) + 2),
            *self.rows,
        ]  # fmt: skip


def _ladder_table(ladders: list[Ladder]) -> list[str]:
    out = [
        "| server | publishes/s | deliveries/s | delivered | p50 ms | p99 ms | goal "
        "| server cores (busiest instance) | Redis cores | other cores (machine busy) "
        "| generator cores (in the kernel; busiest process) | publish errors / skipped "
        "| clients lost |",
        "|---|---:|---:|---:|---:|---:|:---:|---:|---:|---:|---:|---:|---:|",
    ]
    for ladder in ladders:
        for s in ladder.steps:
            out.append(
                f"| {LABELS[ladder.server]} | {s.rate:g} | {s.deliveries_per_s:,.0f} "
                f"| {100 * s.delivered_frac:.1f}% | {num(s.p50_ms, 1)} | {num(s.p99_ms, 1)} "
                f"| {'✓' if s.within_goal else '✗'} "
                f"| {s.server_cores:.2f} ({s.server_busiest:.2f}) "
                f"| {s.redis_cpu_s / max(s.wall_s, 1e-9):.2f} "
                f"| {s.other_cores:.2f} ({s.machine_cores:.2f}) "
                f"| {s.gen_cores:.2f} ({s.gen_sys_s / max(s.wall_s, 1e-9):.2f}; "
                f"{100 * s.gen_busiest:.0f}%) | {s.errors} / {s.skipped} | {s.lost} |"
            )
    notes = [
        f"- {LABELS[x.server]}: other work used {x.background_cores:.2f} cores before the "
        f"ladder (after waiting {x.waited_s:.0f} s for a quiet machine); clients connected "
        f"and joined in {x.setup_s:.1f} s; {x.note or 'no step was run'}."
        for x in ladders
    ]
    return [*out, "", *notes, ""]


def _image(images: dict[str, Path], key: str, base: Path, alt: str) -> list[str]:
    path = images.get(key)
    if path is None:
        return []
    return [f"![{alt}]({os.path.relpath(path, base)})", ""]


def _servers(results: dict[str, Any]) -> list[str]:
    seen = {
        x.server for key in ("fanout", "rooms", "clientpub", "idle") for x in results.get(key, [])
    }
    return [s for s in SERVERS if s in seen]


def _shape(ladders: list[Ladder]) -> str:
    x = ladders[0]
    members = x.steps[0].members if x.steps else 0
    rooms = x.subscribers // max(1, members)
    return f"{rooms} room{'s' if rooms != 1 else ''} x {members}, {x.instances} instances"


def render(results: dict[str, Any], images: dict[str, Path], base: Path) -> str:
    """The Markdown report; `base` is the directory it is written to (for image links)."""
    servers = _servers(results)
    idle: dict[str, Idle] = {x.server: x for x in results.get("idle", [])}
    publish = results.get("publish") or {"rows": [], "note": ""}
    m, v = results["machine"], results["versions"]
    out: list[str] = []
    w = out.extend

    summary = Summary(servers)
    for number, key in enumerate(("fanout", "rooms", "clientpub"), start=1):
        ladders: list[Ladder] = results.get(key, [])
        for topology in TOPOLOGIES:
            here = {x.server: x for x in ladders if x.topology == topology}
            if not here:
                continue
            shape = _shape(list(here.values()))
            name = f"{number} · {SCENARIO_TITLES[key]}: {shape}, *{topology}*"
            summary.add(
                name,
                f"**deliveries/s with p99 ≤ {P99_GOAL_MS:g} ms, nothing lost**",
                {s: headline(x) for s, x in here.items()},
            )
            summary.add(
                name,
                "peak deliveries/s (its p99)",
                {s: x.peak.deliveries_per_s if x.peak else None for s, x in here.items()},
                {s: peak_text(x) for s, x in here.items()},
            )
    if idle:
        n = next(iter(idle.values())).connections
        name = f"4 · {n:,} idle joined connections, 1 instance"
        summary.add(
            name,
            "MB RSS per 1000 connections (lower is better)",
            {s: x.mb_per_1000 for s, x in idle.items()},
            digits=1,
        )
        summary.add(
            name,
            "asyncio tasks per connection",
            {s: x.tasks_per_conn for s, x in idle.items()},
            digits=2,
            ratios=False,
        )
        summary.add(
            name,
            "Python heap KB per connection",
            {s: x.heap_kb_per_conn for s, x in idle.items()},
            digits=1,
            ratios=False,
        )
        summary.add(
            name,
            f"connects/s with auth and one join, 0 → {n // 2:,}",
            {s: x.per_s_first for s, x in idle.items()},
        )
        summary.add(
            name,
            f"connects/s with auth and one join, {n // 2:,} → {n:,}",
            {s: x.per_s_second for s, x in idle.items()},
        )
        bursts = {s: x for s, x in idle.items() if x.burst}
        if bursts:
            b = next(iter(bursts.values())).burst
            summary.add(
                name,
                f"of {b:,} simultaneous handshakes, refused or not connected within "
                f"{CONNECT_TIMEOUT_S:g} s (lower is better)",
                {s: float(x.burst_refused) for s, x in bursts.items()},
                ratios=False,
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
            {ROOMCAST: best("roomcast"), ROOMCAST_PSIO: None, PLAIN: best("python-socketio")},
            ratios=False,
        )

    main = _roomcast_of(servers)
    w(["# Benchmarks", ""])
    w(
        [
            "roomcast against peers doing the same broadcast and nothing else, with the "
            "same load generator: "
            + ", ".join(f"**{LABELS[s]}**" for s in servers)
            + ". roomcast runs as `roomcast serve` under each Engine.IO engine it has "
            "(ROOMCAST_ENGINE=native: *roomcast*; ROOMCAST_ENGINE=python-socketio: "
            "*roomcast (python-socketio engine)*); **Node socket.io** is socket.io 4.8 with "
            "`@socket.io/redis-adapter` (`benchmarks/peers/node/`); **plain "
            "python-socketio** is python-socketio with `AsyncRedisManager` "
            "(`benchmarks/peers/plain_socketio.py`); the **floor** is a few lines of raw "
            "uvloop speaking just enough Engine.IO and Socket.IO for the load generator "
            "(`benchmarks/peers/floor.py`), writing one pre-built frame per recipient "
            "(*write per recipient*) or one write per socket per loop iteration (*corked*). "
            "Every server runs its instances over a private `redis-server`, in two "
            "topologies: "
            + "; ".join(f"*{k}*: {t}" for k, t in TOPOLOGIES.items())
            + ". Higher is better except where a row says otherwise; a ratio above 1 means "
            f"{LABELS[main] if main else 'roomcast'} has more of that measure.",
            "",
            f"Every ladder stops under one rule for every server: the first step with p99 "
            f"above {P99_GOAL_MS:g} ms or anything lost (an undelivered event, a failed or "
            "skipped publish, a disconnected client), then one step more. The **headline** "
            f"is the highest rate with p99 ≤ {P99_GOAL_MS:g} ms and nothing lost; the "
            "**peak** is the most deliveries/s any step saw, with that step's p99.",
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
            f"{v['@socket.io/redis-adapter']}, redis-server {v['redis-server']}. The machine "
            "is shared: other work used "
            f"{results.get('background_cores', 0.0):.2f} cores in the 3 s before the run "
            "started; the *other cores* columns hold the rest of it, with the kernel's "
            "loopback networking.",
            "",
            "## Summary",
            "",
            *summary.render(),
            "",
        ]
    )
    sections = {
        "fanout": (
            "1 · Fan-out: one room",
            "Every subscriber joins the same room, half on each instance; `POST "
            "/api/v1/publish` goes to the instances in turn.",
        ),
        "rooms": (
            "2 · Many rooms, published over HTTP",
            "Each room's members are spread over both instances; publishes go round-robin "
            "over every room and both instances.",
        ),
        "clientpub": (
            "3 · Many rooms, published from client sockets",
            "Each room has one more client, joined to it, that publishes into it as a "
            "client: roomcast's client-publishable `annotation_update` (a `create` of a "
            "fresh annotation, SPEC section 4) into `annotation_*` rooms, the peers' "
            "`publish {room, type, data}` event, each acked; the publishing clients are "
            f"spread over both instances, at most {MAX_IN_FLIGHT} unacked publishes each "
            "(a publish due beyond that is skipped and counted). Their own copies of the "
            "event are not counted.",
        ),
    }
    for key, (title, text) in sections.items():
        ladders = results.get(key, [])
        if not ladders:
            continue
        w([f"## {title}", ""])
        w(_image(images, key, base, f"{title}: deliveries/s and p99 against publishes/s"))
        w([text, ""])
        for topology, what in TOPOLOGIES.items():
            rows = [x for s in SERVERS for x in ladders if x.server == s and x.topology == topology]
            if rows:
                w([f"### {_shape(rows)}, topology *{topology}* ({what})", ""])
                w(_ladder_table(rows))
    if idle:
        n = next(iter(idle.values())).connections
        w(
            [
                "## 4 · Idle connections",
                "",
                "One fresh instance (with its Redis) per server, topology *shared*. After 20 "
                "warm-up connections, the clients connect with 64 handshakes in flight, each "
                "sending a JWT in the Socket.IO `40` packet (the peers ignore it) and joining "
                f"`project_{{i % 100}}` (acked), first 0 → {n // 2:,}, then {n // 2:,} → "
                f"{n:,}, and stay idle. Memory is the server's RSS (its process tree) once "
                "they are all connected, minus its RSS before; roomcast's asyncio tasks and "
                "Python heap (pymalloc's allocated blocks plus glibc malloc's in-use bytes) "
                "come from the process itself (`benchmarks/roomcast_launcher.py`, on "
                "SIGUSR1), the same way; the others have no such figure (—). Then a burst "
                "of handshakes (with auth and join) is started at once, all in flight "
                f"together, on top of the idle ones; one not connected and joined within "
                f"{CONNECT_TIMEOUT_S:g} s counts as refused.",
                "",
                "| server | connected | connects/s first half | connects/s second half "
                "| server CPU ms per connection | RSS before MB | RSS idle MB | MB per 1000 "
                "| tasks before → idle | tasks per connection | heap before → idle MB "
                "| heap KB per connection | burst: connected (s) | generator cores (busiest) "
                "| errors |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
            ]
        )
        for s in SERVERS:
            if s not in idle:
                continue
            x = idle[s]
            cpu_ms = 1000 * x.server_cpu_s / x.connected if x.connected else None
            tasks = "—" if x.tasks_idle is None else f"{x.tasks_before:,} → {x.tasks_idle:,}"
            heap = (
                "—"
                if x.heap_idle is None or x.heap_before is None
                else f"{x.heap_before / 2**20:.1f} → {x.heap_idle / 2**20:.1f}"
            )
            burst = f"{x.burst_connected:,}/{x.burst:,} ({x.burst_s:.1f})" if x.burst else "—"
            errors = "; ".join([*x.error_samples, *x.burst_errors][:2]) or "—"
            w(
                [
                    f"| {LABELS[s]} | {x.connected:,}/{x.connections:,} | {x.per_s_first:,.0f} "
                    f"| {x.per_s_second:,.0f} | {num(cpu_ms, 2)} "
                    f"| {x.rss_before_kib / 1024:.1f} | {x.rss_idle_kib / 1024:.1f} "
                    f"| {x.mb_per_1000:.1f} | {tasks} | {num(x.tasks_per_conn, 2)} | {heap} "
                    f"| {num(x.heap_kb_per_conn, 1)} | {burst} "
                    f"| {x.gen_cores:.2f} ({100 * x.gen_busiest:.0f}%) | {errors} |"
                ]
            )
        w([""])
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


def _method(results: dict[str, Any]) -> list[str]:
    timings = results.get("timings", {})
    spent = ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
    return [
        "## How it is measured",
        "",
        "- **Processes.** Each scenario starts, per server, a private `redis-server` "
        "(free loopback port, no persistence) and one or two instances, and stops them by "
        "PID before the next server starts, so the servers never run at the same time. The "
        "clients connect once per server and scenario; each topology is then applied to "
        "the running processes (`sched_setaffinity` on every thread): *each* pins "
        "instance *i* to CPU *i* and leaves the generator and Redis unpinned; *shared* "
        "puts the instances and Redis on CPU 1 and the generator and the suite on CPU 0. "
        "roomcast is `roomcast serve` (through `benchmarks/roomcast_launcher.py`) with its "
        "rate limits raised out of the way; the plain peer runs under uvicorn with uvloop, "
        "as roomcast does. Everything listens on 127.0.0.1.",
        f"- **Load generator.** {results.get('workers', 2)} worker processes (uvloop), "
        "spawned once for the run. Subscribers are raw Socket.IO-over-WebSocket "
        "clients (`benchmarks/harness/wsclient.py`): the handshake, a JWT in the `40` "
        "packet, a `join` with its ack, pong for ping; then per frame only the header and "
        "the event name's prefix are read, and every event frame is counted. One client "
        f"in {PROBE_EVERY} is a *probe*, read as soon as data arrives, which also reads "
        "each event's send time for latency; the others are read every "
        f"{1000 * BULK_TICK_S:.0f} ms from an epoll set, one `recv` taking every frame that "
        "piled up. The server cannot tell probes from the rest. HTTP publishers are raw "
        "HTTP/1.1 keep-alive connections (`httppub.py`), 64 per worker, one request in "
        "flight each; client publishers are joined Socket.IO clients (`sockpub.py`).",
        "- **A step.** Open loop: publish *i* is due at *i*/rate s, split over the workers "
        "with interleaved schedules, whatever the server answered; a publish due while "
        "every connection is busy is skipped and counted. Each event carries its send "
        'time (`stage` = `"<step>:<time_ns>"`). After the last answer the step waits for '
        "every expected delivery, or until none arrived for 0.5 s, at most the drain time. "
        "*deliveries/s* is the step's deliveries over the time from its first publish to "
        "its last delivery (at least the publishing time), so a server that falls behind "
        "is charged for its backlog. *p50/p99*: publish-to-receive time of the probes' "
        "events, one machine clock; it includes the HTTP request (or the client emit) and "
        "any queueing.",
        "- **The ladder.** Publish rates rise by x1.5 per step (after one unrecorded "
        f"warm-up step). A step meets the goal (✓) when its p99 ≤ {P99_GOAL_MS:g} ms and "
        "nothing was lost: every accepted publish's deliveries arrived within the drain "
        "time, no publish failed or was skipped, no client was disconnected. The ladder "
        "stops one step after the first that misses it, the same rule for every server and "
        "scenario, with no time budget. *Headline*: the deliveries/s of the highest-rate "
        "step that meets the goal; *peak*: the step with the most deliveries/s, with its "
        "p99.",
        "- **What limits the generator.** The machine has two CPUs; in *each* the "
        "generator, Redis and the kernel's loopback TCP work take CPU from the servers; "
        "in *shared* the server under test (its instances and Redis) has one CPU and the "
        "generator the other. *other cores* is what the machine was busy with beyond the "
        "server, Redis and the generator: the kernel's loopback network processing "
        "(softirq time is charged to no process) and other work on this shared machine; "
        "before each ladder the suite waits (at most 10 s) for other work to drop under "
        "0.25 cores. The generator's CPU is in every table (its busiest process far below "
        "100% means no generator process was saturated).",
        "- **Not compared.** The peers and the floor have no authentication, room rules, "
        "sequencing, history or presence; roomcast does all of these on every join and "
        "publish.",
        f"- Time per scenario in this run: {spent}.",
        "",
        "Cross-instance latency alone is measured by `benchmarks/cluster_latency.py` "
        "([benchmarks-cluster.md](benchmarks-cluster.md)).",
        "",
    ]
