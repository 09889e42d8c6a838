"""When to read what from CloudWatch: re-read stages at growing ages, and the turn-taking between reads.

Facts relied on (CloudWatch Logs API reference, FilterLogEvents): ``startTime`` and ``endTime`` are
inclusive and select on the event's own timestamp; a range is read only when paginated to its end
(1 MB or 10,000 events a page); nothing about the order of events inside a range is relied on.

The model. Every instant of the timeline is read by a fixed series of *stages*, each at a given age
(how long after the instant, on CloudWatch's clock): the *head* as soon as it can (age 0, or the
recent arrival delay under load, arrival.py), then the optional stages at STAGE_TABLE's ages, then the
*final* stage at ``--max-lateness`` (mandatory: it is what makes the forwarder lossless), then a
*probe* a little later that only counts (and still delivers) events that arrived after their window.
Each stage is a trailing cursor (a ledger position): it reads ``[cursor, now - age]`` when that stretch
is ``period`` long, or holds a page of data, whichever comes first; so it reads an instant between
``age`` and ``age + period`` after it.

The bound, in one sentence: each stage's ``age + period + SLACK_S <= 2 x (previous stage's age) + 15 s``
(checked by tests/test_fwd_schedule.py), so an event that becomes visible N seconds after its timestamp,
``N <= age`` of the first stage older than N, is read, and handed to Falco, within 2N + 15 s.

Cost. Each stage re-reads all the data once: under load the calls are the pages (a page-full window
is read at once), at light load the head read also covers every stage whose window it reaches over
cheap data (one call per poll when idle). Stages cost about ``max(data pages/s, 1/period)`` calls/s;
when the sum exceeds what the rate limiter allows (``UTILISATION`` of its current rate), optional
stages are given up oldest first (the probe, then 330 s, 180 s, ...); the head and the final stage
are never given up. A given-up stage's cursor is dragged along, so nothing is read again for it; it
still reads, once, a window nobody has read yet (after a start or a restart): that is no re-read.

Catching up. A stage never reads what is already old enough for the next stage (its cursor jumps
ahead), so a backlog (a restart after an outage, ``--start-at`` in the past) is read once, by the
final stage, in chunks of bounded size (about CHUNK_TARGET_EVENTS each): each chunk is confirmed, and
its hashes forgotten, as soon as its events are acknowledged.

Turn-taking: at most one head read, one mandatory (final) read and one optional read are open at a
time. The head and the final read take pages in turn; an optional read starts, and gets pages, only
while neither has anything to read and the next head read is not about to be due.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from ..checkpoint.ledger import Ledger
from .arrival import ArrivalEstimate

log = logging.getLogger("forwarder.schedule")

# (age, period) in seconds of the optional stages between the head and the final read: each line
# satisfies age + period + SLACK_S <= 2 x previous age + 15 s (the head's age counts as 0). 95 s rather
# than more: in an ingestion slowdown where every event is 90 s late, the median event goes out at ~101 s.
STAGE_TABLE: tuple[tuple[int, int], ...] = ((7, 4), (21, 5), (47, 7), (95, 11), (180, 22), (330, 40))
BOUND_FACTOR = 2
BOUND_EXTRA_S = 15
SLACK_S = 2
"""What the bound allows for getting a request token, the call itself and delivery."""
MAX_FINAL_PERIOD_MS = 60_000
MAX_PROBE_GAP_MS = 60_000

# CloudWatch's page: 1 MB or 10,000 events. A window is read as soon as it holds this share of a page.
PAGE_BYTES = 1_048_576
PAGE_EVENTS = 10_000
PAGE_FILL = 0.9
# Reading this much data again costs less than one page: a read may reach over it to serve another stage.
CHEAP_EVENTS = 1_000
CHEAP_BYTES = 256 * 1024
# Share of the rate limiter's current rate the stages may plan to use (the rest absorbs retries and jitter).
UTILISATION = 0.95
# A given-up stage comes back only when it fits in this share of the budget (no flapping).
HYSTERESIS = 0.9
# The timeline's data rate is the busiest minute of the last few, ignoring the last seconds (still arriving).
RATE_WINDOW_MS = 60_000
RATE_HISTORY_MS = 5 * 60_000
RATE_SETTLE_MS = 10_000
# Catch-up chunks of the final stage: sized to hold about this many events; a first guess of a minute.
CHUNK_TARGET_EVENTS = 50_000
FIRST_CHUNK_MS = 60_000
MIN_CHUNK_MS = 1_000
MAX_CHUNK_GROWTH = 8

HEAD = "head"
FINAL = "final"
PROBE = "probe"


@dataclass(frozen=True)
class Stage:
    name: str
    age_ms: int
    """How long after an instant (CloudWatch time) this stage reads it, at the earliest."""
    period_ms: int
    """How much later, at the latest (when its window never fills a page)."""
    mandatory: bool = False


def build_stages(poll_interval_ms: int, max_lateness_ms: int) -> tuple[Stage, ...]:
    """The stages for these settings: the head, STAGE_TABLE's stages younger than the lateness window (extended
    past 330 s by the same rule when the window is longer), the final stage and the probe."""
    optional = [Stage(f"{age}s", age * 1000, period * 1000) for age, period in STAGE_TABLE
                if age * 1000 < max_lateness_ms]
    age_ms = optional[-1].age_ms if optional else 0
    while True:
        # Past the table: the largest age whose period (a tenth of it) still keeps the bound.
        next_age = (BOUND_FACTOR * age_ms + (BOUND_EXTRA_S - SLACK_S) * 1000) * 10 // 11 // 1000 * 1000
        if next_age >= max_lateness_ms or age_ms < STAGE_TABLE[-1][0] * 1000:
            break
        optional.append(Stage(f"{next_age // 1000}s", next_age, next_age // 10))
        age_ms = next_age
    previous = optional[-1].age_ms if optional else 0
    allowed = BOUND_FACTOR * previous + (BOUND_EXTRA_S - SLACK_S) * 1000 - max_lateness_ms
    final_period = max(poll_interval_ms, min(MAX_FINAL_PERIOD_MS, max_lateness_ms // 10, allowed))
    probe_gap = max(poll_interval_ms, min(MAX_PROBE_GAP_MS, max_lateness_ms // 10))
    return (
        Stage(HEAD, 0, poll_interval_ms, mandatory=True),
        *optional,
        Stage(FINAL, max_lateness_ms, final_period, mandatory=True),
        Stage(PROBE, max_lateness_ms + probe_gap, probe_gap),
    )


def stage_cost(stage: Stage, data_rate: tuple[float, float]) -> float:
    """Calls per second ``stage`` takes at ``data_rate`` (events/s, bytes/s of the timeline): the pages of
    re-reading all of it, or one call per period, whichever is more."""
    events_per_s, bytes_per_s = data_rate
    pages = max(events_per_s / PAGE_EVENTS, bytes_per_s / PAGE_BYTES) / PAGE_FILL
    return max(pages, 1000 / stage.period_ms)


def affordable_stages(stages: tuple[Stage, ...], data_rate: tuple[float, float], rate_per_second: float,
                      active: tuple[Stage, ...] = ()) -> tuple[Stage, ...]:
    """The stages the request budget pays for: the mandatory ones always, then the optional ones youngest
    first while their cost fits in ``UTILISATION`` of the rate (a stage not in ``active`` comes back only
    below ``HYSTERESIS`` of it); the rest, the oldest, are given up."""
    budget = rate_per_second * UTILISATION
    used = sum(stage_cost(s, data_rate) for s in stages if s.mandatory)
    keep: list[Stage] = []
    giving_up = False
    for stage in stages:
        if stage.mandatory:
            keep.append(stage)
            continue
        cost = stage_cost(stage, data_rate)
        limit = budget if stage in active else budget * HYSTERESIS
        if giving_up or used + cost > limit:
            giving_up = True  # the rest are older: given up too
            continue
        used += cost
        keep.append(stage)
    return tuple(keep)


def full_reread_limit(stages: tuple[Stage, ...], rate_per_second: float, event_bytes: int) -> float:
    """The highest event rate (events/s of ``event_bytes``) at which every stage that latency depends on (all
    but the probe) is still paid for: above it the schedule gives stages up (README, "Limits")."""
    wanted = [s for s in stages if s.name != PROBE]
    low, high = 0.0, 100_000.0
    for _ in range(60):
        mid = (low + high) / 2
        kept = affordable_stages(stages, (mid, mid * (event_bytes + 26)), rate_per_second, stages)
        low, high = (mid, high) if all(s in kept for s in wanted) else (low, mid)
    return low


@dataclass
class Read:
    """One FilterLogEvents range being paginated: ``[start_ms, end_ms]``, started at CloudWatch time ``started_ms``."""

    kind: str  # "head" | "mandatory" | "optional"
    start_ms: int
    end_ms: int
    started_ms: int
    stages: tuple[str, ...]
    """The stages whose windows it was opened for (no other read is opened for them meanwhile)."""
    head_age_ms: int = 0
    """The head's age (its lag) when this read started."""
    next_token: str | None = None
    pages: int = 0
    events: int = field(default=0)
    chunk: bool = False
    """A catch-up chunk of the final stage (its size adapts to the events it held)."""


class Schedule:
    """Decides which read gets the next page; thread-safe through the ledger's lock."""

    def __init__(
        self,
        stages: tuple[Stage, ...],
        ledger: Ledger,
        arrival: ArrivalEstimate,
        *,
        rate_per_second: Callable[[], float],
        optional_margin_ms: int,
    ) -> None:
        self.stages = stages
        self.by_name = {s.name: s for s in stages}
        self.ledger = ledger
        self.arrival = arrival
        self.rate_per_second = rate_per_second
        self.optional_margin_ms = optional_margin_ms
        self.head = stages[0]
        self.final = self.by_name[FINAL]
        self.active: tuple[Stage, ...] = stages
        self.open: dict[str, Read] = {}
        self._busy: set[str] = set()
        self._last_head_ms: int | None = None
        self._turn = 0
        self._chunk_ms = FIRST_CHUNK_MS
        self._recent_rate: tuple[float, float] | None = None
        self._admitted = (0, 0)
        self.data_rate: tuple[float, float] = (0.0, 0.0)
        """Recent (events/s, bytes/s) of the timeline: what one stage's re-read costs."""
        self._update_retention()

    # --- clock ------------------------------------------------------------------------------------------

    def cloudwatch_ms(self, now_ms: int) -> int:
        """Now on CloudWatch's clock: every age is measured on it."""
        return now_ms - self.arrival.skew_ms()

    def _age(self, stage: Stage, head_age_ms: int) -> int:
        return head_age_ms if stage is self.head else stage.age_ms

    # --- which stages are affordable --------------------------------------------------------------------

    def _measure_rate(self, t_ms: int) -> tuple[float, float]:
        best = (0.0, 0.0)
        end = t_ms - RATE_SETTLE_MS
        while end > t_ms - RATE_HISTORY_MS:
            events, nbytes = self.ledger.volume(end - RATE_WINDOW_MS + 1, end)
            if nbytes > best[1] or events > best[0]:
                best = (max(best[0], events * 1000 / RATE_WINDOW_MS), max(best[1], nbytes * 1000 / RATE_WINDOW_MS))
            end -= RATE_WINDOW_MS
        return best

    def _update_budget(self, t_ms: int) -> None:
        self.data_rate = self._measure_rate(t_ms)
        active = affordable_stages(self.stages, self.data_rate, self.rate_per_second(), self.active)
        if active != self.active:
            dropped = [s.name for s in self.stages if s not in active]
            log.info(
                "read stages adjusted to the request budget",
                extra={"given_up": dropped, "events_per_s": round(self.data_rate[0], 1),
                       "bytes_per_s": round(self.data_rate[1]), "rate_limit_per_s": round(self.rate_per_second(), 2)},
            )
            self.active = active
            self._update_retention()

    def _update_retention(self) -> None:
        names = [FINAL]
        if any(s.name == PROBE for s in self.active):
            names.append(PROBE)
        self.ledger.retention = tuple(names)

    # --- cursors ------------------------------------------------------------------------------------------

    def _skip_ahead(self, t_ms: int) -> None:
        """A stage never reads what is already due for the next active stage: that stage reads it, once."""
        ledger = self.ledger
        final_read_to = ledger.read_to(FINAL)
        for stage in self.stages:
            if stage.mandatory and stage is not self.head:
                continue
            if stage.name in self._busy:
                continue
            if stage.name == PROBE:
                if stage not in self.active:
                    # Given up: follows the final stage, so it never reaches back to forgotten buckets.
                    ledger.advance(PROBE, final_read_to)
                continue
            older = self._next_older_active(stage)
            if older is not None:
                ledger.advance(stage.name, t_ms - older.age_ms + 1)

    def _next_older_active(self, stage: Stage) -> Stage | None:
        index = self.stages.index(stage)
        for candidate in self.stages[index + 1:]:
            if candidate in self.active:
                return candidate
        return None

    def window(self, stage: Stage, t_ms: int, head_age_ms: int = 0) -> tuple[int, int]:
        """What ``stage`` has left to read at CloudWatch time ``t_ms`` (empty when start > end)."""
        return self.ledger.read_to(stage.name), t_ms - self._age(stage, head_age_ms)

    def _cheap(self, start_ms: int, end_ms: int, extra: tuple[int, int] = (0, 0)) -> tuple[bool, tuple[int, int]]:
        """Whether reading ``[start_ms, end_ms]`` (plus ``extra``) costs less than a page: what it held when it
        was read; where this process has not read it yet (a start, a restart), what the recent rate says, and
        never more than the lateness window of it (a backlog is the final stage's, in chunks)."""
        if end_ms < start_ms:
            return True, extra
        events, nbytes = self.ledger.volume(start_ms, end_ms)
        if not self.ledger.known(start_ms, end_ms):
            if self._recent_rate is None or end_ms - start_ms >= self.final.age_ms:
                return False, extra
            seconds = (end_ms - start_ms + 1) / 1000
            rate = (max(self._recent_rate[0], self.data_rate[0]), max(self._recent_rate[1], self.data_rate[1]))
            events, nbytes = max(events, round(rate[0] * seconds)), max(nbytes, round(rate[1] * seconds))
        total = (events + extra[0], nbytes + extra[1])
        return total[0] <= CHEAP_EVENTS and total[1] <= CHEAP_BYTES, total

    def _note_recent_rate(self, now_ms: int) -> None:
        """What was handed out per second since the previous head read (a rate known from the second one on)."""
        ledger = self.ledger
        if self._last_head_ms is not None and now_ms > self._last_head_ms:
            seconds = (now_ms - self._last_head_ms) / 1000
            self._recent_rate = ((ledger.admitted_events - self._admitted[0]) / seconds,
                                 (ledger.admitted_bytes - self._admitted[1]) / seconds)
        self._admitted = (ledger.admitted_events, ledger.admitted_bytes)

    def _page_full(self, start_ms: int, end_ms: int) -> bool:
        """Whether the window already holds a page of the events handed out so far."""
        events, nbytes = self.ledger.volume(start_ms, end_ms)
        return events >= PAGE_EVENTS * PAGE_FILL or nbytes >= PAGE_BYTES * PAGE_FILL

    def _due(self, stage: Stage, t_ms: int) -> bool:
        start, end = self.window(stage, t_ms)
        if start > end:
            return False
        return end - start + 1 >= stage.period_ms or self._page_full(start, end)

    # --- building reads -------------------------------------------------------------------------------------

    def _extend(self, stage: Stage, start: int, end: int, t_ms: int, head_age_ms: int, *, forward: bool
                ) -> tuple[int, int, list[str]]:
        """Reach over neighbouring stages' windows while the extra data stays cheap (less than a page)."""
        served = [stage.name]
        index = self.stages.index(stage)
        older = [s for s in self.stages[index + 1:] if s in self.active]
        younger = [s for s in self.stages[:index] if s in self.active]
        extra = (0, 0)
        for other in older:  # further back in time
            if other.name in self._busy:
                break
            other_start, other_end = self.window(other, t_ms)
            if other_start > other_end:
                continue
            if other_start < start:
                ok, extra = self._cheap(other_start, start - 1, extra)
                if not ok:
                    break
                start = other_start
            served.append(other.name)
        if forward:
            for other in reversed(younger):  # later in time
                if other.name in self._busy:
                    break
                other_start, other_end = self.window(other, t_ms, head_age_ms)
                if other_start > other_end:
                    continue
                if other_end > end:
                    ok, extra = self._cheap(end + 1, other_end, extra)
                    if not ok:
                        break
                    end = other_end
                served.append(other.name)
        return start, end, served

    def _open(self, kind: str, stage: Stage, t_ms: int) -> Read | None:
        head_age = 0
        start, end = self.window(stage, t_ms)
        if stage is self.head:
            # Light load: also re-read the recent past (seconds-late events go out within a poll). Under
            # load that is not cheap: stop short of now by the lag instead, so that most events are already
            # visible when first read.
            overlap_start = max(min(start, end - self.arrival.overlap_ms()), self.ledger.read_to(FINAL))
            if self._cheap(overlap_start, start - 1)[0]:
                start = min(start, overlap_start)
            else:
                head_age = self.arrival.lag_ms()
                end = t_ms - head_age
        if start > end:
            return None
        chunk = False
        if stage is self.final and end - start + 1 > self._chunk_ms:
            end, chunk = start + self._chunk_ms - 1, True
        start, end, served = self._extend(stage, start, end, t_ms, head_age, forward=not chunk)
        read = Read(kind, start, end, t_ms, tuple(served), head_age_ms=head_age, chunk=chunk)
        self.open[kind] = read
        self._busy.update(served)
        return read

    def next_read(self, now_ms: int) -> Read | None:
        """The read that gets the next page (opening reads that became due), or None: nothing to read now."""
        with self.ledger.lock:
            t_ms = self.cloudwatch_ms(now_ms)
            if "head" not in self.open and self.ms_until_head(now_ms) == 0:
                self._update_budget(t_ms)
                self._skip_ahead(t_ms)
                self._note_recent_rate(now_ms)
                self._last_head_ms = now_ms
                self.arrival.decay()
                self._open("head", self.head, t_ms)
            else:
                self._skip_ahead(t_ms)
            if "mandatory" not in self.open and FINAL not in self._busy and self._due(self.final, t_ms):
                self._open("mandatory", self.final, t_ms)
            head, mandatory = self.open.get("head"), self.open.get("mandatory")
            if head is not None and mandatory is not None:
                self._turn += 1
                return head if self._turn % 2 else mandatory
            if head is not None or mandatory is not None:
                return head or mandatory
            # An optional read never delays a head read that is about due.
            if "optional" not in self.open and self.ms_until_head(now_ms) >= self.optional_margin_ms:
                self._open_optional(t_ms)
            return self.open.get("optional")

    def _unread(self, stage: Stage, t_ms: int) -> bool:
        """A given-up stage still reads a window that nobody has read yet (a start, a backlog): giving it up
        saves re-reads, and that is no re-read."""
        start, end = self.window(stage, t_ms)
        return stage.name != PROBE and start <= end and not self.ledger.known(start, end)

    def _open_optional(self, t_ms: int) -> None:
        # The most overdue stage first: the one whose oldest unread instant passed age + period longest ago.
        due = [s for s in self.stages if not s.mandatory and s.name not in self._busy
               and (self._due(s, t_ms) if s in self.active else self._unread(s, t_ms))]
        if due:
            stage = min(due, key=lambda s: self.ledger.read_to(s.name) + s.age_ms + s.period_ms)
            self._open("optional", stage, t_ms)

    def ms_until_head(self, now_ms: int) -> int:
        if self._last_head_ms is None:
            return 0
        return max(0, self._last_head_ms + self.head.period_ms - now_ms)

    def wake_in_ms(self, now_ms: int) -> int:
        """How long the reader may sleep: until the next head read or the next stage due by its period.
        (A window that fills a page is noticed at the next head read, at most a poll later.)"""
        with self.ledger.lock:
            until_head = self.ms_until_head(now_ms)
            wake = until_head
            t_ms = self.cloudwatch_ms(now_ms)
            for stage in self.active:
                if stage is self.head or stage.name in self._busy:
                    continue
                due_in = max(0, self.ledger.read_to(stage.name) + stage.age_ms + stage.period_ms - 1 - t_ms)
                if not stage.mandatory and until_head < self.optional_margin_ms:
                    due_in = max(due_in, until_head)  # it waits for the head read anyway (next_read)
                wake = min(wake, due_in)
            return wake

    def behind_ms(self, stage: Stage, now_ms: int) -> int:
        """How much of the timeline ``stage`` has left to read now (0 when it is up to date)."""
        with self.ledger.lock:
            start, end = self.window(stage, self.cloudwatch_ms(now_ms))
            return max(0, end - start + 1)

    def alone(self, read: Read) -> bool:
        """True when ``read`` is the only open read, so its next page is the next one fetched."""
        return len(self.open) == 1 and read in self.open.values()

    # --- completing reads ------------------------------------------------------------------------------

    def finished(self, read: Read) -> None:
        """``read`` was paginated to its end: every stage whose cursor lies inside it moves past what it covered
        at its age (a read of [start, end] started at t covers, for a stage of age a, [cursor, min(end, t - a)])."""
        with self.ledger.lock:
            self._close(read)
            self.ledger.note_read(read.start_ms, read.end_ms)
            for stage in self.stages:
                read_to = self.ledger.read_to(stage.name)
                if read.start_ms <= read_to <= read.end_ms:
                    covered = min(read.end_ms, read.started_ms - self._age(stage, read.head_age_ms))
                    self.ledger.advance(stage.name, covered + 1)
            if read.chunk:
                # Size the next catch-up chunk to hold about CHUNK_TARGET_EVENTS.
                span = read.end_ms - read.start_ms + 1
                wanted = span * CHUNK_TARGET_EVENTS // max(1, read.events)
                self._chunk_ms = max(MIN_CHUNK_MS, min(wanted, span * MAX_CHUNK_GROWTH))

    def abandon(self, read: Read) -> None:
        """``read`` will not complete (stopping, or its token expired): its stages keep their cursors."""
        with self.ledger.lock:
            self._close(read)

    def abandon_all(self) -> None:
        with self.ledger.lock:
            for read in list(self.open.values()):
                self._close(read)

    def _close(self, read: Read) -> None:
        if self.open.get(read.kind) is read:
            del self.open[read.kind]
        self._busy.difference_update(read.stages)
