"""RoomService: what a connection may do in rooms, independent of the transport.

join, leave, publish, lock and unlock take a Connection and validated requests and
return the ack body; refusals are raised as RoomcastError and turned into wire
replies by the transport.
"""

from __future__ import annotations

import time
from typing import Protocol

from ..auth.tokens import TokenVerifier
from ..brokers.base import Broker
from ..connections import Connection
from ..domain import JSON, Member, PresenceChange, Publication, StreamPosition
from ..editing.rules import check_lease
from ..errors import Forbidden, InvalidPayload, NotJoined, RoomcastError, TooManyRooms
from ..history.recovery import is_recoverable
from ..hub.hub import LocalHub
from ..observability.logging import get_logger
from ..observability.metrics import Metrics
from ..presence.base import PresenceStore
from ..protocol.events import EventTypes
from ..protocol.requests import ClientPublish, JoinRequest, LeaveRequest, LockRequest, UnlockRequest
from .names import RoomKinds, RoomRef
from .policy import JoinContext, JoinHook, JoinProxy, can_join
from .publish import Publisher, PublishProxy, client_key, write_guard


class PlatformEvents(Protocol):
    """Where what the platform hears of is recorded (integration/webhook_events.py)."""

    async def client_event(self, publication: Publication) -> None: ...

    async def presence(self, change: PresenceChange) -> None: ...


class RoomService:
    def __init__(
        self,
        *,
        broker: Broker,
        presence: PresenceStore,
        hub: LocalHub,
        kinds: RoomKinds,
        event_types: EventTypes,
        verifier: TokenVerifier,
        metrics: Metrics,
        client_publishable: frozenset[str],
        max_rooms: int,
        history_page: int,
        lease_ttl_ms: int,
        lease_max_ttl_ms: int,
        join_hook: JoinHook | None = None,
        webhooks: PlatformEvents | None = None,
        join_proxy: JoinProxy | None = None,
        publish_proxy: PublishProxy | None = None,
    ) -> None:
        self._broker = broker
        self._presence = presence
        self._hub = hub
        self._publisher = Publisher(broker, event_types, metrics)
        self._kinds = kinds
        self._types = event_types
        self._verifier = verifier
        self._metrics = metrics
        self._publishable = client_publishable
        self._max_rooms = max_rooms
        self._history_page = history_page
        self._lease_ttl = lease_ttl_ms
        self._lease_max_ttl = lease_max_ttl_ms
        self._hook = join_hook
        self._webhooks = webhooks
        self._join_proxy = join_proxy
        self._publish_proxy = publish_proxy
        self._log = get_logger()

    @property
    def kinds(self) -> RoomKinds:
        return self._kinds

    # join ------------------------------------------------------------------------

    async def authorize(self, conn: Connection, room: RoomRef, room_token: str | None) -> None:
        identity = conn.identity
        token_ok = bool(room_token) and self._verifier.is_room_token_valid(
            room_token or "", identity.user_id, room.name
        )
        bound = await self._broker.binding(room.name) if room.kind.bindable else None
        ctx = JoinContext(room_token_valid=token_ok, bound_project=bound)
        if not await can_join(identity, room, ctx, self._hook, self._join_proxy):
            raise Forbidden(f"not allowed to join {room.name}")

    async def join(self, conn: Connection, request: JoinRequest, *, implicit: bool = False) -> JSON:
        """Join (or re-join to replay) a room; see SPEC section 4 for the ack.

        `implicit`: the server's own join (the user room, at connect), whose ack no
        client reads; the room's position is then not read from the broker (one Lua
        call fewer per connect) and every event parked meanwhile is delivered.
        """
        room = self._kinds.parse(request.room)
        rejoin = room.name in conn.rooms
        if not rejoin:
            joined = sum(1 for r in conn.rooms if self._kinds.parse(r).kind.counts_toward_max_rooms)
            if room.kind.counts_toward_max_rooms and joined >= self._max_rooms:
                raise TooManyRooms(f"at most {self._max_rooms} rooms per connection")
            await self.authorize(conn, room, request.token)
            await self._hub.join(room.name, conn.sid)
        else:
            self._hub.add(room.name, conn.sid, catching_up=True)
        ack: JSON | None = None
        try:
            ack = await self._catch_up(conn, room, request, implicit=implicit)
        finally:
            if ack is None and not rejoin:
                await self._hub.leave(room.name, conn.sid)
            elif ack is None:
                # A failed replay leaves the member live: it may ask again.
                self._hub.hand_over(room.name, conn.sid, 0)
        conn.rooms.add(room.name)
        if conn.forgotten:
            # The connection closed while this join ran, and its cleanup, which
            # undoes every room it held, has run already: this room is undone here.
            await self.drop_membership(conn, room.name)
        self._metrics.rooms.set(self._hub.room_count())
        return ack

    async def _catch_up(
        self, conn: Connection, room: RoomRef, request: JoinRequest, *, implicit: bool = False
    ) -> JSON:
        """Replay, gather the snapshot, then switch the member to live delivery.

        Every await happens before the switch (`LocalHub.hand_over`), and the switch
        and the ack go out without one: the hub's replay-to-live invariant.
        """
        name = room.name
        since = request.since
        replayed = 0
        recovered = True
        if since is None and implicit:
            epoch, last = "", 0
        elif since is None:
            position = await self._broker.position(name)
            epoch, last = position.epoch, position.seq
        else:
            epoch, last, recovered, replayed = await self._replay(
                conn, name, StreamPosition(since.epoch, since.seq)
            )
        presence: list[Member] = []
        arrived = announced = False
        try:
            if room.kind.presence:
                change, presence = await self._presence.arrive(
                    name, conn.identity.user_id, conn.identity.name, conn.sid
                )
                arrived = name not in conn.rooms  # a rejoin's entry was there already
                if change.is_visible:
                    await self._broker.publish_transient(name, "presence", change.to_wire())
                    announced = True
                    if self._webhooks is not None:
                        await self._webhooks.presence(change)
            locks = await self._broker.leases(name) if room.kind.has_leases else []
        except BaseException:
            if arrived:
                await self._take_back_arrival(conn, name, announced)
            raise
        # The switch: no await from here to the ack.
        last = self._hub.hand_over(name, conn.sid, last)
        return {
            "ok": True,
            "room": name,
            "epoch": epoch,
            "seq": last,
            "replayed": replayed,
            "recovered": recovered,
            "presence": [m.to_wire() for m in presence],
            "locks": [lease.to_wire() for lease in locks],
        }

    async def _take_back_arrival(self, conn: Connection, room: str, announced: bool) -> None:
        """Remove the presence entry of a join refused after adding it.

        The connection is not in the room (it is added on success only), so nothing
        else would remove the entry: the user would stay listed, and this instance's
        heartbeat would keep the entry alive. Members told of the arrival are told
        of the departure. If Redis fails here too, a warning says so, and the
        entry lasts until presence's own expiry or reaping removes it.
        """
        try:
            change = await self._presence.remove(room, conn.identity.user_id, conn.sid)
            if announced:
                await self.announce_departure(change)
        except RoomcastError as exc:
            self._log.warning("presence.take_back_failed", room=room, sid=conn.sid, code=exc.code)

    async def _replay(
        self, conn: Connection, room: str, since: StreamPosition
    ) -> tuple[str, int, bool, int]:
        """Send stored events after `since`; returns (epoch, last seq sent, recovered, count)."""
        last = since.seq
        replayed = 0
        while True:
            page = await self._broker.history(room, last, self._history_page)
            if replayed == 0 and not is_recoverable(since, page):
                return page.epoch, page.head, False, 0
            for publication in page.events:
                if not await self._hub.replay(conn.sid, publication):
                    # A slow consumer, being closed: it was not brought up to date.
                    self._metrics.replayed.inc(replayed)
                    return page.epoch, last, False, replayed
                last = publication.seq
                replayed += 1
            if not page.events or last >= page.head:
                self._metrics.replayed.inc(replayed)
                return page.epoch, last, True, replayed

    # leave -----------------------------------------------------------------------

    async def leave(self, conn: Connection, request: LeaveRequest) -> JSON:
        room = self._kinds.parse(request.room)
        if room.kind.private_to_user:
            raise Forbidden("the user room cannot be left")
        if room.name in conn.rooms:
            await self.drop_membership(conn, room.name)
        return {"ok": True}

    async def drop_membership(self, conn: Connection, room: str) -> None:
        """Take the connection out of a room: presence, its leases if last, the subscription."""
        conn.rooms.discard(room)
        self._hub.remove(room, conn.sid)
        try:
            await self.announce_departure(
                await self._presence.remove(room, conn.identity.user_id, conn.sid)
            )
        finally:
            await self._hub.release(room)
            self._metrics.rooms.set(self._hub.room_count())

    async def announce_departure(self, change: PresenceChange) -> None:
        """A user's last connection left a room (here, or on an instance found dead).

        Tell the room, and end the user's leases there: a lease outlives neither its
        holder's presence nor its instance.
        """
        if change.left is None:
            return
        await self._broker.publish_transient(change.room, "presence", change.to_wire())
        if self._webhooks is not None:
            await self._webhooks.presence(change)
        if self._kinds.parse(change.room).kind.has_leases:
            await self._broker.release_holder(change.room, change.left.user_id)

    # publish ---------------------------------------------------------------------

    async def publish(self, conn: Connection, event_type: str, request: ClientPublish) -> JSON:
        room = self._kinds.parse(request.room)
        if event_type not in self._publishable or self._types.get(event_type).server_only:
            raise Forbidden(f"clients may not publish {event_type}")
        if room.name not in conn.rooms:
            raise NotJoined(f"join {room.name} before publishing to it")
        identity = conn.identity
        clean = self._publisher.validate(room, event_type, request.data)
        if self._publish_proxy is not None:
            # Another user's lease refuses the write here already: the platform is not
            # asked to accept (and persist) an edit roomcast would then refuse.
            await self._check_lease(room, event_type, clean[0], identity.user_id)
            # Before sequencing, so a refusal or a failure uses up no client_event_id.
            replaced = await self._publish_proxy(
                identity, room.name, event_type, clean[0], request.client_event_id
            )
            if replaced is not None:
                # Checked like the client's own; the guard (versions, leases) is made from it.
                clean = self._publisher.validate(room, event_type, replaced)
        command = self._publisher.command(
            room,
            event_type,
            clean,
            actor=identity.actor(),
            user_id=identity.user_id,
            idempotency_key=client_key(identity.user_id, request.client_event_id),
            client_event_id=request.client_event_id,
        )
        outcome = await self._publisher.publish(command, "client")
        pub = outcome.publication
        if self._webhooks is not None:
            # A duplicate too: its first try may have failed to journal (same webhook id).
            await self._webhooks.client_event(pub)
        return {"ok": True, "id": pub.id, "epoch": pub.epoch, "seq": pub.seq}

    async def _check_lease(self, room: RoomRef, event_type: str, data: JSON, user_id: str) -> None:
        """The lease rule, ahead of the broker's own (which still decides, atomically)."""
        guard = write_guard(event_type, data, user_id)
        if guard is None or not room.kind.has_leases:
            return
        for lease in await self._broker.leases(room.name):
            if lease.annotation_id == guard.annotation_id:
                check_lease(guard, lease, int(time.time() * 1000))
                return
        check_lease(guard, None, int(time.time() * 1000))

    # leases ----------------------------------------------------------------------

    def _annotation_room(self, conn: Connection, room_name: str) -> RoomRef:
        room = self._kinds.parse(room_name)
        if not room.kind.has_leases:
            raise InvalidPayload("leases exist only in annotation rooms")
        if room.name not in conn.rooms:
            raise NotJoined(f"join {room.name} before locking in it")
        return room

    async def lock(self, conn: Connection, request: LockRequest) -> JSON:
        room = self._annotation_room(conn, request.room)
        ttl = min(request.ttl_ms or self._lease_ttl, self._lease_max_ttl)
        identity = conn.identity
        member = await self._presence.member(room.name, identity.user_id) or Member(
            identity.user_id, identity.name, 1
        )
        outcome = await self._broker.lock(room.name, request.annotation_id, member, ttl)
        lease = outcome.lease
        return {
            "ok": True,
            "annotation_id": lease.annotation_id,
            "fencing_token": lease.fencing_token,
            "expires_at": lease.expires_at,
        }

    async def unlock(self, conn: Connection, request: UnlockRequest) -> JSON:
        room = self._annotation_room(conn, request.room)
        await self._broker.unlock(room.name, request.annotation_id, conn.identity.user_id)
        return {"ok": True}
