"""The Redis key layout. Every key of one room carries the room's hash tag, so a
room's script touches one slot and the layout can move to Redis Cluster.

    {prefix}:{<room>}:meta       hash   epoch, seq, node (master_replid of its last write), fencing
    {prefix}:{<room>}:hist       stream the room's history, MAXLEN history_size
    {prefix}:{<room>}:ch         channel the room's publications and transients
    {prefix}:{<room>}:ver        hash   annotation id -> version[":d" if deleted]
    {prefix}:{<room>}:leases     hash   annotation id -> lease JSON
    {prefix}:{<room>}:idem:<k>   string first outcome of an idempotent publish
    {prefix}:{<room>}:bind       string project the room is bound to
    {prefix}:{<room>}:pconn      hash   connection id -> user id (presence)
    {prefix}:{<room>}:pusers     hash   user id -> connections in the room
    {prefix}:{<room>}:pnames     hash   user id -> display name
    {prefix}:{u:<user>}:conns    hash   connection id -> instance id
    {prefix}:instances           zset   instance id -> last heartbeat (ms)
    {prefix}:instances:conns     hash   instance id -> its connections (for stats)
    {prefix}:instances:reaping:<id> string which survivor reaps a dead instance
    {prefix}:inst:<id>:rooms     set    rooms where the instance has presence
    {prefix}:inst:<id>:users     set    users with a connection on the instance
    {prefix}:lease_expiry        zset   "<room> <annotation id>" -> expiry (ms)
    {prefix}:control             channel control messages (disconnect a user, canary)
    {prefix}:memory_probe        string who measures Redis memory this period (NX, PX period)
    {prefix}:memory              string "<used_memory> <maxmemory> <measured_at_ms>", PX 3 periods
    {prefix}:webhooks:stream     stream webhook events in journal order (one for the deployment:
                                 outside any room's slot, so not yet for Redis Cluster)
    {prefix}:webhooks:counter    string webhook events journaled (gaps are dead letters)
    {prefix}:webhooks:cursor     string the last webhook event delivered (acknowledged by a 2xx)
    {prefix}:webhooks:lease      string which instance delivers now (SET NX PX)

Every key has a TTL, refreshed while it is in use.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RoomKeys:
    meta: str
    hist: str
    channel: str
    versions: str
    leases: str
    bind: str
    pconn: str
    pusers: str
    pnames: str
    idem_prefix: str


class KeyLayout:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.control = f"{prefix}:control"
        self.instances = f"{prefix}:instances"
        self.lease_expiry = f"{prefix}:lease_expiry"
        self._channel_prefix = f"{prefix}:{{"
        self._rooms: dict[str, RoomKeys] = {}

    def room(self, room: str) -> RoomKeys:
        keys = self._rooms.get(room)
        if keys is None:
            base = f"{self.prefix}:{{{room}}}"
            keys = RoomKeys(
                meta=f"{base}:meta",
                hist=f"{base}:hist",
                channel=f"{base}:ch",
                versions=f"{base}:ver",
                leases=f"{base}:leases",
                bind=f"{base}:bind",
                pconn=f"{base}:pconn",
                pusers=f"{base}:pusers",
                pnames=f"{base}:pnames",
                idem_prefix=f"{base}:idem:",
            )
            if len(self._rooms) > 10_000:
                self._rooms.clear()
            self._rooms[room] = keys
        return keys

    def room_of_channel(self, channel: str) -> str | None:
        if channel.startswith(self._channel_prefix) and channel.endswith("}:ch"):
            return channel[len(self._channel_prefix) : -4]
        return None

    def user_conns(self, user_id: str) -> str:
        return f"{self.prefix}:{{u:{user_id}}}:conns"

    def instance_rooms(self, instance_id: str) -> str:
        return f"{self.prefix}:inst:{instance_id}:rooms"

    def instance_users(self, instance_id: str) -> str:
        return f"{self.prefix}:inst:{instance_id}:users"
