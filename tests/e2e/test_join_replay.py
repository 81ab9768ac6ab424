"""join with `since`: replay, the replay-to-live switch, epochs (SPEC section 4)."""

from __future__ import annotations

import asyncio

from tests.support.server import Client, RunningServer, running_server, test_settings

ROOM = "detection_stream_t9"


def _detection(frame: int) -> dict[str, object]:
    return {
        "frame_id": f"f{frame}",
        "detections": [{"label": "car", "score": 0.9, "bbox": [1, 2, 3, 4]}],
    }


async def _publish(server: RunningServer, count: int, start: int = 0) -> list[int]:
    seqs = []
    for i in range(count):
        published = await server.runtime.broadcast.publish(
            ROOM, "detection_event", _detection(start + i)
        )
        seqs.append(published.seq)
    return seqs


def _seqs(client: Client, event: str = "detection_event") -> list[int]:
    return [data["seq"] for name, data in client.log if name == event]


async def test_join_without_since_reports_head_and_no_replay(server: RunningServer) -> None:
    await _publish(server, 3)
    client = await server.client("u1", rooms=[ROOM])
    try:
        ack = await client.call("join", {"room": ROOM})
        assert ack["ok"] and ack["seq"] == 3 and ack["replayed"] == 0 and ack["recovered"]
        await _publish(server, 1, start=3)
        event = await client.next("detection_event")
        assert event["seq"] == 4 and event["epoch"] == ack["epoch"]
        assert _seqs(client) == [4]
    finally:
        await client.close()


async def test_empty_room_has_an_epoch_and_seq_zero(server: RunningServer) -> None:
    client = await server.client("u1", rooms=[ROOM])
    try:
        ack = await client.call("join", {"room": ROOM})
        assert ack["seq"] == 0 and isinstance(ack["epoch"], str) and ack["epoch"]
        first = await _publish(server, 1)
        assert first == [1]
        assert (await client.next("detection_event"))["epoch"] == ack["epoch"]
    finally:
        await client.close()


async def test_since_replays_missed_events_in_order(server: RunningServer) -> None:
    client = await server.client("u1", rooms=[ROOM])
    try:
        first = await client.call("join", {"room": ROOM})
        await client.call("leave", {"room": ROOM})
        await _publish(server, 5)
        ack = await client.call(
            "join", {"room": ROOM, "since": {"epoch": first["epoch"], "seq": 2}}
        )
        assert ack["ok"] and ack["recovered"] is True
        assert ack["replayed"] == 3 and ack["seq"] == 5
        assert _seqs(client) == [3, 4, 5]
    finally:
        await client.close()


async def test_rejoin_with_since_is_how_a_client_asks_for_replay(server: RunningServer) -> None:
    client = await server.client("u1", rooms=[ROOM])
    try:
        ack = await client.call("join", {"room": ROOM})
        await _publish(server, 2)
        await client.next("detection_event")
        await client.next("detection_event")
        again = await client.call(
            "join", {"room": ROOM, "since": {"epoch": ack["epoch"], "seq": 0}}
        )
        assert again["ok"] and again["replayed"] == 2
        assert _seqs(client) == [1, 2, 1, 2]
    finally:
        await client.close()


async def test_unknown_epoch_is_not_recovered_and_replays_nothing(server: RunningServer) -> None:
    await _publish(server, 4)
    client = await server.client("u1", rooms=[ROOM])
    try:
        ack = await client.call("join", {"room": ROOM, "since": {"epoch": "other", "seq": 1}})
        assert ack["ok"] and ack["recovered"] is False and ack["replayed"] == 0
        assert ack["seq"] == 4
        await _publish(server, 1, start=4)
        assert (await client.next("detection_event"))["seq"] == 5
        assert _seqs(client) == [5]
    finally:
        await client.close()


async def test_history_that_no_longer_reaches_back_is_not_recovered() -> None:
    async with running_server(test_settings(history_size=3)) as server:
        client = await server.client("u1", rooms=[ROOM])
        try:
            first = await client.call("join", {"room": ROOM})
            await client.call("leave", {"room": ROOM})
            await _publish(server, 6)
            lost = await client.call(
                "join", {"room": ROOM, "since": {"epoch": first["epoch"], "seq": 1}}
            )
            assert lost["recovered"] is False and lost["replayed"] == 0 and lost["seq"] == 6
            kept = await client.call(
                "join", {"room": ROOM, "since": {"epoch": first["epoch"], "seq": 3}}
            )
            assert kept["recovered"] is True and kept["replayed"] == 3
            assert _seqs(client) == [4, 5, 6]
        finally:
            await client.close()


async def test_replay_to_live_switch_has_no_gap_or_duplicate_under_load() -> None:
    """A publisher runs throughout; clients join mid-stream with `since` and must see
    every seq after `since` exactly once, in order."""
    async with running_server(test_settings(history_size=5000)) as server:
        total = 600
        publisher_done = asyncio.Event()

        async def publisher() -> None:
            for i in range(total):
                await server.runtime.broadcast.publish(ROOM, "detection_event", _detection(i))
                if i % 5 == 0:
                    await asyncio.sleep(0)  # let joins interleave with publishing
            publisher_done.set()

        task = asyncio.create_task(publisher())
        clients: list[tuple[Client, int]] = []
        try:
            for n in range(6):
                client = await server.client(f"u{n}", rooms=[ROOM])
                position = await server.runtime.broker.position(ROOM)
                since = max(0, position.seq - 50)
                ack = await client.call(
                    "join", {"room": ROOM, "since": {"epoch": position.epoch, "seq": since}}
                )
                assert ack["ok"] and ack["recovered"], ack
                clients.append((client, since))
            await asyncio.wait_for(publisher_done.wait(), 30)
            for client, since in clients:
                async with asyncio.timeout(10):
                    while not _seqs(client) or _seqs(client)[-1] < total:
                        await client.next("detection_event")
                assert _seqs(client) == list(range(since + 1, total + 1))
        finally:
            task.cancel()
            for client, _ in clients:
                await client.close()


async def test_join_errors(server: RunningServer) -> None:
    client = await server.client("u1", projects=["p1"])
    try:
        bad_room = await client.call("join", {"room": "nonsense_1"})
        assert bad_room["error"]["code"] == "invalid_room"
        sid_room = await client.call("join", {"room": client.sio.sid})
        assert sid_room["error"]["code"] == "invalid_room"
        forbidden = await client.call("join", {"room": "project_p2"})
        assert forbidden["error"]["code"] == "forbidden"
        bad_since = await client.call("join", {"room": "project_p1", "since": {"seq": "x"}})
        assert bad_since["error"]["code"] == "invalid_payload"
        not_dict = await client.call("join", "project_p1")
        assert not_dict["error"]["code"] == "invalid_payload"
        ok = await client.call("join", {"room": "project_p1"})
        assert ok["ok"] is True
    finally:
        await client.close()


async def test_too_many_rooms_and_user_room_does_not_count() -> None:
    async with running_server(test_settings(max_rooms_per_connection=2)) as server:
        client = await server.client("u1", projects=["a", "b", "c"])
        try:
            assert (await client.call("join", {"room": "project_a"}))["ok"]
            assert (await client.call("join", {"room": "project_b"}))["ok"]
            refused = await client.call("join", {"room": "project_c"})
            assert refused["error"]["code"] == "too_many_rooms"
            assert (await client.call("join", {"room": "project_b"}))["ok"]  # rejoin is fine
            assert (await client.call("leave", {"room": "project_a"}))["ok"]
            assert (await client.call("join", {"room": "project_c"}))["ok"]
        finally:
            await client.close()


async def test_room_token_admits_only_its_user_and_room(server: RunningServer) -> None:
    from roomcast.auth.tokens import mint_room_token

    secret = server.settings.jwt_secret.get_secret_value()  # type: ignore[union-attr]
    client = await server.client("u1")
    try:
        wrong_user = mint_room_token(secret, "u2", "annotation_9")
        refused = await client.call("join", {"room": "annotation_9", "token": wrong_user})
        assert refused["error"]["code"] == "forbidden"
        wrong_room = mint_room_token(secret, "u1", "annotation_8")
        refused = await client.call("join", {"room": "annotation_9", "token": wrong_room})
        assert refused["error"]["code"] == "forbidden"
        good = mint_room_token(secret, "u1", "annotation_9")
        assert (await client.call("join", {"room": "annotation_9", "token": good}))["ok"]
    finally:
        await client.close()


async def test_join_hook_is_the_last_word() -> None:
    from roomcast import RoomRef
    from roomcast.domain import Identity

    async def hook(identity: Identity, room: RoomRef) -> bool:
        return identity.user_id == "friend" and room.kind.name == "annotation"

    async with running_server(join_hook=hook) as server:
        friend = await server.client("friend")
        stranger = await server.client("stranger")
        try:
            assert (await friend.call("join", {"room": "annotation_1"}))["ok"]
            refused = await stranger.call("join", {"room": "annotation_1"})
            assert refused["error"]["code"] == "forbidden"
        finally:
            await friend.close()
            await stranger.close()
