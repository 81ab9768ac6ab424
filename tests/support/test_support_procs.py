"""Self-tests of the process helpers: real redis-server, Sentinel and roomcast processes."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel

from tests.support.instances import RoomcastProcess
from tests.support.redis_procs import (
    RedisReplyError,
    RedisServer,
    SentinelCluster,
    TLSFiles,
    command,
    free_port,
    redis_server,
    sentinel_cluster,
)

__all__ = ["redis_server", "sentinel_cluster"]  # fixtures, used by name below


def assert_gone(pid: int) -> None:
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_free_port_is_a_bindable_loopback_port() -> None:
    port = free_port()
    assert 0 < port < 65536


async def test_redis_server_answers_restarts_on_its_port_and_stops(
    redis_server: RedisServer,
) -> None:
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        await client.set("procs:k", "v1")
        assert await client.get("procs:k") == "v1"
    finally:
        await client.aclose()

    port, first_pid = redis_server.port, redis_server.pid
    await redis_server.akill()
    assert_gone(first_pid)
    await redis_server.arestart()
    assert redis_server.port == port
    assert redis_server.pid != first_pid

    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        assert await client.get("procs:k") is None  # nothing is persisted
        await client.set("procs:k", "v2")
        assert await client.get("procs:k") == "v2"
    finally:
        await client.aclose()

    pid = redis_server.pid
    redis_server.stop()
    assert_gone(pid)
    assert not redis_server.running

    redis_server.restart()  # after stop() as well as after kill()
    assert redis_server.port == port
    assert command(redis_server.port, "PING") == "PONG"


def test_replica_follows_its_master() -> None:
    with RedisServer() as master, RedisServer(replicaof=master.address) as replica:
        assert replica.info("replication")["role"] == "slave"
        assert replica.info("replication")["master_port"] == str(master.port)
        pids = [master.pid, replica.pid]
    for pid in pids:
        assert_gone(pid)


async def test_sentinel_cluster_fails_over_to_the_replica(
    sentinel_cluster: SentinelCluster,
) -> None:
    cluster = sentinel_cluster
    old_port, replica_port = cluster.master.port, cluster.replica.port
    assert cluster.master_name == "mymaster"
    assert cluster.sentinels_setting == ",".join(f"{h}:{p}" for h, p in cluster.sentinels)
    assert len(cluster.sentinels) == 3
    for _, port in cluster.sentinels:
        assert command(port, "SENTINEL", "get-master-addr-by-name", "mymaster") == [
            "127.0.0.1",
            str(old_port),
        ]

    killed_pid = cluster.master.pid
    began = time.monotonic()
    assert cluster.kill_master() == old_port
    assert_gone(killed_pid)
    new_port = await cluster.wait_for_new_master(old_port, timeout=15)
    elapsed = time.monotonic() - began
    assert new_port == replica_port
    assert cluster.master.port == new_port
    assert elapsed < 12, f"failover took {elapsed:.1f} s"
    for _, port in cluster.sentinels:
        assert command(port, "SENTINEL", "get-master-addr-by-name", "mymaster")[1] == str(new_port)

    sentinel = Sentinel(cluster.sentinels, socket_timeout=2, decode_responses=True)  # type: ignore[no-untyped-call]
    master = sentinel.master_for("mymaster")
    try:
        await master.set("procs:after-failover", "yes")
        assert await master.get("procs:after-failover") == "yes"
        assert (await master.connection_pool.get_master_address())[1] == new_port
    finally:
        await master.aclose()
        await sentinel.aclose()


def test_sentinel_cluster_stop_leaves_no_process() -> None:
    with SentinelCluster() as cluster:
        pids = [cluster.master.pid, cluster.replica.pid]
        pids += [s.pid for s in cluster.sentinel_procs]
    for pid in pids:
        assert_gone(pid)


async def test_roomcast_process_serves_healthz_and_dies_on_sigkill() -> None:
    async with RoomcastProcess({"ROOMCAST_INSTANCE_ID": "proc-a"}) as proc:
        async with httpx.AsyncClient(base_url=proc.url, timeout=5) as http:
            response = await http.get("/healthz")
        assert response.status_code == 200
        assert response.json()["instance_id"] == "proc-a"
        pid = proc.pid
        assert await proc.akill() == -9
        assert not proc.running
        assert_gone(pid)


async def test_password_protected_server_refuses_a_client_without_it() -> None:
    with RedisServer(password="procs-pw") as server:
        with pytest.raises(RedisReplyError, match="NOAUTH"):
            command(server.port, "PING")
        with pytest.raises(RedisReplyError, match="WRONGPASS"):
            command(server.port, "PING", password="not-it")
        assert server.command("PING") == "PONG"
        assert server.url == f"redis://:procs-pw@127.0.0.1:{server.port}/0"
        client = server.client(decode_responses=True)
        try:
            await client.set("procs:k", "v")
            assert await client.get("procs:k") == "v"
        finally:
            await client.aclose()


async def test_tls_server_has_no_plaintext_port(tmp_path: Path) -> None:
    files = TLSFiles.make(tmp_path)
    with RedisServer(tls=files) as server:
        assert server.url.startswith("rediss://")
        with pytest.raises((OSError, ConnectionError)):
            command(server.port, "PING")  # plaintext to a TLS port: closed, no reply
        assert server.command("PING") == "PONG"
        client = server.client(decode_responses=True)
        try:
            await client.set("procs:k", "v")
            assert await client.get("procs:k") == "v"
        finally:
            await client.aclose()


def test_secured_sentinels_require_their_own_password() -> None:
    with SentinelCluster(password="procs-m", sentinel_password="procs-s") as cluster:
        sentinel = cluster.sentinel_procs[0]
        with pytest.raises(RedisReplyError, match="NOAUTH"):
            command(sentinel.port, "SENTINEL", "get-master-addr-by-name", "mymaster")
        with pytest.raises(RedisReplyError, match="WRONGPASS"):
            command(sentinel.port, "PING", password="procs-m")  # the master's is not theirs
        assert sentinel.master_addr() == cluster.master.address
        assert cluster.master.info("replication")["connected_slaves"] == "1"
