"""End to end: the real `python -m forwarder` CLI as a child process, moto in server mode reached by
real boto3 over HTTP (directly, or through the fault proxy), and a receiver that enforces Falco's
k8saudit webhook contract. Every wait is a bounded poll; no assertion depends on timing except the
issue's own "SIGTERM -> exit 0 within 10 s"."""

# ruff: noqa: F811 - pytest fixtures imported from support.moto_server are parameters here by design

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.audit_events import generated_lines, make_event, new_stream_name, shared_corpus_lines
from support.aws_fault_proxy import AwsFaultProxy
from support.falco_receiver import FalcoReceiver
from support.forwarder_process import ForwarderProcess, forwarder_env, run_cli
from support.moto_server import (  # noqa: F401 - pytest fixtures
    MotoServer,
    create_log_group,
    create_log_stream,
    moto,
    moto_server,
    now_ms,
    put_events,
    scrub_env,
)

GROUP = "/aws/eks/e2e/cluster"
DELIVERY_TIMEOUT = 90.0  # generous: the suite may share 2 cores with others; a pass is usually seconds


@pytest.fixture
def receiver() -> Iterator[FalcoReceiver]:
    with FalcoReceiver(keep_events=True) as r:
        yield r


@pytest.fixture
def logs(moto: MotoServer):
    client = moto.client("logs")
    create_log_group(client, GROUP)
    return client


def _run_args(receiver: FalcoReceiver, *extra: str) -> list[str]:
    return [
        "run",
        "--log-group",
        GROUP,
        "--falco-url",
        receiver.url,
        "--start-at",
        "15m",
        "--poll-interval",
        "0.2",
        "--max-requests-per-second",
        "20",
        *extra,
    ]


def _forwarder(
    tmp_path: Path,
    moto: MotoServer,
    receiver: FalcoReceiver,
    *extra: str,
    endpoint_url: str | None = None,
    env: dict[str, str] | None = None,
    name: str = "forwarder",
) -> ForwarderProcess:
    environment = env if env is not None else forwarder_env(moto.env(endpoint_url=endpoint_url))
    return ForwarderProcess(_run_args(receiver, *extra), environment, tmp_path / f"{name}.log")


def _generated(count: int, *, start_ms: int, step_ms: int = 1, size: int = 600) -> list[tuple[str, int, str]]:
    """(auditID, timestamp_ms, line) for `count` generated events."""
    out = []
    for i in range(count):
        timestamp = start_ms + i * step_ms
        audit_id, line = make_event(timestamp, size=size)
        out.append((audit_id, timestamp, line))
    return out


def _put(logs, stream: str, events: list[tuple[str, int, str]]) -> None:
    create_log_stream(logs, GROUP, stream)
    put_events(logs, GROUP, stream, [(timestamp, line) for _, timestamp, line in events])


def _await_ids(receiver: FalcoReceiver, fwd: ForwarderProcess, ids: set[str], what: str) -> None:
    if not receiver.wait_for(lambda r: ids <= r.unique_ids or not fwd.alive(), DELIVERY_TIMEOUT) or not (
        ids <= receiver.unique_ids
    ):
        missing = ids - receiver.unique_ids
        raise AssertionError(
            f"{what}: {len(missing)} of {len(ids)} events never reached the receiver "
            f"(forwarder alive={fwd.alive()}); forwarder log tail:\n{fwd.tail()}"
        )


def _assert_clean(receiver: FalcoReceiver, fwd: ForwarderProcess) -> None:
    assert receiver.violations == [], f"contract violations: {receiver.violations[:5]}\n{fwd.tail()}"


# --- basic flow -------------------------------------------------------------------------------


@pytest.mark.parametrize("corpus", ["generated", "shared"])
def test_corpus_valid_events_delivered_intact_and_invalid_lines_counted(tmp_path, moto, logs, receiver, corpus) -> None:
    lines = generated_lines() if corpus == "generated" else shared_corpus_lines()
    stream = new_stream_name()
    base = now_ms() - 60_000
    create_log_stream(logs, GROUP, stream)
    put_events(logs, GROUP, stream, [(base + i, line.text) for i, line in enumerate(lines)])
    valid = [line for line in lines if line.valid]
    expected = Counter(line.audit_id for line in valid)

    with _forwarder(tmp_path, moto, receiver) as fwd:
        _await_ids(receiver, fwd, set(expected), "corpus")
        assert fwd.wait_for_metric("forwarder_events_skipped_total", len(lines) - len(valid), 30), fwd.tail()
        received = Counter(receiver.accepted_ids)
        # Two corpus files share two auditIDs: each copy may arrive, nothing more.
        assert all(received[audit_id] <= expected[audit_id] for audit_id in received), receiver.duplicates()
        assert set(received) == set(expected)
        assert fwd.metric("forwarder_events_skipped_total") == len(lines) - len(valid)
        assert fwd.metric("forwarder_events_read_total") == len(lines)
        assert fwd.metric("forwarder_events_delivered_total") == sum(received.values())
        assert fwd.metric("forwarder_last_delivery_timestamp_seconds") > 0
        assert fwd.health("/healthz") == 200
        assert fwd.health("/readyz") == 200
        # What Falco got is the API server's event, unchanged.
        for line in valid[:20]:
            assert receiver.event(line.audit_id) == json.loads(line.text) or expected[line.audit_id] > 1
    _assert_clean(receiver, fwd)
    assert all(r.status == 200 for r in receiver.requests)


def test_several_streams_and_a_rotation_mid_run(tmp_path, moto, logs, receiver) -> None:
    base = now_ms() - 30_000
    first = {new_stream_name(): _generated(150, start_ms=base + k, step_ms=3) for k in range(3)}
    for stream, events in first.items():
        _put(logs, stream, events)
    with _forwarder(tmp_path, moto, receiver) as fwd:
        _await_ids(receiver, fwd, {e[0] for events in first.values() for e in events}, "initial streams")
        # Rotation: a new stream appears while the forwarder runs, and the old ones get a last word.
        rotated = new_stream_name()
        late_batch = _generated(200, start_ms=now_ms(), step_ms=2)
        _put(logs, rotated, late_batch)
        tail = {stream: _generated(10, start_ms=now_ms(), step_ms=1) for stream in first}
        for stream, events in tail.items():
            _put(logs, stream, events)
        wanted = {e[0] for e in late_batch} | {e[0] for events in tail.values() for e in events}
        _await_ids(receiver, fwd, wanted, "rotated stream and tails")
        assert fwd.wait_for_metric("forwarder_streams_seen", 4, 30), fwd.tail()
    assert receiver.duplicates() == {}
    assert receiver.accepted_count == 3 * 150 + 200 + 3 * 10
    _assert_clean(receiver, fwd)


def test_stream_without_the_prefix_is_ignored(tmp_path, moto, logs, receiver) -> None:
    ours = _generated(20, start_ms=now_ms() - 5_000)
    other = _generated(20, start_ms=now_ms() - 5_000)
    _put(logs, new_stream_name(), ours)
    _put(logs, "authenticator-0123456789abcdef", other)
    with _forwarder(tmp_path, moto, receiver) as fwd:
        _await_ids(receiver, fwd, {e[0] for e in ours}, "prefixed stream")
        # A sentinel after the foreign events: once it is in, the foreign ones had their chance.
        sentinel = _generated(1, start_ms=now_ms())
        _put(logs, new_stream_name(), sentinel)
        _await_ids(receiver, fwd, {sentinel[0][0]}, "sentinel")
    assert receiver.unique_ids.isdisjoint({e[0] for e in other})


def test_cluster_name_reads_the_eks_log_group_from_the_start_position(tmp_path, moto, logs, receiver) -> None:
    # --cluster-name e2e means /aws/eks/e2e/cluster (GROUP); --start-at 10m leaves older events alone.
    stream = new_stream_name()
    too_old = _generated(10, start_ms=now_ms() - 20 * 60_000)
    recent = _generated(10, start_ms=now_ms() - 60_000)
    _put(logs, stream, too_old + recent)
    args = ["run", "--cluster-name", "e2e", "--falco-url", receiver.url, "--start-at", "10m", "--poll-interval", "0.2"]
    with ForwarderProcess(args, forwarder_env(moto.env()), tmp_path / "cluster.log") as fwd:
        _await_ids(receiver, fwd, {e[0] for e in recent}, "events after --start-at")
        sentinel = _generated(1, start_ms=now_ms())
        _put(logs, stream, sentinel)
        _await_ids(receiver, fwd, {sentinel[0][0]}, "sentinel")
    assert receiver.unique_ids.isdisjoint({e[0] for e in too_old})
    assert receiver.duplicates() == {}


# --- late, out of order, same millisecond ---------------------------------------------------------


def test_late_and_out_of_order_arrivals_inside_the_lateness_window(tmp_path, moto, logs, receiver) -> None:
    # A short window keeps the test short: the forwarder may hold a late event until the final read,
    # when the window of its timestamp closes (that is the contract: delivered, not delivered at once).
    lateness_s = 20
    stream_a, stream_b = new_stream_name(), new_stream_name()
    recent = _generated(100, start_ms=now_ms() - 1_000, step_ms=5)
    _put(logs, stream_a, recent)
    _put(logs, stream_b, _generated(5, start_ms=now_ms() - 1_000))
    with _forwarder(tmp_path, moto, receiver, "--max-lateness", str(lateness_s)) as fwd:
        _await_ids(receiver, fwd, {e[0] for e in recent}, "recent events")
        # Events stamped 6 to 15 s ago show up only now, after newer ones were delivered: in the
        # same stream, in another stream, and in a new stream (EKS delivers best-effort, out of
        # order across streams). All become visible well inside the 20 s window.
        now = now_ms()
        late_same = _generated(30, start_ms=now - 15_000, step_ms=7)
        late_other = _generated(30, start_ms=now - 12_000, step_ms=11)
        late_new = _generated(30, start_ms=now - 9_000, step_ms=3)
        _put(logs, stream_a, late_same)
        _put(logs, stream_b, late_other)
        _put(logs, new_stream_name(), late_new)
        visible_by = now_ms()
        assert visible_by - (now - 15_000) < lateness_s * 1000, "the late events reached moto too slowly to count"
        _await_ids(receiver, fwd, {e[0] for e in late_same + late_other + late_new}, "late events")
    assert receiver.duplicates() == {}
    _assert_clean(receiver, fwd)


def test_thousands_of_events_in_one_millisecond_across_a_page_boundary(tmp_path, moto, logs, receiver) -> None:
    # 6,000 earlier events, then 5,000 sharing one millisecond: a 10,000-event page (the API's
    # maximum, and moto's default) ends inside the shared millisecond, so "last timestamp + 1"
    # would lose the rest.
    stream = new_stream_name()
    same_ms = now_ms() - 10_000
    before = _generated(6_000, start_ms=same_ms - 6_000, step_ms=1, size=400)
    same = [(audit_id, same_ms, line) for audit_id, _, line in _generated(5_000, start_ms=same_ms, step_ms=0, size=400)]
    _put(logs, stream, before + same)
    with _forwarder(tmp_path, moto, receiver) as fwd:
        _await_ids(receiver, fwd, {e[0] for e in before + same}, "same-millisecond events")
        # A second burst in one (later) millisecond, arriving while the forwarder is caught up.
        burst_ms = now_ms()
        burst = [(a, burst_ms, line) for a, _, line in _generated(5_000, start_ms=burst_ms, step_ms=0, size=400)]
        _put(logs, stream, burst)
        _await_ids(receiver, fwd, {e[0] for e in burst}, "live same-millisecond burst")
    assert receiver.duplicates() == {}
    assert receiver.accepted_count == 16_000
    _assert_clean(receiver, fwd)


# --- Falco away, failing, slow ------------------------------------------------------------------


def test_receiver_down_for_a_while_then_back(tmp_path, moto, logs, receiver) -> None:
    stream = new_stream_name()
    first = _generated(50, start_ms=now_ms() - 3_000)
    _put(logs, stream, first)
    with _forwarder(tmp_path, moto, receiver) as fwd:
        _await_ids(receiver, fwd, {e[0] for e in first}, "before the outage")
        receiver.down()
        during = _generated(300, start_ms=now_ms(), step_ms=1)
        _put(logs, stream, during)
        # Let it fail a few times against the closed port, with backoff.
        assert fwd.wait_for_metric("forwarder_delivery_retries_total", 3, 60), fwd.tail()
        assert fwd.alive()
        receiver.up()
        _await_ids(receiver, fwd, {e[0] for e in during}, "after the outage")
        assert fwd.health("/healthz") == 200
    assert receiver.duplicates() == {}
    _assert_clean(receiver, fwd)


def test_receiver_answering_500s_429_and_slowly(tmp_path, moto, logs, receiver) -> None:
    stream = new_stream_name()
    receiver.fail(500, count=4)
    first = _generated(200, start_ms=now_ms() - 3_000)
    _put(logs, stream, first)
    with _forwarder(tmp_path, moto, receiver, "--request-timeout", "5") as fwd:
        _await_ids(receiver, fwd, {e[0] for e in first}, "after 500s")
        receiver.fail(429, count=2, retry_after=1)
        second = _generated(100, start_ms=now_ms())
        _put(logs, stream, second)
        _await_ids(receiver, fwd, {e[0] for e in second}, "after 429s")
        receiver.slow(1.0)  # slower than a poll, well inside the request timeout
        third = _generated(100, start_ms=now_ms())
        _put(logs, stream, third)
        _await_ids(receiver, fwd, {e[0] for e in third}, "slow answers")
        assert fwd.metric("forwarder_delivery_retries_total") >= 6
        assert fwd.metric("forwarder_batches_total", outcome="retried") >= 1
    # Every failure was answered before Falco would have used the events: nothing is doubled.
    assert receiver.duplicates() == {}
    _assert_clean(receiver, fwd)


def test_answers_slower_than_the_request_timeout_are_retried(tmp_path, moto, logs, receiver) -> None:
    stream = new_stream_name()
    events = _generated(40, start_ms=now_ms() - 3_000)
    receiver.slow(3.0)
    _put(logs, stream, events)
    with _forwarder(tmp_path, moto, receiver, "--request-timeout", "1") as fwd:
        assert fwd.wait_for_metric("forwarder_delivery_retries_total", 1, 60), fwd.tail()
        receiver.clear()
        _await_ids(receiver, fwd, {e[0] for e in events}, "after timeouts")
    # A late 200 that the forwarder gave up on is a delivery Falco saw: duplicates are expected
    # here, losses are not.
    _assert_clean(receiver, fwd)


# --- crash, restart, shutdown --------------------------------------------------------------------


def test_sigkill_and_restart_with_the_checkpoint_loses_nothing(tmp_path, moto, logs, receiver) -> None:
    checkpoint = tmp_path / "checkpoint.json"
    streams = [new_stream_name(), new_stream_name()]
    base = now_ms() - 60_000
    events = {s: _generated(1_500, start_ms=base + k, step_ms=2, size=1500) for k, s in enumerate(streams)}
    for stream, stream_events in events.items():
        _put(logs, stream, stream_events)
    all_ids = {e[0] for stream_events in events.values() for e in stream_events}
    # Small batches (about 40 events) answered slowly: the kill lands mid-stream, with a request
    # in flight, and the checkpoint of every earlier batch has long been written (intervals of 0: saved
    # after every acknowledged batch; the default cadence's bound is pinned by test_fwd_checkpoint_policy).
    receiver.slow(0.15)
    args = ("--checkpoint", f"file:{checkpoint}", "--max-event-bytes", "8192", "--max-batch-bytes", "65536",
            "--checkpoint-interval", "0", "--checkpoint-hashes-interval", "0")
    first = _forwarder(tmp_path, moto, receiver, *args, name="first").start()
    try:
        assert receiver.wait_for(lambda r: r.accepted_count >= 1_000 or not first.alive(), DELIVERY_TIMEOUT)
        assert first.alive(), first.tail()
    finally:
        first.kill()
    # A request held by slow() is still answered (into the closed socket) and recorded: wait for it.
    assert receiver.wait_for(lambda r: r.in_flight_requests == 0, 10)
    before_kill = receiver.requests
    acked_before = set(receiver.accepted_ids)
    assert len(acked_before) < len(all_ids), "the kill came too late to test anything"
    receiver.clear()

    with _forwarder(tmp_path, moto, receiver, *args, name="second") as second:
        _await_ids(receiver, second, all_ids, "after restart")
        # Caught up: new events still flow, once.
        more = _generated(20, start_ms=now_ms())
        _put(logs, streams[0], more)
        _await_ids(receiver, second, {e[0] for e in more}, "after restart, live")
    duplicates = receiver.duplicates()
    assert set(duplicates) <= acked_before, "only events Falco had before the crash may come again"
    # Bound: the batches whose acknowledgement the crash could have kept out of the checkpoint are
    # the ones in flight (at most the receiver's peak concurrency) plus the one acknowledged last.
    window = receiver.max_concurrent_requests + 1
    answered = [r for r in before_kill if r.status == 200 and r.events]
    bound = sum(r.events for r in answered[-window:])
    assert sum(n - 1 for n in duplicates.values()) <= bound, (len(duplicates), bound, window)
    _assert_clean(receiver, second)


def test_sigterm_exits_0_within_10_s_and_a_restart_resumes_without_gaps_or_repeats(
    tmp_path,
    moto,
    logs,
    receiver,
) -> None:
    checkpoint = tmp_path / "checkpoint.json"
    stream = new_stream_name()
    events = _generated(2_000, start_ms=now_ms() - 30_000, step_ms=3, size=1500)
    _put(logs, stream, events)
    receiver.slow(0.5)  # a request is in flight when the signal comes
    args = ("--checkpoint", f"file:{checkpoint}", "--max-event-bytes", "8192", "--max-batch-bytes", "65536")
    first = _forwarder(tmp_path, moto, receiver, *args, name="first").start()
    try:
        assert receiver.wait_for(lambda r: r.accepted_count >= 200 or not first.alive(), DELIVERY_TIMEOUT), first.tail()
        code = first.terminate(timeout=10)
    finally:
        first.kill()
    assert code == 0, f"SIGTERM: exit code {code} (None = still running after 10 s)\n{first.tail()}"
    assert checkpoint.exists(), "a clean stop leaves a checkpoint"
    receiver.clear()
    with _forwarder(tmp_path, moto, receiver, *args, name="second") as second:
        _await_ids(receiver, second, {e[0] for e in events}, "after a clean restart")
    # A clean stop finished (or gave back) what was in flight: nothing is sent twice.
    assert receiver.duplicates() == {}
    _assert_clean(receiver, second)


# --- AWS faults, quotas, credentials --------------------------------------------------------------


def test_throttling_is_retried_and_never_fatal(tmp_path, moto, logs, receiver) -> None:
    stream = new_stream_name()
    first = _generated(100, start_ms=now_ms() - 3_000)
    _put(logs, stream, first)
    with AwsFaultProxy(moto.endpoint_url) as proxy:
        # Five throttles in a row, then two 503s: seven consecutive failures of every CloudWatch
        # call, enough to show the backoff at work without waiting out its 10 s cap for long.
        proxy.throttle(count=5)
        with _forwarder(tmp_path, moto, receiver, endpoint_url=proxy.endpoint_url) as fwd:
            deadline = time.monotonic() + 60
            while proxy.count(injected=True) < 5 and time.monotonic() < deadline and fwd.alive():
                time.sleep(0.05)
            proxy.unavailable(count=2)
            assert fwd.wait_for_metric("forwarder_aws_api_calls_total", 5, 30, outcome="throttled"), fwd.tail()
            more = _generated(100, start_ms=now_ms())
            _put(logs, stream, more)
            _await_ids(receiver, fwd, {e[0] for e in first + more}, "after throttling and 503s")
            assert proxy.count(injected=True) == 7
            assert fwd.alive()
            assert fwd.health("/healthz") == 200
    assert receiver.duplicates() == {}
    _assert_clean(receiver, fwd)


def test_idle_forwarder_makes_at_most_one_cloudwatch_call_per_second(tmp_path, moto, logs, receiver) -> None:
    stream = new_stream_name()
    events = _generated(20, start_ms=now_ms() - 3_000)
    _put(logs, stream, events)
    with AwsFaultProxy(moto.endpoint_url) as proxy:
        env = forwarder_env(moto.env(endpoint_url=proxy.endpoint_url))
        # Default poll interval and request cap: only the test-speed options are left out.
        args = ["run", "--log-group", GROUP, "--falco-url", receiver.url, "--start-at", "15m"]
        with ForwarderProcess(args, env, tmp_path / "idle.log") as fwd:
            _await_ids(receiver, fwd, {e[0] for e in events}, "before going idle")
            # A start reads the 15-minute start range once, stage by stage (a few calls in the first
            # seconds); idle begins when every stage has caught up to within its period (60 s at most).
            assert receiver.wait_for(lambda _r: fwd.caught_up() or not fwd.alive(), 60), fwd.tail()
            start = time.monotonic()
            deadline = start + 8.0
            while time.monotonic() < deadline and fwd.alive():
                time.sleep(0.2)
            end = time.monotonic()
            calls = proxy.calls_between(start, end)
            assert fwd.alive(), fwd.tail()
    # One call of slack for a window that cuts a poll in two.
    assert calls <= (end - start) * 1.0 + 1, f"{calls} CloudWatch calls in {end - start:.1f} s while idle"


def test_request_rate_cap_holds_under_load_and_throttling(tmp_path, moto, logs, receiver) -> None:
    # Throttling makes the forwarder retry as fast as it may: every call, first try or retry
    # (botocore's own included), must stay under the cap of 4 calls/s.
    cap = 2
    streams = [new_stream_name() for _ in range(6)]
    for k, stream in enumerate(streams):
        _put(logs, stream, _generated(30, start_ms=now_ms() - 20_000 + k))
    with AwsFaultProxy(moto.endpoint_url) as proxy:
        fwd = _forwarder(tmp_path, moto, receiver, endpoint_url=proxy.endpoint_url)
        fwd.args[fwd.args.index("--max-requests-per-second") + 1] = str(cap)
        # A few throttles: the first retries come quickly (jittered backoff from 0.2 s), faster
        # than the cap allows, without pushing the backoff into tens of seconds.
        proxy.throttle(count=6)
        with fwd:
            assert receiver.wait_for_count(6 * 30, DELIVERY_TIMEOUT), fwd.tail()
            assert proxy.count(injected=True) == 6
            time.sleep(1.0)  # a few idle polls too
            counted_throttled = fwd.metric("forwarder_aws_api_calls_total", outcome="throttled")
        stamps = sorted(c.at for c in proxy.calls())
    assert len(stamps) > 2 * (cap + 1), f"only {len(stamps)} calls: the cap was not exercised"
    # Every request that left the process went through the forwarder's limiter and its count: no
    # hidden SDK retries (botocore's retries={"max_attempts": N} means N *retries*).
    assert counted_throttled == 6, f"forwarder counted {counted_throttled} throttled calls, AWS saw 6"
    # A token bucket of burst 1 spaces calls 1/cap apart: a one-second window holds at most cap
    # starts plus the one on its edge.
    worst = max(sum(1 for t in stamps if s <= t < s + 1.0) for s in stamps)
    assert worst <= cap + 1, f"{worst} calls in one second with a cap of {cap}/s"


def test_credentials_from_assume_role_with_web_identity(tmp_path, moto, logs, receiver) -> None:
    from moto.sts.models import sts_backends

    role_arn = "arn:aws:iam::123456789012:role/falco-lab-forwarder"
    token = tmp_path / "token"
    # A service-account token's shape; moto's STS does not verify the signature.
    token.write_text("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZmFsY286Zm9yd2FyZGVyIn0.c2ln")
    events = _generated(30, start_ms=now_ms() - 3_000)
    _put(logs, new_stream_name(), events)
    with AwsFaultProxy(moto.endpoint_url) as proxy:
        env = scrub_env(
            forwarder_env(moto.env(static_keys=False, endpoint_url=proxy.endpoint_url)),
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
        )
        env.update({"AWS_ROLE_ARN": role_arn, "AWS_WEB_IDENTITY_TOKEN_FILE": str(token)})
        assert not any(k in env for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"))
        with _forwarder(tmp_path, moto, receiver, env=env) as fwd:
            _await_ids(receiver, fwd, {e[0] for e in events}, "with web-identity credentials")
        calls = proxy.calls()
    assert any(c.operation == "AssumeRoleWithWebIdentity" and c.status == 200 for c in calls), Counter(
        c.operation for c in calls
    )
    assumed = [r for r in sts_backends["123456789012"]["aws"].assumed_roles if r.role_arn == role_arn]
    assert assumed, "moto's STS has no record of the role being assumed"
    log_keys = {c.access_key_id for c in calls if c.operation != "AssumeRoleWithWebIdentity"}
    assert log_keys and log_keys <= {r.access_key_id for r in assumed}, log_keys


# --- bad input, replay, configuration -------------------------------------------------------------


def test_malformed_truncated_and_oversized_lines_are_skipped_by_reason(tmp_path, moto, logs, receiver) -> None:
    ts = now_ms() - 5_000
    good_before = _generated(5, start_ms=ts)
    good_after = _generated(5, start_ms=ts + 100)
    truncated_id, truncated_line = make_event(ts + 50, size=3000)
    big_id, big_line = make_event(ts + 51, size=300_000)
    bad = [
        "this is not json",
        '{"kind": "Event", "auditID": "x"',
        '["an", "array"]',
        json.dumps({"kind": "Pod", "auditID": "p", "stageTimestamp": "2026-11-26T10:00:00Z"}),
        json.dumps({"kind": "Event", "stageTimestamp": "2026-11-26T10:00:00Z"}),
        json.dumps({"kind": "Event", "auditID": "no-ts"}),
        json.dumps({"kind": "Event", "auditID": "bad-ts", "stageTimestamp": "2017-02-14 10:20:00"}),
        truncated_line[:1500] + "[Truncated...]",
        big_line,
    ]
    stream = new_stream_name()
    create_log_stream(logs, GROUP, stream)
    put_events(
        logs,
        GROUP,
        stream,
        [(t, line) for _, t, line in good_before]
        + [(ts + 50 + i, line) for i, line in enumerate(bad)]
        + [(t, line) for _, t, line in good_after],
    )
    with _forwarder(tmp_path, moto, receiver) as fwd:
        _await_ids(receiver, fwd, {e[0] for e in good_before + good_after}, "good events around bad ones")
        assert fwd.wait_for_metric("forwarder_events_skipped_total", len(bad), 30), fwd.tail()
        skipped = {
            reason: fwd.metric("forwarder_events_skipped_total", reason=reason)
            for reason in (
                "not_json",
                "not_object",
                "not_event_kind",
                "missing_audit_id",
                "bad_stage_timestamp",
                "truncated",
                "too_large",
            )
        }
        assert fwd.alive()
    assert skipped["too_large"] == 1 and skipped["truncated"] == 1, skipped
    assert skipped["not_event_kind"] == 1 and skipped["missing_audit_id"] == 1, skipped
    assert skipped["bad_stage_timestamp"] == 2, skipped  # one missing, one not RFC3339
    assert skipped["not_json"] + skipped["not_object"] == 3, skipped
    assert sum(skipped.values()) == len(bad)
    assert receiver.unique_ids.isdisjoint({truncated_id, big_id})
    # The reasons are logged with the stream, as JSON lines.
    logged = [json.loads(line) for line in fwd.output().splitlines() if line.startswith("{")]
    assert any(entry.get("stream") == stream and entry.get("reason") == "too_large" for entry in logged), fwd.tail()
    _assert_clean(receiver, fwd)


def test_replay_sends_the_valid_lines_of_files_and_stdin(tmp_path, receiver) -> None:
    # A replayed file holds one event per line: the pretty-printed generated event is left out.
    lines = [line for line in generated_lines() if "\n" not in line.text]
    path = tmp_path / "audit.jsonl"
    path.write_text("\n".join(line.text for line in lines) + "\n")
    valid = [line for line in lines if line.valid]
    stdin_id, stdin_line = make_event(now_ms(), size=800)
    env = forwarder_env(MotoServerless.env())
    done = run_cli(["replay", str(path), "-", "--falco-url", receiver.url], env, stdin=stdin_line.encode() + b"\n")
    assert done.returncode == 0, done.stdout.decode()[-2000:] + done.stderr.decode()[-2000:]
    assert set(receiver.accepted_ids) == {line.audit_id for line in valid} | {stdin_id}
    assert len(receiver.accepted_ids) == len(valid) + 1
    summary = json.loads(done.stdout.decode().strip().splitlines()[-1])
    assert summary["valid"] == len(valid) + 1 and summary["skipped"] == len(lines) - len(valid)
    assert receiver.violations == []


def test_replay_of_a_missing_file_fails_fast_with_exit_2(tmp_path, receiver) -> None:
    missing = tmp_path / "missing.jsonl"
    done = run_cli(["replay", str(missing), "--falco-url", receiver.url], forwarder_env(MotoServerless.env()))
    assert done.returncode == 2, done.stderr.decode()
    assert "missing.jsonl" in done.stderr.decode()
    assert receiver.requests == []


@pytest.mark.parametrize(
    ("args", "env_extra", "option"),
    [
        (
            ["run", "--log-group", GROUP, "--falco-url", "http://127.0.0.1:9/k8s-audit", "--poll-interval", "abc"],
            {},
            "--poll-interval",
        ),
        (
            ["run", "--log-group", GROUP, "--falco-url", "http://127.0.0.1:9/k8s-audit", "--poll-interval", "0"],
            {},
            "--poll-interval",
        ),
        (["run", "--log-group", GROUP], {}, "--falco-url"),
        (["run", "--log-group", GROUP, "--falco-url", "ftp://x/k8s-audit"], {}, "--falco-url"),
        (["run", "--falco-url", "http://127.0.0.1:9/k8s-audit"], {}, "--cluster-name"),
        (
            ["run", "--cluster-name", "c", "--log-group", GROUP, "--falco-url", "http://127.0.0.1:9/"],
            {},
            "--cluster-name",
        ),
        (
            ["run", "--log-group", GROUP, "--falco-url", "http://127.0.0.1:9/", "--checkpoint", "s3:bucket"],
            {},
            "--checkpoint",
        ),
        (
            ["run", "--log-group", GROUP, "--falco-url", "http://127.0.0.1:9/", "--start-at", "yesterday"],
            {},
            "--start-at",
        ),
        (
            ["run", "--log-group", GROUP, "--falco-url", "http://127.0.0.1:9/", "--metrics-port", "70000"],
            {},
            "--metrics-port",
        ),
        (
            ["run", "--log-group", GROUP, "--falco-url", "http://127.0.0.1:9/"],
            {"FORWARDER_MAX_LATENESS": "-5"},
            "--max-lateness",
        ),
    ],
)
def test_config_errors_exit_2_with_one_line_naming_the_option(args, env_extra, option) -> None:
    env = forwarder_env(MotoServerless.env())
    env.update(env_extra)
    done = run_cli(args, env, timeout=30)
    err = done.stderr.decode().strip()
    assert done.returncode == 2, (done.returncode, err, done.stdout.decode()[-500:])
    assert len(err.splitlines()) == 1, err
    assert option in err, err
    assert err.startswith("forwarder: error:"), err


class MotoServerless:
    """Environment for commands that never reach AWS (replay, config errors)."""

    @staticmethod
    def env() -> dict[str, str]:
        from support.moto_server import aws_env

        # An endpoint nobody listens on: if the command tried AWS, it would fail, not reach AWS.
        return aws_env("http://127.0.0.1:9")


def test_options_come_from_forwarder_environment_variables(tmp_path, receiver) -> None:
    audit_id, line = make_event(now_ms(), size=600)
    path = tmp_path / "one.jsonl"
    path.write_text(line + "\n")
    env = forwarder_env(MotoServerless.env())
    env["FORWARDER_FALCO_URL"] = receiver.url
    done = run_cli(["replay", str(path)], env)
    assert done.returncode == 0, done.stderr.decode()
    assert receiver.accepted_ids == [audit_id]
    # --help names the variables.
    helped = run_cli(["run", "--help"], env)
    assert helped.returncode == 0
    assert "FORWARDER_POLL_INTERVAL" in helped.stdout.decode()
