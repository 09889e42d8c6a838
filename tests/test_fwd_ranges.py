"""Range scheduling and dedup (forwarder/ranges.py, reader.py) on a simulated clock and CloudWatch."""

from __future__ import annotations

import math

from fwd_fakes import FakeClock, Harness

from forwarder.dedup import HashSet, event_hash, pack, unpack
from forwarder.model import LogEvent
from forwarder.ranges import RangeTracker

STREAM_A = "kube-apiserver-audit-aaaa"
STREAM_B = "kube-apiserver-audit-bbbb"


def test_idle_budget_is_at_most_one_request_per_second_in_every_simulated_minute() -> None:
    h = Harness()
    start = h.clock.now
    h.run_until(start + 30 * 60)
    per_minute = [h.logs.calls_between(start + 60 * m, start + 60 * (m + 1)) for m in range(30)]
    assert max(per_minute) <= 60, per_minute
    # One call per poll is what the design promises when nothing arrives.
    assert max(per_minute) <= 31, per_minute
    assert min(per_minute) >= 29, per_minute


def test_late_arrival_inside_window_is_delivered_exactly_once() -> None:
    h = Harness()
    t0 = h.clock.now
    on_time = [h.logs.add(STREAM_A, int((t0 + i) * 1000), f"m{i}", visible_at=t0 + i + 1) for i in range(0, 120, 3)]
    # Timestamped at t0+5 s but visible only 5 minutes later, long after newer events were delivered.
    late = h.logs.add(STREAM_B, int((t0 + 5) * 1000), "late", visible_at=t0 + 305)
    h.run_until(t0 + 15 * 60)
    assert h.delivered[late] == 1
    assert all(h.delivered[i] == 1 for i in on_time)
    assert h.delivered_at[late] >= t0 + 305
    # Caught by the final sweep at the latest (end + lateness + slack + a poll).
    assert h.delivered_at[late] <= t0 + 5 + 600 + 60 + 4


def test_late_arrival_is_caught_early_by_intermediate_sweeps() -> None:
    h = Harness()
    t0 = h.clock.now
    h.run_until(t0 + 20)
    # Timestamp now, visible 8 s later: the 10-s sweep (or the 60-s one) catches it, not the final one.
    late = h.logs.add(STREAM_A, int((t0 + 20) * 1000), "late", visible_at=t0 + 28)
    h.run_until(t0 + 15 * 60)
    assert h.delivered[late] == 1
    assert h.delivered_at[late] <= t0 + 20 + 60 + 30 + 4


def test_event_later_than_the_window_is_not_delivered_documented_limit() -> None:
    # Documented limit: an event that becomes visible more than max_lateness (+ the final sweep's
    # slack) after its timestamp finds its range closed and is not delivered.
    h = Harness(max_lateness_s=60)
    t0 = h.clock.now
    too_late = h.logs.add(STREAM_A, int((t0 + 5) * 1000), "too late", visible_at=t0 + 5 + 60 + 120)
    within = h.logs.add(STREAM_A, int((t0 + 5) * 1000), "within", visible_at=t0 + 5 + 55)
    h.run_until(t0 + 10 * 60)
    assert h.delivered[within] == 1
    assert h.delivered[too_late] == 0
    assert h.tracker.dropped_closed == 0  # its range was never read again after closing
    assert h.tracker.segments() == [] or all(s.end_ms > (t0 + 5) * 1000 for s in h.tracker.segments())


def test_thousands_of_events_in_one_millisecond_across_pages_all_arrive_once() -> None:
    h = Harness(page_events=1_000, rate=1000)
    t0 = h.clock.now
    ts = int((t0 + 1) * 1000)
    ids = [h.logs.add(STREAM_A if i % 2 else STREAM_B, ts, f"e{i}", visible_at=t0 + 1.5) for i in range(25_000)]
    h.run_until(t0 + 12 * 60)
    assert len(h.delivered) == 25_000
    assert set(h.delivered) == set(ids)
    assert max(h.delivered.values()) == 1


def test_streams_outside_the_prefix_are_ignored() -> None:
    h = Harness()
    t0 = h.clock.now
    mine = h.logs.add(STREAM_A, int(t0 * 1000) + 100, "mine", visible_at=t0 + 1)
    other = h.logs.add("kube-scheduler-1234", int(t0 * 1000) + 100, "not mine", visible_at=t0 + 1)
    h.run_until(t0 + 30)
    assert h.delivered[mine] == 1 and h.delivered[other] == 0


def test_new_stream_mid_run_is_read_without_listing_streams() -> None:
    h = Harness()
    t0 = h.clock.now
    h.run_until(t0 + 30)
    rotated = h.logs.add("kube-apiserver-audit-new0", int((t0 + 30) * 1000), "after rotation", visible_at=t0 + 31)
    h.run_until(t0 + 60)
    assert h.delivered[rotated] == 1
    assert all(set(params) <= {"logGroupName", "logStreamNamePrefix", "startTime", "endTime", "nextToken"}
               for _, params in h.logs.calls)


def _steady_load(h: Harness, rate_per_s: int, until: float, size: int = 1500, delay_s: float = 1.0) -> list[str]:
    ids: list[str] = []
    state = {"next": h.clock.now}
    body = "x" * size

    def feed(now: float) -> None:
        while state["next"] <= now:
            t = state["next"]
            for _ in range(rate_per_s):
                ids.append(h.logs.add(STREAM_A, int(t * 1000), body, visible_at=t + delay_s))
            state["next"] = t + 1

    h.run_until(until, on_step=feed)
    return ids


def test_under_load_requests_grow_with_pages_not_with_the_window() -> None:
    # 100 events/s of 1.5 KB: a 1-MB page holds ~690, so the data itself needs ~0.15 pages/s per read.
    h = Harness(rate=100)
    t0 = h.clock.now
    ids = _steady_load(h, 100, t0 + 12 * 60)
    h.run_until(t0 + 25 * 60)
    assert len(ids) == 72_000
    assert all(h.delivered[i] == 1 for i in ids)
    # Each event is read by the head scan and at most four sweeps (ages: one poll, 10 s, 60 s, the
    # lateness), never on every poll (that would be ~300 reads over a 10-minute window).
    amplification = sum(h.logs.returned.values()) / len(ids)
    assert amplification <= 5.2, amplification
    # Calls in the loaded minutes 2..10: one head call per poll plus sweep calls whose number follows
    # the data: per stage at most one call per slack period (1 s, 5 s, 30 s, 60 s), plus the pages.
    loaded = [h.logs.calls_between(t0 + 60 * m, t0 + 60 * (m + 1)) for m in range(2, 11)]
    pages_per_minute = math.ceil(100 * 60 * 5 * 1526 / 1_048_576)
    assert max(loaded) <= 30 + 30 + 12 + 2 + 1 + pages_per_minute, loaded


def test_backlog_older_than_the_window_is_read_once() -> None:
    clock = FakeClock()
    t0 = clock.now
    h = Harness(clock=clock, start_ms=int((t0 - 3600) * 1000), rate=100)
    old = [h.logs.add(STREAM_A, int((t0 - 3600 + i) * 1000), f"old{i}", visible_at=t0 - 3600 + i + 1)
           for i in range(0, 3000, 2)]
    h.run_until(t0 + 20 * 60)
    assert all(h.delivered[i] == 1 for i in old)
    # Events older than max_lateness at the first read are final then: read exactly once.
    older_than_window = [i for i, n in zip(old, range(0, 3000, 2), strict=True) if n < 3600 - 600 - 5]
    assert all(h.logs.returned[i] == 1 for i in older_than_window)


def test_request_rate_cap_holds_in_every_window_under_heavy_load() -> None:
    h = Harness(rate=3, page_events=200)
    t0 = h.clock.now
    _steady_load(h, 500, t0 + 120, size=200)
    times = [at for at, _ in h.logs.calls]
    assert len(times) > 100
    for i, at in enumerate(times):
        in_window = sum(1 for t in times[i:i + 10] if t < at + 1.0)
        assert in_window <= 3 + 1, (at, in_window)


def test_unacknowledged_events_keep_their_segment_open_and_out_of_the_snapshot() -> None:
    h = Harness(max_lateness_s=30)
    t0 = h.clock.now
    h.acknowledge = False
    event = h.logs.add(STREAM_A, int((t0 + 1) * 1000), "pending", visible_at=t0 + 1.5)
    h.run_until(t0 + 200)
    head, segments = h.tracker.snapshot()
    owner = [s for s in segments if s.start_ms <= (t0 + 1) * 1000 <= s.end_ms]
    assert len(owner) == 1 and owner[0].dirty and owner[0].hashes == b""
    assert h.delivered[event] == 1  # handed out once, not again while pending
    # Acknowledging it lets the segment close after its final read.
    h.acknowledge = True
    seg = [s for s in h.tracker.segments() if s.start_ms == owner[0].start_ms][0]
    h.tracker.acknowledge([k for k in _keys_for(h, seg)])
    h.run_until(t0 + 300)
    assert all(s.start_ms != owner[0].start_ms for s in h.tracker.segments())


def _keys_for(h: Harness, seg):  # type: ignore[no-untyped-def]
    from forwarder.ranges import EventKey

    for e in h.logs.events:
        if seg.start_ms <= e.timestamp_ms <= seg.end_ms:
            yield EventKey(e.timestamp_ms, event_hash(e.stream, e.event_id), e.stream, e.event_id)


def test_restart_from_snapshot_sends_only_unacknowledged_and_new_events() -> None:
    from forwarder.checkpoint import CheckpointState

    h = Harness(max_lateness_s=120)
    t0 = h.clock.now
    first = [h.logs.add(STREAM_A, int((t0 + i) * 1000), f"a{i}", visible_at=t0 + i + 0.5) for i in range(20)]
    h.run_until(t0 + 25)
    h.acknowledge = False
    unacked = h.logs.add(STREAM_A, int((t0 + 26) * 1000), "unacked", visible_at=t0 + 26.5)
    h.run_until(t0 + 30)
    assert h.delivered[unacked] == 1
    head, segments = h.tracker.snapshot()
    state = CheckpointState("/aws/eks/lab/cluster", "kube-apiserver-audit", head, segments)
    # "Restart": a fresh tracker from the state, same simulated CloudWatch.
    tracker = RangeTracker.from_checkpoint(state, poll_interval_ms=2000, max_lateness_ms=120_000)
    h2 = Harness(clock=h.clock, tracker=tracker, max_lateness_s=120)
    h2.logs = h.logs
    h2.reader.client = h.logs
    late = h.logs.add(STREAM_A, int((t0 + 3) * 1000), "late after restart", visible_at=t0 + 40)
    h2.run_until(t0 + 400)
    assert h2.delivered[unacked] == 1
    assert h2.delivered[late] == 1
    assert all(h2.delivered[i] == 0 for i in first)


def test_head_scan_splits_a_long_range_at_stage_ages() -> None:
    tracker = RangeTracker(0, poll_interval_ms=2000, max_lateness_ms=600_000)
    scan = tracker.start_head(1_000_000)
    assert scan is not None
    bounds = [(s.start_ms, s.end_ms) for s in scan.segments]
    # Cut where parts pass 600 s, 60 s, 10 s and one poll (2 s) of age.
    assert bounds == [(0, 400_000), (400_001, 940_000), (940_001, 990_000), (990_001, 998_000), (998_001, 1_000_000)]
    tracker.finish_scan(scan)
    # The part older than the window is final after this one read and closes.
    assert [s.start_ms for s in tracker.segments()] == [400_001, 940_001, 990_001, 998_001]


def test_events_are_routed_to_their_segment_and_deduplicated_per_segment() -> None:
    tracker = RangeTracker(0, poll_interval_ms=2000, max_lateness_ms=600_000)
    scan = tracker.start_head(100_000)
    assert scan is not None
    e1 = LogEvent("1", STREAM_A, 5, 5, "x")
    e2 = LogEvent("2", STREAM_A, 100_000, 100_000, "y")
    outside = LogEvent("3", STREAM_A, 100_001, 100_001, "z")
    fresh = tracker.admit(scan, [e1, e2, outside, e1])
    assert [k.event_id for k, _ in fresh] == ["1", "2"]
    assert tracker.dropped_outside == 1
    assert tracker.admit(scan, [e1, e2]) == []


def test_hashset_membership_survives_merges_and_pack_roundtrip() -> None:
    values = [event_hash(STREAM_A, str(i)) for i in range(5000)]
    s = HashSet()
    for v in values:
        s.add(v)
    assert len(s) == 5000
    assert all(v in s for v in values)
    assert event_hash(STREAM_A, "5001") not in s
    assert list(unpack(pack(values))) == values
    assert event_hash(STREAM_A, "1") != event_hash(STREAM_B, "1")


def test_sweeps_under_load_are_coalesced_over_several_polls() -> None:
    h = Harness(rate=100)
    t0 = h.clock.now
    _steady_load(h, 100, t0 + 5 * 60, delay_s=0.2)
    # Sweeps are the calls that end well before the moment they were made (the head scan ends at
    # most its lag, here the 0.2 s arrival delay, before it).
    sweeps = [(p["startTime"], p["endTime"]) for at, p in h.logs.calls
              if "nextToken" not in p and p["endTime"] < int(at * 1000) - 5_000 and at > t0 + 90]
    assert sweeps
    # Each first page of a sweep covers several 2-s segments on average, not one segment per call.
    average_span_ms = sum(end - start + 1 for start, end in sweeps) / len(sweeps)
    assert average_span_ms >= 3 * 2000, average_span_ms


def test_prefetching_the_next_page_loses_and_repeats_nothing() -> None:
    h = Harness(page_events=700, rate=1000)
    h.loop.prefetch = True
    t0 = h.clock.now
    ids = [h.logs.add(STREAM_A, int((t0 + 1) * 1000) + i % 3, f"e{i}", visible_at=t0 + 1.5) for i in range(9_000)]
    h.run_until(t0 + 12 * 60)
    h.loop.close()
    assert set(h.delivered) == set(ids)
    assert max(h.delivered.values()) == 1
    assert h.tracker.segments() == [] or all(not s.pending for s in h.tracker.segments())


def test_events_arriving_seconds_late_are_delivered_by_the_next_poll_not_a_sweep() -> None:
    # EKS delivers most audit events a few seconds after their timestamp. At light load the head
    # scan re-reads that recent past, so each event goes out within about one poll of becoming
    # visible instead of waiting for the 10 s sweep.
    h = Harness()
    t0 = h.clock.now
    ids = {h.logs.add(STREAM_A, int((t0 + i * 0.5) * 1000), f"m{i}", visible_at=t0 + i * 0.5 + 3.0): t0 + i * 0.5 + 3.0
           for i in range(200)}
    h.run_until(t0 + 200)
    assert all(h.delivered[i] == 1 for i in ids)
    waits = [h.delivered_at[i] - visible for i, visible in ids.items()]
    # The overlap learns the delay from the events it reads: the first late event, before any was
    # seen, may wait for a sweep; every later one goes out within one poll interval (2 s) plus the
    # simulated call time, where the sweeps alone would take 10 s or more.
    assert waits[0] <= 10, waits[0]
    assert max(waits[1:]) <= 2.5, sorted(waits)[-10:]
    assert h.tracker.overlap_ms() <= 3_000 + 2_000 + 1_000


def test_overlap_is_capped_and_decays_after_a_burst_of_very_late_events() -> None:
    h = Harness()
    t0 = h.clock.now
    h.logs.add(STREAM_A, int((t0 + 10) * 1000), "two minutes late", visible_at=t0 + 130)
    # Caught by the final sweep (10 + 600 s + slack); its 120 s delay would ask for more than the cap.
    overlaps: list[int] = []
    h.run_until(t0 + 10 + 600 + 60 + 4, on_step=lambda _now: overlaps.append(h.tracker.overlap_ms()))
    assert h.delivered_at
    assert max(overlaps) == h.tracker.max_overlap_ms
    h.run_until(t0 + 10 + 600 + 60 + 4 + 300)
    assert h.tracker.overlap_ms() <= 2_000 + 1_000 + 100


def test_overlap_costs_no_extra_calls_when_idle() -> None:
    h = Harness()
    start = h.clock.now
    h.logs.add(STREAM_A, int(start * 1000), "late", visible_at=start + 30)
    h.run_until(start + 10 * 60)
    per_minute = [h.logs.calls_between(start + 60 * m, start + 60 * (m + 1)) for m in range(10)]
    assert max(per_minute) <= 31, per_minute


def test_optional_sweeps_still_run_with_a_short_poll_interval() -> None:
    # A burst whose second half becomes visible just after the head scan read the first half: the
    # segment holds too many events for the head's overlap, so an optional sweep must catch it.
    # With a 200 ms poll the full margin (limiter spacing + 500 ms) would never be free.
    from dataclasses import replace

    from forwarder.config import RunConfig, StartAt
    from forwarder.pipeline import optional_sweep_margin_ms
    from forwarder.reader import ReadLoop

    base = RunConfig(log_group="g", falco_url="http://127.0.0.1:1/k8s-audit", region="us-west-2",
                     start_at=StartAt("now", 0.0, 0))
    assert optional_sweep_margin_ms(base) == int(1000 / base.max_requests_per_second) + 500
    short = replace(base, poll_interval_seconds=0.2, max_requests_per_second=20.0)
    assert optional_sweep_margin_ms(short) == 100

    h = Harness(poll_interval_s=0.2, rate=20.0)
    h.loop = ReadLoop(h.tracker, h.reader, h.sink, clock=h.clock, wait=h.clock.wait,
                      optional_margin_ms=optional_sweep_margin_ms(short))
    t0 = h.clock.now
    h.run_until(t0 + 1)
    burst_ms = int(h.clock.now * 1000)
    first = [h.logs.add(STREAM_A, burst_ms, f"a{i}") for i in range(2_000)]
    h.run_until(h.clock.now + 0.5)
    second = [h.logs.add(STREAM_A, burst_ms, f"b{i}") for i in range(2_000)]
    visible = h.clock.now
    h.run_until(visible + 30)
    assert all(h.delivered[i] == 1 for i in first + second)
    # The 10 s stage sweep at the latest, long before the final one.
    assert max(h.delivered_at[i] for i in second) <= visible + 10 + 5 + 1


def test_under_load_the_head_lags_by_the_arrival_delay_so_late_events_skip_the_sweeps() -> None:
    # 500 events/s, each visible 3 s after its timestamp: the recent past is too big to re-read
    # every poll, so the head stops short of now by the observed delay instead.
    h = Harness()
    t0 = h.clock.now
    visible: dict[str, float] = {}

    def produce(now: float) -> None:
        while produce.next_t <= now - 3.0 and produce.next_t < t0 + 60:
            ts = produce.next_t
            visible[h.logs.add(STREAM_A, int(ts * 1000), "x" * 200, visible_at=ts + 3.0)] = ts + 3.0
            produce.next_t += 0.002

    produce.next_t = t0  # type: ignore[attr-defined]
    h.run_until(t0 + 120, on_step=produce)
    assert len(visible) > 25_000
    assert all(h.delivered[i] == 1 for i in visible)
    settled = sorted(h.delivered_at[i] - v for i, v in visible.items() if v > t0 + 20)
    p99 = settled[int(len(settled) * 0.99)]
    # A poll interval (2 s), the quantile's slack and call time; without the lag it would be ~10 s.
    assert p99 <= 3.5, (p99, settled[-5:])
    assert 2_000 <= h.tracker.head_lag_ms(int(h.clock.now * 1000)) or h.clock.now > t0 + 60
