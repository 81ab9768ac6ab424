"""Publisher: the one publish path, shared by clients, the HTTP API and workers.

Whoever publishes, an event is checked the same way (its type exists, is not the
server's own, fits the room's kind and its schema), carries the same guard (an
annotation write's, under its lease), is handed to the broker as one
PublishCommand and is measured under the caller's `source`. Only the idempotency
key's scope differs, on purpose: a client's `client_event_id` is scoped to its user
(`client_key`), an API caller's key to the API (`api_key`), so that neither can
answer for the other.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import fields
from typing import Any, Protocol

from ..brokers.base import PublishCommand, PublishOutcome, PublishResult, RoomStreams
from ..brokers.redis_batch import ClientCommand
from ..domain import JSON, Identity
from ..editing.rules import AnnotationWrite
from ..errors import Forbidden, RoomcastError
from ..observability.metrics import Metrics
from ..protocol.events import EventTypes
from .names import RoomRef


def api_key(key: str | None) -> str | None:
    """The stored key of an HTTP or worker publish's idempotency_key."""
    return f"k:{key}" if key else None


def client_key(user_id: str, client_event_id: str | None) -> str | None:
    """The stored key of a client publish's client_event_id (one user's namespace)."""
    return f"c:{user_id}:{client_event_id}" if client_event_id else None


class PublishProxy(Protocol):
    """The platform's word on a client's event (SPEC 10's publish proxy).

    Asked after roomcast's own checks and before the event is sequenced: returns
    None to allow, new data to allow with it instead, or raises a RoomcastError to
    refuse (the platform's code and details, or platform_unavailable).
    """

    async def __call__(
        self,
        identity: Identity,
        room: str,
        event_type: str,
        data: JSON,
        client_event_id: str | None,
    ) -> JSON | None: ...


def write_guard(event_type: str, data: JSON, user_id: str) -> AnnotationWrite | None:
    """The concurrency guard an event carries (only annotation_update has one)."""
    if event_type != "annotation_update":
        return None
    fencing: Any = data.get("fencing_token")
    return AnnotationWrite(
        annotation_id=data["annotation_id"],
        action=data["action"],
        base_version=data.get("base_version"),
        user_id=user_id,
        fencing_token=fencing,
    )


_FIELDS = tuple(f.name for f in fields(PublishCommand))


class Publisher:
    def __init__(
        self, broker: RoomStreams, event_types: EventTypes, metrics: Metrics | None = None
    ) -> None:
        self._broker = broker
        self._types = event_types
        self._metrics = metrics

    def validate(self, room: RoomRef, event_type: str, data: object) -> tuple[JSON, str]:
        """Check an event; returns its clean data, and the same as compact JSON.

        Raises InvalidType, Forbidden (a server-only type), InvalidPayload.
        """
        if self._types.get(event_type).server_only:
            raise Forbidden(f"{event_type} events are published by the server only")
        return self._types.validate_with_json(event_type, room.kind.name, data)

    def command(
        self,
        room: RoomRef,
        event_type: str,
        clean: tuple[JSON, str],
        *,
        actor: JSON | None,
        user_id: str,
        idempotency_key: str | None,
        client_event_id: str | None = None,
    ) -> PublishCommand:
        """The command of a checked event (`clean` from `validate`); the key is scoped."""
        data, data_json = clean
        return PublishCommand(
            room=room.name,
            type=event_type,
            data=data,
            actor=actor,
            client_event_id=client_event_id,
            idempotency_key=idempotency_key,
            guard=write_guard(event_type, data, user_id),
            data_json=data_json,
        )

    async def publish(self, command: PublishCommand, source: str) -> PublishOutcome:
        """Publish one command, timing it and counting it unless it was a duplicate.

        A "client" command is marked as a client's (ClientCommand): with webhooks on,
        the broker journals it in the step that sequences it (SPEC 10's room order).
        """
        started = time.perf_counter()
        if source == "client" and not isinstance(command, ClientCommand):
            command = ClientCommand(**{f: getattr(command, f) for f in _FIELDS})
        outcome = await self._broker.publish(command)
        if self._metrics is not None:
            self._metrics.publish_timer(source).observe(time.perf_counter() - started)
            if not outcome.duplicate:
                self._metrics.events_in.labels(command.type, source).inc()
        return outcome

    async def publish_many(
        self, commands: Sequence[PublishCommand], source: str, started: float | None = None
    ) -> list[PublishResult]:
        """Publish several commands; one result each, in order (brokers' publish_many).

        `started` (time.perf_counter) times the batch from when its caller began it.
        """
        started = time.perf_counter() if started is None else started
        outcomes = await self._broker.publish_many(commands)
        if self._metrics is None:
            return outcomes
        # Timed once per batch: per event it would cost ~1 us of a ~12 us event.
        self._metrics.publish_timer(source).observe(time.perf_counter() - started)
        counts: dict[str, int] = {}  # type -> events published, for the metric
        for command, outcome in zip(commands, outcomes, strict=True):
            if not isinstance(outcome, RoomcastError) and not outcome.duplicate:
                counts[command.type] = counts.get(command.type, 0) + 1
        for event_type, count in counts.items():
            self._metrics.events_in.labels(event_type, source).inc(count)
        return outcomes
