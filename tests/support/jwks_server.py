"""A JWKS server of the test's own: an identity provider's key endpoint that rotates.

It runs on aiohttp in the test's event loop, on a free loopback port, serves
`{"keys": [...]}` at /jwks with a Cache-Control max-age the test chooses, and counts
every request, so a test asserts how often roomcast fetched. `SigningKey` is the
provider's side of one key: it signs tokens with its private half and publishes the
public half as a JWK.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from tests.support.server import free_socket


@dataclass
class SigningKey:
    """One provider key: `kid`, algorithm, and the private key that signs."""

    kid: str
    alg: str
    private: Any

    @classmethod
    def generate(cls, kid: str, alg: str = "RS256") -> SigningKey:
        private: Any
        if alg == "RS256":
            private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif alg == "ES256":
            private = ec.generate_private_key(ec.SECP256R1())
        elif alg == "EdDSA":
            private = ed25519.Ed25519PrivateKey.generate()
        else:
            raise ValueError(alg)
        return cls(kid, alg, private)

    def jwk(self, *, with_alg: bool = True) -> dict[str, Any]:
        algorithm: Any = {"RS256": RSAAlgorithm, "ES256": ECAlgorithm, "EdDSA": OKPAlgorithm}[
            self.alg
        ]
        public: dict[str, Any] = json.loads(algorithm.to_jwk(self.private.public_key()))
        public.update({"kid": self.kid, "use": "sig"})
        if with_alg:
            public["alg"] = self.alg
        return public

    def token(self, user: str = "u1", *, kid: str | None = "", **claims: Any) -> str:
        """A signed access token; `kid=None` leaves the header without one."""
        payload: dict[str, Any] = {"sub": user, "exp": int(time.time()) + 600, **claims}
        headers = {"kid": self.kid if kid == "" else kid} if kid is not None else None
        return jwt.encode(payload, self.private, algorithm=self.alg, headers=headers)


@dataclass
class JwksServer:
    """What the test controls: the published keys, max-age, and the request count."""

    url: str = ""
    keys: list[dict[str, Any]] = field(default_factory=list)
    max_age: int | None = None
    requests: int = 0
    _served: asyncio.Condition = field(default_factory=asyncio.Condition)

    def publish(self, *keys: SigningKey) -> None:
        """Replace the published set (a rotation is publish(old, new), then publish(new))."""
        self.keys = [k.jwk() for k in keys]

    async def wait_for_requests(self, count: int, timeout: float) -> None:
        """Until `count` requests were served in all (a fetch that followed a change)."""
        async with asyncio.timeout(timeout), self._served:
            await self._served.wait_for(lambda: self.requests >= count)

    async def _handle(self, request: web.Request) -> web.Response:
        # The body and the count in one step (no await between): a request counted
        # after publish() was answered with what it published.
        body = {"keys": list(self.keys)}
        self.requests += 1
        headers = {} if self.max_age is None else {"Cache-Control": f"max-age={self.max_age}"}
        async with self._served:
            self._served.notify_all()
        return web.json_response(body, headers=headers)


@contextlib.asynccontextmanager
async def jwks_server(*keys: SigningKey, max_age: int | None = None) -> AsyncIterator[JwksServer]:
    """A JwksServer publishing `keys`, listening until the block ends."""
    state = JwksServer(max_age=max_age)
    state.publish(*keys)
    app = web.Application()
    app.router.add_get("/jwks", state._handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = free_socket()
    site = web.SockSite(runner, sock)
    await site.start()
    state.url = f"http://127.0.0.1:{sock.getsockname()[1]}/jwks"
    try:
        yield state
    finally:
        await runner.cleanup()
        sock.close()
