"""The first start (no checkpoint yet) reads back ``--start-at`` (default 1h): the audit log written while the lab
came up. Polling on the simulated CloudWatch (the production source through its factory, a fake clock), and the
Kinesis source end to end on moto: the hour is read once, nothing older, nothing twice, and a restart from the
checkpoint does not read it again."""

from __future__ import annotations

import time
from pathlib import Path

from fwd_fakes import FakeClock, FakeLogs, Feeder, Harness, MemoryStore
from support.falco_receiver import FalcoReceiver
from support.moto_server import (  # noqa: F401 - pytest fixtures
    create_log_stream,
    create_subscribed_stream,
    moto,
    moto_server,
)

from forwarder.config import DEFAULT_LOOKBACK_SECONDS, CheckpointSpec, RunConfig, StartAt, parse
from tests.test_fwd_kinesis import GROUP, STREAM_A, WAIT_S, put_audit, start

STREAM = "kube-apiserver-audit-0a0a"


def test_the_default_first_start_reads_back_an_hour() -> None:
    config = parse(["run", "--cluster-name", "lab", "--falco-url", "http://falco:9765/k8s-audit"], {})
    assert isinstance(config, RunConfig)
    assert DEFAULT_LOOKBACK_SECONDS == 3600 and config.start_at == StartAt("ago", 3600)
    assert RunConfig(log_group="g", falco_url="http://f").start_at == config.start_at  # what the simulations run
    now = parse(["run", "--cluster-name", "lab", "--falco-url", "http://f:1/", "--start-at", "now"], {})
    assert isinstance(now, RunConfig) and now.start_at.resolve(5_000) == 5_000


def test_polling_reads_the_last_hour_once_nothing_older_and_not_again_after_a_restart() -> None:
    clock = FakeClock()
    logs = FakeLogs(clock)
    started = clock.now
    # 90 minutes of history at 2 events/s, each visible 2 s after its timestamp, every 50th 4 minutes late (some
    # of those become visible only after the start, within the lateness window).
    history: dict[str, int] = {}
    for k in range(90 * 60 * 2):
        ts_ms = int((started - 90 * 60) * 1000) + k * 500
        visible = ts_ms / 1000 + (240 if k % 50 == 0 else 2)
        history[logs.add(STREAM, ts_ms, "x" * 300, visible_at=visible)] = ts_ms
    store = MemoryStore(clock)
    first = Harness(clock=clock, logs=logs).with_store(store)  # the production defaults: --start-at 1h
    live = Feeder(logs, 2)
    first.run_until(started + 15 * 60, on_step=live.feed)
    assert first.checkpointer is not None and first.checkpointer.tick(final=True)  # a clean stop
    start_ms = int(started * 1000) - 3_600_000
    hour = [i for i, ts in history.items() if ts >= start_ms]
    older = [i for i, ts in history.items() if ts < start_ms]
    assert len(hour) == 7_200 and len(older) == 3_600
    assert all(first.delivered[i] == 1 for i in hour), "every event of the hour, late ones too, exactly once"
    assert not any(first.delivered[i] for i in older)
    stamps = {e.event_id: e.timestamp_ms for e in logs.events}
    settled = [i for i in live.ids if stamps[i] < int((clock.now - 10) * 1000)]
    assert settled and all(first.delivered[i] == 1 for i in settled)
    # What was already older than the lateness window at the start is read once, by the final stage in growing
    # chunks (the last minutes are re-read by the younger stages, cheaply, as any recent data is).
    backlog = [i for i in hour if history[i] < start_ms + 3_600_000 - 700_000]
    assert len(backlog) > 5_000 and max(logs.returned[i] for i in backlog) <= 2
    assert sum(logs.returned[i] for i in backlog) <= 1.2 * len(backlog)

    second = Harness(clock=clock, logs=logs, checkpoint=store.load()).with_store(store, resumed=True)
    second.run_until(clock.now + 5 * 60, on_step=live.feed)
    assert not any(second.delivered[i] for i in hour), "the restart resumes from the checkpoint, not the hour"
    assert not any(second.delivered[i] for i in settled)


def test_kinesis_reads_back_what_arrived_in_the_last_hour_and_a_restart_does_not_read_it_again(
        moto, tmp_path: Path) -> None:  # noqa: F811
    arn = create_subscribed_stream(moto, GROUP)
    logs = moto.client("logs")
    create_log_stream(logs, GROUP, STREAM_A)
    before = put_audit(logs, STREAM_A, 60, records=6)  # in the stream before the first start
    spec = CheckpointSpec("file", path=str(tmp_path / "checkpoint.json"))
    with FalcoReceiver() as receiver:
        # The default lookback: the stream's records since an hour ago (AT_TIMESTAMP; older than the stream's
        # oldest record, AWS starts at that record).
        run = start(moto.endpoint_url, receiver, arn, checkpoint=spec, start_at=StartAt())
        assert receiver.wait_for_ids(set(before), WAIT_S)
        assert run.finish() == 0
        after = put_audit(logs, STREAM_A, 20, records=2)
        run = start(moto.endpoint_url, receiver, arn, checkpoint=spec, start_at=StartAt())
        assert receiver.wait_for_ids(set(after), WAIT_S)
        assert run.finish() == 0
        assert receiver.duplicates() == {} and receiver.accepted_count == 80
    # botocore sends AT_TIMESTAMP in whole seconds (its default timestamp precision), so a start "now" may begin up
    # to a second early: let the records above be more than a second old first.
    time.sleep(1.1)
    with FalcoReceiver() as fresh:
        # Starting at the present instead (--start-at now, or initialLookbackSeconds 0): none of it.
        run = start(moto.endpoint_url, fresh, arn, start_at=StartAt("now", 0.0))
        later = put_audit(logs, STREAM_A, 10, records=1)
        assert fresh.wait_for_ids(set(later), WAIT_S)
        assert run.finish() == 0
        # (Not `after`: moto 5 starts AT_TIMESTAMP at the last record before the time, AWS at the first after it.)
        assert not set(before) & fresh.unique_ids
