"""MemoryBroker: the Broker role inside one process (the embedded default).

Every method runs without an await between reading and writing room state, so each
is atomic with respect to the event loop, which is what the contract asks of the
Redis broker's Lua scripts.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..domain import JSON, HistoryPage, Lease, Member, MemoryUsage, Publication, StreamPosition
from ..editing.rules import (
    AnnotationState,
    active_lease,
    apply_write,
    check_lease,
    grant_lease,
    lock_event_data,
)
from ..errors import Conflict, Locked
from ..history.recovery import history_reaches
from ..ids import new_epoch, new_event_id
from .base import (
    BrokerSink,
    LockOutcome,
    PublishCommand,
    PublishOutcome,
    PublishResult,
)


@dataclass(slots=True)
class _Room:
    epoch: str
    touched: float
    seq: int = 0
    history: deque[Publication] = field(default_factory=deque)
    annotations: dict[str, AnnotationState] = field(default_factory=dict)
    leases: dict[str, Lease] = field(default_factory=dict)
    fencing: int = 0


class MemoryBroker:
    def __init__(
        self,
        *,
        history_size: int,
        history_ttl_seconds: float,
        idempotency_ttl_seconds: float = 600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._history_size = history_size
        self._ttl = history_ttl_seconds
        self._idem_ttl = idempotency_ttl_seconds
        self._clock = clock
        self._rooms: dict[str, _Room] = {}  # room -> stream state
        self._idempotency: dict[tuple[str, str], tuple[float, Publication]] = {}
        self._bindings: dict[str, str] = {}  # room -> project id
        self._subscribed: set[str] = set()
        self._sink: BrokerSink | None = None

    # lifecycle ---------------------------------------------------------------

    def attach(self, sink: BrokerSink) -> None:
        self._sink = sink

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        self._subscribed.clear()

    async def ping(self) -> None:
        return None

    async def memory_usage(self, refresh_seconds: float) -> MemoryUsage | None:
        """None: the state lives in this process's heap, which process_* metrics cover."""
        return None

    @property
    def listening(self) -> bool:
        return True

    # streams -------------------------------------------------------------------

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _room(self, name: str) -> _Room:
        now = self._clock()
        room = self._rooms.get(name)
        if room is None or now - room.touched > self._ttl:
            # A room idle past its TTL has lost its history: a new epoch says so.
            room = self._rooms[name] = _Room(epoch=new_epoch(), touched=now)
        return room

    def _deliver(self, publication: Publication) -> None:
        if self._sink is not None and publication.room in self._subscribed:
            self._sink.on_publication(publication)

    def _append(self, room_name: str, room: _Room, command: PublishCommand) -> Publication:
        now = self._now_ms()
        room.seq += 1
        room.touched = now / 1000
        publication = Publication(
            id=new_event_id(now),
            type=command.type,
            room=room_name,
            epoch=room.epoch,
            seq=room.seq,
            ts=now,
            data=command.data,
            actor=command.actor,
            client_event_id=command.client_event_id,
        )
        room.history.append(publication)
        while len(room.history) > self._history_size:
            room.history.popleft()
        self._deliver(publication)
        return publication

    async def publish(self, command: PublishCommand) -> PublishOutcome:
        return self._publish(command)

    async def publish_many(self, commands: Sequence[PublishCommand]) -> list[PublishResult]:
        results: list[PublishResult] = []
        for command in commands:
            try:
                results.append(self._publish(command))
            except (Conflict, Locked) as exc:
                results.append(exc)
        return results

    def _publish(self, command: PublishCommand) -> PublishOutcome:
        now = self._clock()
        key = (command.room, command.idempotency_key) if command.idempotency_key else None
        if key is not None:
            seen = self._idempotency.get(key)
            if seen is not None and now - seen[0] < self._idem_ttl:
                return PublishOutcome(seen[1], duplicate=True)
        room = self._room(command.room)
        data = command.data
        write = command.guard
        if write is not None:
            current = room.annotations.get(write.annotation_id, AnnotationState())
            check_lease(write, room.leases.get(write.annotation_id), self._now_ms())
            state = apply_write(current, write)
            room.annotations[write.annotation_id] = state
            data = {**data, "version": state.version}
        publication = self._append(command.room, room, _with_data(command, data))
        if key is not None:
            self._idempotency[key] = (now, publication)
        return PublishOutcome(publication)

    async def position(self, room: str) -> StreamPosition:
        state = self._room(room)
        state.touched = self._clock()
        return StreamPosition(state.epoch, state.seq)

    async def history(self, room: str, since_seq: int, limit: int) -> HistoryPage:
        state = self._room(room)
        if since_seq >= state.seq:
            return HistoryPage(state.epoch, state.seq, (), complete=True)
        oldest = state.history[0].seq if state.history else state.seq + 1
        complete = history_reaches(since_seq, oldest)
        events: tuple[Publication, ...] = ()
        if complete:
            start = since_seq + 1 - oldest
            events = tuple(
                state.history[i] for i in range(start, min(len(state.history), start + limit))
            )
        else:
            # History no longer reaches back: hand out what is left, flagged incomplete.
            events = tuple(list(state.history)[:limit])
        return HistoryPage(state.epoch, state.seq, events, complete=complete)

    # fan-out ---------------------------------------------------------------------

    async def subscribe(self, room: str) -> None:
        self._subscribed.add(room)

    async def unsubscribe(self, room: str) -> None:
        self._subscribed.discard(room)

    async def publish_transient(self, room: str, event: str, data: JSON) -> None:
        if self._sink is not None and room in self._subscribed:
            self._sink.on_transient(room, event, data)

    async def publish_control(self, message: JSON) -> None:
        if self._sink is not None:
            self._sink.on_control(message)

    # leases ----------------------------------------------------------------------

    def _lock_event(self, room_name: str, room: _Room, lease: Lease, state: str) -> Publication:
        command = PublishCommand(
            room=room_name, type="annotation_lock", data=lock_event_data(lease, state)
        )
        return self._append(room_name, room, command)

    async def lock(self, room: str, annotation_id: str, holder: Member, ttl_ms: int) -> LockOutcome:
        state = self._room(room)
        lease = grant_lease(
            state.leases.get(annotation_id),
            room=room,
            annotation_id=annotation_id,
            holder=holder,
            ttl_ms=ttl_ms,
            now_ms=self._now_ms(),
            last_fencing_token=state.fencing,
        )
        state.fencing = max(state.fencing, lease.fencing_token)
        state.leases[annotation_id] = lease
        return LockOutcome(lease, self._lock_event(room, state, lease, "locked"))

    async def unlock(self, room: str, annotation_id: str, user_id: str) -> Publication | None:
        state = self._room(room)
        lease = state.leases.get(annotation_id)
        if lease is None:
            return None
        live = active_lease(lease, self._now_ms())
        if live is not None and live.holder.user_id != user_id:
            raise Locked(
                f"annotation {annotation_id} is locked by another user",
                holder=live.holder.to_wire(),
                expires_at=live.expires_at,
            )
        # An expired lease not swept yet is released here, and announced like any other.
        del state.leases[annotation_id]
        return self._lock_event(room, state, lease, "released")

    async def release_holder(self, room: str, user_id: str) -> list[Publication]:
        state = self._rooms.get(room)
        if state is None:
            return []
        released = []
        for annotation_id, lease in list(state.leases.items()):
            if lease.holder.user_id == user_id:
                del state.leases[annotation_id]
                released.append(self._lock_event(room, state, lease, "released"))
        return released

    async def expire_leases(self) -> list[Publication]:
        now = self._now_ms()
        released = []
        for name, state in list(self._rooms.items()):
            for annotation_id, lease in list(state.leases.items()):
                if lease.expires_at <= now:
                    del state.leases[annotation_id]
                    released.append(self._lock_event(name, state, lease, "released"))
        return released

    async def leases(self, room: str) -> list[Lease]:
        state = self._rooms.get(room)
        if state is None:
            return []
        now = self._now_ms()
        return [lease for lease in state.leases.values() if lease.expires_at > now]

    # bindings and housekeeping -----------------------------------------------------

    async def bind(self, room: str, project_id: str) -> None:
        self._bindings[room] = project_id

    async def binding(self, room: str) -> str | None:
        return self._bindings.get(room)

    def sweep(self) -> int:
        """Forget expired rooms and idempotency keys; returns how many entries went."""
        now = self._clock()
        rooms = [
            name
            for name, room in self._rooms.items()
            if now - room.touched > self._ttl and name not in self._subscribed
        ]
        for name in rooms:
            del self._rooms[name]
        keys = [k for k, (at, _) in self._idempotency.items() if now - at >= self._idem_ttl]
        for key in keys:
            del self._idempotency[key]
        return len(rooms) + len(keys)


def _with_data(command: PublishCommand, data: JSON) -> PublishCommand:
    if data is command.data:
        return command
    return PublishCommand(
        room=command.room,
        type=command.type,
        data=data,
        actor=command.actor,
        client_event_id=command.client_event_id,
        idempotency_key=command.idempotency_key,
    )
