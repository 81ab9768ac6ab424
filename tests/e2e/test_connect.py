"""Connecting (SPEC section 3): authentication, refusals and their codes, the greeting,
the user room, connection limits, connect rate, draining and token expiry.

Every refusal is checked on the wire: the client's `connect_error` handler receives
`{"message": ..., "data": {"code": ...}}` and the test asserts on `data.code`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import jwt
import pytest
import socketio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from roomcast.auth.tokens import mint_access_token
from tests.support.server import SECRET, Client, RunningServer, running_server
from tests.support.server import test_settings as make_settings

OTHER_SECRET = "another-secret-fedcba9876543210fedcba9876543210"
WAIT = 5.0


# helpers ---------------------------------------------------------------------------


async def connect_or_error(client: Client, url: str, **kwargs: Any) -> dict[str, Any] | None:
    """Connect `client`; None when connected, else the server's connect error payload."""
    errors: list[Any] = []

    async def on_connect_error(data: Any = None) -> None:
        errors.append(data)

    client.sio.on("connect_error", on_connect_error)
    kwargs.setdefault("transports", ["websocket"])
    kwargs.setdefault("wait_timeout", WAIT)
    try:
        await client.sio.connect(url, **kwargs)
    except socketio.exceptions.ConnectionError:
        assert len(errors) == 1, f"expected one connect_error, got {errors!r}"
        error = errors[0]
        assert isinstance(error, dict), error
        return error
    assert not errors, errors
    return None


async def refusal_code(url: str, **kwargs: Any) -> str:
    """Attempt a connection that must be refused; return its `data.code`."""
    client = Client()
    try:
        error = await connect_or_error(client, url, **kwargs)
    finally:
        await client.close()
    assert error is not None, "the connection was accepted"
    assert isinstance(error.get("message"), str) and error["message"], error
    data = error.get("data")
    assert isinstance(data, dict), error
    return str(data["code"])


async def accepted(url: str, **kwargs: Any) -> Client:
    client = Client()
    error = await connect_or_error(client, url, **kwargs)
    assert error is None, f"connection refused: {error!r}"
    return client


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def handmade_token(header: dict[str, Any], claims: dict[str, Any], key: bytes | None) -> str:
    """A JWT built without PyJWT: HS256 over `key`, or unsigned when key is None."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    if key is None:
        return signing_input + "."
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def claims_for(user: str = "u1", ttl: float = 3600, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": user, "iat": now, "exp": now + int(ttl), **extra}


def hs256(claims: dict[str, Any], secret: str = SECRET) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


async def wait_for_call(
    obj: Any, name: str, action: Callable[[], Awaitable[None]], timeout: float = WAIT
) -> None:
    """Run `action` and wait until the async method `obj.name` has returned once since."""
    original = getattr(obj, name)
    done = asyncio.Event()

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await original(*args, **kwargs)
        finally:
            done.set()

    setattr(obj, name, wrapper)
    try:
        await action()
        async with asyncio.timeout(timeout):
            await done.wait()
    finally:
        setattr(obj, name, original)


async def publish(server: RunningServer, body: dict[str, Any]) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.url, headers=server.api_headers) as http:
        r = await http.post("/api/v1/publish", json=body)
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


# auth_missing ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "auth",
    [None, {}, {"token": ""}, {"token": None}],
    ids=["no-auth", "empty-auth", "empty-token", "null-token"],
)
async def test_no_token_is_auth_missing(server: RunningServer, auth: Any) -> None:
    assert await refusal_code(server.url, auth=auth) == "auth_missing"


async def test_empty_bearer_header_is_auth_missing(server: RunningServer) -> None:
    code = await refusal_code(server.url, headers={"Authorization": "Bearer "})
    assert code == "auth_missing"


# auth_invalid ---------------------------------------------------------------------


def _bad_tokens() -> dict[str, Any]:
    now = int(time.time())
    return {
        "garbage": "not-a-jwt",
        "three-garbage-parts": "aaa.bbb.ccc",
        "bad-signature": hs256(claims_for(), OTHER_SECRET),
        "alg-none": handmade_token({"alg": "none", "typ": "JWT"}, claims_for(), None),
        "alg-none-uppercase": handmade_token({"alg": "NONE", "typ": "JWT"}, claims_for(), None),
        "missing-sub": hs256({"iat": now, "exp": now + 3600}),
        "missing-exp": hs256({"sub": "u1", "iat": now}),
        "sub-not-a-string": hs256({"sub": 42, "exp": now + 3600}),
        "empty-sub": hs256({"sub": "", "exp": now + 3600}),
        "projects-not-a-list": hs256(claims_for(projects="p1")),
        "token-not-a-string": 12345,
    }


@pytest.mark.parametrize("case", list(_bad_tokens()))
async def test_bad_token_is_auth_invalid(server: RunningServer, case: str) -> None:
    token = _bad_tokens()[case]
    assert await refusal_code(server.url, auth={"token": token}) == "auth_invalid"


async def test_bad_bearer_header_is_auth_invalid(server: RunningServer) -> None:
    bad = hs256(claims_for(), OTHER_SECRET)
    code = await refusal_code(server.url, headers={"Authorization": f"Bearer {bad}"})
    assert code == "auth_invalid"


AUDIENCE = "roomcast-tests"
ISSUER = "https://platform.example.test"


async def test_audience_and_issuer_are_checked_when_configured() -> None:
    settings = make_settings(jwt_audience=AUDIENCE, jwt_issuer=ISSUER)
    async with running_server(settings) as server:

        def token(**kw: Any) -> str:
            return mint_access_token(SECRET, "u1", **kw)

        wrong = {
            "wrong-audience": token(audience="someone-else", issuer=ISSUER),
            "wrong-issuer": token(audience=AUDIENCE, issuer="https://evil.example.test"),
            "no-audience": token(issuer=ISSUER),
            "no-issuer": token(audience=AUDIENCE),
        }
        for case, bad in wrong.items():
            code = await refusal_code(server.url, auth={"token": bad})
            assert code == "auth_invalid", case

        client = await accepted(server.url, auth={"token": token(audience=AUDIENCE, issuer=ISSUER)})
        try:
            status = await client.next("connection_status")
            assert status["status"] == "connected" and status["user_id"] == "u1"
        finally:
            await client.close()


async def test_rs256_public_key_accepts_rs256_and_refuses_algorithm_confusion() -> None:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    settings = make_settings(jwt_secret=None, jwt_public_key=public_pem)
    async with running_server(settings) as server:
        good = jwt.encode(claims_for("rs-user"), private_key, algorithm="RS256")
        client = await accepted(server.url, auth={"token": good})
        try:
            status = await client.next("connection_status")
            assert status["status"] == "connected" and status["user_id"] == "rs-user"
            assert status["rooms"] == ["user_rs-user"]
        finally:
            await client.close()

        # HS256 signed with the public key's PEM as the HMAC secret: the classic confusion.
        for pem in (public_pem, public_pem.strip()):
            confused = handmade_token(
                {"alg": "HS256", "typ": "JWT"}, claims_for("rs-user"), pem.encode()
            )
            assert await refusal_code(server.url, auth={"token": confused}) == "auth_invalid"
        # An HS256 token signed with the test secret means nothing to an RS256 server.
        assert await refusal_code(server.url, auth={"token": hs256(claims_for())}) == (
            "auth_invalid"
        )
        # Signed by another RSA key.
        forged = jwt.encode(claims_for("rs-user"), other_key, algorithm="RS256")
        assert await refusal_code(server.url, auth={"token": forged}) == "auth_invalid"
        # Unsigned.
        unsigned = handmade_token({"alg": "none", "typ": "JWT"}, claims_for("rs-user"), None)
        assert await refusal_code(server.url, auth={"token": unsigned}) == "auth_invalid"


# auth_expired ---------------------------------------------------------------------


async def test_expired_token_is_auth_expired(server: RunningServer) -> None:
    expired = server.token("u1", ttl_seconds=-30)
    assert await refusal_code(server.url, auth={"token": expired}) == "auth_expired"
    header = {"Authorization": f"Bearer {expired}"}
    assert await refusal_code(server.url, headers=header) == "auth_expired"


async def test_leeway_admits_a_recently_expired_token() -> None:
    async with running_server(make_settings(jwt_leeway_seconds=120)) as server:
        recently = server.token("u1", ttl_seconds=-30)
        client = await accepted(server.url, auth={"token": recently})
        try:
            status = await client.next("connection_status")
            assert status["status"] == "connected"
        finally:
            await client.close()
        long_ago = server.token("u1", ttl_seconds=-600)
        assert await refusal_code(server.url, auth={"token": long_ago}) == "auth_expired"


# Authorization header -----------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["Bearer", "bearer"])
async def test_authorization_header_without_auth_connects(
    server: RunningServer, scheme: str
) -> None:
    token = server.token("hdr-user")
    client = await accepted(server.url, headers={"Authorization": f"{scheme} {token}"})
    try:
        status = await client.next("connection_status")
        assert status["status"] == "connected"
        assert status["user_id"] == "hdr-user"
        assert status["rooms"] == ["user_hdr-user"]
    finally:
        await client.close()


# on success ----------------------------------------------------------------------


async def test_connection_status_greets_a_new_connection(server: RunningServer) -> None:
    before = int(time.time() * 1000)
    client = await server.client("u1")
    try:
        status = await client.next("connection_status")
        after = int(time.time() * 1000)
        assert status["status"] == "connected"
        # the Socket.IO id of the socket (JS `socket.id`), not the Engine.IO session id
        # that python-socketio keeps in `client.sio.sid`
        assert status["sid"] == client.sio.get_sid("/")
        assert status["user_id"] == "u1"
        assert status["instance_id"] == server.settings.instance_id == "test-instance"
        assert isinstance(status["server_time"], int)
        assert before - 1000 <= status["server_time"] <= after + 1000
        assert status["rooms"] == ["user_u1"]
        assert status["limits"] == {
            "events_per_second": 100,
            "burst": 200,
            "max_rooms": 100,
            "max_payload_bytes": 65536,
        }
        # the greeting is the first thing the client hears
        assert client.log[0][0] == "connection_status"
    finally:
        await client.close()


async def test_user_room_receives_only_its_own_notifications(server: RunningServer) -> None:
    u1 = await server.client("u1")
    u2 = await server.client("u2")
    try:
        await u1.next("connection_status")
        await u2.next("connection_status")
        result = await publish(
            server,
            {"room": "user_u1", "type": "notification", "data": {"title": "hi", "level": "info"}},
        )
        event = await u1.next("notification")
        assert event["room"] == "user_u1" and event["type"] == "notification"
        assert event["data"]["title"] == "hi"
        assert (event["id"], event["epoch"], event["seq"]) == (
            result["id"],
            result["epoch"],
            result["seq"],
        )
        # u2 hears its own notification, published after u1's, and nothing before it.
        await publish(
            server,
            {"room": "user_u2", "type": "notification", "data": {"title": "yo", "level": "info"}},
        )
        own = await u2.next("notification")
        assert own["room"] == "user_u2" and own["data"]["title"] == "yo"
        assert [data["room"] for name, data in u2.log if name == "notification"] == ["user_u2"]
    finally:
        await u1.close()
        await u2.close()


async def test_user_room_cannot_be_left_or_joined_by_others(server: RunningServer) -> None:
    plain = await server.client("u1")
    admin = await server.client("boss", roles=["admin"])
    try:
        await plain.next("connection_status")
        await admin.next("connection_status")

        ack = await plain.call("leave", {"room": "user_u1"})
        assert ack["ok"] is False and ack["error"]["code"] == "forbidden"
        ack = await plain.call("join", {"room": "user_other"})
        assert ack["ok"] is False and ack["error"]["code"] == "forbidden"
        ack = await admin.call("join", {"room": "user_other"})
        assert ack["ok"] is False and ack["error"]["code"] == "forbidden"
        ack = await admin.call("join", {"room": "user_u1"})
        assert ack["ok"] is False and ack["error"]["code"] == "forbidden"

        # still in the user room: a notification arrives
        await publish(
            server,
            {"room": "user_u1", "type": "notification", "data": {"title": "x", "level": "info"}},
        )
        event = await plain.next("notification")
        assert event["room"] == "user_u1"
        # the admin's own room still works too, and it never heard u1's notification
        await publish(
            server,
            {"room": "user_boss", "type": "notification", "data": {"title": "y", "level": "info"}},
        )
        own = await admin.next("notification")
        assert own["room"] == "user_boss"
        assert [d["room"] for n, d in admin.log if n == "notification"] == ["user_boss"]
    finally:
        await plain.close()
        await admin.close()


# connection_limit -----------------------------------------------------------------


async def test_connections_per_user_are_limited() -> None:
    async with running_server(make_settings(max_connections_per_user=2)) as server:
        first = await server.client("u1")
        second = await server.client("u1")
        other = None
        again = None
        try:
            code = await refusal_code(server.url, auth={"token": server.token("u1")})
            assert code == "connection_limit"
            other = await server.client("u2")
            await other.next("connection_status")

            # once the server has released one of u1's connections, u1 gets a slot again
            presence = server.runtime.presence
            await wait_for_call(presence, "unregister_connection", first.close)
            async with asyncio.timeout(WAIT):
                await first.disconnected.wait()
            again = await server.client("u1")
            status = await again.next("connection_status")
            assert status["status"] == "connected"
            code = await refusal_code(server.url, auth={"token": server.token("u1")})
            assert code == "connection_limit"
        finally:
            for c in (first, second, other, again):
                if c is not None:
                    await c.close()


async def test_instance_connection_limit() -> None:
    async with running_server(make_settings(max_connections=1)) as server:
        first = await server.client("u1")
        try:
            assert await refusal_code(server.url, auth={"token": server.token("u2")}) == (
                "connection_limit"
            )
            assert await refusal_code(server.url, auth={"token": server.token("u1")}) == (
                "connection_limit"
            )
        finally:
            await wait_for_call(server.runtime.presence, "unregister_connection", first.close)
        later = await server.client("u2")
        try:
            status = await later.next("connection_status")
            assert status["status"] == "connected"
        finally:
            await later.close()


async def test_refused_connection_does_not_hold_a_slot() -> None:
    async with running_server(make_settings(max_connections_per_user=1)) as server:
        first = await server.client("u1")
        try:
            for _ in range(3):
                code = await refusal_code(server.url, auth={"token": server.token("u1")})
                assert code == "connection_limit"
        finally:
            await wait_for_call(server.runtime.presence, "unregister_connection", first.close)
        again = await server.client("u1")
        try:
            assert (await again.next("connection_status"))["status"] == "connected"
        finally:
            await again.close()


# rate_limited ---------------------------------------------------------------------


async def test_connect_rate_per_address() -> None:
    async with running_server(make_settings(connect_rate_per_address=1)) as server:
        clients: list[Client] = []
        outcomes: list[str | None] = []
        try:
            for i in range(7):
                client = Client()
                clients.append(client)
                error = await connect_or_error(
                    client, server.url, auth={"token": server.token(f"r{i}")}
                )
                outcomes.append(None if error is None else error["data"]["code"])
                if error is not None:
                    break
        finally:
            for c in clients:
                await c.close()
        # burst 5: five attempts go through; the 6th (or 7th, if a second passed) is refused
        assert outcomes[:5] == [None] * 5, outcomes
        assert outcomes[-1] == "rate_limited", outcomes
        assert len(outcomes) in (6, 7), outcomes


async def test_connect_rate_counts_refused_attempts_too() -> None:
    async with running_server(make_settings(connect_rate_per_address=1)) as server:
        codes = [await refusal_code(server.url, auth={"token": "junk"}) for _ in range(5)]
        assert codes == ["auth_invalid"] * 5
        code = await refusal_code(server.url, auth={"token": server.token("u1")})
        assert code == "rate_limited"


async def test_connect_rate_zero_turns_it_off() -> None:
    # More attempts than the default burst (20/s * 5 = 100) would allow.
    async with running_server(make_settings(connect_rate_per_address=0)) as server:
        codes = [await refusal_code(server.url, auth={"token": "junk"}) for _ in range(110)]
        assert set(codes) == {"auth_invalid"}
        clients: list[Client] = []
        try:
            for i in range(20):
                clients.append(await accepted(server.url, auth={"token": server.token(f"z{i}")}))
            for c in clients:
                assert (await c.next("connection_status"))["status"] == "connected"
        finally:
            for c in clients:
                await c.close()


# server_draining --------------------------------------------------------------------


async def test_drain_tells_and_disconnects_clients_then_refuses_new_ones() -> None:
    async with running_server() as server:
        client = await server.client("u1")
        bystander = await server.client("u2")
        try:
            await client.next("connection_status")
            await bystander.next("connection_status")
            async with httpx.AsyncClient(base_url=server.url) as http:
                assert (await http.get("/readyz")).status_code == 200

            await server.runtime.drain(pause_seconds=0.01)

            for c in (client, bystander):
                status = await c.next("connection_status")
                assert status == {"status": "draining"}
                async with asyncio.timeout(WAIT):
                    await c.disconnected.wait()
                assert not c.sio.connected
            code = await refusal_code(server.url, auth={"token": server.token("u3")})
            assert code == "server_draining"
            async with httpx.AsyncClient(base_url=server.url) as http:
                assert (await http.get("/readyz")).status_code == 503
        finally:
            await client.close()
            await bystander.close()


# token expiry while connected -------------------------------------------------------


async def test_token_expiry_while_connected(server: RunningServer) -> None:
    client = await server.client("u1", ttl_seconds=2)
    other = await server.client("u2")
    try:
        assert (await client.next("connection_status"))["status"] == "connected"
        assert (await other.next("connection_status"))["status"] == "connected"
        status = await client.next("connection_status", timeout=6)
        assert status == {"status": "token_expired"}
        async with asyncio.timeout(WAIT):
            await client.disconnected.wait()
        # the long-lived connection is not affected
        assert other.sio.connected and not other.disconnected.is_set()
        ack = await other.call("leave", {"room": "user_u2"})
        assert ack["error"]["code"] == "forbidden"
    finally:
        await client.close()
        await other.close()


# malformed client events -------------------------------------------------------------


async def test_unknown_events_and_bad_payloads_get_error_acks(server: RunningServer) -> None:
    client = await server.client("u1", projects=["p1"])
    try:
        await client.next("connection_status")

        ack = await client.call("no_such_event", {"room": "project_p1"})
        assert ack["ok"] is False and ack["error"]["code"] == "invalid_type"
        assert isinstance(ack["error"]["message"], str)
        ack = await client.call("connection_status", {"status": "connected"})
        assert ack["ok"] is False and ack["error"]["code"] == "invalid_type"

        for bad in ("project_p1", ["project_p1"], 42, None):
            ack = await client.call("join", bad)
            assert ack["ok"] is False and ack["error"]["code"] == "invalid_payload", bad
        ack = await client.call("join", {"room": "project_p1", "unexpected": 1})
        assert ack["ok"] is False and ack["error"]["code"] == "invalid_payload"

        assert client.sio.connected and not client.disconnected.is_set()
        ack = await client.call("join", {"room": "project_p1"})
        assert ack["ok"] is True and ack["room"] == "project_p1"
    finally:
        await client.close()
