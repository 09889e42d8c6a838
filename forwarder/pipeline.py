"""``forwarder run``: a source (CloudWatch, or Kinesis) -> validation -> batches -> Falco, with a checkpoint.

Threads, each watched by liveness (metrics.Health):
- the reader runs the source (sources/source.py: polling CloudWatch on the schedule of sources/schedule.py, or reading a
  Kinesis stream's shards, sources/kinesis_source.py, and handing over each page's or record's new events); each
  event is validated and batched here (``_emit``), full batches go into a queue bounded by
  ``max_inflight_bytes``: when Falco is away the queue fills and reading pauses;
- ``--falco-connections`` deliverers take batches from the queue, each hands them to its own connection
  (delivery.Sender, which retries until Falco acknowledges) and tells the source what was acknowledged,
  in whatever order the answers come;
- the checkpointer saves the source's positions and remembered hashes when checkpoint/policy.py says so;
- the caller's thread supervises: a progress line every minute; on ``stop`` (SIGTERM) reading stops at
  once, the deliverer gets ``shutdown_grace_seconds`` to empty the queue, the checkpoint is saved and
  run() returns 0. Whatever was not acknowledged is not in the checkpoint and is read again after the
  restart. An unexpected error in a thread returns 1 (crash-only: the restart resumes from the checkpoint).

No single event can stop the others: whatever handling one event raises, that event is skipped with
reason ``handling_error`` (counted, logged with its stream and id) and acknowledged as handled, so a
restart does not meet it again.

With ``--lease`` (replicas/lease.py) all of that is one *term*: a standby waits until it holds the Lease, claims
the checkpoint, and runs a term; when the Lease is lost the term ends at once, without delivering what is
queued or saving anything (the new holder resumes from the checkpoint), and the replica stands by again.
A clean stop ends the term as above and then releases the Lease.

After an upgrade from release 0.3 (replicas/upgrade.py), ``--wait-for-lease`` keeps a replica from looking at its Lease
(or, without one, from reading) until the 0.3 replicas are gone, and the first claim carries their checkpoint over.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any, Final

from .checkpoint.codec import Checkpoint
from .checkpoint.ledger import EventKey
from .checkpoint.policy import Checkpointer, SelfWriteFilter
from .checkpoint.store import CheckpointError, CheckpointStore, ConfigMapCheckpointStore, FencedError, Term, open_store
from .clock import Clock, SystemClock
from .config import RunConfig
from .delivery.batching import Batch, Batcher
from .delivery.sender import SKIP_REASON_REJECTED, FalcoClient, Sender
from .delivery.validation import REASONS, validate
from .kube import KubeApi, KubeError
from .metrics import Health, Metrics
from .model import LogEvent
from .replicas.lease import LeaseElector
from .replicas.upgrade import PREVIOUS_HASHES_SUFFIX, PreviousLease, read_previous_checkpoint
from .retry import Backoff, Retrier
from .sources.cloudwatch import SKIP_MALFORMED_RECORD, build_logs_client
from .sources.kinesis import build_kinesis_client
from .sources.source import Source, build_source, source_kind

log = logging.getLogger("forwarder.pipeline")

# SIGTERM must end the process within 10 s: the grace for delivery is capped so that joining
# threads and the final checkpoint save fit in what is left.
MAX_GRACE_SECONDS = 8.0
QUEUE_POLL_SECONDS = 0.25
# How soon the supervisor notices a stop (SIGTERM) while a term runs.
SUPERVISE_SLICE_SECONDS = 0.25
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
    """Wires one run (one term, with a Lease); ``run()`` below is the entry point."""

    def __init__(
        self,
        config: RunConfig,
        *,
        metrics: Metrics,
        health: Health,
        stop: threading.Event,
        aws_client: Any,
        falco: FalcoClient,
        store: CheckpointStore | None,
        clock: Clock,
        shutdown: threading.Event | None = None,
        lease: LeaseElector | None = None,
        term: Term | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.health = health
        self.stop = stop
        """Ends this term: set on a clean stop (``shutdown``) or when the Lease is lost."""
        self.shutdown = shutdown if shutdown is not None else stop
        """The process's stop (SIGTERM)."""
        self.lease = lease
        self.term = term
        """The Lease term this run belongs to (with a Lease)."""
        self.falco = falco
        self.store = store
        self.clock = clock
        self.aws_client = aws_client
        self._acked_lock = threading.Lock()
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

    def _deposed(self) -> bool:
        """This replica lost its Lease (or holds it in a later term than this run's): it may neither deliver nor
        write any more."""
        return self.lease is not None and not self.lease.holding(self.term)

    def _may_deliver(self) -> bool:
        return not self._deposed()

    def _load(self) -> Checkpoint | None:
        if self.store is None:
            return None
        retrier = Retrier(CHECKPOINT_LOAD_BACKOFF, self.clock, log)
        while not self.stop.is_set():
            try:
                # With a Lease: read it and make it this term's, so a deposed holder can no longer overwrite it.
                checkpoint = self.store.claim()
                break
            except FencedError as exc:
                self._fenced(exc)
                return None
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
            saved.source != source_kind(self.config)
        ):
            log.warning(
                "the checkpoint belongs to another log group, stream prefix or source; ignoring it",
                extra={"checkpoint_log_group": saved.log_group, "checkpoint_stream_prefix": saved.stream_prefix,
                       "checkpoint_source": saved.source},
            )
            return None
        log.info("resuming from checkpoint", extra={"positions": {k: str(v) for k, v in saved.positions.items()},
                                                    "hashes": checkpoint.hash_count()})
        return checkpoint

    def _build(self, checkpoint: Checkpoint | None) -> Source:
        source = build_source(self.config, aws_client=self.aws_client, clock=self.clock, metrics=self.metrics,
                              emit=self._emit, checkpoint=checkpoint, on_ready=self.health.set_ready)
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
        streams, batcher, self_writes = self._streams, self.batcher, self.self_writes
        max_event_bytes = self.config.max_event_bytes
        for key, event in fresh:
            streams[event.stream] = now_ms
            # This loop runs once per event: its steps are inline rather than in helper methods.
            try:
                result = validate(event.message, max_event_bytes)
                if not result.ok or result.body is None:
                    self._skip(event, result.reason or "invalid", result.audit_id)
                    skipped.append(key)
                    continue
                if self_writes is not None and self_writes.matches(event.message):
                    key = replace(key, material=False)  # our own checkpoint write, read back: not worth a save
                full = batcher.add(key, result.body)
            except Exception as exc:  # noqa: BLE001 - one event must never stop the others (SKIP_HANDLING_ERROR)
                self._skip(event, SKIP_HANDLING_ERROR, None, error=f"{type(exc).__name__}: {exc}"[:300])
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

    def _deliver(self, sender: Sender) -> None:
        allowed = self._may_deliver if self.lease is not None else None
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
                outcome = sender.deliver(batch, self.delivery_stop, allowed)
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
        stamps = [key.timestamp_ms for key in keys]
        newest = max(stamps)
        self.metrics.end_to_end_latency_seconds.observe_many([now - ts / 1000 for ts in stamps])
        with self._acked_lock:
            if self._newest_acked_ms is None or newest > self._newest_acked_ms:
                self._newest_acked_ms = newest
        self._update_lag()
        if self.checkpointer is not None and not self._deposed():
            try:
                self.checkpointer.after_acknowledged()
            except FencedError as exc:
                self._fenced(exc)

    def _update_lag(self) -> None:
        if self._newest_acked_ms is not None:
            self.metrics.delivery_lag_seconds.set(max(0.0, self.clock.time() - self._newest_acked_ms / 1000.0))

    # --- checkpoint ---------------------------------------------------------------------------

    def _checkpoint(self) -> None:
        checkpointer = self.checkpointer
        assert checkpointer is not None
        while not self.clock.wait(checkpointer.due_in(), self.stop) and not self._deposed():
            try:
                checkpointer.tick()
            except FencedError as exc:
                self._fenced(exc)
                return

    def _fenced(self, exc: FencedError) -> None:
        """The store refused a write: another replica holds the Lease. End this term now."""
        log.warning("checkpoint write refused: another replica holds the Lease", extra={"error": str(exc)})
        if self.lease is not None:
            self.lease.step_down(str(exc))
        self.stop.set()

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

    def _supervise(self) -> None:
        """Until the term ends: a progress line every minute; a stop (SIGTERM) ends the term."""
        last = self._progress_counts()
        next_progress = time.monotonic() + PROGRESS_INTERVAL_SECONDS
        while not self.stop.wait(SUPERVISE_SLICE_SECONDS):
            # The Lease ran out by this replica's own clock (resumed after a pause, say): end the term now,
            # whether or not the elector or a refused write has noticed yet.
            if self.shutdown.is_set() or self._deposed():
                self.stop.set()
                break
            if time.monotonic() >= next_progress:
                last = self._log_progress(last)
                next_progress += PROGRESS_INTERVAL_SECONDS

    def run(self) -> int:
        checkpoint = self._load()
        if self.stop.is_set():
            return 0 if self._failure is None else 1
        self.source = self._build(checkpoint)
        reader = threading.Thread(target=self._guarded("reader", self._read), name="forwarder-reader", daemon=True)
        deliverers = [
            threading.Thread(target=self._guarded(f"delivery-{i}" if i else "delivery", partial(self._deliver, sender)),
                             name=f"forwarder-delivery-{i}", daemon=True)
            for i, sender in enumerate(self.falco.senders)
        ]
        checkpointer = None
        if self.checkpointer is not None:
            checkpointer = threading.Thread(target=self._guarded("checkpoint", self._checkpoint),
                                            name="forwarder-checkpoint", daemon=True)
        threads = [reader, *deliverers, *([checkpointer] if checkpointer is not None else [])]
        for thread in threads:
            thread.start()
        self._supervise()
        stopped_at = time.monotonic()
        if self._deposed():
            return self._abandon(threads, stopped_at)
        grace = min(self.config.shutdown_grace_seconds, MAX_GRACE_SECONDS)
        if self._failure is None:
            log.info("stopping: delivering what is in flight", extra={"grace_seconds": grace,
                                                                      "queued_batches": len(self.queue)})
        for deliverer in deliverers:
            deliverer.join(max(0.0, stopped_at + grace - time.monotonic()))
        # Whatever is still being sent stays unacknowledged: it is read again after the restart.
        self.delivery_stop.set()
        for deliverer in deliverers:
            deliverer.join(max(0.0, stopped_at + grace + 0.5 - time.monotonic()))
        reader.join(max(0.0, min(0.5, stopped_at + grace + 0.5 - time.monotonic())))
        saved = True
        if self.checkpointer is not None and checkpointer is not None:
            checkpointer.join(0.5)
            try:
                saved = self.checkpointer.tick(final=True, timeout=1.0)
            except FencedError as exc:
                self._fenced(exc)
                saved = False
        log.info(
            "stopped",
            extra={"checkpoint_saved": saved, "queued_batches_left": len(self.queue),
                   "seconds": round(time.monotonic() - stopped_at, 3)},
        )
        return 0 if self._failure is None else 1

    def _abandon(self, threads: list[threading.Thread], stopped_at: float) -> int:
        """The Lease was lost: stop delivering at once, save nothing; the new holder resumes from the checkpoint."""
        self.delivery_stop.set()
        for thread in threads:
            thread.join(max(0.0, stopped_at + 2.0 - time.monotonic()))
        log.info("term ended: nothing more is read, delivered or saved by this replica",
                 extra={"queued_batches_dropped": len(self.queue), "seconds": round(time.monotonic() - stopped_at, 3)})
        return 0 if self._failure is None else 1


def _wait_for_previous(previous: PreviousLease, store: CheckpointStore | None, *, health: Health,
                       stop: threading.Event) -> bool:
    """Before the first term (or, without a Lease, the run): True once the replicas of the forwarder before an upgrade
    are gone, False on ``stop``. They are when their Lease is free for good (replicas/upgrade.py), or when this
    checkpoint holds positions already: only a replica that waited for them writes it."""
    health.set_ready(True)  # waiting is this replica's job now: the rolling update goes on, and stops the old ones
    if isinstance(store, ConfigMapCheckpointStore):
        try:
            if store.has_checkpoint():
                return True
        except CheckpointError:
            pass  # not known: wait
    return previous.wait(stop)


def _run_terms(config: RunConfig, lease: LeaseElector, *, health: Health, stop: threading.Event,
               make: Callable[[threading.Event, Term], Pipeline]) -> int:
    """Stand by until this replica holds the Lease, run a term, and again, until ``stop``; then release it."""
    lease_stop = threading.Event()
    elector = threading.Thread(target=_watched(health, "lease", partial(lease.run, lease_stop)),
                               name="forwarder-lease", daemon=True)
    elector.start()
    code = 0
    try:
        while not stop.is_set():
            health.set_ready(True)  # a standby is doing its job: waiting
            log.info("standing by for the Lease", extra={"lease": f"{lease.namespace}/{lease.name}",
                                                         "identity": lease.identity})
            term = lease.wait_for_term(stop)
            if term is None:
                break
            term_stop = threading.Event()
            lease.on_lost = term_stop.set
            code = make(term_stop, term).run()
            lease.on_lost = None
            if code != 0:
                break
    finally:
        lease_stop.set()
        elector.join(1.0)
        lease.release()
    return code


def _watched(health: Health, name: str, body: Callable[[], None]) -> Callable[[], None]:
    def target() -> None:
        health.watch(name)
        try:
            body()
        except Exception:  # noqa: BLE001 (the elector must not die silently: log, and let liveness see it)
            log.exception(f"{name} failed")
            return
        health.unwatch()

    return target


def _also_own(config: RunConfig) -> tuple[tuple[str, str, str], ...]:
    """Objects besides the checkpoint's whose requests, read back from the audit log, are this forwarder's own: its
    Lease, and what it only reads of the forwarder before an upgrade."""
    own: list[tuple[str, str, str]] = []
    if config.lease is not None:
        own.append(("leases", config.lease.namespace, config.lease.name))
    if config.wait_for_lease is not None:
        own.append(("leases", config.wait_for_lease.namespace, config.wait_for_lease.name))
    if config.migrate_from is not None and config.migrate_from.namespace and config.migrate_from.name:
        namespace, name = config.migrate_from.namespace, config.migrate_from.name
        own += [("configmaps", namespace, name), ("configmaps", namespace, name + PREVIOUS_HASHES_SUFFIX)]
    return tuple(own)


def _previous_checkpoint(config: RunConfig, kube: KubeApi | None) -> Callable[[], Checkpoint | None] | None:
    """Reads the checkpoint of the forwarder before an upgrade (``--migrate-from``), or None."""
    spec = config.migrate_from
    if spec is None or kube is None or not spec.namespace or not spec.name:
        return None
    return partial(read_previous_checkpoint, kube, spec.namespace, spec.name)


def run(
    config: RunConfig,
    *,
    metrics: Metrics,
    health: Health,
    stop: threading.Event,
    logs_client: Any = None,
    kinesis_client: Any = None,
    falco: FalcoClient | None = None,
    clock: Clock | None = None,
    store: CheckpointStore | None = None,
) -> int:
    """Forward until ``stop`` is set; 0 on a clean stop. ``store`` overrides ``config.checkpoint`` (tests)."""
    if clock is None:
        clock = SystemClock(beat=health.beat)
    if config.source.kind == "kinesis":
        aws_client = kinesis_client or build_kinesis_client(config.region, config.request_timeout_seconds)
    else:
        aws_client = logs_client or build_logs_client(config.region, config.request_timeout_seconds)
    lease: LeaseElector | None = None
    kube: KubeApi | None = None
    previous: PreviousLease | None = None
    spec = config.checkpoint
    if ((spec is not None and spec.kind == "configmap" and store is None) or config.lease is not None
            or config.wait_for_lease is not None):
        try:
            kube = KubeApi(config.kube_api_url, timeout_seconds=config.request_timeout_seconds)
        except KubeError as exc:
            raise CheckpointError(str(exc)) from exc
        if config.lease is not None:
            assert config.lease_identity is not None
            lease = LeaseElector(kube, config.lease.namespace, config.lease.name, config.lease_identity,
                                 duration_seconds=config.lease_duration_seconds, clock=clock, metrics=metrics)
        if config.wait_for_lease is not None:
            previous = PreviousLease(kube, config.wait_for_lease.namespace, config.wait_for_lease.name, clock=clock,
                                     duration_seconds=config.lease_duration_seconds)
    if store is None and spec is not None:
        store = open_store(spec.kind, path=spec.path, namespace=spec.namespace, name=spec.name,
                           api=kube if spec.kind == "configmap" else None, clock=clock,
                           fence=None if lease is None else lease.fence, also_own=_also_own(config),
                           previous=_previous_checkpoint(config, kube))
    owns_falco = falco is None
    if falco is None:
        falco = FalcoClient(config.falco_url, metrics, timeout_seconds=config.request_timeout_seconds, clock=clock,
                            connections=config.falco_connections)

    def make(term_stop: threading.Event, term: Term | None = None) -> Pipeline:
        assert falco is not None
        return Pipeline(config, metrics=metrics, health=health, stop=term_stop, shutdown=stop, aws_client=aws_client,
                        falco=falco, store=store, clock=clock, lease=lease, term=term)

    try:
        # Neither the run nor the Lease starts before the replicas of the forwarder before an upgrade are gone.
        if previous is not None and not _wait_for_previous(previous, store, health=health, stop=stop):
            return 0
        if lease is None:
            metrics.active.set(1)
            return make(stop).run()
        return _run_terms(config, lease, health=health, stop=stop, make=make)
    finally:
        if owns_falco:
            falco.close()
