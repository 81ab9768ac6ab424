"""Readiness: the broker answers, a canary sent through it came back lately, and the
instance is not draining."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from ..brokers.base import Control
from ..errors import RoomcastError

CANARY_MAX_AGE_SECONDS = 10.0


class _Draining(Protocol):
    draining: bool


class Readiness:
    def __init__(
        self,
        broker: Control,
        gateway: _Draining,
        instance_id: str,
        clock: Callable[[], float] = time.monotonic,
        observe_roundtrip: Callable[[float], None] | None = None,
    ) -> None:
        """`observe_roundtrip` gets the seconds each broker ping took (Redis mode only)."""
        self._broker = broker
        self._observe_roundtrip = observe_roundtrip
        self._instance = instance_id
        self._gateway = gateway
        self._clock = clock
        self._sent = 0
        self._heard_at: float | None = None
        self._broker_error: str | None = "not probed yet"

    async def probe(self) -> None:
        """Ping the broker and send a canary through it (the housekeeping task calls this)."""
        try:
            await self._ping()
            self._sent += 1
            await self._broker.publish_control(
                {"kind": "canary", "instance": self._instance, "n": self._sent}
            )
            self._broker_error = None
        except RoomcastError as exc:
            self._broker_error = exc.message

    async def _ping(self) -> None:
        """Ping the broker, timing the round trip; a failed ping is not a round trip."""
        started = time.perf_counter()
        await self._broker.ping()
        if self._observe_roundtrip is not None:
            self._observe_roundtrip(time.perf_counter() - started)

    def heard(self, message: dict[str, object]) -> None:
        """A canary came back; only this instance's own proves its subscription works."""
        if message.get("instance") == self._instance:
            self._heard_at = self._clock()

    async def check(self) -> str | None:
        """None when ready; otherwise why not, for /readyz (pings the broker now)."""
        if self._gateway.draining:
            return "draining"
        try:
            await self._ping()
        except RoomcastError as exc:
            return f"broker unavailable: {exc.message}"
        if not self._broker.listening:
            return "broker subscription is down"
        return self.reason_not_ready()

    def reason_not_ready(self) -> str | None:
        """None when ready as of the last probe; otherwise why not."""
        if self._gateway.draining:
            return "draining"
        if self._broker_error is not None:
            return f"broker unavailable: {self._broker_error}"
        if self._heard_at is None:
            return "delivery canary not received yet"
        age = self._clock() - self._heard_at
        if age > CANARY_MAX_AGE_SECONDS:
            return f"delivery canary last received {age:.0f} s ago"
        return None
