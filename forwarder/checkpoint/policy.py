"""When the checkpoint is saved, and what counts as a change worth saving.

- Positions (codec.py): at most every ``--checkpoint-interval`` (10 s), when something
  material happened since the last save, and once at the start when there was no checkpoint yet.
- Remembered hashes: at most every ``--checkpoint-hashes-interval`` (60 s), when material, and never
  faster than the store's byte budget allows (a ConfigMap: 900 KiB a minute on average). In ConfigMaps they
  are kept in parts by time and a save writes only the parts that changed (store.py): at 100 events/s
  both parts together write at most about 0.16 MB a minute to the Kubernetes API (simulated), also about 0.19
  MB in the minute of a Lease takeover (the new holder reads the hashes and writes none until they change),
  and a burst after an idle spell writes only its own part.
- At shutdown: both, if material.
- An interval of 0 saves after every acknowledged batch (the old behaviour): the smallest restart cost,
  the most writes.

Material means: an event was acknowledged (delivered, or skipped for good) that is not one of the
forwarder's own checkpoint writes. On EKS every ConfigMap write is itself an audit event in the log the
forwarder reads; if reading it back made the state worth saving, each save would cause the next, for
ever. Left unsaved, those events cost nothing much: after a restart they are read and sent again (a
handful, the audit trail of the last saves). For the same reason a long idle spell leaves the saved
positions where they were, and that is cheap too: the re-read of an idle stretch is a few calls.

What a crash (SIGKILL) costs: nothing is lost (positions only move past acknowledged events); the
events acknowledged after the last save of the hashes, and the batches in flight, are sent again once
when their range is read again: at most rate x ``--checkpoint-hashes-interval`` events (6,000 at 100
events/s with the defaults; only the in-flight batches with an interval of 0). A clean stop (SIGTERM)
saves both parts and repeats nothing.
"""

from __future__ import annotations

import json
import logging
import threading
from functools import partial

from ..clock import Clock
from ..metrics import Metrics
from .codec import Positions, Remembered
from .ledger import BUCKET_MS, Ledger
from .store import CheckpointError, CheckpointStore, FencedError, Saved, SelfWrites

log = logging.getLogger("forwarder.checkpoint")

POSITIONS = "positions"
HASHES = "hashes"
# Log the first failed save of a series and then every LOG_EVERY_FAILURES-th.
LOG_EVERY_FAILURES = 20
MAX_IDLE_WAIT_SECONDS = 5.0


class SelfWriteFilter:
    """Recognises the forwarder's own requests (checkpoint writes, its Lease) in the audit log: cheap for every
    other event (one substring test per object)."""

    def __init__(self, writes: SelfWrites) -> None:
        self.writes = writes
        needles: list[str] = []
        for name in sorted({name for _, _, name in writes.objects}, key=len):
            if not any(needle in name for needle in needles):  # "cp" already finds "cp-hashes"
                needles.append(name)
        self._needles = tuple(needles)

    def matches(self, message: str) -> bool:
        if not any(needle in message for needle in self._needles):
            return False
        try:
            event = json.loads(message)
            ref, user = event.get("objectRef") or {}, event.get("user") or {}
        except (ValueError, AttributeError, RecursionError):
            return False
        writes = self.writes
        return (
            isinstance(ref, dict)
            and (ref.get("resource"), ref.get("namespace"), ref.get("name")) in writes.objects
            and (writes.username is None or (isinstance(user, dict) and user.get("username") == writes.username))
        )


class Checkpointer:
    """Saves the ledger's state to the store when the policy above says so; thread-safe."""

    def __init__(
        self,
        store: CheckpointStore,
        ledger: Ledger,
        *,
        log_group: str,
        stream_prefix: str,
        source: str,
        clock: Clock,
        metrics: Metrics,
        positions_interval_seconds: float,
        hashes_interval_seconds: float,
        resumed: bool,
    ) -> None:
        self.store = store
        self.ledger = ledger
        self.log_group = log_group
        self.stream_prefix = stream_prefix
        self.source = source
        self.clock = clock
        self.metrics = metrics
        self.positions_interval = positions_interval_seconds
        self.hashes_interval = hashes_interval_seconds
        self._lock = threading.Lock()
        now = clock.monotonic()
        # Material acknowledgements counted at the last save of each part (None: save as soon as possible).
        self._marks: dict[str, int | None] = {POSITIONS: 0 if resumed else None, HASHES: 0}
        self._current_at = {POSITIONS: now, HASHES: now}
        """When each stored part was last known current (saved, or nothing material to save)."""
        self._saved_at = {POSITIONS: float("-inf"), HASHES: now}
        self._hashes_spacing = hashes_interval_seconds
        self.failures = 0
        self.saves = {POSITIONS: 0, HASHES: 0}
        self.bytes_written = {POSITIONS: 0, HASHES: 0}
        for part in (POSITIONS, HASHES):
            metrics.checkpoint_last_save_age_seconds.labels(part=part).set_function(partial(self.age_seconds, part))

    def age_seconds(self, part: str) -> float:
        """Seconds since ``part`` was last known current in the store."""
        return max(0.0, self.clock.monotonic() - self._current_at[part])

    def _due(self, part: str, now: float, final: bool) -> bool:
        spacing = self.positions_interval if part == POSITIONS else self._hashes_spacing
        return final or now - self._saved_at[part] >= spacing

    def due_in(self) -> float:
        """Seconds until the next save may be due (for the checkpoint thread's wait)."""
        now = self.clock.monotonic()
        left = min(self._saved_at[POSITIONS] + self.positions_interval,
                   self._saved_at[HASHES] + self._hashes_spacing) - now
        return max(0.05, min(MAX_IDLE_WAIT_SECONDS, left))

    def tick(self, *, final: bool = False, timeout: float = -1) -> bool:
        """Save each part that is due and has material changes; False when a save failed (retried next time).
        Raises FencedError when the store refuses this replica's writes (it lost the Lease)."""
        if not self._lock.acquire(timeout=timeout):
            return False
        try:
            now = self.clock.monotonic()
            material = self.ledger.material_acks
            ok = True
            for part in (HASHES, POSITIONS):
                if self._marks[part] == material:
                    self._current_at[part] = now  # nothing worth writing: what is stored is current
                    continue
                if self._due(part, now, final):
                    ok = self._save(part, material, now) and ok
            return ok
        finally:
            self._lock.release()

    def after_acknowledged(self) -> None:
        """With an interval of 0 the delivery thread saves after every acknowledged batch."""
        if self.positions_interval == 0:
            self.tick()

    def _save(self, part: str, material: int, now: float) -> bool:
        started = self.clock.monotonic()
        try:
            if part == POSITIONS:
                positions = self.ledger.positions()
                saved = self.store.save_positions(Positions(
                    self.log_group, self.stream_prefix, positions, self.source, int(self.clock.time() * 1000)))
            else:
                _, buckets = self.ledger.snapshot()
                saved = self.store.save_remembered(
                    Remembered(self.log_group, self.stream_prefix, tuple(buckets), BUCKET_MS))
        except FencedError:
            raise  # not a failure to retry: this replica must stop (pipeline.py)
        except (CheckpointError, OSError) as exc:
            self.failures += 1
            self.metrics.checkpoint_saves_total.labels(part=part, outcome="error").inc()
            if self.failures % LOG_EVERY_FAILURES == 1:
                log.error("checkpoint save failed; will retry", extra={"part": part, "error": str(exc)})
            return False
        self._record(part, saved, material, now)
        log.debug("checkpoint saved", extra={"part": part, "bytes": saved.bytes_written,
                                              "seconds": round(self.clock.monotonic() - started, 4)})
        return True

    def _record(self, part: str, saved: Saved, material: int, now: float) -> None:
        self.failures = 0
        if not saved.pending:  # else saved again when due, even with nothing new
            self._marks[part] = material
        self._saved_at[part] = self._current_at[part] = now
        if not saved.bytes_written:
            return  # the store had it already (no part of the remembered hashes changed): no write
        self.saves[part] += 1
        self.bytes_written[part] += saved.bytes_written
        self.metrics.checkpoint_saves_total.labels(part=part, outcome="ok").inc()
        self.metrics.checkpoint_bytes.labels(part=part).set(saved.bytes_written)
        self.metrics.checkpoint_written_bytes_total.labels(part=part).inc(saved.bytes_written)
        if part == HASHES:
            budget = self.store.remembered_bytes_per_minute
            if budget:
                # Space the next save so that the hashes' writes average at most the budget per minute.
                self._hashes_spacing = max(self.hashes_interval, saved.bytes_written * 60 / budget)
            if saved.hashes_dropped:
                self.metrics.checkpoint_hashes_dropped_total.inc(saved.hashes_dropped)
                log.warning(
                    "remembered hashes too many for the checkpoint store: the oldest left out; after a restart "
                    "their events may be sent again (never lost)",
                    extra={"hashes_dropped": saved.hashes_dropped, "bytes": saved.bytes_written},
                )
