"""``forwarder run``: a source (CloudWatch) -> validation -> batches -> Falco, with a checkpoint.

Four threads, each watched by liveness (metrics.Health):
- the reader runs the source (source.py: it reads CloudWatch on the schedule of schedule.py and hands
  over each page's new events); each event is validated and batched here (``_emit``), full batches go
  into a queue bounded by ``max_inflight_bytes``: when Falco is away the queue fills and reading pauses;
- the deliverer takes batches from the queue, hands them to FalcoClient.deliver (which retries until
  Falco acknowledges) and tells the source what was acknowledged;
- the checkpointer saves the source's positions and remembered hashes when checkpoint_policy.py says so;
- the caller's thread supervises: a progress line every minute; on ``stop`` (SIGTERM) reading stops at
  once, the deliverer gets ``shutdown_grace_seconds`` to empty the queue, the checkpoint is saved and
  run() returns 0. Whatever was not acknowledged is not in the checkpoint and is read again after the
  restart. An unexpected error in a thread returns 1 (crash-only: the restart resumes from the checkpoint).

No single event can stop the others: whatever handling one event raises, that event is skipped with
reason ``handling_error`` (counted, logged with its stream and id) and acknowledged as handled, so a
restart does not meet it again.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Final

from .batching import Batch, Batcher
from .checkpoint import CheckpointError, CheckpointStore, ConfigMapCheckpointStore, open_store
from .checkpoint_codec import Checkpoint
from .checkpoint_policy import Checkpointer, SelfWriteFilter
from .clock import Clock, SystemClock
from .cloudwatch import SKIP_MALFORMED_RECORD, build_logs_client
from .config import RunConfig
from .delivery import SKIP_REASON_REJECTED, FalcoClient
from .ledger import EventKey
from .metrics import Health, Metrics
from .model import LogEvent
from .retry import Backoff, Retrier
from .source import PollingSource, Source, build_polling_source
from .validation import REASONS, validate

log = logging.getLogger("forwarder.pipeline")

# SIGTERM must end the process within 10 s: the grace for delivery is capped so that joining
# threads and the final checkpoint save fit in what is left.
MAX_GRACE_SECONDS = 8.0
QUEUE_POLL_SECONDS = 0.25
# An exception raised while handling one event (a bug, an input no check foresaw): that event is
# skipped with this reason and the others go on; otherwise the pod would crash-loop on it.
SKIP_HANDLING_ERROR: Final = "handling_error"
SKIP_REASONS: Final = (*REASONS, SKIP_HANDLING_ERROR, SKIP_REASON_REJECTED, SKIP_MALFORMED_RECORD)
CHECKPOINT_LOAD_BACKOFF = Backoff(initial_seconds=1.0, max_seconds=30.0)
# A summary line this often, so `kubectl logs` shows that events flow without a metrics scraper.
PROGRESS_INTERVAL_SECONDS = 60.0


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
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.health = health
        self.stop = stop
        self.falco = falco
        self.store = store
        self.clock = clock
        self.logs_client = logs_client
        self.queue = BatchQueue(config.max_inflight_bytes)
        self.delivery_stop = threading.Event()
        self.batcher = Batcher(config.max_batch_bytes)
        self.self_writes = None if store is None or store.self_writes is None else SelfWriteFilter(store.self_writes)
        self.source: Source | None = None
        self.checkpointer: Checkpointer | None = None
        self._failure: BaseException | None = None
        self._newest_acked_ms: int | None = None
        self._streams: dict[str, int] = {}
        for reason in SKIP_REASONS:
            metrics.events_skipped_total.labels(reason=reason)  # exported as 0 from the start

    # --- start --------------------------------------------------------------------------------

    def _load(self) -> Checkpoint | None:
        if self.store is None:
            return None
        retrier = Retrier(CHECKPOINT_LOAD_BACKOFF, self.clock, log)
        while not self.stop.is_set():
            try:
                checkpoint = self.store.load()
                break
            except CheckpointError as exc:
                # The Kubernetes API can be briefly away when a pod starts; a broken file is not transient.
                if not isinstance(self.store, ConfigMapCheckpointStore):
                    raise
                retrier.failed(self.stop, "cannot read the checkpoint; retrying", {"error": str(exc)},
                               level=logging.ERROR)
        else:
            return None
        if checkpoint is None:
            return None
        saved = checkpoint.positions
        if (saved.log_group, saved.stream_prefix) != (self.config.log_group, self.config.stream_prefix) or (
            saved.source != PollingSource.kind
        ):
            log.warning(
                "the checkpoint belongs to another log group, stream prefix or source; ignoring it",
                extra={"checkpoint_log_group": saved.log_group, "checkpoint_stream_prefix": saved.stream_prefix,
                       "checkpoint_source": saved.source},
            )
            return None
        log.info("resuming from checkpoint", extra={"positions": dict(saved.positions),
                                                    "hashes": checkpoint.hash_count()})
        return checkpoint

    def _build(self, checkpoint: Checkpoint | None) -> Source:
        source = build_polling_source(self.config, logs_client=self.logs_client, clock=self.clock,
                                      metrics=self.metrics, emit=self._emit, checkpoint=checkpoint,
                                      on_ready=self.health.set_ready)
        if checkpoint is None:
            log.info("no checkpoint: starting", extra={"start_ms": self.config.start_at.resolve(
                int(self.clock.time() * 1000))})
        if self.store is not None:
            self.checkpointer = Checkpointer(
                self.store, source.ledger, log_group=self.config.log_group, stream_prefix=self.config.stream_prefix,
                source=source.kind, clock=self.clock, metrics=self.metrics,
                positions_interval_seconds=self.config.checkpoint_interval_seconds,
                hashes_interval_seconds=self.config.checkpoint_hashes_interval_seconds,
                resumed=checkpoint is not None,
            )
        source.export_metrics()
        self._export_delivery_state(source)
        return source

    def _export_delivery_state(self, source: Source) -> None:
        """Gauges of what waits for delivery, read when /metrics is scraped."""
        ledger = source.ledger

        def oldest() -> float:
            handed_out = ledger.oldest_outstanding_ms()
            return 0.0 if handed_out is None else max(0.0, self.clock.time() - handed_out / 1000)

        self.metrics.oldest_unacknowledged_seconds.set_function(oldest)
        self.metrics.open_buckets.set_function(ledger.open_buckets)
        self.metrics.remembered_hashes.set_function(ledger.remembered_hashes)

    # --- reading ------------------------------------------------------------------------------

    def _emit(self, fresh: list[tuple[EventKey, LogEvent]]) -> bool:
        """Validate and batch one page's new events; full batches go to the delivery queue."""
        assert self.source is not None
        skipped: list[EventKey] = []
        now_ms = int(self.clock.time() * 1000)
        for key, event in fresh:
            self._streams[event.stream] = now_ms
            try:
                full = self._check_and_batch(key, event)
            except Exception as exc:  # noqa: BLE001 - one event must never stop the others (SKIP_HANDLING_ERROR)
                self._skip(event, SKIP_HANDLING_ERROR, None, error=f"{type(exc).__name__}: {exc}"[:300])
                full = None
            if full is None:
                skipped.append(key)
                continue
            for batch in full:
                if not self._enqueue(batch):
                    return False
        if skipped:
            self.source.acknowledge(skipped)  # handled for good: never read as new again
        self._forget_old_streams(now_ms)
        last = self.batcher.flush()
        return last is None or self._enqueue(last)

    def _check_and_batch(self, key: EventKey, event: LogEvent) -> list[Batch] | None:
        """The batches ``event`` completed, or None when it is skipped (counted and logged)."""
        result = validate(event.message, self.config.max_event_bytes)
        if not result.ok or result.body is None:
            self._skip(event, result.reason or "invalid", result.audit_id)
            return None
        if self.self_writes is not None and self.self_writes.matches(event.message):
            key = replace(key, material=False)  # our own checkpoint write, read back: delivered, not worth a save
        return self.batcher.add(key, result.body)

    def _skip(self, event: LogEvent, reason: str, audit_id: str | None, error: str | None = None) -> None:
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

    def _guarded(self, name: str, body: Callable[[], None]) -> Callable[[], None]:
        """A thread body watched by liveness; an unexpected error stops the run (exit 1)."""

        def target() -> None:
            self.health.watch(name)
            try:
                body()
            except BaseException as exc:  # noqa: BLE001 (reported by the supervisor, which exits non-zero)
                log.exception(f"{name} failed")
                self._failure = exc
                self.stop.set()
                return
            self.health.unwatch()

        return target

    def _read(self) -> None:
        assert self.source is not None
        self.source.run(self.stop, self.health.beat)

    # --- delivery -----------------------------------------------------------------------------

    def _deliver(self) -> None:
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

    def _acknowledged(self, keys: list[EventKey]) -> None:
        assert self.source is not None
        self.source.acknowledge(keys)
        now = self.clock.time()
        latency = self.metrics.end_to_end_latency_seconds
        for key in keys:
            latency.observe(max(0.0, now - key.timestamp_ms / 1000))
        newest = max(k.timestamp_ms for k in keys)
        if self._newest_acked_ms is None or newest > self._newest_acked_ms:
            self._newest_acked_ms = newest
        self._update_lag()
        if self.checkpointer is not None:
            self.checkpointer.after_acknowledged()

    def _update_lag(self) -> None:
        if self._newest_acked_ms is not None:
            self.metrics.delivery_lag_seconds.set(max(0.0, self.clock.time() - self._newest_acked_ms / 1000.0))

    # --- checkpoint ---------------------------------------------------------------------------

    def _checkpoint(self) -> None:
        checkpointer = self.checkpointer
        assert checkpointer is not None
        while not self.clock.wait(checkpointer.due_in(), self.stop):
            checkpointer.tick()

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
        checkpoint = self._load()
        if self.stop.is_set():
            return 0 if self._failure is None else 1
        self.source = self._build(checkpoint)
        threads = [
            threading.Thread(target=self._guarded("reader", self._read), name="forwarder-reader", daemon=True),
            threading.Thread(target=self._guarded("delivery", self._deliver), name="forwarder-delivery",
                             daemon=True),
        ]
        if self.checkpointer is not None:
            threads.append(threading.Thread(target=self._guarded("checkpoint", self._checkpoint),
                                            name="forwarder-checkpoint", daemon=True))
        for thread in threads:
            thread.start()
        reader, deliverer = threads[0], threads[1]
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
        saved = True
        if self.checkpointer is not None:
            threads[2].join(0.5)
            saved = self.checkpointer.tick(final=True, timeout=1.0)
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
    if clock is None:
        clock = SystemClock(beat=health.beat)
    if logs_client is None:
        logs_client = build_logs_client(config.region, config.request_timeout_seconds)
    if store is None and config.checkpoint is not None:
        spec = config.checkpoint
        store = open_store(spec.kind, path=spec.path, namespace=spec.namespace, name=spec.name,
                           timeout_seconds=config.request_timeout_seconds, clock=clock)
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
