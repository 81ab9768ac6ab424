"""The Broker roles: one room stream per room (sequenced, stored, fanned out), leases,
bindings and control; `Broker` is the four as one backend implements them.

Semantics every implementation keeps (the shared contract tests check them):

- `publish` is one atomic step: check the idempotency key, check the guard (an
  annotation write, under its lease), assign the next seq in the room's epoch, append
  to history, deliver to every subscribed instance. Either all of it happens or none.
- `publish_many` publishes each event as `publish` would, the events of one room
  in the order given; one event refused (Conflict, Locked) or unwritten
  (BrokerUnavailable) leaves the others alone. Events of different rooms are
  independent: no order among rooms is promised.
- An idempotency key seen within its TTL returns the first outcome, with
  `duplicate=True`, and delivers nothing.
- Every instance subscribed to a room receives that room's publications in seq order.
  `subscribe` returns only once delivery is live: anything published after it returns
  is delivered, so a reader that subscribes, then reads history, misses nothing.
- History keeps the newest `history_size` events and is dropped
  `history_ttl_seconds` after the room's last activity; a room whose history was
  lost starts a new epoch, and an `(epoch, seq)` is never handed out twice.
- Lease changes are sequenced room events (`annotation_lock`) like any other.
- Transient messages (presence) and control messages (disconnect a user) are
  delivered once to subscribed instances, never stored.
- `memory_usage` reports the backend's memory as one figure shared by every
  instance: over Redis one instance at a time measures it (INFO memory) and stores
  it for the others, so the server is asked once per period for the whole cluster.
- Every method raises BrokerUnavailable, quickly, when the backend cannot be reached.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ..domain import JSON, HistoryPage, Lease, Member, MemoryUsage, Publication, StreamPosition
from ..editing.rules import AnnotationWrite
from ..errors import BrokerUnavailable, RoomcastError


@dataclass(frozen=True, slots=True)
class PublishCommand:
    room: str
    type: str
    data: JSON
    actor: JSON | None = None
    client_event_id: str | None = None
    idempotency_key: str | None = None  # already scoped by the caller (user or API)
    guard: AnnotationWrite | None = None
    # `data` as compact JSON, when the caller has it already: encoding events is a
    # large part of a publisher's work, and a broker over the network needs the text.
    data_json: str | None = None


@dataclass(frozen=True, slots=True)
class PublishOutcome:
    publication: Publication
    duplicate: bool = False


PublishResult = PublishOutcome | RoomcastError  # one event of publish_many


def unavailable(count: int, message: str) -> list[PublishResult]:
    """One BrokerUnavailable per event, each its own (a caller may add to its details)."""
    return [BrokerUnavailable(message) for _ in range(count)]


@dataclass(frozen=True, slots=True)
class LockOutcome:
    lease: Lease
    publication: Publication


class BrokerSink(Protocol):
    """Where a broker hands what arrives for this instance (the local fan-out)."""

    def on_publication(self, publication: Publication) -> None: ...

    def on_transient(self, room: str, event: str, data: JSON) -> None: ...

    def on_control(self, message: JSON) -> None: ...


class RoomStreams(Protocol):
    """Sequenced room events (stored, replayable) and transient messages (not stored)."""

    async def publish(self, command: PublishCommand) -> PublishOutcome:
        """Sequence, store and deliver one event, atomically (see the module docstring).

        Raises Conflict or Locked when the guard refuses, BrokerUnavailable when
        nothing was written, OutcomeUnknown when it was sent and no answer came.
        """

    async def publish_many(self, commands: Sequence[PublishCommand]) -> list[PublishResult]:
        """Publish several events; one result per command, in the commands' order.

        Each result is the event's outcome or the error `publish` would have raised
        for it (Conflict, Locked, BrokerUnavailable); this never raises for one
        event. Much faster than one `publish` per event over Redis.
        """

    async def position(self, room: str) -> StreamPosition:
        """The room's epoch and head; a room with no event yet gets its epoch here."""

    async def history(self, room: str, since_seq: int, limit: int) -> HistoryPage:
        """Events with seq > since_seq, oldest first, at most `limit`.

        `complete` is False when history no longer reaches back to since_seq + 1.
        """

    async def subscribe(self, room: str) -> None:
        """Start delivering the room's messages to this instance's sink.

        Returns once delivery is live: whatever is published after it returns reaches
        the sink. Not reference-counted: the local hub calls it once per room.
        """

    async def unsubscribe(self, room: str) -> None:
        """Stop delivering the room's messages here (no-op when not subscribed)."""

    async def publish_transient(self, room: str, event: str, data: JSON) -> None:
        """Deliver `event` once to the room's subscribed instances; not stored, no seq."""


class Leases(Protocol):
    """Annotation leases: at most one holder per annotation, each change a room event."""

    async def lock(self, room: str, annotation_id: str, holder: Member, ttl_ms: int) -> LockOutcome:
        """Grant or renew a lease; raise Locked while another user holds it.

        Each grant takes a new fencing token, larger than any before for the annotation.
        """

    async def unlock(self, room: str, annotation_id: str, user_id: str) -> Publication | None:
        """Release the user's lease; None when there was none. Locked if another user's."""

    async def release_holder(self, room: str, user_id: str) -> list[Publication]:
        """Release every lease the user holds in the room (its last connection left)."""

    async def expire_leases(self) -> list[Publication]:
        """Release the leases that ran out, announcing each; returns what was released."""

    async def leases(self, room: str) -> list[Lease]:
        """The room's live leases."""


class Bindings(Protocol):
    """A room's binding to a project: the project's members may then join it."""

    async def bind(self, room: str, project_id: str) -> None:
        """Bind (or re-bind) the room to one project; the last call wins."""

    async def binding(self, room: str) -> str | None:
        """The project the room is bound to, or None."""


class Control(Protocol):
    """Cluster-wide control messages (canaries, disconnect a user): once, never stored."""

    async def publish_control(self, message: JSON) -> None:
        """Deliver `message` once to every instance's sink (`on_control`)."""

    async def ping(self) -> None:
        """Raise BrokerUnavailable unless the backend answers."""

    @property
    def listening(self) -> bool:
        """True while deliveries can reach this instance (its subscription is up)."""


class Broker(RoomStreams, Leases, Bindings, Control, Protocol):
    """The four roles, as one backend (memory or Redis) implements them, and its lifecycle.

    Each consumer takes the role it uses; only the wiring (app.py) holds the whole.
    """

    def attach(self, sink: BrokerSink) -> None:
        """Set where deliveries go; called once before `start`."""

    async def start(self) -> None:
        """Connect and start listening; `subscribe` may be called after this."""

    async def aclose(self) -> None:
        """Stop listening and close connections; the broker is not used again."""

    async def memory_usage(self, refresh_seconds: float) -> MemoryUsage | None:
        """The backend's memory, measured at most once per `refresh_seconds` cluster-wide.

        Every instance calling this about once per period gets the same figure, about
        a period old at most (a stored figure expires after three periods): the first
        caller of a period measures and stores it, the others read what was stored,
        and a caller that dies mid-period hands the job on. None when there is no figure:
        an in-process backend (memory) has no server of its own to measure, and over
        Redis none is stored yet. Raises BrokerUnavailable.
        """

    def sweep(self) -> int:
        """Forget local state that expired (rooms, idempotency keys); returns how much."""
