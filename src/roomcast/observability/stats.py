"""InstanceStats: what /api/v1/stats says about this instance, read when asked.

The edge reads counts through it instead of reaching into the gateway and the hub,
so the HTTP layer depends on four numbers, not on the objects that hold them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..domain import Counters
from .metrics import Metrics


@dataclass(frozen=True, slots=True)
class InstanceStats:
    """Live figures of one instance; the callables are read at each request."""

    instance_id: str
    started_at_ms: int
    metrics: Metrics
    counters: Counters
    connection_count: Callable[[], int]
    room_count: Callable[[], int]

    def events_in(self) -> int:
        """Events accepted by this instance, every source and type together."""
        return int(sum(_counter_total(self.metrics.events_in)))

    def events_out(self) -> int:
        """Event deliveries to this instance's sockets (one per recipient)."""
        return self.counters.events_out


def _counter_total(counter: Any) -> list[float]:
    return [
        sample.value
        for metric in counter.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    ]
