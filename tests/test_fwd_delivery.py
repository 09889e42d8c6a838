"""forwarder.delivery.sender.FalcoClient against local webhooks: retries, Retry-After, timeouts,
refused connections, isolation of refused events, stop, keep-alive. Waits are faked: the
injected sleep records the delays and drives the scenario instead of waiting."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from support.falco_receiver import FalcoReceiver
from support.loopback_http import LoopbackServer, QuietHandler

from forwarder.delivery.batching import Batch, Batcher
from forwarder.delivery.sender import FalcoClient, parse_retry_after
from forwarder.metrics import Metrics
from forwarder.retry import Backoff


def event_body(audit_id: str, pad: int = 200) -> bytes:
    return json.dumps(
        {
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "auditID": audit_id,
            "stage": "ResponseComplete",
            "verb": "get",
            "stageTimestamp": "2024-05-01T12:00:00.123456Z",
            "pad": "p" * pad,
        },
        separators=(",", ":"),
    ).encode()


def make_batch(ids: list[str], pad: int = 200) -> Batch:
    return Batch.of(ids, [event_body(i, pad) for i in ids])


class FakeSleep:
    """A clock whose waits are recorded and return at once, running ``on_call(n)`` (n = 1, 2, ...) instead."""

    def __init__(self, on_call: Callable[[int], None] | None = None) -> None:
        self.delays: list[float] = []
        self.on_call = on_call

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        self.delays.append(seconds)
        if self.on_call is not None:
            self.on_call(len(self.delays))
        return stop.is_set()


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels or None)
    return 0.0 if value is None else value


@pytest.fixture
def receiver() -> Iterator[FalcoReceiver]:
    with FalcoReceiver() as r:
        yield r


def client_for(url: str, sleep: FakeSleep, **kwargs: object) -> FalcoClient:
    return FalcoClient(url, Metrics(), rng=random.Random(3), clock=sleep, **kwargs)  # type: ignore[arg-type]


def test_delivers_a_batch_as_one_event_list(receiver: FalcoReceiver) -> None:
    ids = [f"ok-{i}" for i in range(50)]
    client = client_for(receiver.url, FakeSleep())
    outcome = client.deliver(make_batch(ids), threading.Event())
    assert outcome.completed
    assert outcome.acknowledged == ids
    assert outcome.rejected == []
    assert receiver.accepted_ids == ids
    assert receiver.violations == []
    assert len(receiver.requests) == 1
    assert sample(client.metrics, "forwarder_events_delivered_total") == 50
    assert sample(client.metrics, "forwarder_batches_total", outcome="acknowledged") == 1
    assert sample(client.metrics, "forwarder_last_delivery_timestamp_seconds") > 0


def test_retries_5xx_until_falco_recovers(receiver: FalcoReceiver) -> None:
    receiver.fail(500, count=3)
    sleep = FakeSleep()
    client = client_for(receiver.url, sleep, backoff=Backoff(initial_seconds=1.0, max_seconds=30.0))
    outcome = client.deliver(make_batch(["a", "b"]), threading.Event())
    assert outcome.completed and outcome.acknowledged == ["a", "b"]
    assert receiver.accepted_ids == ["a", "b"]
    assert len(sleep.delays) == 3
    # Full jitter within the growing exponential bound.
    assert all(0 <= d <= bound for d, bound in zip(sleep.delays, [1.0, 2.0, 4.0], strict=True))
    assert sample(client.metrics, "forwarder_delivery_retries_total") == 3
    assert sample(client.metrics, "forwarder_batches_total", outcome="retried") == 3
    assert sample(client.metrics, "forwarder_events_delivered_total") == 2


def test_backoff_resets_after_a_success(receiver: FalcoReceiver) -> None:
    sleep = FakeSleep()
    backoff = Backoff(initial_seconds=1.0, max_seconds=64.0, jitter="none")
    client = client_for(receiver.url, sleep, backoff=backoff)
    receiver.fail(503, count=4)
    client.deliver(make_batch(["a"]), threading.Event())
    receiver.fail(503, count=1)
    client.deliver(make_batch(["b"]), threading.Event())
    assert sleep.delays == [1.0, 2.0, 4.0, 8.0, 1.0]


def test_429_waits_at_least_retry_after(receiver: FalcoReceiver) -> None:
    receiver.fail(429, count=1, retry_after=7)
    sleep = FakeSleep()
    client = client_for(receiver.url, sleep)
    outcome = client.deliver(make_batch(["a"]), threading.Event())
    assert outcome.acknowledged == ["a"]
    assert len(sleep.delays) == 1
    assert sleep.delays[0] >= 7.0


def test_slow_answer_times_out_and_is_retried(receiver: FalcoReceiver) -> None:
    receiver.slow(5.0)
    sleep = FakeSleep(on_call=lambda n: receiver.clear())
    client = client_for(receiver.url, sleep, timeout_seconds=0.2)
    outcome = client.deliver(make_batch(["slow-1", "slow-2"]), threading.Event())
    assert outcome.completed and outcome.acknowledged == ["slow-1", "slow-2"]
    assert len(sleep.delays) == 1
    assert sample(client.metrics, "forwarder_delivery_retries_total") == 1
    assert receiver.wait_for_ids({"slow-1", "slow-2"}, timeout=10)


def test_connection_refused_then_back(receiver: FalcoReceiver) -> None:
    receiver.down()

    def bring_back(n: int) -> None:
        if n == 3:
            receiver.up()

    sleep = FakeSleep(on_call=bring_back)
    client = client_for(receiver.url, sleep)
    outcome = client.deliver(make_batch(["x", "y"]), threading.Event())
    assert outcome.completed and outcome.acknowledged == ["x", "y"]
    assert len(sleep.delays) == 3
    assert receiver.accepted_ids == ["x", "y"]


def test_keep_alive_connection_cut_by_falco_is_recovered(receiver: FalcoReceiver) -> None:
    client = client_for(receiver.url, FakeSleep())
    client.deliver(make_batch(["first"]), threading.Event())
    receiver.down()
    receiver.up()
    outcome = client.deliver(make_batch(["second"]), threading.Event())
    assert outcome.acknowledged == ["second"]
    assert set(receiver.accepted_ids) == {"first", "second"}


def test_stop_ends_the_retries(receiver: FalcoReceiver) -> None:
    receiver.fail(503)
    stop = threading.Event()
    sleep = FakeSleep(on_call=lambda n: stop.set() if n == 2 else None)
    client = client_for(receiver.url, sleep)
    outcome = client.deliver(make_batch(["a", "b"]), stop)
    assert not outcome.completed
    assert outcome.acknowledged == [] and outcome.rejected == []
    assert len(sleep.delays) == 2


def test_real_wait_is_interrupted_by_stop(receiver: FalcoReceiver) -> None:
    receiver.fail(503)
    stop = threading.Event()
    client = FalcoClient(receiver.url, Metrics(), backoff=Backoff(initial_seconds=3600, max_seconds=3600))
    timer = threading.Timer(0.05, stop.set)
    timer.start()
    try:
        outcome = client.deliver(make_batch(["a"]), stop)
    finally:
        timer.cancel()
    assert not outcome.completed


def test_sends_even_when_stop_is_already_set(receiver: FalcoReceiver) -> None:
    stop = threading.Event()
    stop.set()
    outcome = client_for(receiver.url, FakeSleep()).deliver(make_batch(["last"]), stop)
    assert outcome.completed and outcome.acknowledged == ["last"]


@pytest.mark.parametrize("status", [301, 401, 403, 404, 405])
def test_endpoint_errors_are_retried_not_blamed_on_events(receiver: FalcoReceiver, status: int) -> None:
    receiver.fail(status, count=2)
    sleep = FakeSleep()
    outcome = client_for(receiver.url, sleep).deliver(make_batch(["a", "b", "c"]), threading.Event())
    assert outcome.acknowledged == ["a", "b", "c"] and outcome.rejected == []
    assert len(sleep.delays) == 2


def test_batch_over_falcos_own_limit_is_split_and_only_the_outsized_event_skipped() -> None:
    # Falco configured with a smaller webhookMaxBatchSize than the forwarder: a 400 per request.
    with FalcoReceiver(max_batch_bytes=4_000) as receiver:
        batcher = Batcher(100_000)
        ids = [f"e-{i}" for i in range(40)]
        for i in ids:
            batcher.add(i, event_body(i, pad=5_000 if i == "e-17" else 100))
        batch = batcher.flush()
        assert batch is not None
        client = client_for(receiver.url, FakeSleep())
        outcome = client.deliver(batch, threading.Event())
        assert outcome.completed
        assert outcome.rejected == ["e-17"]
        assert outcome.acknowledged == [i for i in ids if i != "e-17"]
        assert receiver.accepted_ids == outcome.acknowledged
        assert sample(client.metrics, "forwarder_events_skipped_total", reason="rejected") == 1


class PickyWebhook:
    """Answers 422 to any request holding a "poison" event, else 200; records client ports."""

    def __init__(self) -> None:
        self.accepted: list[str] = []
        self.client_ports: list[int] = []
        self.requests = 0
        webhook = self

        class Handler(QuietHandler):
            # Headers and body go out in separate writes: without this, Nagle + delayed ACK add 40 ms each.
            disable_nagle_algorithm = True

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                items = json.loads(body)["items"]
                webhook.requests += 1
                webhook.client_ports.append(self.client_address[1])
                refused = any(item["auditID"].startswith("poison") for item in items)
                if not refused:
                    webhook.accepted.extend(item["auditID"] for item in items)
                answer = b'{"error":"unprocessable event"}' if refused else b""
                self.send_response(422 if refused else 200)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = LoopbackServer(Handler)

    @property
    def url(self) -> str:
        return self.server.url("/k8s-audit")

    def __enter__(self) -> PickyWebhook:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()


def test_4xx_isolates_the_events_at_fault_logs_each_once_and_delivers_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ids = [f"good-{i}" for i in range(64)]
    ids[5] = "poison-a"
    ids[40] = "poison-b"
    with PickyWebhook() as webhook, caplog.at_level(logging.DEBUG, logger="forwarder"):
        client = client_for(webhook.url, FakeSleep())
        outcome = client.deliver(make_batch(ids), threading.Event())
    good = [i for i in ids if not i.startswith("poison")]
    assert outcome.completed
    assert outcome.rejected == ["poison-a", "poison-b"]
    assert outcome.acknowledged == good
    assert webhook.accepted == good
    skipped_logs = [r for r in caplog.records if r.getMessage().startswith("Falco refused an event")]
    assert [r.__dict__["key"] for r in skipped_logs] == ["poison-a", "poison-b"]
    assert all(r.__dict__["status"] == 422 and "unprocessable" in r.__dict__["response"] for r in skipped_logs)
    assert sample(client.metrics, "forwarder_events_skipped_total", reason="rejected") == 2
    assert sample(client.metrics, "forwarder_events_delivered_total") == 62
    # Bisection, not one request per event.
    assert webhook.requests < 30


def test_requests_reuse_one_keep_alive_connection() -> None:
    with PickyWebhook() as webhook:
        client = client_for(webhook.url, FakeSleep())
        for n in range(5):
            client.deliver(make_batch([f"k-{n}"]), threading.Event())
    assert webhook.requests == 5
    assert len(set(webhook.client_ports)) == 1


def test_empty_batch_sends_nothing(receiver: FalcoReceiver) -> None:
    outcome = client_for(receiver.url, FakeSleep()).deliver(Batch(), threading.Event())
    assert outcome.completed and outcome.acknowledged == []
    assert receiver.requests == []


def test_parse_retry_after() -> None:
    assert parse_retry_after(None, 0) is None
    assert parse_retry_after("12", 0) == 12.0
    assert parse_retry_after("soon", 0) is None
    # HTTP date: 2024-05-01T12:00:30Z, 30 s after "now".
    assert parse_retry_after("Wed, 01 May 2024 12:00:30 GMT", 1_714_564_800.0) == pytest.approx(30.0)
    assert parse_retry_after("Wed, 01 May 2024 11:00:00 GMT", 1_714_564_800.0) == 0.0
