"""What one step of load measured, and what a ladder of steps adds up to."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

P99_GOAL_MS = 100.0


def percentile(sorted_values: Sequence[int | float], q: float) -> float | None:
    """Nearest-rank percentile of an ascending sequence (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), -(-int(q * len(sorted_values)) // 100)))
    return float(sorted_values[rank - 1])


@dataclass
class Step:
    """One step: publishes at `rate` per second, each due to reach `members` clients."""

    rate: float
    members: int
    duration_s: float
    planned: int = 0
    ok: int = 0
    errors: int = 0
    skipped: int = 0
    deliveries: int = 0
    window_s: float = 0.0  # first publish to last delivery
    wall_s: float = 0.0  # over which the CPU figures were taken
    p50_ms: float | None = None
    p99_ms: float | None = None
    samples: int = 0
    server_cpu_s: float = 0.0  # all instances
    server_busiest_s: float = 0.0  # the busiest instance
    machine_busy_s: float = 0.0  # every CPU of the machine, busy time
    redis_cpu_s: float = 0.0
    gen_cpu_s: float = 0.0
    gen_busiest_s: float = 0.0  # the busiest generator process
    gen_sys_s: float = 0.0  # generator CPU spent in the kernel
    lost: int = 0  # subscribers that were disconnected during the step
    error_samples: list[str] = field(default_factory=list)

    @property
    def deliveries_per_s(self) -> float:
        return self.deliveries / self.window_s if self.window_s > 0 else 0.0

    @property
    def offered_per_s(self) -> float:
        return self.rate * self.members

    @property
    def delivered_frac(self) -> float:
        """Deliveries over what the accepted publishes were due to deliver."""
        return self.deliveries / (self.ok * self.members) if self.ok else 0.0

    @property
    def server_cores(self) -> float:
        return self.server_cpu_s / self.wall_s if self.wall_s else 0.0

    @property
    def server_busiest(self) -> float:
        return self.server_busiest_s / self.wall_s if self.wall_s else 0.0

    @property
    def machine_cores(self) -> float:
        return self.machine_busy_s / self.wall_s if self.wall_s else 0.0

    @property
    def gen_cores(self) -> float:
        return self.gen_cpu_s / self.wall_s if self.wall_s else 0.0

    @property
    def other_cores(self) -> float:
        """Busy cores that were not the server, Redis or the generator: other work on the
        machine and the kernel's network processing."""
        ours = self.server_cpu_s + self.redis_cpu_s + self.gen_cpu_s
        return max(0.0, self.machine_busy_s - ours) / self.wall_s if self.wall_s else 0.0

    @property
    def gen_busiest(self) -> float:
        """The busiest generator process's share of one core (1.0: a full core)."""
        return self.gen_busiest_s / self.wall_s if self.wall_s else 0.0

    @property
    def undelivered(self) -> int:
        """Deliveries the accepted publishes were due and that did not arrive in the drain."""
        return max(0, self.ok * self.members - self.deliveries)

    @property
    def loss(self) -> int:
        """Anything lost: undelivered deliveries, failed or skipped publishes, dropped clients."""
        return self.undelivered + self.errors + self.skipped + self.lost

    @property
    def within_goal(self) -> bool:
        """p99 <= P99_GOAL_MS and nothing lost: the step counts for the headline."""
        return self.loss == 0 and self.p99_ms is not None and self.p99_ms <= P99_GOAL_MS

    def why_not(self) -> str:
        """Why the step misses the goal ("" when it does not)."""
        why = []
        if self.p99_ms is None:
            why.append("no latency sample")
        elif self.p99_ms > P99_GOAL_MS:
            why.append(f"p99 {self.p99_ms:,.0f} ms")
        if self.undelivered:
            why.append(f"{self.undelivered:,} deliveries missing after the drain")
        if self.errors:
            why.append(f"{self.errors:,} publish errors")
        if self.skipped:
            why.append(f"{self.skipped:,} publishes skipped (every connection busy)")
        if self.lost:
            why.append(f"{self.lost:,} subscribers disconnected")
        return ", ".join(why)


def should_stop(steps: Sequence[Step]) -> bool:
    """The one stop rule, for every server and scenario: rates step up until the first
    step that misses the goal (p99 > P99_GOAL_MS or anything lost), plus one step more,
    so that a peak past the goal can be shown."""
    for i, s in enumerate(steps):
        if not s.within_goal:
            return len(steps) >= i + 2
    return False


@dataclass
class Ladder:
    """Steps at rising publish rates for one server, until it saturates."""

    server: str
    instances: int
    subscribers: int
    steps: list[Step] = field(default_factory=list)
    setup_s: float = 0.0
    note: str = ""
    background_cores: float = 0.0  # other work on the machine just before the ladder
    waited_s: float = 0.0  # waiting for it to drop
    topology: str = "each"  # TOPOLOGIES in scenarios.py
    via: str = "http"  # how publishes arrive: "http" (POST /api/v1/publish) or "socket"

    @property
    def peak(self) -> Step | None:
        return max(self.steps, key=lambda s: s.deliveries_per_s, default=None)

    @property
    def best_within_goal(self) -> Step | None:
        """The headline: the highest-rate step with p99 <= P99_GOAL_MS and nothing lost."""
        ok = [s for s in self.steps if s.within_goal]
        return max(ok, key=lambda s: s.rate, default=None)

    def to_json(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "instances": self.instances,
            "subscribers": self.subscribers,
            "setup_s": self.setup_s,
            "note": self.note,
            "background_cores": self.background_cores,
            "waited_s": self.waited_s,
            "steps": [vars(s) for s in self.steps],
            "topology": self.topology,
            "via": self.via,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Ladder:
        steps = [Step(**s) for s in data["steps"]]
        return cls(
            data["server"],
            data["instances"],
            data["subscribers"],
            steps,
            data["setup_s"],
            data["note"],
            data.get("background_cores", 0.0),
            data.get("waited_s", 0.0),
            data.get("topology", "each"),
            data.get("via", "http"),
        )


@dataclass
class Idle:
    """Idle connections on one fresh instance, each authenticated and joined to a room:
    memory, connect rate in two halves, and a burst of simultaneous handshakes."""

    server: str
    connections: int
    connected: int = 0
    errors: int = 0
    seconds_first: float = 0.0  # 0 -> N/2
    seconds_second: float = 0.0  # N/2 -> N
    rss_before_kib: int = 0
    rss_idle_kib: int = 0
    # from the process itself (roomcast only, benchmarks/roomcast_launcher.py); None elsewhere
    tasks_before: int | None = None
    tasks_idle: int | None = None
    heap_before: int | None = None  # bytes
    heap_idle: int | None = None
    server_cpu_s: float = 0.0
    gen_cpu_s: float = 0.0
    gen_busiest_s: float = 0.0
    background_cores: float = 0.0
    burst: int = 0  # handshakes started at once, after the idle figures were taken
    burst_connected: int = 0
    burst_s: float = 0.0
    burst_errors: list[str] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return self.seconds_first + self.seconds_second

    @property
    def mb_per_1000(self) -> float:
        return (self.rss_idle_kib - self.rss_before_kib) / 1024 * 1000 / max(1, self.connected)

    @property
    def tasks_per_conn(self) -> float | None:
        if self.tasks_idle is None or self.tasks_before is None or not self.connected:
            return None
        return (self.tasks_idle - self.tasks_before) / self.connected

    @property
    def heap_kb_per_conn(self) -> float | None:
        if self.heap_idle is None or self.heap_before is None or not self.connected:
            return None
        return (self.heap_idle - self.heap_before) / 1024 / self.connected

    @property
    def per_s(self) -> float:
        return self.connected / self.seconds if self.seconds else 0.0

    @property
    def per_s_first(self) -> float:
        half = self.connections // 2
        return half / self.seconds_first if self.seconds_first else 0.0

    @property
    def per_s_second(self) -> float:
        rest = self.connections - self.connections // 2
        return rest / self.seconds_second if self.seconds_second else 0.0

    @property
    def burst_refused(self) -> int:
        return self.burst - self.burst_connected

    @property
    def gen_cores(self) -> float:
        return self.gen_cpu_s / self.seconds if self.seconds else 0.0

    @property
    def gen_busiest(self) -> float:
        return self.gen_busiest_s / self.seconds if self.seconds else 0.0
