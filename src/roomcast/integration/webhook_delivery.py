"""WebhookDelivery: the loop that sends the journal to the platform, in order, at least once.

Each round: hold the lease (only its holder sends), read a batch after the cursor,
POST it as `{"events": [...]}` signed with X-Roomcast-Signature, and move the cursor
on a 2xx only; anything else (an answer, a timeout, a refused connection) is retried,
the same batch, after a full-jitter backoff. The request timeout is below the lease's
time to live, and the lease is renewed before every request, so a lease only
changes hands once its holder has stopped sending (or died).

Order: the journal holds events in the order they were appended, and a client
event is appended by the very step that gives it its seq (publish_batch.lua over
Redis; in memory, with no await between the two), so each room's client events
are in seq order in the journal already and leave in that order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import aiohttp
import structlog
from redis.exceptions import RedisError

from ..backoff import Backoff
from ..housekeeping import raise_if_cancelling
from ..observability.metrics import Metrics
from .signing import HEADER, sign
from .webhook_journal import JournalEntry, JournalPage, WebhookJournal

BATCH_SIZE = 100
POLL_SECONDS = 0.05
LEASE_TTL_MS = 5000
REQUEST_TIMEOUT_SECONDS = 4.0


def batch_body(events: Sequence[str]) -> bytes:
    """`{"events": [...]}` from the journaled JSON, without parsing it again."""
    return b'{"events":[' + ",".join(events).encode() + b"]}"


class WebhookDelivery:
    def __init__(
        self,
        journal: WebhookJournal,
        url: str,
        secret: bytes | None,
        holder: str,
        metrics: Metrics,
        log: structlog.stdlib.BoundLogger,
        *,
        batch_size: int = BATCH_SIZE,
        lease_ttl_ms: int = LEASE_TTL_MS,
        request_timeout: float = REQUEST_TIMEOUT_SECONDS,
    ) -> None:
        self._journal = journal
        self._url = url
        self._secret = secret
        self._holder = holder
        self._metrics = metrics
        self._log = log
        self._batch_size = batch_size
        self._lease_ttl = lease_ttl_ms
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._backoff = Backoff(initial_delay=0.2, max_delay=30.0)

    async def run(self) -> None:
        """Deliver for the application's lifetime (a background task)."""
        async with aiohttp.ClientSession(timeout=self._timeout) as session:
            while True:
                try:
                    delay = await self.round(session)
                except (RedisError, OSError) as exc:
                    raise_if_cancelling()
                    self._log.warning("webhook.journal_unreachable", error=str(exc))
                    delay = self._backoff.next()
                await asyncio.sleep(delay)  # the pace of a polling loop, or its backoff

    async def round(self, session: aiohttp.ClientSession) -> float:
        """One attempt; returns how long to wait before the next."""
        if not await self._journal.hold_lease(self._holder, self._lease_ttl):
            self._metrics.webhook_lag.set(0)
            return self._lease_ttl / 1000 / 2
        page = await self._journal.read(self._batch_size)
        self._observe(page)
        if not page.entries:
            return POLL_SECONDS
        if await self._post(session, page.entries):
            await self._journal.ack(self._holder, page.entries[-1])
            self._backoff.reset()
            return 0 if len(page.entries) == self._batch_size else POLL_SECONDS
        return self._backoff.next()

    def _observe(self, page: JournalPage) -> None:
        if page.evicted:
            self._metrics.webhook_dead_letters.inc(page.evicted)
            self._log.warning("webhook.dead_letters", count=page.evicted)
        oldest = page.entries[0].at_ms if page.entries else page.now_ms
        self._metrics.webhook_lag.set(max(0, page.now_ms - oldest) / 1000)

    async def _post(self, session: aiohttp.ClientSession, entries: list[JournalEntry]) -> bool:
        body = batch_body([e.event for e in entries])
        headers = {"Content-Type": "application/json"}
        if self._secret is not None:
            headers[HEADER] = sign(self._secret, body)
        try:
            async with session.post(self._url, data=body, headers=headers) as response:
                await response.read()
                ok = 200 <= response.status < 300
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise_if_cancelling()
            self._metrics.webhook_batches.labels("unreachable").inc()
            self._log.warning("webhook.unreachable", error=repr(exc), events=len(entries))
            return False
        self._metrics.webhook_batches.labels("delivered" if ok else "refused").inc()
        if ok:
            self._metrics.webhook_events.inc(len(entries))
        else:
            self._log.warning("webhook.refused", status=response.status, events=len(entries))
        return ok
