"""Churn leaves nothing behind in the instance's tables (SPEC section 9, memory)."""

from __future__ import annotations

import asyncio

from tests.support.server import RunningServer, running_server, test_settings


async def test_connect_join_leave_disconnect_churn_leaves_tables_at_baseline() -> None:
    async with running_server(test_settings(connect_rate_per_address=0)) as server:
        await _churn(server)


async def _churn(server: RunningServer) -> None:
    runtime = server.runtime
    baseline = runtime.leak_check()
    rooms = ["annotation_c1", "detection_stream_c2", "project_c3"]

    async def cycle(n: int) -> None:
        client = await server.client(f"user{n % 7}", rooms=rooms[:2], projects=["c3"])
        try:
            for room in rooms:
                assert (await client.call("join", {"room": room}))["ok"]
            if n % 2:
                await client.call("lock", {"room": "annotation_c1", "annotation_id": f"a{n}"})
                await client.call("leave", {"room": rooms[n % 3]})
        finally:
            await client.close()

    for batch in range(10):
        await asyncio.gather(*(cycle(batch * 20 + i) for i in range(20)))

    # The server handles each disconnect after the client has gone.
    await asyncio.wait_for(runtime.gateway.connections.wait_empty(), 5)
    assert runtime.leak_check() == baseline
    assert await runtime.broker.leases("annotation_c1") == []
    assert await runtime.presence.members("annotation_c1") == []
