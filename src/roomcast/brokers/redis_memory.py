"""Redis's memory, measured by one instance per period for the whole cluster.

INFO is cheap but not free, and every instance exporting its own reading would
give a dashboard as many slightly different figures as there are instances. So
one instance at a time measures and stores the figure, and every instance reads
the stored one:

    {prefix}:memory_probe   string  who measures this period; SET NX PX <period>
    {prefix}:memory         string  "<used_memory> <maxmemory> <measured_at_ms>",
                                    PX 3 periods

The instance whose `SET NX` wins runs `INFO memory` and stores the figure; the
others read the figure left by the last winner. The lock expires by itself, so an
instance that dies holding it only delays the next measurement by one period.

In a Redis Cluster the figure is the fullest primary's (the highest share of its
maxmemory, or the most used without one): a shard that runs out of memory refuses
its rooms' writes however empty the others are.
"""

from __future__ import annotations

import time
from typing import Any

from redis.exceptions import ResponseError

from ..domain import MemoryUsage
from ..errors import RoomcastError
from ..ids import new_event_id
from .redis_client import call, timeout_of
from .redis_sharded import is_cluster

FIGURE_LIFETIME_PERIODS = 3


async def shared_memory_usage(
    client: Any, prefix: str, refresh_seconds: float
) -> MemoryUsage | None:
    """The figure of this period: measured here if no instance did yet, else read.

    Raises BrokerUnavailable, or RoomcastError when Redis refuses a command for
    good (a managed Redis may rename or forbid INFO).
    """
    try:
        return await _shared_memory_usage(client, prefix, refresh_seconds)
    except ResponseError as exc:
        raise RoomcastError(f"Redis memory probe refused: {exc}") from None


async def _shared_memory_usage(
    client: Any, prefix: str, refresh_seconds: float
) -> MemoryUsage | None:
    period_ms = max(1, int(refresh_seconds * 1000))
    lock, figure = f"{prefix}:memory_probe", f"{prefix}:memory"
    async with client.pipeline(transaction=False) as pipe:
        # One round trip for the common case, an instance that does not measure.
        pipe.set(lock, new_event_id(), nx=True, px=period_ms)
        pipe.get(figure)
        won, stored = await call(pipe.execute(), timeout_of(client))
    if not won:
        return parse_figure(stored)
    if is_cluster(client):
        per_node = await call(client.info("memory", target_nodes="primaries"), timeout_of(client))
        info = max(per_node.values(), key=_fullness)
    else:
        info = await call(client.info("memory"), timeout_of(client))
    usage = MemoryUsage(
        used_bytes=int(info["used_memory"]),
        max_bytes=int(info.get("maxmemory", 0)),
        measured_at_ms=int(time.time() * 1000),
    )
    text = f"{usage.used_bytes} {usage.max_bytes} {usage.measured_at_ms}"
    await call(client.set(figure, text, px=period_ms * FIGURE_LIFETIME_PERIODS))
    return usage


def _fullness(info: dict[str, Any]) -> tuple[float, int]:
    used, most = int(info["used_memory"]), int(info.get("maxmemory", 0))
    return (used / most if most else 0.0, used)


def parse_figure(stored: str | None) -> MemoryUsage | None:
    """A stored figure, or None when there is none (or it is not one of ours)."""
    if not stored:
        return None
    parts = stored.split(" ")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    return MemoryUsage(int(parts[0]), int(parts[1]), int(parts[2]))
