"""Choosing the broker and presence store from settings.

Above both packages (brokers/, presence/): the Redis presence store shares the
broker's Redis client and key layout, so choosing the two together belongs to
neither.
"""

from __future__ import annotations

from .brokers.base import Broker
from .brokers.memory import MemoryBroker
from .brokers.redis import RedisBroker
from .brokers.redis_client import connect
from .config import Settings
from .presence.base import PresenceStore
from .presence.memory import MemoryPresenceStore
from .presence.redis import RedisPresenceStore


def make_broker(settings: Settings) -> Broker:
    if settings.uses_redis:
        return RedisBroker(
            connect(settings),
            prefix=settings.key_prefix,
            history_size=settings.history_size,
            history_ttl_seconds=settings.history_ttl_seconds,
            idempotency_ttl_seconds=settings.idempotency_ttl_seconds,
        )
    return MemoryBroker(
        history_size=settings.history_size,
        history_ttl_seconds=settings.history_ttl_seconds,
        idempotency_ttl_seconds=settings.idempotency_ttl_seconds,
    )


def make_stores(settings: Settings) -> tuple[Broker, PresenceStore]:
    """The broker and presence store of one server instance (sharing one Redis client)."""
    if not settings.uses_redis:
        return make_broker(settings), MemoryPresenceStore(settings.instance_id)
    client = connect(settings)
    broker = RedisBroker(
        client,
        prefix=settings.key_prefix,
        history_size=settings.history_size,
        history_ttl_seconds=settings.history_ttl_seconds,
        idempotency_ttl_seconds=settings.idempotency_ttl_seconds,
    )
    presence = RedisPresenceStore(
        client,
        prefix=settings.key_prefix,
        instance_id=settings.instance_id,
        dead_after_seconds=settings.instance_dead_after_seconds,
    )
    return broker, presence
