"""Retry policy as explicit data: jittered exponential backoff with a cap.

The policy is pure: it only computes how long to wait before a given retry. Callers own
the attempt counter and reset it to 0 after a success, so one slow period does not leave
every later retry at the cap.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

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
