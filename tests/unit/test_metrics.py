"""The metrics' bookkeeping: what each histogram observes, and the memory gauges."""

from __future__ import annotations

import math
from typing import Any

import pytest

from roomcast.broadcast.service import EventBroadcastService
from roomcast.brokers.memory import MemoryBroker
from roomcast.brokers.redis_memory import parse_figure
from roomcast.domain import JSON, MemoryUsage, Publication
from roomcast.errors import BrokerUnavailable, InvalidPayload
from roomcast.hub.hub import LocalHub
from roomcast.observability.memory_gauge import RedisMemoryGauge
from roomcast.observability.metrics import Metrics
from roomcast.transport.health import Readiness

ROOM = "project_p1"
TYPE = "project_progress_update"
DATA = {"total": 10, "completed": 3, "percent": 30.0}


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


class NullOutlet:
    def encode(self, event: str, payload: JSON) -> Any:
        return payload

    def encode_json(self, event: str, payload_json: str) -> Any:
        return payload_json

    def push(self, sid: str, packet: Any, *, force: bool = False) -> bool:
        return True


def memory_broker() -> MemoryBroker:
    return MemoryBroker(history_size=100, history_ttl_seconds=300)


# the registry ------------------------------------------------------------------------


def test_the_registry_carries_process_gc_and_platform_collectors() -> None:
    text = Metrics().render().decode()
    for family in ("process_cpu_seconds_total", "python_gc_collections_total", "python_info"):
        assert f"\n{family}" in text


def test_two_applications_have_registries_of_their_own() -> None:
    first, second = Metrics(), Metrics()
    first.publish_timer("api").observe(0.001)
    assert sample(first, "roomcast_publish_latency_seconds_count", source="api") == 1
    assert sample(second, "roomcast_publish_latency_seconds_count", source="api") is None


def test_a_source_child_is_made_once() -> None:
    metrics = Metrics()
    assert metrics.publish_timer("api") is metrics.publish_timer("api")
    assert metrics.publish_timer("api") is not metrics.publish_timer("client")


def test_histogram_buckets_span_a_tenth_of_a_millisecond_to_ten_seconds() -> None:
    metrics = Metrics()
    metrics.fanout_lag.observe(0.00005)
    metrics.fanout_lag.observe(7.0)
    assert sample(metrics, "roomcast_fanout_lag_seconds_bucket", le="0.0001") == 1
    assert sample(metrics, "roomcast_fanout_lag_seconds_bucket", le="5.0") == 1
    assert sample(metrics, "roomcast_fanout_lag_seconds_bucket", le="10.0") == 2


# publish latency ---------------------------------------------------------------------


async def test_publish_observes_once_per_acknowledged_call_by_source() -> None:
    metrics = Metrics()
    service = EventBroadcastService(memory_broker(), metrics=metrics)
    for _ in range(3):
        await service.publish(ROOM, TYPE, DATA)
    await service.publish(ROOM, TYPE, DATA, source="ingest")
    with pytest.raises(InvalidPayload):
        await service.publish(ROOM, TYPE, {"total": "many"})
    assert sample(metrics, "roomcast_publish_latency_seconds_count", source="api") == 3
    assert sample(metrics, "roomcast_publish_latency_seconds_count", source="ingest") == 1
    total = sample(metrics, "roomcast_publish_latency_seconds_sum", source="api")
    assert total is not None and 0 < total < 1


async def test_a_duplicate_is_timed_but_not_counted_as_an_event() -> None:
    metrics = Metrics()
    service = EventBroadcastService(memory_broker(), metrics=metrics)
    await service.publish(ROOM, TYPE, DATA, idempotency_key="k1")
    await service.publish(ROOM, TYPE, DATA, idempotency_key="k1")
    assert sample(metrics, "roomcast_publish_latency_seconds_count", source="api") == 2
    assert sample(metrics, "roomcast_events_in_total", type=TYPE, source="api") == 1


async def test_publish_many_observes_once_per_batch() -> None:
    metrics = Metrics()
    service = EventBroadcastService(memory_broker(), metrics=metrics)
    event = {"room": ROOM, "type": TYPE, "data": DATA}
    await service.publish_many([event] * 50, source="worker")
    await service.publish_many([event, {"room": ROOM, "type": TYPE, "data": {}}], source="worker")
    await service.publish_many([{"room": "nope", "type": TYPE, "data": DATA}], source="worker")
    # The last batch had nothing the broker could take: nothing to time.
    assert sample(metrics, "roomcast_publish_latency_seconds_count", source="worker") == 2
    assert sample(metrics, "roomcast_events_in_total", type=TYPE, source="worker") == 51


async def test_without_metrics_nothing_is_observed() -> None:
    service = EventBroadcastService(memory_broker())
    assert (await service.publish(ROOM, TYPE, DATA)).seq == 1


# fan-out lag -------------------------------------------------------------------------


def publication(seq: int, ts: int) -> Publication:
    return Publication(id=f"e{seq}", type=TYPE, room=ROOM, epoch="ep", seq=seq, ts=ts, data=DATA)


def fanout_with_lags(now: float) -> tuple[LocalHub, list[float]]:
    lags: list[float] = []
    fanout = LocalHub(
        NullOutlet(),
        on_slow_consumer=lambda sid: None,
        on_control=lambda message: None,
        on_delivered=lambda event_type, count: None,
        observe_lag=lags.append,
        clock=lambda: now,
    )
    return fanout, lags


def test_fanout_lag_is_observed_once_per_event_whatever_the_recipients() -> None:
    fanout, lags = fanout_with_lags(now=1000.250)
    for sid in ("s1", "s2", "s3"):
        fanout.add(ROOM, sid, catching_up=False)
    fanout.add(ROOM, "s4", catching_up=True)  # parked during its replay: still one hand-over
    fanout.on_publication(publication(1, ts=1_000_000))
    fanout.on_publication(publication(2, ts=1_000_200))
    assert lags == pytest.approx([0.25, 0.05])


def test_an_event_for_no_local_member_is_not_observed() -> None:
    fanout, lags = fanout_with_lags(now=1000.0)
    fanout.on_publication(publication(1, ts=999_000))
    assert lags == []


def test_a_clock_behind_the_sequencer_gives_zero_not_a_negative_lag() -> None:
    fanout, lags = fanout_with_lags(now=999.0)
    fanout.add(ROOM, "s1", catching_up=False)
    fanout.on_publication(publication(1, ts=1_000_000))
    assert lags == [0.0]


# Redis round trip --------------------------------------------------------------------


class NotDraining:
    draining = False


class UnreachableBroker(MemoryBroker):
    async def ping(self) -> None:
        raise BrokerUnavailable("Redis unreachable: test")


async def test_each_successful_ping_of_the_probe_and_the_check_is_a_round_trip() -> None:
    trips: list[float] = []
    readiness = Readiness(memory_broker(), NotDraining(), "i1", observe_roundtrip=trips.append)
    await readiness.probe()
    await readiness.check()
    assert len(trips) == 2 and all(0 <= t < 1 for t in trips)
    unreachable = UnreachableBroker(history_size=1, history_ttl_seconds=1)
    failing = Readiness(unreachable, NotDraining(), "i1", observe_roundtrip=trips.append)
    await failing.probe()
    assert await failing.check() == "broker unavailable: Redis unreachable: test"
    assert len(trips) == 2


# the memory gauges -------------------------------------------------------------------


class FixedBroker(MemoryBroker):
    def __init__(self, usage: MemoryUsage) -> None:
        super().__init__(history_size=1, history_ttl_seconds=1)
        self.usage = usage
        self.failure: BrokerUnavailable | None = None
        self.periods: list[float] = []

    async def memory_usage(self, refresh_seconds: float) -> MemoryUsage | None:
        self.periods.append(refresh_seconds)
        if self.failure is not None:
            raise self.failure
        return self.usage


def gauges(metrics: Metrics) -> tuple[float | None, float | None]:
    return (
        sample(metrics, "roomcast_redis_used_memory_bytes"),
        sample(metrics, "roomcast_redis_maxmemory_bytes"),
    )


def test_the_gauges_are_nan_until_a_figure_is_known() -> None:
    used, limit = gauges(Metrics())
    assert used is not None and math.isnan(used)
    assert limit is not None and math.isnan(limit)


async def test_the_gauges_refresh_once_per_period() -> None:
    now = [100.0]
    metrics = Metrics()
    broker = FixedBroker(MemoryUsage(1_000_000, 50_000_000, 1))
    gauge = RedisMemoryGauge(broker, metrics, period_seconds=5.0, clock=lambda: now[0])
    await gauge.tick()
    assert gauges(metrics) == (1_000_000, 50_000_000)
    broker.usage = MemoryUsage(2_000_000, 0, 2)
    now[0] += 4.9
    await gauge.tick()
    assert gauges(metrics) == (1_000_000, 50_000_000)
    now[0] += 0.1
    await gauge.tick()
    assert gauges(metrics) == (2_000_000, 0)
    assert broker.periods == [5.0, 5.0]


async def test_memory_mode_exports_nan() -> None:
    metrics = Metrics()
    await RedisMemoryGauge(memory_broker(), metrics).tick()
    used, limit = gauges(metrics)
    assert used is not None and math.isnan(used)
    assert limit is not None and math.isnan(limit)


async def test_a_failed_refresh_logs_and_exports_nan_without_raising() -> None:
    now = [0.0]
    metrics = Metrics()
    broker = FixedBroker(MemoryUsage(10, 20, 1))
    gauge = RedisMemoryGauge(broker, metrics, period_seconds=1.0, clock=lambda: now[0])
    await gauge.tick()
    assert gauges(metrics) == (10, 20)
    broker.failure = BrokerUnavailable("Redis unreachable: test")
    now[0] += 1.0
    await gauge.tick()
    used, _ = gauges(metrics)
    assert used is not None and math.isnan(used)
    broker.failure = None
    now[0] += 1.0
    await gauge.tick()
    assert gauges(metrics) == (10, 20)


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ("123 456 789", MemoryUsage(123, 456, 789)),
        ("123 0 789", MemoryUsage(123, 0, 789)),
        (None, None),
        ("", None),
        ("123 456", None),
        ("a b c", None),
        ("-1 0 5", None),
    ],
)
def test_a_stored_figure_is_read_back_or_ignored(
    stored: str | None, expected: MemoryUsage | None
) -> None:
    assert parse_figure(stored) == expected
