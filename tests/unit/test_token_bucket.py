"""Token bucket arithmetic, driven by a hand-held clock."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from roomcast.ratelimit.bucket import BucketMap, TokenBucket


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def takes(bucket: TokenBucket, n: int) -> list[bool]:
    return [bucket.take() for _ in range(n)]


def test_burst_is_available_at_once_then_refused() -> None:
    bucket = TokenBucket(rate=2, burst=5, clock=FakeClock())
    assert takes(bucket, 7) == [True] * 5 + [False, False]


def test_refill_at_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=4, burst=4, clock=clock)
    assert takes(bucket, 4) == [True] * 4
    clock.advance(0.24)  # 0.96 of a token
    assert bucket.take() is False
    clock.advance(0.01)  # now 1.0
    assert bucket.take() is True
    assert bucket.take() is False
    clock.advance(0.5)  # two tokens
    assert takes(bucket, 3) == [True, True, False]


def test_never_refills_above_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10, burst=3, clock=clock)
    clock.advance(3600)
    assert bucket.is_full() is True
    assert bucket.tokens == 3
    assert takes(bucket, 4) == [True, True, True, False]


def test_retry_after() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2, burst=2, clock=clock)
    assert bucket.retry_after() == 0.0
    assert takes(bucket, 2) == [True, True]
    assert bucket.retry_after() == pytest.approx(0.5)
    assert bucket.retry_after(2) == pytest.approx(1.0)
    clock.advance(0.2)  # 0.4 of a token
    assert bucket.retry_after() == pytest.approx(0.3)
    clock.advance(0.3)
    assert bucket.retry_after() == pytest.approx(0.0, abs=1e-9)
    assert bucket.take() is True


def test_retry_after_is_exactly_long_enough() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=3, burst=1, clock=clock)
    assert bucket.take() is True
    wait = bucket.retry_after()
    clock.advance(wait * 0.99)
    assert bucket.take() is False
    clock.advance(bucket.retry_after())
    assert bucket.take() is True


def test_cost_larger_than_one() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1, burst=10, clock=clock)
    assert bucket.take(7) is True
    assert bucket.take(4) is False
    assert bucket.tokens == pytest.approx(3)  # a refused take spends nothing
    assert bucket.take(3) is True


def test_is_full() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1, burst=2, clock=clock)
    assert bucket.is_full() is True
    bucket.take()
    assert bucket.is_full() is False
    clock.advance(0.999)
    assert bucket.is_full() is False
    clock.advance(0.001)
    assert bucket.is_full() is True


def test_clock_going_backwards_gives_no_tokens() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1, burst=1, clock=clock)
    assert bucket.take() is True
    clock.advance(-10)
    assert bucket.take() is False
    assert bucket.tokens == 0


@pytest.mark.parametrize(("rate", "burst"), [(0, 5), (-1, 5), (1, 0), (1, 0.5)])
def test_invalid_parameters(rate: float, burst: float) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=rate, burst=burst, clock=FakeClock())


steps = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=5, allow_nan=False),  # advance, seconds
        st.integers(min_value=0, max_value=8),  # takes at that moment
    ),
    min_size=1,
    max_size=40,
)


@given(
    rate=st.floats(min_value=0.1, max_value=50, allow_nan=False),
    burst=st.integers(min_value=1, max_value=20),
    steps=steps,
)
def test_allowed_takes_never_exceed_burst_plus_refill(
    rate: float, burst: int, steps: list[tuple[float, int]]
) -> None:
    clock = FakeClock(0.0)
    bucket = TokenBucket(rate=rate, burst=burst, clock=clock)
    allowed_at: list[float] = []
    for advance, count in steps:
        clock.advance(advance)
        for _ in range(count):
            if bucket.take():
                allowed_at.append(clock.now)
            assert 0 <= bucket.tokens <= burst
    # Over every window [start, end], allowed takes <= burst + rate * (end - start).
    for i, start in enumerate(allowed_at):
        for j in range(i, len(allowed_at)):
            end = allowed_at[j]
            assert j - i + 1 <= burst + rate * (end - start) + 1e-6


@given(
    rate=st.floats(min_value=0.1, max_value=50, allow_nan=False),
    burst=st.integers(min_value=1, max_value=20),
    steps=steps,
)
def test_a_refused_take_means_less_than_one_token(
    rate: float, burst: int, steps: list[tuple[float, int]]
) -> None:
    clock = FakeClock(0.0)
    bucket = TokenBucket(rate=rate, burst=burst, clock=clock)
    for advance, count in steps:
        clock.advance(advance)
        for _ in range(count):
            before = bucket.retry_after()
            allowed = bucket.take()
            assert allowed is (before == 0.0)
            if not allowed:
                assert bucket.retry_after() > 0


@given(
    rate=st.floats(min_value=0.1, max_value=50, allow_nan=False),
    burst=st.integers(min_value=1, max_value=20),
    idle=st.floats(min_value=0, max_value=100, allow_nan=False),
)
def test_empty_bucket_refills_linearly(rate: float, burst: int, idle: float) -> None:
    clock = FakeClock(0.0)
    bucket = TokenBucket(rate=rate, burst=burst, clock=clock)
    assert takes(bucket, burst) == [True] * burst
    clock.advance(idle)
    allowed = sum(takes(bucket, burst + 1))
    assert allowed == min(burst, math.floor(idle * rate))


# BucketMap ------------------------------------------------------------------------------


def test_bucket_map_keeps_one_bucket_per_key() -> None:
    clock = FakeClock()
    buckets = BucketMap(rate=1, burst=2, clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [True, True, False]
    assert [buckets.take("b") for _ in range(3)] == [True, True, False]
    assert len(buckets) == 2
    clock.advance(1)
    assert buckets.take("a") is True
    assert buckets.take("a") is False


def test_prune_drops_only_refilled_buckets() -> None:
    clock = FakeClock()
    buckets = BucketMap(rate=1, burst=2, clock=clock)
    buckets.take("idle")
    clock.advance(1)  # "idle" is full again
    buckets.take("busy")
    buckets.take("busy")
    buckets.prune()
    assert len(buckets) == 1
    # "busy" kept its state: it is still empty.
    assert buckets.take("busy") is False


def test_new_key_prunes_when_map_is_full() -> None:
    clock = FakeClock()
    buckets = BucketMap(rate=1, burst=1, clock=clock, max_keys=2)
    buckets.take("a")
    buckets.take("b")
    clock.advance(5)
    assert buckets.take("c") is True
    assert len(buckets) == 1


def test_map_growth_is_bounded_while_keys_keep_refilling() -> None:
    clock = FakeClock()
    buckets = BucketMap(rate=10, burst=1, clock=clock, max_keys=50)
    for i in range(1000):
        assert buckets.take(f"10.0.{i // 256}.{i % 256}") is True
        clock.advance(0.01)
    assert len(buckets) <= 50
