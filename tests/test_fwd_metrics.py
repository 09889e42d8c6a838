"""forwarder.metrics: metric names on an injected registry, Health, and the HTTP endpoints."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from forwarder.metrics import Health, Metrics, MetricsServer, serve


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (loopback test URL)
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def test_metrics_live_on_the_injected_registry() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.events_read_total.inc(5)
    metrics.events_delivered_total.inc(4)
    metrics.events_skipped_total.labels(reason="truncated").inc()
    metrics.batches_total.labels(outcome="acknowledged").inc(2)
    metrics.delivery_retries_total.inc(3)
    metrics.aws_api_calls_total.labels(operation="FilterLogEvents", outcome="throttled").inc()
    metrics.delivery_lag_seconds.set(1.5)
    metrics.last_delivery_timestamp_seconds.set(1_714_564_800)
    metrics.checkpoint_saves_total.labels(outcome="ok").inc()
    metrics.inflight_bytes.set(2048)
    metrics.streams_seen.set(3)
    value = registry.get_sample_value
    assert value("forwarder_events_read_total") == 5
    assert value("forwarder_events_delivered_total") == 4
    assert value("forwarder_events_skipped_total", {"reason": "truncated"}) == 1
    assert value("forwarder_batches_total", {"outcome": "acknowledged"}) == 2
    assert value("forwarder_delivery_retries_total") == 3
    assert value("forwarder_aws_api_calls_total", {"operation": "FilterLogEvents", "outcome": "throttled"}) == 1
    assert value("forwarder_delivery_lag_seconds") == 1.5
    assert value("forwarder_last_delivery_timestamp_seconds") == 1_714_564_800
    assert value("forwarder_checkpoint_saves_total", {"outcome": "ok"}) == 1
    assert value("forwarder_inflight_bytes") == 2048
    assert value("forwarder_streams_seen") == 3


def test_two_instances_do_not_collide() -> None:
    first, second = Metrics(), Metrics()
    first.events_read_total.inc()
    assert second.registry.get_sample_value("forwarder_events_read_total") == 0


def test_health_is_alive_within_the_window_after_a_beat() -> None:
    clock = FakeClock()
    health = Health(poll_interval_seconds=2.0, clock=clock)
    assert health.window_seconds == 30.0
    assert health.alive()  # alive from the start
    clock.now += 31
    assert not health.alive()
    health.beat()
    assert health.alive()
    assert health.alive(now=clock.now + 30)
    assert not health.alive(now=clock.now + 30.5)


def test_liveness_window_grows_with_long_poll_intervals() -> None:
    assert Health(poll_interval_seconds=20.0).window_seconds == 100.0


def test_readiness_is_set_by_the_pipeline() -> None:
    health = Health()
    assert not health.ready()
    health.set_ready(True)
    assert health.ready()
    health.set_ready(False)
    assert not health.ready()


@pytest.fixture
def served() -> Iterator[tuple[MetricsServer, Metrics, Health, FakeClock]]:
    clock = FakeClock()
    metrics, health = Metrics(), Health(clock=clock)
    server = serve(0, metrics, health, host="127.0.0.1")
    try:
        yield server, metrics, health, clock
    finally:
        server.shutdown()


def test_metrics_endpoint_serves_prometheus_text(served: tuple[MetricsServer, Metrics, Health, FakeClock]) -> None:
    server, metrics, _, _ = served
    metrics.events_skipped_total.labels(reason="not_json").inc(2)
    status, content_type, body = get(f"http://127.0.0.1:{server.port}/metrics")
    assert status == 200
    assert content_type.startswith("text/plain")
    assert 'forwarder_events_skipped_total{reason="not_json"} 2.0' in body
    assert "# TYPE forwarder_delivery_lag_seconds gauge" in body


def test_healthz_follows_the_heartbeat(served: tuple[MetricsServer, Metrics, Health, FakeClock]) -> None:
    server, _, health, clock = served
    url = f"http://127.0.0.1:{server.port}/healthz"
    assert get(url)[0] == 200
    clock.now += 120
    assert get(url)[0] == 503
    health.beat()
    assert get(url)[0] == 200


def test_readyz_follows_readiness(served: tuple[MetricsServer, Metrics, Health, FakeClock]) -> None:
    server, _, health, _ = served
    url = f"http://127.0.0.1:{server.port}/readyz"
    assert get(url)[0] == 503
    health.set_ready(True)
    assert get(url)[0] == 200


def test_unknown_path_is_404(served: tuple[MetricsServer, Metrics, Health, FakeClock]) -> None:
    server, *_ = served
    assert get(f"http://127.0.0.1:{server.port}/nope")[0] == 404


def test_shutdown_frees_the_port() -> None:
    server = serve(0, Metrics(), Health(), host="127.0.0.1")
    port = server.port
    server.shutdown()
    again = serve(port, Metrics(), Health(), host="127.0.0.1")
    try:
        assert again.port == port
    finally:
        again.shutdown()
