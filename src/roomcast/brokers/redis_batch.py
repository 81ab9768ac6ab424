"""How a batch of publishes becomes calls of publish_batch.lua, and how replies come back.

A batch is split by room (a script call may only touch one room's keys, which
share a hash slot), keeping each room's events in batch order; a room with many
events takes several calls, each bounded so that one call keeps Redis busy for a
few milliseconds at most. The calls go out in pipelines, one after the other.

Arguments are packed tightly because encoding them is most of the publisher's CPU:
two per event (head, data), the head carrying the rarely used fields only when
an event has one (see the script's header).

With webhooks on, a client's event (a ClientCommand) is journaled by the same
script call that sequences it: the call then also carries the journal's two keys,
and the event's head a flag. Without webhooks a call carries one more argument
('0'), and nothing else changes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..domain import JSON, Publication
from ..errors import Conflict, Locked, RoomcastError
from ..ids import new_event_ids
from .base import PublishCommand, PublishOutcome, PublishResult
from .redis_keys import KeyLayout

MAX_CALL_EVENTS = 500  # events of one room in one script call
MAX_CALL_BYTES = 1 << 20  # data bytes of one script call
MAX_PIPELINE_EVENTS = 2000  # events in one pipeline (one deadline)

_ENCODE = json.JSONEncoder(separators=(",", ":")).encode


@dataclass(frozen=True, slots=True)
class ClientCommand(PublishCommand):
    """A client-published event: the one kind the webhook journal takes (SPEC 10).

    A subclass rather than a field so that the broker's interface (base.py) stays as
    it is; Publisher makes it for its "client" source.
    """


@dataclass(frozen=True, slots=True)
class JournalKeys:
    """Where client events are journaled, when webhooks are on (webhook_journal.py)."""

    stream: str
    counter: str
    maxlen: int


@dataclass(slots=True)
class RoomCall:
    """One script call: some events of one room, and where their results go."""

    room: str
    keys: list[str]
    args: list[Any]
    slots: list[int] = field(default_factory=list)  # index of each event in the batch
    ids: list[str] = field(default_factory=list)  # each event's id
    size: int = 0

    def read(self, reply: Any, commands: Sequence[PublishCommand], now: int) -> list[PublishResult]:
        """The events' results from the script's reply (see publish_batch.lua)."""
        summary, _, more = reply.partition("\n")
        epoch, first, outcomes = summary.split(" ")
        seq = int(first)
        extras = iter(json.loads(more) if more else ())
        results: list[PublishResult] = []
        for n, slot in enumerate(self.slots):
            outcome = outcomes[n]
            command = commands[slot]
            if outcome in "0v":
                data = command.data
                if outcome == "v":
                    data = {**data, "version": int(next(extras))}
                publication = Publication(
                    self.ids[n],
                    command.type,
                    command.room,
                    epoch,
                    seq,
                    now,
                    data,
                    command.actor,
                    command.client_event_id,
                )
                seq += 1
                results.append(PublishOutcome(publication))
            elif outcome == "1":
                publication = Publication.from_wire(next(extras))
                results.append(PublishOutcome(publication, duplicate=True))
            else:
                code, details = next(extras), next(extras)
                write = command.guard
                results.append(guard_error(code, details, write.annotation_id if write else ""))
        return results


def plan(
    keys: KeyLayout,
    commands: Sequence[PublishCommand],
    now: int,
    idem_ttl: int,
    journal: JournalKeys | None = None,
) -> list[RoomCall]:
    """The script calls that publish `commands`, each room's in batch order.

    With `journal`, client events (ClientCommand) are journaled as they are sequenced.
    """
    calls: list[RoomCall] = []
    ids = new_event_ids(len(commands), now)
    open_calls: dict[str, RoomCall] = {}  # room -> its call still taking events
    for slot, command in enumerate(commands):
        room = command.room
        call = open_calls.get(room)
        if call is None or len(call.slots) >= MAX_CALL_EVENTS or call.size >= MAX_CALL_BYTES:
            k = keys.room(room)
            call_keys = [k.meta, k.hist, k.channel, k.versions, k.leases]
            if journal is not None:
                call_keys += [journal.stream, journal.counter]
            call = RoomCall(room, call_keys, [room, idem_ttl, journal.maxlen if journal else 0])
            open_calls[room] = call
            calls.append(call)
        journaled = journal is not None and isinstance(command, ClientCommand)
        head, data = _encode(command, ids[slot], call, keys, journaled)
        call.ids.append(ids[slot])
        call.args.append(head)
        call.args.append(data)
        call.slots.append(slot)
        call.size += len(data)
    return calls


def pipelines(calls: list[RoomCall]) -> Iterator[list[RoomCall]]:
    """The calls in pipeline-sized groups, in order."""
    group: list[RoomCall] = []
    events = 0
    for call in calls:
        if group and events + len(call.slots) > MAX_PIPELINE_EVENTS:
            yield group
            group, events = [], 0
        group.append(call)
        events += len(call.slots)
    if group:
        yield group


def _encode(
    command: PublishCommand, event_id: str, call: RoomCall, keys: KeyLayout, journaled: bool
) -> tuple[str, str]:
    head = event_id + command.type
    data = command.data
    data_json = command.data_json
    write = command.guard
    if write is not None and "version" in data:
        data = {k: v for k, v in data.items() if k != "version"}  # the server sets it
        data_json = None
    if (
        command.actor is not None
        or command.client_event_id
        or command.idempotency_key
        or write
        or journaled
    ):
        idem = 0
        if command.idempotency_key:
            call.keys.append(keys.room(command.room).idem_prefix + command.idempotency_key)
            idem = len(call.keys)
        fields = [
            "null" if command.actor is None else _ENCODE(command.actor),
            _ENCODE(command.client_event_id),
            str(idem),
            write.annotation_id if write else "",
            write.action if write else "",
            "" if write is None or write.base_version is None else str(write.base_version),
            "" if write is None or write.fencing_token is None else str(write.fencing_token),
            "j" if journaled else "",
            write.user_id if write else "",
        ]
        head += "\n" + "\n".join(fields)
    return head, _ENCODE(data) if data_json is None else data_json


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


def pack(calls: list[RoomCall], sha: str, prelude: list[Any]) -> bytes:
    """The EVALSHA commands of `calls`, as one RESP payload.

    Written here rather than by redis-py, whose general packing costs several times
    more per argument: with one event per room, packing was a third of the
    publisher's work.
    """
    command = _bulk(b"EVALSHA") + _bulk(sha.encode())
    shared = b"".join(_bulk(str(value).encode()) for value in prelude)
    fixed = 3 + len(prelude)
    parts: list[bytes] = []
    for call in calls:
        parts.append(b"*%d\r\n" % (fixed + len(call.keys) + len(call.args)))
        parts.append(command)
        parts.append(_bulk(b"%d" % len(call.keys)))
        parts.extend(_bulk(key.encode()) for key in call.keys)
        parts.append(shared)
        parts.extend(_bulk(str(arg).encode()) for arg in call.args)
    return b"".join(parts)


def guard_error(code: str, details: str, annotation_id: str) -> RoomcastError:
    """The Conflict or Locked that a script's refusal code stands for."""
    if code.startswith("conflict"):
        current = int(details)
        message = {
            "conflict_exists": f"annotation {annotation_id} already exists",
            "conflict_missing": f"annotation {annotation_id} does not exist",
        }.get(code, f"base_version is not the current version {current}")
        return Conflict(message, current_version=current)
    info: JSON = {}
    if details:
        parsed = json.loads(details)
        if isinstance(parsed, dict):
            info = parsed
    message = (
        f"fencing token is no longer valid for {annotation_id}"
        if code == "locked_fencing"
        else f"annotation {annotation_id} is locked by another user"
    )
    return Locked(message, holder=info.get("holder"), expires_at=info.get("expires_at"))
