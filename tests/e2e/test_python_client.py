"""RoomcastClient against a real server: resume, dedup, resync, leases, tokens."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from roomcast.client import RoomcastClient, RoomcastClientError
from tests.support.server import RunningServer, running_server, test_settings

ROOM = "annotation_pc"


def _client(server: RunningServer, user: str = "u1", **kwargs: Any) -> RoomcastClient:
    return RoomcastClient(
        server.url,
        lambda: server.token(user, rooms=[ROOM], projects=["p"]),
        initial_delay=0.05,
        max_delay=0.2,
        **kwargs,
    )


class Recorder:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.changed = asyncio.Event()

    def __call__(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        self.changed.set()

    async def until(self, count: int, timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            while len(self.events) < count:
                self.changed.clear()
                await self.changed.wait()


async def test_receives_resumes_after_server_disconnect_exactly_once_in_order() -> None:
    async with running_server(test_settings(connect_rate_per_address=0)) as server:
        client = _client(server)
        seen = Recorder()
        client.on("project_progress_update", seen)
        try:
            await client.connect()
            await client.join("project_p")
            published: list[int] = []

            async def publish(n: int) -> None:
                for i in range(n):
                    pub = await server.runtime.broadcast.project_progress("p", completed=i, total=n)
                    published.append(pub.seq)
                    await asyncio.sleep(0.005)  # a steady stream, so the drop lands mid-way

            publisher = asyncio.create_task(publish(200))
            await seen.until(20)
            async with httpx.AsyncClient(base_url=server.url, headers=server.api_headers) as http:
                r = await http.post("/api/v1/users/u1/disconnect", json={"reason": "test"})
                assert r.status_code == 200
            await publisher
            await seen.until(len(published))
            assert [e["seq"] for e in seen.events] == published == list(range(1, 201))
            assert client.connections >= 2  # it did reconnect
        finally:
            await client.close()


async def test_publish_conflict_and_idempotent_retry(server: RunningServer) -> None:
    client = _client(server)
    seen = Recorder()
    client.on("annotation_update", seen)
    try:
        await client.connect()
        await client.join(ROOM)
        data = {
            "action": "create",
            "annotation_id": "a1",
            "annotation": {"label": "car", "shape": {"type": "point", "x": 1, "y": 2}},
        }
        first = await client.publish("annotation_update", ROOM, data, client_event_id="fixed-1")
        again = await client.publish("annotation_update", ROOM, data, client_event_id="fixed-1")
        assert again == first
        with pytest.raises(RoomcastClientError) as exc:
            await client.publish("annotation_update", ROOM, data)
        assert exc.value.code == "conflict" and exc.value.details["current_version"] == 1
        await seen.until(1)
        assert len(seen.events) == 1
    finally:
        await client.close()


async def test_lease_is_renewed_until_unlock() -> None:
    async with running_server(test_settings(lease_ttl_ms=400)) as server:
        holder, other = _client(server, "ann"), _client(server, "bob")
        try:
            await holder.connect()
            await other.connect()
            await holder.join(ROOM)
            await other.join(ROOM)
            locks = Recorder()
            other.on("annotation_lock", locks)
            ack = await holder.lock(ROOM, "a1", ttl_ms=400)
            await locks.until(4, timeout=5)  # the grant, then renewals every 200 ms
            assert {e["data"]["state"] for e in locks.events} == {"locked"}
            assert {e["data"]["fencing_token"] for e in locks.events} == {ack["fencing_token"]}
            with pytest.raises(RoomcastClientError) as exc:
                await other.lock(ROOM, "a1")
            assert exc.value.code == "locked"
            await holder.unlock(ROOM, "a1")
            assert (await other.lock(ROOM, "a1"))["fencing_token"] == ack["fencing_token"] + 1
        finally:
            await holder.close()
            await other.close()


async def test_token_provider_is_asked_again_after_expiry(server: RunningServer) -> None:
    issued: list[float] = []

    def provider() -> str:
        issued.append(asyncio.get_running_loop().time())
        return server.token("u1", projects=["p"], ttl_seconds=2 if len(issued) == 1 else 600)

    reconnected = asyncio.Event()
    states: list[str] = []

    def on_change(state: str) -> None:
        states.append(state)
        if states.count("connected") >= 2:
            reconnected.set()

    client = RoomcastClient(
        server.url, provider, initial_delay=0.05, max_delay=0.2, on_connection_change=on_change
    )
    seen = Recorder()
    client.on("project_progress_update", seen)
    try:
        await client.connect()
        await client.join("project_p")
        await server.runtime.broadcast.project_progress("p", completed=1, total=2)
        await asyncio.wait_for(reconnected.wait(), 10)  # after token_expired, a new token
        await server.runtime.broadcast.project_progress("p", completed=1, total=2)
        assert len(issued) >= 2
        count = len(seen.events)
        await server.runtime.broadcast.project_progress("p", completed=2, total=2)
        await seen.until(count + 1)
        seqs = [e["seq"] for e in seen.events]
        assert seqs == list(range(1, len(seqs) + 1))
    finally:
        await client.close()


async def test_resync_is_called_when_history_is_gone() -> None:
    async with running_server(test_settings(history_size=2)) as server:
        resyncs: list[tuple[str, dict[str, Any]]] = []
        resynced = asyncio.Event()

        def on_resync(room: str, position: dict[str, Any]) -> None:
            resyncs.append((room, position))
            resynced.set()

        client = _client(server, on_resync=on_resync)
        try:
            await client.connect()
            await client.join("project_p")
            await server.runtime.broadcast.project_progress("p", completed=1, total=9)
            seen = Recorder()
            client.on("project_progress_update", seen)
            await seen.until(1)
            await client._sio.disconnect()  # type: ignore[union-attr]
            for i in range(5):  # more than the history keeps, while it is away
                await server.runtime.broadcast.project_progress("p", completed=i, total=9)
            await asyncio.wait_for(resynced.wait(), 10)
            assert resyncs[0][0] == "project_p" and resyncs[0][1]["seq"] == 6
        finally:
            await client.close()
