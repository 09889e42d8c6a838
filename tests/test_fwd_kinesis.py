"""The Kinesis source (``--source kinesis:ARN``) end to end: moto in server mode delivers the log group's
put_log_events into a Kinesis stream through a real subscription filter; the forwarder reads it with the
real boto3 client over HTTP (through the AWS fault proxy where calls are counted or refused) and delivers
to the contract-enforcing Falco receiver. Waits are bounded polls, never timed assertions."""

from __future__ import annotations

import gzip
import json
import logging
import os
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fwd_fakes import FakeClock
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from support.audit_events import generated_lines, make_event
from support.aws_fault_proxy import AwsFaultProxy
from support.falco_receiver import FalcoReceiver
from support.forwarder_process import ForwarderProcess, forwarder_env
from support.moto_server import (  # noqa: F401
    aws_like_resharding,
    create_log_group,
    create_log_stream,
    create_subscribed_stream,
    moto,
    moto_server,
    now_ms,
    put_events,
)

from forwarder import pipeline
from forwarder.checkpoint.codec import Checkpoint
from forwarder.checkpoint.dedup import event_hash, unpack
from forwarder.checkpoint.ledger import EventKey
from forwarder.checkpoint.store import FileCheckpointStore
from forwarder.config import CheckpointSpec, RunConfig, SourceSpec, StartAt
from forwarder.metrics import Health, Metrics
from forwarder.model import LogEvent
from forwarder.retry import Backoff
from forwarder.sources import kinesis_source
from forwarder.sources.kinesis import build_kinesis_client
from forwarder.sources.source import build_kinesis_source
from forwarder.sources.subscription import decode
from tests.test_fwd_pipeline import Running

GROUP = "/aws/eks/lab/cluster"
OTHER_GROUP = "/aws/eks/other/cluster"
STREAM_A = "kube-apiserver-audit-0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a"
STREAM_B = "kube-apiserver-audit-0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b"
OTHER_STREAM = "authenticator-0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c"
KINESIS_CALLS = {"ListShards", "GetShardIterator", "GetRecords"}
WAIT_S = 30.0


@pytest.fixture
def receiver() -> Iterator[FalcoReceiver]:
    with FalcoReceiver() as rx:
        yield rx


@pytest.fixture(autouse=True)
def quick_stream_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing or unreadable stream is retried after 5-60 s in production; here within a second."""
    monkeypatch.setattr(kinesis_source, "STREAM_BACKOFF", Backoff(initial_seconds=0.2, max_seconds=0.5))


def kinesis_client(endpoint_url: str) -> Any:
    """The forwarder's own client (botocore retries off), pointed at ``endpoint_url``."""
    os.environ["AWS_ENDPOINT_URL"] = endpoint_url
    try:
        return build_kinesis_client("us-west-2", 5.0)
    finally:
        del os.environ["AWS_ENDPOINT_URL"]


def kinesis_config(arn: str, falco_url: str = "http://127.0.0.1:9/k8s-audit", **overrides: Any) -> RunConfig:
    config = RunConfig(log_group=GROUP, falco_url=falco_url, region="us-west-2", start_at=StartAt("ago", 300.0),
                       source=SourceSpec(kind="kinesis", stream_arn=arn), max_lateness_seconds=60.0,
                       metrics_port=0, request_timeout_seconds=5.0, shutdown_grace_seconds=1.0)
    return replace(config, **overrides)


def start(endpoint_url: str, rx: FalcoReceiver, arn: str, **overrides: Any) -> Running:
    config = kinesis_config(arn, rx.url, **overrides)
    metrics, health, stop = Metrics(), Health(), threading.Event()
    result: dict[str, Any] = {}
    client = kinesis_client(endpoint_url)

    def target() -> None:
        result["rc"] = pipeline.run(config, metrics=metrics, health=health, stop=stop, kinesis_client=client)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return Running(config, metrics, health, stop, thread, result)


def exported(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The samples exactly as /metrics serves them (names and labels included)."""
    text = generate_latest(metrics.registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def put_audit(logs: Any, stream: str, count: int, records: int, group: str = GROUP) -> list[str]:
    """``count`` audit events in ``records`` put_log_events calls (each becomes one Kinesis record)."""
    ids: list[str] = []
    for i in range(records):
        batch = [make_event(now_ms() - 2_000, size=400) for _ in range(count // records + (i < count % records))]
        put_events(logs, group, stream, [(now_ms() - 2_000, line) for _, line in batch])
        ids += [audit_id for audit_id, _ in batch]
    return ids


def envelope(events: list[tuple[str, str]], message_type: str = "DATA_MESSAGE") -> bytes:
    """A subscription record as CloudWatch writes it (gzip of the JSON envelope), for records put by hand."""
    doc = {"messageType": message_type, "owner": "123456789012", "logGroup": GROUP, "logStream": STREAM_B,
           "subscriptionFilters": ["audit-to-kinesis"],
           "logEvents": [{"id": event_id, "timestamp": now_ms() - 2_000, "message": message}
                         for event_id, message in events]}
    return gzip.compress(json.dumps(doc).encode())


def shard_records(kinesis: Any, arn: str, shard_id: str) -> list[dict[str, Any]]:
    """Every record in one shard (read directly, from its start)."""
    iterator = kinesis.get_shard_iterator(StreamARN=arn, ShardId=shard_id,
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    return list(kinesis.get_records(StreamARN=arn, ShardIterator=iterator)["Records"])


# --- the flow ------------------------------------------------------------------------------------------


def test_subscription_records_are_validated_batched_and_delivered_as_polled_events_without_filter_log_events(
    moto, receiver  # noqa: F811
) -> None:
    arn = create_subscribed_stream(moto, GROUP, shards=2)
    logs, kinesis = moto.client("logs"), moto.client("kinesis")
    create_log_group(logs, GROUP, [STREAM_A, OTHER_STREAM])
    create_log_group(logs, OTHER_GROUP, [STREAM_A])
    logs.put_subscription_filter(logGroupName=OTHER_GROUP, filterName="other", filterPattern="", destinationArn=arn,
                                 roleArn="arn:aws:iam::123456789012:role/cwl-to-kinesis")
    # The corpus of valid and invalid lines, in 12 records spread by moto's random partition keys.
    lines = generated_lines()
    ts = now_ms() - 5_000
    for i in range(0, len(lines), 10):
        put_events(logs, GROUP, STREAM_A, [(ts, line.text) for line in lines[i:i + 10]])
    foreign = [make_event(ts)[1] for _ in range(3)]
    put_events(logs, GROUP, OTHER_STREAM, [(ts, line) for line in foreign])
    put_events(logs, OTHER_GROUP, STREAM_A, [(ts, line) for line in foreign])
    # Into the first shard, in this order: CloudWatch's control message, bad gzip, bad JSON, then a good record,
    # twice (CloudWatch delivers at least once).
    after_id, after_line = make_event(ts)
    after = envelope([("37000000000000000000000000000000000000000000000000000001", after_line)])
    for data in (envelope([("", "CWL CONTROL MESSAGE: Checking health of destination")], "CONTROL_MESSAGE"),
                 b"\x1f\x8b\x08\x00 not gzip after all", gzip.compress(b'{"messageType": "DATA_MESSAGE", '),
                 after, after):
        kinesis.put_record(StreamARN=arn, Data=data, PartitionKey="p", ExplicitHashKey="0")
    shards = kinesis.list_shards(StreamARN=arn)["Shards"]
    assert len(shards) == 2

    with AwsFaultProxy(moto.endpoint_url) as proxy:
        run = start(proxy.endpoint_url, receiver, arn)
        expected = Counter(line.audit_id for line in lines if line.valid)
        expected[after_id] += 1
        assert receiver.wait_for_ids(set(expected), WAIT_S)
        assert run.health.ready()
        assert run.finish() == 0
        calls = proxy.counts()

    assert receiver.violations == []
    assert Counter(receiver.accepted_ids) == expected
    assert len(receiver.requests) < len(expected)  # batched
    assert calls["FilterLogEvents"] == 0 and set(calls) <= KINESIS_CALLS
    assert {call for call, n in calls.items() if n} == KINESIS_CALLS
    # Every shard was read: each holds some of the delivered records.
    assert all(shard_records(kinesis, arn, s["ShardId"]) for s in shards)
    samples = exported(run.metrics)

    def records(kind: str) -> float:
        return samples[("forwarder_kinesis_records_total", (("kind", kind),))]

    assert (records("control"), records("malformed"), records("other_log_group"), records("other_stream")) == (
        1, 2, 1, 1)
    assert records("data") == -(-len(lines) // 10) + 2
    skipped = {labels[0][1]: v for (name, labels), v in samples.items()
               if name == "forwarder_events_skipped_total" and v}
    assert skipped.pop("malformed_record") == 2
    assert sum(skipped.values()) == sum(1 for line in lines if not line.valid)
    assert samples[("forwarder_events_read_total", ())] == len(lines) + 1


def test_a_shard_position_is_confirmed_only_once_every_event_before_it_was_acknowledged(moto) -> None:  # noqa: F811
    arn = create_subscribed_stream(moto, GROUP, shards=1)
    logs = moto.client("logs")
    create_log_stream(logs, GROUP, STREAM_A)
    put_audit(logs, STREAM_A, 15, records=5)
    emitted: list[list[tuple[EventKey, LogEvent]]] = []
    source = build_kinesis_source(kinesis_config(arn), kinesis_client=kinesis_client(moto.endpoint_url),
                                  clock=FakeClock(), metrics=Metrics(),
                                  emit=lambda fresh: emitted.append(fresh) is None)
    stop = threading.Event()
    for _ in range(20):
        if sum(map(len, emitted)) == 15:
            break
        source.step(stop)
    # One page's records are handed on together (not one POST per record); 3 events per record, in order.
    assert len(emitted) == 1
    flat = [pair for fresh in emitted for pair in fresh]
    emitted = [flat[i:i + 3] for i in range(0, 15, 3)]
    assert [len(batch) for batch in emitted] == [3] * 5
    (shard,) = [name for name in source.ledger.names() if name != kinesis_source.SINCE]
    seqs = [int(r["SequenceNumber"]) for r in shard_records(moto.client("kinesis"), arn, shard)]
    ledger = source.ledger

    def confirmed() -> int:
        return ledger.positions()[shard]  # what the checkpoint saves

    assert ledger.read_to(shard) == seqs[-1] and confirmed() == 0
    source.acknowledge([key for key, _ in emitted[0] + emitted[1]])
    assert confirmed() == seqs[1]
    source.acknowledge([key for key, _ in emitted[3]])  # out of order (another Falco replica answered first)
    assert confirmed() == seqs[1]
    source.acknowledge([key for key, _ in emitted[2][:2]])
    assert confirmed() == seqs[1]
    source.acknowledge([emitted[2][2][0]])
    assert confirmed() == seqs[3]
    source.acknowledge([key for key, _ in emitted[4]])
    assert confirmed() == seqs[4]


def test_falco_away_holds_the_checkpoint_and_restarts_resume_each_shard_with_nothing_lost_or_repeated(
    moto, receiver, tmp_path: Path  # noqa: F811
) -> None:
    arn = create_subscribed_stream(moto, GROUP, shards=2)
    logs = moto.client("logs")
    create_log_stream(logs, GROUP, STREAM_A)
    path = tmp_path / "checkpoint.json"
    spec = CheckpointSpec("file", path=str(path))
    first = put_audit(logs, STREAM_A, 30, records=8)
    receiver.down()
    run = start(moto.endpoint_url, receiver, arn, checkpoint=spec, checkpoint_interval_seconds=0.0)
    assert receiver.wait_for(lambda _: run.sample("forwarder_events_read_total") >= 30, WAIT_S)
    assert run.finish() == 0
    saved = FileCheckpointStore(path).load()
    assert saved is not None and saved.positions.source == f"kinesis:{arn}"
    shards = {name: at for name, at in saved.positions.positions.items() if name != kinesis_source.SINCE}
    assert len(shards) == 2 and set(shards.values()) == {0}  # read, but nothing acknowledged: nothing confirmed
    assert receiver.accepted_count == 0

    receiver.up()
    run = start(moto.endpoint_url, receiver, arn, checkpoint=spec, checkpoint_interval_seconds=0.0)
    assert receiver.wait_for_ids(set(first), WAIT_S)
    assert run.finish() == 0
    saved = FileCheckpointStore(path).load()
    assert saved is not None and all(saved.positions.positions[name] > 0 for name in shards)

    second = put_audit(logs, STREAM_A, 20, records=5)
    run = start(moto.endpoint_url, receiver, arn, checkpoint=spec, start_at=StartAt("now"))
    assert receiver.wait_for_ids(set(second), WAIT_S)
    assert run.finish() == 0
    assert receiver.duplicates() == {} and receiver.accepted_count == 50
    assert receiver.violations == []


def test_resharding_mid_read_starts_children_only_after_their_parents_finished_and_loses_or_repeats_nothing(
    moto, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    # One record per GetRecords call, so both reshards land in the middle of a shard's read.
    monkeypatch.setattr(kinesis_source, "PREFETCH_BYTES", 1)
    with aws_like_resharding():
        arn = create_subscribed_stream(moto, GROUP, shards=2)
        logs, kinesis = moto.client("logs"), moto.client("kinesis")
        create_log_stream(logs, GROUP, STREAM_A)
        ids = put_audit(logs, STREAM_A, 24, records=12)
        pending: list[EventKey] = []
        emitted: list[str] = []

        def emit(fresh: list[tuple[EventKey, LogEvent]]) -> bool:
            pending.extend(key for key, _ in fresh)
            emitted.extend(json.loads(event.message)["auditID"] for _, event in fresh)
            return True

        source = build_kinesis_source(kinesis_config(arn), kinesis_client=kinesis_client(moto.endpoint_url),
                                      clock=FakeClock(), metrics=Metrics(), emit=emit)
        source.export_metrics()
        parents_finished: dict[str, bool] = {}
        first_iterator = source.reader.shard_iterator

        def shard_iterator(shard_id: str, **where: Any) -> str:
            state = source.shards[shard_id]
            parents_finished.setdefault(shard_id, all(
                source._finished(source.shards[p]) for p in state.shard.parents if p in source.shards))
            return first_iterator(shard_id, **where)

        source.reader.shard_iterator = shard_iterator  # type: ignore[method-assign]
        stop = threading.Event()

        def steps(count: int) -> None:
            """Read on; Falco acknowledges only every third step, so parents stay unfinished for a while."""
            for i in range(count):
                source.step(stop)
                if i % 3 == 2:
                    source.acknowledge(pending)
                    pending.clear()

        steps(8)
        assert 0 < len(emitted) < 24
        shards = {s["ShardId"]: s for s in kinesis.list_shards(StreamARN=arn)["Shards"]}
        low, high = sorted(shards)
        hash_range = shards[low]["HashKeyRange"]
        middle = (int(hash_range["StartingHashKey"]) + int(hash_range["EndingHashKey"])) // 2
        kinesis.split_shard(StreamARN=arn, ShardToSplit=low, NewStartingHashKey=str(middle))
        ids += put_audit(logs, STREAM_A, 12, records=6)
        source.refresh_at = float("-inf")  # the periodic listing falls due now: the children are known at once
        steps(20)
        children = sorted(s["ShardId"] for s in kinesis.list_shards(StreamARN=arn)["Shards"]
                          if s.get("ParentShardId") == low)
        kinesis.merge_shards(StreamARN=arn, ShardToMerge=children[1], AdjacentShardToMerge=high)
        ids += put_audit(logs, STREAM_A, 12, records=6)
        source.refresh_at = float("-inf")
        for _ in range(50):
            if len(emitted) >= len(ids):
                break
            steps(10)
        source.acknowledge(pending)
        listed = kinesis.list_shards(StreamARN=arn)["Shards"]
        holding = {s["ShardId"] for s in listed if shard_records(kinesis, arn, s["ShardId"])}

    assert len(listed) == 5 and any(s.get("AdjacentParentShardId") for s in listed)
    assert sorted(emitted) == sorted(ids)
    # Every shard that holds records was read (one closed empty, if moto's random keys left it so, need not be).
    assert len(holding) >= 3 and holding <= set(parents_finished)
    assert all(parents_finished.values()), parents_finished
    samples = exported(source.metrics)
    assert samples[("forwarder_kinesis_shards", (("state", "finished"),))] == 3
    assert samples[("forwarder_kinesis_shards", (("state", "reading"),))] == 2


# --- failures --------------------------------------------------------------------------------------------


def api_calls(run: Running, operation: str, outcome: str) -> float:
    return exported(run.metrics).get(
        ("forwarder_aws_api_calls_total", (("operation", operation), ("outcome", outcome))), 0.0)


@pytest.mark.parametrize(("code", "operation", "outcome", "logged"), [
    ("ProvisionedThroughputExceededException", "GetRecords", "throttled", "Kinesis throttled the shard's reads"),
    ("ExpiredIteratorException", "GetRecords", "expired_iterator", "shard iterator expired"),
    ("KMSAccessDeniedException", "GetRecords", "denied", "GetRecords on it (and kms:Decrypt on its key)"),
    ("AccessDeniedException", "ListShards", "denied", "the role needs kinesis:ListShards"),
])
def test_a_refused_kinesis_call_is_survived_with_a_log_line_and_a_metric_and_nothing_lost(
    moto, receiver, caplog: pytest.LogCaptureFixture, code: str, operation: str, outcome: str, logged: str  # noqa: F811
) -> None:
    arn = create_subscribed_stream(moto, GROUP, shards=2)
    logs = moto.client("logs")
    create_log_stream(logs, GROUP, STREAM_A)
    caplog.set_level(logging.INFO, logger="forwarder")
    with AwsFaultProxy(moto.endpoint_url) as proxy:
        if operation == "ListShards":
            proxy.error(code, count=3, operations={operation})  # from the start: nothing can be read
        run = start(proxy.endpoint_url, receiver, arn)
        before = put_audit(logs, STREAM_A, 10, records=4)
        assert receiver.wait_for_ids(set(before), WAIT_S)
        proxy.error(code, count=3, operations={operation})
        after = put_audit(logs, STREAM_A, 10, records=4)
        assert receiver.wait_for_ids(set(after), WAIT_S)
        assert run.health.ready()
        assert run.finish() == 0
        assert proxy.count(operation, injected=True) >= 3
    assert api_calls(run, operation, outcome) >= 3
    assert receiver.duplicates() == {} and receiver.accepted_count == 20
    assert any(logged in r.getMessage() for r in caplog.records), [r.getMessage() for r in caplog.records]


def test_a_stream_that_does_not_exist_yet_keeps_the_forwarder_unready_until_it_appears(
    moto, receiver, caplog: pytest.LogCaptureFixture  # noqa: F811
) -> None:
    arn = "arn:aws:kinesis:us-west-2:123456789012:stream/audit"
    caplog.set_level(logging.INFO, logger="forwarder")
    run = start(moto.endpoint_url, receiver, arn)
    assert receiver.wait_for(lambda _: api_calls(run, "ListShards", "not_found") >= 2, WAIT_S)
    assert not run.health.ready() and run.health.alive()
    assert create_subscribed_stream(moto, GROUP) == arn
    logs = moto.client("logs")
    create_log_stream(logs, GROUP, STREAM_A)
    ids = put_audit(logs, STREAM_A, 5, records=2)
    assert receiver.wait_for_ids(set(ids), WAIT_S)
    assert run.health.ready()
    assert run.finish() == 0
    assert any("Kinesis stream not found (not created yet?)" in r.getMessage() for r in caplog.records)


def test_a_checkpointed_sequence_number_the_shard_refuses_is_read_again_from_the_start_time_without_duplicates(
    moto, receiver, tmp_path: Path, caplog: pytest.LogCaptureFixture  # noqa: F811
) -> None:
    """The stream was deleted and created again under the same ARN: the checkpoint's positions mean nothing there."""
    arn = create_subscribed_stream(moto, GROUP)
    logs = moto.client("logs")
    create_log_stream(logs, GROUP, STREAM_A)
    spec = CheckpointSpec("file", path=str(tmp_path / "checkpoint.json"))
    first = put_audit(logs, STREAM_A, 10, records=3)
    run = start(moto.endpoint_url, receiver, arn, checkpoint=spec)
    assert receiver.wait_for_ids(set(first), WAIT_S)
    assert run.finish() == 0
    second = put_audit(logs, STREAM_A, 10, records=3)
    caplog.set_level(logging.INFO, logger="forwarder")
    with AwsFaultProxy(moto.endpoint_url) as proxy:
        proxy.error("InvalidArgumentException", count=1, operations={"GetShardIterator"})
        run = start(proxy.endpoint_url, receiver, arn, checkpoint=spec)
        assert receiver.wait_for_ids(set(second), WAIT_S)
        assert run.finish() == 0
    # All six records read again; the first three's events known from the remembered hashes.
    assert run.sample("forwarder_kinesis_records_total", {"kind": "data"}) == 6
    assert receiver.duplicates() == {} and receiver.accepted_count == 20
    assert any("cannot resume the shard after its checkpointed sequence number" in r.getMessage()
               for r in caplog.records)


# --- a crash ---------------------------------------------------------------------------------------------


def unconfirmed_events(kinesis: Any, arn: str, saved: Checkpoint) -> tuple[int, dict[str, int]]:
    """The records after each shard's checkpointed position: how many, and auditID -> event hash of their events."""
    found: dict[str, int] = {}
    records = 0
    for name, after in saved.positions.positions.items():
        if name == kinesis_source.SINCE:
            continue
        for record in shard_records(kinesis, arn, name):
            if int(record["SequenceNumber"]) > after:
                records += 1
                for event in decode(record["Data"], GROUP, "kube-apiserver-audit", 0).events:
                    found[json.loads(event.message)["auditID"]] = event_hash(event.stream, event.event_id)
    return records, found


def test_after_a_kill_9_the_restart_loses_nothing_and_repeats_only_unconfirmed_events_not_remembered(
    moto, receiver, tmp_path: Path  # noqa: F811
) -> None:
    arn = create_subscribed_stream(moto, GROUP, shards=2)
    logs, kinesis = moto.client("logs"), moto.client("kinesis")
    create_log_stream(logs, GROUP, STREAM_A)
    ids = put_audit(logs, STREAM_A, 60, records=20)
    path = tmp_path / "checkpoint.json"
    # Batches of about two events, so a record's events are acknowledged in parts (the remembered hashes matter).
    args = ["run", "--log-group", GROUP, "--falco-url", receiver.url, "--source", f"kinesis:{arn}",
            "--checkpoint", f"file:{path}", "--start-at", "5m", "--max-event-bytes", "1000",
            "--max-batch-bytes", "1100", "--checkpoint-interval", "0", "--checkpoint-hashes-interval", "0",
            "--shutdown-grace", "1"]
    env = forwarder_env(moto.env())
    receiver.slow(0.05)
    with ForwarderProcess(args, env, tmp_path / "first.log") as first:
        assert receiver.wait_for(lambda rx: rx.accepted_count >= 20 or not first.alive(), WAIT_S)
        assert first.alive(), first.tail()
        first.kill()
    delivered_before = set(receiver.accepted_ids)
    assert len(delivered_before) < len(ids)
    saved = FileCheckpointStore(path).load()
    assert saved is not None and any(at > 0 for name, at in saved.positions.positions.items()
                                     if name != kinesis_source.SINCE)
    records, unconfirmed = unconfirmed_events(kinesis, arn, saved)
    remembered = {h for bucket in (saved.remembered.buckets if saved.remembered else ()) for h in
                  unpack(bucket.hashes)}
    receiver.clear()
    with ForwarderProcess(args, env, tmp_path / "second.log") as second:
        assert receiver.wait_for(lambda rx: set(ids) <= rx.unique_ids or not second.alive(), WAIT_S), second.tail()
        # Every record after the checkpoint read again (those of events delivered before included).
        assert second.wait_for_metric("forwarder_kinesis_records_total", records, WAIT_S, kind="data")
        assert second.terminate(10) == 0
    assert receiver.violations == []
    duplicates = set(receiver.duplicates())
    assert set(receiver.accepted_ids) == set(ids)
    # Only events of records after the checkpointed positions come again, and of those none that was remembered.
    assert duplicates <= set(unconfirmed) and len(unconfirmed) < len(ids)
    assert not {audit_id for audit_id in duplicates if unconfirmed[audit_id] in remembered}
