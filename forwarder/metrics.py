"""Prometheus metrics, liveness/readiness, and the small HTTP server that exposes them.

All metrics live on one injectable registry (a fresh one per Metrics object by default), so
tests read them with ``registry.get_sample_value`` and several instances never collide.

Besides /metrics, /healthz and /readyz, the server answers GET /deliveries: when each of the last
minutes' requests was acknowledged and the delivered total after it (DeliveryHistory), which `make
pipeline` needs to find the request Falco's metrics snapshot stopped counting at.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

from .histogram import BulkHistogram

log = logging.getLogger("forwarder.metrics")

# A watched thread that has not beaten for this long is hung: /healthz fails, well within 2 minutes.
LIVENESS_WINDOW_SECONDS = 60.0
# Seconds: arrival delays and end-to-end latencies, from a fraction of a second to past the lateness window.
DELAY_BUCKETS = (0.5, 1, 2, 5, 10, 15, 30, 60, 90, 120, 180, 300, 600, 900, 1800)
# The requests /deliveries remembers: Falco writes a snapshot a minute and `make pipeline` reads the last three
# minutes of its log; at most so many (tens of KB of JSON), whichever ends first.
HISTORY_SECONDS = 300.0
HISTORY_MAX_REQUESTS = 4096


class DeliveryHistory:
    """When the forwarder's recent requests were acknowledged, and the delivered total after each.

    Falco's metrics snapshot counts the events it evaluated before the request whose first event came after
    its timer ticked; matching that count against these totals around the snapshot's time tells what it had
    of what was delivered. Thread-safe: deliveries in flight at once each record their own request."""

    def __init__(self, keep_seconds: float = HISTORY_SECONDS, max_requests: int = HISTORY_MAX_REQUESTS,
                 clock: Callable[[], float] = time.time) -> None:
        self.keep_seconds = keep_seconds
        self.max_requests = max_requests
        self._clock = clock
        self._lock = threading.Lock()
        self._requests: deque[tuple[float, int]] = deque()
        """(unix time of the acknowledgement, delivered total after it), oldest first."""
        self._total = 0
        self._since = clock()
        """Every acknowledgement after this time is in _requests (the start, or the last one forgotten)."""
        self._total_at_since = 0

    def record(self, events: int) -> None:
        """One request with `events` events was acknowledged now."""
        now = self._clock()
        with self._lock:
            self._total += events
            self._requests.append((now, self._total))
            self._forget(now)

    def _forget(self, now: float) -> None:
        requests = self._requests
        while requests and (len(requests) > self.max_requests or requests[0][0] < now - self.keep_seconds):
            self._since, self._total_at_since = requests.popleft()

    def snapshot(self) -> dict[str, Any]:
        """What /deliveries serves: `acknowledged` as [time, delivered total after it], complete after `since`
        (when the total was `delivered_at_since`)."""
        now = self._clock()
        with self._lock:
            self._forget(now)
            return {
                "now": round(now, 3),
                "delivered_total": self._total,
                "since": round(self._since, 3),
                "delivered_at_since": self._total_at_since,
                "acknowledged": [[round(at, 3), total] for at, total in self._requests],
            }


class Metrics:
    """Every metric the forwarder exports. Counters end in ``_total``; drops are counted by reason."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events_read_total = Counter(
            "forwarder_events_read_total",
            "Log events read (from CloudWatch Logs, or from Kinesis subscription records)", registry=r
        )
        self.deliveries = DeliveryHistory()
        """The recent acknowledgements (GET /deliveries); see delivered()."""
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
            "AWS API calls (CloudWatch Logs, Kinesis) by operation and outcome (ok, throttled, error; Kinesis also "
            "expired_iterator, not_found, denied: access or the stream's KMS key refused)",
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
            "forwarder_checkpoint_saves_total", "Checkpoint saves by part (positions, hashes) and outcome",
            ["part", "outcome"], registry=r
        )
        self.inflight_bytes = Gauge(
            "forwarder_inflight_bytes", "Bytes of events read but not yet acknowledged by Falco", registry=r
        )
        self.streams_seen = Gauge("forwarder_streams_seen", "Log streams currently followed", registry=r)
        # Observed per event: bulk histograms, one update per page or batch.
        self.arrival_delay_seconds = BulkHistogram(
            "forwarder_arrival_delay_seconds",
            "How late events reached CloudWatch: ingestion time minus the event's timestamp",
            DELAY_BUCKETS, r, floor=0.0,
        )
        self.end_to_end_latency_seconds = BulkHistogram(
            "forwarder_end_to_end_latency_seconds",
            "From an event's timestamp to Falco's acknowledgement of it",
            DELAY_BUCKETS, r, floor=0.0,
        )
        self.events_after_window_total = Counter(
            "forwarder_events_after_window_total",
            "Events CloudWatch ingested more than --max-lateness after their timestamp: read by chance (and "
            "delivered); others like them may have been missed. The one loss signal there is",
            registry=r,
        )
        self.oldest_unacknowledged_seconds = Gauge(
            "forwarder_oldest_unacknowledged_seconds",
            "How long the oldest event handed to delivery has waited for Falco's acknowledgement (0: none waits)",
            registry=r,
        )
        self.read_stage_behind_seconds = Gauge(
            "forwarder_read_stage_behind_seconds",
            "Per re-read stage, how much of the timeline it has left to read (it reads at its age plus its period)",
            ["stage"], registry=r,
        )
        self.read_stage_active = Gauge(
            "forwarder_read_stage_active",
            "1 for a re-read stage in use, 0 for one given up because the request budget cannot pay for it",
            ["stage"], registry=r,
        )
        self.open_buckets = Gauge(
            "forwarder_open_buckets", "Time buckets of remembered events (the timeline still open for reads)",
            registry=r,
        )
        self.remembered_hashes = Gauge(
            "forwarder_remembered_hashes", "Events remembered for deduplication (8 bytes each)", registry=r
        )
        self.checkpoint_bytes = Gauge(
            "forwarder_checkpoint_bytes", "Size of the last saved checkpoint part (positions, hashes)", ["part"],
            registry=r,
        )
        self.checkpoint_written_bytes_total = Counter(
            "forwarder_checkpoint_written_bytes_total", "Bytes written by checkpoint saves, by part", ["part"],
            registry=r,
        )
        self.checkpoint_last_save_age_seconds = Gauge(
            "forwarder_checkpoint_last_save_age_seconds",
            "Seconds since the part was last saved (or found unchanged) successfully", ["part"], registry=r,
        )
        self.checkpoint_hashes_dropped_total = Counter(
            "forwarder_checkpoint_hashes_dropped_total",
            "Remembered hashes left out of a save to fit the store (oldest first): their events may be sent "
            "again after a restart, never lost",
            registry=r,
        )
        self.clock_skew_seconds = Gauge(
            "forwarder_clock_skew_seconds",
            "This machine's clock minus CloudWatch's, estimated from ingestion times (ages are measured on "
            "CloudWatch's clock)",
            registry=r,
        )
        self.request_rate_limit = Gauge(
            "forwarder_request_rate_limit",
            "Current cap on CloudWatch calls per second (lowered on throttling, recovered slowly)",
            registry=r,
        )
        self.kinesis_records_total = Counter(
            "forwarder_kinesis_records_total",
            "Kinesis records read, by kind: data (audit events of the log group), control (CloudWatch's own test "
            "messages), other_log_group, other_stream (e.g. the API server's other logs), malformed",
            ["kind"], registry=r,
        )
        self.kinesis_bytes_read_total = Counter(
            "forwarder_kinesis_bytes_read_total", "Bytes of Kinesis record data read (compressed, as stored)",
            registry=r,
        )
        self.kinesis_shards = Gauge(
            "forwarder_kinesis_shards",
            "Shards of the stream by state: reading, waiting (for a parent to be finished), finished",
            ["state"], registry=r,
        )
        self.kinesis_millis_behind_latest = Gauge(
            "forwarder_kinesis_millis_behind_latest",
            "How far behind the newest record of its shard the last read was, the largest over the shards read",
            registry=r,
        )
        self.active = Gauge(
            "forwarder_active",
            "1 while this replica reads and delivers (the only replica, or the Lease's holder), 0 on standby",
            registry=r,
        )
        self.lease_events_total = Counter(
            "forwarder_lease_events_total",
            "Lease events: acquired, renewed, renew_failed, look_failed (a standby could not read or take "
            "it), lost (stopped reading and delivering), released",
            ["event"], registry=r,
        )
        self.lease_term = Gauge(
            "forwarder_lease_term",
            "The Lease's transitions counter when this replica last acquired it (its checkpoint writes carry it), "
            "-1 before", registry=r,
        )
        self.falco_addresses = Gauge(
            "forwarder_falco_addresses",
            "Addresses the webhook's host resolved to last time (deliveries are spread over them)", registry=r,
        )
        self.batches_by_address_total = Counter(
            "forwarder_batches_by_address_total", "Requests Falco acknowledged, by the address they went to",
            ["address"], registry=r,
        )

    def delivered(self, count: int) -> None:
        """Falco acknowledged a request of ``count`` events: the counter and /deliveries' history, together."""
        self.events_delivered_total.inc(count)
        self.deliveries.record(count)


def liveness_window_seconds(request_timeout_seconds: float) -> float:
    """Long enough for the longest legitimate block (a call's connect plus read timeout), at most 110 s."""
    return max(LIVENESS_WINDOW_SECONDS, 2 * request_timeout_seconds + 10)


class Health:
    """Liveness from one heartbeat per watched thread (reader, delivery, checkpoint); readiness set by the pipeline.

    A thread calls ``watch(name)`` when it starts and ``beat()`` on every loop and while it waits
    (clock.SystemClock beats for it). ``/healthz`` fails as soon as one watched thread has not beaten
    for ``window_seconds``: a hung reader is seen even while delivery goes on, and the reverse.
    """

    def __init__(self, window_seconds: float = LIVENESS_WINDOW_SECONDS, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self._clock = clock
        self.window_seconds = window_seconds
        self._beats: dict[str, float] = {}
        self._names: dict[int, str] = {}
        self._ready = False
        self._lock = threading.Lock()

    def watch(self, name: str) -> None:
        """Watch the calling thread under ``name`` from now on."""
        now = self._clock()
        with self._lock:
            self._names[threading.get_ident()] = name
            self._beats[name] = now

    def unwatch(self) -> None:
        """The calling thread ends normally: stop watching it."""
        with self._lock:
            name = self._names.pop(threading.get_ident(), None)
            if name is not None:
                self._beats.pop(name, None)

    def beat(self) -> None:
        """The calling thread is making progress (ignored for threads nobody watches)."""
        now = self._clock()
        with self._lock:
            name = self._names.get(threading.get_ident())
            if name is not None:
                self._beats[name] = now

    def set_ready(self, ready: bool) -> None:
        with self._lock:
            self._ready = ready

    def stalled(self, now: float | None = None) -> list[str]:
        """Watched threads that have not beaten within the window; ``now`` is on the same clock as ``clock``."""
        current = self._clock() if now is None else now
        with self._lock:
            return sorted(name for name, at in self._beats.items() if current - at > self.window_seconds)

    def alive(self, now: float | None = None) -> bool:
        return not self.stalled(now)

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
            elif path == "/deliveries":
                self._send(200, json.dumps(metrics.deliveries.snapshot()).encode(), "application/json")
            elif path == "/healthz":
                stalled = health.stalled()
                self._send(503 if stalled else 200,
                           f"stalled: {', '.join(stalled)}\n".encode() if stalled else b"ok\n")
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
    """Serve /metrics, /healthz, /readyz and /deliveries on ``host:port`` (port 0: a free one) in a daemon thread."""
    httpd = ThreadingHTTPServer((host, port), _handler(metrics, health))
    httpd.daemon_threads = True
    # A short poll interval keeps shutdown() quick, which matters inside the SIGTERM budget.
    thread = threading.Thread(target=httpd.serve_forever, args=(0.1,), name="metrics-server", daemon=True)
    thread.start()
    log.info("metrics server listening", extra={"host": host, "port": httpd.server_address[1]})
    return MetricsServer(httpd, thread)
