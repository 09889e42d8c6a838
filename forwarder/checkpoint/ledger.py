"""What is still open, and what was already handed out: named positions, dedup by time bucket, acks.

A *position* is a cursor that only moves forward: for the CloudWatch schedule an instant on the timeline
(epoch milliseconds, exclusive: everything before ``read_to`` has been read), one per re-read stage
(sources/schedule.py); for the Kinesis source a shard's sequence number (everything up to it has been read), one
per shard (sources/kinesis_source.py). Each advance is *confirmed*
once every event handed out before it was acknowledged (delivered to Falco, or skipped for good),
so ``confirmed`` is what a restart may rely on: nothing before it is waiting for delivery.

Dedup: the 64-bit hash of every event handed out is remembered in the bucket of its timestamp
(``BUCKET_MS`` wide), so a later read of the same instant forwards only new events. A bucket is
forgotten once the retention positions (the oldest reads) have confirmed past it: no read will
return its events again (events of a forgotten bucket are then refused). A source without
retention positions trims old buckets itself (``trim_before``): memory only, a later copy
of such an event is then let through. Acknowledged hashes are also kept packed, per bucket,
for the checkpoint (a restart must never take an unacknowledged event for delivered), except those of
the forwarder's own checkpoint writes (see Bucket.acked).

Acknowledgements: every event handed out gets a sequence number; the *watermark* is the lowest one
not yet acknowledged. An advance made when the next number was ``m`` is confirmed when the
watermark reaches ``m``.

Thread-safe: the reader admits, the deliverer acknowledges, the checkpointer snapshots, all under ``lock``.
"""

from __future__ import annotations

import collections
import operator
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..model import LogEvent
from .dedup import HashSet, event_hash, pack, unpack

BUCKET_MS = 5_000
ALL_TIME = (-(2**63), 2**63 - 1)
"""A read range that holds every timestamp (a source whose reads are not ranges of time)."""
# What CloudWatch counts per event on top of its message (the PutLogEvents accounting; used for page estimates).
EVENT_OVERHEAD_BYTES = 26


# Not frozen: a frozen dataclass's __init__ costs 4x, and one is made per event. Never changed once made.
@dataclass(slots=True, unsafe_hash=True)
class EventKey:
    """Identifies one event through batching and delivery (what the ledger acknowledges)."""

    timestamp_ms: int
    hash: int
    stream: str
    event_id: str
    seq: int
    material: bool = True
    """False for the forwarder's own checkpoint writes read back from the audit log (policy.py)."""

    def __str__(self) -> str:
        return f"{self.stream}/{self.event_id}"


_seq = operator.attrgetter("seq")
_material = operator.attrgetter("material")


class Bucket:
    """The events of one ``BUCKET_MS`` slice of the timeline that were handed out."""

    __slots__ = ("start_ms", "seen", "acked", "events", "bytes")

    def __init__(self, start_ms: int) -> None:
        self.start_ms = start_ms
        self.seen = HashSet()
        """Hashes of every event handed out (pending, acknowledged or skipped)."""
        self.acked = bytearray()
        """Packed hashes of the acknowledged ones: the checkpoint's part. Not of the forwarder's own checkpoint
        writes read back (EventKey.material False): were they kept, every save would leave a part of the hashes
        changed for the next, and after a restart they cost only a handful of events sent again."""
        self.events = 0
        self.bytes = 0
        """Size of those events as CloudWatch pages count it (message + EVENT_OVERHEAD_BYTES)."""


@dataclass(frozen=True, slots=True)
class BucketState:
    """A bucket as the checkpoint keeps it: acknowledged hashes, and the bucket's size for cost estimates."""

    start_ms: int
    hashes: bytes
    events: int
    bytes: int


class Position:
    __slots__ = ("read_to", "confirmed", "queue")

    def __init__(self, at_ms: int) -> None:
        self.read_to = at_ms
        """Everything before this instant has been read (for this position)."""
        self.confirmed = at_ms
        """Everything before this instant was read and every event handed out so far acknowledged."""
        self.queue: collections.deque[tuple[int, int]] = collections.deque()
        """Advances waiting for acknowledgements: (read_to, sequence mark)."""


class Ledger:
    def __init__(self, positions: Mapping[str, int], buckets: Iterable[BucketState] = ()) -> None:
        self.lock = threading.RLock()
        self._positions = {name: Position(at) for name, at in positions.items()}
        self._buckets: dict[int, Bucket] = {}
        for state in buckets:
            bucket = Bucket(state.start_ms)
            hashes = unpack(state.hashes)
            bucket.seen = HashSet(hashes)
            bucket.acked = bytearray(state.hashes)
            bucket.events, bucket.bytes = state.events, state.bytes
            self._buckets[state.start_ms] = bucket
        self._next_seq = 0
        self._low = 0
        """The lowest sequence number not acknowledged yet (``_next_seq`` when none waits): the watermark."""
        self._handed_out: collections.deque[tuple[int, int]] = collections.deque()
        """(first sequence number, when handed out in ms) of each admit() that handed out events, oldest first;
        the first holds ``_low``."""
        self._done: set[int] = set()
        """Acknowledged sequence numbers above the watermark (acknowledged out of order)."""
        self.retention: tuple[str, ...] = ()
        """Positions whose oldest confirmed instant decides which buckets may be forgotten."""
        self._forgotten_before_ms: int | None = None
        self._read_spans: list[list[int]] = []
        """Stretches of the timeline read completely at least once (merged, oldest first): outside them the
        volume of a range is unknown, so it cannot be called cheap to read again."""
        self.admitted_events = 0
        self.admitted_bytes = 0
        """Everything handed out so far (the schedule derives the recent rate from them)."""
        self.material_acks = 0
        """Acknowledged events that were not the forwarder's own checkpoint writes (policy.py)."""
        self.acks = 0
        self.dropped_outside = 0
        """Events a read returned outside its own range (never expected from AWS)."""
        self.dropped_forgotten = 0
        """Events of buckets already forgotten (never expected: no read reaches back that far)."""

    # --- positions ----------------------------------------------------------------------------------

    def read_to(self, name: str) -> int:
        return self._positions[name].read_to

    def confirmed(self, name: str) -> int:
        return self._positions[name].confirmed

    def names(self) -> list[str]:
        return list(self._positions)

    def add_position(self, name: str, at: int) -> None:
        """A new position (a shard found after the start), unless it exists."""
        with self.lock:
            if name not in self._positions:
                self._positions[name] = Position(at)

    def remove_position(self, name: str) -> None:
        """Forget a position nothing will read again (a shard past the stream's retention)."""
        with self.lock:
            self._positions.pop(name, None)

    def advance(self, name: str, read_to: int) -> None:
        """``name`` has read everything before ``read_to``; confirmed once all events handed out so far are."""
        with self.lock:
            position = self._positions[name]
            if read_to <= position.read_to:
                return
            position.read_to = read_to
            position.queue.append((read_to, self._next_seq))
            self._confirm()

    def _watermark(self) -> int:
        return self._low

    def _confirm(self) -> None:
        watermark = self._watermark()
        for position in self._positions.values():
            queue = position.queue
            while queue and queue[0][1] <= watermark:
                position.confirmed = max(position.confirmed, queue.popleft()[0])
        if self.retention:
            self._forget_before(min(self._positions[name].confirmed for name in self.retention))

    def trim_before(self, instant_ms: int) -> None:
        """Forget the buckets that end before ``instant_ms`` (memory only: their events are not refused later)."""
        with self.lock:
            old = [start for start in self._buckets if start + BUCKET_MS <= instant_ms]
            for start in old:
                del self._buckets[start]

    def _forget_before(self, instant_ms: int) -> None:
        if self._forgotten_before_ms is not None and instant_ms <= self._forgotten_before_ms:
            return
        self._forgotten_before_ms = instant_ms
        old = [start for start in self._buckets if start + BUCKET_MS <= instant_ms]
        for start in old:
            del self._buckets[start]
        self._read_spans = [span for span in self._read_spans if span[1] >= instant_ms]

    # --- events ---------------------------------------------------------------------------------------

    def admit(self, start_ms: int, end_ms: int, events: Iterable[LogEvent], now_ms: int
              ) -> list[tuple[EventKey, LogEvent]]:
        """The events of one page of a read of ``[start_ms, end_ms]`` not handed out before; they become pending."""
        fresh: list[tuple[EventKey, LogEvent]] = []
        with self.lock:
            buckets = self._buckets
            forgotten = self._forgotten_before_ms
            seq = self._next_seq
            admitted_bytes = 0
            for event in events:
                ts = event.timestamp_ms
                if ts < start_ms or ts > end_ms:
                    self.dropped_outside += 1
                    continue
                start = ts - ts % BUCKET_MS
                bucket = buckets.get(start)
                if bucket is None:
                    if forgotten is not None and start + BUCKET_MS <= forgotten:
                        self.dropped_forgotten += 1
                        continue
                    bucket = buckets[start] = Bucket(start)
                h = event_hash(event.stream, event.event_id)
                if not bucket.seen.add_if_new(h):
                    continue
                size = len(event.message) + EVENT_OVERHEAD_BYTES
                bucket.events += 1
                bucket.bytes += size
                admitted_bytes += size
                fresh.append((EventKey(ts, h, event.stream, event.event_id, seq), event))
                seq += 1
            if seq > self._next_seq:
                if self._low == self._next_seq:
                    self._handed_out.clear()  # all acknowledged: an older entry must not date these events
                self._handed_out.append((self._next_seq, now_ms))
                self._next_seq = seq
            self.admitted_events += len(fresh)
            self.admitted_bytes += admitted_bytes
        return fresh

    def acknowledge(self, keys: Sequence[EventKey]) -> None:
        """Events Falco acknowledged, or that are skipped for good (invalid, rejected): never sent again."""
        if not keys:
            return
        by_bucket: dict[int, list[int]] = {}
        with self.lock:
            done = self._done
            done.update(map(_seq, keys))
            for key in keys:
                if key.material:  # the forwarder's own checkpoint writes, read back, are not kept for a restart
                    ts = key.timestamp_ms
                    by_bucket.setdefault(ts - ts % BUCKET_MS, []).append(key.hash)
            self.material_acks += sum(map(_material, keys))
            self.acks += len(keys)
            for start, hashes in by_bucket.items():
                bucket = self._buckets.get(start)
                if bucket is not None:
                    bucket.acked += pack(hashes)
            low = self._low
            if low in done:
                if min(done) == low and max(done) == low + len(done) - 1:
                    # Acknowledged in order (one connection to Falco): in one step rather than one per event.
                    low += len(done)
                    done.clear()
                else:
                    while low in done:
                        done.discard(low)
                        low += 1
                self._low = low
                handed_out = self._handed_out
                while len(handed_out) > 1 and handed_out[1][0] <= low:
                    handed_out.popleft()
            self._confirm()

    # --- cost estimates ---------------------------------------------------------------------------------

    def note_read(self, start_ms: int, end_ms: int) -> None:
        """``[start_ms, end_ms]`` was read to the end of its pages."""
        with self.lock:
            spans = self._read_spans
            spans.append([start_ms, end_ms])
            spans.sort()
            merged: list[list[int]] = []
            for span in spans:
                if merged and span[0] <= merged[-1][1] + 1:
                    merged[-1][1] = max(merged[-1][1], span[1])
                else:
                    merged.append(span)
            self._read_spans = merged

    def known(self, start_ms: int, end_ms: int) -> bool:
        """True when ``[start_ms, end_ms]`` was read before, so ``volume`` tells what it holds."""
        if end_ms < start_ms:
            return True
        return any(s <= start_ms and end_ms <= e for s, e in self._read_spans)

    def volume(self, start_ms: int, end_ms: int) -> tuple[int, int]:
        """(events, bytes) already handed out with timestamps in ``[start_ms, end_ms]``: what reading it again
        costs at least; a bucket partly inside counts in proportion."""
        if end_ms < start_ms:
            return 0, 0
        events = nbytes = 0.0
        first, last = start_ms - start_ms % BUCKET_MS, end_ms - end_ms % BUCKET_MS
        if (last - first) // BUCKET_MS > len(self._buckets):
            candidates: Iterable[Bucket] = [b for s, b in self._buckets.items() if first <= s <= last]
        else:
            candidates = [b for s in range(first, last + 1, BUCKET_MS) if (b := self._buckets.get(s)) is not None]
        for bucket in candidates:
            overlap = min(end_ms, bucket.start_ms + BUCKET_MS - 1) - max(start_ms, bucket.start_ms) + 1
            share = overlap / BUCKET_MS
            events += bucket.events * share
            nbytes += bucket.bytes * share
        return round(events), round(nbytes)

    # --- introspection and checkpoint ---------------------------------------------------------------

    def outstanding(self) -> int:
        with self.lock:
            return self._next_seq - self._low

    def oldest_outstanding_ms(self) -> int | None:
        """When the oldest event still waiting for acknowledgement was handed out."""
        with self.lock:
            return self._handed_out[0][1] if self._low < self._next_seq else None

    def remembered_hashes(self) -> int:
        with self.lock:
            return sum(len(b.seen) for b in self._buckets.values())

    def open_buckets(self) -> int:
        with self.lock:
            return len(self._buckets)

    def positions(self) -> dict[str, int]:
        """Confirmed positions: what a restart may resume from without losing anything."""
        with self.lock:
            return {name: p.confirmed for name, p in self._positions.items()}

    def snapshot(self) -> tuple[dict[str, int], list[BucketState]]:
        """Confirmed positions, and the acknowledged hashes of the buckets still open: what a restart relies on."""
        with self.lock:
            positions = {name: p.confirmed for name, p in self._positions.items()}
            floor = min((positions[name] for name in self.retention), default=None)
            buckets = [
                BucketState(start, bytes(b.acked), b.events, b.bytes)
                for start, b in sorted(self._buckets.items())
                if b.acked and (floor is None or start + BUCKET_MS > floor)
            ]
            return positions, buckets
