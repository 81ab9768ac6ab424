"""create_app: the one place where the parts are wired together.

`Roomcast` holds one application's parts and owns their background tasks; its
`lifespan` starts and stops them. It wires and does nothing else: behaviour lives in
the parts (a reaped user's departure in RoomService, control messages routed by
ControlRouter to their owners, the periodic chores in Housekeeping), and the edges
are handed the narrow services they use (HttpServices), never this object.

`create_app` returns an ASGI application (Socket.IO at `/socket.io/`, everything
else to FastAPI), either a new FastAPI application or one you pass in, whose own
lifespan then runs inside roomcast's.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI

from . import __version__
from .auth.tokens import TokenVerifier
from .broadcast.control import ControlRouter
from .broadcast.service import EventBroadcastService
from .brokers.base import Broker
from .config import Settings
from .demo import add_demo_routes
from .domain import Counters
from .engine.server import EngineServer
from .errors import RoomcastError
from .housekeeping import Housekeeping
from .hub.hub import LocalHub
from .integration.proxy import Proxies
from .integration.webhooks import make_webhooks
from .observability.logging import get_logger
from .observability.memory_gauge import RedisMemoryGauge
from .observability.metrics import Metrics
from .observability.stats import InstanceStats
from .presence.base import PresenceStore
from .protocol.events import EventTypes
from .rooms.names import RoomKinds
from .rooms.policy import JoinHook
from .rooms.service import RoomService
from .stores import make_stores
from .transport.fast_publish import FastPublish
from .transport.gateway import SocketGateway
from .transport.health import Readiness
from .transport.http_api import HttpServices, build_router, install_error_handlers
from .transport.refusals import Refusals
from .transport.socketio_server import SocketIOServer
from .transport.sockets import ASGIApp, SocketServer


class Roomcast:
    """One roomcast application: its settings, parts and tasks."""

    def __init__(
        self,
        settings: Settings,
        *,
        room_kinds: RoomKinds | None = None,
        event_types: EventTypes | None = None,
        join_hook: JoinHook | None = None,
        broker: Broker | None = None,
        presence: PresenceStore | None = None,
    ) -> None:
        self.settings = settings
        self.kinds = room_kinds or RoomKinds()
        self.event_types = event_types or EventTypes()
        self.metrics = Metrics()
        self.counters = Counters()
        self.log = get_logger(instance=settings.instance_id)
        self.verifier = TokenVerifier.from_settings(settings)
        if broker is None or presence is None:
            default_broker, default_presence = make_stores(settings)
            broker = broker or default_broker
            presence = presence or default_presence
        self.broker = broker
        self.presence = presence
        self.sockets = make_socket_server(settings)
        self.outlet = self.sockets.outlet
        self.control = ControlRouter()
        self.hub = LocalHub(
            self.outlet,
            on_slow_consumer=self._slow_consumer,
            on_control=self.control,
            on_delivered=self._on_delivered,
            observe_lag=self.metrics.fanout_lag.observe,
            skippable=self.event_types.skippable(),
            subscriber=self.broker,
        )
        self.broker.attach(self.hub)
        self.webhooks = make_webhooks(settings, self.metrics, self.log)
        if self.webhooks is not None:
            # Client events journaled by the broker as it sequences them (room order).
            self.webhooks.recorder.journal_in(self.broker)
        self.proxies = Proxies(settings, self.metrics)
        self.rooms = RoomService(
            broker=self.broker,
            presence=self.presence,
            hub=self.hub,
            kinds=self.kinds,
            event_types=self.event_types,
            verifier=self.verifier,
            metrics=self.metrics,
            client_publishable=settings.client_publishable,
            max_rooms=settings.max_rooms_per_connection,
            history_page=min(1000, settings.history_size),
            lease_ttl_ms=settings.lease_ttl_ms,
            lease_max_ttl_ms=settings.lease_max_ttl_ms,
            join_hook=join_hook,
            webhooks=self.webhooks.recorder if self.webhooks else None,
            join_proxy=self.proxies.join,
            publish_proxy=self.proxies.publish,
        )
        self.gateway = SocketGateway(
            sockets=self.sockets,
            settings=settings,
            verifier=self.verifier,
            rooms=self.rooms,
            presence=self.presence,
            outlet=self.outlet,
            event_types=self.event_types,
            metrics=self.metrics,
        )
        self.sockets.serve(self.gateway)
        self.broadcast = EventBroadcastService(
            self.broker, kinds=self.kinds, event_types=self.event_types, metrics=self.metrics
        )
        self.readiness = Readiness(
            self.broker,
            self.gateway,
            settings.instance_id,
            # Memory mode observes nothing: an in-process "ping" is no round trip.
            observe_roundtrip=self.metrics.redis_roundtrip.observe if settings.uses_redis else None,
        )
        self.redis_memory = RedisMemoryGauge(self.broker, self.metrics)
        self.control.on("canary", self.readiness.heard)
        self.control.on("disconnect_user", self._disconnect_user)
        self.stats = InstanceStats(
            instance_id=settings.instance_id,
            started_at_ms=int(time.time() * 1000),
            metrics=self.metrics,
            counters=self.counters,
            connection_count=self.gateway.connections.__len__,
            room_count=self.hub.room_count,
        )
        self.http = HttpServices(
            settings=settings,
            kinds=self.kinds,
            broadcast=self.broadcast,
            history=self.broker,
            presence=self.presence,
            stats=self.stats,
            readiness=self.readiness,
            metrics=self.metrics,
            refusals=Refusals(self.metrics),
        )
        self.housekeeping = Housekeeping(
            chores=[
                self._heartbeat,
                self.broker.expire_leases,
                self._reap_dead,
                self._sweep,
            ],
            probes=[self.readiness.probe, self.redis_memory.tick],
            log=self.log,
        )
        self._tasks: list[asyncio.Task[None]] = []

    # callbacks from the fan-out (synchronous, on the hot path's edge) --------------

    def _slow_consumer(self, sid: str) -> None:
        self.gateway.request_close(
            sid, "slow_consumer", {"status": "disconnected", "reason": "slow_consumer"}
        )

    def _on_delivered(self, event_type: str, count: int) -> None:
        self.counters.events_out += count
        self.metrics.events_out.labels(event_type).inc(count)

    def _disconnect_user(self, message: dict[str, object]) -> None:
        self.gateway.close_user(str(message["user_id"]), str(message.get("reason") or "api"))

    # housekeeping chores that span two parts -----------------------------------------

    async def _heartbeat(self) -> None:
        await self.presence.heartbeat(len(self.gateway.connections))

    async def _reap_dead(self) -> None:
        for change in await self.presence.reap_dead():
            if change.left is not None:
                self.log.info("presence.reaped", room=change.room, user=change.left.user_id)
            await self.rooms.announce_departure(change)

    async def _sweep(self) -> None:
        self.broker.sweep()
        self.gateway.prune()

    # lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        await self.broker.start()
        try:
            await self.presence.heartbeat(0)
        except RoomcastError as exc:
            self.log.warning("instance.heartbeat_failed", code=exc.code)
        await self.readiness.probe()
        await self.proxies.start()
        self._tasks = [
            asyncio.create_task(self.gateway.run_closer(), name="roomcast.closer"),
            asyncio.create_task(self.housekeeping.run(), name="roomcast.housekeeping"),
        ]
        if self.webhooks is not None:
            self._tasks.append(
                asyncio.create_task(self.webhooks.delivery.run(), name="roomcast.webhooks")
            )
        if self.verifier.jwks is not None:
            # The provider's keys before the first connect, then kept fresh.
            await self.verifier.jwks.refresh()
            self._tasks.append(asyncio.create_task(self.verifier.jwks.run(), name="roomcast.jwks"))
        self.log.info("instance.started", redis=self.settings.uses_redis)

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.sockets.aclose()
        await self.proxies.aclose()
        if self.webhooks is not None:
            await self.webhooks.journal.aclose()
        await self.broker.aclose()
        self.log.info("instance.stopped")

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any = None) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.aclose()

    async def drain(self, pause_seconds: float = 0.2) -> None:
        await self.gateway.drain(self.settings.drain_batch_size, pause_seconds)

    def leak_check(self) -> dict[str, int]:
        """Sizes of every per-connection table, for churn tests.

        The hub is the one table of who is in which room (rooms with members, and the
        broker subscriptions they drive); what remains beside it is per connection
        (the gateway's table and its pending closes, the outlet's sockets) or held by
        the presence backend for its own bookkeeping.
        """
        sizes = {
            "connections": self.gateway.connections.size(),
            "close_requests": self.gateway.pending_closes(),
            "outlet": self.outlet.size(),
            "hub": self.hub.size(),
            "presence": self.presence.size(),
        }
        return sizes


def create_app(
    settings: Settings | None = None,
    *,
    app: FastAPI | None = None,
    room_kinds: RoomKinds | None = None,
    event_types: EventTypes | None = None,
    join_hook: JoinHook | None = None,
    demo: bool = False,
) -> ASGIApp:
    """Build the ASGI application.

    Pass `app` to add roomcast to an existing FastAPI application: its routes stay,
    roomcast's are added under `/api/v1`, `/healthz`, `/readyz` and `/metrics`, and
    its own lifespan runs inside roomcast's. `demo=True` adds the demo page and its
    open token endpoint (what `roomcast serve --demo` runs). The `Roomcast` object is at
    `app.state.roomcast` (and `.roomcast` on the returned ASGI app).
    """
    settings = settings or Settings()
    runtime = Roomcast(
        settings, room_kinds=room_kinds, event_types=event_types, join_hook=join_hook
    )
    if app is None:
        fastapi_app = FastAPI(title="roomcast", version=__version__, lifespan=runtime.lifespan)
        # roomcast's own application: unmatched paths answer as SPEC 6 says too.
        install_error_handlers(fastapi_app, runtime.metrics)
    else:
        fastapi_app = app
        inner = app.router.lifespan_context

        @contextlib.asynccontextmanager
        async def combined(a: Any) -> AsyncIterator[Any]:
            async with runtime.lifespan(a), inner(a) as state:
                yield state

        app.router.lifespan_context = combined
    fastapi_app.state.roomcast = runtime
    build_router(fastapi_app, runtime.http)
    if demo:
        # Only ever by explicit request: the demo token endpoint hands out tokens.
        add_demo_routes(
            fastapi_app,
            settings=settings,
            broadcast=runtime.broadcast,
            history=runtime.broker.history,
        )
    fast = FastPublish(fastapi_app, runtime.http)
    asgi = runtime.sockets.asgi(fast)
    asgi.roomcast = runtime  # type: ignore[attr-defined]
    return asgi


def make_socket_server(settings: Settings) -> SocketServer:
    """The Socket.IO server `ROOMCAST_ENGINE` names (transport/sockets.py)."""
    if settings.engine == "python-socketio":
        return SocketIOServer(settings)
    cors: str | list[str] | None = settings.cors_origin_list or None
    if cors == ["*"]:
        cors = "*"
    return EngineServer(
        max_payload=max(settings.max_payload_bytes * 4, 1_000_000),
        cors_allowed_origins=cors,
        send_queue_limit=settings.send_queue_limit,
        send_buffer_limit_bytes=settings.send_buffer_limit_bytes,
    )
