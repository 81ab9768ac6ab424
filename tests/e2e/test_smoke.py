from __future__ import annotations

import httpx

from tests.support.server import RunningServer


async def test_published_event_reaches_joined_client(server: RunningServer) -> None:
    client = await server.client("u1", projects=["p1"])
    try:
        status = await client.next("connection_status")
        assert status["status"] == "connected"
        ack = await client.call("join", {"room": "project_p1"})
        assert ack["ok"] is True and ack["seq"] == 0
        async with httpx.AsyncClient(base_url=server.url, headers=server.api_headers) as http:
            r = await http.post(
                "/api/v1/publish",
                json={
                    "room": "project_p1",
                    "type": "project_progress_update",
                    "data": {"total": 10, "completed": 1, "percent": 10},
                },
            )
        assert r.status_code == 200, r.text
        event = await client.next("project_progress_update")
        assert event["seq"] == 1 and event["data"]["completed"] == 1
    finally:
        await client.close()
