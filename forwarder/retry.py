"""Retrying, in one place: the policy as data (``Backoff``) and the loop around it (``Retrier``).

Every dependency the forwarder retries (CloudWatch Logs, Falco's webhook, the checkpoint's load and
its ConfigMap conflicts) goes through a ``Retrier``: it counts consecutive failures, waits the policy's
jittered delay through the one interruptible wait (clock.py), logs the first failure of a series and
then every 10th, and starts over after a success, so one slow period does not leave every later
retry at the cap.
"""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass
from typing import Any, Literal

from .clock import Clock

Jitter = Literal["full", "equal", "none"]


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: the base delay for retry ``attempt`` is
    ``initial_seconds * multiplier ** attempt``, capped at ``max_seconds``.

    ``jitter="full"`` draws the delay uniformly from ``[0, base]`` (spreads many clients
    apart; AWS's recommended variant); ``"equal"`` from ``[base/2, base]``; ``"none"``
    returns ``base`` exactly.
    """

    initial_seconds: float = 0.2
    max_seconds: float = 30.0
    multiplier: float = 2.0
    jitter: Jitter = "full"

    def __post_init__(self) -> None:
        if not self.initial_seconds > 0:
            raise ValueError(f"Backoff.initial_seconds must be > 0, got {self.initial_seconds!r}")
        if not self.max_seconds >= self.initial_seconds:
            raise ValueError(
                f"Backoff.max_seconds must be >= initial_seconds ({self.initial_seconds}), got {self.max_seconds!r}"
            )
        if not self.multiplier >= 1:
            raise ValueError(f"Backoff.multiplier must be >= 1, got {self.multiplier!r}")
        if self.jitter not in ("full", "equal", "none"):
            raise ValueError(f"Backoff.jitter must be 'full', 'equal' or 'none', got {self.jitter!r}")

    def base(self, attempt: int) -> float:
        """The un-jittered delay for retry ``attempt`` (0 = first retry)."""
        if attempt < 0:
            raise ValueError(f"attempt must be >= 0, got {attempt}")
        # Stop multiplying once the cap is reached: attempt may grow without bound while a
        # dependency stays down for hours, and a float power would overflow.
        delay = self.initial_seconds
        if self.multiplier == 1:
            return delay
        for _ in range(attempt):
            delay *= self.multiplier
            if delay >= self.max_seconds:
                return self.max_seconds
        return delay

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before retry ``attempt`` (0 = first retry), jittered with ``rng``."""
        base = self.base(attempt)
        if self.jitter == "full":
            return rng.uniform(0.0, base)
        if self.jitter == "equal":
            return base / 2 + rng.uniform(0.0, base / 2)
        return base


# Log the first failure of a series and then every LOG_EVERY-th, not every retry.
LOG_EVERY = 10


class Retrier:
    """Consecutive failures of one dependency, and the wait before the next attempt."""

    def __init__(
        self,
        policy: Backoff,
        clock: Clock,
        logger: logging.Logger,
        *,
        rng: random.Random | None = None,
        max_attempts: int | None = None,
    ) -> None:
        self.policy = policy
        self.clock = clock
        self.log = logger
        self.rng = rng if rng is not None else random.Random()  # noqa: S311 (jitter, not security)
        self.max_attempts = max_attempts
        """None: retry for as long as it takes; else ``failed`` returns False after this many failures."""
        self.failures = 0
        """Consecutive failures since the last success."""

    def succeeded(self) -> None:
        self.failures = 0

    def exhausted(self) -> bool:
        return self.max_attempts is not None and self.failures >= self.max_attempts

    def failed(
        self,
        stop: threading.Event,
        message: str,
        fields: dict[str, Any] | None = None,
        *,
        policy: Backoff | None = None,
        at_least: float = 0.0,
        level: int = logging.WARNING,
    ) -> bool:
        """Count a failure, log it (sparingly) and wait before the next attempt.

        ``policy`` overrides the backoff for this failure (e.g. slower for a missing log group);
        ``at_least`` is a lower bound on the wait (a Retry-After). False when ``stop`` was set or
        the attempts are exhausted: the caller gives up.
        """
        delay = max((policy or self.policy).delay(self.failures, self.rng), at_least)
        self.failures += 1
        if self.exhausted():
            return False
        if (self.failures - 1) % LOG_EVERY == 0:
            self.log.log(level, message, extra={**(fields or {}), "attempt": self.failures,
                                                "retry_in_s": round(delay, 3)})
        return not self.clock.wait(delay, stop)
