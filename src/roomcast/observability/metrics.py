"""Prometheus metrics of one application, in a registry it owns.

Labels stay low-cardinality: event types, error codes and reasons, never a room
or a user.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
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

    def render(self) -> bytes:
        return generate_latest(self.registry)
