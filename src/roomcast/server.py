"""Running an application under uvicorn, with a draining shutdown on SIGTERM.

`serve` is what `roomcast serve` runs: JSON logging for every logger, roomcast's
WebSocket protocol, GC tuning and the drain. It serves roomcast's own application,
or one an embedder builds (`roomcast serve --app module:factory`), so an application
with its own room kinds, event types or join hook runs under the same server
without copying any of this.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

import structlog
import uvicorn

from .app import Roomcast, create_app
from .config import Settings
from .engine.websocket import RawWebSocketProtocol
from .observability.logging import configure_logging
from .transport.internals import MAX_HEAD_BYTES, HeadLimitedHttpToolsProtocol
from .transport.wire import WireProtocol

#: Builds the application to serve from the settings; returns what `create_app`
#: returns (an ASGI application whose `.roomcast` is its `Roomcast`).
AppFactory = Callable[[Settings], Any]


class NotARoomcastApp(TypeError):
    """An application (or a factory's result) that `create_app` did not build."""


DRAIN_PAUSE_SECONDS = 0.2


class DrainingServer(uvicorn.Server):
    """On the first SIGTERM or SIGINT, drain (SPEC section 9) and then stop."""

    def __init__(self, config: uvicorn.Config, runtime: Roomcast) -> None:
        super().__init__(config)
        self._runtime = runtime
        self._drain: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list | None = None) -> None:  # type: ignore[type-arg]
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if (
            self._drain is None
            and self._loop is not None
            and sig in (signal.SIGTERM, signal.SIGINT)
        ):
            self._loop.call_soon_threadsafe(self._start_drain, sig, frame)
            return
        super().handle_exit(sig, frame)

    def _start_drain(self, sig: int, frame: FrameType | None) -> None:
        if self._drain is None:
            self._drain = asyncio.get_running_loop().create_task(self._drain_then_exit(sig, frame))

    async def _drain_then_exit(self, sig: int, frame: FrameType | None) -> None:
        try:
            await self._runtime.drain(DRAIN_PAUSE_SECONDS)
        finally:
            # Not super().handle_exit: uvicorn would re-raise the captured signal
            # after shutdown, and a clean drain would end as "killed by SIGTERM".
            self.should_exit = True


GC_THRESHOLDS = (20_000, 20, 20)


def tune_gc() -> None:
    """Collect less often, and never rescan what was loaded at start-up.

    A broadcast allocates many short-lived objects (envelopes, packets, frames);
    with CPython's default first threshold of 700 the collector runs hundreds of
    times a second and each run walks the young objects of every connection. The
    modules, the app and its routes are frozen out of the scans for good.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def protocol_limits(runtime: Roomcast) -> dict[str, Any]:
    """The uvicorn.Config options that bound what one request or message may hold.

    - `http`: request heads over MAX_HEAD_BYTES (64 KiB) are answered 431 and the
      socket closed at once, on plain HTTP and on the WebSocket upgrade (httptools,
      uvicorn's default, has no limit at all; see internals.HeadLimitedHttpToolsProtocol).
      Under roomcast's WebSocket protocol a single header line over 8 KiB on the
      upgrade is answered 431 too (websockets' limit).
    - `ws_max_size`: a WebSocket message is refused (close 1009) once it passes the
      Engine.IO packet limit, instead of first being assembled up to uvicorn's 16 MiB.

    `serve` uses them, and so do the test servers; an embedder running its own
    uvicorn passes them to `uvicorn.Config` (docs/operations.md).
    """
    return {
        "http": HeadLimitedHttpToolsProtocol,
        # The same bound for a caller that swaps `http` for "h11" (which answers 400).
        "h11_max_incomplete_event_size": MAX_HEAD_BYTES,
        "ws_max_size": runtime.sockets.max_message_bytes,
    }


def websocket_protocol(settings: Settings) -> type[asyncio.Protocol]:
    """The WebSocket protocol class `serve` gives uvicorn for these settings.

    roomcast's own engine runs on `RawWebSocketProtocol`: after the upgrade a
    connection is callbacks only, with no task. It never compresses, so with
    permessage-deflate asked for, uvicorn's own protocol (through `WireProtocol`)
    carries the engine's messages instead. python-socketio's engine writes a
    broadcast's pre-built frame to each socket through `WireProtocol`
    (transport/wire.py).
    """
    if settings.engine == "native" and not settings.ws_per_message_deflate:
        return RawWebSocketProtocol
    return WireProtocol


def runtime_of(app: Any) -> Roomcast:
    """The `Roomcast` of an application `create_app` built; NotARoomcastApp otherwise."""
    runtime = getattr(app, "roomcast", None)
    if not isinstance(runtime, Roomcast):
        raise NotARoomcastApp(
            f"{type(app).__name__} is not an application built by roomcast.create_app "
            "(it has no .roomcast)"
        )
    return runtime


async def serve(
    settings: Settings, *, demo: bool = False, app: Any | AppFactory | None = None
) -> None:
    """Serve until SIGTERM or SIGINT, then drain and return.

    `app` is an application `create_app` built, or a factory called with `settings`
    that returns one (called after logging is set up, so its own lines are JSON too);
    None serves roomcast's own (`demo` adds the demo page to it, and only to it).
    Raises NotARoomcastApp for anything else, before listening.
    """
    if demo and app is not None:
        raise ValueError("demo applies to roomcast's own application only, not to `app`")
    configure_logging(settings.log_format, settings.log_level)
    # Every line logged from here on, uvicorn's included, names this instance.
    structlog.contextvars.bind_contextvars(instance=settings.instance_id)
    logging.captureWarnings(True)
    if app is None:
        asgi = create_app(settings, demo=demo)
    elif isinstance(getattr(app, "roomcast", None), Roomcast):
        asgi = app
    elif callable(app):
        asgi = app(settings)
    else:
        asgi = app
    runtime = runtime_of(asgi)
    tune_gc()
    config = uvicorn.Config(
        asgi,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        # Not uvicorn's dictConfig: it would give its loggers a plain-text handler.
        log_config=None,
        access_log=False,
        proxy_headers=bool(settings.trusted_proxy_list),
        forwarded_allow_ips=settings.trusted_proxy_list or None,
        lifespan="on",
        # Off by default: compressing is per recipient, so a broadcast to N browsers
        # would deflate the same event N times.
        ws_per_message_deflate=settings.ws_per_message_deflate,
        ws=websocket_protocol(settings),
        **protocol_limits(runtime),
        # The drain has already closed every Socket.IO connection; do not wait
        # forever on a peer that never completes its close handshake.
        timeout_graceful_shutdown=10,
    )
    await DrainingServer(config, runtime).serve()
