"""Webhooks (SPEC section 10): the recorder, the journal and the delivery, made from settings.

With no `webhook_url` there are none at all: RoomService gets no recorder and the
publish path pays nothing. With one, the journal lives where the broker does (the
same Redis, under the key prefix; or this process's memory), so that any instance
can deliver what any other recorded.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import structlog

from ..brokers.redis_client import connect
from ..config import Settings
from ..observability.metrics import Metrics
from .webhook_delivery import WebhookDelivery
from .webhook_events import WebhookRecorder
from .webhook_journal import MemoryJournal, RedisJournal, WebhookJournal


@dataclass(frozen=True, slots=True)
class Webhooks:
    recorder: WebhookRecorder
    delivery: WebhookDelivery
    journal: WebhookJournal


def make_webhooks(
    settings: Settings, metrics: Metrics, log: structlog.stdlib.BoundLogger
) -> Webhooks | None:
    """The webhook parts of one instance, or None when no webhook URL is set."""
    if not settings.webhook_url:
        return None
    journal: WebhookJournal
    if settings.uses_redis:
        journal = RedisJournal(
            connect(settings), settings.key_prefix, maxlen=settings.webhook_journal_max
        )
    else:
        journal = MemoryJournal(maxlen=settings.webhook_journal_max)
    secret = (
        settings.webhook_secret.get_secret_value().encode() if settings.webhook_secret else None
    )
    recorder = WebhookRecorder(
        journal, settings.webhook_event_kinds, log, on_lost=metrics.webhook_dead_letters.inc
    )
    delivery = WebhookDelivery(
        journal,
        settings.webhook_url,
        secret,
        # Unique per process even if two share an instance id: the lease's holder.
        f"{settings.instance_id}/{secrets.token_hex(4)}",
        metrics,
        log,
        batch_size=settings.webhook_batch_size,
        lease_ttl_ms=settings.webhook_lease_ms,
        request_timeout=settings.webhook_timeout_ms / 1000,
    )
    return Webhooks(recorder, delivery, journal)
