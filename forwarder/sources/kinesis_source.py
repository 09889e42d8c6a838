"""The Kinesis source: the log group's subscription records, read from every shard of a Kinesis Data Stream.

It implements the Source protocol (source.py), so validation, batching, delivery, metrics and the checkpoint
are the polling source's own. What is particular to it:

- **Shards and resharding**: the stream's shards are listed at the start, every ``REFRESH_SECONDS`` and
  whenever a shard ends. A shard is read once each of its parents is *finished*: closed (split or merged),
  read to its end, and every event read from it acknowledged by Falco. So after a reshard the children
  start only after the parent's last records were delivered, and a shard past the stream's retention is
  dropped from the positions.
- **Positions**: one per shard, the sequence number of the last record handled (checkpoint/ledger.py); a position is
  confirmed, and so checkpointed, only once every event handed out before it was acknowledged, whatever
  the order Falco's replicas answer in. A shard without a position (new, or never read) starts at the
  records that arrived from ``since_ms`` on (the first start's ``--start-at``, kept in the checkpoint), so a
  restart within the stream's retention loses nothing.
- **Duplicates**: CloudWatch delivers at least once, and after a crash the records after the checkpoint
  are read again. Events are deduplicated by CloudWatch's event id exactly as the polling source does,
  remembered (and checkpointed) for ``--max-lateness`` of event time.
- **Pace**: each shard is read at most every ``BUSY_SPACING_SECONDS`` (AWS allows 5 GetRecords calls a second
  per shard), backing off to ``IDLE_SPACINGS_SECONDS[-1]`` while it is empty. A call asks for at most about
  ``PREFETCH_BYTES`` of records (by the mean size seen so far, at most 10,000); the records are inflated one
  at a time and their new events handed on together, ``EMIT_EVENTS`` at most and at the end of each page at
  the latest (a record may hold a single event: one batch per record would mean one POST per record), so
  what waits in memory is bounded by records and events; delivery's queue
  (``--max-inflight-bytes``) bounds the rest, and reading pauses while it is full.
- **Failures** (never fatal, each logged and counted in ``aws_api_calls_total{operation,outcome}``): a
  throttled shard backs off alone; an expired iterator is replaced after the last record read; a stream
  that does not exist (yet), or cannot be read (access, KMS), turns readiness off and is retried slowly.
"""

from __future__ import annotations

import logging
import operator
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from ..checkpoint.codec import Checkpoint
from ..checkpoint.ledger import ALL_TIME, BUCKET_MS, EventKey, Ledger
from ..clock import Clock
from ..metrics import Metrics
from ..model import LogEvent
from ..retry import LOG_EVERY, Backoff
from .kinesis import (
    BadStartError,
    IteratorExpiredError,
    KinesisError,
    KinesisReader,
    NotFoundError,
    RecordsPage,
    Shard,
    ThrottledError,
    UnavailableError,
)
from .subscription import DATA, KINDS, MALFORMED, decode

log = logging.getLogger("forwarder.kinesis")

Emit = Callable[[list[tuple[EventKey, LogEvent]]], bool]

SINCE = "since_ms"
"""The position that keeps where shards without a sequence number start (epoch ms of arrival in the stream)."""
BUSY_SPACING_SECONDS = 0.25
IDLE_SPACINGS_SECONDS = (0.25, 0.5, 1.0)
REFRESH_SECONDS = 10.0
PREFETCH_BYTES = 4 * 1024 * 1024
EMIT_EVENTS = 1_000
INITIAL_RECORD_BYTES = 64 * 1024
SHARD_BACKOFF = Backoff(initial_seconds=0.5, max_seconds=10.0)
STREAM_BACKOFF = Backoff(initial_seconds=5.0, max_seconds=60.0)
SKIP_MALFORMED_RECORD = "malformed_record"
_timestamp_ms = operator.attrgetter("timestamp_ms")


class ShardState:
    __slots__ = ("shard", "iterator", "next_at", "idle", "failures", "at_end", "millis_behind")

    def __init__(self, shard: Shard) -> None:
        self.shard = shard
        self.iterator: str | None = None
        self.next_at = 0.0
        """When it may be read next (monotonic seconds)."""
        self.idle = 0
        """Empty pages in a row."""
        self.failures = 0
        self.at_end = False
        """A closed shard read to its end."""
        self.millis_behind = 0


@dataclass
class _Failures:
    """Consecutive failures of one thing (a shard, the listing) and the wait they call for; never waits itself."""

    rng: random.Random
    count: int = 0

    def failed(self, policy: Backoff) -> float:
        delay = policy.delay(self.count, self.rng)
        self.count += 1
        return delay

    def logs(self) -> bool:
        """Log the first failure of a series and then every LOG_EVERY-th."""
        return (self.count - 1) % LOG_EVERY == 0


class KinesisSource:
    """Reads every shard of one stream in the reader thread and hands each record's new events to ``emit``."""

    def __init__(
        self,
        *,
        reader: KinesisReader,
        ledger: Ledger,
        clock: Clock,
        metrics: Metrics,
        emit: Emit,
        log_group: str,
        stream_prefix: str,
        dedup_window_ms: int,
        on_ready: Callable[[bool], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.kind = f"kinesis:{reader.stream_arn}"
        self.reader = reader
        self.ledger = ledger
        self.clock = clock
        self.metrics = metrics
        self.emit = emit
        self.log_group = log_group
        self.stream_prefix = stream_prefix
        self.dedup_window_ms = dedup_window_ms
        self._on_ready = on_ready
        self.rng = rng if rng is not None else random.Random()  # noqa: S311 (jitter)
        self.since_ms = ledger.confirmed(SINCE)
        self.shards: dict[str, ShardState] = {}
        self.refresh_at = float("-inf")
        self._listing = _Failures(self.rng)
        self._listed_once = False
        self._mean_record_bytes = float(INITIAL_RECORD_BYTES)
        self._newest_ms = 0
        self.pages = 0

    # --- the Source protocol ----------------------------------------------------------------------------

    def run(self, stop: threading.Event, beat: Callable[[], None] = lambda: None) -> None:
        while not stop.is_set():
            beat()
            self.step(stop)

    def acknowledge(self, keys: Sequence[EventKey]) -> None:
        self.ledger.acknowledge(keys)

    def export_metrics(self) -> None:
        def count(state: str) -> float:
            return float(sum(1 for s in list(self.shards.values()) if self._state(s) == state))

        for state in ("reading", "waiting", "finished"):
            self.metrics.kinesis_shards.labels(state=state).set_function(partial(count, state))
        self.metrics.kinesis_millis_behind_latest.set_function(
            lambda: float(max((s.millis_behind for s in list(self.shards.values()) if not self._finished(s)),
                              default=0)))
        for kind in KINDS:
            self.metrics.kinesis_records_total.labels(kind=kind)

    # --- shards -------------------------------------------------------------------------------------------

    def _finished(self, state: ShardState) -> bool:
        """Closed, read to its end, and everything read from it acknowledged."""
        ending = state.shard.ending_sequence
        if ending is None:
            return False
        name = state.shard.shard_id
        read_to = self.ledger.read_to(name)
        return (state.at_end or read_to >= ending) and self.ledger.confirmed(name) >= read_to

    def _startable(self, state: ShardState) -> bool:
        return all(p not in self.shards or self._finished(self.shards[p]) for p in state.shard.parents)

    def _state(self, state: ShardState) -> str:
        if self._finished(state):
            return "finished"
        return "reading" if self._startable(state) else "waiting"

    def _ready(self, ready: bool) -> None:
        if self._on_ready is not None:
            self._on_ready(ready)

    def step(self, stop: threading.Event) -> None:
        """List the shards when due, or read one shard, or wait until one is due."""
        now = self.clock.monotonic()
        if now >= self.refresh_at:
            self._refresh()
            return
        due = [s for s in self.shards.values() if not self._finished(s) and self._startable(s)]
        state = min(due, key=lambda s: s.next_at, default=None)
        wake = self.refresh_at if state is None else min(state.next_at, self.refresh_at)
        if wake > now:
            self.clock.wait(wake - now, stop)
            return
        assert state is not None
        self._poll(state, stop)

    def _refresh(self) -> None:
        now = self.clock.monotonic()
        try:
            shards = self.reader.list_shards()
        except KinesisError as exc:
            stream_down = isinstance(exc, NotFoundError | UnavailableError)
            delay = self._listing.failed(STREAM_BACKOFF if stream_down else SHARD_BACKOFF)
            self.refresh_at = now + delay
            if stream_down:
                self._ready(False)
            if self._listing.logs():
                if isinstance(exc, NotFoundError):
                    message = "Kinesis stream not found (not created yet?); waiting for it"
                elif isinstance(exc, UnavailableError):
                    message = ("cannot read the Kinesis stream: the role needs kinesis:ListShards, GetShardIterator "
                               "and GetRecords on it (and kms:Decrypt on its key); retrying")
                else:
                    message = "cannot list the Kinesis stream's shards; retrying"
                log.log(logging.ERROR if stream_down else logging.WARNING, message,
                        extra={"stream": self.reader.stream_arn, "error": str(exc), "attempt": self._listing.count,
                               "retry_in_s": round(delay, 3)})
            return
        self._listing.count = 0
        self._ready(True)
        self.refresh_at = now + REFRESH_SECONDS
        listed = {s.shard_id: s for s in shards}
        new = [s.shard_id for s in shards if s.shard_id not in self.shards]
        for shard in shards:
            state = self.shards.get(shard.shard_id)
            if state is None:
                self.shards[shard.shard_id] = ShardState(shard)
                self.ledger.add_position(shard.shard_id, 0)
            else:
                if shard.ending_sequence is not None and state.shard.ending_sequence is None:
                    log.info("shard closed (the stream was resharded): read to its end, then its children",
                             extra={"shard": shard.shard_id})
                state.shard = shard
            if self.shards[shard.shard_id].at_end and shard.ending_sequence is not None:
                self.ledger.advance(shard.shard_id, shard.ending_sequence)
        for name in [n for n in self.ledger.names() if n != SINCE and n not in listed]:
            state = self.shards.pop(name, None)
            if state is not None and not self._finished(state):
                log.warning("shard left the stream (past its retention) before it was read to its end",
                            extra={"shard": name})
            self.ledger.remove_position(name)
        if new and self._listed_once:
            log.info("new shards in the stream (resharded): each starts once its parents are finished",
                     extra={"shards": new})
        elif new:
            log.info("reading the Kinesis stream", extra={"stream": self.reader.stream_arn, "shards": len(shards),
                                                           "since_ms": self.since_ms})
        self._listed_once = True

    def _limit(self) -> int:
        return max(1, int(PREFETCH_BYTES // max(1.0, self._mean_record_bytes)))

    def _poll(self, state: ShardState, stop: threading.Event) -> None:
        name = state.shard.shard_id
        now = self.clock.monotonic()
        try:
            if state.iterator is None:
                state.iterator = self._iterator(name)
            page = self.reader.records(state.iterator, self._limit())
        except KinesisError as exc:
            self._failed(state, exc, now)
            return
        self.pages += 1
        state.failures = 0
        self._ready(True)
        state.millis_behind = page.millis_behind
        self.metrics.kinesis_bytes_read_total.inc(page.bytes)
        if page.records:
            mean = page.bytes / len(page.records)
            self._mean_record_bytes = 0.8 * self._mean_record_bytes + 0.2 * mean
        if not self._hand_on(name, page):
            return  # stopping: what was not handed on is read again after the restart
        state.iterator = page.next_iterator
        if page.records or page.millis_behind > 0:
            state.idle = 0
            state.next_at = now + BUSY_SPACING_SECONDS
        else:
            state.idle += 1
            state.next_at = now + IDLE_SPACINGS_SECONDS[min(state.idle, len(IDLE_SPACINGS_SECONDS)) - 1]
        ending = state.shard.ending_sequence
        # AWS ends a closed shard with no next iterator; past its EndingSequenceNumber nothing can follow either.
        if page.next_iterator is None or (ending is not None and self.ledger.read_to(name) >= ending):
            state.at_end = True
            state.iterator = None
            if ending is not None:
                self.ledger.advance(name, ending)
            else:
                self.refresh_at = now  # closed since the last listing: learn its end and its children
            log.info("shard read to its end; its children start once its events are acknowledged",
                     extra={"shard": name})

    def _iterator(self, name: str) -> str:
        after = self.ledger.read_to(name)
        if after <= 0:
            return self.reader.shard_iterator(name, at_ms=self.since_ms)
        try:
            return self.reader.shard_iterator(name, after=after)
        except BadStartError as exc:
            # Not a sequence number of this shard (a checkpoint of another stream of the same name?).
            log.error("cannot resume the shard after its checkpointed sequence number; reading it from the start "
                      "time again (duplicates are removed where remembered)",
                      extra={"shard": name, "sequence_number": str(after), "error": str(exc)})
            return self.reader.shard_iterator(name, at_ms=self.since_ms)

    def _failed(self, state: ShardState, exc: KinesisError, now: float) -> None:
        name = state.shard.shard_id
        if isinstance(exc, IteratorExpiredError):
            # Iterators live 5 minutes (a long pause for Falco): start again after the last record read.
            state.iterator = None
            state.next_at = now
            log.info("shard iterator expired; getting a new one after the last record read", extra={"shard": name})
            return
        tracker = _Failures(self.rng, state.failures)
        delay = tracker.failed(SHARD_BACKOFF)
        state.failures = tracker.count
        state.next_at = now + delay
        fields = {"shard": name, "error": str(exc), "attempt": state.failures, "retry_in_s": round(delay, 3)}
        if isinstance(exc, NotFoundError):
            state.iterator = None
            self.refresh_at = now  # the shard (or the stream) is gone: list again
            log.warning("shard or stream not found; listing the shards again", extra=fields)
        elif isinstance(exc, UnavailableError):
            self._ready(False)
            if tracker.logs():
                log.error("cannot read the Kinesis stream: the role needs kinesis:GetShardIterator and GetRecords "
                          "on it (and kms:Decrypt on its key); retrying", extra=fields)
        elif isinstance(exc, ThrottledError):
            if tracker.logs():
                log.info("Kinesis throttled the shard's reads; backing off", extra=fields)
        elif tracker.logs():
            log.warning("Kinesis call failed; retrying", extra=fields)

    def _hand_on(self, name: str, page: RecordsPage) -> bool:
        """Decode each record and hand its new events on, advancing the shard's position after each record.

        A position advanced before its events are handed on is still safe: it is confirmed only once every event
        admitted before it is acknowledged."""
        ledger, metrics = self.ledger, self.metrics
        pending: list[tuple[EventKey, LogEvent]] = []
        for record in page.records:
            decoded = decode(record.data, self.log_group, self.stream_prefix, record.arrival_ms)
            metrics.kinesis_records_total.labels(kind=decoded.kind).inc()
            if decoded.kind == MALFORMED or decoded.bad_events:
                count = decoded.bad_events or 1
                metrics.events_skipped_total.labels(reason=SKIP_MALFORMED_RECORD).inc(count)
                log.warning("skipping a Kinesis record (or events in it) that is not a CloudWatch Logs subscription "
                            "record", extra={"shard": name, "sequence_number": str(record.sequence),
                                             "error": decoded.error, "events": count})
            if decoded.kind == DATA and decoded.events:
                now_ms = int(self.clock.time() * 1000)
                fresh = ledger.admit(*ALL_TIME, decoded.events, now_ms)
                if fresh:
                    metrics.events_read_total.inc(len(fresh))
                    metrics.arrival_delay_seconds.observe_many(
                        [(event.ingestion_ms - event.timestamp_ms) / 1000 for _, event in fresh])
                    pending.extend(fresh)
                newest = max(map(_timestamp_ms, decoded.events))
                if newest > self._newest_ms:
                    self._newest_ms = newest
                    ledger.trim_before(min(newest, now_ms) - self.dedup_window_ms - BUCKET_MS)
            ledger.advance(name, record.sequence)
            if len(pending) >= EMIT_EVENTS:
                if not self.emit(pending):
                    return False
                pending = []
        return not pending or self.emit(pending)


def restore_kinesis_ledger(since_ms: int, checkpoint: Checkpoint | None) -> Ledger:
    """A ledger with every shard's checkpointed position, the start time, and the remembered hashes."""
    if checkpoint is None:
        return Ledger({SINCE: since_ms})
    positions = dict(checkpoint.positions.positions)
    positions.setdefault(SINCE, since_ms)
    remembered = checkpoint.remembered
    buckets = remembered.buckets if remembered is not None and remembered.bucket_ms == BUCKET_MS else ()
    return Ledger(positions, buckets)
