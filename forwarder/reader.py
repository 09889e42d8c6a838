"""The reading loop: decides which scan gets the next FilterLogEvents page, and hands new events on.

At most three scans are open at once (see ranges.py): the poll's head scan, a sweep that
includes final reads, and an optional (intermediate) sweep. The head and the final sweep take
pages in turn, so a long sweep never starves the head (latency) and a long head (a backlog)
never starves the final sweeps (memory, checkpoint size). The optional sweep starts, and gets
pages, only while neither of the others has anything to read: under load the requests go to
the head and the final sweeps, the only reads losslessness needs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from .cloudwatch import LogsReader, Page, TokenExpiredError
from .model import LogEvent
from .ranges import RangeTracker, Scan

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
        optional_margin_ms: int = 0,
        prefetch: bool = False,
    ) -> None:
        self.tracker = tracker
        self.logs = logs
        self.sink = sink
        self.clock = clock
        self.wait: Wait = wait or (lambda seconds, stop: stop.wait(seconds))
        self.beat = beat
        self.optional_margin_ms = optional_margin_ms
        """An optional sweep starts only if the next head scan is at least this far away, so its page
        (and the rate limiter's token) never delays the head: latency of on-time events comes first."""
        self.head: Scan | None = None
        self.final: Scan | None = None
        """A sweep that includes a final (mandatory) read of some segment."""
        self.optional: Scan | None = None
        """An intermediate sweep (lower latency for late events, skipped under load)."""
        self._turn = 0
        self.pages = 0
        self.prefetch = prefetch
        self._pool: ThreadPoolExecutor | None = None
        self._prefetch: tuple[Scan, Future[Page | None]] | None = None

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
        for scan in (self.head, self.final, self.optional):
            if scan is not None:
                self.tracker.abandon_scan(scan)
        self.head = self.final = self.optional = None
        self._prefetch = None
        if self._pool is not None:
            # A call still in flight ends on its own (stop is set; timeouts bound it); its page is dropped.
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def _pick(self, now_ms: int) -> Scan | None:
        if self.head is None and self.tracker.head_due(now_ms):
            self.head = self.tracker.start_head(now_ms)
        if self.final is None:
            self.final = self.tracker.start_sweep(now_ms, allow_intermediate=False)
        if (
            self.optional is None
            and self.head is None
            and self.final is None
            and self.tracker.ms_until_head(now_ms) >= self.optional_margin_ms
        ):
            scan = self.tracker.start_sweep(now_ms, allow_intermediate=True)
            if scan is not None and scan.final:
                self.final = scan
            else:
                self.optional = scan
        if self.head is not None and self.final is not None:
            self._turn += 1
            return self.head if self._turn % 2 else self.final
        # An optional sweep only gets pages while the head and the final sweeps have none to read.
        return self.head or self.final or self.optional

    def _alone(self, scan: Scan) -> bool:
        """True when ``scan`` is the only mandatory scan open, so its next page is the next one read."""
        return (scan is self.head and self.final is None) or (scan is self.final and self.head is None)

    def step(self, stop: threading.Event) -> None:
        """Fetch one page (or wait until something is due)."""
        self.beat()
        now = self.now_ms()
        prefetched = self._prefetch
        self._prefetch = None
        if prefetched is not None:
            scan, future = prefetched
        else:
            picked = self._pick(now)
            if picked is None:
                delay = min(self.tracker.next_wake_ms(now) / 1000.0, MAX_IDLE_WAIT_SECONDS)
                self.wait(max(delay, 0.001), stop)
                return
            scan, future = picked, None
        try:
            if future is not None:
                page = future.result()
            else:
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
        if page.next_token and self.prefetch and self._alone(scan):
            # Fetch the next page while this one is processed: CloudWatch's answer time and our own
            # work overlap. One call at a time still: the next step waits for this one first.
            self._prefetch = (scan, self._executor().submit(
                self.logs.page, scan.start_ms, scan.end_ms, page.next_token, stop))
        if not self.sink(scan, page.events):
            return
        if page.next_token:
            scan.next_token = page.next_token
            return
        self.tracker.finish_scan(scan)
        if scan is self.head:
            self.head = None
        elif scan is self.final:
            self.final = None
        else:
            self.optional = None

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="forwarder-prefetch")
        return self._pool
