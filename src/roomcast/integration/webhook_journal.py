"""The webhook journal: every webhook event, in order, with a delivery cursor and a lease.

Events are appended with or right after what they report (a client's event by the
script that sequences it, so in seq order; a presence change after it is made), so
they outlive the instance that made them: in Redis a stream, bounded by MAXLEN, with
the cursor (the last acknowledged entry) and the deliverer's lease beside it. Any
instance can hold the lease (SET NX PX, renewed by its holder); only the holder
delivers, so events leave in journal order, and an instance that dies mid-delivery
loses nothing: its lease expires and the next holder resumes from the cursor,
resending at most the batch that was in flight (duplicates, by `id`).

Each entry carries a number from one counter: a gap between the cursor's number and
the next entry's is the count of events the bound evicted before they were sent (the
dead letters). In memory mode the same, within the one process.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..brokers.redis_batch import JournalKeys

JOURNAL_MAXLEN = 100_000  # events kept for a receiver that is down; older ones are dead letters


@dataclass(frozen=True, slots=True)
class JournalEntry:
    position: str  # the stream id, "<ms>-<n>": its time is when the event was journaled
    number: int  # 1, 2, 3... across the journal's life
    event: str  # the webhook event, as compact JSON

    @property
    def at_ms(self) -> int:
        return int(self.position.split("-", 1)[0])


@dataclass(frozen=True, slots=True)
class JournalPage:
    now_ms: int  # the journal's clock (Redis's, in Redis mode)
    acked: int  # the number of the last acknowledged entry (0: none yet)
    entries: list[JournalEntry]

    @property
    def evicted(self) -> int:
        """Events lost to the bound between the cursor and the first entry read."""
        if not self.entries:
            return 0
        return max(0, self.entries[0].number - self.acked - 1)


class WebhookJournal(Protocol):
    async def append(self, events: Sequence[str]) -> None:
        """Journal webhook events (compact JSON), in this order."""

    async def hold_lease(self, holder: str, ttl_ms: int) -> bool:
        """Take or renew the delivery lease; whether `holder` has it now."""

    async def read(self, count: int) -> JournalPage:
        """Up to `count` entries after the cursor, in journal order."""

    async def ack(self, holder: str, last: JournalEntry) -> bool:
        """Move the cursor to `last` if `holder` still holds the lease; drop what it passed."""

    async def aclose(self) -> None:
        """Release connections."""


class MemoryJournal:
    """The journal of one process: a bounded deque; the lease is always this process's."""

    def __init__(self, maxlen: int = JOURNAL_MAXLEN) -> None:
        self._entries: deque[JournalEntry] = deque(maxlen=maxlen)
        self._counter = 0
        self._acked = 0

    async def append(self, events: Sequence[str]) -> None:
        now = int(time.time() * 1000)
        for event in events:
            self._counter += 1
            self._entries.append(JournalEntry(f"{now}-{self._counter}", self._counter, event))

    async def hold_lease(self, holder: str, ttl_ms: int) -> bool:
        return True

    async def read(self, count: int) -> JournalPage:
        now = int(time.time() * 1000)
        entries: list[JournalEntry] = []
        for entry in self._entries:
            if len(entries) >= count:
                break
            if entry.number > self._acked:
                entries.append(entry)
        return JournalPage(now, self._acked, entries)

    async def ack(self, holder: str, last: JournalEntry) -> bool:
        self._acked = last.number
        while self._entries and self._entries[0].number <= last.number:
            self._entries.popleft()
        return True

    async def aclose(self) -> None:
        return None


_APPEND = """
for i = 1, #ARGV - 1 do
  local n = redis.call('INCR', KEYS[2])
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[#ARGV], '*', 'n', n, 'e', ARGV[i])
end
return #ARGV - 1
"""

_LEASE = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

_READ = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cursor = redis.call('HMGET', KEYS[2], 'id', 'n')
local start = '-'
if cursor[1] then start = '(' .. cursor[1] end
local entries = redis.call('XRANGE', KEYS[1], start, '+', 'COUNT', ARGV[1])
return {now, tonumber(cursor[2] or 0), entries}
"""

_ACK = """
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[2], 'id', ARGV[2], 'n', ARGV[3])
redis.call('XTRIM', KEYS[1], 'MINID', ARGV[2])
return 1
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisJournal:
    """The journal in Redis, shared by every instance (keys under `<prefix>:webhooks:`)."""

    def __init__(self, client: Any, prefix: str, maxlen: int = JOURNAL_MAXLEN) -> None:
        self._client = client
        base = f"{prefix}:webhooks"
        self._stream, self._counter = f"{base}:stream", f"{base}:counter"
        self._cursor, self._lease = f"{base}:cursor", f"{base}:lease"
        self._maxlen = maxlen
        # For the broker's publish script, which journals client events itself.
        # One stream for the deployment, not in any room's hash slot: fine on one
        # server or under Sentinel; Redis Cluster would need one journal per slot.
        self.keys = JournalKeys(self._stream, self._counter, maxlen)
        self._append = client.register_script(_APPEND)
        self._hold = client.register_script(_LEASE)
        self._read = client.register_script(_READ)
        self._ack = client.register_script(_ACK)

    async def append(self, events: Sequence[str]) -> None:
        if events:
            await self._append(keys=[self._stream, self._counter], args=[*events, self._maxlen])

    async def hold_lease(self, holder: str, ttl_ms: int) -> bool:
        return bool(await self._hold(keys=[self._lease], args=[holder, ttl_ms]))

    async def read(self, count: int) -> JournalPage:
        now, acked, raw = await self._read(keys=[self._stream, self._cursor], args=[count])
        entries = []
        for position, fields in raw:
            values = dict(zip(map(_text, fields[::2]), fields[1::2], strict=True))
            entries.append(JournalEntry(_text(position), int(values["n"]), _text(values["e"])))
        return JournalPage(int(now), int(acked), entries)

    async def ack(self, holder: str, last: JournalEntry) -> bool:
        done = await self._ack(
            keys=[self._stream, self._cursor, self._lease],
            args=[holder, last.position, last.number],
        )
        return bool(done)

    async def aclose(self) -> None:
        await self._client.aclose()
