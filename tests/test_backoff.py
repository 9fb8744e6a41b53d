"""The pure backoff function."""

from __future__ import annotations

import pytest

from brokergate.machines import Backoff, backoff_delay


def test_ceiling_grows_exponentially_up_to_the_cap() -> None:
    b = Backoff(initial=0.5, factor=2, cap=5)
    assert [b.ceiling(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert b.ceiling(10_000) == 5.0  # no float overflow for long outages


def test_full_jitter_scales_the_draw_over_the_whole_range() -> None:
    b = Backoff(initial=1, factor=2, cap=60)
    assert backoff_delay(b, 3, 0.0) == 0.0
    assert backoff_delay(b, 3, 0.5) == 2.0
    assert backoff_delay(b, 3, 0.999) == pytest.approx(3.996)


def test_immediate_first_retry_and_broker_minimum() -> None:
    b = Backoff()
    assert backoff_delay(b, 1, 0.9, immediate=True) == 0.0
    assert backoff_delay(b, 1, 0.9, immediate=True, min_delay=3.0) == 3.0
    assert backoff_delay(b, 1, 0.1, min_delay=3.0) == 3.0


@pytest.mark.parametrize(
    "kwargs", [{"initial": -1}, {"factor": 0.5}, {"max_attempts": 0}, {"stability_window": -1}]
)
def test_invalid_backoff_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)  # type: ignore[arg-type]


def test_draw_outside_unit_interval_is_refused() -> None:
    with pytest.raises(ValueError):
        backoff_delay(Backoff(), 1, 1.0)
