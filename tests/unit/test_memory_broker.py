"""MemoryBroker, driven directly with a hand-held clock and a recording sink."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roomcast.brokers.base import BrokerSink, PublishCommand
from roomcast.brokers.memory import MemoryBroker
from roomcast.domain import JSON, Member, Publication
from roomcast.editing.rules import AnnotationWrite
from roomcast.errors import Conflict, Locked

ROOM = "annotation_s1"
ANN = Member("u1", "Ann", 1)
BOB = Member("u2", "Bob", 1)


class FakeClock:
    def __init__(self, now: float = 1_764_150_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RecordingSink:
    def __init__(self) -> None:
        self.publications: list[Publication] = []
        self.transients: list[tuple[str, str, JSON]] = []
        self.controls: list[JSON] = []

    def on_publication(self, publication: Publication) -> None:
        self.publications.append(publication)

    def on_transient(self, room: str, event: str, data: JSON) -> None:
        self.transients.append((room, event, data))

    def on_control(self, message: JSON) -> None:
        self.controls.append(message)


def make_broker(
    clock: FakeClock, *, history_size: int = 100, ttl: float = 3600, idem_ttl: float = 600
) -> tuple[MemoryBroker, RecordingSink]:
    broker = MemoryBroker(
        history_size=history_size,
        history_ttl_seconds=ttl,
        idempotency_ttl_seconds=idem_ttl,
        clock=clock,
    )
    sink = RecordingSink()
    sink_as_protocol: BrokerSink = sink
    broker.attach(sink_as_protocol)
    return broker, sink


def note(room: str = "user_u1", n: int = 0, **extra: Any) -> PublishCommand:
    return PublishCommand(room=room, type="notification", data={"title": f"n{n}"}, **extra)


def ann_write(
    action: str, base: int | None = None, user: str = "u1", fencing: int | None = None
) -> PublishCommand:
    data: JSON = {"action": action, "annotation_id": "a1", "base_version": base}
    return PublishCommand(
        room=ROOM,
        type="annotation_update",
        data=data,
        guard=AnnotationWrite("a1", action, base, user, fencing),
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# sequencing -------------------------------------------------------------------------------


async def test_seq_counts_per_room(clock: FakeClock) -> None:
    broker, _ = make_broker(clock)
    a = [(await broker.publish(note("user_a", i))).publication for i in range(3)]
    b = [(await broker.publish(note("user_b", i))).publication for i in range(2)]
    assert [p.seq for p in a] == [1, 2, 3]
    assert [p.seq for p in b] == [1, 2]
    assert len({p.epoch for p in a}) == 1
    assert len({p.epoch for p in b}) == 1
    assert [p.room for p in a + b] == ["user_a"] * 3 + ["user_b"] * 2


async def test_publication_fields(clock: FakeClock) -> None:
    broker, _ = make_broker(clock)
    outcome = await broker.publish(
        PublishCommand(
            room="user_u1",
            type="notification",
            data={"title": "hi"},
            actor={"user_id": "u9", "name": None},
            client_event_id="c-1",
        )
    )
    pub = outcome.publication
    assert outcome.duplicate is False
    assert (pub.room, pub.type, pub.data, pub.seq) == (
        "user_u1",
        "notification",
        {"title": "hi"},
        1,
    )
    assert pub.actor == {"user_id": "u9", "name": None}
    assert pub.client_event_id == "c-1"
    assert pub.ts == int(clock.now * 1000)
    assert len(pub.id) == 26


async def test_event_ids_are_unique_and_sortable(clock: FakeClock) -> None:
    broker, _ = make_broker(clock)
    ids = []
    for i in range(20):
        ids.append((await broker.publish(note(n=i))).publication.id)
        clock.advance(0.002)
    assert len(set(ids)) == 20
    assert ids == sorted(ids)


async def test_position_of_a_new_room(clock: FakeClock) -> None:
    broker, _ = make_broker(clock)
    first = await broker.position("project_p1")
    assert first.seq == 0
    assert first.epoch
    assert await broker.position("project_p1") == first
    pub = (await broker.publish(note("project_p1"))).publication
    assert pub.epoch == first.epoch
    assert (await broker.position("project_p1")).seq == 1


# history ---------------------------------------------------------------------------------


async def test_history_after_a_position(clock: FakeClock) -> None:
    broker, _ = make_broker(clock)
    pubs = [(await broker.publish(note(n=i))).publication for i in range(5)]
    page = await broker.history("user_u1", since_seq=2, limit=100)
    assert page.epoch == pubs[0].epoch
    assert page.head == 5
    assert page.complete is True
    assert [p.seq for p in page.events] == [3, 4, 5]
    assert page.events == tuple(pubs[2:])


async def test_history_limit_pages(clock: FakeClock) -> None:
    broker, _ = make_broker(clock)
    for i in range(5):
        await broker.publish(note(n=i))
    first = await broker.history("user_u1", since_seq=0, limit=2)
    second = await broker.history("user_u1", since_seq=first.events[-1].seq, limit=2)
    third = await broker.history("user_u1", since_seq=second.events[-1].seq, limit=2)
    assert [[p.seq for p in page.events] for page in (first, second, third)] == [
        [1, 2],
        [3, 4],
        [5],
    ]
    assert all(page.complete and page.head == 5 for page in (first, second, third))


async def test_history_at_or_past_head_is_empty_and_complete(clock: FakeClock) -> None:
    broker, _ = make_broker(clock)
    await broker.publish(note())
    for since in (1, 7):
        page = await broker.history("user_u1", since_seq=since, limit=10)
        assert (page.events, page.complete, page.head) == ((), True, 1)


async def test_history_is_bounded_and_drops_the_oldest(clock: FakeClock) -> None:
    broker, _ = make_broker(clock, history_size=3)
    for i in range(7):
        await broker.publish(note(n=i))
    reachable = await broker.history("user_u1", since_seq=4, limit=10)
    assert [p.seq for p in reachable.events] == [5, 6, 7]
    assert reachable.complete is True
    lost = await broker.history("user_u1", since_seq=3, limit=10)
    assert lost.complete is False
    assert [p.seq for p in lost.events] == [5, 6, 7]
    assert lost.head == 7
    from_start = await broker.history("user_u1", since_seq=0, limit=2)
    assert from_start.complete is False
    assert [p.seq for p in from_start.events] == [5, 6]


@settings(max_examples=60)
@given(
    size=st.integers(min_value=1, max_value=8),
    count=st.integers(min_value=0, max_value=20),
    data=st.data(),
)
def test_history_pages_hold_exactly_what_is_stored(
    size: int, count: int, data: st.DataObject
) -> None:
    since = data.draw(st.integers(min_value=0, max_value=count + 2), label="since")
    limit = data.draw(st.integers(min_value=1, max_value=10), label="limit")

    async def scenario() -> None:
        broker, _ = make_broker(FakeClock(), history_size=size)
        for i in range(count):
            await broker.publish(note(n=i))
        page = await broker.history("user_u1", since_seq=since, limit=limit)
        oldest = max(1, count - size + 1)
        assert page.head == count
        if since >= count:
            assert page.events == ()
            assert page.complete is True
            return
        assert page.complete is (since + 1 >= oldest)
        first = since + 1 if page.complete else oldest
        expected = list(range(first, min(count, first + limit - 1) + 1))
        assert [p.seq for p in page.events] == expected
        assert [p.data["title"] for p in page.events] == [f"n{s - 1}" for s in expected]

    asyncio.run(scenario())


# TTL and epochs ---------------------------------------------------------------------------


async def test_idle_room_gets_a_new_epoch_and_restarts(clock: FakeClock) -> None:
    broker, _ = make_broker(clock, ttl=60)
    old = [(await broker.publish(note(n=i))).publication for i in range(3)]
    clock.advance(61)
    new = (await broker.publish(note(n=9))).publication
    assert new.epoch != old[0].epoch
    assert new.seq == 1
    page = await broker.history("user_u1", since_seq=0, limit=10)
    assert [p.id for p in page.events] == [new.id]
    assert page.epoch == new.epoch


async def test_activity_within_ttl_keeps_the_epoch(clock: FakeClock) -> None:
    broker, _ = make_broker(clock, ttl=60)
    first = (await broker.publish(note())).publication
    for _ in range(5):
        clock.advance(50)
        pub = (await broker.publish(note())).publication
        assert pub.epoch == first.epoch
    assert pub.seq == 6


async def test_position_counts_as_activity(clock: FakeClock) -> None:
    broker, _ = make_broker(clock, ttl=60)
    first = (await broker.publish(note())).publication
    clock.advance(50)
    assert (await broker.position("user_u1")).epoch == first.epoch
    clock.advance(50)
    assert (await broker.publish(note())).publication.epoch == first.epoch


@settings(max_examples=40)
@given(gaps=st.lists(st.sampled_from([0.0, 1.0, 30.0, 61.0, 500.0]), min_size=1, max_size=40))
def test_epoch_seq_pairs_never_repeat(gaps: list[float]) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        broker, _ = make_broker(clock, ttl=60, history_size=5)
        seen: set[tuple[str, int]] = set()
        last: tuple[str, int] | None = None
        for gap in gaps:
            clock.advance(gap)
            pub = (await broker.publish(note())).publication
            assert (pub.epoch, pub.seq) not in seen
            seen.add((pub.epoch, pub.seq))
            if last is not None and pub.epoch == last[0]:
                assert pub.seq == last[1] + 1
            else:
                assert pub.seq == 1
            last = (pub.epoch, pub.seq)

    asyncio.run(scenario())


async def test_sweep_forgets_idle_rooms_and_old_keys(clock: FakeClock) -> None:
    broker, _ = make_broker(clock, ttl=60, idem_ttl=30)
    await broker.publish(note("user_a", idempotency_key="k1"))
    await broker.publish(note("user_b"))
    await broker.subscribe("user_b")
    clock.advance(61)
    assert broker.sweep() == 2  # user_a's room and its key; user_b is subscribed
    assert broker.sweep() == 0


# delivery and idempotency --------------------------------------------------------------------


async def test_only_subscribed_rooms_are_delivered(clock: FakeClock) -> None:
    broker, sink = make_broker(clock)
    await broker.publish(note("user_a", 0))
    await broker.subscribe("user_a")
    p1 = (await broker.publish(note("user_a", 1))).publication
    await broker.publish(note("user_b", 2))
    await broker.unsubscribe("user_a")
    await broker.publish(note("user_a", 3))
    assert sink.publications == [p1]


async def test_idempotency_key_returns_the_first_outcome_and_delivers_once(
    clock: FakeClock,
) -> None:
    broker, sink = make_broker(clock)
    await broker.subscribe("user_u1")
    first = await broker.publish(note(n=1, idempotency_key="api:k1"))
    clock.advance(5)
    again = await broker.publish(note(n=2, idempotency_key="api:k1"))
    assert first.duplicate is False
    assert again.duplicate is True
    assert again.publication == first.publication
    assert sink.publications == [first.publication]
    assert (await broker.position("user_u1")).seq == 1


async def test_idempotency_is_per_room(clock: FakeClock) -> None:
    broker, _ = make_broker(clock)
    a = await broker.publish(note("user_a", idempotency_key="k"))
    b = await broker.publish(note("user_b", idempotency_key="k"))
    assert b.duplicate is False
    assert a.publication.id != b.publication.id


async def test_idempotency_key_expires(clock: FakeClock) -> None:
    broker, sink = make_broker(clock, idem_ttl=600)
    await broker.subscribe("user_u1")
    await broker.publish(note(idempotency_key="k"))
    clock.advance(599)
    assert (await broker.publish(note(idempotency_key="k"))).duplicate is True
    clock.advance(1)
    later = await broker.publish(note(idempotency_key="k"))
    assert later.duplicate is False
    assert later.publication.seq == 2
    assert [p.seq for p in sink.publications] == [1, 2]


async def test_transient_and_control(clock: FakeClock) -> None:
    broker, sink = make_broker(clock)
    await broker.publish_transient("project_p1", "presence", {"count": 1})
    await broker.subscribe("project_p1")
    await broker.publish_transient("project_p1", "presence", {"count": 2})
    await broker.publish_control({"disconnect": "u1"})
    assert sink.transients == [("project_p1", "presence", {"count": 2})]
    assert sink.controls == [{"disconnect": "u1"}]
    assert (await broker.position("project_p1")).seq == 0  # never stored


async def test_bindings(clock: FakeClock) -> None:
    broker, _ = make_broker(clock)
    assert await broker.binding(ROOM) is None
    await broker.bind(ROOM, "p1")
    await broker.bind(ROOM, "p2")
    assert await broker.binding(ROOM) == "p2"


# annotation writes ---------------------------------------------------------------------------


async def test_annotation_writes_carry_versions(clock: FakeClock) -> None:
    broker, _ = make_broker(clock)
    created = (await broker.publish(ann_write("create"))).publication
    updated = (await broker.publish(ann_write("update", base=1))).publication
    deleted = (await broker.publish(ann_write("delete", base=2))).publication
    assert [p.data["version"] for p in (created, updated, deleted)] == [1, 2, 3]
    assert [p.seq for p in (created, updated, deleted)] == [1, 2, 3]
    assert created.data["action"] == "create"


async def test_refused_write_is_not_sequenced_or_delivered(clock: FakeClock) -> None:
    broker, sink = make_broker(clock)
    await broker.subscribe(ROOM)
    await broker.publish(ann_write("create"))
    for command in (ann_write("create"), ann_write("update", base=0), ann_write("update")):
        with pytest.raises(Conflict) as info:
            await broker.publish(command)
        assert info.value.details["current_version"] == 1
    assert (await broker.position(ROOM)).seq == 1
    assert len(sink.publications) == 1


async def test_update_after_delete_is_a_conflict(clock: FakeClock) -> None:
    broker, _ = make_broker(clock)
    await broker.publish(ann_write("create"))
    await broker.publish(ann_write("delete", base=1))
    with pytest.raises(Conflict) as info:
        await broker.publish(ann_write("update", base=2))
    assert info.value.details["current_version"] == 2


async def test_idempotent_write_is_applied_once(clock: FakeClock) -> None:
    broker, _ = make_broker(clock)
    await broker.publish(ann_write("create"))
    command = PublishCommand(
        room=ROOM,
        type="annotation_update",
        data={"action": "update", "annotation_id": "a1"},
        idempotency_key="u1:c-9",
        guard=AnnotationWrite("a1", "update", 1, "u1"),
    )
    first = await broker.publish(command)
    retry = await broker.publish(command)  # base 1 is stale now, but it is the same write
    assert retry.duplicate is True
    assert retry.publication == first.publication
    assert first.publication.data["version"] == 2


async def test_write_under_another_users_lease_is_locked(clock: FakeClock) -> None:
    broker, _ = make_broker(clock)
    await broker.publish(ann_write("create"))
    granted = await broker.lock(ROOM, "a1", BOB, ttl_ms=30_000)
    with pytest.raises(Locked) as info:
        await broker.publish(ann_write("update", base=1, user="u1"))
    assert info.value.details == {"holder": BOB.to_wire(), "expires_at": granted.lease.expires_at}
    ok = await broker.publish(
        ann_write("update", base=1, user="u2", fencing=granted.lease.fencing_token)
    )
    assert ok.publication.data["version"] == 2


async def test_stale_fencing_token_is_refused(clock: FakeClock) -> None:
    broker, _ = make_broker(clock)
    await broker.publish(ann_write("create"))
    old = (await broker.lock(ROOM, "a1", BOB, ttl_ms=1000)).lease
    clock.advance(2)
    new = (await broker.lock(ROOM, "a1", BOB, ttl_ms=1000)).lease
    assert new.fencing_token == old.fencing_token + 1
    with pytest.raises(Locked):
        await broker.publish(ann_write("update", base=1, user="u2", fencing=old.fencing_token))


@settings(max_examples=50)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["create", "update", "delete"]),
            st.sampled_from(["current", "stale", "missing"]),
        ),
        max_size=25,
    )
)
def test_version_equals_accepted_writes(steps: list[tuple[str, str]]) -> None:
    async def scenario() -> None:
        broker, sink = make_broker(FakeClock())
        await broker.subscribe(ROOM)
        version = 0
        for action, base_kind in steps:
            base = {"current": version, "stale": version - 1, "missing": None}[base_kind]
            try:
                outcome = await broker.publish(ann_write(action, base=base))
            except Conflict as exc:
                assert exc.details["current_version"] == version
                continue
            version += 1
            assert outcome.publication.data["version"] == version
        assert [p.data["version"] for p in sink.publications] == list(range(1, version + 1))
        assert [p.seq for p in sink.publications] == list(range(1, version + 1))

    asyncio.run(scenario())


# leases -------------------------------------------------------------------------------------


async def test_lock_publishes_a_locked_event(clock: FakeClock) -> None:
    broker, sink = make_broker(clock)
    await broker.subscribe(ROOM)
    outcome = await broker.lock(ROOM, "a1", ANN, ttl_ms=30_000)
    now_ms = int(clock.now * 1000)
    assert outcome.lease.fencing_token == 1
    assert outcome.lease.expires_at == now_ms + 30_000
    pub = outcome.publication
    assert pub.type == "annotation_lock"
    assert pub.seq == 1
    assert pub.data == {
        "annotation_id": "a1",
        "state": "locked",
        "holder": ANN.to_wire(),
        "fencing_token": 1,
        "expires_at": now_ms + 30_000,
    }
    assert sink.publications == [pub]
    assert await broker.leases(ROOM) == [outcome.lease]


async def test_renewal_keeps_the_token(clock: FakeClock) -> None:
    broker, _ = make_broker(clock)
    first = await broker.lock(ROOM, "a1", ANN, ttl_ms=30_000)
    clock.advance(10)
    again = await broker.lock(ROOM, "a1", ANN, ttl_ms=30_000)
    assert again.lease.fencing_token == first.lease.fencing_token
    assert again.lease.expires_at == first.lease.expires_at + 10_000
    assert again.publication.seq == 2


async def test_lock_held_by_another_user(clock: FakeClock) -> None:
    broker, _ = make_broker(clock)
    held = await broker.lock(ROOM, "a1", ANN, ttl_ms=30_000)
    with pytest.raises(Locked) as info:
        await broker.lock(ROOM, "a1", BOB, ttl_ms=30_000)
    assert info.value.details == {"holder": ANN.to_wire(), "expires_at": held.lease.expires_at}
    assert (await broker.position(ROOM)).seq == 1


async def test_fencing_tokens_increase_across_annotations_and_grants(clock: FakeClock) -> None:
    broker, _ = make_broker(clock)
    tokens = [
        (await broker.lock(ROOM, "a1", ANN, ttl_ms=1000)).lease.fencing_token,
        (await broker.lock(ROOM, "a2", ANN, ttl_ms=1000)).lease.fencing_token,
    ]
    await broker.unlock(ROOM, "a1", "u1")
    tokens.append((await broker.lock(ROOM, "a1", BOB, ttl_ms=1000)).lease.fencing_token)
    clock.advance(5)
    tokens.append((await broker.lock(ROOM, "a2", BOB, ttl_ms=1000)).lease.fencing_token)
    assert tokens == [1, 2, 3, 4]


async def test_unlock(clock: FakeClock) -> None:
    broker, sink = make_broker(clock)
    await broker.subscribe(ROOM)
    granted = await broker.lock(ROOM, "a1", ANN, ttl_ms=30_000)
    with pytest.raises(Locked):
        await broker.unlock(ROOM, "a1", "u2")
    released = await broker.unlock(ROOM, "a1", "u1")
    assert released is not None
    assert released.data["state"] == "released"
    assert released.data["fencing_token"] == granted.lease.fencing_token
    assert released.seq == 2
    assert await broker.leases(ROOM) == []
    assert await broker.unlock(ROOM, "a1", "u1") is None
    assert [p.data["state"] for p in sink.publications] == ["locked", "released"]


async def test_release_holder(clock: FakeClock) -> None:
    broker, _ = make_broker(clock)
    await broker.lock(ROOM, "a1", ANN, ttl_ms=30_000)
    await broker.lock(ROOM, "a2", ANN, ttl_ms=30_000)
    bob = await broker.lock(ROOM, "a3", BOB, ttl_ms=30_000)
    released = await broker.release_holder(ROOM, "u1")
    assert sorted(p.data["annotation_id"] for p in released) == ["a1", "a2"]
    assert {p.data["state"] for p in released} == {"released"}
    assert [p.seq for p in released] == [4, 5]
    assert await broker.leases(ROOM) == [bob.lease]
    assert await broker.release_holder(ROOM, "u1") == []
    assert await broker.release_holder("annotation_unknown", "u1") == []


async def test_expire_leases(clock: FakeClock) -> None:
    broker, sink = make_broker(clock)
    await broker.subscribe(ROOM)
    short = await broker.lock(ROOM, "a1", ANN, ttl_ms=1000)
    await broker.lock(ROOM, "a2", BOB, ttl_ms=60_000)
    assert await broker.expire_leases() == []
    clock.advance(1.0)
    released = await broker.expire_leases()
    assert [(p.data["annotation_id"], p.data["state"]) for p in released] == [("a1", "released")]
    assert released[0].data["fencing_token"] == short.lease.fencing_token
    assert [lease.annotation_id for lease in await broker.leases(ROOM)] == ["a2"]
    assert await broker.expire_leases() == []
    assert [p.seq for p in sink.publications] == [1, 2, 3]
    # The lease is free for someone else, under a new token.
    taken = await broker.lock(ROOM, "a1", BOB, ttl_ms=1000)
    assert taken.lease.fencing_token == 3


async def test_leases_lists_only_live_ones(clock: FakeClock) -> None:
    broker, _ = make_broker(clock)
    await broker.lock(ROOM, "a1", ANN, ttl_ms=1000)
    assert len(await broker.leases(ROOM)) == 1
    clock.advance(1)
    assert await broker.leases(ROOM) == []
    assert await broker.leases("annotation_unknown") == []


async def test_expired_lease_can_be_taken_by_another_user(clock: FakeClock) -> None:
    broker, _ = make_broker(clock)
    first = await broker.lock(ROOM, "a1", ANN, ttl_ms=1000)
    clock.advance(1)
    second = await broker.lock(ROOM, "a1", BOB, ttl_ms=1000)
    assert second.lease.holder == BOB
    assert second.lease.fencing_token == first.lease.fencing_token + 1


async def test_every_lease_end_is_announced_even_when_unlocked_after_expiry(
    clock: FakeClock,
) -> None:
    broker, sink = make_broker(clock)
    await broker.subscribe(ROOM)
    await broker.lock(ROOM, "a1", ANN, ttl_ms=1000)
    clock.advance(2)  # expired; the housekeeping sweep has not run yet
    await broker.unlock(ROOM, "a1", "u1")
    await broker.expire_leases()
    assert [p.data["state"] for p in sink.publications] == ["locked", "released"]


async def test_lifecycle(clock: FakeClock) -> None:
    broker, sink = make_broker(clock)
    await broker.start()
    await broker.ping()
    await broker.subscribe("user_u1")
    await broker.aclose()
    await broker.publish(note())
    assert sink.publications == []
