"""Which time ranges to read from CloudWatch, when, and which events in them are new.

Facts relied on (CloudWatch Logs API reference, FilterLogEvents): ``startTime`` and
``endTime`` are inclusive and select on the event's own timestamp; one call returns at most
1 MB or 10,000 events and a ``nextToken`` while more remain (pages may even be empty while a
token is returned), so a range is read only when paginated to the end. Nothing about the order
of events inside a range is relied on, so the reader never moves a range's start to "the last
timestamp seen + 1", and thousands of events sharing one millisecond are all read.

Design (one tracker, used under its lock by the reader thread and the delivery thread):

* The timeline from the start position up to ``head`` is cut into disjoint *segments*
  ``[start_ms, end_ms]``. Each poll, a *head scan* reads ``[head, now]`` and ``head``
  becomes ``now + 1``; its events land in new segments.
* A segment records when its last complete read *started* (``read_ms``). An event with
  timestamp ``t <= end`` that becomes visible by ``t + max_lateness`` is therefore returned by
  any complete read started at or after ``end + max_lateness``. Each segment is re-swept at
  increasing ages measured from its end (``stage_ages``: one poll interval, 10 s and 60 s by
  default, for low latency of late events) and finally once it is ``max_lateness`` old; after
  that final sweep (and once everything it found is acknowledged) the segment is closed and
  forgotten.
* Dedup: each open segment holds the 64-bit hashes of the events it has handed out, so a
  sweep forwards only events not seen before. Memory is about the number of events inside
  the lateness window (8 bytes each once merged, see dedup.HashSet).
* Call budget: sweeps are coalesced: a sweep starts when its oldest segment has been due for
  a slack (half its stage age, at most 60 s), and then covers every due segment it can reach
  through not-due ones that hold few events (``cheap_gap_events/bytes``); the head scan also
  reaches back over cheap segments to due ones. So when nothing arrives, the head scan does
  everything in one call per poll; under load, sweeps read only the due segments, and the
  calls grow with the pages of data. Sweeps that include a final read are mandatory; the
  others are optional: the reader (reader.py) gives them pages only when the head and the final
  sweeps have none to read, so under load each event is read about twice (head + final).
* Arrival delay: on EKS most events reach CloudWatch seconds after their timestamp, i.e.
  after the head scan that covered that instant. So the head scan also re-reads the recent
  past, as far back as events have lately been late (a decaying maximum of ingestion time
  minus timestamp, plus a poll and a margin, capped at 60 s), while those segments are cheap.
  Under light load that costs no extra call and delivers within a poll of visibility. Under
  load those segments are not cheap; the head scan then reads ``[head, now - lag]`` instead,
  the lag being the 90th percentile of recent arrival delays, so most events are visible when
  their instant is first read and each is still read once by the head; the rest are swept.
* A head range longer than two polls (a start with --start-at in the past, a restart, a long
  stall) is cut where its parts pass each stage age, so parts already older than the lateness
  window are final after this one read and are not swept again.

Checkpoint (see checkpoint.py): the head, and per open segment its bounds, the start time of
its latest read whose events were all acknowledged, whether a later read is unconfirmed
(``dirty``: swept again right after a restart), and the hashes of its acknowledged events.

Limits: the lateness is measured on this machine's clock against event timestamps, so clock
skew between the API server and the forwarder shortens (or stretches) the window by that skew;
events that become visible later than ``max_lateness`` after their timestamp may be missed.
"""

from __future__ import annotations

import bisect
import collections
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .checkpoint import CheckpointState, SegmentState
from .dedup import HashSet, event_hash, pack, unpack
from .model import LogEvent

# Re-sweeps at these ages (from a segment's end) besides the poll interval itself (which catches
# events that were a moment late for the head scan) and the final one at max_lateness.
DEFAULT_STAGE_AGES_MS: tuple[int, ...] = (10_000, 60_000)
MAX_SLACK_MS = 60_000
# A not-due segment with fewer known events/bytes than this costs less than a page to re-read
# in passing; beyond it, sweeps leave it out (under load the pages matter, not the calls).
DEFAULT_CHEAP_GAP_EVENTS = 1_000
DEFAULT_CHEAP_GAP_BYTES = 256 * 1024
# The head scan also re-reads the recent past, as far back as events have lately been arriving
# late (ingestion time - timestamp, plus a poll and a second of margin), while that stays cheap:
# on EKS most audit events reach CloudWatch seconds after their timestamp, and without this they
# would wait for the next sweep instead of the next poll. Capped so a burst of very late events
# cannot turn every poll into a long re-read.
DEFAULT_MAX_OVERLAP_MS = 60_000
OVERLAP_MARGIN_MS = 1_000
# Under load that re-read is not cheap; the head scan then stops short of now by this quantile of
# recent arrival delays, so most events are already visible when their instant is first read.
LAG_QUANTILE = 0.9
DELAY_SAMPLES = 2048


@dataclass(frozen=True, slots=True)
class EventKey:
    """Identifies one event through batching and delivery (what the tracker acknowledges)."""

    timestamp_ms: int
    hash: int
    stream: str
    event_id: str

    def __str__(self) -> str:
        return f"{self.stream}/{self.event_id}"


class Segment:
    """One disjoint piece of the timeline that is still swept for late events."""

    __slots__ = (
        "start_ms", "end_ms", "seen", "pending", "acked", "read_ms", "confirmed_ms", "awaiting_ms",
        "scanning", "events", "bytes", "_acked_cache",
    )

    def __init__(self, start_ms: int, end_ms: int) -> None:
        self.start_ms = start_ms
        self.end_ms = end_ms
        self.seen = HashSet()
        """Hashes of events handed out (pending, acknowledged, rejected or skipped as invalid)."""
        self.pending: set[int] = set()
        """Handed out but not yet acknowledged: not in the checkpoint."""
        self.acked = bytearray()
        """Packed hashes of acknowledged (or deliberately skipped) events: the checkpoint's part."""
        self.read_ms: int | None = None
        """Start time of the latest complete read; None = must be read now (new, or after a restart)."""
        self.confirmed_ms: int | None = None
        """Start time of the latest complete read whose events were all acknowledged."""
        self.awaiting_ms: int | None = None
        """A complete read whose events are not all acknowledged yet."""
        self.scanning = False
        self.events = 0
        self.bytes = 0
        self._acked_cache = b""

    def acked_bytes(self) -> bytes:
        if len(self._acked_cache) != len(self.acked):
            self._acked_cache = bytes(self.acked)
        return self._acked_cache

    def __repr__(self) -> str:
        return (
            f"Segment({self.start_ms}..{self.end_ms}, read={self.read_ms}, confirmed={self.confirmed_ms}, "
            f"seen={len(self.seen)}, pending={len(self.pending)}, scanning={self.scanning})"
        )


@dataclass
class Scan:
    """One FilterLogEvents range being paginated: ``[start_ms, end_ms]`` read from ``started_ms`` on."""

    kind: str  # "head" | "sweep"
    start_ms: int
    end_ms: int
    started_ms: int
    segments: list[Segment]
    next_token: str | None = None
    pages: int = 0
    final: bool = False
    """True when the sweep includes a final (mandatory) one."""
    events: int = field(default=0)


class RangeTracker:
    """Schedules head scans and sweeps and deduplicates events; thread-safe."""

    def __init__(
        self,
        head_ms: int,
        *,
        poll_interval_ms: int,
        max_lateness_ms: int,
        stage_ages_ms: Sequence[int] | None = None,
        cheap_gap_events: int = DEFAULT_CHEAP_GAP_EVENTS,
        cheap_gap_bytes: int = DEFAULT_CHEAP_GAP_BYTES,
        max_overlap_ms: int = DEFAULT_MAX_OVERLAP_MS,
    ) -> None:
        if poll_interval_ms <= 0:
            raise ValueError(f"poll_interval_ms must be > 0, got {poll_interval_ms}")
        if max_lateness_ms <= 0:
            raise ValueError(f"max_lateness_ms must be > 0, got {max_lateness_ms}")
        self.lock = threading.RLock()
        self.head_ms = head_ms
        self.poll_interval_ms = poll_interval_ms
        self.max_lateness_ms = max_lateness_ms
        if stage_ages_ms is None:
            stage_ages_ms = (poll_interval_ms, *DEFAULT_STAGE_AGES_MS)
        self.stages = sorted({a for a in stage_ages_ms if 0 < a < max_lateness_ms} | {max_lateness_ms})
        self.cheap_gap_events = cheap_gap_events
        self.cheap_gap_bytes = cheap_gap_bytes
        self.max_overlap_ms = max(0, max_overlap_ms)
        self._arrival_delay_ms = 0
        """Decaying maximum of (ingestion time - timestamp) of recently admitted events."""
        self._delays: collections.deque[int] = collections.deque(maxlen=DELAY_SAMPLES)
        """Arrival delays of the latest admitted events (for the head's lag under load)."""
        self._admitted_events = self._admitted_bytes = 0
        self._events_per_ms = self._bytes_per_ms = 0.0
        """Smoothed rate of new events: what re-reading the recent past would cost."""
        self._segments: list[Segment] = []
        self._starts: list[int] = []
        self._last_head_ms: int | None = None
        self.closed_segments = 0
        self.dropped_outside = 0
        """Events a read returned outside its own range (never expected from AWS)."""
        self.dropped_closed = 0
        """Events inside a range already closed (delivered before, or later than the window)."""

    # --- schedule -----------------------------------------------------------------------------

    def _next_stage(self, seg: Segment) -> int | None:
        """Age (from the segment's end) of its next sweep; None when its final sweep is done."""
        if seg.read_ms is None:
            return 0
        age = seg.read_ms - seg.end_ms
        for stage in self.stages:
            if stage > age:
                return stage
        return None

    def _due_ms(self, seg: Segment) -> int | None:
        stage = self._next_stage(seg)
        if stage is None:
            return None
        if stage == 0:
            return -1  # due at once
        return seg.end_ms + stage

    def _ripe_ms(self, seg: Segment) -> int | None:
        stage = self._next_stage(seg)
        if stage is None:
            return None
        if stage == 0:
            return -1
        return seg.end_ms + stage + min(stage // 2, MAX_SLACK_MS)

    def _is_final(self, seg: Segment) -> bool:
        stage = self._next_stage(seg)
        return stage == 0 or stage == self.max_lateness_ms

    def overlap_ms(self) -> int:
        """How far back from now the head scan re-reads recent segments (when they are cheap)."""
        with self.lock:
            return min(self.max_overlap_ms, self._arrival_delay_ms + self.poll_interval_ms + OVERLAP_MARGIN_MS)

    def head_lag_ms(self, now_ms: int) -> int:
        """How far short of now the head scan stops: 0 while the recent past is cheap to re-read,
        else the recent arrival delay (quantile), capped like the overlap."""
        with self.lock:
            overlap = self.overlap_ms()
            if self._cheap(int(self._events_per_ms * overlap), int(self._bytes_per_ms * overlap)) or not self._delays:
                return 0
            ordered = sorted(self._delays)
            return max(0, min(self.max_overlap_ms, ordered[int(len(ordered) * LAG_QUANTILE)]))

    def _cheap(self, events: int, nbytes: int) -> bool:
        return events <= self.cheap_gap_events and nbytes <= self.cheap_gap_bytes

    def head_due(self, now_ms: int) -> bool:
        return self.ms_until_head(now_ms) == 0

    def ms_until_head(self, now_ms: int) -> int:
        """Milliseconds until the next head scan is due (0 = due now)."""
        with self.lock:
            if self._last_head_ms is None:
                return 0
            return max(0, self._last_head_ms + self.poll_interval_ms - now_ms)

    def next_wake_ms(self, now_ms: int) -> int:
        """Milliseconds until a head scan or a sweep may be due (0 = now)."""
        with self.lock:
            wake = 0 if self._last_head_ms is None else self._last_head_ms + self.poll_interval_ms
            for seg in self._segments:
                if seg.scanning:
                    continue
                ripe = self._ripe_ms(seg)
                if ripe is not None:
                    wake = min(wake, ripe)
            return max(0, wake - now_ms)

    def _insert(self, seg: Segment) -> None:
        i = bisect.bisect_left(self._starts, seg.start_ms)
        self._starts.insert(i, seg.start_ms)
        self._segments.insert(i, seg)

    def _find(self, timestamp_ms: int) -> Segment | None:
        i = bisect.bisect_right(self._starts, timestamp_ms) - 1
        if i < 0:
            return None
        seg = self._segments[i]
        return seg if timestamp_ms <= seg.end_ms else None

    def start_head(self, now_ms: int) -> Scan | None:
        """Begin the poll's head scan over ``[head, now]`` (reaching back over cheap segments to due ones)."""
        with self.lock:
            if self._last_head_ms is not None and now_ms > self._last_head_ms:
                elapsed = now_ms - self._last_head_ms
                self._events_per_ms += (self._admitted_events / elapsed - self._events_per_ms) / 4
                self._bytes_per_ms += (self._admitted_bytes / elapsed - self._bytes_per_ms) / 4
                self._admitted_events = self._admitted_bytes = 0
            self._last_head_ms = now_ms
            end_ms = now_ms - self.head_lag_ms(now_ms)
            if end_ms < self.head_ms:
                return None  # the clock went back, or the lag: nothing new to read yet
            # Split where parts of the range pass a stage age, so parts already old skip early sweeps.
            cuts: list[int] = []
            if end_ms - self.head_ms > 2 * self.poll_interval_ms:  # a catch-up read, not a routine poll
                cuts = sorted({now_ms - age for age in self.stages if self.head_ms <= now_ms - age < end_ms})
            bounds = [self.head_ms, *[c + 1 for c in cuts]]
            ends = [*cuts, end_ms]
            older = list(self._segments)
            new = [Segment(s, e) for s, e in zip(bounds, ends, strict=True)]
            for seg in new:
                self._insert(seg)
            self.head_ms = end_ms + 1
            reach_ms = now_ms - self.overlap_ms()
            self._arrival_delay_ms = self._arrival_delay_ms * 7 // 8  # forget old delays slowly
            first_index = len(older)
            gap_events = gap_bytes = 0
            for i in range(len(older) - 1, -1, -1):
                seg = older[i]
                if seg.scanning:
                    break
                due = self._due_ms(seg)
                if due is not None and due <= now_ms and self._is_final(seg):
                    first_index = i  # must be read anyway: costs no extra page
                    continue
                # Not due, or an optional sweep: worth it only while the extra reading stays small.
                gap_events += seg.events
                gap_bytes += seg.bytes
                if not self._cheap(gap_events, gap_bytes):
                    break
                if (due is not None and due <= now_ms) or seg.end_ms >= reach_ms:
                    first_index = i
            covered = older[first_index:] + new
            for seg in covered:
                seg.scanning = True
            final = any(self._is_final(s) for s in older[first_index:])
            return Scan("head", covered[0].start_ms, end_ms, now_ms, covered, final=final)

    def start_sweep(self, now_ms: int, *, allow_intermediate: bool) -> Scan | None:
        """Begin a sweep if one is ripe: from the oldest ripe segment over every reachable due one."""
        with self.lock:
            segs = self._segments
            first = None
            for i, seg in enumerate(segs):
                if seg.scanning:
                    continue
                ripe = self._ripe_ms(seg)
                if ripe is not None and ripe <= now_ms and (allow_intermediate or self._is_final(seg)):
                    first = i
                    break
            if first is None:
                return None
            last = first
            gap_events = gap_bytes = 0
            for j in range(first + 1, len(segs)):
                seg = segs[j]
                if seg.scanning:
                    break
                due = self._due_ms(seg)
                if due is not None and due <= now_ms:
                    last = j
                    gap_events = gap_bytes = 0
                    continue
                gap_events += seg.events
                gap_bytes += seg.bytes
                if not self._cheap(gap_events, gap_bytes):
                    break
            covered = segs[first:last + 1]
            for seg in covered:
                seg.scanning = True
            final = any(self._is_final(s) for s in covered)
            return Scan("sweep", covered[0].start_ms, covered[-1].end_ms, now_ms, list(covered), final=final)

    def finish_scan(self, scan: Scan) -> None:
        """The range was paginated to its end: every covered segment counts as read at ``scan.started_ms``."""
        with self.lock:
            for seg in scan.segments:
                seg.scanning = False
                seg.read_ms = scan.started_ms
                if seg.pending:
                    seg.awaiting_ms = scan.started_ms
                else:
                    seg.confirmed_ms = scan.started_ms
                    seg.awaiting_ms = None
            self._close_finished()

    def abandon_scan(self, scan: Scan) -> None:
        """The scan will not complete (stopping): its segments keep their previous read state."""
        with self.lock:
            for seg in scan.segments:
                seg.scanning = False

    def _close_finished(self) -> None:
        keep_segments: list[Segment] = []
        for seg in self._segments:
            if (
                not seg.scanning
                and not seg.pending
                and seg.confirmed_ms is not None
                and seg.confirmed_ms - seg.end_ms >= self.max_lateness_ms
            ):
                self.closed_segments += 1
                continue
            keep_segments.append(seg)
        if len(keep_segments) != len(self._segments):
            self._segments = keep_segments
            self._starts = [s.start_ms for s in keep_segments]

    # --- events -------------------------------------------------------------------------------

    def admit(self, scan: Scan, events: Iterable[LogEvent]) -> list[tuple[EventKey, LogEvent]]:
        """The events of one page that were not handed out before; they become pending."""
        fresh: list[tuple[EventKey, LogEvent]] = []
        with self.lock:
            for event in events:
                ts = event.timestamp_ms
                if ts < scan.start_ms or ts > scan.end_ms:
                    self.dropped_outside += 1
                    continue
                seg = self._find(ts)
                if seg is None:
                    self.dropped_closed += 1
                    continue
                h = event_hash(event.stream, event.event_id)
                if h in seg.seen:
                    continue
                seg.seen.add_new(h)
                seg.pending.add(h)
                seg.events += 1
                seg.bytes += len(event.message)
                delay = event.ingestion_ms - ts
                if event.ingestion_ms > 0:
                    self._delays.append(delay)
                self._admitted_events += 1
                self._admitted_bytes += len(event.message)
                if delay > self._arrival_delay_ms:
                    self._arrival_delay_ms = delay
                fresh.append((EventKey(ts, h, event.stream, event.event_id), event))
            scan.events += len(fresh)
        return fresh

    def acknowledge(self, keys: Iterable[EventKey]) -> None:
        """Events Falco acknowledged, or that are skipped for good (invalid, rejected): never sent again."""
        by_segment: dict[int, tuple[Segment, list[int]]] = {}
        with self.lock:
            for key in keys:
                seg = self._find(key.timestamp_ms)
                if seg is None or key.hash not in seg.pending:
                    continue
                seg.pending.discard(key.hash)
                by_segment.setdefault(id(seg), (seg, []))[1].append(key.hash)
            for seg, hashes in by_segment.values():
                seg.acked += pack(hashes)
                if not seg.pending and seg.awaiting_ms is not None:
                    seg.confirmed_ms = seg.awaiting_ms
                    seg.awaiting_ms = None
            if by_segment:
                self._close_finished()

    # --- introspection and checkpoint ------------------------------------------------------------

    def segments(self) -> list[Segment]:
        with self.lock:
            return list(self._segments)

    def remembered_hashes(self) -> int:
        with self.lock:
            return sum(len(s.seen) for s in self._segments)

    def snapshot(self) -> tuple[int, tuple[SegmentState, ...]]:
        """(head, open segments) with only acknowledged hashes: what a restart may rely on."""
        with self.lock:
            states = tuple(
                SegmentState(
                    start_ms=seg.start_ms,
                    end_ms=seg.end_ms,
                    confirmed_ms=seg.confirmed_ms,
                    dirty=bool(seg.pending) or seg.awaiting_ms is not None or seg.read_ms != seg.confirmed_ms,
                    hashes=seg.acked_bytes(),
                )
                for seg in self._segments
            )
            return self.head_ms, states

    @classmethod
    def from_checkpoint(cls, state: CheckpointState, **settings: Any) -> RangeTracker:
        """Resume: dirty segments (reads not fully acknowledged at the save) are read again at once,
        the others keep their sweep schedule; acknowledged hashes are not sent again. ``settings``
        are the constructor's keyword arguments (one list of tuning knobs, not two to keep in step)."""
        tracker = cls(state.head_ms, **settings)
        for saved in sorted(state.segments, key=lambda s: s.start_ms):
            seg = Segment(saved.start_ms, saved.end_ms)
            hashes = unpack(saved.hashes)
            seg.seen = HashSet(hashes)
            seg.acked = bytearray(saved.hashes)
            seg.events = len(hashes)
            seg.confirmed_ms = saved.confirmed_ms
            seg.read_ms = None if saved.dirty else saved.confirmed_ms
            tracker._insert(seg)
        return tracker
