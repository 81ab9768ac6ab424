"""Prometheus metrics of one application, in a registry it owns.

Labels stay low-cardinality: event types, sources, error codes and reasons, never
a room or a user. Histograms are in seconds; observing one costs about a
microsecond, so hot paths observe once per event or per batch, never per recipient.
The process, GC and platform collectors are registered on the same registry, so
two applications in one process each export their own, complete set.
"""

from __future__ import annotations

import math

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

from ..domain import MemoryUsage

# 0.1 ms .. 10 s: a publish over loopback Redis takes ~0.2-1 ms, a stalled one seconds.
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._publish_children: dict[str, Histogram] = {}  # source -> labelled child
        ProcessCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.connections = Gauge(
            "roomcast_connections",
            "Open Socket.IO connections on this instance",
            registry=self.registry,
        )
        self.rooms = Gauge(
            "roomcast_rooms", "Rooms with a member on this instance", registry=self.registry
        )
        self.events_in = Counter(
            "roomcast_events_in",
            "Room events accepted for publishing, by type and source",
            ["type", "source"],
            registry=self.registry,
        )
        self.events_out = Counter(
            "roomcast_events_out",
            "Room events handed to local sockets, by type",
            ["type"],
            registry=self.registry,
        )
        self.refusals = Counter(
            "roomcast_refusals",
            "Requests refused, by error code",
            ["code"],
            registry=self.registry,
        )
        self.queue_overflow = Counter(
            "roomcast_queue_overflow",
            "Items that found a bounded queue full and waited in its overflow (none is lost)",
            ["queue"],
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "roomcast_rate_limited_events",
            "Client events refused for rate",
            registry=self.registry,
        )
        self.disconnects = Counter(
            "roomcast_server_disconnects",
            "Connections closed by the server, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.replayed = Counter(
            "roomcast_replayed_events",
            "Events replayed from history on join",
            registry=self.registry,
        )

        self.publish_latency = Histogram(
            "roomcast_publish_latency_seconds",
            "From a publish call to the broker's acknowledgement (one per publish_many "
            "batch), by source",
            ["source"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.fanout_lag = Histogram(
            "roomcast_fanout_lag_seconds",
            "From an event's sequencing (its ts) to its hand-over to local sockets, "
            "once per event on this instance",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.redis_roundtrip = Histogram(
            "roomcast_redis_roundtrip_seconds",
            "Round trip of the readiness probe's PING to Redis (none in memory mode)",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        # NaN until a figure is known, and in memory mode: "unknown", never a false 0.
        self.redis_used_memory = Gauge(
            "roomcast_redis_used_memory_bytes",
            "used_memory of the Redis roomcast uses, as measured by one instance for all",
            registry=self.registry,
        )
        self.redis_maxmemory = Gauge(
            "roomcast_redis_maxmemory_bytes",
            "maxmemory of the Redis roomcast uses (0: no limit set)",
            registry=self.registry,
        )
        self.set_redis_memory(None)
        self.junk_packets = Counter(
            "roomcast_junk_packets",
            "Client packets that are no protocol event, by reason: undecodable, too_deep, "
            "reserved_event, arguments, unknown_event",
            ["reason"],
            registry=self.registry,
        )
        self.webhook_batches = Counter(
            "roomcast_webhook_batches",
            "Webhook batches POSTed, by outcome: delivered (2xx), refused (another answer), "
            "unreachable (no answer in time, or no connection)",
            ["outcome"],
            registry=self.registry,
        )
        self.webhook_events = Counter(
            "roomcast_webhook_events_delivered",
            "Webhook events in batches the platform acknowledged (resends included)",
            registry=self.registry,
        )
        self.webhook_dead_letters = Counter(
            "roomcast_webhook_dead_letters",
            "Webhook events lost: evicted from the bounded journal before they were "
            "delivered, or (presence, room) never journaled because Redis failed",
            registry=self.registry,
        )
        self.webhook_lag = Gauge(
            "roomcast_webhook_lag_seconds",
            "Age of the oldest webhook event not yet acknowledged, as seen by the deliverer",
            registry=self.registry,
        )
        self.proxy_calls = Counter(
            "roomcast_proxy_calls",
            "Calls to the platform's proxies (SPEC 10), by proxy (join, publish) and outcome: "
            "allow, refuse, timeout, error (5xx, unreachable, bad answer), open (breaker)",
            ["proxy", "outcome"],
            registry=self.registry,
        )
        self.proxy_latency = Histogram(
            "roomcast_proxy_latency_seconds",
            "From a proxy call's start to its answer or failure, by proxy (none while "
            "the breaker is open)",
            ["proxy"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def publish_timer(self, source: str) -> Histogram:
        """The latency histogram's child for a source (labels() costs as much as observe())."""
        child = self._publish_children.get(source)
        if child is None:
            child = self._publish_children[source] = self.publish_latency.labels(source)
        return child

    def set_redis_memory(self, usage: MemoryUsage | None) -> None:
        """Export a memory figure; None (no figure, or it could not be read) is NaN."""
        if usage is None:
            self.redis_used_memory.set(math.nan)
            self.redis_maxmemory.set(math.nan)
        else:
            self.redis_used_memory.set(usage.used_bytes)
            self.redis_maxmemory.set(usage.max_bytes)

    def render(self) -> bytes:
        return generate_latest(self.registry)
