"""RoomcastClient: a python-socketio client that resumes, deduplicates and resyncs.

It owns its reconnect loop (python-socketio's own reconnection is off): each attempt
asks the token provider for a token, tries the next URL, and waits a full-jitter
backoff delay after a failure. After every connection it rejoins each room with
`since` = the last position handed to the application, so the server replays what
was missed; RoomStream drops duplicates, and a gap triggers another rejoin.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import socketio

from .backoff import Backoff
from .stream import Decision, RoomStream

Handler = Callable[[dict[str, Any]], Any]
TokenProvider = Callable[[], str | Awaitable[str]]
ResyncHandler = Callable[[str, dict[str, Any]], Any]
UNSEQUENCED = frozenset({"presence", "connection_status", "rate_limited"})


class RoomcastClientError(Exception):
    """An error ack from the server (`code`, `message`, and the rest in `details`)."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.code: str = str(error.get("code"))
        self.message: str = str(error.get("message"))
        self.details = {k: v for k, v in error.items() if k not in ("code", "message")}


@dataclass(slots=True)
class _Room:
    token: str | None = None
    stream: RoomStream = field(default_factory=RoomStream)


@dataclass(slots=True)
class _Lease:
    ttl_ms: int
    task: asyncio.Task[None] | None = None


class RoomcastClient:
    def __init__(
        self,
        urls: str | Sequence[str],
        token_provider: TokenProvider,
        *,
        initial_delay: float = 0.5,
        max_delay: float = 30.0,
        multiplier: float = 2.0,
        stable_after: float = 10.0,
        ack_timeout: float = 5.0,
        publish_timeout: float = 30.0,
        on_resync: ResyncHandler | None = None,
        on_connection_change: Callable[[str], Any] | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self._urls = [urls] if isinstance(urls, str) else list(urls)
        if not self._urls:
            raise ValueError("at least one server URL is needed")
        self._url_cycle = itertools.cycle(self._urls)
        self._token_provider = token_provider
        self._backoff = backoff or Backoff(initial_delay, max_delay, multiplier)
        self._stable_after = stable_after
        self._ack_timeout = ack_timeout
        self._publish_timeout = publish_timeout
        self._on_resync = on_resync
        self._on_connection_change = on_connection_change
        self._handlers: dict[str, list[Handler]] = {}
        self._rooms: dict[str, _Room] = {}
        self._leases: dict[tuple[str, str], _Lease] = {}
        self._sio: socketio.AsyncClient | None = None
        self._connected = asyncio.Event()
        self._lost = asyncio.Event()
        self._closing = False
        self._runner: asyncio.Task[None] | None = None
        self._rejoining: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._http: aiohttp.ClientSession | None = None  # shared by every connection attempt
        self.url: str | None = None  # the server of the current connection
        self.connections = 0  # successful connections so far

    # public API --------------------------------------------------------------------

    def on(self, event: str, handler: Handler) -> None:
        """Call `handler(envelope)` for each event of this name (each room's in order, once)."""
        self._handlers.setdefault(event, []).append(handler)

    def position(self, room: str) -> dict[str, Any] | None:
        """The last {epoch, seq} of the room handed to the application."""
        state = self._rooms.get(room)
        return state.stream.position if state else None

    async def connect(self) -> None:
        """Start the connection loop; return once the first connection is up."""
        if self._runner is None:
            self._runner = asyncio.create_task(self._run(), name="roomcast.client")
        await self._connected.wait()

    async def close(self) -> None:
        self._closing = True
        for lease in self._leases.values():
            if lease.task is not None:
                lease.task.cancel()
        self._leases.clear()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None
        for task in list(self._tasks):
            task.cancel()
        if self._sio is not None and self._sio.connected:
            await self._sio.disconnect()
        self._sio = None
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def join(self, room: str, token: str | None = None) -> dict[str, Any]:
        """Join a room (remembered: rejoined with `since` after every reconnect)."""
        state = self._rooms.setdefault(room, _Room(token=token))
        if token is not None:
            state.token = token
        return await self._join(room, state)

    async def leave(self, room: str) -> dict[str, Any]:
        self._rooms.pop(room, None)
        for key in [k for k in self._leases if k[0] == room]:
            self._stop_renewing(key)
        return await self._call("leave", {"room": room})

    async def publish(
        self, event: str, room: str, data: dict[str, Any], *, client_event_id: str | None = None
    ) -> dict[str, Any]:
        """Publish with one `client_event_id` across retries, so it lands at most once.

        Retries while disconnected or when an ack times out, until `publish_timeout`;
        raises RoomcastClientError for an error ack, TimeoutError past the deadline.
        """
        body = {"room": room, "data": data, "client_event_id": client_event_id or str(uuid.uuid4())}
        deadline = time.monotonic() + self._publish_timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{event} to {room} not acknowledged in time")
            try:
                async with asyncio.timeout(remaining):
                    await self._connected.wait()
                return await self._call(event, body)
            except (TimeoutError, socketio.exceptions.BadNamespaceError, ConnectionError):
                if time.monotonic() >= deadline:
                    raise
                if self._sio is None or not self._sio.connected:
                    await self._lost.wait()
                await asyncio.sleep(0)  # let the connection loop take the loss in

    async def lock(self, room: str, annotation_id: str, ttl_ms: int = 30000) -> dict[str, Any]:
        """Take (or renew) an editing lease, renewed every ttl/2 until unlock or leave."""
        ack = await self._call(
            "lock", {"room": room, "annotation_id": annotation_id, "ttl_ms": ttl_ms}
        )
        key = (room, annotation_id)
        lease = self._leases.get(key)
        if lease is None:
            lease = self._leases[key] = _Lease(ttl_ms)
            lease.task = self._spawn(self._renew(room, annotation_id, lease))
        return ack

    async def unlock(self, room: str, annotation_id: str) -> dict[str, Any]:
        self._stop_renewing((room, annotation_id))
        return await self._call("unlock", {"room": room, "annotation_id": annotation_id})

    # internals -----------------------------------------------------------------------

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _stop_renewing(self, key: tuple[str, str]) -> None:
        lease = self._leases.pop(key, None)
        if lease is not None and lease.task is not None:
            lease.task.cancel()

    async def _renew(self, room: str, annotation_id: str, lease: _Lease) -> None:
        while True:
            await asyncio.sleep(lease.ttl_ms / 2000)  # a timer: renew at half the lease
            with contextlib.suppress(TimeoutError, RoomcastClientError, ConnectionError):
                await self._call(
                    "lock", {"room": room, "annotation_id": annotation_id, "ttl_ms": lease.ttl_ms}
                )

    async def _call(self, event: str, data: dict[str, Any]) -> dict[str, Any]:
        sio = self._sio
        if sio is None or not sio.connected:
            raise ConnectionError("not connected")
        ack = await sio.call(event, data, timeout=self._ack_timeout)
        if not isinstance(ack, dict) or not ack.get("ok"):
            error = ack.get("error", {}) if isinstance(ack, dict) else {}
            raise RoomcastClientError(error)
        return ack

    async def _join(self, room: str, state: _Room) -> dict[str, Any]:
        body: dict[str, Any] = {"room": room, "since": state.stream.position, "token": state.token}
        ack = await self._call("join", body)
        if state.stream.joined(ack):
            await self._notify_resync(room, state.stream)
        return ack

    async def _notify_resync(self, room: str, stream: RoomStream) -> None:
        if self._on_resync is not None and stream.position is not None:
            result = self._on_resync(room, stream.position)
            if inspect.isawaitable(result):
                await result

    async def _token(self) -> str:
        token = self._token_provider()
        if inspect.isawaitable(token):
            token = await token
        return str(token)

    def _set_state(self, state: str) -> None:
        if self._on_connection_change is not None:
            self._on_connection_change(state)

    async def _run(self) -> None:
        """Connect, rejoin, wait for the connection to drop; again, with backoff."""
        while not self._closing:
            url = next(self._url_cycle)
            self._set_state("connecting")
            sio = self._new_socket()
            try:
                await sio.connect(
                    url,
                    auth={"token": await self._token()},
                    transports=["websocket"],
                    wait_timeout=self._ack_timeout,
                )
            except (socketio.exceptions.ConnectionError, OSError, TimeoutError):
                await asyncio.sleep(self._backoff.next())
                continue
            self._sio, self.url = sio, url
            self._lost.clear()
            self.connections += 1
            connected_at = time.monotonic()
            try:
                for room, state in list(self._rooms.items()):
                    await self._join(room, state)
            except (RoomcastClientError, TimeoutError, ConnectionError):
                pass  # the room is retried on the next gap or reconnect
            self._connected.set()
            self._set_state("connected")
            await self._lost.wait()
            self._connected.clear()
            if sio.connected:
                await sio.disconnect()
            self._set_state("disconnected")
            if time.monotonic() - connected_at >= self._stable_after:
                self._backoff.reset()
            if not self._closing:
                await asyncio.sleep(self._backoff.next())

    def _new_socket(self) -> socketio.AsyncClient:
        # One aiohttp session owned here: sockets that die or fail to connect leave
        # nothing open behind them.
        if self._http is None:
            self._http = aiohttp.ClientSession()
        sio = socketio.AsyncClient(reconnection=False, http_session=self._http)
        sio.on("*", self._on_event)
        sio.on("disconnect", self._on_disconnect)
        return sio

    async def _on_disconnect(self, reason: Any = None) -> None:
        self._lost.set()

    async def _on_event(self, event: str, data: Any = None) -> None:
        if (
            event == "connection_status"
            and isinstance(data, dict)
            and data.get("status") in ("token_expired", "draining")
        ):
            self._lost.set()  # reconnect (with a fresh token) without waiting to be cut
        if event == "skipped" and isinstance(data, dict) and "seq" in data:
            await self._on_skipped(data)
            return
        if event in UNSEQUENCED or not isinstance(data, dict) or "seq" not in data:
            await self._dispatch(event, data)
            return
        state = self._rooms.get(data.get("room", ""))
        if state is None:
            if str(data.get("room", "")).startswith("user_"):
                await self._dispatch(event, data)  # the automatic user room
            return
        decision = state.stream.offer(data)
        if decision is Decision.DELIVER:
            await self._dispatch(event, data)
        elif decision is Decision.RESYNC:
            await self._dispatch(event, data)
            await self._notify_resync(data["room"], state.stream)
        elif decision is Decision.GAP:
            self._refill(data["room"], state)

    async def _on_skipped(self, notice: dict[str, Any]) -> None:
        """A detection stream's skip that no later event carried: move past it."""
        state = self._rooms.get(str(notice.get("room", "")))
        if state is None:
            return
        decision = state.stream.skipped(notice)
        if decision is Decision.DELIVER:
            await self._dispatch("skipped", notice)
        elif decision is Decision.GAP:
            self._refill(notice["room"], state)

    def _refill(self, room: str, state: _Room) -> None:
        """Rejoin with `since` to fill a gap (one rejoin per room at a time)."""
        if room in self._rejoining:
            return
        self._rejoining.add(room)

        async def rejoin() -> None:
            try:
                await self._join(room, state)
            except (RoomcastClientError, TimeoutError, ConnectionError):
                pass
            finally:
                self._rejoining.discard(room)

        self._spawn(rejoin())

    async def _dispatch(self, event: str, data: Any) -> None:
        for handler in self._handlers.get(event, ()):
            result = handler(data)
            if inspect.isawaitable(result):
                await result
