"""Prometheus metrics, liveness/readiness, and the small HTTP server that exposes them.

All metrics live on one injectable registry (a fresh one per Metrics object by default), so
tests read them with ``registry.get_sample_value`` and several instances never collide.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

log = logging.getLogger("forwarder.metrics")

# A pipeline that has not beaten for this long (or 5 poll intervals, if longer) is stuck.
MIN_LIVENESS_WINDOW_SECONDS = 30.0


class Metrics:
    """Every metric the forwarder exports. Counters end in ``_total``; drops are counted by reason."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events_read_total = Counter(
            "forwarder_events_read_total", "Log events read from CloudWatch Logs", registry=r
        )
        self.events_delivered_total = Counter(
            "forwarder_events_delivered_total", "Audit events Falco acknowledged", registry=r
        )
        self.events_skipped_total = Counter(
            "forwarder_events_skipped_total",
            "Events not delivered, by reason (validation failures, or 'rejected' by Falco with a 4xx)",
            ["reason"],
            registry=r,
        )
        self.batches_total = Counter(
            "forwarder_batches_total",
            "Requests to Falco by outcome: acknowledged (2xx), rejected (4xx, then split), retried",
            ["outcome"],
            registry=r,
        )
        self.delivery_retries_total = Counter(
            "forwarder_delivery_retries_total", "Retries of requests to Falco after errors, timeouts, 429 or 5xx",
            registry=r,
        )
        self.aws_api_calls_total = Counter(
            "forwarder_aws_api_calls_total",
            "CloudWatch Logs API calls by operation and outcome (ok, throttled, error)",
            ["operation", "outcome"],
            registry=r,
        )
        self.delivery_lag_seconds = Gauge(
            "forwarder_delivery_lag_seconds",
            "Seconds between now and the timestamp of the newest event Falco acknowledged",
            registry=r,
        )
        self.last_delivery_timestamp_seconds = Gauge(
            "forwarder_last_delivery_timestamp_seconds", "Unix time of the last request Falco acknowledged",
            registry=r,
        )
        self.checkpoint_saves_total = Counter(
            "forwarder_checkpoint_saves_total", "Checkpoint saves by outcome", ["outcome"], registry=r
        )
        self.inflight_bytes = Gauge(
            "forwarder_inflight_bytes", "Bytes of events read but not yet acknowledged by Falco", registry=r
        )
        self.streams_seen = Gauge("forwarder_streams_seen", "Log streams currently followed", registry=r)


class Health:
    """Liveness from the pipeline's heartbeat; readiness set by the pipeline."""

    def __init__(self, poll_interval_seconds: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.window_seconds = max(MIN_LIVENESS_WINDOW_SECONDS, 5 * poll_interval_seconds)
        # Alive from the start, so a slow first AWS call does not get the pod killed.
        self._last_beat = clock()
        self._ready = False
        self._lock = threading.Lock()

    def beat(self) -> None:
        """Called by the pipeline on every loop."""
        now = self._clock()
        with self._lock:
            self._last_beat = now

    def set_ready(self, ready: bool) -> None:
        with self._lock:
            self._ready = ready

    def alive(self, now: float | None = None) -> bool:
        """True while the last beat is within the window; ``now`` is on the same clock as ``clock``."""
        current = self._clock() if now is None else now
        with self._lock:
            return current - self._last_beat <= self.window_seconds

    def ready(self) -> bool:
        with self._lock:
            return self._ready


class MetricsServer:
    """A running /metrics, /healthz, /readyz server; ``shutdown()`` stops it and frees the port."""

    def __init__(self, httpd: ThreadingHTTPServer, thread: threading.Thread) -> None:
        self._httpd = httpd
        self._thread = thread

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def host(self) -> str:
        return str(self._httpd.server_address[0])

    def shutdown(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def _handler(metrics: Metrics, health: Health) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "forwarder"

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                ok = health.alive()
                self._send(200 if ok else 503, b"ok\n" if ok else b"pipeline stalled\n")
            elif path == "/readyz":
                ok = health.ready()
                self._send(200 if ok else 503, b"ready\n" if ok else b"not ready\n")
            else:
                self._send(404, b"not found\n")

        def _send(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            # Probes hit these endpoints every few seconds: keep them out of the logs.
            pass

    return Handler


def serve(port: int, metrics: Metrics, health: Health, host: str = "0.0.0.0") -> MetricsServer:  # noqa: S104
    """Serve /metrics, /healthz and /readyz on ``host:port`` (port 0 picks a free port) in a daemon thread."""
    httpd = ThreadingHTTPServer((host, port), _handler(metrics, health))
    httpd.daemon_threads = True
    # A short poll interval keeps shutdown() quick, which matters inside the SIGTERM budget.
    thread = threading.Thread(target=httpd.serve_forever, args=(0.1,), name="metrics-server", daemon=True)
    thread.start()
    log.info("metrics server listening", extra={"host": host, "port": httpd.server_address[1]})
    return MetricsServer(httpd, thread)
