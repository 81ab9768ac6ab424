"""RoomStream: the ordering state machine that hands each room's events over
exactly once and in order. Pure: it decides, the client acts.

The gap rule, the same in the JavaScript SDK (clients/js/lib/room-stream.js): an
event that does not follow the position is dropped, and the client rejoins with
`since` = the position. Nothing is held, because the rejoin's replay brings those
events again anyway, in order, and the server parks live events during a replay;
a gap the history can no longer fill is answered `recovered: false` (a resync).
docs/clients.md ("One gap rule") says why this rule.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class Decision(enum.Enum):
    DELIVER = "deliver"  # hand to the application
    DUPLICATE = "duplicate"  # already handed over: drop
    GAP = "gap"  # something is missing: drop, and rejoin with `since` to fill it
    RESYNC = "resync"  # a new epoch: hand over, and tell the application to reload


@dataclass(slots=True)
class RoomStream:
    epoch: str | None = None
    seq: int = 0

    @property
    def position(self) -> dict[str, Any] | None:
        return {"epoch": self.epoch, "seq": self.seq} if self.epoch is not None else None

    def offer(self, envelope: dict[str, Any]) -> Decision:
        """Decide about one sequenced event, and advance when it is handed over."""
        epoch, seq = envelope["epoch"], int(envelope["seq"])
        if self.epoch is None:
            self.epoch, self.seq = epoch, seq
            return Decision.DELIVER
        if epoch != self.epoch:
            self.epoch, self.seq = epoch, seq
            return Decision.RESYNC
        if seq <= self.seq:
            return Decision.DUPLICATE
        skipped = int(envelope.get("skipped") or 0)
        if seq == self.seq + 1 + skipped:
            self.seq = seq
            return Decision.DELIVER
        return Decision.GAP

    def skipped(self, notice: dict[str, Any]) -> Decision:
        """Take a `skipped` notice: events up to `seq` were skipped on purpose.

        A detection stream that went quiet while this client was behind says so with
        an unsequenced notice instead of a mark on a next event; the position moves
        to `seq` when exactly `skipped` events lie between it and the last one seen.
        """
        seq, count = int(notice["seq"]), int(notice["skipped"])
        if self.epoch is None or seq <= self.seq:
            return Decision.DUPLICATE
        if seq - count == self.seq:
            self.seq = seq
            return Decision.DELIVER
        return Decision.GAP

    def joined(self, ack: dict[str, Any]) -> bool:
        """Take a join ack into account; True when the application must reload state.

        Replayed events pass through `offer` before the ack arrives, so a recovered
        ack only confirms the position; `recovered: false` (or another epoch) means
        what the application holds can no longer be brought up to date.
        """
        epoch, seq = ack["epoch"], int(ack["seq"])
        had_position = self.epoch is not None
        resync = had_position and (not ack.get("recovered", True) or epoch != self.epoch)
        if resync or not had_position:
            self.epoch, self.seq = epoch, seq
        elif seq > self.seq:
            self.seq = seq
        return resync
