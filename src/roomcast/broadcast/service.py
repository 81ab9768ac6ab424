"""EventBroadcastService: how the platform's backend and workers publish.

It validates an event against its type and room, then hands it to the broker,
which sequences, stores and fans it out. It needs no Socket.IO server: with a
Redis broker it works from any process that can reach Redis.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, NamedTuple

from ..brokers.base import Broker, PublishCommand
from ..config import Settings
from ..domain import JSON
from ..errors import InvalidPayload, InvalidRoom, RoomcastError
from ..observability.metrics import Metrics
from ..protocol.events import Actor, EventTypes
from ..rooms.names import RoomKinds
from ..rooms.publish import Publisher, api_key
from ..stores import make_broker


class Published(NamedTuple):
    id: str
    epoch: str
    seq: int


class EventBroadcastService:
    def __init__(
        self,
        broker: Broker,
        *,
        kinds: RoomKinds | None = None,
        event_types: EventTypes | None = None,
        metrics: Metrics | None = None,
        owns_broker: bool = False,
    ) -> None:
        self._broker = broker
        self._kinds = kinds or RoomKinds()
        self._types = event_types or EventTypes()
        self._metrics = metrics
        self._owns_broker = owns_broker
        self._publisher = Publisher(broker, self._types, metrics)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        kinds: RoomKinds | None = None,
        event_types: EventTypes | None = None,
    ) -> EventBroadcastService:
        """A service with a broker of its own, for a process that is not the server.

        Call `start()` before publishing and `aclose()` when done (or use
        `async with`). Without a Redis URL the broker is in memory and only this
        process sees the events.
        """
        return cls(make_broker(settings), kinds=kinds, event_types=event_types, owns_broker=True)

    async def start(self) -> None:
        if self._owns_broker:
            await self._broker.start()

    async def aclose(self) -> None:
        if self._owns_broker:
            await self._broker.aclose()

    async def __aenter__(self) -> EventBroadcastService:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def publish(
        self,
        room: str,
        type: str,
        data: JSON,
        *,
        actor: JSON | None = None,
        idempotency_key: str | None = None,
        source: str = "api",
    ) -> Published:
        """Publish one event; returns its (id, epoch, seq).

        Over Redis, calls made concurrently are written together (one round trip
        for many events); awaited one after another, each takes a round trip, so
        prefer `publish_many` or concurrent calls for throughput.

        Raises InvalidRoom, InvalidType, InvalidPayload (bad data, or a type that
        does not belong in the room), Forbidden (a server-only type), Conflict and
        Locked (annotation writes), BrokerUnavailable (nothing was written), and its
        subclass OutcomeUnknown (sent to Redis, no answer within redis_timeout_ms: it
        may still be applied, so retry with an `idempotency_key`, and the same one,
        or the event may be delivered twice). `source` labels the metrics
        (roomcast_events_in, roomcast_publish_latency_seconds): keep it to a few values.
        """
        command = self._command(room, type, data, actor, idempotency_key)
        outcome = await self._publisher.publish(command, source)
        pub = outcome.publication
        return Published(pub.id, pub.epoch, pub.seq)

    def _command(
        self, room: str, type: str, data: Any, actor: Any, idempotency_key: str | None
    ) -> PublishCommand:
        ref = self._kinds.parse(room)
        clean = self._publisher.validate(ref, type, data)
        actor_json: JSON | None = None
        if actor is not None:
            try:
                actor_json = Actor.model_validate(actor).model_dump(mode="json")
            except ValueError:
                raise InvalidPayload("actor must be {user_id, name?}") from None
        return self._publisher.command(
            ref,
            type,
            clean,
            actor=actor_json,
            user_id=actor_json["user_id"] if actor_json else "api",
            idempotency_key=api_key(idempotency_key),
        )

    async def publish_many(
        self, events: Sequence[JSON], *, source: str = "api"
    ) -> list[Published | RoomcastError]:
        """Publish several events; returns, in order, each one's Published or its error.

        `events` are dicts shaped like HTTP publish bodies (room, type, data, actor?,
        idempotency_key?). One event refused (invalid, Conflict, Locked) does not stop
        the others. Each room's events are sequenced in the order given; over Redis
        a whole batch takes a round trip or two instead of one per event. Never
        raises a RoomcastError: a broker failure is BrokerUnavailable in the slots
        of the events it left unwritten, OutcomeUnknown in those it sent and got no
        answer for (see `publish`).
        """
        started = time.perf_counter()
        results: list[Published | RoomcastError | None] = []
        commands: list[PublishCommand] = []
        slots: list[int] = []
        for event in events:
            try:
                command = self._command(
                    event.get("room", ""),
                    event.get("type", ""),
                    event.get("data") or {},
                    event.get("actor"),
                    event.get("idempotency_key"),
                )
            except RoomcastError as exc:
                results.append(exc)
                continue
            slots.append(len(results))
            results.append(None)
            commands.append(command)
        if commands:
            outcomes = await self._publisher.publish_many(commands, source, started)
            for slot, outcome in zip(slots, outcomes, strict=True):
                if isinstance(outcome, RoomcastError):
                    results[slot] = outcome
                else:
                    pub = outcome.publication
                    results[slot] = Published(pub.id, pub.epoch, pub.seq)
        return [r for r in results if r is not None]

    # rooms and users ----------------------------------------------------------------

    async def bind(self, room: str, project_id: str) -> str:
        """Bind a bindable room to a project (its members may then join); returns the room.

        Raises InvalidRoom for a room name that is not one or a kind that cannot be
        bound, BrokerUnavailable.
        """
        ref = self._kinds.parse(room)
        if not ref.kind.bindable:
            raise InvalidRoom(f"{ref.kind.name} rooms cannot be bound to a project")
        await self._broker.bind(ref.name, project_id)
        return ref.name

    async def binding(self, room: str) -> tuple[str, str | None]:
        """The room's canonical name and the project it is bound to (None when unbound)."""
        ref = self._kinds.parse(room)
        return ref.name, await self._broker.binding(ref.name)

    async def disconnect_user(self, user_id: str, reason: str = "api") -> None:
        """Close every connection of the user, on every instance (a control message)."""
        await self._broker.publish_control(
            {"kind": "disconnect_user", "user_id": user_id, "reason": reason}
        )

    # typed helpers for the built-in types --------------------------------------------
    # Keyword arguments beyond the named ones become fields of the event's data.

    async def detection_event(
        self,
        test_session_id: str,
        *,
        frame_id: str | int,
        detections: list[JSON],
        actor: JSON | None = None,
        idempotency_key: str | None = None,
        **extra: Any,
    ) -> Published:
        data = {"frame_id": frame_id, "detections": detections, **extra}
        return await self.publish(
            f"detection_stream_{test_session_id}",
            "detection_event",
            data,
            actor=actor,
            idempotency_key=idempotency_key,
        )

    async def project_progress(
        self,
        project_id: str,
        *,
        completed: int,
        total: int,
        percent: float | None = None,
        actor: JSON | None = None,
        idempotency_key: str | None = None,
        **extra: Any,
    ) -> Published:
        if percent is None:
            percent = round(100.0 * completed / total, 2) if total else 0.0
        data = {"completed": completed, "total": total, "percent": percent, **extra}
        return await self.publish(
            f"project_{project_id}",
            "project_progress_update",
            data,
            actor=actor,
            idempotency_key=idempotency_key,
        )

    async def notify(
        self,
        user_id: str,
        *,
        title: str,
        level: str = "info",
        actor: JSON | None = None,
        idempotency_key: str | None = None,
        **extra: Any,
    ) -> Published:
        data = {"title": title, "level": level, **extra}
        return await self.publish(
            f"user_{user_id}", "notification", data, actor=actor, idempotency_key=idempotency_key
        )

    async def annotation_validated(
        self,
        session_id: str,
        *,
        annotation_id: str,
        version: int,
        status: str,
        validator_id: str,
        actor: JSON | None = None,
        idempotency_key: str | None = None,
        **extra: Any,
    ) -> Published:
        data = {
            "annotation_id": annotation_id,
            "version": version,
            "status": status,
            "validator_id": validator_id,
            **extra,
        }
        return await self.publish(
            f"annotation_{session_id}",
            "annotation_validated",
            data,
            actor=actor,
            idempotency_key=idempotency_key,
        )
