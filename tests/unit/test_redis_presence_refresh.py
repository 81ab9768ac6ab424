"""The presence store's periodic renewal of its entries' TTL, against a real redis-server."""

from __future__ import annotations

from typing import Any

from roomcast.brokers.redis_client import connect, disconnect
from roomcast.config import Settings
from roomcast.presence import redis as presence_redis
from roomcast.presence.redis import ENTRY_TTL_SECONDS, RedisPresenceStore
from tests.support.redis_procs import RedisServer, redis_server

__all__ = ["redis_server"]


async def test_a_heartbeat_renews_every_entry_in_chunks(
    redis_server: RedisServer, monkeypatch: Any
) -> None:
    monkeypatch.setattr(presence_redis, "REFRESH_CHUNK", 7)  # several chunks
    client = connect(Settings(redis_url=redis_server.url))
    try:
        store = RedisPresenceStore(client, prefix="r", instance_id="i1", refresh_seconds=0)
        rooms = [f"project_p{i}" for i in range(10)]
        for i, room in enumerate(rooms):
            await store.add(room, f"u{i}", None, f"s{i}")
            await store.register_connection(f"u{i}", f"s{i}", 5)
        layout = [store.keys.room(room) for room in rooms]
        keys = [k for r in layout for k in (r.pconn, r.pusers, r.pnames)]
        keys += [store.keys.user_conns(f"u{i}") for i in range(10)]
        for key in keys:
            await client.expire(key, 5)
        await store.heartbeat(10)
        ttls = [await client.ttl(key) for key in keys]
        assert len(keys) == 40 and all(ttl > ENTRY_TTL_SECONDS - 5 for ttl in ttls), ttls
    finally:
        await disconnect(client)
