"""Keys of an identity provider's JWKS document, chosen by `kid`, kept fresh.

Providers rotate their signing keys: a new `kid` is published, tokens signed by it
appear, the old one is withdrawn later. So the document is fetched in the background
(every `max-age` of its Cache-Control, clamped to [min_refresh, max_refresh], so a
new key verifies within max_refresh of being published and a removed one stops at the
next fetch), and again when a token names a `kid` not in the cache, since a client
may hold a token of a key published a moment ago. Tokens come from anyone, so those
on-demand fetches are rate-limited (at most one per `unknown_kid_interval`): a flood
of forged kids costs the provider one request per interval, not one per connect.

Lookups (`get`) are synchronous and never wait on the network. The connect path
then, for a kid still unknown, awaits `await_kid`: the fetch that kid triggers, or
the one already in flight, for a bounded time, so a token of a key published a moment
ago connects on its first try. A forged kid within the interval of the last
on-demand fetch starts nothing and waits for nothing: it is refused at once, and the
connects of known kids never wait at all. Fetching uses aiohttp, as the rest of
roomcast does, and parsing is PyJWT's PyJWKSet.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import jwt
import structlog

# What SPEC 8 names; a key of another algorithm (RS512, HS256 in a JWKS) is ignored.
JWKS_ALGORITHMS = frozenset({"RS256", "ES256", "EdDSA"})
MAX_AGE = re.compile(r"max-age\s*=\s*(\d+)", re.IGNORECASE)

log = structlog.get_logger("roomcast.auth.jwks")


class JwksKeys:
    """A cache of one JWKS URL's signing keys, by kid."""

    def __init__(
        self,
        url: str,
        *,
        min_refresh: float = 2.0,
        max_refresh: float = 20.0,
        unknown_kid_interval: float = 10.0,
        fetch_timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._min_refresh = min_refresh
        self._max_refresh = max_refresh
        self._unknown_kid_interval = unknown_kid_interval
        self._timeout = aiohttp.ClientTimeout(total=fetch_timeout)
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._unnamed: list[jwt.PyJWK] = []
        self._next_refresh = max_refresh
        self._last_on_demand = -float("inf")
        self._inflight: asyncio.Task[None] | None = None
        self.fetches = 0
        self._installs = 0
        self._installed = asyncio.Condition()

    # lookups (synchronous, from the cache) ------------------------------------------

    def get(self, kid: str | None) -> list[jwt.PyJWK]:
        """The keys a token with this `kid` may be checked against (none: unknown).

        A token without a kid is checked against the keys published without one.
        An unknown kid asks for a fetch (rate-limited) and returns no key.
        """
        if kid is None:
            return list(self._unnamed)
        key = self._keys.get(kid)
        if key is not None:
            return [key]
        self.request_refresh()
        return []

    async def await_kid(self, kid: str, timeout: float) -> bool:
        """Whether `kid` is known, after awaiting (at most `timeout` s) a fetch for it.

        The fetch is the one in flight, or the one this call starts (rate-limited);
        with neither, nothing is awaited. The fetch is shielded: a caller that gives
        up does not cancel it for the others.
        """
        if kid in self._keys:
            return True
        self.request_refresh()
        inflight = self._inflight
        if inflight is None or inflight.done() or timeout <= 0:
            return kid in self._keys
        with contextlib.suppress(Exception):  # a timeout, or a fetch that broke: the cache decides
            await asyncio.wait_for(asyncio.shield(inflight), timeout)
        return kid in self._keys

    def known_kids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def request_refresh(self) -> bool:
        """Start an on-demand fetch unless one ran within the interval; True if started."""
        now = self._clock()
        if self._inflight is not None and not self._inflight.done():
            return False
        if now - self._last_on_demand < self._unknown_kid_interval:
            return False
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False  # no event loop (a synchronous caller): the background task will
        self._last_on_demand = now
        self._inflight = loop.create_task(self.refresh(), name="roomcast.jwks.on_demand")
        return True

    # fetching --------------------------------------------------------------------------

    async def refresh(self) -> None:
        """Fetch the document and replace the cache; on failure keep the keys we have."""
        self.fetches += 1
        try:
            async with (
                aiohttp.ClientSession(timeout=self._timeout) as session,
                session.get(self.url, headers={"Accept": "application/json"}) as response,
            ):
                response.raise_for_status()
                document = await response.json(content_type=None)
                cache_control = response.headers.get("Cache-Control", "")
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("jwks.fetch_failed", url=self.url, error=str(exc) or type(exc).__name__)
            return
        try:
            self._install(document)
        except (jwt.PyJWTError, TypeError, KeyError) as exc:
            log.warning("jwks.document_invalid", url=self.url, error=str(exc))
            return
        self._next_refresh = self._interval(cache_control)
        async with self._installed:
            self._installs += 1
            self._installed.notify_all()

    @property
    def installs(self) -> int:
        """How many documents were installed so far (for waiters: see wait_installs)."""
        return self._installs

    async def wait_installs(self, count: int) -> None:
        """Until `count` documents were installed in all (tests and readiness checks)."""
        async with self._installed:
            await self._installed.wait_for(lambda: self._installs >= count)

    def _install(self, document: Any) -> None:
        if not isinstance(document, dict):
            raise TypeError("a JWKS document is a JSON object with keys")
        listed = document.get("keys")
        if not isinstance(listed, list):
            raise TypeError("a JWKS document's keys are a JSON array")
        usable = [k for k in listed if isinstance(k, dict) and k.get("use", "sig") == "sig"]
        keys: dict[str, jwt.PyJWK] = {}
        unnamed: list[jwt.PyJWK] = []
        for key in jwt.PyJWKSet(usable) if usable else []:
            if key.algorithm_name not in JWKS_ALGORITHMS:
                continue
            if key.key_id is None:
                unnamed.append(key)
            else:
                keys[key.key_id] = key
        self._keys, self._unnamed = keys, unnamed

    def _interval(self, cache_control: str) -> float:
        match = MAX_AGE.search(cache_control)
        seconds = float(match.group(1)) if match else self._max_refresh
        return min(self._max_refresh, max(self._min_refresh, seconds))

    async def run(self) -> None:
        """Fetch (unless a fetch already ran), then again whenever a document's lifetime ends.

        Call `refresh()` first to have the keys before serving, as the app does.
        """
        try:
            if self.fetches == 0:
                await self.refresh()
            while True:
                await asyncio.sleep(self._next_refresh)
                await self.refresh()
        finally:
            if self._inflight is not None:
                self._inflight.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._inflight
