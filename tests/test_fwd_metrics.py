"""forwarder.metrics: metric names on an injected registry, Health, and the HTTP endpoints."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from forwarder.metrics import Health, Metrics, MetricsServer, liveness_window_seconds, serve


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
    metrics.checkpoint_saves_total.labels(part="positions", outcome="ok").inc()
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
    assert value("forwarder_checkpoint_saves_total", {"part": "positions", "outcome": "ok"}) == 1
    assert value("forwarder_inflight_bytes") == 2048
    assert value("forwarder_streams_seen") == 3


def test_two_instances_do_not_collide() -> None:
    first, second = Metrics(), Metrics()
    first.events_read_total.inc()
    assert second.registry.get_sample_value("forwarder_events_read_total") == 0


def _watched(health: Health, name: str) -> threading.Thread:
    """A thread that registers under ``name`` and then does nothing (a hang), until the test ends."""
    registered, done = threading.Event(), threading.Event()

    def body() -> None:
        health.watch(name)
        registered.set()
        done.wait(10)

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    registered.wait(5)
    thread.done = done  # type: ignore[attr-defined]
    return thread


def test_liveness_fails_when_any_watched_thread_stops_beating() -> None:
    clock = FakeClock()
    health = Health(clock=clock)
    assert health.window_seconds == 60.0
    assert health.alive()  # nothing watched yet (starting up)
    hung = _watched(health, "reader")
    health.watch("delivery")  # this thread keeps beating
    clock.now += 59
    health.beat()
    assert health.alive()
    clock.now += 2
    health.beat()
    assert health.stalled() == ["reader"]
    assert not health.alive()
    hung.done.set()  # type: ignore[attr-defined]
    health.unwatch()
    assert health.stalled() == ["reader"]  # a thread that ends without unwatching stays stalled


def test_liveness_window_covers_the_longest_request_and_stays_under_two_minutes() -> None:
    assert liveness_window_seconds(10) == 60.0
    assert liveness_window_seconds(50) == 110.0  # --request-timeout's maximum


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


def test_healthz_names_the_stalled_thread(served: tuple[MetricsServer, Metrics, Health, FakeClock]) -> None:
    server, _, health, clock = served
    url = f"http://127.0.0.1:{server.port}/healthz"
    health.watch("delivery")
    assert get(url)[0] == 200
    clock.now += 120
    status, _, body = get(url)
    assert (status, body) == (503, "stalled: delivery\n")
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
