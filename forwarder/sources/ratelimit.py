"""One token bucket in front of every CloudWatch Logs call, whose rate backs off when AWS throttles.

The FilterLogEvents quota (5 TPS) is shared by the whole account and Region, so the forwarder keeps
its own hard cap, whatever the data or the retry state: every call, first try or retry, takes a token
from the same bucket. When CloudWatch throttles anyway (another forwarder, another tool), the rate is
halved at once and then grows back slowly (additive increase, multiplicative decrease), so two
forwarders in one account settle on sharing the quota instead of throttling each other for ever.
"""

from __future__ import annotations

import threading

from ..clock import Clock

# On a throttle the rate is multiplied by this, at most once per DECREASE_SPACING_SECONDS (the throttles
# of one burst are one signal, not several).
DECREASE_FACTOR = 0.5
DECREASE_SPACING_SECONDS = 1.0
# Then it grows back by this many calls/s for every second of successful calls: from half the default
# cap of 3/s to all of it in 30 s.
RECOVERY_PER_SECOND = 0.05
# Never below this fraction of the cap: a slow trickle still makes progress and learns the quota is free.
MIN_RATE_FRACTION = 0.1


class RateLimiter:
    """Token bucket: ``rate`` tokens per second (at most ``cap``), holding at most ``burst`` tokens.

    With the default ``burst=1`` two calls are always at least ``1 / rate`` apart, so no window of
    one second ever sees more than ``cap`` calls started (plus the one at its edge).
    """

    def __init__(self, cap_per_second: float, *, clock: Clock, burst: float = 1.0) -> None:
        if not cap_per_second > 0:
            raise ValueError(f"rate_per_second must be > 0, got {cap_per_second!r}")
        if not burst >= 1:
            raise ValueError(f"burst must be >= 1, got {burst!r}")
        self.cap = float(cap_per_second)
        self._rate = self.cap
        self._burst = float(burst)
        self._clock = clock
        self._lock = threading.Lock()
        # Start with one token, not a full bucket: a restart loop must not burst.
        self._tokens = 1.0
        self._updated = clock.monotonic()
        self._last_decrease = float("-inf")
        self._last_increase = self._updated
        self.acquired = 0
        """Tokens handed out so far (calls allowed)."""
        self.decreases = 0

    @property
    def rate_per_second(self) -> float:
        """The current rate: the cap, or less after throttling."""
        return self._rate

    def _take(self) -> bool:
        """Refill, then take a token if there is one; the caller holds the lock."""
        now = self._clock.monotonic()
        elapsed = max(0.0, now - self._updated)
        self._updated = now
        self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            self.acquired += 1
            return True
        return False

    def try_acquire(self) -> bool:
        """Take a token if one is there right now; never waits."""
        with self._lock:
            return self._take()

    def acquire(self, stop: threading.Event) -> bool:
        """Wait for a token; False (no token taken) if ``stop`` was set first."""
        while not stop.is_set():
            with self._lock:
                if self._take():
                    return True
                # At least 1 ms: float clocks near 1.7e9 s cannot add smaller steps.
                missing = max((1.0 - self._tokens) / self._rate, 0.001)
            if self._clock.wait(missing, stop):
                return False
        return False

    def throttled(self) -> None:
        """AWS refused a call for exceeding the quota: halve the rate (once per burst of refusals)."""
        with self._lock:
            now = self._clock.monotonic()
            if now - self._last_decrease < DECREASE_SPACING_SECONDS:
                return
            self._take_refill(now)
            self._rate = max(self.cap * MIN_RATE_FRACTION, self._rate * DECREASE_FACTOR)
            self._tokens = min(self._tokens, 0.0)
            self._last_decrease = self._last_increase = now
            self.decreases += 1

    def succeeded(self) -> None:
        """A call went through: grow the rate back towards the cap, slowly."""
        with self._lock:
            now = self._clock.monotonic()
            if self._rate < self.cap:
                # A long quiet spell is not evidence that the quota is free: count at most 5 s of it.
                elapsed = min(5.0, max(0.0, now - self._last_increase))
                self._take_refill(now)
                self._rate = min(self.cap, self._rate + RECOVERY_PER_SECOND * elapsed)
            self._last_increase = now

    def _take_refill(self, now: float) -> None:
        # Bank the tokens earned at the old rate before it changes.
        self._tokens = min(self._burst, self._tokens + max(0.0, now - self._updated) * self._rate)
        self._updated = now
