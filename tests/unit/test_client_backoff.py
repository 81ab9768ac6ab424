"""The client's reconnect backoff (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from roomcast.client import Backoff


def test_bounds_double_from_the_initial_delay_up_to_the_cap() -> None:
    backoff = Backoff(0.5, 30.0, 2.0, random=lambda: 1.0)
    delays = [backoff.next() for _ in range(9)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_full_jitter_spreads_over_zero_to_the_bound() -> None:
    values = iter([0.0, 0.25, 0.999])
    backoff = Backoff(1.0, 30.0, 2.0, random=lambda: next(values))
    assert backoff.next() == 0.0
    assert backoff.next() == 0.5  # 0.25 of the bound 2.0
    assert backoff.next() == pytest.approx(3.996)


def test_reset_starts_again_from_the_initial_delay() -> None:
    backoff = Backoff(0.5, 30.0, 2.0, random=lambda: 1.0)
    for _ in range(5):
        backoff.next()
    backoff.reset()
    assert backoff.next() == 0.5


def test_real_jitter_is_spread_not_constant() -> None:
    backoff = Backoff(1.0, 1.0, 2.0)
    delays = {round(backoff.next(), 3) for _ in range(200)}
    assert len(delays) > 100 and min(delays) < 0.2 and max(delays) > 0.8


@given(
    initial=st.floats(0.01, 5),
    cap=st.floats(5, 60),
    attempts=st.integers(0, 200),
    r=st.floats(0, 1, exclude_max=True),
)
def test_a_delay_never_exceeds_the_cap(initial: float, cap: float, attempts: int, r: float) -> None:
    backoff = Backoff(initial, cap, 2.0, random=lambda: r)
    backoff.attempt = attempts
    assert 0 <= backoff.next() <= cap


def test_invalid_policies_are_refused() -> None:
    with pytest.raises(ValueError):
        Backoff(0, 30)
    with pytest.raises(ValueError):
        Backoff(5, 1)
