"""Refusals: the one place a RoomcastError becomes an answer, and where it is counted.

A refusal answers a Socket.IO event as the ack `{"ok": false, "error": {...}}`
(`ack`) or an HTTP request as `{"error": {...}}` with the error's status (`http`);
both count it in roomcast_refusals by code. An error that is reported inside a
successful answer (one event of a batch) is counted with `count`.
"""

from __future__ import annotations

from ..domain import JSON
from ..errors import RoomcastError
from ..observability.metrics import Metrics


class Refusals:
    def __init__(self, metrics: Metrics) -> None:
        self._counter = metrics.refusals

    def count(self, exc: RoomcastError) -> None:
        self._counter.labels(exc.code).inc()

    def ack(self, exc: RoomcastError) -> JSON:
        """The Socket.IO ack refusing an event."""
        self.count(exc)
        return wire_error(exc)

    def http(self, exc: RoomcastError) -> tuple[int, JSON]:
        """The HTTP status and body refusing a request."""
        self.count(exc)
        return exc.http_status, {"error": exc.to_wire()}


def wire_error(exc: RoomcastError) -> JSON:
    """The ack of an event refused before it counts as a request (not counted)."""
    return {"ok": False, "error": exc.to_wire()}
