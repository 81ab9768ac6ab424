"""LocalHub: this instance's rooms and members, and the one road to a socket.

The hub holds room -> members, and its room table is the reference count that
drives the broker: the first member of a room on this instance subscribes to the
room's stream (`join`), the last one to leave unsubscribes (`leave`). Every event
pushed to a member goes through it, replayed (`replay`) or live (`on_publication`),
under one slow-consumer policy: a member whose queue is full misses a skippable
event (see below) and is otherwise disconnected as `slow_consumer`; a replay, which
the server pulls and so can pace, first waits (REPLAY_DRAIN_SECONDS at most) for
the member's backlog to drain instead, so that no join pushes more than the
per-connection bound at once.

The replay-to-live invariant, stated once: a joining member is parked
(`catching_up`) before anything is read for it, so every live event from then on is
kept in its buffer; the replay sends stored events after the client's position; then
`go_live` hands over the parked events newer than the last one replayed and makes the
member live, and the caller sends those and the join ack without an await in between.
The client therefore sees the replay, the parked events, the ack, then live events:
in seq order, with no gap (the buffer began before the history read) and no
duplicate (parked events at or below the last replayed seq are dropped).

The hot path encodes an event once and gives the same packet to every recipient;
per recipient there is one queue-length check and one enqueue. Two things break
that uniformity, both rare and both off the common path: a member still catching up
(`buffer` is a list), and a member whose queue is full. For an event type marked
`skippable` (the built-in `detection_event`) the latter is skipped and its next such
event carries `skipped: n`; a skipped member that catches up while the stream is
quiet is not left waiting for a next event: when its backlog drains (the outlet says
so, `DrainSignal`), it is sent the unsequenced notice `skipped {"room", "skipped": n,
"seq": <the last seq skipped>}` instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..domain import JSON, Publication
from ..protocol.events import BUILTIN_TYPES

#: The longest a replay waits for a member's backlog to drain before the member is
#: a slow consumer.
REPLAY_DRAIN_SECONDS = 10.0

_BUILTIN_SKIPPABLE = frozenset(t.name for t in BUILTIN_TYPES if t.skippable)

#: The unsequenced event telling a member how many events it missed, once it caught up.
SKIPPED_EVENT = "skipped"


class Outlet(Protocol):
    """The transport's side of delivery (Socket.IO over Engine.IO in production)."""

    def encode(self, event: str, payload: JSON) -> Any:
        """Encode once an event that may then be pushed to any number of sockets."""

    def encode_json(self, event: str, payload_json: str) -> Any:
        """`encode`, of a payload that is JSON text already (a stored envelope): the
        same packet as `encode(event, json.loads(payload_json))`, without the decode."""

    def push(self, sid: str, packet: Any, *, force: bool = False) -> bool:
        """Queue a packet for one socket; False when its queue is full (unless forced)."""


@runtime_checkable
class DrainSignal(Protocol):
    """An outlet that can say when a socket it refused has room again."""

    def notify_drained(self, sid: str, callback: Callable[[], None]) -> None:
        """Call `callback` once, when the socket's backlog has drained (never if it closes)."""


@dataclass(slots=True)
class Membership:
    """One socket's membership of one room on this instance."""

    sid: str
    buffer: list[Publication] | None = None  # live events parked during a replay
    skipped: int = 0  # detection events skipped since the last one delivered
    skipped_seq: int = 0  # the seq of the last one skipped


@dataclass(slots=True)
class _LocalRoom:
    members: dict[str, Membership] = field(default_factory=dict)


def _resolver(future: asyncio.Future[None]) -> Callable[[], None]:
    def resolve() -> None:
        if not future.done():
            future.set_result(None)

    return resolve


class Subscriber(Protocol):
    """The part of the room streams the hub drives (brokers.base.RoomStreams)."""

    async def subscribe(self, room: str) -> None: ...

    async def unsubscribe(self, room: str) -> None: ...


class LocalHub:
    """Room membership on this instance, and delivery to it (implements BrokerSink)."""

    def __init__(
        self,
        outlet: Outlet,
        *,
        on_slow_consumer: Callable[[str], None],
        on_control: Callable[[JSON], None],
        on_delivered: Callable[[str, int], None],
        observe_lag: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.time,
        skippable: frozenset[str] = _BUILTIN_SKIPPABLE,
        subscriber: Subscriber | None = None,
    ) -> None:
        """`observe_lag` gets, once per event, the seconds from its `ts` to its hand-over.

        `skippable`: the event types a full queue skips (EventTypes.skippable()).
        `subscriber`: the broker `join` and `leave` subscribe and unsubscribe (only the
        synchronous membership methods work without one).
        """
        self._skippable = skippable
        self._subscriber = subscriber
        self._live: set[str] = set()  # rooms the broker is subscribed to
        # Serialises subscribe/unsubscribe so a quick leave-then-join of a room
        # cannot reach the broker in the opposite order.
        self._subscribing: dict[str, tuple[asyncio.Lock, list[int]]] = {}
        self._outlet = outlet
        self._observe_lag = observe_lag
        self._clock = clock
        self._rooms: dict[str, _LocalRoom] = {}  # room -> members on this instance
        self._on_slow_consumer = on_slow_consumer
        self._on_control = on_control
        self._on_delivered = on_delivered
        self._drain_signal = outlet if isinstance(outlet, DrainSignal) else None

    # joining and leaving (membership and the broker subscription) ------------------

    async def join(self, room: str, sid: str) -> None:
        """Add a member, parked (catching up), and return once the room's delivery is live.

        On failure the membership is undone, so the caller has nothing to undo.
        """
        self.add(room, sid, catching_up=True)
        done = False
        try:
            if room not in self._live:
                async with self._serial(room):
                    if room not in self._live and room in self._rooms:
                        await self._broker().subscribe(room)
                        self._live.add(room)
            done = True
        finally:
            if not done:
                await self.leave(room, sid)

    async def leave(self, room: str, sid: str) -> None:
        """Remove a member; the room's last member here unsubscribes from its stream."""
        self.remove(room, sid)
        await self.release(room)

    async def release(self, room: str) -> None:
        """Unsubscribe from the room's stream if it has no member here (after `remove`:
        a member removed at once gets nothing more, the broker is told after)."""
        if room in self._rooms or room not in self._live:
            return
        async with self._serial(room):
            if room in self._live and room not in self._rooms:
                self._live.discard(room)
                await self._broker().unsubscribe(room)

    @contextlib.asynccontextmanager
    async def _serial(self, room: str) -> AsyncIterator[None]:
        """One room's subscribe and unsubscribe, one at a time (rooms apart run at once)."""
        entry = self._subscribing.get(room)
        if entry is None:
            entry = self._subscribing[room] = (asyncio.Lock(), [0])
        lock, users = entry
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._subscribing[room]

    def _broker(self) -> Subscriber:
        if self._subscriber is None:
            raise RuntimeError("this hub has no broker to subscribe to")
        return self._subscriber

    def size(self) -> int:
        """Rooms with a member here plus rooms subscribed to, for leak checks."""
        return len(self._rooms) + len(self._live)

    # replay ----------------------------------------------------------------------

    async def replay(self, sid: str, publication: Publication) -> bool:
        """Send one stored event to a member catching up; False if it is a slow consumer.

        Within the per-connection bound the event goes at once; past it the replay
        waits for the backlog to drain (REPLAY_DRAIN_SECONDS at most), and a member
        that does not drain is closed as `slow_consumer` like a live one.
        """
        packet = self._packet(publication)
        if self._outlet.push(sid, packet):
            return True
        if self._drain_signal is None:
            return self._outlet.push(sid, packet, force=True)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REPLAY_DRAIN_SECONDS
        while True:
            drained: asyncio.Future[None] = loop.create_future()
            self._drain_signal.notify_drained(sid, _resolver(drained))
            try:
                await asyncio.wait_for(drained, max(0.0, deadline - loop.time()))
            except TimeoutError:
                self._on_slow_consumer(sid)
                return False
            if self._outlet.push(sid, packet):
                return True

    # membership ------------------------------------------------------------------

    def has_room(self, room: str) -> bool:
        return room in self._rooms

    def add(self, room: str, sid: str, *, catching_up: bool) -> tuple[Membership, bool]:
        """Add a member (parking live events while it catches up); True if the room is new here."""
        local = self._rooms.get(room)
        created = local is None
        if local is None:
            local = self._rooms[room] = _LocalRoom()
        membership = local.members.get(sid)
        if membership is None:
            membership = local.members[sid] = Membership(sid)
        if catching_up and membership.buffer is None:
            membership.buffer = []
        return membership, created

    def go_live(self, room: str, sid: str, last_seq: int) -> list[Publication]:
        """Take the member's parked events newer than `last_seq`, and make it live.

        The caller sends what is returned before it awaits anything else, so no live
        event can overtake the parked ones.
        """
        membership = self._rooms[room].members[sid]
        parked = membership.buffer or []
        membership.buffer = None
        return [p for p in parked if p.seq > last_seq]

    def hand_over(self, room: str, sid: str, last_seq: int) -> int:
        """`go_live`, sending the parked events at once; returns the last seq sent.

        The parked events go whatever the member's backlog: there are only as many as
        arrived during its join, and the switch must not await.
        """
        for publication in self.go_live(room, sid, last_seq):
            packet = self._outlet.encode(publication.type, publication.envelope())
            self._outlet.push(sid, packet, force=True)
            last_seq = publication.seq
        return last_seq

    def remove(self, room: str, sid: str) -> bool:
        """Remove a member; True when the room has no member left here."""
        local = self._rooms.get(room)
        if local is None:
            return False
        local.members.pop(sid, None)
        if not local.members:
            del self._rooms[room]
            return True
        return False

    def room_count(self) -> int:
        return len(self._rooms)

    def member_count(self, room: str) -> int:
        local = self._rooms.get(room)
        return len(local.members) if local else 0

    # BrokerSink ------------------------------------------------------------------

    def on_publication(self, publication: Publication) -> None:
        local = self._rooms.get(publication.room)
        if local is None:
            return
        packet = self._packet(publication)
        skippable = publication.type in self._skippable
        push = self._outlet.push
        delivered = 0
        for membership in local.members.values():
            if membership.buffer is not None:
                membership.buffer.append(publication)
            elif membership.skipped:
                delivered += self._deliver_after_skip(membership, publication, packet, skippable)
            elif push(membership.sid, packet):
                delivered += 1
            elif skippable:
                self._skip(publication.room, membership, publication.seq)
            else:
                self._on_slow_consumer(membership.sid)
        self._on_delivered(publication.type, delivered)
        if self._observe_lag is not None:
            # ts is the sequencing instance's clock, in ms: clamp what skew makes negative.
            self._observe_lag(max(0.0, self._clock() - publication.ts / 1000))

    def _packet(self, publication: Publication) -> Any:
        """The publication's packet, framed from its stored text when it has it."""
        if publication.wire is not None:
            return self._outlet.encode_json(publication.type, publication.wire)
        return self._outlet.encode(publication.type, publication.envelope())

    def _deliver_after_skip(
        self, membership: Membership, publication: Publication, packet: Any, skippable: bool
    ) -> int:
        if skippable:
            marked = {**publication.envelope(), "skipped": membership.skipped}
            if self._outlet.push(membership.sid, self._outlet.encode(publication.type, marked)):
                membership.skipped = 0
                return 1
            self._skip(publication.room, membership, publication.seq)
            return 0
        if self._outlet.push(membership.sid, packet):
            return 1
        self._on_slow_consumer(membership.sid)
        return 0

    def _skip(self, room: str, membership: Membership, seq: int) -> None:
        if not membership.skipped:
            self._await_drain(room, membership)
        membership.skipped += 1
        membership.skipped_seq = seq

    def _await_drain(self, room: str, membership: Membership) -> None:
        if self._drain_signal is not None:
            self._drain_signal.notify_drained(
                membership.sid, lambda: self._caught_up(room, membership)
            )

    def _caught_up(self, room: str, membership: Membership) -> None:
        """The member's backlog drained: tell it what it missed, unless an event did."""
        local = self._rooms.get(room)
        if local is None or local.members.get(membership.sid) is not membership:
            return  # it left the room (or left and joined again: a new membership)
        if not membership.skipped or membership.buffer is not None:
            return  # an event carried the count, or a replay is bringing it up to date
        notice = {"room": room, "skipped": membership.skipped, "seq": membership.skipped_seq}
        if self._outlet.push(membership.sid, self._outlet.encode(SKIPPED_EVENT, notice)):
            membership.skipped = 0
        else:
            self._await_drain(room, membership)  # drained, and already behind again

    def on_transient(self, room: str, event: str, data: JSON) -> None:
        local = self._rooms.get(room)
        if local is None:
            return
        packet = self._outlet.encode(event, data)
        for membership in local.members.values():
            # Presence is unsequenced and may be dropped under pressure: the join ack
            # and the presence endpoint give the full picture.
            self._outlet.push(membership.sid, packet)

    def on_control(self, message: JSON) -> None:
        self._on_control(message)
