"""``forwarder run``: CloudWatch Logs -> validation -> batches -> Falco, with a checkpoint.

Three threads:
- the reader (reader.ReadLoop) fetches pages, keeps the new events (ranges.RangeTracker),
  validates them and puts full batches into a queue bounded by ``max_inflight_bytes``; when
  Falco is away the queue fills and reading pauses, so memory stays bounded;
- the deliverer takes batches from the queue, hands them to FalcoClient.deliver (which retries
  until Falco acknowledges), tells the tracker what was acknowledged and saves the checkpoint
  after every acknowledged batch;
- the caller's thread supervises: on ``stop`` (SIGTERM) reading stops at once, the deliverer
  gets ``shutdown_grace_seconds`` to empty the queue, then the checkpoint is saved and run()
  returns 0. Whatever was not acknowledged is not in the checkpoint and is read again after
  the restart. An unexpected error in a thread saves the checkpoint and returns 1 (crash-only:
  the restart resumes from the checkpoint).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Final

from .batching import Batch, Batcher
from .checkpoint import (
    CheckpointError,
    CheckpointState,
    CheckpointStore,
    ConfigMapCheckpointStore,
    open_store,
)
from .clock import Clock, SystemClock
from .cloudwatch import LogsReader, build_logs_client
from .config import RunConfig
from .delivery import FalcoClient
from .metrics import Health, Metrics
from .model import LogEvent
from .ranges import EventKey, RangeTracker, Scan
from .ratelimit import RateLimiter
from .reader import ReadLoop
from .retry import Backoff, Retrier
from .validation import REASONS, validate

log = logging.getLogger("forwarder.pipeline")

# SIGTERM must end the process within 10 s: the grace for delivery is capped so that joining
# threads and the final checkpoint save fit in what is left.
MAX_GRACE_SECONDS = 8.0
QUEUE_POLL_SECONDS = 0.25
# An exception raised while handling one event (a bug, an input no check foresaw): that event is
# skipped with this reason and the others go on; otherwise the pod would crash-loop on it.
SKIP_HANDLING_ERROR: Final = "handling_error"
CHECKPOINT_LOAD_BACKOFF = Backoff(initial_seconds=1.0, max_seconds=30.0)
OPTIONAL_SWEEP_MARGIN_MS = 500
# A summary line this often, so `kubectl logs` shows that events flow without a metrics scraper.
PROGRESS_INTERVAL_SECONDS = 60.0


def optional_sweep_margin_ms(config: RunConfig) -> int:
    """How long before a due head scan an optional sweep may still start.

    One call's worth of time (the limiter's spacing plus a typical answer), so optional sweeps
    never delay the head; but at most half a poll interval: with a short interval the full margin
    would never be free and late events would wait for the final sweep.
    """
    margin_ms = int(1000 / config.max_requests_per_second) + OPTIONAL_SWEEP_MARGIN_MS
    return min(margin_ms, int(config.poll_interval_seconds * 1000) // 2)


class BatchQueue:
    """FIFO of batches bounded by bytes (queued plus the one being delivered)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: collections.deque[Batch] = collections.deque()
        self._cond = threading.Condition()
        self.bytes = 0

    def put(self, batch: Batch, stop: threading.Event, beat: Callable[[], None]) -> bool:
        """Wait for room (at least one batch always fits); False when ``stop`` was set first."""
        with self._cond:
            while self.bytes > 0 and self.bytes + batch.size_bytes > self.max_bytes:
                if stop.is_set():
                    return False
                beat()  # waiting for Falco is healthy
                self._cond.wait(QUEUE_POLL_SECONDS)
            if stop.is_set():
                return False
            self._items.append(batch)
            self.bytes += batch.size_bytes
            self._cond.notify_all()
            return True

    def get(self, timeout: float) -> Batch | None:
        with self._cond:
            if not self._items:
                self._cond.wait(timeout)
            return self._items.popleft() if self._items else None

    def done(self, batch: Batch) -> None:
        with self._cond:
            self.bytes -= batch.size_bytes
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)


class Pipeline:
    """Wires one run; ``run()`` below is the entry point."""

    def __init__(
        self,
        config: RunConfig,
        *,
        metrics: Metrics,
        health: Health,
        stop: threading.Event,
        logs_client: Any,
        falco: FalcoClient,
        store: CheckpointStore | None,
        clock: Clock,
        stage_ages_ms: tuple[int, ...] | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.health = health
        self.stop = stop
        self.falco = falco
        self.store = store
        self.clock = clock
        self.stage_ages_ms = stage_ages_ms
        self.queue = BatchQueue(config.max_inflight_bytes)
        self.delivery_stop = threading.Event()
        self.limiter = RateLimiter(config.max_requests_per_second, clock=clock)
        self.logs = LogsReader(
            logs_client,
            config.log_group,
            config.stream_prefix,
            limiter=self.limiter,
            metrics=metrics,
            clock=clock,
            on_ready=health.set_ready,
        )
        self.tracker: RangeTracker | None = None
        self.batcher = Batcher(config.max_batch_bytes)
        for reason in (*REASONS, SKIP_HANDLING_ERROR):
            metrics.events_skipped_total.labels(reason=reason)  # exported as 0 from the start
        self._save_lock = threading.Lock()
        self._failure: BaseException | None = None
        self._newest_acked_ms: int | None = None
        self._streams: dict[str, int] = {}
        self._save_errors = 0

    # --- start --------------------------------------------------------------------------------

    def _load_state(self) -> CheckpointState | None:
        if self.store is None:
            return None
        retrier = Retrier(CHECKPOINT_LOAD_BACKOFF, self.clock, log)
        while not self.stop.is_set():
            try:
                return self.store.load()
            except CheckpointError as exc:
                # The Kubernetes API can be briefly away when a pod starts; a broken file is not transient.
                if not isinstance(self.store, ConfigMapCheckpointStore):
                    raise
                retrier.failed(self.stop, "cannot read the checkpoint; retrying", {"error": str(exc)},
                               level=logging.ERROR)
        return None

    def _make_tracker(self, state: CheckpointState | None) -> RangeTracker:
        settings: dict[str, Any] = {
            "poll_interval_ms": max(1, int(self.config.poll_interval_seconds * 1000)),
            "max_lateness_ms": max(1, int(self.config.max_lateness_seconds * 1000)),
            "stage_ages_ms": self.stage_ages_ms,
        }
        if state is not None and (
            state.log_group != self.config.log_group or state.stream_prefix != self.config.stream_prefix
        ):
            log.warning(
                "the checkpoint belongs to another log group or stream prefix; ignoring it",
                extra={"checkpoint_log_group": state.log_group, "checkpoint_stream_prefix": state.stream_prefix},
            )
            state = None
        if state is None:
            head = self.config.start_at.resolve(int(self.clock.time() * 1000))
            log.info("no checkpoint: starting", extra={"start_ms": head})
            return RangeTracker(head, **settings)
        log.info(
            "resuming from checkpoint",
            extra={"head_ms": state.head_ms, "open_segments": len(state.segments), "hashes": state.hash_count()},
        )
        return RangeTracker.from_checkpoint(state, **settings)

    # --- reading ------------------------------------------------------------------------------

    def _sink(self, scan: Scan, events: list[LogEvent]) -> bool:
        assert self.tracker is not None
        fresh = self.tracker.admit(scan, events)
        if fresh:
            self.metrics.events_read_total.inc(len(fresh))
        skipped: list[EventKey] = []
        now_ms = int(self.clock.time() * 1000)
        for key, event in fresh:
            self._streams[event.stream] = now_ms
            try:
                full = self._check_and_batch(key, event)
            except Exception as exc:  # noqa: BLE001 - one event must never stop the others (see SKIP_HANDLING_ERROR)
                self._skip(key, event, SKIP_HANDLING_ERROR, None, error=f"{type(exc).__name__}: {exc}"[:300])
                full = []
            if full is None:
                skipped.append(key)
                continue
            for batch in full:
                if not self._enqueue(batch):
                    return False
        if skipped:
            self.tracker.acknowledge(skipped)  # handled for good: never read as new again
        self._forget_old_streams(now_ms)
        last = self.batcher.flush()
        return last is None or self._enqueue(last)

    def _check_and_batch(self, key: EventKey, event: LogEvent) -> list[Batch] | None:
        """The batches ``event`` completed, or None when it is skipped (counted and logged)."""
        result = validate(event.message, self.config.max_event_bytes)
        if not result.ok or result.body is None:
            self._skip(key, event, result.reason or "invalid", result.audit_id)
            return None
        return self.batcher.add(key, result.body)

    def _skip(self, key: EventKey, event: LogEvent, reason: str, audit_id: str | None, error: str | None = None
              ) -> None:
        self.metrics.events_skipped_total.labels(reason=reason).inc()
        log.warning(
            "skipping an event Falco could not use",
            extra={"reason": reason, "stream": event.stream, "event_id": event.event_id, "audit_id": audit_id,
                   "timestamp_ms": event.timestamp_ms, **({"error": error} if error else {})},
        )

    def _enqueue(self, batch: Batch) -> bool:
        ok = self.queue.put(batch, self.stop, self.health.beat)
        self.metrics.inflight_bytes.set(self.queue.bytes)
        return ok

    def _forget_old_streams(self, now_ms: int) -> None:
        horizon = now_ms - int(self.config.max_lateness_seconds * 1000)
        if any(seen < horizon for seen in self._streams.values()):
            self._streams = {s: t for s, t in self._streams.items() if t >= horizon}
        self.metrics.streams_seen.set(len(self._streams))

    def _read(self) -> None:
        assert self.tracker is not None
        loop = ReadLoop(self.tracker, self.logs, self._sink, clock=self.clock.time, wait=self.clock.wait,
                        beat=self.health.beat,
                        optional_margin_ms=optional_sweep_margin_ms(self.config), prefetch=True)
        try:
            loop.run(self.stop)
        except BaseException as exc:  # noqa: BLE001 (reported by the supervisor, which exits non-zero)
            log.exception("reader failed")
            self._failure = exc
            self.stop.set()

    # --- delivery -----------------------------------------------------------------------------

    def _deliver(self) -> None:
        try:
            while True:
                self.health.beat()
                if self.delivery_stop.is_set():
                    return
                batch = self.queue.get(QUEUE_POLL_SECONDS)
                if batch is None:
                    if self.stop.is_set():
                        return  # stopping and nothing left to deliver
                    self._update_lag()
                    continue
                try:
                    outcome = self.falco.deliver(batch, self.delivery_stop)
                finally:
                    self.queue.done(batch)
                    self.metrics.inflight_bytes.set(self.queue.bytes)
                done = [k for k in (*outcome.acknowledged, *outcome.rejected) if isinstance(k, EventKey)]
                if done:
                    self._acknowledged(done)
                if not outcome.completed:
                    return
        except BaseException as exc:  # noqa: BLE001 (reported by the supervisor, which exits non-zero)
            log.exception("delivery failed")
            self._failure = exc
            self.stop.set()

    def _acknowledged(self, keys: list[EventKey]) -> None:
        assert self.tracker is not None
        self.tracker.acknowledge(keys)
        newest = max(k.timestamp_ms for k in keys)
        if self._newest_acked_ms is None or newest > self._newest_acked_ms:
            self._newest_acked_ms = newest
        self._update_lag()
        self.save_checkpoint()

    def _update_lag(self) -> None:
        if self._newest_acked_ms is not None:
            self.metrics.delivery_lag_seconds.set(max(0.0, self.clock.time() - self._newest_acked_ms / 1000.0))

    def save_checkpoint(self, timeout: float = -1) -> bool:
        if self.store is None or self.tracker is None:
            return True
        if not self._save_lock.acquire(timeout=timeout):
            return False
        try:
            head, segments = self.tracker.snapshot()
            state = CheckpointState(self.config.log_group, self.config.stream_prefix, head, segments)
            self.store.save(state)
        except (CheckpointError, OSError) as exc:
            self._save_errors += 1
            self.metrics.checkpoint_saves_total.labels(outcome="error").inc()
            if self._save_errors % 20 == 1:
                log.error("checkpoint save failed; will retry with the next batch", extra={"error": str(exc)})
            return False
        finally:
            self._save_lock.release()
        self.metrics.checkpoint_saves_total.labels(outcome="ok").inc()
        return True

    # --- supervision --------------------------------------------------------------------------

    def _progress_counts(self) -> dict[str, float]:
        counts: dict[str, float] = {}
        for family in (self.metrics.events_read_total, self.metrics.events_delivered_total,
                       self.metrics.events_skipped_total):
            for metric in family.collect():
                for sample in metric.samples:
                    if sample.name.endswith("_total"):
                        key = sample.name.removeprefix("forwarder_events_").removesuffix("_total")
                        counts[key] = counts.get(key, 0.0) + sample.value
        return counts

    def _log_progress(self, last: dict[str, float]) -> dict[str, float]:
        now = self._progress_counts()
        lag = None if self._newest_acked_ms is None else max(0.0, self.clock.time() - self._newest_acked_ms / 1000.0)
        log.info(
            "progress",
            extra={
                "interval_seconds": PROGRESS_INTERVAL_SECONDS,
                **{f"events_{k}": int(v - last.get(k, 0.0)) for k, v in now.items()},
                "delivery_lag_seconds": None if lag is None else round(lag, 1),
                "queued_batches": len(self.queue),
            },
        )
        return now

    def run(self) -> int:
        state = self._load_state()
        if self.stop.is_set():
            return 0 if self._failure is None else 1
        self.tracker = self._make_tracker(state)
        reader = threading.Thread(target=self._read, name="forwarder-reader", daemon=True)
        deliverer = threading.Thread(target=self._deliver, name="forwarder-delivery", daemon=True)
        reader.start()
        deliverer.start()
        last = self._progress_counts()
        while not self.stop.wait(PROGRESS_INTERVAL_SECONDS):
            last = self._log_progress(last)
        stopped_at = time.monotonic()
        grace = min(self.config.shutdown_grace_seconds, MAX_GRACE_SECONDS)
        if self._failure is None:
            log.info("stopping: delivering what is in flight", extra={"grace_seconds": grace,
                                                                      "queued_batches": len(self.queue)})
        deliverer.join(max(0.0, stopped_at + grace - time.monotonic()))
        # Whatever is still being sent stays unacknowledged: it is read again after the restart.
        self.delivery_stop.set()
        deliverer.join(0.5)
        reader.join(max(0.0, min(0.5, stopped_at + grace + 0.5 - time.monotonic())))
        saved = self.save_checkpoint(timeout=1.0)
        log.info(
            "stopped",
            extra={"checkpoint_saved": saved, "queued_batches_left": len(self.queue),
                   "seconds": round(time.monotonic() - stopped_at, 3)},
        )
        return 0 if self._failure is None else 1


def run(
    config: RunConfig,
    *,
    metrics: Metrics,
    health: Health,
    stop: threading.Event,
    logs_client: Any = None,
    falco: FalcoClient | None = None,
    clock: Clock | None = None,
    store: CheckpointStore | None = None,
) -> int:
    """Forward until ``stop`` is set; 0 on a clean stop. ``store`` overrides ``config.checkpoint`` (tests)."""
    if logs_client is None:
        logs_client = build_logs_client(config.region, config.request_timeout_seconds)
    if store is None and config.checkpoint is not None:
        spec = config.checkpoint
        store = open_store(spec.kind, path=spec.path, namespace=spec.namespace, name=spec.name)
    if clock is None:
        clock = SystemClock(beat=health.beat)
    owns_falco = falco is None
    if falco is None:
        falco = FalcoClient(config.falco_url, metrics, timeout_seconds=config.request_timeout_seconds, clock=clock)
    try:
        return Pipeline(
            config, metrics=metrics, health=health, stop=stop, logs_client=logs_client, falco=falco, store=store,
            clock=clock,
        ).run()
    finally:
        if owns_falco:
            falco.close()
