"""forwarder.retry: the policy (Backoff: growth, cap, jitter, validation) and the one retry loop (Retrier)."""

from __future__ import annotations

import logging
import random
import threading

import pytest
from fwd_fakes import FakeClock, RecordingClock

from forwarder.retry import Backoff, Retrier


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


# --- Retrier: the one retry loop -------------------------------------------------------------------


def _retrier(**kwargs: object) -> tuple[Retrier, RecordingClock]:
    clock = RecordingClock(FakeClock())
    policy = Backoff(initial_seconds=1.0, max_seconds=8.0, jitter="none")
    return Retrier(policy, clock, logging.getLogger("forwarder.test"), **kwargs), clock  # type: ignore[arg-type]


def test_retrier_waits_the_policy_delay_and_starts_over_after_a_success() -> None:
    retrier, clock = _retrier()
    stop = threading.Event()
    assert all(retrier.failed(stop, "down") for _ in range(5))
    assert clock.waits == [1.0, 2.0, 4.0, 8.0, 8.0]
    retrier.succeeded()
    retrier.failed(stop, "down again")
    assert clock.waits[-1] == 1.0


def test_retrier_honours_a_lower_bound_and_a_slower_policy_for_one_failure() -> None:
    retrier, clock = _retrier()
    stop = threading.Event()
    retrier.failed(stop, "429", at_least=7.0)
    retrier.failed(stop, "no log group", policy=Backoff(initial_seconds=5.0, max_seconds=60.0, jitter="none"))
    assert clock.waits == [7.0, 10.0]


def test_retrier_logs_the_first_failure_of_a_series_and_then_every_tenth(caplog: pytest.LogCaptureFixture) -> None:
    retrier, _ = _retrier()
    with caplog.at_level(logging.INFO, logger="forwarder.test"):
        for _ in range(25):
            retrier.failed(threading.Event(), "down", {"host": "falco"})
    assert [r.attempt for r in caplog.records] == [1, 11, 21]
    assert all(r.host == "falco" for r in caplog.records)


def test_retrier_gives_up_after_max_attempts_or_when_stopped() -> None:
    retrier, _ = _retrier(max_attempts=3)
    stop = threading.Event()
    assert [retrier.failed(stop, "conflict") for _ in range(3)] == [True, True, False]
    assert retrier.exhausted()
    unbounded, clock = _retrier()
    clock.on_wait = lambda seconds, s: (s.set(), True)[1]  # SIGTERM during the wait
    assert unbounded.failed(stop, "down") is False
