"""Events over Redis reach clients as SPEC 5's envelope, live and replayed, under both
Engine.IO engines: the broker frames the envelope text the Lua scripts stored
(`Publication.from_wire`, the outlets' `encode_json`) instead of encoding it again."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.test_http_api import api, detection_data
from tests.support.redis_procs import RedisServer, redis_server
from tests.support.server import running_server, test_settings

__all__ = ["redis_server"]  # imported so that pytest registers the fixture here

ROOM = "detection_stream_env1"
ENVELOPE_KEYS = {"id", "type", "room", "epoch", "seq", "ts", "actor", "client_event_id", "data"}


@pytest.mark.parametrize("engine", ["native", "python-socketio"])
async def test_live_and_replayed_envelopes_are_the_published_events(
    redis_server: RedisServer, engine: str
) -> None:
    settings = test_settings(redis_url=redis_server.url, key_prefix=f"env-{engine}", engine=engine)
    async with running_server(settings) as server:
        live = await server.client("viewer", rooms=[ROOM])
        late = await server.client("late", rooms=[ROOM])
        try:
            joined = await live.call("join", {"room": ROOM})
            assert joined["ok"], joined
            sent: list[dict[str, Any]] = []
            async with api(server) as http:
                for n in range(3):
                    data = {**detection_data(f"f{n}"), "model": 'mödel \u2603 "q"'}
                    body = {"room": ROOM, "type": "detection_event", "data": data}
                    r = await http.post("/api/v1/publish", json=body)
                    assert r.status_code == 200, r.text
                    sent.append({**r.json(), "data": data})
            received = [await live.next("detection_event") for _ in sent]
            replay = await late.call(
                "join", {"room": ROOM, "since": {"epoch": joined["epoch"], "seq": 0}}
            )
            assert replay["ok"] and replay["replayed"] == 3, replay
            replayed = [await late.next("detection_event") for _ in sent]
        finally:
            await live.close()
            await late.close()
    for envelopes in (received, replayed):
        assert [set(e) for e in envelopes] == [ENVELOPE_KEYS] * 3
        assert [(e["id"], e["seq"], e["epoch"]) for e in envelopes] == [
            (s["id"], s["seq"], s["epoch"]) for s in sent
        ]
        assert [e["data"] for e in envelopes] == [s["data"] for s in sent]
        assert {(e["room"], e["type"]) for e in envelopes} == {(ROOM, "detection_event")}
