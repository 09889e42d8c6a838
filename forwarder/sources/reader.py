"""The reading loop: fetches, page by page, the read the schedule picks, and hands each page on.

It decides nothing (schedule.py does): it paginates, waits while nothing is due, reads a range again
from its start when CloudWatch refuses a pagination token, and overlaps CloudWatch's answer time with
our own work by fetching the next page of a read that is the only one open (still one call at a time).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from ..clock import Clock
from .cloudwatch import LogsReader, Page, TokenExpiredError
from .schedule import Read, Schedule

log = logging.getLogger("forwarder.reader")

OnPage = Callable[[Read, Page], bool]
"""Receives each page of a read; returns False when reading must stop."""


class ReadLoop:
    def __init__(self, schedule: Schedule, logs: LogsReader, on_page: OnPage, *, clock: Clock,
                 prefetch: bool = False) -> None:
        self.schedule = schedule
        self.logs = logs
        self.on_page = on_page
        self.clock = clock
        self.prefetch = prefetch
        self.pages = 0
        self.beat: Callable[[], None] = lambda: None
        self._pool: ThreadPoolExecutor | None = None
        self._prefetched: tuple[Read, Future[Page | None]] | None = None

    def run(self, stop: threading.Event, beat: Callable[[], None] = lambda: None) -> None:
        self.beat = beat
        try:
            while not stop.is_set():
                beat()
                self.step(stop)
        finally:
            self.close()

    def close(self) -> None:
        """Give up open reads (their stages keep their cursors)."""
        self.schedule.abandon_all()
        self._prefetched = None
        if self._pool is not None:
            # A call still in flight ends on its own (stop is set; timeouts bound it); its page is dropped.
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def step(self, stop: threading.Event) -> None:
        """Fetch one page, or wait until something is due."""
        now_ms = int(self.clock.time() * 1000)
        future: Future[Page | None] | None = None
        if self._prefetched is not None:
            read, future = self._prefetched
            self._prefetched = None
        else:
            picked = self.schedule.next_read(now_ms)
            if picked is None:
                self.clock.wait(max(self.schedule.wake_in_ms(now_ms), 1) / 1000.0, stop)
                return
            read = picked
        try:
            page = self._result(future) if future is not None else self.logs.page(
                read.start_ms, read.end_ms, read.next_token, stop)
        except TokenExpiredError as exc:
            log.warning(
                "CloudWatch refused a pagination token; reading the range again from its start",
                extra={"start_ms": read.start_ms, "end_ms": read.end_ms, "error": str(exc)},
            )
            read.next_token = None
            return
        if page is None:
            return  # stopping
        self.pages += 1
        read.pages += 1
        if page.next_token and self.prefetch and self.schedule.alone(read):
            self._prefetched = (read, self._executor().submit(
                self.logs.page, read.start_ms, read.end_ms, page.next_token, stop))
        if not self.on_page(read, page):
            return
        if page.next_token:
            read.next_token = page.next_token
            return
        self.schedule.finished(read)

    def _result(self, future: Future[Page | None]) -> Page | None:
        # The prefetch may retry for a while (throttling): this thread stays alive for liveness meanwhile.
        while True:
            try:
                return future.result(timeout=1.0)
            except FutureTimeout:
                self.beat()

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="forwarder-prefetch")
        return self._pool
