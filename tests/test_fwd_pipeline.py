"""forwarder/pipeline.py end to end in one process: moto in server mode (real boto3 over HTTP) ->
pipeline.run -> the contract-enforcing Falco receiver. Waits are bounded polls, never timed
assertions."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from support.audit_events import generated_lines, make_event, shared_corpus_lines
from support.falco_receiver import FalcoReceiver
from support.moto_server import create_log_group, create_log_stream, moto, moto_server, now_ms, put_events  # noqa: F401

from forwarder import pipeline
from forwarder.checkpoint.store import FileCheckpointStore
from forwarder.config import CheckpointSpec, RunConfig, StartAt
from forwarder.metrics import Health, Metrics
from forwarder.sources.cloudwatch import build_logs_client

GROUP = "/aws/eks/lab/cluster"
STREAM_A = "kube-apiserver-audit-0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a"
STREAM_B = "kube-apiserver-audit-0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b"
WAIT_S = 60.0


@pytest.fixture
def receiver() -> Iterator[FalcoReceiver]:
    with FalcoReceiver() as rx:
        yield rx


@dataclass
class Running:
    config: RunConfig
    metrics: Metrics
    health: Health
    stop: threading.Event
    thread: threading.Thread
    result: dict[str, Any]

    def finish(self) -> int:
        """SIGTERM equivalent; returns the exit code (and checks it came within 10 s)."""
        started = time.monotonic()
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive(), "pipeline did not stop"
        assert time.monotonic() - started <= 10.0
        return int(self.result["rc"])

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float:
        return self.metrics.registry.get_sample_value(name, labels or {}) or 0.0


def start(moto_server_: Any, rx: FalcoReceiver, **overrides: Any) -> Running:
    config = RunConfig(
        log_group=GROUP,
        falco_url=rx.url,
        region="us-west-2",
        start_at=StartAt("ago", 300.0),
        poll_interval_seconds=0.2,
        max_lateness_seconds=6.0,
        max_requests_per_second=50.0,
        metrics_port=0,
        request_timeout_seconds=5.0,
        shutdown_grace_seconds=3.0,
    )
    config = replace(config, **overrides)
    metrics, health, stop = Metrics(), Health(), threading.Event()
    result: dict[str, Any] = {}
    import os

    os.environ["AWS_ENDPOINT_URL"] = moto_server_.endpoint_url
    try:
        client = build_logs_client("us-west-2", 5.0)
    finally:
        del os.environ["AWS_ENDPOINT_URL"]

    def target() -> None:
        result["rc"] = pipeline.run(config, metrics=metrics, health=health, stop=stop, logs_client=client)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return Running(config, metrics, health, stop, thread, result)


def _events(ts: int, n: int, size: int = 600) -> tuple[list[str], list[tuple[int, str]]]:
    ids, lines = [], []
    for _ in range(n):
        audit_id, line = make_event(ts, size=size)
        ids.append(audit_id)
        lines.append((ts, line))
    return ids, lines


@pytest.mark.parametrize("corpus", ["generated", "shared"])
def test_basic_flow_delivers_valid_corpus_events_and_skips_invalid_ones(moto, receiver, corpus) -> None:  # noqa: F811
    logs = moto.client("logs")
    create_log_group(logs, GROUP, [STREAM_A])
    lines = generated_lines() if corpus == "generated" else shared_corpus_lines()
    ts = now_ms() - 10_000
    put_events(logs, GROUP, STREAM_A, [(ts, line.text) for line in lines])
    valid_ids = {line.audit_id for line in lines if line.valid and line.audit_id}
    assert valid_ids and any(not line.valid for line in lines)
    run = start(moto, receiver)
    assert receiver.wait_for_ids(valid_ids, WAIT_S)
    assert run.health.ready()
    assert run.finish() == 0
    assert receiver.violations == []
    # The corpus holds some events twice (one auditID at two stages): each line arrives exactly as often.
    expected = Counter(line.audit_id for line in lines if line.valid)
    assert Counter(receiver.accepted_ids) == expected
    skipped = sum(
        run.sample("forwarder_events_skipped_total", {"reason": r})
        for r in ("not_json", "not_object", "not_event_kind", "missing_audit_id", "bad_stage_timestamp",
                  "truncated", "too_large")
    )
    read = run.sample("forwarder_events_read_total")
    assert read == len(lines)
    assert run.sample("forwarder_events_delivered_total") + skipped == read
    assert run.sample("forwarder_aws_api_calls_total", {"operation": "FilterLogEvents", "outcome": "ok"}) > 0
    assert run.sample("forwarder_last_delivery_timestamp_seconds") > 0
    # What the source and delivery export: every event read has its arrival delay, every delivered one its
    # end-to-end latency; the stages in use; nothing left waiting. The events reached CloudWatch 10 s after
    # their timestamps, later than the 6-s window: read anyway (the final read came later still), and counted.
    assert run.sample("forwarder_arrival_delay_seconds_count") == read
    assert run.sample("forwarder_events_after_window_total") == read
    assert run.sample("forwarder_end_to_end_latency_seconds_count") == run.sample("forwarder_events_delivered_total")
    assert run.sample("forwarder_read_stage_active", {"stage": "final"}) == 1
    assert run.sample("forwarder_read_stage_active", {"stage": "head"}) == 1
    assert run.metrics.registry.get_sample_value("forwarder_remembered_hashes") is not None
    assert run.metrics.registry.get_sample_value("forwarder_open_buckets") is not None
    assert run.sample("forwarder_oldest_unacknowledged_seconds") == 0
    assert run.sample("forwarder_request_rate_limit") == run.config.max_requests_per_second
    assert abs(run.sample("forwarder_clock_skew_seconds")) < 5


def _dups(rx: FalcoReceiver) -> dict[str, int]:
    value = rx.duplicates
    return value() if callable(value) else value


def test_two_streams_a_new_stream_mid_run_and_late_out_of_order_events(moto, receiver) -> None:  # noqa: F811
    logs = moto.client("logs")
    create_log_group(logs, GROUP, [STREAM_A, STREAM_B, "kube-scheduler-0c0c"])
    t = now_ms() - 2_000
    ids_a, lines_a = _events(t, 50)
    ids_b, lines_b = _events(t + 1, 50)
    put_events(logs, GROUP, STREAM_A, lines_a)
    put_events(logs, GROUP, STREAM_B, lines_b)
    _, other = _events(t, 5)
    put_events(logs, GROUP, "kube-scheduler-0c0c", other)  # not an audit stream: never forwarded
    run = start(moto, receiver, max_lateness_seconds=4.0)
    assert receiver.wait_for_ids(set(ids_a + ids_b), WAIT_S)
    # A stream that appears mid-run (rotation), and newer events first...
    rotated = "kube-apiserver-audit-0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d"
    create_log_stream(logs, GROUP, rotated)
    newer_ids, newer = _events(now_ms(), 20)
    put_events(logs, GROUP, rotated, newer)
    assert receiver.wait_for_ids(set(newer_ids), WAIT_S)
    # ...then an event timestamped 3 s ago (inside the 4-s lateness window) arrives after them.
    late_ids, late = _events(now_ms() - 3_000, 3)
    put_events(logs, GROUP, STREAM_A, late)
    assert receiver.wait_for_ids(set(late_ids), WAIT_S)
    # Let the final reads of every range so far run (lateness 4 s + its period): nothing arrives twice.
    time.sleep(6.0)
    assert run.finish() == 0
    assert _dups(receiver) == {}
    assert receiver.violations == []
    assert receiver.accepted_count == 123


def test_restart_from_checkpoint_sends_nothing_twice(moto, receiver, tmp_path: Path) -> None:  # noqa: F811
    logs = moto.client("logs")
    create_log_group(logs, GROUP, [STREAM_A])
    checkpoint = CheckpointSpec("file", path=str(tmp_path / "checkpoint.json"))
    first_ids, first = _events(now_ms() - 1_000, 40)
    put_events(logs, GROUP, STREAM_A, first)
    run = start(moto, receiver, checkpoint=checkpoint)
    assert receiver.wait_for_ids(set(first_ids), WAIT_S)
    assert run.finish() == 0
    saved = FileCheckpointStore(tmp_path / "checkpoint.json").load()
    assert saved is not None and saved.positions.positions["head"] > 0
    # While it is down: new events, and a late one inside the window of an already-read range.
    second_ids, second = _events(now_ms(), 30)
    late_ids, late = _events(now_ms() - 2_000, 2)
    put_events(logs, GROUP, STREAM_A, second + late)
    run = start(moto, receiver, checkpoint=checkpoint, start_at=StartAt("now"))
    assert receiver.wait_for_ids(set(second_ids + late_ids), WAIT_S)
    time.sleep(1.0)  # a few more polls and re-reads of already-delivered ranges
    assert run.finish() == 0
    assert _dups(receiver) == {}
    assert receiver.accepted_count == 72


def test_receiver_down_then_back_reading_pauses_and_memory_stays_bounded(moto, receiver) -> None:  # noqa: F811
    logs = moto.client("logs")
    create_log_group(logs, GROUP, [STREAM_A])
    run = start(moto, receiver, max_batch_bytes=16 * 1024, max_inflight_bytes=64 * 1024)
    warm_ids, warm = _events(now_ms(), 5)
    put_events(logs, GROUP, STREAM_A, warm)
    assert receiver.wait_for_ids(set(warm_ids), WAIT_S)
    receiver.down()
    ids, lines = _events(now_ms(), 600, size=1500)
    put_events(logs, GROUP, STREAM_A, lines)
    peak = 0.0
    calls_before = None
    for _ in range(40):  # ~4 s of Falco being away
        peak = max(peak, run.sample("forwarder_inflight_bytes"))
        if calls_before is None and peak > 0:
            calls_before = run.sample("forwarder_aws_api_calls_total", {"operation": "FilterLogEvents",
                                                                       "outcome": "ok"})
        time.sleep(0.1)
    calls_after = run.sample("forwarder_aws_api_calls_total", {"operation": "FilterLogEvents", "outcome": "ok"})
    assert 0 < peak <= 64 * 1024
    # Reading paused while the queue was full: no polling every 0.2 s meanwhile.
    assert calls_before is not None and calls_after - calls_before <= 2
    assert run.health.alive()
    receiver.up()
    assert receiver.wait_for_ids(set(ids), WAIT_S)
    assert run.finish() == 0
    assert _dups(receiver) == {}
    assert receiver.violations == []


def test_stop_while_falco_is_away_exits_zero_and_keeps_unacknowledged_events(moto, receiver,  # noqa: F811
                                                                              tmp_path: Path) -> None:
    logs = moto.client("logs")
    create_log_group(logs, GROUP, [STREAM_A])
    checkpoint = CheckpointSpec("file", path=str(tmp_path / "checkpoint.json"))
    receiver.down()
    ids, lines = _events(now_ms() - 500, 25)
    put_events(logs, GROUP, STREAM_A, lines)
    run = start(moto, receiver, checkpoint=checkpoint, shutdown_grace_seconds=1.0)
    deadline = time.monotonic() + WAIT_S
    while run.sample("forwarder_events_read_total") < 25 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert run.finish() == 0
    saved = FileCheckpointStore(tmp_path / "checkpoint.json").load()
    assert saved is not None and saved.hash_count() == 0  # nothing was acknowledged
    receiver.up()
    run = start(moto, receiver, checkpoint=checkpoint)
    assert receiver.wait_for_ids(set(ids), WAIT_S)
    assert run.finish() == 0
    assert _dups(receiver) == {}


def test_progress_line_reports_what_flowed_since_the_last_one(moto, receiver, monkeypatch, caplog) -> None:  # noqa: F811
    monkeypatch.setattr(pipeline, "PROGRESS_INTERVAL_SECONDS", 0.5)
    logs = moto.client("logs")
    create_log_group(logs, GROUP, [STREAM_A])
    ids, lines = _events(now_ms() - 5_000, 30)
    put_events(logs, GROUP, STREAM_A, [*lines, (now_ms() - 5_000, "not json")])
    with caplog.at_level(logging.INFO, logger="forwarder.pipeline"):
        run = start(moto, receiver)
        assert receiver.wait_for_ids(set(ids), WAIT_S)
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline and sum(
            getattr(r, "events_delivered", 0) for r in caplog.records if r.getMessage() == "progress"
        ) < 30:
            time.sleep(0.1)
        assert run.finish() == 0
    progress = [r for r in caplog.records if r.getMessage() == "progress"]
    assert progress
    assert sum(r.events_delivered for r in progress) == 30
    assert sum(r.events_read for r in progress) == 31
    assert sum(getattr(r, "events_skipped", 0) for r in progress) == 1
    assert any(r.delivery_lag_seconds is not None for r in progress)


def test_an_exception_while_handling_one_event_skips_it_and_the_others_flow(moto, receiver, monkeypatch) -> None:  # noqa: F811
    # Whatever one event makes the code raise (a recursion limit, an encoding error, a number out of range),
    # that event is skipped with its own reason and counted; the forwarder and every other event go on.
    # Otherwise the pod would crash-loop on the same event at every restart.
    real_validate = pipeline.validate
    failures = {"boom-recursion": RecursionError("maximum recursion depth exceeded"),
                "boom-unicode": UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"),
                "boom-overflow": OverflowError("int too large to convert")}

    def fragile(message: str, max_event_bytes: int) -> Any:
        for marker, error in failures.items():
            if marker in message:
                raise error
        return real_validate(message, max_event_bytes)

    monkeypatch.setattr(pipeline, "validate", fragile)
    logs = moto.client("logs")
    create_log_group(logs, GROUP, [STREAM_A])
    ts = now_ms() - 3_000
    good_ids, good = _events(ts, 20)
    bad = [(ts, make_event(ts, size=300)[1].replace('"kind"', f'"{marker}":1,"kind"', 1)) for marker in failures]
    put_events(logs, GROUP, STREAM_A, good[:10] + bad + good[10:])
    run = start(moto, receiver)
    assert receiver.wait_for_ids(set(good_ids), WAIT_S)
    deadline = time.monotonic() + WAIT_S
    handled = {"reason": "handling_error"}
    while run.sample("forwarder_events_skipped_total", handled) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert run.thread.is_alive()
    assert run.finish() == 0
    assert run.sample("forwarder_events_skipped_total", {"reason": "handling_error"}) == 3
    assert run.sample("forwarder_events_delivered_total") == 20
    assert Counter(receiver.accepted_ids) == Counter(good_ids)


class _Monotonic:
    """Liveness's clock, moved by hand (the threads run in real time)."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class _HungLogs:
    """A CloudWatch client whose call never returns (until released): a hung reader."""

    def __init__(self) -> None:
        self.entered, self.release = threading.Event(), threading.Event()

    def filter_log_events(self, **params: Any) -> dict[str, Any]:
        self.entered.set()
        self.release.wait(60)
        return {"events": []}


class _HungFalco:
    """A Falco client whose delivery never returns (until released): a hung delivery thread."""

    def __init__(self) -> None:
        self.entered, self.release = threading.Event(), threading.Event()
        self.senders = [self]

    def deliver(self, batch: Any, stop: threading.Event, allowed: Any = None) -> Any:
        from forwarder.delivery.sender import DeliveryOutcome

        self.entered.set()
        self.release.wait(60)
        return DeliveryOutcome(completed=False)

    def close(self) -> None:
        pass


@pytest.mark.parametrize("hung", ["reader", "delivery"])
def test_a_hung_reader_or_delivery_thread_fails_liveness_within_two_minutes(hung: str) -> None:
    from fwd_fakes import FakeClock, FakeLogs

    mono = _Monotonic()
    health = Health(clock=mono)
    assert health.window_seconds <= 120
    stop = threading.Event()
    config = RunConfig(log_group=GROUP, falco_url="http://127.0.0.1:9/k8s-audit", region="us-west-2",
                       metrics_port=0, start_at=StartAt("ago", 10.0), poll_interval_seconds=0.2)
    if hung == "reader":
        logs: Any = _HungLogs()
        falco: Any = _HungFalco()
        falco.entered.set()  # never called
        stuck = logs
    else:
        fake_clock = FakeClock(time.time())
        logs = FakeLogs(fake_clock)
        logs.add(STREAM_A, now_ms() - 5_000, make_event(now_ms() - 5_000)[1], visible_at=0)
        falco = stuck = _HungFalco()
    thread = threading.Thread(target=pipeline.run, kwargs={
        "config": config, "metrics": Metrics(), "health": health, "stop": stop, "logs_client": logs, "falco": falco,
    }, daemon=True)
    thread.start()
    try:
        assert stuck.entered.wait(30)
        mono.now += health.window_seconds + 1  # a minute passes: the other threads beat again at once
        deadline = time.monotonic() + 10
        while health.stalled() != [hung] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert health.stalled() == [hung]
        assert not health.alive()
    finally:
        stop.set()
        stuck.release.set()
        thread.join(15)
