"""LocalHub's own parts beside the fan-out: the subscription it drives, and replay pacing."""

from __future__ import annotations

import asyncio

import pytest

from roomcast.hub import hub as hub_module
from roomcast.hub.hub import LocalHub
from tests.unit.test_fanout import ROOM, RecordingOutlet, pub


class RecordingBroker:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def subscribe(self, room: str) -> None:
        self.calls.append(("subscribe", room))

    async def unsubscribe(self, room: str) -> None:
        self.calls.append(("unsubscribe", room))


def make_hub(outlet: RecordingOutlet, slow: list[str], broker: RecordingBroker) -> LocalHub:
    return LocalHub(
        outlet,
        on_slow_consumer=slow.append,
        on_control=lambda message: None,
        on_delivered=lambda event, n: None,
        subscriber=broker,
    )


async def test_the_first_member_subscribes_and_the_last_unsubscribes() -> None:
    broker = RecordingBroker()
    hub = make_hub(RecordingOutlet(), [], broker)
    await hub.join(ROOM, "s1")
    await hub.join(ROOM, "s2")
    await hub.leave(ROOM, "s1")
    assert broker.calls == [("subscribe", ROOM)]
    await hub.leave(ROOM, "s2")
    assert broker.calls == [("subscribe", ROOM), ("unsubscribe", ROOM)]
    assert hub.size() == 0


async def test_a_replay_past_the_bound_waits_for_the_backlog_to_drain() -> None:
    outlet = RecordingOutlet()
    outlet.capacity["s1"] = 2
    slow: list[str] = []
    hub = make_hub(outlet, slow, RecordingBroker())
    assert await hub.replay("s1", pub(1))
    assert await hub.replay("s1", pub(2))
    third = asyncio.create_task(hub.replay("s1", pub(3)))
    await asyncio.sleep(0)  # one step of the task: no await before it waits for the drain
    assert "s1" in outlet.waiting
    assert len(outlet.queues["s1"]) == 2  # nothing pushed past the bound
    outlet.drain("s1")
    outlet.drained("s1")
    assert await third
    assert [p.payload["seq"] for p in outlet.queues["s1"]] == [3]
    assert slow == []


async def test_a_replay_that_never_drains_is_a_slow_consumer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(hub_module, "REPLAY_DRAIN_SECONDS", 0.05)
    outlet = RecordingOutlet()
    outlet.capacity["s1"] = 1
    slow: list[str] = []
    hub = make_hub(outlet, slow, RecordingBroker())
    assert await hub.replay("s1", pub(1))
    assert not await hub.replay("s1", pub(2))
    assert slow == ["s1"]
    assert len(outlet.queues["s1"]) == 1
