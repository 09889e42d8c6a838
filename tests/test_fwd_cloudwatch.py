"""forwarder/sources/cloudwatch.py: FilterLogEvents paging, error handling and call accounting.

Scripted fakes for the error paths, and moto in server mode (real boto3 over HTTP) for the
wire. Where moto differs from AWS (documented in the API reference), the test says so.
"""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError, NoCredentialsError
from fwd_fakes import FakeClock, FakeLogs, RecordingClock, client_error
from support.aws_fault_proxy import AwsFaultProxy
from support.moto_server import create_log_group, moto, moto_server, now_ms, put_events  # noqa: F401

from forwarder.clock import SystemClock
from forwarder.metrics import Metrics
from forwarder.retry import Backoff
from forwarder.sources.cloudwatch import LogsReader, TokenExpiredError, build_logs_client
from forwarder.sources.ratelimit import RateLimiter

GROUP = "/aws/eks/lab/cluster"
PREFIX = "kube-apiserver-audit"
SYSTEM = SystemClock()


def _reader(client: Any, clock: FakeClock, metrics: Metrics, **kwargs: Any) -> tuple[LogsReader, list[float]]:
    recording = RecordingClock(clock)
    limiter = RateLimiter(1000, clock=clock)
    reader = LogsReader(client, GROUP, PREFIX, limiter=limiter, metrics=metrics, clock=recording,
                        rng=random.Random(7), **kwargs)
    return reader, recording.waits


def _calls(metrics: Metrics, outcome: str) -> float:
    return metrics.registry.get_sample_value(
        "forwarder_aws_api_calls_total", {"operation": "FilterLogEvents", "outcome": outcome}
    ) or 0.0


def test_throttling_is_retried_with_backoff_and_counted() -> None:
    clock = FakeClock()
    logs = FakeLogs(clock)
    logs.add(f"{PREFIX}-a", int(clock.now * 1000), "m")
    logs.script = [client_error("ThrottlingException"), client_error("LimitExceededException"),
                   client_error("ServiceUnavailableException", 503), client_error("InternalFailure", 500)]
    metrics = Metrics()
    reader, waits = _reader(logs, clock, metrics, backoff=Backoff(initial_seconds=1.0, max_seconds=8.0, jitter="none"))
    page = reader.page(0, int(clock.now * 1000) + 1, None, threading.Event())
    assert page is not None and [e.message for e in page.events] == ["m"]
    assert waits == [1.0, 2.0, 4.0, 8.0]
    assert _calls(metrics, "throttled") == 2
    assert _calls(metrics, "error") == 2
    assert _calls(metrics, "ok") == 1
    # The backoff starts over after a success.
    logs.script = [client_error("ThrottlingException")]
    reader.page(0, 1, None, threading.Event())
    assert waits[-1] == 1.0


def test_connection_and_credential_errors_are_retried_never_fatal() -> None:
    clock = FakeClock()
    logs = FakeLogs(clock)
    logs.script = [
        EndpointConnectionError(endpoint_url="https://logs.us-west-2.amazonaws.com"),
        NoCredentialsError(),
        client_error("ExpiredTokenException"),
        client_error("UnrecognizedClientException"),
    ]
    metrics = Metrics()
    reader, waits = _reader(logs, clock, metrics)
    assert reader.page(0, 1, None, threading.Event()) is not None
    assert len(waits) == 4 and _calls(metrics, "error") == 4 and _calls(metrics, "ok") == 1


def test_missing_log_group_and_access_denied_mark_not_ready_and_retry_slowly() -> None:
    clock = FakeClock()
    logs = FakeLogs(clock)
    logs.script = [client_error("ResourceNotFoundException"), client_error("AccessDeniedException")]
    readiness: list[bool] = []
    metrics = Metrics()
    reader, waits = _reader(logs, clock, metrics, on_ready=readiness.append,
                            slow_backoff=Backoff(initial_seconds=5.0, max_seconds=60.0, jitter="none"))
    assert reader.page(0, 1, None, threading.Event()) is not None
    assert readiness == [False, False, True]
    assert waits == [5.0, 10.0]


def test_stop_during_backoff_returns_none_promptly() -> None:
    clock = FakeClock()
    logs = FakeLogs(clock)
    logs.script = [client_error("ThrottlingException")] * 5
    stop = threading.Event()

    def sigterm(seconds: float, s: threading.Event) -> bool:
        stop.set()  # SIGTERM arrives during the first backoff
        return True

    limiter = RateLimiter(1000, clock=clock)
    reader = LogsReader(logs, GROUP, PREFIX, limiter=limiter, metrics=Metrics(), clock=RecordingClock(clock, sigterm))
    assert reader.page(0, 1, None, stop) is None
    assert len(logs.calls) == 1


def test_refused_next_token_asks_the_caller_to_restart_the_range() -> None:
    clock = FakeClock()
    logs = FakeLogs(clock)
    logs.script = [client_error("InvalidParameterException")]
    reader, _ = _reader(logs, clock, Metrics())
    with pytest.raises(TokenExpiredError):
        reader.page(0, 1, "stale-token", threading.Event())


def test_request_parameters_are_the_range_prefix_and_token() -> None:
    clock = FakeClock()
    logs = FakeLogs(clock)
    reader, _ = _reader(logs, clock, Metrics())
    reader.page(10, 20, None, threading.Event())
    assert logs.calls[-1][1] == {"logGroupName": GROUP, "startTime": 10, "endTime": 20, "logStreamNamePrefix": PREFIX}


def test_every_call_takes_a_token_from_the_shared_limiter() -> None:
    clock = FakeClock()
    logs = FakeLogs(clock)
    logs.script = [client_error("ThrottlingException")] * 3
    limiter = RateLimiter(2.0, clock=clock)
    reader = LogsReader(logs, GROUP, PREFIX, limiter=limiter, metrics=Metrics(), clock=clock,
                        backoff=Backoff(initial_seconds=0.001, max_seconds=0.001, jitter="none"))
    t0 = clock.now
    reader.page(0, 1, None, threading.Event())
    assert limiter.acquired == 4
    # Four calls at 2/s: at least 1.5 s apart from first to last, whatever the backoff says.
    assert logs.calls[-1][0] - logs.calls[0][0] >= 1.5 - 1e-6
    assert clock.now - t0 >= 1.5


def test_build_logs_client_leaves_retries_to_us_and_bounds_timeouts() -> None:
    client = build_logs_client("us-west-2", 7.0)
    config = client.meta.config
    assert config.retries["total_max_attempts"] == 1
    assert config.connect_timeout == 7.0 and config.read_timeout == 7.0
    assert client.meta.region_name == "us-west-2"


# --- against moto in server mode ----------------------------------------------------------------


def _read_all(reader: LogsReader, start: int, end: int) -> tuple[list[Any], int]:
    events, token, pages = [], None, 0
    stop = threading.Event()
    while True:
        page = reader.page(start, end, token, stop)
        assert page is not None
        pages += 1
        events.extend(page.events)
        token = page.next_token
        if token is None:
            return events, pages
        assert pages < 100


def test_moto_thousands_of_events_in_one_millisecond_across_pages(moto) -> None:  # noqa: F811
    logs = moto.client("logs")
    create_log_group(logs, GROUP, [f"{PREFIX}-a", f"{PREFIX}-b"])
    ts = now_ms() - 60_000
    put_events(logs, GROUP, f"{PREFIX}-a", [(ts, f"a{i}") for i in range(7_000)])
    put_events(logs, GROUP, f"{PREFIX}-b", [(ts, f"b{i}") for i in range(7_000)])
    reader = LogsReader(build_client(moto), GROUP, PREFIX, limiter=RateLimiter(100, clock=SYSTEM),
                        metrics=Metrics(), clock=SYSTEM)
    events, pages = _read_all(reader, ts, ts)  # startTime == endTime: both inclusive
    assert pages >= 2  # a page holds at most 10,000 events
    assert len(events) == 14_000
    assert len({(e.stream, e.event_id) for e in events}) == 14_000
    assert {e.message for e in events} == {f"a{i}" for i in range(7_000)} | {f"b{i}" for i in range(7_000)}


def test_moto_bounds_are_inclusive_and_prefix_is_applied(moto) -> None:  # noqa: F811
    logs = moto.client("logs")
    create_log_group(logs, GROUP, [f"{PREFIX}-a", "kube-scheduler-x"])
    ts = now_ms() - 60_000
    put_events(logs, GROUP, f"{PREFIX}-a", [(ts - 1, "before"), (ts, "start"), (ts + 5, "end"), (ts + 6, "after")])
    put_events(logs, GROUP, "kube-scheduler-x", [(ts + 1, "other stream")])
    reader = LogsReader(build_client(moto), GROUP, PREFIX, limiter=RateLimiter(100, clock=SYSTEM),
                        metrics=Metrics(), clock=SYSTEM)
    events, _ = _read_all(reader, ts, ts + 5)
    # moto 5.2 ignores logStreamNamePrefix in FilterLogEvents (AWS applies it); the reader filters too.
    assert sorted(e.message for e in events) == ["end", "start"]


def test_moto_missing_log_group_is_not_ready_until_created(moto) -> None:  # noqa: F811
    logs = moto.client("logs")
    readiness: list[bool] = []
    stop = threading.Event()
    created = threading.Event()

    def create_while_waiting(seconds: float, s: threading.Event) -> bool:
        if not created.is_set():
            create_log_group(logs, GROUP, [f"{PREFIX}-a"])
            created.set()
        return s.is_set()

    reader = LogsReader(build_client(moto), GROUP, PREFIX, limiter=RateLimiter(100, clock=SYSTEM), metrics=Metrics(),
                        clock=RecordingClock(FakeClock(), create_while_waiting), on_ready=readiness.append)
    page = reader.page(0, now_ms(), None, stop)
    assert page is not None and page.events == []
    assert readiness == [False, True]


def test_moto_throttling_through_a_proxy_reaches_our_backoff(moto) -> None:  # noqa: F811
    logs = moto.client("logs")
    create_log_group(logs, GROUP, [f"{PREFIX}-a"])
    ts = now_ms() - 1000
    put_events(logs, GROUP, f"{PREFIX}-a", [(ts, "x")])
    metrics = Metrics()
    with AwsFaultProxy(moto.endpoint_url) as proxy:
        proxy.throttle(count=3, operations={"FilterLogEvents"})
        client = build_client(moto, proxy.endpoint_url)
        reader = LogsReader(client, GROUP, PREFIX, limiter=RateLimiter(100, clock=SYSTEM), metrics=metrics,
                            clock=SYSTEM, backoff=Backoff(initial_seconds=0.01, max_seconds=0.02))
        events, _ = _read_all(reader, ts, ts)
        # botocore did not retry on its own: every throttle reached the reader and was counted.
        assert proxy.count("FilterLogEvents") == 4
    assert [e.message for e in events] == ["x"]
    assert _calls(metrics, "throttled") == 3 and _calls(metrics, "ok") == 1


def build_client(moto_server_: Any, endpoint_url: str | None = None) -> Any:
    """The forwarder's own client configuration, pointed at moto (or a proxy in front of it)."""
    import os

    os.environ["AWS_ENDPOINT_URL"] = endpoint_url or moto_server_.endpoint_url
    try:
        return build_logs_client("us-west-2", 5.0)
    finally:
        del os.environ["AWS_ENDPOINT_URL"]


def test_rate_limiter_wait_is_interrupted_by_stop() -> None:
    clock = FakeClock()
    stop = threading.Event()

    def sigterm(seconds: float, s: threading.Event) -> bool:
        s.set()  # SIGTERM while waiting for a token
        return True

    limiter = RateLimiter(0.5, clock=RecordingClock(clock, sigterm))
    assert limiter.acquire(stop) is True  # the first token is there at once
    assert limiter.acquire(stop) is False
    assert limiter.acquired == 1
    with pytest.raises(ValueError, match="rate_per_second"):
        RateLimiter(0, clock=clock)


def test_a_record_without_a_usable_id_or_timestamp_is_skipped_alone_and_counted() -> None:
    class OddPage:
        def filter_log_events(self, **params: Any) -> dict[str, Any]:
            good = {"logStreamName": f"{PREFIX}-a", "eventId": "1", "timestamp": 5, "ingestionTime": 6, "message": "m"}
            return {"events": [good, {"logStreamName": f"{PREFIX}-a", "eventId": "2", "message": "no timestamp"},
                               {**good, "eventId": "3", "timestamp": "soon"}, {**good, "eventId": "4"}]}

    metrics = Metrics()
    reader, _ = _reader(OddPage(), FakeClock(), metrics)
    page = reader.page(0, 10, None, threading.Event())
    assert page is not None and [e.event_id for e in page.events] == ["1", "4"]
    assert metrics.registry.get_sample_value("forwarder_events_skipped_total", {"reason": "malformed_record"}) == 2
