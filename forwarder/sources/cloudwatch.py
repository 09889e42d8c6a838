"""Reads pages of log events from CloudWatch Logs with FilterLogEvents, retrying until it works.

One FilterLogEvents call per page covers every stream whose name starts with the prefix (new
and rotated ones included) without listing streams. Every attempt takes a token from the
shared RateLimiter and is counted in ``aws_api_calls_total{operation,outcome}``. boto3's own
retries are switched off (``total_max_attempts=1``) so throttles reach this module's backoff, the
limiter and the metrics instead of hiding inside botocore.

Error handling (never fatal, every wait interruptible by ``stop``):
- throttling (ThrottlingException, LimitExceededException, ...), 5xx, ServiceUnavailable,
  connection errors and timeouts, missing or expired credentials: jittered exponential
  backoff (``retry.Backoff``), reset after a success;
- ResourceNotFoundException (the log group does not exist yet: EKS creates it when logging
  starts) and AccessDenied: logged, readiness off, retried slowly;
- an expired or invalid ``nextToken`` (tokens live 24 h; a long Falco outage can outlast one):
  ``TokenExpiredError`` is raised so the caller reads the range again from its start (dedup makes
  that safe).
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..clock import Clock
from ..metrics import Metrics
from ..model import LogEvent
from ..retry import Backoff, Retrier
from .aws_client import build_client
from .ratelimit import RateLimiter

log = logging.getLogger("forwarder.cloudwatch")

OPERATION = "FilterLogEvents"

THROTTLE_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "LimitExceededException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestThrottled",
        "RequestThrottledException",
        "SlowDown",
    }
)
CREDENTIAL_CODES = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "IncompleteSignature",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
    }
)
NOT_READY_CODES = frozenset({"ResourceNotFoundException", "AccessDeniedException", "AccessDenied"})
SERVER_CODES = frozenset(
    {"ServiceUnavailableException", "ServiceUnavailable", "InternalFailure", "InternalServerError",
     "OperationAbortedException"}
)

# Throttling is account-wide: back off for real, but a quiet spell should not cost more than ~10 s of lag.
DEFAULT_BACKOFF = Backoff(initial_seconds=0.2, max_seconds=10.0)
SLOW_BACKOFF = Backoff(initial_seconds=5.0, max_seconds=60.0)

SKIP_MALFORMED_RECORD = "malformed_record"


class TokenExpiredError(Exception):
    """CloudWatch refused the nextToken: read the range again from its start."""


@dataclass(frozen=True, slots=True)
class Page:
    events: list[LogEvent]
    next_token: str | None
    received_ms: int = 0
    """When the answer arrived, on the forwarder's clock (the skew estimate compares it with ingestion times)."""


def build_logs_client(region: str | None, timeout_seconds: float) -> Any:
    """A ``logs`` client (aws_client.build_client)."""
    return build_client("logs", region, timeout_seconds, max_pool_connections=2)


def _error_code(exc: ClientError) -> tuple[str, int]:
    error = exc.response.get("Error", {}) if isinstance(exc.response, dict) else {}
    meta = exc.response.get("ResponseMetadata", {}) if isinstance(exc.response, dict) else {}
    return str(error.get("Code", "")), int(meta.get("HTTPStatusCode", 0) or 0)


class LogsReader:
    """Fetches one FilterLogEvents page at a time for a log group and stream prefix."""

    def __init__(
        self,
        client: Any,
        log_group: str,
        stream_prefix: str,
        *,
        limiter: RateLimiter,
        metrics: Metrics,
        clock: Clock,
        backoff: Backoff = DEFAULT_BACKOFF,
        slow_backoff: Backoff = SLOW_BACKOFF,
        rng: random.Random | None = None,
        on_ready: Callable[[bool], None] | None = None,
    ) -> None:
        self.client = client
        self.log_group = log_group
        self.stream_prefix = stream_prefix
        self.limiter = limiter
        self.metrics = metrics
        self.clock = clock
        self.slow_backoff = slow_backoff
        self.retrier = Retrier(backoff, clock, log, rng=rng)
        self._on_ready = on_ready
        self.calls = 0
        self.malformed = 0
        """Records without a usable timestamp or id (never seen from AWS): counted and skipped."""

    def _count(self, outcome: str) -> None:
        self.calls += 1
        self.metrics.aws_api_calls_total.labels(operation=OPERATION, outcome=outcome).inc()

    def _ready(self, ready: bool) -> None:
        if self._on_ready is not None:
            self._on_ready(ready)

    def page(self, start_ms: int, end_ms: int, next_token: str | None, stop: threading.Event) -> Page | None:
        """One page of ``[start_ms, end_ms]`` (both inclusive), retried until it succeeds.

        None when ``stop`` was set first. Raises TokenExpiredError when CloudWatch refuses ``next_token``.
        """
        params: dict[str, Any] = {"logGroupName": self.log_group, "startTime": start_ms, "endTime": end_ms}
        if self.stream_prefix:
            params["logStreamNamePrefix"] = self.stream_prefix
        if next_token is not None:
            params["nextToken"] = next_token
        while not stop.is_set():
            if not self.limiter.acquire(stop):
                return None
            try:
                response = self.client.filter_log_events(**params)
            except ClientError as exc:
                code, status = _error_code(exc)
                if code == "InvalidParameterException" and next_token is not None:
                    self._count("error")
                    raise TokenExpiredError(str(exc)) from exc
                if not self._retry_after_client_error(code, status, exc, stop):
                    return None
                continue
            except BotoCoreError as exc:
                # Connection errors, timeouts, missing or unrefreshable credentials.
                self._count("error")
                if not self.retrier.failed(stop, "CloudWatch Logs unreachable or no credentials; retrying",
                                           {"error": f"{type(exc).__name__}: {exc}"}):
                    return None
                continue
            self._count("ok")
            self.limiter.succeeded()
            self.retrier.succeeded()
            self._ready(True)
            received_ms = int(self.clock.time() * 1000)
            return Page(self._events(response), response.get("nextToken") or None, received_ms)
        return None

    def _retry_after_client_error(self, code: str, status: int, exc: ClientError, stop: threading.Event) -> bool:
        fields = {"code": code, "status": status, "error": str(exc)}
        if code in THROTTLE_CODES or status == 429:
            self._count("throttled")
            self.limiter.throttled()
            return self.retrier.failed(stop, "CloudWatch Logs throttled the request; backing off", fields,
                                       level=logging.INFO)
        self._count("error")
        if code in NOT_READY_CODES:
            self._ready(False)
            message = (
                f"log group {self.log_group} does not exist (yet); retrying"
                if code == "ResourceNotFoundException"
                else "access to CloudWatch Logs denied: the role needs logs:FilterLogEvents on the log group; retrying"
            )
            return self.retrier.failed(stop, message, fields, policy=self.slow_backoff, level=logging.ERROR)
        if code in SERVER_CODES or code in CREDENTIAL_CODES or status >= 500:
            return self.retrier.failed(stop, "CloudWatch Logs call failed; retrying", fields)
        # Anything else is unexpected (a bug or a new error code): keep trying, slowly and loudly.
        return self.retrier.failed(stop, "unexpected CloudWatch Logs error; retrying", fields,
                                   policy=self.slow_backoff, level=logging.ERROR)

    def _events(self, response: dict[str, Any]) -> list[LogEvent]:
        prefix = self.stream_prefix
        events = []
        for raw in response.get("events", ()):
            try:
                stream = str(raw.get("logStreamName", ""))
                # AWS applies logStreamNamePrefix itself; moto (5.x) ignores it, so check here too.
                if prefix and not stream.startswith(prefix):
                    continue
                event = LogEvent(
                    event_id=str(raw["eventId"]),
                    stream=stream,
                    timestamp_ms=int(raw["timestamp"]),
                    ingestion_ms=int(raw.get("ingestionTime") or 0),
                    message=str(raw.get("message", "")),
                )
            except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
                # One odd record must not cost the page: count it, say so, go on.
                self.malformed += 1
                self.metrics.events_skipped_total.labels(reason=SKIP_MALFORMED_RECORD).inc()
                log.warning("skipping a CloudWatch record without a usable id or timestamp",
                            extra={"error": f"{type(exc).__name__}: {exc}"})
                continue
            events.append(event)
        return events
