"""Delivers batches to Falco's k8saudit webhook, retrying until Falco takes them.

Retry policy as data:
- connection errors, timeouts, 408, 425, 429 and 5xx are transient: retried for as long as
  it takes, with jittered exponential backoff (reset after a success); ``Retry-After`` is
  honoured as a lower bound on the wait;
- 3xx, 401, 403, 404, 405 and 407 mean the URL or the endpoint is wrong, never one event:
  they are retried the same way (and logged as errors) instead of discarding every event;
- any other 4xx is blamed on the content: the batch is split in halves until the event(s)
  at fault are isolated; those are logged once, counted and skipped, the rest delivered.
Every wait ends early when ``stop`` is set.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Final

import urllib3

from .batching import Batch
from .clock import Clock, SystemClock
from .metrics import Metrics
from .retry import Backoff, Retrier

log = logging.getLogger("forwarder.delivery")

TRANSIENT_STATUSES: Final = frozenset({408, 425, 429})
ENDPOINT_STATUSES: Final = frozenset({401, 403, 404, 405, 407})
# A Retry-After beyond this is treated as this: a broken header must not park delivery for days.
MAX_RETRY_AFTER_SECONDS: Final = 300.0
SKIP_REASON_REJECTED: Final = "rejected"
USER_AGENT: Final = "falco-eks-forwarder"


@dataclass
class DeliveryOutcome:
    acknowledged: list[Hashable] = field(default_factory=list)
    """Keys of events Falco answered 2xx for."""
    rejected: list[Hashable] = field(default_factory=list)
    """Keys of events isolated behind a permanent 4xx: logged once, counted, skipped."""
    completed: bool = True
    """False only when ``stop`` ended the retries; the unsent keys are then in neither list."""


@dataclass(frozen=True)
class _Attempt:
    status: int | None
    """HTTP status, or None when no answer came (connection error, timeout)."""
    error: str | None = None
    retry_after: float | None = None
    detail: str = ""


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - now)


class FalcoClient:
    """Sends EventList batches to one webhook URL over a keep-alive connection pool."""

    def __init__(
        self,
        url: str,
        metrics: Metrics,
        timeout_seconds: float = 10.0,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.url = url
        self.metrics = metrics
        self._clock = clock if clock is not None else SystemClock()
        self.retrier = Retrier(backoff if backoff is not None else Backoff(), self._clock, log, rng=rng)
        self._timeout = urllib3.Timeout(connect=timeout_seconds, read=timeout_seconds)
        # One pool for the one host; retries and redirects are ours to decide.
        self._manager = urllib3.PoolManager(num_pools=1, maxsize=2, retries=False, timeout=self._timeout)
        self._headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}

    def close(self) -> None:
        self._manager.clear()

    def deliver(self, batch: Batch, stop: threading.Event) -> DeliveryOutcome:
        """Send ``batch`` until every event is acknowledged or isolated as rejected.

        Sending is tried even when ``stop`` is already set (so a shutdown can flush to a
        healthy Falco); only the waits before retries are given up when ``stop`` is set.
        """
        outcome = DeliveryOutcome()
        # Pieces still to send, in order; a refused piece is replaced by its two halves.
        todo: deque[Batch] = deque([batch]) if batch.bodies else deque()
        while todo:
            piece = todo[0]
            attempt = self._post(piece)
            status = attempt.status
            if status is not None and 200 <= status < 300:
                todo.popleft()
                self.retrier.succeeded()
                outcome.acknowledged.extend(piece.keys)
                self.metrics.events_delivered_total.inc(len(piece.keys))
                self.metrics.batches_total.labels(outcome="acknowledged").inc()
                self.metrics.last_delivery_timestamp_seconds.set(self._clock.time())
                continue
            if status is not None and self._blames_content(status):
                todo.popleft()
                self.metrics.batches_total.labels(outcome="rejected").inc()
                if len(piece.keys) > 1:
                    first, second = piece.split()
                    todo.appendleft(second)
                    todo.appendleft(first)
                    log.debug(
                        "Falco refused a batch; splitting it to find the event at fault",
                        extra={"status": status, "events": len(piece.keys)},
                    )
                else:
                    self._reject(piece, attempt, outcome)
                continue
            # Transient, or the endpoint itself is wrong: wait and send the same piece again.
            if not self._wait_before_retry(attempt, len(piece.keys), stop):
                outcome.completed = False
                return outcome
        return outcome

    @staticmethod
    def _blames_content(status: int) -> bool:
        return 400 <= status < 500 and status not in TRANSIENT_STATUSES and status not in ENDPOINT_STATUSES

    def _post(self, piece: Batch) -> _Attempt:
        try:
            # Streamed in chunks with an exact Content-Length: no second copy of a 12 MiB batch.
            response = self._manager.request(
                "POST",
                self.url,
                body=piece.chunks(),
                headers={**self._headers, "Content-Length": str(piece.size_bytes)},
                timeout=self._timeout,
                retries=False,
                redirect=False,
                preload_content=True,
            )
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            return _Attempt(status=None, error=f"{type(exc).__name__}: {exc}")
        detail = ""
        if response.status >= 300:
            detail = response.data[:300].decode("utf-8", "replace").strip()
        retry_after = parse_retry_after(response.headers.get("Retry-After"), self._clock.time())
        return _Attempt(status=response.status, retry_after=retry_after, detail=detail)

    def _reject(self, piece: Batch, attempt: _Attempt, outcome: DeliveryOutcome) -> None:
        key = piece.keys[0]
        outcome.rejected.append(key)
        self.metrics.events_skipped_total.labels(reason=SKIP_REASON_REJECTED).inc()
        log.error(
            "Falco refused an event; skipping it",
            extra={"key": str(key), "status": attempt.status, "response": attempt.detail, "bytes": piece.size_bytes},
        )

    def _wait_before_retry(self, attempt: _Attempt, events: int, stop: threading.Event) -> bool:
        """Count and log the failure, wait; False when ``stop`` is set instead."""
        if stop.is_set():
            return False
        self.metrics.batches_total.labels(outcome="retried").inc()
        self.metrics.delivery_retries_total.inc()
        fields = {
            "status": attempt.status,
            "error": attempt.error,
            "response": attempt.detail,
            "events": events,
            "consecutive_failures": self.retrier.failures + 1,
        }
        at_least = 0.0 if attempt.retry_after is None else min(attempt.retry_after, MAX_RETRY_AFTER_SECONDS)
        if attempt.status is not None and (300 <= attempt.status < 400 or attempt.status in ENDPOINT_STATUSES):
            return self.retrier.failed(stop, "Falco's URL answers as if it were wrong; check --falco-url. Retrying",
                                       fields, at_least=at_least, level=logging.ERROR)
        return self.retrier.failed(stop, "delivery to Falco failed; retrying", fields, at_least=at_least)
