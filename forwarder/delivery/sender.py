"""Delivers batches to Falco's k8saudit webhook, retrying until Falco takes them.

Retry policy as data:
- connection errors, timeouts, 408, 425, 429 and 5xx are transient: retried for as long as
  it takes, with jittered exponential backoff (reset after a success); ``Retry-After`` is
  honoured as a lower bound on the wait;
- 3xx, 401, 403, 404, 405 and 407 mean the URL or the endpoint is wrong, never one event:
  they are retried the same way (and logged as errors) instead of discarding every event;
- any other 4xx is blamed on the content: the batch is split in halves until the event(s)
  at fault are isolated; those are logged once, counted and skipped, the rest delivered.
Every wait ends early when ``stop`` is set.

Several deliveries may be in flight at once (``--falco-connections``), each on its own connection and
each to one of the addresses the webhook's host resolves to, so that batches spread over every Falco
replica behind a headless Service; they are then acknowledged out of order (the ledger copes).
"""

from __future__ import annotations

import email.utils
import logging
import random
import socket
import threading
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

import urllib3

from ..clock import Clock, SystemClock
from ..metrics import Metrics
from ..retry import Backoff, Retrier
from .batching import Batch

log = logging.getLogger("forwarder.delivery")

TRANSIENT_STATUSES: Final = frozenset({408, 425, 429})
ENDPOINT_STATUSES: Final = frozenset({401, 403, 404, 405, 407})
# A Retry-After beyond this is treated as this: a broken header must not park delivery for days.
MAX_RETRY_AFTER_SECONDS: Final = 300.0
SKIP_REASON_REJECTED: Final = "rejected"
USER_AGENT: Final = "falco-eks-forwarder"


@dataclass
class DeliveryOutcome:
    acknowledged: list[Hashable] = field(default_factory=list)
    """Keys of events Falco answered 2xx for."""
    rejected: list[Hashable] = field(default_factory=list)
    """Keys of events isolated behind a permanent 4xx: logged once, counted, skipped."""
    completed: bool = True
    """False only when ``stop`` ended the retries; the unsent keys are then in neither list."""


@dataclass(frozen=True)
class _Attempt:
    status: int | None
    """HTTP status, or None when no answer came (connection error, timeout)."""
    error: str | None = None
    retry_after: float | None = None
    detail: str = ""
    address: str = ""
    """Where it went (ip:port)."""


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - now)


Address = tuple[str, int]
Resolver = Callable[[str, int], list[Address]]
"""(host, port) -> the addresses to connect to (ip, port); raises OSError when the name does not resolve."""

# A headless Service's records change as Falco pods come and go; CoreDNS answers them with a 5 s TTL.
RESOLVE_EVERY_SECONDS: Final = 30.0
# After a connection failure the name is resolved again, at most this often (a dead pod's IP goes away).
RESOLVE_AFTER_FAILURE_SECONDS: Final = 2.0


def resolve(host: str, port: int) -> list[Address]:
    """Every address ``host`` resolves to for TCP, in the resolver's order, each once."""
    seen: list[Address] = []
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = (str(sockaddr[0]), int(sockaddr[1]))
        if address not in seen:
            seen.append(address)
    return seen


class Addresses:
    """The webhook host's addresses, resolved again every RESOLVE_EVERY_SECONDS and soon after a connection
    failure; thread-safe. When the name does not resolve, the last answer stays in use (or the name itself, for
    urllib3 to try)."""

    def __init__(self, host: str, port: int, resolver: Resolver, clock: Clock, metrics: Metrics) -> None:
        self.host = host
        self.port = port
        self._resolver = resolver
        self._clock = clock
        self._metrics = metrics
        self._lock = threading.Lock()
        self._addresses: list[Address] = []
        self._due = float("-inf")
        self.generation = 0
        """Counts the changes of the answer: the connections spread again over a new one."""

    def current(self) -> list[Address]:
        with self._lock:
            if self._clock.monotonic() < self._due and self._addresses:
                return self._addresses
            self._due = self._clock.monotonic() + RESOLVE_EVERY_SECONDS
        try:
            found = self._resolver(self.host, self.port)
        except OSError as exc:
            found = []
            log.warning("cannot resolve Falco's host; using the addresses known before", extra={
                "host": self.host, "error": str(exc)})
        with self._lock:
            if found:
                if found != self._addresses:
                    log.info("Falco's host resolved", extra={"host": self.host,
                                                              "addresses": [f"{a}:{p}" for a, p in found]})
                    self.generation += 1
                self._addresses = found
            elif not self._addresses:
                self._addresses = [(self.host, self.port)]
            self._metrics.falco_addresses.set(len(self._addresses))
            return self._addresses

    def failed(self) -> None:
        """A connection failed: resolve again soon."""
        with self._lock:
            self._due = min(self._due, self._clock.monotonic() + RESOLVE_AFTER_FAILURE_SECONDS)


class FalcoClient:
    """Sends EventList batches to one webhook URL over ``connections`` keep-alive connections, spread over every
    address the URL's host resolves to (a headless Service: one address per Falco pod).

    Each delivery thread uses its own ``sender(i)``: its own connection and retry state. Connection ``i`` goes to
    address ``i`` modulo their number, and moves on to the next address when a connection fails. With one
    connection and a ClusterIP Service this is one keep-alive connection to the Service, as before.
    """

    def __init__(
        self,
        url: str,
        metrics: Metrics,
        timeout_seconds: float = 10.0,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
        clock: Clock | None = None,
        connections: int = 1,
        resolver: Resolver = resolve,
    ) -> None:
        self.url = url
        self.metrics = metrics
        self._clock = clock if clock is not None else SystemClock()
        parts = urlsplit(url)
        self.scheme = parts.scheme
        self.host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        self.target = parts.path + (f"?{parts.query}" if parts.query else "")
        self.addresses = Addresses(self.host, port, resolver, self._clock, metrics)
        self._timeout = urllib3.Timeout(connect=timeout_seconds, read=timeout_seconds)
        self._headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, "Host": parts.netloc}
        self._backoff = backoff if backoff is not None else Backoff()
        self._rng = rng
        self.senders = [Sender(self, i) for i in range(connections)]

    @property
    def retrier(self) -> Retrier:
        """The first connection's retry state (one-connection callers: replay, tests)."""
        return self.senders[0].retrier

    def sender(self, index: int) -> Sender:
        return self.senders[index]

    def close(self) -> None:
        for sender in self.senders:
            sender.close()

    def deliver(self, batch: Batch, stop: threading.Event, allowed: Callable[[], bool] | None = None
                ) -> DeliveryOutcome:
        """Deliver ``batch`` over the first connection (see Sender.deliver)."""
        return self.senders[0].deliver(batch, stop, allowed)

    def _pool(self, address: Address) -> urllib3.HTTPConnectionPool:
        host, port = address
        kwargs: dict[str, Any] = {"maxsize": 1, "retries": False, "timeout": self._timeout, "block": False}
        if self.scheme == "https":
            # Connected to the address, but the certificate must still name the host of the URL.
            return urllib3.HTTPSConnectionPool(host, port, server_hostname=self.host, assert_hostname=self.host,
                                               cert_reqs="CERT_REQUIRED", **kwargs)
        return urllib3.HTTPConnectionPool(host, port, **kwargs)


class Sender:
    """One delivery connection: pinned to one of the webhook's addresses, with its own retry state."""

    def __init__(self, client: FalcoClient, index: int) -> None:
        self.client = client
        self.index = index
        self.metrics = client.metrics
        self._clock = client._clock
        rng = client._rng if client._rng is not None else None
        self.retrier = Retrier(client._backoff, self._clock, log, rng=rng)
        self._shift = 0
        """How many addresses on from its own this connection moved after failures (until the answer changes)."""
        self._generation = -1
        self._address: Address | None = None
        self._pool: urllib3.HTTPConnectionPool | None = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def _connection(self) -> tuple[Address, urllib3.HTTPConnectionPool]:
        addresses = self.client.addresses.current()
        if self._generation != self.client.addresses.generation:
            # A Falco pod came or went: every connection takes its own place again, so that all are used.
            self._generation, self._shift = self.client.addresses.generation, 0
        address = addresses[(self.index + self._shift) % len(addresses)]
        if address != self._address or self._pool is None:
            self.close()
            self._address, self._pool = address, self.client._pool(address)
        return address, self._pool

    def deliver(self, batch: Batch, stop: threading.Event, allowed: Callable[[], bool] | None = None
                ) -> DeliveryOutcome:
        """Send ``batch`` until every event is acknowledged or isolated as rejected.

        Sending is tried even when ``stop`` is already set (so a shutdown can flush to a
        healthy Falco); only the waits before retries are given up when ``stop`` is set.
        ``allowed`` is asked before every request: when it says no (this replica lost its
        Lease) nothing more is sent and the outcome is incomplete.
        """
        outcome = DeliveryOutcome()
        # Pieces still to send, in order; a refused piece is replaced by its two halves.
        todo: deque[Batch] = deque([batch]) if batch.bodies else deque()
        while todo:
            if allowed is not None and not allowed():
                outcome.completed = False
                return outcome
            piece = todo[0]
            attempt = self._post(piece)
            status = attempt.status
            if status is not None and 200 <= status < 300:
                todo.popleft()
                self.retrier.succeeded()
                outcome.acknowledged.extend(piece.keys)
                self.metrics.delivered(len(piece.keys))
                self.metrics.batches_total.labels(outcome="acknowledged").inc()
                self.metrics.batches_by_address_total.labels(address=attempt.address).inc()
                self.metrics.last_delivery_timestamp_seconds.set(self._clock.time())
                continue
            if status is not None and self._blames_content(status):
                todo.popleft()
                self.metrics.batches_total.labels(outcome="rejected").inc()
                if len(piece.keys) > 1:
                    first, second = piece.split()
                    todo.appendleft(second)
                    todo.appendleft(first)
                    log.debug(
                        "Falco refused a batch; splitting it to find the event at fault",
                        extra={"status": status, "events": len(piece.keys)},
                    )
                else:
                    self._reject(piece, attempt, outcome)
                continue
            # Transient, or the endpoint itself is wrong: wait and send the same piece again.
            if not self._wait_before_retry(attempt, len(piece.keys), stop):
                outcome.completed = False
                return outcome
        return outcome

    @staticmethod
    def _blames_content(status: int) -> bool:
        return 400 <= status < 500 and status not in TRANSIENT_STATUSES and status not in ENDPOINT_STATUSES

    def _post(self, piece: Batch) -> _Attempt:
        address, pool = self._connection()
        where = f"{address[0]}:{address[1]}"
        try:
            # Streamed in chunks with an exact Content-Length: no second copy of a 12 MiB batch.
            response = pool.urlopen(
                "POST",
                self.client.target,
                body=piece.chunks(),
                headers={**self.client._headers, "Content-Length": str(piece.size_bytes)},
                retries=False,
                redirect=False,
                preload_content=True,
            )
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            # That Falco may be gone: the next attempt goes to the next address, resolved again soon.
            self._shift += 1
            self.client.addresses.failed()
            return _Attempt(status=None, error=f"{type(exc).__name__}: {exc}", address=where)
        detail = ""
        if response.status >= 300:
            detail = response.data[:300].decode("utf-8", "replace").strip()
        retry_after = parse_retry_after(response.headers.get("Retry-After"), self._clock.time())
        return _Attempt(status=response.status, retry_after=retry_after, detail=detail, address=where)

    def _reject(self, piece: Batch, attempt: _Attempt, outcome: DeliveryOutcome) -> None:
        key = piece.keys[0]
        outcome.rejected.append(key)
        self.metrics.events_skipped_total.labels(reason=SKIP_REASON_REJECTED).inc()
        log.error(
            "Falco refused an event; skipping it",
            extra={"key": str(key), "status": attempt.status, "response": attempt.detail, "bytes": piece.size_bytes},
        )

    def _wait_before_retry(self, attempt: _Attempt, events: int, stop: threading.Event) -> bool:
        """Count and log the failure, wait; False when ``stop`` is set instead."""
        if stop.is_set():
            return False
        self.metrics.batches_total.labels(outcome="retried").inc()
        self.metrics.delivery_retries_total.inc()
        fields = {
            "status": attempt.status,
            "address": attempt.address,
            "error": attempt.error,
            "response": attempt.detail,
            "events": events,
            "consecutive_failures": self.retrier.failures + 1,
        }
        at_least = 0.0 if attempt.retry_after is None else min(attempt.retry_after, MAX_RETRY_AFTER_SECONDS)
        if attempt.status is not None and (300 <= attempt.status < 400 or attempt.status in ENDPOINT_STATUSES):
            return self.retrier.failed(stop, "Falco's URL answers as if it were wrong; check --falco-url. Retrying",
                                       fields, at_least=at_least, level=logging.ERROR)
        return self.retrier.failed(stop, "delivery to Falco failed; retrying", fields, at_least=at_least)
