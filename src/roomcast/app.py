"""create_app: the one place where the parts are wired together.

`Roomcast` holds one application's parts and owns their background tasks; its
`lifespan` starts and stops them. `create_app` returns an ASGI application (Socket.IO
at `/socket.io/`, everything else to FastAPI), either a new FastAPI application or
one you pass in, whose own lifespan then runs inside roomcast's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import socketio
from fastapi import FastAPI

from . import __version__
from .auth.tokens import TokenVerifier
from .broadcast.fanout import LocalFanout
from .broadcast.service import EventBroadcastService
from .brokers.base import Broker
from .brokers.factory import make_stores
from .config import Settings
from .demo import add_demo_routes
from .errors import RoomcastError
from .observability.logging import get_logger
from .observability.memory_gauge import RedisMemoryGauge
from .observability.metrics import Metrics
from .presence.base import PresenceStore
from .protocol.events import EventTypes
from .rooms.names import RoomKinds
from .rooms.policy import JoinHook
from .rooms.service import RoomService
from .transport.fast_publish import FastPublish
from .transport.gateway import SocketGateway
from .transport.health import Readiness
from .transport.http_api import build_router, install_error_handlers
from .transport.internals import GreetingManager, WiredASGIApp, WiredSocketIOServer
from .transport.outlet import EngineIOOutlet
from .transport.packets import GatewayPacket
from .types import JSON, Counters, PresenceChange

HOUSEKEEPING_SECONDS = 0.5


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
        secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
        public_key = settings.jwt_public_key.get_secret_value() if settings.jwt_public_key else None
        self.verifier = TokenVerifier(
            secret=secret,
            public_key=public_key,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            leeway_seconds=settings.jwt_leeway_seconds,
        )
        if broker is None or presence is None:
            default_broker, default_presence = make_stores(settings)
            broker = broker or default_broker
            presence = presence or default_presence
        self.broker = broker
        self.presence = presence
        cors: Any = settings.cors_origin_list or None
        if cors == ["*"]:
            cors = "*"
        self.sio = WiredSocketIOServer(
            async_mode="asgi",
            client_manager=GreetingManager(self._after_connect),
            serializer=GatewayPacket,
            cors_allowed_origins=cors,
            max_http_buffer_size=max(settings.max_payload_bytes * 4, 1_000_000),
            logger=False,
            engineio_logger=False,
        )
        self.outlet = EngineIOOutlet(
            self.sio, settings.send_queue_limit, settings.send_buffer_limit_bytes
        )
        self.fanout = LocalFanout(
            self.outlet,
            on_slow_consumer=self._slow_consumer,
            on_control=self._on_control,
            on_delivered=self._on_delivered,
            observe_lag=self.metrics.fanout_lag.observe,
        )
        self.broker.attach(self.fanout)
        self.rooms = RoomService(
            broker=self.broker,
            presence=self.presence,
            fanout=self.fanout,
            outlet=self.outlet,
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
        )
        self.gateway = SocketGateway(
            sio=self.sio,
            settings=settings,
            verifier=self.verifier,
            rooms=self.rooms,
            presence=self.presence,
            outlet=self.outlet,
            event_types=self.event_types,
            metrics=self.metrics,
        )
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
        self._tasks: list[asyncio.Task[None]] = []

    # callbacks from the fan-out (synchronous, on the hot path's edge) --------------

    def _after_connect(self, sid: str) -> None:
        self.gateway.after_connect(sid)

    def _slow_consumer(self, sid: str) -> None:
        self.gateway.request_close(
            sid, "slow_consumer", {"status": "disconnected", "reason": "slow_consumer"}
        )

    def _on_delivered(self, event_type: str, count: int) -> None:
        self.counters.events_out += count
        self.metrics.events_out.labels(event_type).inc(count)

    def _on_control(self, message: JSON) -> None:
        kind = message.get("kind")
        if kind == "canary":
            self.readiness.heard(message)
        elif kind == "disconnect_user":
            self.gateway.close_user(str(message["user_id"]), str(message.get("reason") or "api"))

    # lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        await self.broker.start()
        try:
            await self.presence.heartbeat(0)
        except RoomcastError as exc:
            self.log.warning("instance.heartbeat_failed", code=exc.code)
        await self.readiness.probe()
        self._tasks = [
            asyncio.create_task(self.gateway.run_closer(), name="roomcast.closer"),
            asyncio.create_task(self._housekeeping(), name="roomcast.housekeeping"),
        ]
        self.log.info("instance.started", redis=self.settings.uses_redis)

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.broker.aclose()
        self.log.info("instance.stopped")

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any = None) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.aclose()

    async def _housekeeping(self) -> None:
        """Expire leases, forget idle rooms, check the canary, refresh the memory gauges."""
        while True:
            await asyncio.sleep(HOUSEKEEPING_SECONDS)  # the tick of a periodic task
            try:
                await self.presence.heartbeat(len(self.gateway.connections))
                await self.broker.expire_leases()
                for change in await self.presence.reap_dead():
                    await self._announce_departure(change)
                self.broker.sweep()
                self.gateway.prune()
            except RoomcastError as exc:
                raise_if_cancelling()
                self.log.warning("housekeeping.failed", code=exc.code, error=exc.message)
            await self.readiness.probe()
            await self.redis_memory.tick()  # once per its period; logs its own failures
            raise_if_cancelling()

    async def _announce_departure(self, change: PresenceChange) -> None:
        """A reaped user left a room: tell the room, and end that user's leases there."""
        if change.left is None:
            return
        self.log.info("presence.reaped", room=change.room, user=change.left.user_id)
        await self.broker.publish_transient(change.room, "presence", change.to_wire())
        if self.kinds.parse(change.room).kind.name == "annotation":
            await self.broker.release_holder(change.room, change.left.user_id)

    async def drain(self, pause_seconds: float = 0.2) -> None:
        await self.gateway.drain(self.settings.drain_batch_size, pause_seconds)

    def leak_check(self) -> dict[str, int]:
        """Sizes of every per-connection table, for churn tests."""
        sizes = {
            "connections": self.gateway.connections.size(),
            "outlet": self.outlet.size(),
            "fanout_rooms": self.fanout.room_count(),
            "subscriptions": self.rooms.subscriptions.size(),
            "presence": self.presence.size(),
        }
        return sizes


def raise_if_cancelling() -> None:
    """Re-raise a cancellation that a library turned into another error.

    redis-py may report a cancelled read as a connection error; a loop that
    survives connection errors would then swallow its own cancellation and never
    end, and the application's shutdown would wait on it forever.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def create_app(
    settings: Settings | None = None,
    *,
    app: FastAPI | None = None,
    room_kinds: RoomKinds | None = None,
    event_types: EventTypes | None = None,
    join_hook: JoinHook | None = None,
    demo: bool = False,
) -> socketio.ASGIApp:
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
        install_error_handlers(fastapi_app, runtime)
    else:
        fastapi_app = app
        inner = app.router.lifespan_context

        @contextlib.asynccontextmanager
        async def combined(a: Any) -> AsyncIterator[Any]:
            async with runtime.lifespan(a), inner(a) as state:
                yield state

        app.router.lifespan_context = combined
    fastapi_app.state.roomcast = runtime
    build_router(fastapi_app, runtime)
    if demo:
        # Only ever by explicit request: the demo token endpoint hands out tokens.
        add_demo_routes(fastapi_app, runtime)
    asgi = WiredASGIApp(
        runtime.sio, other_asgi_app=FastPublish(fastapi_app, runtime), socketio_path="socket.io"
    )
    asgi.roomcast = runtime
    return asgi
