"""How late events reach CloudWatch, and how far the forwarder's clock is from CloudWatch's.

Arrival delay: CloudWatch stamps every event with ``ingestionTime``; minus the event's own timestamp
(both on AWS clocks) that is how late it became readable. On EKS it is seconds, in bursts minutes.
Two uses (schedule.py):
- at light load the head read also re-reads the recent past as far back as events have lately been
  late (``overlap_ms``: a slowly decaying maximum, plus a poll and a margin, at most a minute), which
  is free while that stretch is small;
- under load, when it is not, the head read stops short of now by the 90th percentile of recent
  delays (``lag_ms``, at most MAX_LAG_MS so that events on time still go out within 2N + 15 s).

Clock skew: a page that arrived at our time R holds events ingested at CloudWatch time I, so
``R - I >= skew`` (our clock minus CloudWatch's) for every one of them: each page's smallest value
is an upper bound, tight when an event was read right after it was ingested. The estimate may always
come down to a lower bound seen in the last few minutes; it goes up only when at least SKEW_SUPPORT
pages agree within SKEW_AGREEMENT_MS (a steady flow of fresh events), never on a few stale ones (a
backlog read after a quiet spell). It errs high by the call time, the safe side: the schedule measures
every age on CloudWatch's clock (now minus skew), so the final read of an instant never comes before it
is ``--max-lateness`` old in CloudWatch's terms, whatever the node's clock says.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Sequence

from ..model import LogEvent

MAX_OVERLAP_MS = 60_000
OVERLAP_MARGIN_MS = 1_000
# The head's lag delays events that are on time by as much: 5 s + a 2 s poll + 2 s of slack stays under 15 s.
MAX_LAG_MS = 5_000
LAG_QUANTILE = 0.9
DELAY_SAMPLES = 2048
SKEW_WINDOW_MS = 5 * 60_000
SKEW_SUPPORT = 10
SKEW_AGREEMENT_MS = 2_000
# A larger estimate is not believed (a broken ingestionTime would otherwise shift every read by it).
MAX_SKEW_MS = 5 * 60_000


class ArrivalEstimate:
    def __init__(self, poll_interval_ms: int) -> None:
        self.poll_interval_ms = poll_interval_ms
        self._lock = threading.Lock()
        self._decaying_max_ms = 0
        self._delays: collections.deque[int] = collections.deque(maxlen=DELAY_SAMPLES)
        self._sorted: list[int] | None = None
        self._skew_samples: collections.deque[tuple[int, int]] = collections.deque()
        """(when received, smallest received - ingestion of that page), oldest first."""
        self._skew_ms = 0

    def observe(self, fresh: Sequence[LogEvent], received_ms: int) -> None:
        """The new events of one page: their arrival delays, and what their ingestion says of the skew."""
        with self._lock:
            for event in fresh:
                if event.ingestion_ms <= 0:
                    continue
                delay = max(0, event.ingestion_ms - event.timestamp_ms)
                self._delays.append(delay)
                if delay > self._decaying_max_ms:
                    self._decaying_max_ms = delay
            if fresh:
                self._sorted = None
            ingested = [e.ingestion_ms for e in fresh if e.ingestion_ms > 0]
            if ingested and received_ms > 0:
                self._skew_sample(received_ms - max(ingested), received_ms)

    def _skew_sample(self, sample: int, received_ms: int) -> None:
        samples = self._skew_samples
        samples.append((received_ms, sample))
        while samples and samples[0][0] < received_ms - SKEW_WINDOW_MS:
            samples.popleft()
        lowest = min(s for _, s in samples)
        if lowest < self._skew_ms:
            self._skew_ms = max(-MAX_SKEW_MS, lowest)  # a lower upper bound: always right to follow
        elif lowest > self._skew_ms:
            agreeing = sum(1 for _, s in samples if s <= lowest + SKEW_AGREEMENT_MS)
            if agreeing >= SKEW_SUPPORT:
                self._skew_ms = min(MAX_SKEW_MS, lowest)

    def decay(self) -> None:
        """Called once per head read: old delays are forgotten slowly (an eighth each poll)."""
        with self._lock:
            self._decaying_max_ms = self._decaying_max_ms * 7 // 8

    def overlap_ms(self) -> int:
        with self._lock:
            return min(MAX_OVERLAP_MS, self._decaying_max_ms + self.poll_interval_ms + OVERLAP_MARGIN_MS)

    def lag_ms(self) -> int:
        with self._lock:
            if not self._delays:
                return 0
            if self._sorted is None:
                self._sorted = sorted(self._delays)
            ordered = self._sorted
            return min(MAX_LAG_MS, ordered[int(len(ordered) * LAG_QUANTILE)])

    def skew_ms(self) -> int:
        """Our clock minus CloudWatch's, as far as the pages tell (0 until a page with events arrived)."""
        with self._lock:
            return self._skew_ms
