"""EngineServer: roomcast's Engine.IO v4 / Socket.IO v5 server over one session table.

A session starts with a handshake, over WebSocket (`transport=websocket` without sid:
the open packet is its first message) or long-polling (a GET without sid), and may
upgrade from polling to WebSocket: the probe ("2probe" answered "3probe" on the new
WebSocket, a noop "6" releasing the pending GET), then "5" switches the session over,
and what its polling queue still held is written to the WebSocket first.

Socket.IO is served on namespace "/" only and handed to a `SocketHandler`: a CONNECT
runs `handler.connect` (the reply `40{"sid"}` then `handler.connected`, or
CONNECT_ERROR `44{"message","data"}` and a close), each event runs `handler.event` in
its own task in arrival order (its ack `43<id>[value]` on the session's ordered road),
and every admitted connection ends with exactly one `handler.disconnect`. Junk, at the
Engine.IO or the Socket.IO level, reaches the handler as the event JUNK_EVENT.

A session that sends no CONNECT is closed at the first ping `connect_timeout` (45 s,
as Node's socket.io) or more after its handshake: an Engine.IO session answering
pings would otherwise hold its place in the table for ever.

A closed session refuses everything: it leaves the session table, the outlet and the
heartbeat wheel at once (a long-polling one stays only until a GET took its last
packets, at most one heartbeat period).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import secrets
from collections import deque
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from . import eio_codec, sio_codec
from .contract import Carrier, ConnectRefused, Handshake, SocketHandler, frame_of
from .heartbeat import Heartbeat
from .outlet import NativeOutlet
from .session import (
    CLOSED,
    POLLING,
    SIO_CONNECTED,
    SIO_CONNECTING,
    SIO_DONE,
    SIO_NONE,
    UPGRADING,
    WEBSOCKET,
    Flusher,
    Session,
)

log = logging.getLogger(__name__)

_dumps = json.JSONEncoder(separators=(",", ":")).encode

#: WebSocket close codes.
CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009


def new_id() -> str:
    """A random url-safe id of 20 characters (120 bits: never reused in practice)."""
    return secrets.token_urlsafe(15)


def _query(scope: Mapping[str, Any]) -> dict[str, str]:
    raw = scope.get("query_string", b"")
    text = raw.decode("latin-1") if isinstance(raw, bytes | bytearray) else str(raw)
    return dict(parse_qsl(text, keep_blank_values=True))


def _headers(scope: Mapping[str, Any]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in scope.get("headers") or ():
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]},{text}" if key in headers else text
    return headers


def handshake_of(scope: Mapping[str, Any], auth: Any) -> Handshake:
    client = scope.get("client")
    address = str(client[0]) if client else "unknown"
    return Handshake(
        address=address,
        headers=_headers(scope),
        query=_query(scope),
        auth=auth,
        scope=scope,
    )


#: Event handlers of one session that run at once; later events wait their turn.
EVENTS_IN_FLIGHT = 16
#: Events of one session waiting for a handler; past it the client is cut off (a
#: flood the rate limit cannot keep up with, which would only grow memory).
EVENTS_PENDING = 10_000


class EngineServer:
    """The session table and the protocol (see the module docstring).

    Also a `transport.sockets.SocketServer`: `outlet`, `max_message_bytes`, `serve`,
    `disconnect`, `asgi`, `aclose`.
    """

    def __init__(
        self,
        *,
        ping_interval: float = 25.0,
        ping_timeout: float = 20.0,
        connect_timeout: float = 45.0,
        max_payload: int = 1_000_000,
        cors_allowed_origins: str | list[str] | None = None,
        send_queue_limit: int = 1000,
        send_buffer_limit_bytes: int = 1 << 20,
    ) -> None:
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        # The ping at which a session still without CONNECT is closed.
        self._connect_pings = max(1, math.ceil(connect_timeout / ping_interval))
        self.max_payload = max_payload
        self.max_message_bytes = max_payload
        self.cors_allowed_origins = cors_allowed_origins
        self.sessions: dict[str, Session] = {}  # Engine.IO sid -> session
        self.flusher = Flusher()
        self.heartbeat = Heartbeat(
            ping_interval, ping_timeout, ping=self._ping, expire=self._expire
        )
        self.outlet = NativeOutlet(self.flusher, send_queue_limit, send_buffer_limit_bytes)
        self.tasks: set[asyncio.Task[Any]] = set()  # connect and event handlers running
        self._handler: SocketHandler | None = None
        self._open_extra = _dumps(
            {
                "pingInterval": int(ping_interval * 1000),
                "pingTimeout": int(ping_timeout * 1000),
                "maxPayload": max_payload,
            }
        )[1:]

    # SocketServer ---------------------------------------------------------------------

    def serve(self, handler: SocketHandler) -> None:
        self._handler = handler

    def asgi(self, other: Any) -> Any:
        from .app import EngineASGIApp

        return EngineASGIApp(self, other)

    async def disconnect(self, sid: str) -> None:
        """Close `sid` from the server side: "41", then Engine.IO's "1", then the carrier;
        `handler.disconnect(sid, "server")` once."""
        session = self.outlet.session(sid)
        if session is None or session.state == CLOSED:
            return
        if session.sio_state == SIO_CONNECTED:
            session.send("41")
        await self._close(session, "server", notify=True)

    async def aclose(self) -> None:
        """Close every session (their handlers told "server") and stop the timer."""
        for session in list(self.sessions.values()):
            if session.state != CLOSED:
                await self._close(session, "server", notify=True)
        self.sessions.clear()
        self.heartbeat.close()
        for task in list(self.tasks):
            task.cancel()

    @property
    def handler(self) -> SocketHandler:
        if self._handler is None:
            raise RuntimeError("EngineServer.serve(handler) was not called")
        return self._handler

    # Handshakes -----------------------------------------------------------------------

    def _new_session(self, state: int, scope: Mapping[str, Any]) -> Session:
        eio_sid = new_id()
        while eio_sid in self.sessions:
            eio_sid = new_id()
        session = Session(eio_sid, state, self, self.flusher, dict(scope))
        self.sessions[eio_sid] = session
        self.heartbeat.start(session)
        return session

    def _open_packet(self, session: Session, upgrades: list[str]) -> str:
        return f'0{{"sid":"{session.eio_sid}","upgrades":{_dumps(upgrades)},{self._open_extra}'

    def open_websocket(self, scope: Mapping[str, Any], carrier: Carrier) -> Session:
        """A WebSocket-only handshake, its WebSocket accepted: the open packet goes first."""
        session = self._new_session(WEBSOCKET, scope)
        session.carrier = carrier
        session.send(self._open_packet(session, []))
        carrier.attach(session)
        return session

    def open_polling(self, scope: Mapping[str, Any]) -> str:
        """A long-polling handshake: the body of its answer (the open packet)."""
        session = self._new_session(POLLING, scope)
        return self._open_packet(session, ["websocket"])

    def upgradable(self, eio_sid: str) -> Session | None:
        session = self.sessions.get(eio_sid)
        if session is None or session.state != POLLING:
            return None
        return session

    def upgrade_websocket(self, session: Session, carrier: Carrier) -> None:
        """A WebSocket accepted for a polling session: it probes, then takes over."""
        session.state = UPGRADING
        session.carrier = carrier
        carrier.attach(session)

    # Long-polling ---------------------------------------------------------------------

    async def poll(self, session: Session) -> str | None:
        """A GET's answer: what is queued (waiting for something if nothing is); None
        when the request is refused (a second concurrent GET, a session not polling)."""
        if session.poller is not None:
            await self._close(session, "transport_error", notify=False)
            return None
        if session.state not in (POLLING, UPGRADING, CLOSED):
            return None
        if not session.queue and session.state != CLOSED:
            session.polled_empty()
        if not session.queue and session.state != CLOSED:
            poller = session.poller = asyncio.get_running_loop().create_future()
            try:
                await poller
            finally:
                session.poller = None
        if session.state == WEBSOCKET:
            return eio_codec.NOOP  # upgraded meanwhile: nothing more on polling
        texts = session.take_queue()
        if session.state == CLOSED:
            self.sessions.pop(session.eio_sid, None)
            if not texts:
                return None
        return eio_codec.encode_payload(texts)

    def post(self, session: Session, body: str) -> bool:
        """A POST's packets, handled in order; False when the session does not take them."""
        if session.state not in (POLLING, UPGRADING):
            return False
        for packet in eio_codec.decode_payload(body):
            if session.state == CLOSED:
                break
            self._engine_packet(session, packet)
        return True

    # Carrier events -------------------------------------------------------------------

    def on_ws_message(self, session: Session, data: str | bytes) -> None:
        state = session.state
        if state == CLOSED:
            return
        if len(data) > self.max_payload:
            if state == WEBSOCKET:
                self._close_soon(session, "transport_error", notify=False, code=CLOSE_TOO_BIG)
            elif session.carrier is not None:
                session.carrier.close(CLOSE_TOO_BIG)
            return
        if state == UPGRADING:
            self._upgrade_message(session, data)
            return
        if state != WEBSOCKET:
            return
        self._engine_packet(session, eio_codec.decode_message(data))

    def on_ws_closed(self, session: Session) -> None:
        if session.state == UPGRADING:
            session.state = POLLING  # the probe failed: polling goes on
            session.carrier = None
            return
        if session.state == WEBSOCKET:
            session.carrier = None
            self._close_soon(session, "transport_close", notify=False)

    def _upgrade_message(self, session: Session, data: str | bytes) -> None:
        carrier = session.carrier
        assert carrier is not None
        if data == "2probe":
            carrier.write([frame_of("3probe")])
            session.send("6")  # releases the GET the client holds, so polling pauses
        elif data == "5":
            session.state = WEBSOCKET
            for text in session.take_queue():
                session.push_frame(frame_of(text))
            session.wake_poller()
            session.flush()
            # Who waited for the polling queue to drain now waits for the WebSocket.
            drained, session.drained = session.drained, None
            for callback in drained or ():
                carrier.notify_drained(callback)
        else:
            session.state = POLLING
            session.carrier = None
            carrier.close(CLOSE_POLICY)

    # Engine.IO ------------------------------------------------------------------------

    def _engine_packet(
        self, session: Session, packet: eio_codec.EioPacket | eio_codec.EioJunk
    ) -> None:
        if isinstance(packet, eio_codec.EioJunk):
            self._junk_packet(session, sio_codec.junk_event("engineio", packet.reason))
            return
        kind = packet.kind
        if kind == eio_codec.MESSAGE:
            self._socketio(session, sio_codec.decode(packet.data))
        elif kind == eio_codec.PONG:
            self.heartbeat.pong(session)
        elif kind == eio_codec.PING:
            data = packet.data if isinstance(packet.data, str) else ""
            session.send("3" + data)
        elif kind == eio_codec.CLOSE:
            self._close_soon(session, "client", notify=False)
        # UPGRADE outside an upgrade: nothing to do.

    def _ping(self, session: Session) -> None:
        if session.sio_state == SIO_NONE:
            session.unconnected_pings += 1
            if session.unconnected_pings >= self._connect_pings:
                self._close_soon(session, "connect_timeout", notify=True)
                return
        session.send("2")

    def _expire(self, session: Session) -> None:
        self._close_soon(session, "ping_timeout", notify=False)

    # Socket.IO ------------------------------------------------------------------------

    def _socketio(self, session: Session, packet: sio_codec.SioPacket) -> None:
        kind = packet.kind
        if kind == sio_codec.EVENT:
            self._event(session, packet)
        elif kind == sio_codec.CONNECT:
            self._connect(session, packet)
        elif (
            kind == sio_codec.DISCONNECT
            and packet.namespace == "/"
            and session.sio_state == SIO_CONNECTED
        ):
            self._close_soon(session, "client", notify=False)
        # ACK: the server asks the client for none.

    def _junk_packet(self, session: Session, packet: sio_codec.SioPacket) -> None:
        self._event(session, packet)

    def _event(self, session: Session, packet: sio_codec.SioPacket) -> None:
        if session.sio_state != SIO_CONNECTED or packet.namespace != "/":
            return  # python-socketio drops events of a namespace not connected
        if session.inflight < EVENTS_IN_FLIGHT:
            self._start_event(session, packet)
            return
        # A burst read in one go (a flood, or a client catching up) waits here, so
        # each handler that finishes starts the next one: what the gateway decided
        # meanwhile (a close for abuse, from its own task) takes effect between them,
        # as it does when packets arrive one at a time.
        pending = session.pending
        if pending is None:
            pending = session.pending = deque()
        if len(pending) >= EVENTS_PENDING:
            log.warning("closing a connection with %d events waiting", len(pending))
            self._close_soon(session, "transport_error", notify=True, code=CLOSE_POLICY)
            return
        pending.append(packet)

    def _start_event(self, session: Session, packet: sio_codec.SioPacket) -> None:
        data = packet.data
        sid = session.sid
        assert sid is not None
        session.inflight += 1
        task = asyncio.get_running_loop().create_task(
            self._run_event(session, sid, data[0], data[1:], packet.id)
        )
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run_event(
        self, session: Session, sid: str, name: str, args: list[Any], ack_id: int | None
    ) -> None:
        try:
            result = await self.handler.event(sid, name, args)
        except Exception:
            log.exception("the handler of event %r failed", name)
            return
        finally:
            session.inflight -= 1
            pending = session.pending
            if pending:
                if session.state == CLOSED:
                    pending.clear()
                else:
                    self._start_event(session, pending.popleft())
        if ack_id is None or session.state == CLOSED:
            return
        values = list(result) if isinstance(result, tuple) else [result]
        session.send(f"43{ack_id}{_dumps(values)}")

    def _connect(self, session: Session, packet: sio_codec.SioPacket) -> None:
        if packet.namespace != "/":
            error = _dumps({"message": "Invalid namespace"})
            session.send(f"44{packet.namespace},{error}")
            return
        if session.sio_state != SIO_NONE:
            return  # a second CONNECT of the same connection
        sid = new_id()
        session.sid = sid
        session.sio_state = SIO_CONNECTING
        scope = session.scope or {}
        session.scope = None
        self._spawn(self._run_connect(session, sid, handshake_of(scope, packet.data)))

    async def _run_connect(self, session: Session, sid: str, handshake: Handshake) -> None:
        handler = self.handler
        try:
            await handler.connect(sid, handshake)
        except ConnectRefused as refused:
            self._refuse(session, {"message": refused.message, "data": refused.data})
            return
        except Exception:
            log.exception("the connect handler failed")
            self._refuse(session, {"message": "internal error", "data": None})
            return
        if session.state == CLOSED:
            # Gone while it was admitted: the handler still hears of it, once.
            session.sio_state = SIO_DONE
            await self._tell_disconnect(sid, session.close_reason or "transport_close")
            return
        session.sio_state = SIO_CONNECTED
        session.send('40{"sid":"' + sid + '"}')
        self.outlet.bind(sid, session)
        handler.connected(sid)

    def _refuse(self, session: Session, error: dict[str, Any]) -> None:
        session.sio_state = SIO_DONE
        if session.state == CLOSED:
            return
        session.send("44" + _dumps(error))
        self._close_soon(session, "server", notify=True)

    # Closing --------------------------------------------------------------------------

    async def _close(
        self, session: Session, reason: str, *, notify: bool, code: int = CLOSE_NORMAL
    ) -> None:
        """Close the session now; the handler is told (and awaited) if it admitted it."""
        sid = self._shut(session, reason, notify, code)
        if sid is not None:
            await self._tell_disconnect(sid, reason)

    def _close_soon(
        self, session: Session, reason: str, *, notify: bool, code: int = CLOSE_NORMAL
    ) -> None:
        """Close the session now; the handler is told from a task of its own."""
        sid = self._shut(session, reason, notify, code)
        if sid is not None:
            self._spawn(self._tell_disconnect(sid, reason))

    def _shut(self, session: Session, reason: str, notify: bool, code: int) -> str | None:
        """Close the session once: tell the client ("1") if `notify`, drop every entry.
        The sid whose handler must hear of it, if the connection was admitted."""
        if session.state == CLOSED:
            return None
        if notify:
            session.send("1")
        polling = session.state in (POLLING, UPGRADING)
        carrier = session.carrier
        if session.state == WEBSOCKET:
            session.flush()
        session.state = CLOSED
        session.close_reason = reason
        session.frames = None
        session.carrier = None
        session.drained = None
        session.scope = None
        self.heartbeat.cancel(session)
        if carrier is not None:
            carrier.close(code)
        if polling and (session.queue or session.poller is not None):
            if not session.queue:
                session.queue.append("1")  # the GET held open learns of the close
            # The client's next GET takes the last packets, then the session is gone;
            # it is reaped if that GET never comes.
            session.wake_poller()
            self._reap_later(session)
        else:
            session.queue = []
            self.sessions.pop(session.eio_sid, None)
        sid = session.sid
        if sid is not None:
            self.outlet.unbind(sid)
        if session.sio_state == SIO_CONNECTED and sid is not None:
            session.sio_state = SIO_DONE
            return sid
        return None

    def _reap_later(self, session: Session) -> None:
        def reap() -> None:
            if self.sessions.get(session.eio_sid) is session:
                del self.sessions[session.eio_sid]
            session.queue = []

        asyncio.get_running_loop().call_later(self.ping_timeout, reap)

    async def _tell_disconnect(self, sid: str, reason: str) -> None:
        try:
            await self.handler.disconnect(sid, reason)
        except Exception:
            log.exception("the disconnect handler failed")

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
