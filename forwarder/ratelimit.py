"""One token bucket in front of every CloudWatch Logs call.

The FilterLogEvents quota (5 TPS) is shared by the whole account and Region, so the
forwarder keeps its own hard cap, whatever the data or the retry state: every call, first
try or retry, takes a token from the same bucket.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimiter:
    """Token bucket: ``rate_per_second`` tokens per second, holding at most ``burst`` tokens.

    With the default ``burst=1`` two calls are always at least ``1 / rate`` apart, so no
    window of one second ever sees more than ``rate`` calls started (plus the one at its edge).
    ``clock`` is monotonic seconds; ``wait(seconds, stop)`` is how the limiter sleeps and
    returns True when ``stop`` was set (both injectable for tests).
    """

    def __init__(
        self,
        rate_per_second: float,
        *,
        burst: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        wait: Callable[[float, threading.Event], bool] | None = None,
    ) -> None:
        if not rate_per_second > 0:
            raise ValueError(f"rate_per_second must be > 0, got {rate_per_second!r}")
        if not burst >= 1:
            raise ValueError(f"burst must be >= 1, got {burst!r}")
        self._rate = float(rate_per_second)
        self._burst = float(burst)
        self._clock = clock
        self._wait = wait or _event_wait
        self._lock = threading.Lock()
        # Start with one token, not a full bucket: a restart loop must not burst.
        self._tokens = 1.0
        self._updated = clock()
        self.acquired = 0
        """Tokens handed out so far (calls allowed)."""

    @property
    def rate_per_second(self) -> float:
        return self._rate

    def _take(self) -> bool:
        """Refill, then take a token if there is one; the caller holds the lock."""
        now = self._clock()
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
            if self._wait(missing, stop):
                return False
        return False


def _event_wait(seconds: float, stop: threading.Event) -> bool:
    return stop.wait(seconds)
