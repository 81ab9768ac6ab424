"""Plain records shared by every layer.

Records are frozen dataclasses: they cross layer boundaries (broker to fan-out,
service to transport) and must not be mutated by whoever receives them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "JSON",
    "Counters",
    "HistoryPage",
    "Identity",
    "InstanceInfo",
    "Lease",
    "Member",
    "MemoryUsage",
    "PresenceChange",
    "Publication",
    "StreamPosition",
]

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class StreamPosition:
    """Where a room's stream stands: the epoch names one unbroken history."""

    epoch: str
    seq: int


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is on a connection, as the access token says."""

    user_id: str
    name: str | None = None
    projects: frozenset[str] = frozenset()
    rooms: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()
    expires_at: float | None = None

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    def actor(self) -> JSON:
        return {"user_id": self.user_id, "name": self.name}


@dataclass(frozen=True, slots=True)
class Publication:
    """One sequenced room event, exactly as stored in history and sent on the wire."""

    id: str
    type: str
    room: str
    epoch: str
    seq: int
    ts: int
    data: JSON
    actor: JSON | None = None
    client_event_id: str | None = None
    #: The envelope's JSON text, when it was read as text (from Redis): it is the
    #: envelope's wire form already, so a broadcast can frame it without encoding
    #: the envelope again. Not part of the event's identity.
    wire: str | None = field(default=None, compare=False, repr=False)

    def envelope(self) -> JSON:
        return {
            "id": self.id,
            "type": self.type,
            "room": self.room,
            "epoch": self.epoch,
            "seq": self.seq,
            "ts": self.ts,
            "actor": self.actor,
            "client_event_id": self.client_event_id,
            "data": self.data,
        }

    @classmethod
    def from_envelope(cls, env: JSON, wire: str | None = None) -> Publication:
        return cls(
            id=env["id"],
            type=env["type"],
            room=env["room"],
            epoch=env["epoch"],
            seq=int(env["seq"]),
            ts=int(env["ts"]),
            data=env["data"],
            actor=env.get("actor"),
            client_event_id=env.get("client_event_id"),
            wire=wire,
        )

    @classmethod
    def from_wire(cls, text: str) -> Publication:
        """The publication of an envelope's JSON text (`envelope()` as JSON), text kept."""
        return cls.from_envelope(json.loads(text), wire=text)

    @property
    def position(self) -> StreamPosition:
        return StreamPosition(self.epoch, self.seq)


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """Events after a position, and whether history still reached back that far."""

    epoch: str
    head: int
    events: tuple[Publication, ...]
    complete: bool


@dataclass(frozen=True, slots=True)
class Member:
    """One user present in a room, over however many connections."""

    user_id: str
    name: str | None
    connections: int

    def to_wire(self) -> JSON:
        return {"user_id": self.user_id, "name": self.name, "connections": self.connections}


@dataclass(frozen=True, slots=True)
class PresenceChange:
    """What a presence update did: who arrived or left as a user, and the new count."""

    room: str
    joined: Member | None
    left: Member | None
    count: int

    @property
    def is_visible(self) -> bool:
        """Only a user's first arrival and last departure are announced."""
        return self.joined is not None or self.left is not None

    def to_wire(self) -> JSON:
        return {
            "room": self.room,
            "joined": self.joined.to_wire() if self.joined else None,
            "left": self.left.to_wire() if self.left else None,
            "count": self.count,
        }


@dataclass(frozen=True, slots=True)
class Lease:
    """An editing lease on one annotation."""

    room: str
    annotation_id: str
    holder: Member
    fencing_token: int
    expires_at: int  # ms since the Unix epoch

    def to_wire(self) -> JSON:
        return {
            "annotation_id": self.annotation_id,
            "holder": self.holder.to_wire(),
            "fencing_token": self.fencing_token,
            "expires_at": self.expires_at,
        }


@dataclass(frozen=True, slots=True)
class InstanceInfo:
    instance_id: str
    connections: int
    last_seen: float


@dataclass(slots=True)
class Counters:
    """Per-instance totals shown by /api/v1/stats (mutable, owned by one app)."""

    events_out: int = 0


@dataclass(frozen=True, slots=True)
class MemoryUsage:
    """The backend's memory, as its server reports it (Redis's INFO memory)."""

    used_bytes: int  # used_memory
    max_bytes: int  # maxmemory; 0 means no limit is set
    measured_at_ms: int  # when it was measured (Unix ms), by whichever instance did
