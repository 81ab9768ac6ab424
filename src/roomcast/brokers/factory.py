"""Choosing the broker and presence store from settings."""

from __future__ import annotations

from ..config import Settings
from ..errors import RoomcastError
from .base import Broker
from .memory import MemoryBroker


def make_broker(settings: Settings) -> Broker:
    if settings.uses_redis:
        raise RoomcastError(
            "Redis brokers are not available in this version; unset ROOMCAST_REDIS_URL "
            "and ROOMCAST_REDIS_SENTINELS to run in memory"
        )
    return MemoryBroker(
        history_size=settings.history_size,
        history_ttl_seconds=settings.history_ttl_seconds,
        idempotency_ttl_seconds=settings.idempotency_ttl_seconds,
    )
