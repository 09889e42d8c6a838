"""The read schedule (forwarder/sources/schedule.py, arrival.py, reader.py) on a simulated CloudWatch and clock.

Every simulation builds the polling source through the production factory with the default settings
(fwd_fakes.Harness); only what a test names is changed. The latency table pins the schedule: an event
that becomes visible N s after its timestamp reaches Falco within 2N + 15 s.
"""

from __future__ import annotations

import math
import random

import pytest
from fwd_fakes import FakeClock, Harness, steady_load
from support.schedule_sim import simulate

from forwarder.checkpoint.codec import Checkpoint, Positions, Remembered
from forwarder.sources import schedule
from forwarder.sources.schedule import (
    BOUND_EXTRA_S,
    BOUND_FACTOR,
    FINAL,
    PROBE,
    SLACK_S,
    build_stages,
    full_reread_limit,
)

STREAM_A = "kube-apiserver-audit-aaaa"
STREAM_B = "kube-apiserver-audit-bbbb"
CAP = 3.0  # --max-requests-per-second's default


@pytest.mark.parametrize("lateness_s", [3, 6, 20, 25, 60, 100, 600, 1800, 3600])
def test_every_stage_reads_within_twice_the_previous_age_plus_15_s(lateness_s: int) -> None:
    # The bound in one sentence: a stage of age a and period p reads an instant by a + p (+ SLACK_S for the
    # token and the call), and that is at most twice the previous stage's age + 15 s.
    stages = build_stages(2000, lateness_s * 1000)
    assert [s.name for s in stages][0] == "head" and stages[-2].name == FINAL and stages[-1].name == PROBE
    assert stages[-2].age_ms == lateness_s * 1000 and stages[-2].mandatory
    ages = [s.age_ms for s in stages]
    assert ages == sorted(set(ages))
    for previous, stage in zip(stages, stages[1:-1], strict=False):
        assert stage.age_ms + stage.period_ms + SLACK_S * 1000 <= BOUND_FACTOR * previous.age_ms + BOUND_EXTRA_S * 1000


@pytest.mark.parametrize("rate", [1, 50, 200])
@pytest.mark.parametrize("delay_s", [5, 30, 90, 300])
def test_latency_table_every_event_visible_n_s_late_reaches_falco_within_2n_plus_15_s(delay_s: int, rate: int) -> None:
    result = simulate(delay_s, rate)
    assert result.delivered == result.events and result.duplicates == 0
    assert result.worst_s <= 2 * delay_s + 15, (result.worst_s, result.median_s, result.stages_given_up)
    # Within the cap in every second (a bucket of one token spaces calls 1/cap apart: cap + 1 at an edge).
    assert result.max_calls_per_s <= CAP + 1
    # Every stage that the latency depends on stays in use up to 200 events/s (the probe may go first).
    assert set(result.stages_given_up) <= {PROBE}


def test_every_stage_the_latency_depends_on_is_paid_for_up_to_200_events_per_second() -> None:
    stages = build_stages(2000, 600_000)
    limit = full_reread_limit(stages, CAP, 1500)
    assert 200 <= limit <= 260, limit  # README: "about 200 events/s of 1.5 KB"
    assert full_reread_limit(stages, 5.0, 1500) > 1.5 * limit  # a higher cap pays for more


def test_in_a_slowdown_where_every_event_is_90_s_late_the_median_is_under_2_minutes() -> None:
    result = simulate(90, 200)
    assert result.median_s <= 120, result.median_s


def test_events_late_by_any_amount_inside_the_window_each_keep_their_own_bound() -> None:
    rng = random.Random(11)
    delays = [rng.uniform(0, 590) for _ in range(100 * 90)]
    result = simulate(lambda i: delays[i], 100)
    assert result.delivered == result.events and result.duplicates == 0
    assert max(result.excess) <= 0, max(result.excess)


def test_idle_costs_one_call_per_poll() -> None:
    h = Harness()
    start = h.clock.now
    h.run_until(start + 30 * 60)
    per_minute = [h.logs.calls_between(start + 60 * m, start + 60 * (m + 1)) for m in range(30)]
    # The head read reaches back over every stage's (empty) window: one call per 2-s poll.
    assert max(per_minute[1:]) <= 31 and min(per_minute) >= 29, per_minute
    # The first minute also reads back the first start's hour (--start-at), empty here: a few calls more.
    assert per_minute[0] <= 31 + 5, per_minute


def test_above_the_budget_optional_stages_are_given_up_oldest_first_and_nothing_is_lost() -> None:
    # 400 events/s of 1.5 KB: the cap of 3 calls/s cannot pay for every re-read.
    h = Harness()
    t0 = h.clock.now
    ids = steady_load(h, 400, 150, size=1500, late_every=50, late_s=40.0)
    active = [s.name for s in h.schedule.active]
    given_up = [s.name for s in h.schedule.stages if s.name not in active]
    optional = [s.name for s in h.schedule.stages if not s.mandatory]
    assert given_up and given_up == optional[len(optional) - len(given_up):]  # the oldest ones
    assert {"head", FINAL} <= set(active)
    h.run_until(t0 + 150 + 600 + 120)
    assert all(h.delivered[i] == 1 for i in ids)
    calls = [at for at, _ in h.logs.calls]
    assert max(sum(1 for t in calls[i:i + 10] if t < at + 1.0) for i, at in enumerate(calls)) <= CAP + 1


def test_a_backlog_is_read_once_by_the_final_stage_in_bounded_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schedule, "CHUNK_TARGET_EVENTS", 3_000)  # small chunks: a small simulation shows the bound
    clock = FakeClock()
    t0 = clock.now
    h = Harness(clock=clock, start_ms=int((t0 - 3600) * 1000))
    backlog = [h.logs.add(STREAM_A, int((t0 - 3600) * 1000) + i * 100, "x" * 300, visible_at=t0 - 3600 + i * 0.1 + 1)
               for i in range(36_000)]  # 10 events/s for the hour before the start
    peak = 0

    def watch(_now: float) -> None:
        nonlocal peak
        peak = max(peak, h.ledger.remembered_hashes())

    h.run_until(t0 + 15 * 60, on_step=watch)
    assert all(h.delivered[i] == 1 for i in backlog)
    # Older than the window at the first read: read once, by the final stage.
    old = [i for n, i in enumerate(backlog) if n * 0.1 < 3600 - 700]
    assert all(h.logs.returned[i] == 1 for i in old)
    # Never one unbounded range: chunks of about the target, each forgotten once its events are acknowledged;
    # what stays remembered is the last chunks and the 11 minutes still open to re-reads (6,600 events).
    chunks = [(p["startTime"], p["endTime"]) for _, p in h.logs.calls
              if "nextToken" not in p and p["endTime"] < (t0 - 700) * 1000]
    sizes = [sum(1 for e in h.logs.events if start <= e.timestamp_ms <= end) for start, end in chunks]
    assert len(chunks) >= 8 and max(sizes) <= 2 * 3_000 * 1.2, sizes
    assert peak <= 6_600 + 3 * 3_000, peak


def test_data_nobody_has_read_yet_is_read_at_once_even_by_stages_given_up_for_the_budget() -> None:
    # A start 5 minutes back into 500 events/s of 1.5 KB: more than the budget pays re-reads for, so the
    # optional stages are given up; but reading their windows the first time is no re-read.
    clock = FakeClock()
    t0 = clock.now
    h = Harness(clock=clock, start_ms=int((t0 - 300) * 1000))
    ids = [h.logs.add(STREAM_A, int((t0 - 280) * 1000) + i * 2, "x" * 1500, visible_at=t0 - 280 + i * 0.002 + 1)
           for i in range(100_000)]
    h.run_until(t0 + 90)  # 145 pages at 3 calls/s: under a minute; the final read would come at 600 s
    assert any(s not in h.schedule.active for s in h.schedule.stages)
    assert all(h.delivered[i] == 1 for i in ids)


def test_thousands_of_events_in_one_millisecond_across_pages_all_arrive_once() -> None:
    h = Harness(page_events=1_000, max_requests_per_second=1000)
    t0 = h.clock.now
    ts = int((t0 + 1) * 1000)
    ids = [h.logs.add(STREAM_A if i % 2 else STREAM_B, ts, f"e{i}", visible_at=t0 + 1.5) for i in range(25_000)]
    h.run_until(t0 + 12 * 60)
    assert set(h.delivered) == set(ids)
    assert max(h.delivered.values()) == 1


def test_streams_outside_the_prefix_are_ignored_and_new_streams_are_read_without_listing() -> None:
    h = Harness()
    t0 = h.clock.now
    mine = h.logs.add(STREAM_A, int(t0 * 1000) + 100, "mine", visible_at=t0 + 1)
    other = h.logs.add("kube-scheduler-1234", int(t0 * 1000) + 100, "not mine", visible_at=t0 + 1)
    h.run_until(t0 + 30)
    rotated = h.logs.add("kube-apiserver-audit-new0", int((t0 + 30) * 1000), "after rotation", visible_at=t0 + 31)
    h.run_until(t0 + 60)
    assert (h.delivered[mine], h.delivered[other], h.delivered[rotated]) == (1, 0, 1)
    assert all(set(params) <= {"logGroupName", "logStreamNamePrefix", "startTime", "endTime", "nextToken"}
               for _, params in h.logs.calls)


def test_an_event_later_than_the_window_is_caught_only_by_the_probe_and_counted() -> None:
    h = Harness(max_lateness_seconds=60)
    t0 = h.clock.now
    within = h.logs.add(STREAM_A, int((t0 + 5) * 1000), "within", visible_at=t0 + 5 + 55)
    after = h.logs.add(STREAM_A, int((t0 + 6) * 1000), "after", visible_at=t0 + 6 + 62)  # found by the probe (66 s)
    lost = h.logs.add(STREAM_A, int((t0 + 7) * 1000), "lost", visible_at=t0 + 7 + 200)
    h.run_until(t0 + 10 * 60)
    assert (h.delivered[within], h.delivered[after], h.delivered[lost]) == (1, 1, 0)
    assert h.metrics.registry.get_sample_value("forwarder_events_after_window_total") == 1
    assert h.ledger.dropped_forgotten == 0  # its range was never read again after closing


def test_with_the_clock_30_s_ahead_of_cloudwatch_every_age_is_still_measured_on_cloudwatchs_clock() -> None:
    clock = FakeClock()
    h = Harness(clock=clock, start_ms=int((clock.now - 60) * 1000), max_lateness_seconds=120)
    h.logs.cloudwatch_offset_s = -30.0  # CloudWatch's clock (and the API server's) is 30 s behind ours
    state = {"next": h.clock.now - 30}

    def trickle(now: float) -> None:  # an event a second, on CloudWatch's clock, visible a second later
        while state["next"] <= now - 30:
            h.logs.add(STREAM_A, int(state["next"] * 1000), "tick", visible_at=state["next"] + 1)
            state["next"] += 1

    h.run_until(h.clock.now + 120, on_step=trickle)
    # An upper bound (a page arrives after its events were ingested), tight once events are read promptly.
    assert 30 <= h.source.arrival.skew_ms() / 1000 <= 30.5
    cw_now = h.clock.now - 30
    # Visible 118 s after its timestamp on CloudWatch's clock: inside the window, which our clock alone would
    # have closed 30 s early.
    late = h.logs.add(STREAM_A, int(cw_now * 1000), "late", visible_at=cw_now + 118)
    h.run_until(h.clock.now + 300, on_step=trickle)
    assert h.delivered[late] == 1
    assert h.metrics.registry.get_sample_value("forwarder_events_after_window_total") == 0


def test_restart_from_the_confirmed_positions_sends_only_unacknowledged_and_new_events() -> None:
    h = Harness(max_lateness_seconds=120)
    t0 = h.clock.now
    first = [h.logs.add(STREAM_A, int((t0 + i) * 1000), f"a{i}", visible_at=t0 + i + 0.5) for i in range(20)]
    h.run_until(t0 + 25)
    h.acknowledge = False
    unacked = h.logs.add(STREAM_A, int((t0 + 26) * 1000), "unacked", visible_at=t0 + 26.5)
    h.run_until(t0 + 30)
    assert h.delivered[unacked] == 1
    positions, buckets = h.ledger.snapshot()
    config = h.config
    checkpoint = Checkpoint(Positions(config.log_group, config.stream_prefix, positions),
                            Remembered(config.log_group, config.stream_prefix, tuple(buckets)))
    # "Restart": a new source from the checkpoint, same simulated CloudWatch.
    h2 = Harness(clock=h.clock, logs=h.logs, checkpoint=checkpoint, max_lateness_seconds=120)
    late = h.logs.add(STREAM_A, int((t0 + 3) * 1000), "late after restart", visible_at=t0 + 40)
    h2.run_until(t0 + 400)
    assert h2.delivered[unacked] == 1 and h2.delivered[late] == 1
    assert all(h2.delivered[i] == 0 for i in first)


def test_prefetching_the_next_page_loses_and_repeats_nothing() -> None:
    h = Harness(page_events=700, max_requests_per_second=1000)
    h.source.loop.prefetch = True
    t0 = h.clock.now
    ids = [h.logs.add(STREAM_A, int((t0 + 1) * 1000) + i % 3, f"e{i}", visible_at=t0 + 1.5) for i in range(9_000)]
    h.run_until(t0 + 12 * 60)
    h.source.close()
    assert set(h.delivered) == set(ids)
    assert max(h.delivered.values()) == 1
    assert h.ledger.outstanding() == 0


def test_events_seconds_late_at_light_load_go_out_within_a_poll_of_becoming_visible() -> None:
    # The head read re-reads the recent past as far as events have lately been late (free while it is small).
    h = Harness()
    t0 = h.clock.now
    ids = {h.logs.add(STREAM_A, int((t0 + i * 0.5) * 1000), f"m{i}", visible_at=t0 + i * 0.5 + 3.0): t0 + i * 0.5 + 3.0
           for i in range(200)}
    h.run_until(t0 + 200)
    assert all(h.delivered[i] == 1 for i in ids)
    waits = [h.delivered_at[i] - visible for i, visible in ids.items()]
    # The first late event, before any delay was seen, waits for the 7-s stage; then a poll (2 s) at most,
    # plus a token's spacing (1/3 s) when another read took the token first, plus the call.
    assert waits[0] <= 7 + 4 + 2, waits[0]
    assert max(waits[1:]) <= 2 + 1 / CAP + 0.2, sorted(waits)[-10:]


def test_under_load_the_head_stops_short_of_now_by_the_recent_arrival_delay() -> None:
    # 500 events/s, each visible 3 s after its timestamp: too much to re-read every poll, so the head lags.
    h = Harness()
    t0 = h.clock.now
    visible: dict[str, float] = {}
    state = {"next": t0}

    def produce(now: float) -> None:
        while state["next"] <= now - 3.0 and state["next"] < t0 + 60:
            ts = state["next"]
            visible[h.logs.add(STREAM_A, int(ts * 1000), "x" * 200, visible_at=ts + 3.0)] = ts + 3.0
            state["next"] += 0.002

    h.run_until(t0 + 120, on_step=produce)
    assert len(visible) > 25_000
    assert all(h.delivered[i] == 1 for i in visible)
    settled = sorted(h.delivered_at[i] - v for i, v in visible.items() if v > t0 + 20)
    p99 = settled[int(len(settled) * 0.99)]
    # A poll interval (2 s), the quantile's slack and call time; without the lag it would be ~7 s.
    assert p99 <= 3.5, (p99, settled[-5:])
    assert math.isclose(h.source.arrival.lag_ms(), 3_000, abs_tol=50)
