"""The join and publish proxies of SPEC section 10: asking the platform over HTTP.

Each proxy is one URL, POSTed a JSON body signed with `X-Roomcast-Signature`. A call
is bounded three ways, so that a slow or dead platform slows only the joins and
publishes that need it and never piles up work inside roomcast:

- in time: `proxy_timeout_ms` covers the whole call, waiting for a slot included;
- in concurrency: at most `proxy_max_concurrent` calls per proxy are in flight, the
  rest wait (within their time) for a slot;
- by a circuit breaker: after `proxy_breaker_failures` consecutive failures, calls
  fail at once for `proxy_breaker_cooldown_ms`, then one trial call decides.

A timeout, a 5xx or other non-2xx answer, an unreachable platform or an answer of
the wrong shape is a failure: the client gets `platform_unavailable` (temporary).
Nothing has been published then, so the client's `client_event_id` is not used up:
a retry with it asks the platform again (whose answers are idempotent by that id)
and is published once.

One aiohttp session per application (`start`, `aclose`), shared by both proxies.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp

from ..config import Settings
from ..domain import JSON, Identity
from ..errors import PlatformUnavailable, RoomcastError
from ..observability.logging import get_logger
from ..observability.metrics import Metrics
from .proxy_answers import BadAnswer, Verdict, read_answer
from .proxy_breaker import CircuitBreaker
from .signing import HEADER, sign

# The defaults of a caller made by hand; an application's come from its settings.
MAX_CONCURRENT = 64  # calls in flight per proxy
BREAKER_FAILURES = 5  # consecutive failures that open the breaker
BREAKER_COOLDOWN_SECONDS = 5.0  # how long an open breaker fails calls at once

_log = get_logger(component="proxy")


def user_body(identity: Identity) -> JSON:
    """The `user` of every proxy request: the mapped claims' values."""
    return {
        "user_id": identity.user_id,
        "name": identity.name,
        "roles": sorted(identity.roles),
        "projects": sorted(identity.projects),
    }


class ProxyCaller:
    """One proxy's URL, with its slots, breaker and metrics."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        secret: bytes,
        timeout: float,
        metrics: Metrics,
        max_concurrent: int = MAX_CONCURRENT,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.name = name
        self._url = url
        self._secret = secret
        self._timeout = timeout
        self._slots = asyncio.Semaphore(max_concurrent)
        self.breaker = breaker or CircuitBreaker(BREAKER_FAILURES, BREAKER_COOLDOWN_SECONDS)
        self._calls = metrics.proxy_calls
        self._latency = metrics.proxy_latency.labels(name)
        self._session: aiohttp.ClientSession | None = None

    def bind(self, session: aiohttp.ClientSession | None) -> None:
        self._session = session

    def _outcome(self, outcome: str) -> None:
        self._calls.labels(self.name, outcome).inc()

    def _unavailable(self, outcome: str, detail: str) -> PlatformUnavailable:
        self._outcome(outcome)
        self.breaker.failed()
        _log.warning("proxy.failed", proxy=self.name, outcome=outcome, detail=detail)
        return PlatformUnavailable(f"the platform's {self.name} proxy {detail}; retry")

    async def ask(self, body: JSON, *, may_replace: bool) -> Verdict:
        """POST `body`; the platform's verdict, or the refusal it stands for (raised)."""
        if self._session is None:
            raise PlatformUnavailable(f"the {self.name} proxy is not started")
        if not self.breaker.allow():
            self._outcome("open")
            raise PlatformUnavailable(f"the platform's {self.name} proxy is failing; retry")
        payload = json.dumps(body, separators=(",", ":")).encode()
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout):
                async with self._slots:
                    answer = await self._post(payload)
        except TimeoutError:
            raise self._unavailable("timeout", "did not answer in time") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise self._unavailable("error", f"is unreachable ({type(exc).__name__})") from None
        except _Status as exc:
            raise self._unavailable("error", f"answered HTTP {exc.status}") from None
        except BaseException:
            self.breaker.abandoned()  # cancelled: no verdict on the platform either way
            raise
        finally:
            self._latency.observe(time.perf_counter() - started)
        try:
            verdict = read_answer(answer, may_replace=may_replace)
        except BadAnswer as exc:
            raise self._unavailable("error", f"answered badly: {exc}") from None
        except RoomcastError:
            self.breaker.succeeded()
            self._outcome("refuse")
            raise
        self.breaker.succeeded()
        self._outcome("allow")
        return verdict

    async def _post(self, payload: bytes) -> Any:
        assert self._session is not None
        headers = {"Content-Type": "application/json", HEADER: sign(self._secret, payload)}
        async with self._session.post(self._url, data=payload, headers=headers) as response:
            if not 200 <= response.status < 300:
                raise _Status(response.status)
            try:
                return await response.json(content_type=None)
            except ValueError:
                return None  # read_answer calls it a bad answer


class _Status(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class Proxies:
    """The application's proxies (each optional) and the one session they share."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        urls = {"join": settings.proxy_join_url, "publish": settings.proxy_publish_url}
        configured = {name: url for name, url in urls.items() if url}
        if configured and settings.proxy_secret is None:
            raise ValueError("ROOMCAST_PROXY_SECRET is required when a proxy URL is set")
        secret = settings.proxy_secret.get_secret_value().encode() if settings.proxy_secret else b""
        self._callers = {
            name: ProxyCaller(
                name,
                url,
                secret=secret,
                timeout=settings.proxy_timeout_ms / 1000,
                metrics=metrics,
                max_concurrent=settings.proxy_max_concurrent,
                breaker=CircuitBreaker(
                    settings.proxy_breaker_failures, settings.proxy_breaker_cooldown_ms / 1000
                ),
            )
            for name, url in configured.items()
        }
        self._session: aiohttp.ClientSession | None = None

    def caller(self, name: str) -> ProxyCaller | None:
        return self._callers.get(name)

    @property
    def join(self) -> JoinProxy | None:
        caller = self._callers.get("join")
        return JoinProxy(caller) if caller else None

    @property
    def publish(self) -> PublishProxy | None:
        caller = self._callers.get("publish")
        return PublishProxy(caller) if caller else None

    async def start(self) -> None:
        if self._callers and self._session is None:
            # No cookies, no connection limit of aiohttp's own: the slots bound it.
            self._session = aiohttp.ClientSession(
                cookie_jar=aiohttp.DummyCookieJar(),
                connector=aiohttp.TCPConnector(limit=0),
            )
            for caller in self._callers.values():
                caller.bind(self._session)

    async def aclose(self) -> None:
        for caller in self._callers.values():
            caller.bind(None)
        if self._session is not None:
            await self._session.close()
            self._session = None


class JoinProxy:
    """rooms.policy.JoinProxy: the platform admits (returns) or refuses (raises)."""

    def __init__(self, caller: ProxyCaller) -> None:
        self._caller = caller

    async def __call__(self, identity: Identity, room: str) -> None:
        await self._caller.ask({"user": user_body(identity), "room": room}, may_replace=False)


class PublishProxy:
    """rooms.publish.PublishProxy: allow (None), allow with new data, or raise."""

    def __init__(self, caller: ProxyCaller) -> None:
        self._caller = caller

    async def __call__(
        self,
        identity: Identity,
        room: str,
        event_type: str,
        data: JSON,
        client_event_id: str | None,
    ) -> JSON | None:
        body = {
            "user": user_body(identity),
            "room": room,
            "type": event_type,
            "data": data,
            "client_event_id": client_event_id,
        }
        verdict = await self._caller.ask(body, may_replace=True)
        return verdict.data
