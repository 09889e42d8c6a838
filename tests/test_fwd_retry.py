"""forwarder.retry.Backoff: exponential growth, cap, jitter bounds, validation."""

from __future__ import annotations

import random

import pytest

from forwarder.retry import Backoff


def test_base_delay_grows_exponentially_up_to_the_cap() -> None:
    backoff = Backoff(initial_seconds=0.2, max_seconds=30.0, multiplier=2.0)
    assert [backoff.base(a) for a in range(9)] == [0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30.0]
    assert backoff.base(10_000_000) == 30.0


def test_full_jitter_stays_within_zero_and_the_base() -> None:
    backoff = Backoff()
    rng = random.Random(1)
    for attempt in range(20):
        delays = [backoff.delay(attempt, rng) for _ in range(200)]
        assert all(0.0 <= d <= backoff.base(attempt) for d in delays)
        # Jitter actually spreads the delays.
        assert max(delays) - min(delays) > backoff.base(attempt) / 2


def test_equal_jitter_keeps_at_least_half_the_base() -> None:
    backoff = Backoff(jitter="equal")
    rng = random.Random(2)
    assert all(0.4 <= backoff.delay(2, rng) <= 0.8 for _ in range(200))


def test_no_jitter_is_deterministic() -> None:
    assert Backoff(jitter="none").delay(3, random.Random()) == pytest.approx(1.6)


def test_same_seed_same_delays() -> None:
    backoff = Backoff()
    assert [backoff.delay(a, random.Random(5)) for a in range(6)] == [
        backoff.delay(a, random.Random(5)) for a in range(6)
    ]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial_seconds": 0},
        {"initial_seconds": 1.0, "max_seconds": 0.5},
        {"multiplier": 0.5},
        {"jitter": "random"},
    ],
)
def test_invalid_policies_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)  # type: ignore[arg-type]


def test_negative_attempt_is_refused() -> None:
    with pytest.raises(ValueError):
        Backoff().delay(-1, random.Random())
