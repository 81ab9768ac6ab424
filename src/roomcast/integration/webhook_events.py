"""WebhookRecorder: the webhook events of SPEC section 10, made and journaled.

RoomService calls it right after what an event reports: a client's publish once it
is sequenced (`client_event`, its envelope), a user's first arrival or last
departure (`presence`; the reaper's departures pass through the same path), and a
room's first user or last (`room`: occupied, vacated; rooms without presence have
no occupancy). Each event gets its own id (a ULID), kept through every resend, by
which a receiver deduplicates. Only the configured kinds are journaled.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import structlog
from redis.exceptions import RedisError

from ..domain import JSON, PresenceChange, Publication
from ..errors import BrokerUnavailable
from ..ids import new_event_ids
from .webhook_journal import WebhookJournal

KINDS = frozenset({"client_event", "presence", "room"})


def _compact(event: JSON) -> str:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


class WebhookRecorder:
    def __init__(
        self,
        journal: WebhookJournal,
        kinds: frozenset[str],
        log: structlog.stdlib.BoundLogger,
        on_lost: Callable[[int], object],
    ) -> None:
        self._journal = journal
        self._kinds = kinds & KINDS
        self._log = log
        self._lost = on_lost

    async def client_event(self, publication: Publication) -> None:
        """A client-published event, now sequenced (or answered as a duplicate).

        Raises BrokerUnavailable if it cannot be journaled: the client retries.
        """
        if "client_event" not in self._kinds:
            return
        event = {
            "id": f"ce{publication.id}",
            "kind": "client_event",
            "event": publication.envelope(),
        }
        try:
            await self._journal.append([_compact(event)])
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable("the webhook journal is unreachable; retry") from exc

    async def presence(self, change: PresenceChange) -> None:
        """A presence change: the room's occupancy first on arrival, last on departure."""
        if not change.is_visible:
            return
        events: list[JSON] = []
        if change.joined is not None and change.count == 1 and "room" in self._kinds:
            events.append({"kind": "room", "room": change.room, "state": "occupied"})
        if "presence" in self._kinds:
            events.append(
                {
                    "kind": "presence",
                    "room": change.room,
                    "joined": change.joined.to_wire() if change.joined else None,
                    "left": change.left.to_wire() if change.left else None,
                }
            )
        if change.left is not None and change.count == 0 and "room" in self._kinds:
            events.append({"kind": "room", "room": change.room, "state": "vacated"})
        await self._record(events)

    async def _record(self, events: list[JSON]) -> None:
        if not events:
            return
        ids = new_event_ids(len(events))
        lines = [_compact({"id": i, **e}) for i, e in zip(ids, events, strict=True)]
        try:
            await self._journal.append(lines)
        except (RedisError, OSError) as exc:
            self._log.warning("webhook.journal_failed", room=events[0].get("room"), error=str(exc))
            self._lost(len(lines))
