"""Time, and the one way the forwarder waits.

Every pause (an idle reader, the rate limiter, a backoff before a retry, the checkpoint timer) goes
through ``Clock.wait``: it returns early, with True, as soon as ``stop`` is set (SIGTERM), and it keeps
the calling thread's liveness heartbeat going while it waits, so a long backoff never looks like a hang.
Tests swap the whole clock (tests/fwd_fakes.FakeClock), never patch sleeps.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

# A waiting thread beats at least this often, so liveness sees it alive whatever it waits for.
BEAT_SLICE_SECONDS = 1.0

Wait = Callable[[float, threading.Event], bool]
"""``wait(seconds, stop)``: True when ``stop`` was set (early or at the end), False after the full wait."""


class Clock(Protocol):
    def time(self) -> float:
        """Wall-clock seconds since the epoch (compared with event timestamps)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (intervals, deadlines)."""
        ...

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        """Wait up to ``seconds``; True as soon as ``stop`` is set."""
        ...


class SystemClock:
    """The real clock; ``beat`` (liveness of the calling thread) is called while waiting."""

    def __init__(self, beat: Callable[[], None] | None = None) -> None:
        self._beat = beat

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        deadline = time.monotonic() + max(0.0, seconds)
        while True:
            if self._beat is not None:
                self._beat()
            left = deadline - time.monotonic()
            if left <= 0:
                return stop.is_set()
            if stop.wait(min(left, BEAT_SLICE_SECONDS)):
                return True
