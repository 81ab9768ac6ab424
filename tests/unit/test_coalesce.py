"""PublishCoalescer: batching of concurrent publishes, overflow, shutdown (no I/O)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from roomcast.brokers.base import PublishCommand, PublishOutcome, PublishResult
from roomcast.brokers.coalesce import PublishCoalescer
from roomcast.domain import Publication
from roomcast.errors import BrokerUnavailable, Conflict, RoomcastError


def command(n: int, room: str = "project_a") -> PublishCommand:
    return PublishCommand(room=room, type="t", data={"n": n})


class Writer:
    """A batch writer that records its batches; `hold` keeps a batch in flight."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.hold: asyncio.Event | None = None
        self.started = asyncio.Event()

    async def __call__(self, commands: Sequence[PublishCommand]) -> list[PublishResult]:
        self.batches.append([c.data["n"] for c in commands])
        self.started.set()
        if self.hold is not None:
            await self.hold.wait()
        results: list[PublishResult] = []
        for c in commands:
            if c.data["n"] < 0:
                results.append(Conflict("refused", current_version=1))
            else:
                pub = Publication("id", c.type, c.room, "e", c.data["n"], 0, c.data)
                results.append(PublishOutcome(pub))
        return results


async def test_calls_made_together_are_one_batch_in_call_order() -> None:
    writer = Writer()
    coalescer = PublishCoalescer(writer)
    outcomes = await asyncio.gather(*(coalescer.publish(command(n)) for n in range(10)))
    assert writer.batches == [list(range(10))]
    assert [o.publication.seq for o in outcomes] == list(range(10))
    await coalescer.aclose()


async def test_calls_made_while_a_batch_is_written_go_in_the_next() -> None:
    writer = Writer()
    writer.hold = asyncio.Event()
    coalescer = PublishCoalescer(writer)
    first = asyncio.create_task(coalescer.publish(command(0)))
    await writer.started.wait()
    later = [asyncio.create_task(coalescer.publish(command(n))) for n in (1, 2)]
    many = asyncio.create_task(coalescer.publish_many([command(3), command(-1), command(4)]))
    await asyncio.sleep(0)  # let them queue: nothing to await until the batch is let go
    writer.hold.set()
    await asyncio.gather(first, *later, many)
    assert writer.batches == [[0], [1, 2, 3, -1, 4]]
    results = many.result()
    assert isinstance(results[0], PublishOutcome) and isinstance(results[1], Conflict)
    await coalescer.aclose()


async def test_an_event_refused_raises_for_its_caller_only() -> None:
    coalescer = PublishCoalescer(Writer())
    ok, refused = await asyncio.gather(
        coalescer.publish(command(1)), coalescer.publish(command(-1)), return_exceptions=True
    )
    assert isinstance(ok, PublishOutcome) and isinstance(refused, Conflict)
    await coalescer.aclose()


async def test_overflow_fails_fast_as_unavailable() -> None:
    writer = Writer()
    writer.hold = asyncio.Event()
    coalescer = PublishCoalescer(writer, max_pending=3)
    first = asyncio.create_task(coalescer.publish(command(0)))
    await writer.started.wait()  # that one is in flight, no longer pending
    waiting = asyncio.create_task(coalescer.publish_many([command(1), command(2), command(3)]))
    await asyncio.sleep(0)
    assert coalescer.pending == 3
    with pytest.raises(BrokerUnavailable):
        await coalescer.publish(command(4))
    writer.hold.set()
    await asyncio.gather(first, waiting)
    await coalescer.aclose()


async def test_a_failing_writer_reaches_every_caller() -> None:
    async def broken(commands: Sequence[PublishCommand]) -> list[PublishResult]:
        raise ValueError("bug")

    coalescer = PublishCoalescer(broken)
    results = await asyncio.gather(
        coalescer.publish(command(1)), coalescer.publish(command(2)), return_exceptions=True
    )
    assert all(isinstance(r, RoomcastError) and "bug" in str(r) for r in results)
    await coalescer.aclose()


async def test_close_fails_what_is_in_flight_and_what_waits() -> None:
    writer = Writer()
    writer.hold = asyncio.Event()  # never set: the batch would hang without aclose
    coalescer = PublishCoalescer(writer)
    in_flight = asyncio.create_task(coalescer.publish(command(0)))
    await writer.started.wait()
    queued = asyncio.create_task(coalescer.publish(command(1)))
    await asyncio.sleep(0)
    await coalescer.aclose()
    for task in (in_flight, queued):
        with pytest.raises(BrokerUnavailable):
            await task
    with pytest.raises(BrokerUnavailable):
        await coalescer.publish(command(2))
