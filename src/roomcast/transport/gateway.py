"""SocketGateway: the Socket.IO edge. Authenticates connections, admits each event
against the connection's rate, parses it, calls RoomService, and turns the outcome
into the ack `{"ok": ...}`. This is the one place a RoomcastError becomes a
Socket.IO reply.

It is the `SocketHandler` (engine/contract.py) of whichever `SocketServer` runs
(transport/sockets.py): it sees connections and events, never packets or engines.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel

from ..auth.tokens import TokenVerifier
from ..config import Settings
from ..connections import Connection, ConnectionTable
from ..domain import JSON
from ..engine.contract import ConnectRefused, Handshake
from ..engine.junk import JUNK_EVENT, Junk
from ..errors import (
    AuthMissing,
    ConnectionLimit,
    Forbidden,
    InvalidPayload,
    InvalidType,
    PayloadTooLarge,
    RateLimited,
    RoomcastError,
    ServerDraining,
)
from ..observability.logging import get_logger
from ..observability.metrics import Metrics
from ..presence.base import PresenceStore
from ..protocol.events import EventTypes
from ..protocol.requests import (
    ClientPublish,
    JoinRequest,
    LeaveRequest,
    LockRequest,
    UnlockRequest,
    json_size,
    parse_request,
)
from ..ratelimit.bucket import BucketMap, TokenBucket
from ..rooms.service import RoomService
from .refusals import Refusals, wire_error
from .sockets import SocketOutlet

Handler = Callable[[Connection, Any], Awaitable[JSON]]
_CloseRequest = tuple[str, str, JSON | None]  # sid, reason, the status to send first

#: A connection may send this many junk packets at once, and one a second after that;
#: past it, it is closed with the reason "protocol_abuse".
JUNK_BURST = 50
JUNK_PER_SECOND = 1.0

#: Connects being admitted at once (token, presence, the user's room); the others wait
#: their turn, first come first served. A reconnect storm all let in together would
#: keep the event loop busy for longer than the Redis timeout, and every connect's
#: Redis reply would be read too late (refused "Redis did not answer in time"); in
#: turns, each has the whole timeout. 64 keeps the Redis batches large.
CONNECTS_IN_FLIGHT = 64


@dataclass(slots=True)
class _JunkRecord:
    """One connection's junk: its allowance, and the line it was last logged on."""

    allowance: TokenBucket
    logged_at: float = float("-inf")
    unlogged: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


class _Disconnector(Protocol):
    async def disconnect(self, sid: str) -> None: ...


class SocketGateway:
    def __init__(
        self,
        *,
        sockets: _Disconnector,
        settings: Settings,
        verifier: TokenVerifier,
        rooms: RoomService,
        presence: PresenceStore,
        outlet: SocketOutlet,
        event_types: EventTypes,
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sockets = sockets
        self._settings = settings
        self._verifier = verifier
        self._rooms = rooms
        self._presence = presence
        self._outlet = outlet
        self._types = event_types
        self._metrics = metrics
        self._refusals = Refusals(metrics)
        self._clock = clock
        self.connections = ConnectionTable()
        self.draining = False
        self._address_buckets = (
            BucketMap(
                settings.connect_rate_per_address, settings.connect_rate_per_address * 5, clock
            )
            if settings.connect_rate_per_address > 0
            else None
        )
        self._expiry_timers: dict[str, asyncio.TimerHandle] = {}
        self._admission = asyncio.Semaphore(CONNECTS_IN_FLIGHT)
        self._junk: dict[str, _JunkRecord] = {}  # sid -> its junk, once it sent some
        # Server-side disconnects requested from synchronous code (fan-out, timers);
        # drained by one task the application owns. A request that finds the queue
        # full waits in the overflow, which the closer empties into the queue as it
        # makes room: a close is never lost, and there is at most one request per
        # connection (`Connection.closing`), so the overflow is bounded too.
        self._closing: asyncio.Queue[_CloseRequest] = asyncio.Queue(
            maxsize=settings.max_connections * 2
        )
        self._close_overflow: deque[_CloseRequest] = deque()
        self._log = get_logger(instance=settings.instance_id)
        self._handlers: dict[str, tuple[type[BaseModel], Handler]] = {
            "join": (JoinRequest, rooms.join),
            "leave": (LeaveRequest, rooms.leave),
            "lock": (LockRequest, rooms.lock),
            "unlock": (UnlockRequest, rooms.unlock),
        }

    # connect / disconnect --------------------------------------------------------

    async def connect(self, sid: str, handshake: Handshake) -> None:
        try:
            async with self._admission:
                conn = await self._admit_connection(sid, handshake)
        except RoomcastError as exc:
            self._refusals.count(exc)
            self._log.info("connection.refused", sid=sid, code=exc.code)
            raise ConnectRefused(
                exc.message, {"code": exc.code, "temporary": exc.temporary}
            ) from None
        self._log.debug("connection.opened", sid=sid, user=conn.identity.user_id)

    async def _admit_connection(self, sid: str, handshake: Handshake) -> Connection:
        if self.draining:
            raise ServerDraining("this instance is shutting down; connect to another")
        address = handshake.address
        auth = handshake.auth
        if self._address_buckets is not None and not self._address_buckets.take(address):
            raise RateLimited("too many connection attempts from this address")
        token: Any = auth.get("token") if isinstance(auth, dict) else None
        if not token:
            header = handshake.headers.get("authorization", "")
            if header[:7].lower() == "bearer ":
                token = header[7:].strip()
        if not token:
            raise AuthMissing("no token: send auth {token} or an Authorization: Bearer header")
        identity = await self._verifier.verify_access_awaiting_keys(token)
        if len(self.connections) >= self._settings.max_connections:
            raise ConnectionLimit("this instance is full; connect to another")
        limit = self._settings.max_connections_per_user
        if not await self._presence.register_connection(identity.user_id, sid, limit):
            raise ConnectionLimit(f"user already has {limit} connections")
        conn = Connection(
            sid=sid,
            identity=identity,
            address=address,
            bucket=TokenBucket(
                self._settings.rate_limit_per_second, self._settings.rate_limit_burst, self._clock
            ),
        )
        self.connections.add(conn)
        joined = False
        try:
            user_room = self._rooms.kinds.user_room(identity.user_id).name
            await self._rooms.join(conn, JoinRequest(room=user_room), implicit=True)
            joined = True
        finally:
            if not joined:
                await self._forget(conn)
        if identity.expires_at is not None:
            delay = identity.expires_at + self._settings.jwt_leeway_seconds - time.time()
            self._expiry_timers[sid] = asyncio.get_running_loop().call_later(
                max(0.0, delay),
                self.request_close,
                sid,
                "token_expired",
                {"status": "token_expired"},
            )
        self._metrics.connections.set(len(self.connections))
        return conn

    def connected(self, sid: str) -> None:
        """Greet a connection once its Socket.IO CONNECT packet has gone out."""
        conn = self.connections.get(sid)
        if conn is None:
            return
        settings = self._settings
        self._outlet.send(
            sid,
            "connection_status",
            {
                "status": "connected",
                "sid": sid,
                "user_id": conn.identity.user_id,
                "instance_id": settings.instance_id,
                "server_time": int(time.time() * 1000),
                "rooms": sorted(conn.rooms),
                "limits": {
                    "events_per_second": _number(settings.rate_limit_per_second),
                    "burst": settings.rate_limit_burst,
                    "max_rooms": settings.max_rooms_per_connection,
                    "max_payload_bytes": settings.max_payload_bytes,
                },
            },
        )

    async def disconnect(self, sid: str, reason: str) -> None:
        conn = self.connections.get(sid)
        if conn is not None:
            await self._forget(conn)
            self._log.debug("connection.closed", sid=sid, reason=reason)

    async def _forget(self, conn: Connection) -> None:
        """Undo everything a connection holds: rooms, presence, leases, counts, timers.

        The connection leaves the table last, so an empty table means a clean one.
        """
        if conn.forgotten:
            return
        conn.forgotten = True
        self._junk.pop(conn.sid, None)
        timer = self._expiry_timers.pop(conn.sid, None)
        if timer is not None:
            timer.cancel()
        try:
            for room in list(conn.rooms):
                try:
                    await self._rooms.drop_membership(conn, room)
                except RoomcastError as exc:
                    self._log.warning("room.cleanup_failed", sid=conn.sid, room=room, code=exc.code)
        finally:
            self._outlet.unbind(conn.sid)
            try:
                await self._presence.unregister_connection(conn.identity.user_id, conn.sid)
            except RoomcastError as exc:
                # The entry expires with its TTL, or is reaped if this instance dies.
                self._log.warning("connection.unregister_failed", sid=conn.sid, code=exc.code)
            self.connections.pop(conn.sid)
            self._metrics.connections.set(len(self.connections))

    def prune(self) -> None:
        """Forget connection-rate buckets that refilled (they hold no information)."""
        if self._address_buckets is not None:
            self._address_buckets.prune()

    # server-side disconnects -------------------------------------------------------

    def request_close(self, sid: str, reason: str, status: JSON | None) -> None:
        """Ask for a connection to be closed soon (callable from synchronous code)."""
        conn = self.connections.get(sid)
        if conn is None or conn.closing:
            return
        conn.closing = True
        try:
            self._closing.put_nowait((sid, reason, status))
        except asyncio.QueueFull:
            self._close_overflow.append((sid, reason, status))
            self._metrics.queue_overflow.labels("close_requests").inc()
            self._log.warning("connection.close_queue_full", sid=sid, reason=reason)

    async def run_closer(self) -> None:
        """Close connections as requested; runs for the application's lifetime."""
        while True:
            sid, reason, status = await self._closing.get()
            # The queue was full when the overflow last grew, so this runs before the
            # closer waits on an empty queue again.
            while self._close_overflow and not self._closing.full():
                self._closing.put_nowait(self._close_overflow.popleft())
            await self._close(sid, reason, status)

    def pending_closes(self) -> int:
        """Close requests not yet carried out (queued and overflowed), for leak checks."""
        return self._closing.qsize() + len(self._close_overflow)

    async def _close(self, sid: str, reason: str, status: JSON | None) -> None:
        self._metrics.disconnects.labels(reason).inc()
        if status is not None:
            self._outlet.send(sid, "connection_status", status)
        self._log.info("connection.closing", sid=sid, reason=reason)
        await self._sockets.disconnect(sid)

    def close_user(self, user_id: str, reason: str) -> int:
        conns = self.connections.of_user(user_id)
        for conn in conns:
            self.request_close(conn.sid, "api", {"status": "disconnected", "reason": reason})
        return len(conns)

    async def drain(self, batch_size: int, pause_seconds: float) -> None:
        """Refuse new connections, tell current ones, and close them in paced batches."""
        self.draining = True
        conns = list(self.connections)
        for start in range(0, len(conns), batch_size):
            batch = conns[start : start + batch_size]
            for conn in batch:
                await self._close(conn.sid, "draining", {"status": "draining"})
            if start + batch_size < len(conns):
                await asyncio.sleep(pause_seconds)  # pacing, so clients spread their reconnects
        try:
            await asyncio.wait_for(self.connections.wait_empty(), timeout=10)
        except TimeoutError:
            self._log.warning("drain.incomplete", left=len(self.connections))

    # events ------------------------------------------------------------------------

    def _admit_event(self, conn: Connection) -> None:
        """Charge one event to the connection's bucket; raise RateLimited when empty."""
        now = self._clock()
        if conn.bucket.take():
            # A run of refusals ends after a quiet second, not at the first event the
            # refill lets through: a flood at many times the rate is still one run.
            if conn.limited_since is not None and now - conn.last_refused > 1.0:
                conn.limited_since = None
            return
        self._metrics.rate_limited.inc()
        conn.dropped += 1
        conn.last_refused = now
        if conn.limited_since is None:
            conn.limited_since = now
        retry_ms = int(conn.bucket.retry_after() * 1000) + 1
        if now - conn.last_notice >= 1.0:
            self._outlet.send(
                conn.sid, "rate_limited", {"retry_after_ms": retry_ms, "dropped": conn.dropped}
            )
            conn.last_notice = now
            conn.dropped = 0
        if now - conn.limited_since >= self._settings.rate_abuse_seconds:
            self.request_close(
                conn.sid, "rate_abuse", {"status": "disconnected", "reason": "rate_limited"}
            )
        raise RateLimited("too many events; slow down", retry_after_ms=retry_ms)

    def _junk_of(self, event: str, args: list[Any]) -> Junk | None:
        """Why an event is not a protocol event at all, or None when it may be one."""
        if event == JUNK_EVENT and args and isinstance(args[0], Junk):
            return args[0]
        if event not in self._handlers and event not in self._types:
            return Junk("unknown_event", InvalidType(f"unknown event {event[:64]!r}"))
        if len(args) != 1:
            return Junk(
                "arguments",
                InvalidPayload(f"an event takes exactly one argument, a JSON object ({len(args)})"),
            )
        return None

    def _note_junk(self, conn: Connection, event: str, junk: Junk) -> None:
        """Count a junk packet, log it (one line a second at most), close past the allowance."""
        self._metrics.junk_packets.labels(junk.reason).inc()
        record = self._junk.get(conn.sid)
        if record is None:
            record = _JunkRecord(TokenBucket(JUNK_PER_SECOND, JUNK_BURST, self._clock))
            self._junk[conn.sid] = record
        record.reasons[junk.reason] = record.reasons.get(junk.reason, 0) + 1
        now = self._clock()
        if now - record.logged_at >= 1.0:
            self._log.warning(
                "event.junk",
                sid=conn.sid,
                user=conn.identity.user_id,
                reason=junk.reason,
                event_name=event[:64],
                unlogged_before=record.unlogged,
                total=dict(record.reasons),
            )
            record.logged_at = now
            record.unlogged = 0
        else:
            record.unlogged += 1
        if not record.allowance.take():
            self.request_close(
                conn.sid, "protocol_abuse", {"status": "disconnected", "reason": "protocol_abuse"}
            )

    async def event(self, sid: str, event: str, args: list[Any]) -> JSON:
        conn = self.connections.get(sid)
        if conn is None:
            return wire_error(Forbidden("not connected"))
        junk = self._junk_of(event, args)
        if junk is not None:
            self._note_junk(conn, event, junk)
        try:
            self._admit_event(conn)
            if junk is not None:
                raise junk.error
            data = args[0]
            self._check_size(data)
            entry = self._handlers.get(event)
            if entry is not None:
                model, handler = entry
                return await handler(conn, _parse(model, data))
            return await self._rooms.publish(conn, event, _parse(ClientPublish, data))
        except RoomcastError as exc:
            return self._refusals.ack(exc)
        except Exception:
            self._log.exception("event.failed", sid=sid, event_name=event[:64])
            return {"ok": False, "error": {"code": "internal", "message": "internal error"}}

    def _check_size(self, data: Any) -> None:
        try:
            size = json_size(data)
        except (TypeError, ValueError, RecursionError):
            # pydantic's serializer refuses nesting past 255 levels with a ValueError.
            raise InvalidPayload("payload is not JSON, or nested too deeply") from None
        if size > self._settings.max_payload_bytes:
            raise PayloadTooLarge(
                f"event is {size} bytes; the limit is {self._settings.max_payload_bytes}"
            )


def _parse(model: type[BaseModel], data: Any) -> Any:
    if not isinstance(data, dict):
        raise InvalidPayload("the event argument must be a JSON object")
    return parse_request(model, data, where="payload")


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value
