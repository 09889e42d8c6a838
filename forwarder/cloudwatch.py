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

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from .metrics import Metrics
from .model import LogEvent
from .ratelimit import RateLimiter
from .retry import Backoff

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

Wait = Callable[[float, threading.Event], bool]


class TokenExpiredError(Exception):
    """CloudWatch refused the nextToken: read the range again from its start."""


@dataclass(frozen=True, slots=True)
class Page:
    events: list[LogEvent]
    next_token: str | None


def build_logs_client(region: str | None, timeout_seconds: float) -> Any:
    """A boto3 ``logs`` client from the standard chain (env, web identity, profile, IMDS), with
    botocore's retries off and bounded connect/read timeouts."""
    config = Config(
        retries={"mode": "standard", "total_max_attempts": 1},
        connect_timeout=timeout_seconds,
        read_timeout=timeout_seconds,
        user_agent_extra="falco-eks-forwarder",
        max_pool_connections=2,
    )
    return boto3.session.Session().client("logs", region_name=region, config=config)


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
        backoff: Backoff = DEFAULT_BACKOFF,
        slow_backoff: Backoff = SLOW_BACKOFF,
        rng: random.Random | None = None,
        wait: Wait | None = None,
        on_ready: Callable[[bool], None] | None = None,
    ) -> None:
        self.client = client
        self.log_group = log_group
        self.stream_prefix = stream_prefix
        self.limiter = limiter
        self.metrics = metrics
        self.backoff = backoff
        self.slow_backoff = slow_backoff
        self._rng = rng if rng is not None else random.Random()  # noqa: S311 (jitter, not security)
        self._wait: Wait = wait or (lambda seconds, stop: stop.wait(seconds))
        self._on_ready = on_ready
        self._failures = 0
        self.calls = 0

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
                if not self._pause(self.backoff, "CloudWatch Logs unreachable or no credentials; retrying",
                                   {"error": f"{type(exc).__name__}: {exc}"}, stop):
                    return None
                continue
            self._count("ok")
            self._failures = 0
            self._ready(True)
            return Page(self._events(response), response.get("nextToken") or None)
        return None

    def _retry_after_client_error(self, code: str, status: int, exc: ClientError, stop: threading.Event) -> bool:
        fields = {"code": code, "status": status, "error": str(exc)}
        if code in THROTTLE_CODES or status == 429:
            self._count("throttled")
            return self._pause(self.backoff, "CloudWatch Logs throttled the request; backing off", fields, stop,
                               level=logging.INFO)
        self._count("error")
        if code in NOT_READY_CODES:
            self._ready(False)
            message = (
                f"log group {self.log_group} does not exist (yet); retrying"
                if code == "ResourceNotFoundException"
                else "access to CloudWatch Logs denied: the role needs logs:FilterLogEvents on the log group; retrying"
            )
            return self._pause(self.slow_backoff, message, fields, stop, level=logging.ERROR)
        if code in SERVER_CODES or code in CREDENTIAL_CODES or status >= 500:
            return self._pause(self.backoff, "CloudWatch Logs call failed; retrying", fields, stop)
        # Anything else is unexpected (a bug or a new error code): keep trying, slowly and loudly.
        return self._pause(self.slow_backoff, "unexpected CloudWatch Logs error; retrying", fields, stop,
                           level=logging.ERROR)

    def _pause(self, backoff: Backoff, message: str, fields: dict[str, Any], stop: threading.Event, *,
               level: int = logging.WARNING) -> bool:
        delay = backoff.delay(self._failures, self._rng)
        # Log the first failure of a series and then every 10th, not every retry.
        if self._failures % 10 == 0:
            log.log(level, message, extra={**fields, "attempt": self._failures + 1, "retry_in_s": round(delay, 3)})
        self._failures += 1
        return not self._wait(delay, stop)

    def _events(self, response: dict[str, Any]) -> list[LogEvent]:
        prefix = self.stream_prefix
        events = []
        for raw in response.get("events", ()):
            stream = str(raw.get("logStreamName", ""))
            # AWS applies logStreamNamePrefix itself; moto (5.x) ignores it, so check here too.
            if prefix and not stream.startswith(prefix):
                continue
            events.append(
                LogEvent(
                    event_id=str(raw.get("eventId", "")),
                    stream=stream,
                    timestamp_ms=int(raw.get("timestamp", 0)),
                    ingestion_ms=int(raw.get("ingestionTime", 0)),
                    message=str(raw.get("message", "")),
                )
            )
        return events
