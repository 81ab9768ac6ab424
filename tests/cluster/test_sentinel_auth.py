"""Redis with passwords, a database number and TLS (SPEC section 8, Sentinel rows).

A master and replica that require a password, three sentinels with a password of
their own, and a real roomcast server given both (and `redis_db=3`): events reach a
joined client, keys land in database 3, a wrong password is a prompt 503 that says
so, and a failover resumes publishing. The same over TLS, with a CA the server's
process trusts through `SSL_CERT_FILE` (roomcast uses the system store). The last
tests show the settings filling in what a standalone URL leaves out.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from roomcast import Settings
from roomcast.errors import BrokerUnavailable
from tests.support.redis_procs import HOST, RedisServer, SentinelCluster
from tests.support.server import Client, RunningServer, running_server, test_settings

ROOM = "project_sa"
PREFIX = "sa"
DB = 3
BODY: dict[str, Any] = {
    "room": ROOM,
    "type": "project_progress_update",
    "data": {"total": 4, "completed": 1, "percent": 25},
}


def _password() -> str:
    return secrets.token_hex(12)


@pytest.fixture
def secured_cluster() -> Iterator[SentinelCluster]:
    """Master and replica with one password, sentinels with another; stopped by PID."""
    cluster = SentinelCluster(password=_password(), sentinel_password=_password()).start()
    try:
        yield cluster
    finally:
        cluster.stop()


def _settings(cluster: SentinelCluster, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "redis_sentinels": cluster.sentinels_setting,
        "redis_sentinel_master": cluster.master_name,
        "redis_sentinel_password": cluster.sentinel_password,
        "redis_password": cluster.password,
        "redis_db": DB,
        "key_prefix": PREFIX,
        "connect_rate_per_address": 0,
    }
    values.update(overrides)
    return test_settings(**values)


def _direct(server: RedisServer, db: int, password: str | None) -> aioredis.Redis:
    """A client of one server and database, bypassing roomcast and Sentinel."""
    tls: dict[str, Any] = {}
    if server.tls is not None:
        tls = {"ssl": True, "ssl_ca_certs": str(server.tls.ca)}
    return aioredis.Redis(
        host=HOST, port=server.port, db=db, password=password, decode_responses=True, **tls
    )


async def _keys(server: RedisServer, db: int, password: str | None) -> list[str]:
    client = _direct(server, db, password)
    try:
        return [key async for key in client.scan_iter(match=f"{PREFIX}*")]
    finally:
        await client.aclose()


async def _joined_client(server: RunningServer) -> Client:
    client = await server.client("u", projects=["sa"])
    ack = await client.call("join", {"room": ROOM})
    assert ack["ok"], ack
    return client


async def _publish_and_receive(server: RunningServer, client: Client, percent: int) -> None:
    body = {**BODY, "data": {**BODY["data"], "percent": percent}}
    async with httpx.AsyncClient(base_url=server.url, headers=server.api_headers) as http:
        response = await http.post("/api/v1/publish", json=body)
    assert response.status_code == 200, response.text
    event = await client.next("project_progress_update")
    assert event["data"]["percent"] == percent


async def test_publish_reaches_a_joined_client_and_keys_land_in_the_database(
    secured_cluster: SentinelCluster,
) -> None:
    cluster = secured_cluster
    async with running_server(_settings(cluster)) as server:
        client = await _joined_client(server)
        try:
            await _publish_and_receive(server, client, 25)
        finally:
            await client.close()
        async with httpx.AsyncClient(base_url=server.url) as http:
            ready = await http.get("/readyz")
        assert ready.status_code == 200, ready.text

    in_db = await _keys(cluster.master, DB, cluster.password)
    assert any(key.startswith(f"{PREFIX}:") for key in in_db), in_db
    assert await _keys(cluster.master, 0, cluster.password) == []


@pytest.mark.parametrize("which", ["redis_password", "redis_sentinel_password"])
async def test_a_wrong_password_is_a_prompt_503_that_names_authentication(
    secured_cluster: SentinelCluster, which: str
) -> None:
    settings = _settings(secured_cluster, **{which: "not-the-password"})
    async with (
        running_server(settings) as server,
        httpx.AsyncClient(base_url=server.url, headers=server.api_headers) as http,
    ):
        # Answered once start-up is over (the broker waits up to 3 s for its
        # subscription there); what is timed below is the requests themselves.
        assert (await http.get("/healthz")).status_code == 200
        began = time.monotonic()
        ready = await http.get("/readyz")
        ready_seconds = time.monotonic() - began
        began = time.monotonic()
        published = await http.post("/api/v1/publish", json=BODY)
        publish_seconds = time.monotonic() - began
    assert ready.status_code == 503, ready.text
    reason = ready.json()["reason"]
    assert reason.startswith("broker unavailable"), reason
    assert "password" in reason.lower() or "auth" in reason.lower(), reason
    assert ready_seconds < 1.0, ready_seconds  # refused at once, not a hang or a timeout
    assert published.status_code == 503, published.text
    assert published.json()["error"]["code"] == "broker_unavailable"
    assert publish_seconds < 1.0, publish_seconds
    print(f"{which} wrong: /readyz in {ready_seconds:.2f} s: {reason}")


async def test_failover_with_passwords_resumes_publishing(
    secured_cluster: SentinelCluster,
) -> None:
    cluster = secured_cluster
    async with running_server(_settings(cluster)) as server:
        client = await _joined_client(server)
        try:
            await _publish_and_receive(server, client, 10)
            old_port = cluster.kill_master()
            killed_at = time.monotonic()
            new_port = await cluster.wait_for_new_master(old_port, timeout=20)
            async with asyncio.timeout(15):
                while True:
                    try:
                        await server.runtime.broadcast.publish(ROOM, BODY["type"], BODY["data"])
                        break
                    except BrokerUnavailable:
                        await asyncio.sleep(0.1)  # until the new master takes writes
            resumed = time.monotonic() - killed_at
            assert (await client.next("project_progress_update"))["data"] == BODY["data"]
            assert client.sio.connected
            await _publish_and_receive(server, client, 75)
        finally:
            await client.close()
    assert cluster.master.port == new_port
    in_db = await _keys(cluster.master, DB, cluster.password)
    assert any(key.startswith(f"{PREFIX}:") for key in in_db), in_db
    print(f"failover with passwords: publishing resumed {resumed:.1f} s after the kill")


async def test_tls_to_sentinels_and_master(monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = SentinelCluster(password=_password(), sentinel_password=_password(), tls=True)
    async with cluster:
        assert cluster.tls_files is not None
        # roomcast verifies against the default CA store; here that is the test's CA.
        monkeypatch.setenv("SSL_CERT_FILE", str(cluster.tls_files.ca))
        async with running_server(_settings(cluster, redis_tls=True)) as server:
            client = await _joined_client(server)
            try:
                await _publish_and_receive(server, client, 50)
            finally:
                await client.close()
        # Without TLS, the TLS-only sentinels answer nothing a client can read.
        async with (
            running_server(_settings(cluster, redis_tls=False)) as plain,
            httpx.AsyncClient(base_url=plain.url) as http,
        ):
            ready = await http.get("/readyz")
        assert ready.status_code == 503, ready.text
        assert "No master found" in ready.json()["reason"], ready.text
        # Certificates are verified: the system's own store does not know the test CA.
        monkeypatch.delenv("SSL_CERT_FILE")
        async with (
            running_server(_settings(cluster, redis_tls=True)) as untrusting,
            httpx.AsyncClient(base_url=untrusting.url) as http,
        ):
            ready = await http.get("/readyz")
        assert ready.status_code == 503, ready.text
        assert await _keys(cluster.master, DB, cluster.password)


async def test_standalone_url_takes_password_and_database_from_the_settings() -> None:
    password = _password()
    with RedisServer(password=password) as redis:
        bare_url = f"redis://{HOST}:{redis.port}"  # neither password nor database
        settings = test_settings(
            redis_url=bare_url, redis_password=password, redis_db=2, key_prefix=PREFIX
        )
        async with running_server(settings) as server:
            client = await _joined_client(server)
            try:
                await _publish_and_receive(server, client, 5)
            finally:
                await client.close()
        assert await _keys(redis, 2, password)
        assert await _keys(redis, 0, password) == []


async def test_standalone_url_wins_over_the_settings() -> None:
    password = _password()
    with RedisServer(password=password) as redis:
        url = f"redis://:{password}@{HOST}:{redis.port}/1"
        settings = test_settings(
            redis_url=url, redis_password="not-the-password", redis_db=2, key_prefix=PREFIX
        )
        async with running_server(settings) as server:
            client = await _joined_client(server)
            try:
                await _publish_and_receive(server, client, 6)
            finally:
                await client.close()
        assert await _keys(redis, 1, password)
        assert await _keys(redis, 2, password) == []
