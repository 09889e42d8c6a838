"""Where audit events come from, behind one small protocol; and the factories that build the sources.

A source runs in the reader thread and hands new events (each with a ledger key) to ``emit``; the
pipeline validates, batches and delivers them, then calls ``acknowledge``. What a source must
provide (the CloudWatch polling source below, and the Kinesis subscription source, kinesis_source.py):

- ``run(stop, beat)``: read until ``stop``; call ``emit(fresh)`` per batch of new events (False: stop);
- ``acknowledge(keys)``: events delivered or skipped for good;
- ``export_metrics()``: its own gauges (the polling source: stages, clock skew, request rate);
- ``ledger``: its positions and dedup (ledger.Ledger: named positions confirmed by acknowledgements,
  hash buckets, the watermark), which the checkpoint policy snapshots and restores;
- ``kind``: recorded in the checkpoint, so one source never resumes from another's positions.

``build_source`` is the one place a source is assembled, from the run's settings (``--source``): the
pipeline uses it, and so do the simulations in the tests and the benchmark, with only the clock and the
AWS client swapped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Protocol

from ..checkpoint.codec import SOURCE_CLOUDWATCH_POLL, Checkpoint
from ..checkpoint.ledger import BUCKET_MS, EventKey, Ledger
from ..clock import Clock
from ..config import RunConfig
from ..metrics import Metrics
from ..model import LogEvent
from .arrival import ArrivalEstimate
from .cloudwatch import LogsReader, Page
from .kinesis import KinesisReader
from .kinesis_source import KinesisSource, restore_kinesis_ledger
from .ratelimit import RateLimiter
from .reader import ReadLoop
from .schedule import FINAL, PROBE, Read, Schedule, Stage, build_stages

log = logging.getLogger("forwarder.source")

Emit = Callable[[list[tuple[EventKey, LogEvent]]], bool]
"""Receives the new events of one page; returns False when reading must stop."""

# An optional read starts only this long (plus a token's spacing) before the next head read at the latest.
OPTIONAL_MARGIN_MS = 500


class Source(Protocol):
    kind: str
    ledger: Ledger

    def run(self, stop: threading.Event, beat: Callable[[], None]) -> None: ...

    def acknowledge(self, keys: Sequence[EventKey]) -> None: ...

    def export_metrics(self) -> None:
        """Register the source's own gauges (read when /metrics is scraped)."""
        ...


class PollingSource:
    """CloudWatch Logs read by FilterLogEvents on the schedule of schedule.py."""

    kind = SOURCE_CLOUDWATCH_POLL

    def __init__(
        self,
        *,
        ledger: Ledger,
        schedule: Schedule,
        arrival: ArrivalEstimate,
        logs: LogsReader,
        limiter: RateLimiter,
        clock: Clock,
        metrics: Metrics,
        emit: Emit,
        max_lateness_ms: int,
        prefetch: bool,
    ) -> None:
        self.ledger = ledger
        self.schedule = schedule
        self.arrival = arrival
        self.logs = logs
        self.limiter = limiter
        self.clock = clock
        self.metrics = metrics
        self.emit = emit
        self.max_lateness_ms = max_lateness_ms
        self.loop = ReadLoop(schedule, logs, self._page, clock=clock, prefetch=prefetch)
        self.after_window = 0
        """Events CloudWatch ingested more than --max-lateness after their timestamp (read anyway)."""

    def run(self, stop: threading.Event, beat: Callable[[], None] = lambda: None) -> None:
        self.loop.run(stop, beat)

    def step(self, stop: threading.Event) -> None:
        """One page, or one wait (the simulations drive the source with this)."""
        self.loop.step(stop)

    def _page(self, read: Read, page: Page) -> bool:
        now_ms = int(self.clock.time() * 1000)
        fresh = self.ledger.admit(read.start_ms, read.end_ms, page.events, now_ms)
        read.events += len(fresh)
        events = [event for _, event in fresh]
        self.arrival.observe(events, page.received_ms)
        if fresh:
            self.metrics.events_read_total.inc(len(fresh))
            delays = [event.ingestion_ms - event.timestamp_ms for event in events if event.ingestion_ms > 0]
            self.metrics.arrival_delay_seconds.observe_many([delay / 1000 for delay in delays])
            late = sum(delay > self.max_lateness_ms for delay in delays)
            if late:
                self.after_window += late
                self.metrics.events_after_window_total.inc(late)
                log.warning(
                    "events reached CloudWatch after their lateness window closed (delivered anyway; others like "
                    "them may have been missed: consider a longer --max-lateness)",
                    extra={"events": late, "max_lateness_s": self.max_lateness_ms / 1000},
                )
            return self.emit(fresh)
        return True

    def acknowledge(self, keys: Sequence[EventKey]) -> None:
        self.ledger.acknowledge(keys)

    def export_metrics(self) -> None:
        m, schedule = self.metrics, self.schedule
        m.clock_skew_seconds.set_function(lambda: self.arrival.skew_ms() / 1000)
        m.request_rate_limit.set_function(lambda: self.limiter.rate_per_second)

        def active(stage: Stage) -> float:
            return float(stage in schedule.active)

        def behind(stage: Stage) -> float:
            return schedule.behind_ms(stage, int(self.clock.time() * 1000)) / 1000

        for stage in schedule.stages:
            m.read_stage_active.labels(stage=stage.name).set_function(partial(active, stage))
            m.read_stage_behind_seconds.labels(stage=stage.name).set_function(partial(behind, stage))

    def close(self) -> None:
        self.loop.close()


def restore_ledger(stages: Sequence[Stage], start_ms: int, checkpoint: Checkpoint | None) -> Ledger:
    """A ledger for ``stages``: every position at ``start_ms``, or where the checkpoint left it.

    A stage the checkpoint does not name (other settings, an older version) resumes where the final
    stage did: read again, never skipped. A younger stage never trails an older one; the probe never
    leads the final stage.
    """
    if checkpoint is None:
        return Ledger({s.name: start_ms for s in stages})
    saved = checkpoint.positions.positions
    final = saved.get(FINAL, min(saved.values()))
    positions = {PROBE: min(saved.get(PROBE, final), final)}
    floor = final
    for stage in reversed(stages):  # oldest first
        if stage.name != PROBE:
            floor = max(floor, saved.get(stage.name, final)) if stage.name != FINAL else final
            positions[stage.name] = floor
    remembered = checkpoint.remembered
    buckets = remembered.buckets if remembered is not None and remembered.bucket_ms == BUCKET_MS else ()
    return Ledger(positions, buckets)


def build_polling_source(
    config: RunConfig,
    *,
    logs_client: Any,
    clock: Clock,
    metrics: Metrics,
    emit: Emit,
    checkpoint: Checkpoint | None = None,
    on_ready: Callable[[bool], None] | None = None,
    prefetch: bool = True,
) -> PollingSource:
    """The polling source with the run's settings, resuming from ``checkpoint`` when there is one."""
    poll_ms = max(1, int(config.poll_interval_seconds * 1000))
    lateness_ms = max(1, int(config.max_lateness_seconds * 1000))
    stages = build_stages(poll_ms, lateness_ms)
    start_ms = config.start_at.resolve(int(clock.time() * 1000))
    ledger = restore_ledger(stages, start_ms, checkpoint)
    limiter = RateLimiter(config.max_requests_per_second, clock=clock)
    logs = LogsReader(logs_client, config.log_group, config.stream_prefix, limiter=limiter, metrics=metrics,
                      clock=clock, on_ready=on_ready)
    arrival = ArrivalEstimate(poll_ms)
    # An optional read never delays the head: it starts only if the next head read is a call's time away,
    # but at most half a poll ahead (else, with a short poll, optional reads would never start).
    margin_ms = min(int(1000 / config.max_requests_per_second) + OPTIONAL_MARGIN_MS, poll_ms // 2)
    schedule = Schedule(stages, ledger, arrival, rate_per_second=lambda: limiter.rate_per_second,
                        optional_margin_ms=margin_ms)
    return PollingSource(ledger=ledger, schedule=schedule, arrival=arrival, logs=logs, limiter=limiter, clock=clock,
                         metrics=metrics, emit=emit, max_lateness_ms=lateness_ms, prefetch=prefetch)


def source_kind(config: RunConfig) -> str:
    """What the source of ``config`` records in the checkpoint (a Kinesis source: with its stream)."""
    if config.source.kind == "kinesis":
        return f"kinesis:{config.source.stream_arn}"
    return PollingSource.kind


def build_kinesis_source(
    config: RunConfig,
    *,
    kinesis_client: Any,
    clock: Clock,
    metrics: Metrics,
    emit: Emit,
    checkpoint: Checkpoint | None = None,
    on_ready: Callable[[bool], None] | None = None,
) -> KinesisSource:
    """The Kinesis source of ``--source kinesis:ARN``, resuming from ``checkpoint`` when there is one."""
    assert config.source.stream_arn is not None
    since_ms = config.start_at.resolve(int(clock.time() * 1000))
    ledger = restore_kinesis_ledger(since_ms, checkpoint)
    reader = KinesisReader(kinesis_client, config.source.stream_arn, metrics)
    return KinesisSource(reader=reader, ledger=ledger, clock=clock, metrics=metrics, emit=emit,
                         log_group=config.log_group, stream_prefix=config.stream_prefix,
                         dedup_window_ms=max(1, int(config.max_lateness_seconds * 1000)), on_ready=on_ready)


def build_source(
    config: RunConfig,
    *,
    aws_client: Any,
    clock: Clock,
    metrics: Metrics,
    emit: Emit,
    checkpoint: Checkpoint | None = None,
    on_ready: Callable[[bool], None] | None = None,
) -> Source:
    """The source ``--source`` names: the polling source (``aws_client`` a CloudWatch Logs client) or the Kinesis
    source (a Kinesis client)."""
    if config.source.kind == "kinesis":
        return build_kinesis_source(config, kinesis_client=aws_client, clock=clock, metrics=metrics, emit=emit,
                                    checkpoint=checkpoint, on_ready=on_ready)
    return build_polling_source(config, logs_client=aws_client, clock=clock, metrics=metrics, emit=emit,
                                checkpoint=checkpoint, on_ready=on_ready)
