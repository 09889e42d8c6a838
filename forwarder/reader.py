"""The reading loop: decides which scan gets the next FilterLogEvents page, and hands new events on.

At most two scans are open at once: the poll's head scan and one sweep (see ranges.py). When
both are open they take pages in turn, so a long sweep never starves the head (latency) and a
long head (a backlog) never starves the final sweeps (memory, checkpoint size). Intermediate
sweeps only start while the head is caught up: under load the reader spends its requests on
the head and the final sweeps, which are the only reads losslessness needs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from forwarder.cloudwatch import LogsReader, TokenExpiredError
from forwarder.model import LogEvent
from forwarder.ranges import RangeTracker, Scan

log = logging.getLogger("forwarder.reader")

# Never sleep longer than this between checks, so heartbeats and stop stay prompt.
MAX_IDLE_WAIT_SECONDS = 1.0

Sink = Callable[[Scan, list[LogEvent]], bool]
"""Receives each page's raw events for a scan; returns False when reading must stop."""
Wait = Callable[[float, threading.Event], bool]


class ReadLoop:
    def __init__(
        self,
        tracker: RangeTracker,
        logs: LogsReader,
        sink: Sink,
        *,
        clock: Callable[[], float] = time.time,
        wait: Wait | None = None,
        beat: Callable[[], None] = lambda: None,
    ) -> None:
        self.tracker = tracker
        self.logs = logs
        self.sink = sink
        self.clock = clock
        self.wait: Wait = wait or (lambda seconds, stop: stop.wait(seconds))
        self.beat = beat
        self.head: Scan | None = None
        self.sweep: Scan | None = None
        self._turn = 0
        self.pages = 0

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def run(self, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                self.step(stop)
        finally:
            self.close()

    def close(self) -> None:
        """Give up open scans (their segments keep their previous read state)."""
        for scan in (self.head, self.sweep):
            if scan is not None:
                self.tracker.abandon_scan(scan)
        self.head = self.sweep = None

    def _pick(self, now_ms: int) -> Scan | None:
        if self.head is None and self.tracker.head_due(now_ms):
            self.head = self.tracker.start_head(now_ms)
        if self.sweep is None:
            self.sweep = self.tracker.start_sweep(now_ms, allow_intermediate=self.head is None)
        if self.head is not None and self.sweep is not None:
            self._turn += 1
            return self.head if self._turn % 2 else self.sweep
        return self.head or self.sweep

    def step(self, stop: threading.Event) -> None:
        """Fetch one page (or wait until something is due)."""
        self.beat()
        now = self.now_ms()
        scan = self._pick(now)
        if scan is None:
            delay = min(self.tracker.next_wake_ms(now) / 1000.0, MAX_IDLE_WAIT_SECONDS)
            self.wait(max(delay, 0.001), stop)
            return
        try:
            page = self.logs.page(scan.start_ms, scan.end_ms, scan.next_token, stop)
        except TokenExpiredError as exc:
            log.warning(
                "CloudWatch refused a pagination token; reading the range again from its start",
                extra={"start_ms": scan.start_ms, "end_ms": scan.end_ms, "error": str(exc)},
            )
            scan.next_token = None
            return
        if page is None:
            return  # stopping
        self.pages += 1
        scan.pages += 1
        if not self.sink(scan, page.events):
            return
        if page.next_token:
            scan.next_token = page.next_token
            return
        self.tracker.finish_scan(scan)
        if scan is self.head:
            self.head = None
        else:
            self.sweep = None
