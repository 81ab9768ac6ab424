"""WebhookRecorder: the webhook events of SPEC section 10, made and journaled.

RoomService calls it right after what an event reports: a client's publish once it
is sequenced (`client_event`, its envelope; over Redis the broker journals it
itself, in the script that sequences it, once `journal_in` handed it the
journal: two instances publishing into one room could otherwise journal their
events in the opposite order of their seqs), a user's first arrival or last
departure (`presence`; the reaper's departures pass through the same path), and a
room's first user or last (`room`: occupied, vacated; rooms without presence have
no occupancy). Each event gets its own id (a ULID), kept through every resend, by
which a receiver deduplicates. Only the configured kinds are journaled.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import structlog
from redis.exceptions import RedisError

from ..brokers.redis_batch import JournalKeys
from ..domain import JSON, PresenceChange, Publication
from ..errors import BrokerUnavailable
from ..ids import new_event_ids
from .webhook_journal import RedisJournal, WebhookJournal

KINDS = frozenset({"client_event", "presence", "room"})


def _compact(event: JSON) -> str:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


@runtime_checkable
class JournalingBroker(Protocol):
    """A broker that can journal client events as it sequences them (RedisBroker)."""

    def journal_client_events(self, journal: JournalKeys) -> None: ...


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
        self._in_broker = False  # the broker journals client events (journal_in)

    def journal_in(self, broker: object) -> bool:
        """Have `broker` journal client events in its sequencing step, if it can.

        Over Redis, journaling after the publish lets two instances' events of one
        room reach the journal out of seq order; in the script that sequences them
        they cannot. Returns whether the broker took it on (then `client_event`
        journals nothing itself).
        """
        if (
            "client_event" in self._kinds
            and isinstance(self._journal, RedisJournal)
            and isinstance(broker, JournalingBroker)
        ):
            broker.journal_client_events(self._journal.keys)
            self._in_broker = True
        return self._in_broker

    async def client_event(self, publication: Publication) -> None:
        """A client-published event, now sequenced (or answered as a duplicate).

        Raises BrokerUnavailable if it cannot be journaled: the client retries.
        """
        if "client_event" not in self._kinds or self._in_broker:
            return  # none, or journaled already, atomically with its seq (a repeat's too)
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
