"""LocalFanout: hands each room event to this instance's members of the room.

The hot path encodes an event once and gives the same packet to every recipient;
per recipient there is one queue-length check and one enqueue. Two things break
that uniformity, both rare and both off the common path:

- A member still catching up from history (`buffer` is a list) has live events
  parked until its replay finished, so the replay-to-live switch has no gap and no
  duplicate.
- A member whose queue is full: for an event type marked `skippable` (the built-in
  `detection_event`) it is skipped and its next such event carries `skipped: n`;
  otherwise it is disconnected with reason `slow_consumer`. A skipped member that
  catches up while the stream is quiet is not left waiting for a next event: when
  its backlog drains (the outlet says so, `DrainSignal`), it is sent the unsequenced
  notice
  `skipped {"room", "skipped": n, "seq": <the last seq skipped>}` instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..domain import JSON, Publication
from ..protocol.events import BUILTIN_TYPES

_BUILTIN_SKIPPABLE = frozenset(t.name for t in BUILTIN_TYPES if t.skippable)

#: The unsequenced event telling a member how many events it missed, once it caught up.
SKIPPED_EVENT = "skipped"


class Outlet(Protocol):
    """The transport's side of delivery (Socket.IO over Engine.IO in production)."""

    def encode(self, event: str, payload: JSON) -> Any:
        """Encode once an event that may then be pushed to any number of sockets."""

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


class LocalFanout:
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
    ) -> None:
        """`observe_lag` gets, once per event, the seconds from its `ts` to its hand-over.

        `skippable`: the event types a full queue skips (EventTypes.skippable()).
        """
        self._skippable = skippable
        self._outlet = outlet
        self._observe_lag = observe_lag
        self._clock = clock
        self._rooms: dict[str, _LocalRoom] = {}  # room -> members on this instance
        self._on_slow_consumer = on_slow_consumer
        self._on_control = on_control
        self._on_delivered = on_delivered
        self._drain_signal = outlet if isinstance(outlet, DrainSignal) else None

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
        envelope = publication.envelope()
        packet = self._outlet.encode(publication.type, envelope)
        skippable = publication.type in self._skippable
        push = self._outlet.push
        delivered = 0
        for membership in local.members.values():
            if membership.buffer is not None:
                membership.buffer.append(publication)
            elif membership.skipped:
                delivered += self._deliver_after_skip(membership, publication, envelope, skippable)
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

    def _deliver_after_skip(
        self, membership: Membership, publication: Publication, envelope: JSON, skippable: bool
    ) -> int:
        if skippable:
            marked = {**envelope, "skipped": membership.skipped}
            if self._outlet.push(membership.sid, self._outlet.encode(publication.type, marked)):
                membership.skipped = 0
                return 1
            self._skip(publication.room, membership, publication.seq)
            return 0
        if self._outlet.push(membership.sid, self._outlet.encode(publication.type, envelope)):
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
