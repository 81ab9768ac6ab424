"""After a Sentinel failover: fence the old master, then keep every epoch that lost nothing.

Replication is asynchronous, so the promoted replica alone cannot tell whether the
old master handed out seqs it never received. The old master can, as long as
nothing more is written to it: the fence (`CLIENT PAUSE <ms> WRITE`) stops every
write there at once, roomcast's and anyone's, while reads go on. Then, for each
room the old master holds, its final (epoch, seq) is compared with the new
master's (settle.lua): equal, and the new master is the old one's direct
successor (`master_replid2`), the room keeps its epoch; different, the room's next
call starts a new epoch, since events were lost. A room that is never settled
(the old master unreachable, as after a crash) gets a new epoch when next used:
what a dead master last wrote cannot be known, so loss is assumed.

The pause outlasts the time every instance takes to follow `+switch-master`
(about 1 s) and to give up a command blocked by it (redis_timeout_ms): no write
reaches the old master after the snapshot. An instance that cannot reach the
sentinels does not follow, and may write there once the pause ends; such writes
are lost as they always were, and are what `min-replicas-to-write` guards against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from .redis_internals import client_for
from .redis_keys import KeyLayout
from .sentinel_watch import Switch

PAUSE_MS = 5000  # the fence on the old master
BATCH = 500  # rooms per pipeline


@dataclass(frozen=True, slots=True)
class Settled:
    """What settling found: rooms kept (epoch unchanged), lost (new epoch), or why not."""

    kept: int = 0
    lost: int = 0
    skipped: str = ""  # why nothing was settled ('' when it was)


async def settle(client: Any, switch: Switch, keys: KeyLayout, script: AsyncScript) -> Settled:
    """Fence `switch.old`, snapshot its rooms, settle each on the new master.

    `client` is the broker's Sentinel client (it reaches the new master); the
    caller bounds the whole with a deadline.
    """
    old = client_for(client, *switch.old)
    try:
        try:
            await old.execute_command("CLIENT", "PAUSE", PAUSE_MS, "WRITE")
            before = await old.info("replication")
        except (RedisError, OSError) as exc:  # unreachable, or refused: nothing is known
            return Settled(skipped=f"old master unreachable: {exc}")
        if before.get("role") != "master":
            return Settled(skipped="old master already converted to a replica")
        snapshot = await _snapshot(old, keys, str(before["master_replid"]))
        after = await old.info("replication")
        if after.get("master_repl_offset") != before.get("master_repl_offset"):
            return Settled(skipped="old master was written to during the snapshot")
    finally:
        await old.aclose()
    new = await client.info("replication")
    if new.get("master_replid2") != before["master_replid"]:
        return Settled(skipped="the new master does not succeed the old one directly")
    kept = lost = 0
    for start in range(0, len(snapshot), BATCH):
        async with client.pipeline(transaction=False) as pipe:
            for room, epoch, seq in snapshot[start : start + BATCH]:
                k = keys.room(room)
                args = ["", 0, 0, 0, before["master_replid"], epoch, seq]
                await script(keys=[k.meta, k.hist, k.channel], args=args, client=pipe)
            for outcome in await pipe.execute():
                kept += outcome == 1
                lost += outcome == 2
    return Settled(kept, lost)


async def _snapshot(old: Any, keys: KeyLayout, node: str) -> list[tuple[str, str, int]]:
    """(room, epoch, seq) of every room the old master last wrote itself."""
    head, tail = f"{keys.prefix}:{{", "}:meta"
    names = [
        key
        async for key in old.scan_iter(match=f"{keys.prefix}:{{*}}:meta", count=1000)
        if key.startswith(head) and key.endswith(tail)
    ]
    rooms: list[tuple[str, str, int]] = []
    for start in range(0, len(names), BATCH):
        chunk = names[start : start + BATCH]
        async with old.pipeline(transaction=False) as pipe:
            for key in chunk:
                pipe.hmget(key, "epoch", "seq", "node")
            states = await pipe.execute()
        for key, (epoch, seq, written_by) in zip(chunk, states, strict=True):
            if epoch is not None and written_by == node:
                rooms.append((key[len(head) : -len(tail)], epoch, int(seq or 0)))
    return rooms
