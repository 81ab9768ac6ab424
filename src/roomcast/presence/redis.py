"""RedisPresenceStore: presence, per-user connection counts and the instance
registry, shared by every instance.

Entries are owned by instances: connection ids are "<instance>|<sid>", and each
instance keeps sets of the rooms and users it has entries for. An instance that
stops heartbeating is declared dead after DEAD_AFTER seconds and any survivor
reaps its entries; every key also has a TTL, refreshed while in use, so nothing
outlives a whole cluster's death.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any, TypeVar

from ..brokers.redis_calls import gather_all, shared_batcher
from ..brokers.redis_client import call, timeout_of
from ..brokers.redis_keys import KeyLayout
from ..brokers.redis_sharded import is_cluster
from ..domain import InstanceInfo, Member, PresenceChange
from ..errors import BrokerUnavailable
from ..observability.logging import get_logger
from . import lua_presence

T = TypeVar("T")
DEAD_AFTER_SECONDS = 10.0
ENTRY_TTL_SECONDS = 3600
REFRESH_SECONDS = 60.0  # how often a heartbeat also renews this instance's entries
#: Keys renewed per pipeline by that refresh: an instance with 10,000 rooms renews
#: 40,000 keys, which in one pipeline held the event loop for most of a second.
REFRESH_CHUNK = 1000
#: Failed removals kept before the overflow is reported (none is ever dropped).
PENDING_LIMIT = 100_000


class RedisPresenceStore:
    def __init__(
        self,
        client: Any,
        *,
        prefix: str,
        instance_id: str,
        dead_after_seconds: float = DEAD_AFTER_SECONDS,
        refresh_seconds: float = REFRESH_SECONDS,
    ) -> None:
        self._dead_after = dead_after_seconds
        self._refresh_every = refresh_seconds
        # redis-py's return types are unions of bytes and str whatever the decoding;
        # with decode_responses=True every reply here is str, so the client is Any.
        self._redis: Any = client
        self._timeout = timeout_of(client)
        # The hot path's commands (connect, join, leave, disconnect) share the broker's
        # per-turn pipelines (brokers/redis_calls.py).
        self._calls = shared_batcher(client)
        self.keys = KeyLayout(prefix)
        self._instance = instance_id
        self._add = client.register_script(lua_presence.ADD)
        self._remove = client.register_script(lua_presence.REMOVE)
        self._reap_room = client.register_script(lua_presence.REAP_ROOM)
        self._register = client.register_script(lua_presence.REGISTER)
        self._reap_user = client.register_script(lua_presence.REAP_USER)
        self._heartbeat = client.register_script(lua_presence.HEARTBEAT)
        self._sharded = is_cluster(client)  # Redis Cluster: no scripts in pipelines
        self._local_rooms: dict[str, int] = {}  # room -> this instance's entries there
        self._local_users: dict[str, int] = {}  # user -> this instance's connections
        self._refreshed_at = time.monotonic()
        # Since when heartbeats have been getting through (None: the last one failed).
        self._healthy_since: float | None = None
        self._last_ok: float | None = None
        self._server_now_ms = 0  # Redis's clock at the last heartbeat
        # Removals that failed while Redis was unreachable, retried by reap_dead, in
        # order. Never dropped: a dropped removal would show a user in a room for as
        # long as this instance lives. No connection is admitted, and no presence room
        # joined, without Redis, so an outage can leave at most the connections alive
        # when it began; past PENDING_LIMIT the overflow is counted and logged (a sign
        # of a Redis that flaps for a long time), and still kept.
        self._pending: deque[tuple[str, str, str]] = deque()  # (room|"", user, conn)
        self.pending_overflow = 0
        self._log = get_logger(component="presence")
        self._leftovers_checked = False

    def _conn(self, conn_id: str) -> str:
        return f"{self._instance}|{conn_id}"

    def _room_keys(self, room: str) -> list[str]:
        k = self.keys.room(room)
        return [k.pconn, k.pusers, k.pnames]

    # presence ------------------------------------------------------------------------

    async def _call(self, awaitable: Any) -> Any:
        """A Redis call within redis_timeout_ms, like the broker's."""
        return await call(awaitable, self._timeout)

    async def add(self, room: str, user_id: str, name: str | None, conn_id: str) -> PresenceChange:
        change, _ = await self._add_entry(room, user_id, name, conn_id, listing=False)
        return change

    async def arrive(
        self, room: str, user_id: str, name: str | None, conn_id: str
    ) -> tuple[PresenceChange, list[Member]]:
        return await self._add_entry(room, user_id, name, conn_id, listing=True)

    async def _add_entry(
        self, room: str, user_id: str, name: str | None, conn_id: str, *, listing: bool
    ) -> tuple[PresenceChange, list[Member]]:
        args = [self._conn(conn_id), user_id, name or "", ENTRY_TTL_SECONDS, int(listing)]
        calls = [self._calls.submit_script(self._add, self._room_keys(room), args)]
        if self._local_rooms.get(room, 0) == 0:
            # In the same pipeline rather than after the entry: SADD is idempotent, and
            # a room noted for an entry that then failed costs the reaper one no-op.
            rooms_key = self.keys.instance_rooms(self._instance)
            calls.append(self._calls.submit("SADD", rooms_key, room))
        reply = (await gather_all(*calls))[0]
        first, connections, count = reply[:3]
        self._local_rooms[room] = self._local_rooms.get(room, 0) + 1
        member = Member(user_id, name, int(connections))
        change = PresenceChange(room, member if int(first) else None, None, int(count))
        members = [
            Member(reply[i], reply[i + 2] or None, int(reply[i + 1]))
            for i in range(3, len(reply), 3)
            if int(reply[i + 1]) > 0
        ]
        return change, sorted(members, key=lambda m: m.user_id)

    async def remove(self, room: str, user_id: str, conn_id: str) -> PresenceChange:
        remaining = self._local_rooms.get(room, 0) - 1
        if remaining > 0:
            self._local_rooms[room] = remaining
        else:
            self._local_rooms.pop(room, None)
        try:
            return await self._remove_entry(room, user_id, conn_id)
        except BrokerUnavailable:
            self._keep_pending(room, user_id, conn_id)
            raise

    async def _remove_entry(self, room: str, user_id: str, conn_id: str) -> PresenceChange:
        left_flag, name, count = await self._calls.script(
            self._remove, self._room_keys(room), [self._conn(conn_id), user_id]
        )
        left = Member(user_id, name or None, 0) if int(left_flag) else None
        return PresenceChange(room, None, left, int(count))

    async def members(self, room: str) -> list[Member]:
        k = self.keys.room(room)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(k.pusers)
            pipe.hgetall(k.pnames)
            counts, names = await self._call(pipe.execute())
        return [
            Member(user, names.get(user) or None, int(n))
            for user, n in sorted(counts.items())
            if int(n) > 0
        ]

    async def member(self, room: str, user_id: str) -> Member | None:
        k = self.keys.room(room)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hget(k.pusers, user_id)
            pipe.hget(k.pnames, user_id)
            n, name = await self._call(pipe.execute())
        return Member(user_id, name or None, int(n)) if n and int(n) > 0 else None

    # connection registry ---------------------------------------------------------------

    async def register_connection(self, user_id: str, conn_id: str, limit: int) -> bool:
        args = [self._conn(conn_id), limit, self._instance, ENTRY_TTL_SECONDS]
        calls = [self._calls.submit_script(self._register, [self.keys.user_conns(user_id)], args)]
        if self._local_users.get(user_id, 0) == 0:
            # In the same pipeline, as in `_add_entry`: a user noted for a refused
            # connection costs the reaper one no-op.
            users_key = self.keys.instance_users(self._instance)
            calls.append(self._calls.submit("SADD", users_key, user_id))
        if not int((await gather_all(*calls))[0]):
            return False
        self._local_users[user_id] = self._local_users.get(user_id, 0) + 1
        return True

    async def unregister_connection(self, user_id: str, conn_id: str) -> None:
        remaining = self._local_users.get(user_id, 0) - 1
        if remaining > 0:
            self._local_users[user_id] = remaining
        else:
            self._local_users.pop(user_id, None)
        try:
            await self._calls.command("HDEL", self.keys.user_conns(user_id), self._conn(conn_id))
        except BrokerUnavailable:
            self._keep_pending("", user_id, conn_id)
            raise

    async def user_connections(self, user_id: str) -> int:
        n: int = await self._call(self._redis.hlen(self.keys.user_conns(user_id)))
        return n

    # instances -------------------------------------------------------------------------

    async def heartbeat(self, connections: int) -> None:
        """Say this instance is alive, and keep its keys' TTLs fresh."""
        stamp = {"keys": [self.keys.instances], "args": [self._instance, ENTRY_TTL_SECONDS]}
        stamped: int | None = None
        if self._sharded:
            # redis-py's cluster pipeline takes no script: the heartbeat goes first, alone.
            try:
                stamped = int(await self._call(self._heartbeat(**stamp)))
            except BrokerUnavailable:
                self._healthy_since = None
                raise
        async with self._redis.pipeline(transaction=False) as pipe:
            if stamped is None:
                await self._heartbeat(**stamp, client=pipe)  # queued in the pipeline
            pipe.hset(f"{self.keys.instances}:conns", self._instance, connections)
            pipe.expire(f"{self.keys.instances}:conns", ENTRY_TTL_SECONDS)
            for key in (
                self.keys.instance_rooms(self._instance),
                self.keys.instance_users(self._instance),
            ):
                pipe.expire(key, ENTRY_TTL_SECONDS)
            refresh = time.monotonic() - self._refreshed_at > self._refresh_every
            if refresh and self._sharded:
                # Entries of long-lived connections must outlive ENTRY_TTL_SECONDS.
                for key in self._entry_keys():
                    pipe.expire(key, ENTRY_TTL_SECONDS)
            try:
                results = await self._call(pipe.execute())
            except BrokerUnavailable:
                self._healthy_since = None
                raise
        self._server_now_ms = stamped if stamped is not None else int(results[0])
        now = time.monotonic()
        # Healthy means heartbeats got through steadily: a stall (a heartbeat that
        # took long, or a long pause between two) starts the count again.
        if (
            self._healthy_since is None
            or self._last_ok is None
            or now - self._last_ok > self._dead_after / 2
        ):
            self._healthy_since = now
        self._last_ok = now
        if refresh and (self._sharded or await self._renew_entries()):
            self._refreshed_at = time.monotonic()

    def _entry_keys(self) -> list[str]:
        keys = [key for room in self._local_rooms for key in self._room_keys(room)]
        return keys + [self.keys.user_conns(user) for user in self._local_users]

    async def _renew_entries(self) -> bool:
        """Renew the TTL of every entry key this instance holds, a chunk at a time.

        Through the batcher (redis_calls.py), whose packing costs a fraction of a
        redis-py pipeline's, and chunk by chunk so that connects and joins go on
        between them, each chunk with a deadline of its own. False when it did not get
        through: the heartbeat did, and the next one retries (the keys' TTL is an
        hour, the refresh a minute), so a failure here does not end the round's chores.
        """
        keys = self._entry_keys()
        try:
            for start in range(0, len(keys), REFRESH_CHUNK):
                chunk = keys[start : start + REFRESH_CHUNK]
                await gather_all(
                    *(self._calls.submit("EXPIRE", k, ENTRY_TTL_SECONDS) for k in chunk)
                )
        except BrokerUnavailable as exc:
            self._log.warning("presence.refresh_failed", keys=len(keys), error=exc.message)
            return False
        return True

    async def _server_ms(self) -> int:
        seconds, micros = await self._call(self._redis.time())
        return int(seconds) * 1000 + int(micros) // 1000

    async def instances(self) -> list[InstanceInfo]:
        cutoff = await self._server_ms() - int(self._dead_after * 1000)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zrangebyscore(self.keys.instances, cutoff, "+inf", withscores=True)
            pipe.hgetall(f"{self.keys.instances}:conns")
            alive, conns = await self._call(pipe.execute())
        return [
            InstanceInfo(instance_id, int(conns.get(instance_id, 0)), score / 1000)
            for instance_id, score in alive
        ]

    async def reap_dead(self) -> list[PresenceChange]:
        """Remove what dead instances (and this one, earlier) left behind.

        Returns a presence change for each user that thereby left a room. Other
        instances are judged only after this one has heartbeated for DEAD_AFTER
        seconds in a row: after a Redis outage nobody's heartbeat got through, and
        the live must not be reaped as dead. Of several survivors, one reaps each.
        """
        changes = await self._retry_pending()
        if not self._leftovers_checked and self._healthy_since is not None:
            self._leftovers_checked = True
            if not self._local_rooms and not self._local_users:
                # A process that reuses a crashed one's instance id owns its leftovers.
                changes += await self._reap_instance(self._instance)
        healthy = self._healthy_since
        if healthy is None or time.monotonic() - healthy < self._dead_after:
            return changes
        cutoff = self._server_now_ms - int(self._dead_after * 1000)
        dead = await self._call(self._redis.zrangebyscore(self.keys.instances, "-inf", cutoff))
        for instance_id in dead:
            if instance_id == self._instance:
                continue
            claim = f"{self.keys.instances}:reaping:{instance_id}"
            if await self._call(self._redis.set(claim, self._instance, nx=True, ex=30)):
                changes += await self._reap_instance(instance_id)
        return changes

    def _keep_pending(self, room: str, user_id: str, conn_id: str) -> None:
        self._pending.append((room, user_id, conn_id))
        if len(self._pending) > PENDING_LIMIT:
            self.pending_overflow += 1
            if self.pending_overflow == 1 or self.pending_overflow % PENDING_LIMIT == 0:
                self._log.warning(
                    "presence.pending_over_limit",
                    pending=len(self._pending),
                    overflowed=self.pending_overflow,
                )

    async def _retry_pending(self) -> list[PresenceChange]:
        changes: list[PresenceChange] = []
        while self._pending:
            room, user_id, conn_id = self._pending[0]
            if room:
                change = await self._remove_entry(room, user_id, conn_id)
                if change.left is not None:
                    changes.append(change)
            else:
                user_conns = self.keys.user_conns(user_id)
                await self._call(self._redis.hdel(user_conns, self._conn(conn_id)))
            self._pending.popleft()
        return changes

    async def _reap_instance(self, instance_id: str) -> list[PresenceChange]:
        changes: list[PresenceChange] = []
        prefix = f"{instance_id}|"
        rooms_key = self.keys.instance_rooms(instance_id)
        for room in await self._call(self._redis.smembers(rooms_key)):
            out = await self._call(self._reap_room(keys=self._room_keys(room), args=[prefix]))
            count = int(out[0])
            for i in range(1, len(out), 2):
                changes.append(
                    PresenceChange(room, None, Member(out[i], out[i + 1] or None, 0), count)
                )
        users_key = self.keys.instance_users(instance_id)
        for user in await self._call(self._redis.smembers(users_key)):
            await self._call(self._reap_user(keys=[self.keys.user_conns(user)], args=[prefix]))
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.delete(rooms_key, users_key)
            if instance_id != self._instance:
                pipe.zrem(self.keys.instances, instance_id)
                pipe.hdel(f"{self.keys.instances}:conns", instance_id)
            await self._call(pipe.execute())
        return changes

    def size(self) -> int:
        return len(self._local_rooms) + len(self._local_users)
