"""JWKS keys (SPEC 8, ROOMCAST_JWT_JWKS_URL) against a real local JWKS server.

The server is the test's own (tests/support/jwks_server.py) on a loopback port; it
counts requests, so the rate limit of on-demand fetches is checked where it matters,
at the provider.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization

from roomcast.auth.jwks import JwksKeys
from roomcast.auth.tokens import TokenVerifier
from roomcast.errors import AuthExpired, AuthInvalid
from tests.support.jwks_server import JwksServer, SigningKey, jwks_server
from tests.support.server import free_socket

SECRET = "unit-test-secret-0123456789abcdef-0123456789abcdef"
OTHER_SECRET = "another-secret-0123456789abcdef-0123456789abcdefgh"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKey]:
    return {
        "rsa1": SigningKey.generate("rsa1", "RS256"),
        "rsa2": SigningKey.generate("rsa2", "RS256"),
        "ec1": SigningKey.generate("ec1", "ES256"),
        "ed1": SigningKey.generate("ed1", "EdDSA"),
    }


@pytest.fixture
async def server(keys: dict[str, SigningKey]) -> AsyncIterator[JwksServer]:
    async with jwks_server(keys["rsa1"], keys["ec1"], keys["ed1"]) as s:
        yield s


async def fetched(url: str, **kwargs: Any) -> tuple[JwksKeys, TokenVerifier]:
    jwks = JwksKeys(url, **kwargs)
    await jwks.refresh()
    return jwks, TokenVerifier(jwks=jwks)


@pytest.mark.parametrize("kid", ["rsa1", "ec1", "ed1"])
async def test_each_algorithm_verifies_by_kid(
    server: JwksServer, keys: dict[str, SigningKey], kid: str
) -> None:
    _, verifier = await fetched(server.url)
    assert verifier.verify_access(keys[kid].token(f"user-{kid}")).user_id == f"user-{kid}"


async def test_a_jwk_without_alg_gets_its_keys_algorithm(keys: dict[str, SigningKey]) -> None:
    async with jwks_server() as server:
        server.keys = [keys["ec1"].jwk(with_alg=False), keys["rsa1"].jwk(with_alg=False)]
        _, verifier = await fetched(server.url)
        assert verifier.verify_access(keys["ec1"].token()).user_id == "u1"
        assert verifier.verify_access(keys["rsa1"].token()).user_id == "u1"


async def test_a_token_must_use_its_keys_algorithm(
    server: JwksServer, keys: dict[str, SigningKey]
) -> None:
    _, verifier = await fetched(server.url)
    # Signed by the RSA key, but naming the EC key's kid.
    with pytest.raises(AuthInvalid):
        verifier.verify_access(keys["rsa1"].token(kid="ec1"))
    # A key of the set, but another key's signature under its kid.
    with pytest.raises(AuthInvalid):
        verifier.verify_access(keys["rsa2"].token(kid="rsa1"))


async def test_hs256_is_never_checked_against_a_jwks_key(
    server: JwksServer, keys: dict[str, SigningKey]
) -> None:
    _, verifier = await fetched(server.url)
    forged = jwt.encode(
        {"sub": "u1", "exp": int(time.time()) + 60}, SECRET, headers={"kid": "rsa1"}
    )
    with pytest.raises(AuthInvalid):
        verifier.verify_access(forged)


async def test_encryption_keys_and_other_algorithms_are_ignored(
    keys: dict[str, SigningKey],
) -> None:
    async with jwks_server() as server:
        enc = keys["rsa1"].jwk() | {"use": "enc"}
        rs512 = keys["rsa2"].jwk() | {"alg": "RS512"}
        server.keys = [enc, rs512, keys["ec1"].jwk(), {"kty": "nonsense", "kid": "x"}]
        jwks, _ = await fetched(server.url)
        assert jwks.known_kids() == {"ec1"}


async def test_a_token_without_kid_uses_the_keys_published_without_one(
    keys: dict[str, SigningKey],
) -> None:
    async with jwks_server() as server:
        bare = keys["rsa1"].jwk()
        del bare["kid"]
        server.keys = [bare, keys["ec1"].jwk()]
        _, verifier = await fetched(server.url)
        assert verifier.verify_access(keys["rsa1"].token(kid=None)).user_id == "u1"
        with pytest.raises(AuthInvalid):
            verifier.verify_access(keys["ec1"].token(kid=None))


async def test_time_and_claim_checks_apply_to_jwks_tokens(
    server: JwksServer, keys: dict[str, SigningKey]
) -> None:
    _, verifier = await fetched(server.url)
    with pytest.raises(AuthExpired):
        verifier.verify_access(keys["rsa1"].token(exp=int(time.time()) - 5))
    with pytest.raises(AuthInvalid):
        verifier.verify_access(keys["rsa1"].token(exp="9999999999"))
    with pytest.raises(AuthInvalid):
        verifier.verify_access(keys["rsa1"].token(roles="admin"))


# rotation -------------------------------------------------------------------------------


async def test_a_removed_kid_stops_and_a_new_one_starts_at_the_next_fetch(
    server: JwksServer, keys: dict[str, SigningKey]
) -> None:
    jwks, verifier = await fetched(server.url)
    old, new = keys["rsa1"], keys["rsa2"]
    with pytest.raises(AuthInvalid):
        verifier.verify_access(new.token())
    server.publish(old, new)
    await jwks.refresh()
    assert verifier.verify_access(old.token()).user_id == "u1"
    assert verifier.verify_access(new.token()).user_id == "u1"
    server.publish(new)
    await jwks.refresh()
    with pytest.raises(AuthInvalid):
        verifier.verify_access(old.token())
    assert verifier.verify_access(new.token()).user_id == "u1"


async def test_a_failed_fetch_keeps_the_keys(keys: dict[str, SigningKey]) -> None:
    failing = False

    async def handle(request: web.Request) -> web.Response:
        if failing:
            return web.Response(status=503)
        return web.json_response({"keys": [keys["rsa1"].jwk()]})

    app = web.Application()
    app.router.add_get("/jwks", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = free_socket()
    await web.SockSite(runner, sock).start()
    try:
        jwks, verifier = await fetched(f"http://127.0.0.1:{sock.getsockname()[1]}/jwks")
        failing = True
        await jwks.refresh()
        assert jwks.fetches == 2
        assert verifier.verify_access(keys["rsa1"].token()).user_id == "u1"
    finally:
        await runner.cleanup()
        sock.close()
    await jwks.refresh()  # the server is gone: unreachable, keys kept
    assert verifier.verify_access(keys["rsa1"].token()).user_id == "u1"


async def test_an_invalid_document_keeps_the_keys(
    server: JwksServer, keys: dict[str, SigningKey]
) -> None:
    jwks, verifier = await fetched(server.url)
    server.keys = [{"kty": "nonsense"}]
    await jwks.refresh()
    assert jwks.known_kids() == {"rsa1", "ec1", "ed1"}
    assert verifier.verify_access(keys["ec1"].token()).user_id == "u1"


async def test_an_unknown_kid_fetches_at_once_then_at_most_once_per_interval(
    server: JwksServer, keys: dict[str, SigningKey]
) -> None:
    clock = FakeClock()
    jwks, verifier = await fetched(server.url, unknown_kid_interval=10.0, clock=clock)
    assert server.requests == 1
    new = keys["rsa2"]
    server.publish(keys["rsa1"], new)
    installs = jwks.installs
    with pytest.raises(AuthInvalid):
        verifier.verify_access(new.token())  # unknown: refused now, fetched behind
    await jwks.wait_installs(installs + 1)
    assert verifier.verify_access(new.token()).user_id == "u1"
    assert server.requests == 2
    # A flood of forged kids within the interval: not one more request.
    for i in range(500):
        with pytest.raises(AuthInvalid):
            verifier.verify_access(new.token(kid=f"forged-{i}"))
    clock.now += 9.9
    for i in range(500):
        with pytest.raises(AuthInvalid):
            verifier.verify_access(new.token(kid=f"forged-b{i}"))
    await jwks.refresh()  # a scheduled refresh is not rate-limited ...
    assert server.requests == 3
    clock.now += 0.1  # ... and the interval has passed: the next unknown kid fetches
    installs = jwks.installs
    for i in range(500):
        with pytest.raises(AuthInvalid):
            verifier.verify_access(new.token(kid=f"forged-c{i}"))
    await jwks.wait_installs(installs + 1)
    assert server.requests == 4


async def test_a_connect_with_a_fresh_kid_awaits_its_fetch_and_passes_first_time(
    server: JwksServer, keys: dict[str, SigningKey]
) -> None:
    clock = FakeClock()
    jwks, _ = await fetched(server.url, unknown_kid_interval=10.0, clock=clock)
    verifier = TokenVerifier(jwks=jwks, unknown_kid_wait=2.0)
    new = keys["rsa2"]
    server.publish(keys["rsa1"], new)
    identity = await verifier.verify_access_awaiting_keys(new.token())
    assert identity.user_id == "u1" and server.requests == 2
    # Forged kids within the interval: nothing fetched, nothing awaited.
    started = time.perf_counter()
    for i in range(200):
        with pytest.raises(AuthInvalid):
            await verifier.verify_access_awaiting_keys(new.token(kid=f"forged-{i}"))
    assert time.perf_counter() - started < 1.0 and server.requests == 2
    # A bad signature under a known kid is refused without any fetch.
    with pytest.raises(AuthInvalid):
        await verifier.verify_access_awaiting_keys(new.token()[:-4] + "AAAA")
    assert server.requests == 2


async def test_an_unknown_kid_waits_no_longer_than_its_bound(keys: dict[str, SigningKey]) -> None:
    """A provider that never answers: the connect gives up after the bound, the fetch goes on."""
    arrived = asyncio.Event()
    answer = asyncio.Event()

    async def stalled(request: web.Request) -> web.Response:
        arrived.set()
        await answer.wait()
        return web.json_response({"keys": [keys["rsa2"].jwk()]})

    app = web.Application()
    app.router.add_get("/jwks", stalled)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = free_socket()
    await web.SockSite(runner, sock).start()
    try:
        jwks = JwksKeys(f"http://127.0.0.1:{sock.getsockname()[1]}/jwks")
        verifier = TokenVerifier(jwks=jwks, unknown_kid_wait=0.3)
        started = time.perf_counter()
        with pytest.raises(AuthInvalid):
            await verifier.verify_access_awaiting_keys(keys["rsa2"].token())
        waited = time.perf_counter() - started
        assert arrived.is_set() and 0.3 <= waited < 1.0
        installs = jwks.installs
        answer.set()  # the shielded fetch was not cancelled: it installs the key
        await jwks.wait_installs(installs + 1)
        assert (await verifier.verify_access_awaiting_keys(keys["rsa2"].token())).user_id == "u1"
    finally:
        answer.set()
        await runner.cleanup()
        sock.close()


async def test_the_background_refresh_follows_max_age(keys: dict[str, SigningKey]) -> None:
    async with jwks_server(keys["rsa1"], max_age=0) as server:
        jwks = JwksKeys(server.url, min_refresh=0.05, max_refresh=0.2)
        await jwks.refresh()
        assert jwks._next_refresh == 0.05  # max-age=0, clamped to the floor
        server.max_age = 3600
        await jwks.refresh()
        assert jwks._next_refresh == 0.2  # clamped to the ceiling
        task = asyncio.create_task(jwks.run())
        try:
            server.publish(keys["rsa2"])
            await server.wait_for_requests(server.requests + 2, timeout=5)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert jwks.known_kids() == {"rsa2"}


def test_interval_without_cache_control_is_the_ceiling() -> None:
    jwks = JwksKeys("http://127.0.0.1:9/jwks")
    assert jwks._interval("") == 20.0
    assert jwks._interval("no-cache") == 20.0
    assert jwks._interval("public, max-age=7") == 7.0
    assert jwks._interval("max-age=1") == 2.0


# several sources --------------------------------------------------------------------------


async def test_any_configured_source_verifies(
    server: JwksServer, keys: dict[str, SigningKey]
) -> None:
    jwks = JwksKeys(server.url)
    await jwks.refresh()
    pem = keys["rsa2"].private.public_key()
    pem_text = pem.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    verifier = TokenVerifier(secrets=[SECRET, OTHER_SECRET], public_key=pem_text, jwks=jwks)
    payload = {"sub": "u1", "exp": int(time.time()) + 60}
    assert verifier.verify_access(jwt.encode(payload, SECRET)).user_id == "u1"
    assert verifier.verify_access(jwt.encode(payload, OTHER_SECRET)).user_id == "u1"
    assert verifier.verify_access(keys["rsa1"].token()).user_id == "u1"  # by kid
    assert verifier.verify_access(keys["rsa2"].token(kid=None)).user_id == "u1"  # the PEM key
    assert verifier.verify_access(keys["rsa2"].token(kid="not-published")).user_id == "u1"
    with pytest.raises(AuthInvalid):
        verifier.verify_access(jwt.encode(payload, "x" * 40))
    unsigned = jwt.encode(payload, None, algorithm="none")  # type: ignore[arg-type]
    with pytest.raises(AuthInvalid):
        verifier.verify_access(unsigned)
