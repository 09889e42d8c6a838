"""forwarder/sources/ratelimit.py: a hard cap on calls, and a rate that halves on throttling and recovers slowly."""

from __future__ import annotations

import threading

import pytest
from fwd_fakes import FakeClock

from forwarder.sources.ratelimit import RECOVERY_PER_SECOND, RateLimiter


class SharedQuota:
    """CloudWatch's FilterLogEvents quota: 5 calls a second for the whole account and Region (a token
    bucket holding 5), whoever calls; a call beyond it is throttled."""

    def __init__(self, clock: FakeClock, rate: float = 5.0) -> None:
        self.clock, self.rate = clock, rate
        self.tokens, self.updated = rate, clock.now

    def call(self) -> bool:
        now = self.clock.now
        self.tokens = min(self.rate, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


def _share(adaptive: bool, minutes: int = 10) -> list[tuple[int, int]]:
    """Two forwarders (cap 3 calls/s each) calling as fast as their limiters allow; (ok, throttled) per
    forwarder over the last half of the run."""
    clock = FakeClock()
    quota = SharedQuota(clock)
    limiters = [RateLimiter(3.0, clock=clock), RateLimiter(3.0, clock=clock)]
    counts = [[0, 0], [0, 0]]
    start, end = clock.now, clock.now + minutes * 60
    next_try = [clock.now, clock.now + 0.005]
    while clock.now < end:
        i = 0 if next_try[0] <= next_try[1] else 1
        clock.now = next_try[i]
        next_try[i] = clock.now + 0.01  # each retries as soon as its limiter lets it (checked every 10 ms)
        if not limiters[i].try_acquire():
            continue
        ok = quota.call()
        if clock.now >= start + minutes * 30:
            counts[i][0 if ok else 1] += 1
        if adaptive:
            limiters[i].succeeded() if ok else limiters[i].throttled()
    return [(ok, throttled) for ok, throttled in counts]


def test_two_forwarders_share_the_account_quota_instead_of_throttling_each_other() -> None:
    seconds = 5 * 60
    fixed = _share(adaptive=False)
    adaptive = _share(adaptive=True)
    fixed_throttled = sum(t for _, t in fixed) / sum(ok + t for ok, t in fixed)
    adaptive_throttled = sum(t for _, t in adaptive) / sum(ok + t for ok, t in adaptive)
    # Without backing off, 6 calls/s against a quota of 5: one call in six refused, for ever.
    assert fixed_throttled >= 0.15
    # Halving on a throttle and recovering slowly: few refusals...
    assert adaptive_throttled <= 0.03, adaptive
    # ...most of the quota used, and shared.
    assert sum(ok for ok, _ in adaptive) / seconds >= 4.0, adaptive
    assert min(ok for ok, _ in adaptive) / seconds >= 1.5, adaptive


def test_the_rate_halves_at_once_on_a_throttle_and_grows_back_slowly() -> None:
    clock = FakeClock()
    limiter = RateLimiter(3.0, clock=clock)
    limiter.throttled()
    limiter.throttled()  # the same burst of refusals: one signal
    assert limiter.rate_per_second == 1.5
    clock.now += 1.1
    limiter.throttled()
    assert limiter.rate_per_second == 0.75
    for _ in range(10):
        clock.now += 1
        limiter.succeeded()
    assert limiter.rate_per_second == pytest.approx(0.75 + 10 * RECOVERY_PER_SECOND)
    for _ in range(200):
        clock.now += 1
        limiter.succeeded()
    assert limiter.rate_per_second == 3.0  # never above the cap
    for _ in range(20):
        clock.now += 2
        limiter.throttled()
    assert limiter.rate_per_second == pytest.approx(0.3)  # a tenth of the cap at the least


def test_a_token_bucket_of_one_spaces_calls_by_the_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2.0, clock=clock)
    stop = threading.Event()
    starts = []
    for _ in range(5):
        assert limiter.acquire(stop)
        starts.append(clock.now)
    assert [round(b - a, 3) for a, b in zip(starts, starts[1:], strict=False)] == [0.5] * 4
