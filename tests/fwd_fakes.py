"""Fakes for the forwarder's reading side: a simulated CloudWatch Logs and a simulated clock.

FakeLogs answers filter_log_events like the API reference describes it: startTime and endTime
inclusive on the event timestamp, logStreamNamePrefix applied, pages of at most `page_events`
events and `page_bytes` bytes with a nextToken while more remain. An event is visible from its
`visible_at` (simulated seconds) on. Pagination works on the set of events matching at the
first call of a range (a server-side cursor), so an event that becomes visible mid-pagination
appears only in a later read, one of the ways the real service may behave.
"""

from __future__ import annotations

import bisect
import itertools
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from forwarder.cloudwatch import LogsReader
from forwarder.metrics import Metrics
from forwarder.model import LogEvent
from forwarder.ranges import RangeTracker, Scan
from forwarder.ratelimit import RateLimiter
from forwarder.reader import ReadLoop


class FakeClock:
    """Simulated seconds since the epoch; waiting advances it."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        self.now += max(seconds, 0.0)
        return stop.is_set()


class RecordingClock:
    """A view of a FakeClock that records the waits made through it; ``on_wait`` may act instead of waiting
    (set stop, change the world) and returns what the wait returns."""

    def __init__(self, clock: FakeClock, on_wait: Any = None) -> None:
        self.clock = clock
        self.on_wait = on_wait
        self.waits: list[float] = []

    def time(self) -> float:
        return self.clock.now

    def monotonic(self) -> float:
        return self.clock.now

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        self.waits.append(seconds)
        if self.on_wait is not None:
            return bool(self.on_wait(seconds, stop))
        return self.clock.wait(seconds, stop)


@dataclass
class FakeEvent:
    stream: str
    event_id: str
    timestamp_ms: int
    message: str
    visible_at: float  # simulated seconds


@dataclass
class FakeLogs:
    clock: FakeClock
    page_events: int = 10_000
    page_bytes: int = 1_048_576
    call_seconds: float = 0.02
    events: list[FakeEvent] = field(default_factory=list)
    calls: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    script: list[Exception] = field(default_factory=list)
    """Errors to raise on the next calls, in order (then normal answers)."""
    returned: Counter[str] = field(default_factory=Counter)
    """How many times each event id was returned (read amplification)."""
    _cursors: dict[str, list[FakeEvent]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=itertools.count)
    _order: list[tuple[int, int]] = field(default_factory=list)

    def add(self, stream: str, timestamp_ms: int, message: str, visible_at: float | None = None) -> str:
        n = next(self._ids)
        event_id = f"{n:056d}"
        event = FakeEvent(stream, event_id, timestamp_ms, message, self.clock.now if visible_at is None else visible_at)
        # Kept sorted by timestamp so a range is found by bisection (the simulations hold 100k+ events).
        i = bisect.bisect_right(self._order, (timestamp_ms, n))
        self._order.insert(i, (timestamp_ms, n))
        self.events.insert(i, event)
        return event_id

    def filter_log_events(self, **params: Any) -> dict[str, Any]:
        self.calls.append((self.clock.now, dict(params)))
        self.clock.now += self.call_seconds
        if self.script:
            raise self.script.pop(0)
        token = params.get("nextToken")
        if token is None:
            start, end = params["startTime"], params["endTime"]
            prefix = params.get("logStreamNamePrefix", "")
            lo = bisect.bisect_left(self._order, (start, -1))
            hi = bisect.bisect_right(self._order, (end, float("inf")))
            matching = [e for e in self.events[lo:hi] if e.visible_at <= self.clock.now and e.stream.startswith(prefix)]
            offset = 0
        else:
            key, _, rest = token.partition("#")
            matching = self._cursors[key]
            offset = int(rest)
        page: list[FakeEvent] = []
        size = 0
        i = offset
        while i < len(matching) and len(page) < self.page_events:
            cost = len(matching[i].message) + 26
            if page and size + cost > self.page_bytes:
                break
            page.append(matching[i])
            size += cost
            i += 1
        response: dict[str, Any] = {
            "events": [
                {"logStreamName": e.stream, "eventId": e.event_id, "timestamp": e.timestamp_ms,
                 "ingestionTime": int(e.visible_at * 1000), "message": e.message}
                for e in page
            ]
        }
        for e in page:
            self.returned[e.event_id] += 1
        if i < len(matching):
            key = token.partition("#")[0] if token else f"c{len(self._cursors)}"
            self._cursors[key] = matching
            response["nextToken"] = f"{key}#{i}"
        return response

    def calls_between(self, t0: float, t1: float) -> int:
        return sum(1 for at, _ in self.calls if t0 <= at < t1)


def client_error(code: str, status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "FilterLogEvents")


class Harness:
    """A ReadLoop over FakeLogs whose sink acknowledges every new event at once."""

    def __init__(
        self,
        *,
        start_ms: int | None = None,
        poll_interval_s: float = 2.0,
        max_lateness_s: float = 600.0,
        rate: float = 3.0,
        page_events: int = 10_000,
        page_bytes: int = 1_048_576,
        clock: FakeClock | None = None,
        tracker: RangeTracker | None = None,
    ) -> None:
        self.clock = clock or FakeClock()
        self.logs = FakeLogs(self.clock, page_events=page_events, page_bytes=page_bytes)
        self.metrics = Metrics()
        self.limiter = RateLimiter(rate, clock=self.clock)
        self.reader = LogsReader(self.logs, "/aws/eks/lab/cluster", "kube-apiserver-audit", limiter=self.limiter,
                                 metrics=self.metrics, clock=self.clock)
        self.tracker = tracker or RangeTracker(
            int(self.clock.now * 1000) if start_ms is None else start_ms,
            poll_interval_ms=int(poll_interval_s * 1000),
            max_lateness_ms=int(max_lateness_s * 1000),
        )
        self.delivered: Counter[str] = Counter()
        self.delivered_at: dict[str, float] = {}
        self.acknowledge = True
        self.loop = ReadLoop(self.tracker, self.reader, self.sink, clock=self.clock, wait=self.clock.wait)
        self.stop = threading.Event()

    def sink(self, scan: Scan, events: list[LogEvent]) -> bool:
        fresh = self.tracker.admit(scan, events)
        for _key, event in fresh:
            self.delivered[event.event_id] += 1
            self.delivered_at.setdefault(event.event_id, self.clock.now)
        if self.acknowledge:
            self.tracker.acknowledge([key for key, _ in fresh])
        return True

    def run_until(self, t: float, on_step: Any = None) -> None:
        guard = 0
        while self.clock.now < t:
            if on_step is not None:
                on_step(self.clock.now)
            self.loop.step(self.stop)
            guard += 1
            assert guard < 5_000_000, "simulation did not advance"

    def now_ms(self) -> int:
        return int(self.clock.now * 1000)
