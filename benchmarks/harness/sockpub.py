"""An open-loop Socket.IO publisher: clients emit the room's client event at a fixed rate.

The same schedule as `httppub` (publish *i* due at *i*/rate s, a due publish skipped
and counted when every publishing connection already has MAX_IN_FLIGHT unanswered),
but each publish is a client event on a joined WebSocket connection, acked by the
server. roomcast's is `annotation_update {room, data}` (SPEC section 4: a `create`
of a fresh annotation id, so that no optimistic-concurrency check refuses it); the
peers' is `publish {room, type: "annotation_update", data}`, broadcast to the room.
Either way the members receive `42["annotation_update", ...]` with the send time in
`data.annotation.attributes.stage` ("<tag>:<time_ns>"), which the probes read.
"""

from __future__ import annotations

import asyncio
import time

from .httppub import ANSWER_TIMEOUT_S, TICK_S, PublishTally
from .wsclient import CLIENT_EVENT, WsConn

MAX_IN_FLIGHT = 32  # unanswered client events per publishing connection
ROOMCAST_DIALECT, PEER_DIALECT = "roomcast", "peer"


def packet(dialect: str, room: bytes, annotation_id: str, stage: str) -> bytes:
    """The JSON array of one client publish (what follows `42<ack id>`)."""
    data = (
        f'{{"action":"create","annotation_id":"{annotation_id}","annotation":{{"label":"car",'
        f'"shape":{{"type":"point","x":1,"y":2}},"attributes":{{"stage":"{stage}"}}}}}}'
    ).encode()
    if dialect == ROOMCAST_DIALECT:
        return b'["' + CLIENT_EVENT.encode() + b'",{"room":"' + room + b'","data":' + data + b"}]"
    return (
        b'["publish",{"room":"' + room + b'","type":"' + CLIENT_EVENT.encode()
        + b'","data":' + data + b"}]"
    )  # fmt: skip


async def publish(
    conns: list[WsConn],
    dialect: str,
    total: int,
    duration: float,
    tag: str,
    phase: float,
    worker: int,
) -> PublishTally:
    """Emit `total` client publishes evenly over `duration`, round-robin over `conns`
    (each publishes into the room it joined); return once every one is answered or
    ANSWER_TIMEOUT_S passed (the rest count as errors)."""
    tally = PublishTally()
    if total <= 0 or not conns:
        tally.skipped = max(0, total)
        return tally
    for each in conns:
        assert each.acks is not None
        each.acks.ok = each.acks.errors = 0
        each.acks.error_samples = []
    rate = total / duration
    t0 = time.perf_counter() + phase / rate
    sent = 0
    turn = 0
    while sent < total:
        due = min(total, int((time.perf_counter() - t0) * rate) + 1)
        while sent < due:
            conn: WsConn | None = None
            for _ in range(len(conns)):
                candidate = conns[turn % len(conns)]
                turn += 1
                acks = candidate.acks
                if candidate.open and acks is not None and acks.in_flight < MAX_IN_FLIGHT:
                    conn = candidate
                    break
            if conn is None:
                tally.skipped += due - sent
                sent = due
                break
            stage = f"{tag}:{time.time_ns()}"
            conn.emit(packet(dialect, conn.room, f"{tag}-{worker}-{sent}", stage))
            sent += 1
        if sent < total:
            await asyncio.sleep(TICK_S)
    # acks arrive in the connections' read callbacks, which set nothing to await:
    # polled, every 10 ms, until none is awaited
    for _ in range(int(ANSWER_TIMEOUT_S / 0.01)):
        if not any(c.acks is not None and c.acks.in_flight > 0 and c.open for c in conns):
            break
        await asyncio.sleep(0.01)
    for conn in conns:
        acks = conn.acks
        assert acks is not None
        tally.ok += acks.ok
        tally.errors += acks.errors
        for sample in acks.error_samples:
            if len(tally.error_samples) < 3:
                tally.error_samples.append(sample)
        if acks.in_flight > 0:
            tally.errors += acks.in_flight
            if len(tally.error_samples) < 3:
                tally.error_samples.append(f"{acks.in_flight} acks missing")
            acks.in_flight = 0
    return tally
