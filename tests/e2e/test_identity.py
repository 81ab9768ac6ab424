"""Identity providers (SPEC 3 and 8): keys from a JWKS URL that rotate while clients
stay connected and new ones connect, several key sources at once, claim mapping.

Real parts only: a JWKS server of the test's (tests/support/jwks_server.py) on a
loopback port, which counts the requests it serves; roomcast on uvicorn; python-socketio
clients. Each wait is for an event (a request served, a key set installed), never a
sleep; the figures (how soon a new kid verified, how many fetches a flood caused) are
printed with -s.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest
import socketio

from roomcast.auth.jwks import JwksKeys
from tests.support.instances import RoomcastProcess
from tests.support.jwks_server import JwksServer, SigningKey, jwks_server
from tests.support.server import SECRET, Client, RunningServer, running_server
from tests.support.server import test_settings as make_settings

NEW_KID_BOUND = 30.0  # SPEC 8: a new kid verifies within 30 s of being published
UNKNOWN_KID_INTERVAL = 10.0  # SPEC 8: an unknown kid triggers at most one fetch per 10 s


@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKey]:
    return {
        "a": SigningKey.generate("key-a", "RS256"),
        "b": SigningKey.generate("key-b", "ES256"),
        "c": SigningKey.generate("key-c", "EdDSA"),
    }


async def try_connect(url: str, token: str) -> tuple[Client | None, str | None]:
    """(a connected client, None) or (None, the refusal's data.code)."""
    client = Client()
    errors: list[Any] = []

    async def on_connect_error(data: Any = None) -> None:
        errors.append(data)

    client.sio.on("connect_error", on_connect_error)
    try:
        await client.connect(url, token)
    except socketio.exceptions.ConnectionError:
        await client.close()
        assert len(errors) == 1, errors
        return None, str(errors[0]["data"]["code"])
    return client, None


async def connected(url: str, token: str) -> Client:
    client, code = await try_connect(url, token)
    assert client is not None, f"refused: {code}"
    return client


async def refused(url: str, token: str) -> str:
    client, code = await try_connect(url, token)
    if client is not None:
        await client.close()
    assert code is not None, "the connection was accepted"
    return code


def jwks_of(server: RunningServer) -> JwksKeys:
    jwks = server.runtime.verifier.jwks
    assert jwks is not None
    return jwks


@pytest.fixture
async def provider(keys: dict[str, SigningKey]) -> AsyncIterator[JwksServer]:
    async with jwks_server(keys["a"], max_age=2) as provider:
        yield provider


async def test_keys_rotate_while_clients_stay_connected_and_new_ones_connect(
    provider: JwksServer, keys: dict[str, SigningKey]
) -> None:
    a, b, c = keys["a"], keys["b"], keys["c"]
    settings = make_settings(jwt_jwks_url=provider.url, connect_rate_per_address=0)
    clients: list[Client] = []
    async with running_server(settings) as server:
        jwks = jwks_of(server)
        await jwks.wait_installs(1)  # the app's start fetches before serving
        assert provider.requests == 1
        try:
            first = await connected(server.url, a.token("ann", projects=["p1"]))
            clients.append(first)
            assert (await first.next("connection_status"))["user_id"] == "ann"

            # A new kid presented before any refresh saw it: the connect awaits the
            # fetch it triggers and succeeds on its first try.
            requests = provider.requests
            provider.publish(a, b)
            published = time.monotonic()
            clients.append(await connected(server.url, b.token("ben")))
            on_demand = time.monotonic() - published
            assert provider.requests > requests

            # A new kid nobody presents: the background refresh alone brings it.
            installs = jwks.installs
            provider.publish(a, b, c)
            published = time.monotonic()
            await asyncio.wait_for(jwks.wait_installs(installs + 1), NEW_KID_BOUND)
            clients.append(await connected(server.url, c.token("cid")))
            background = time.monotonic() - published
            assert background < NEW_KID_BOUND

            # The old kid keeps working until it is removed.
            clients.append(await connected(server.url, a.token("amy")))

            # Removed: refused at once after the next refresh.
            installs = jwks.installs
            provider.publish(b, c)
            await asyncio.wait_for(jwks.wait_installs(installs + 1), NEW_KID_BOUND)
            assert await refused(server.url, a.token("ann")) == "auth_invalid"
            assert await refused(server.url, a.token("zed")) == "auth_invalid"
            clients.append(await connected(server.url, b.token("bea")))

            # Connections made with the removed key stay until their tokens expire.
            for client in clients:
                assert client.sio.connected and not client.disconnected.is_set()
            ack = await first.call("join", {"room": "project_p1"})
            assert ack["ok"] is True
            print(
                f"\nnew kid verified {on_demand * 1000:.0f} ms after publication (on demand),"
                f" {background:.2f} s (background refresh); {provider.requests} JWKS requests"
            )
        finally:
            for client in clients:
                await client.close()


async def test_a_flood_of_unknown_kids_costs_the_provider_one_fetch_per_interval(
    keys: dict[str, SigningKey],
) -> None:
    a = keys["a"]
    async with jwks_server(a) as provider:  # no max-age: the 20 s ceiling
        settings = make_settings(jwt_jwks_url=provider.url, connect_rate_per_address=0)
        async with running_server(settings) as server:
            jwks = jwks_of(server)
            await jwks.wait_installs(1)
            assert provider.requests == 1

            async def real_connects(prefix: str) -> list[float]:
                latencies = []
                for i in range(20):
                    t0 = time.monotonic()
                    client = await connected(server.url, a.token(f"{prefix}{i}"))
                    latencies.append(time.monotonic() - t0)
                    await client.close()
                return sorted(latencies)

            async def flood() -> list[str]:
                codes: list[str] = []
                for batch in range(0, len(forged), 20):
                    codes += await asyncio.gather(
                        *(refused(server.url, t) for t in forged[batch : batch + 20])
                    )
                return codes

            quiet = await real_connects("calm")
            forged = [a.token(f"f{i}", kid=f"forged-{i}") for i in range(200)]
            started = time.monotonic()
            # Real tokens connect meanwhile, from the cache: no fetch and no wait of theirs.
            codes, latencies = await asyncio.gather(flood(), real_connects("real"))
            elapsed = time.monotonic() - started
            assert set(codes) == {"auth_invalid"}
            assert elapsed < UNKNOWN_KID_INTERVAL, "the flood outlasted the interval"
            # One fetch at start, one for the whole flood.
            await asyncio.wait_for(jwks.wait_installs(2), 5)
            assert provider.requests == 2
            # Never the unknown-kid wait (2 s): a known kid does not wait on the fetch.
            assert latencies[-1] < 1.0, latencies
            print(
                f"\n{len(forged)} forged kids in {elapsed:.2f} s: {provider.requests - 1}"
                f" on-demand fetch; real connects p50 {latencies[10] * 1000:.1f} ms,"
                f" max {latencies[-1] * 1000:.1f} ms during the flood, p50"
                f" {quiet[10] * 1000:.1f} ms, max {quiet[-1] * 1000:.1f} ms before it"
            )


async def test_secrets_and_jwks_at_once_with_mapped_claims(
    provider: JwksServer, keys: dict[str, SigningKey]
) -> None:
    settings = make_settings(
        jwt_jwks_url=provider.url,
        jwt_user_claim="preferred_username",
        jwt_roles_claim="realm_access.roles",
        jwt_projects_claim="resource_access.roomcast.projects",
    )
    keycloak_shaped = keys["a"].token(
        "a-uuid-as-sub",
        preferred_username="ann",
        realm_access={"roles": ["annotator"]},
        resource_access={"roomcast": {"projects": ["p7"]}},
    )
    async with running_server(settings) as server:
        ann = await connected(server.url, keycloak_shaped)
        try:
            assert (await ann.next("connection_status"))["user_id"] == "ann"
            assert (await ann.call("join", {"room": "project_p7"}))["ok"] is True
            assert (await ann.call("join", {"room": "project_p1"}))["ok"] is False
        finally:
            await ann.close()
        # The HS256 secret verifies too, read through the same claim map.
        assert await refused(server.url, server.token("u1")) == "auth_invalid"  # no username
        payload = {"sub": "x", "preferred_username": "hal", "exp": int(time.time()) + 60}
        hal = await connected(server.url, jwt.encode(payload, SECRET))
        try:
            assert (await hal.next("connection_status"))["user_id"] == "hal"
        finally:
            await hal.close()
        bad_roles = keys["a"].token(preferred_username="ann", realm_access={"roles": "admin"})
        assert await refused(server.url, bad_roles) == "auth_invalid"


async def test_roomcast_serve_follows_a_rotation(keys: dict[str, SigningKey]) -> None:
    """`roomcast serve` as its own process, configured by environment alone."""
    a, b = keys["a"], keys["b"]
    async with jwks_server(a, max_age=2) as provider:
        env = {"ROOMCAST_JWT_JWKS_URL": provider.url, "ROOMCAST_JWT_USER_CLAIM": "uid"}
        async with RoomcastProcess(env) as instance:
            assert provider.requests >= 1  # fetched before /healthz answered
            ann = await connected(instance.url, a.token(uid="ann"))
            try:
                assert (await ann.next("connection_status"))["user_id"] == "ann"
                # The instance installs a document before it sleeps towards the next
                # fetch: two requests served after a change mean it has the change.
                provider.publish(a, b)
                await provider.wait_for_requests(provider.requests + 2, NEW_KID_BOUND)
                ben = await connected(instance.url, b.token(uid="ben"))
                await ben.close()
                provider.publish(b)
                await provider.wait_for_requests(provider.requests + 2, NEW_KID_BOUND)
                assert await refused(instance.url, a.token(uid="amy")) == "auth_invalid"
                assert ann.sio.connected and not ann.disconnected.is_set()
            finally:
                await ann.close()
