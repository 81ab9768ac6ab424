"""Following the sentinels' `+switch-master` announcements for one master name.

redis-py asks the sentinels for the master only when it opens a connection, and a
demoted master goes on taking writes until the sentinels convert it to a replica
(about 10 s after a `SENTINEL FAILOVER`): everything written there meanwhile is
lost. The watch subscribes to `+switch-master` on every sentinel, so the broker
hears of a failover the moment it is announced, from whichever sentinel speaks
first; the same switch announced by the others is reported once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from ..observability.logging import get_logger

CHANNEL = "+switch-master"
RETRY_SECONDS = (0.1, 0.2, 0.5, 1.0)


@dataclass(frozen=True, slots=True)
class Switch:
    """One announced failover: the master moved from `old` to `new` (host, port)."""

    old: tuple[str, int]
    new: tuple[str, int]


def parse_switch(master_name: str, data: str | bytes) -> Switch | None:
    """`<name> <old host> <old port> <new host> <new port>`; None for another master.

    The sentinels' clients do not decode replies: `data` may be bytes."""
    text = data.decode() if isinstance(data, bytes) else data
    parts = text.split()
    if len(parts) != 5 or parts[0] != master_name:
        return None
    return Switch((parts[1], int(parts[2])), (parts[3], int(parts[4])))


async def watch(
    sentinels: list[Any], master_name: str, on_switch: Callable[[Switch], Awaitable[None]]
) -> None:
    """Run until cancelled: call `on_switch` once per announced switch, in order.

    One reader per sentinel (each reconnects by itself with a short backoff), all
    inside this task, so cancelling it stops them all.
    """
    switches: asyncio.Queue[Switch] = asyncio.Queue()
    async with asyncio.TaskGroup() as group:
        for sentinel in sentinels:
            group.create_task(_read(sentinel, master_name, switches))
        last: Switch | None = None
        while True:
            switch = await switches.get()
            if switch == last:
                continue  # the same failover, announced by another sentinel
            last = switch
            await on_switch(switch)


async def _read(sentinel: Any, master_name: str, switches: asyncio.Queue[Switch]) -> None:
    log = get_logger(component="sentinel_watch", sentinel=repr(sentinel))
    failures = 0
    while True:
        pubsub = sentinel.pubsub()
        try:
            await pubsub.subscribe(CHANNEL)
            failures = 0
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is None or message.get("type") != "message":
                    continue
                switch = parse_switch(master_name, message["data"])
                if switch is not None:
                    log.info("sentinel_watch.switch_master", old=switch.old, new=switch.new)
                    switches.put_nowait(switch)
        except (RedisError, OSError) as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise asyncio.CancelledError from exc  # redis-py turned it into an error
            delay = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
            failures += 1
            if failures == 1:
                log.info("sentinel_watch.lost", error=str(exc), retry_in=delay)
            await asyncio.sleep(delay)
        finally:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()
