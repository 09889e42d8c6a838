"""One active replica among several: a ``coordination.k8s.io/v1`` Lease, and what its holder may do.

Every replica runs an elector (``run`` in its own thread). A standby reads the Lease every ``poll`` seconds
(a tenth of the duration) and takes it over once it has seen no change for the holder's duration (as the
Lease states it) minus a poll: at most the duration after the holder's last renewal, never before the
holder itself has given up (below). Taking over writes the Lease with the resourceVersion just read and
``leaseTransitions`` + 1, so of two standbys only one succeeds (409 Conflict for the other). The holder
renews every third of the duration, again with the resourceVersion of its last write.

What the holder may do is decided on its own monotonic clock: it *holds* the Lease until
``margin`` (a fifth of the duration, more than a standby's poll) before the duration has passed since
its last successful renewal began. Past that it reads, delivers and writes nothing more, even if no
thread has noticed yet (a process resumed after SIGSTOP checks before each delivery and each write).
That keeps two replicas from delivering at once when clocks and networks behave; the checkpoint does
not rely on it: every write carries the holder's *term* (``leaseTransitions`` when it acquired the
Lease), and the ConfigMap store refuses to overwrite a newer term's checkpoint (checkpoint/store.py).

On a clean stop the holder releases the Lease (empty holder), so a standby takes over within a poll. The
stack creates the Lease with an empty spec (free: the first standby takes it at once) and grants only ``get``
and ``update`` on it; every write replaces it with the resourceVersion last seen, keeping its labels and
annotations. A deleted Lease ends the holder's term at its next renewal; a standby that saw it takes it again
(created anew where the service account may create it, from term 0; else once the stack has created it again)
only once it has not been seen for the duration, as if it had expired. Where it may not be created, the log says
so at the first look and every LOG_EVERY-th, naming the Lease and what to do.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ..checkpoint.store import FencedError, Term
from ..clock import Clock
from ..kube import KubeApi, KubeError
from ..metrics import Metrics
from ..retry import LOG_EVERY

log = logging.getLogger("forwarder.lease")

API = "apis/coordination.k8s.io/v1"
# Renewals that fail (API unreachable, 5xx) are retried this often, until the Lease is no longer held.
MIN_POLL_SECONDS = 0.1


def poll_seconds(duration_seconds: float) -> float:
    """How often a standby looks at a Lease of this duration: a tenth of it."""
    return max(MIN_POLL_SECONDS, duration_seconds / 10)


def request_timeout_seconds(duration_seconds: float) -> float:
    """How long one Lease request may take: a quarter of the duration, between 0.5 and 10 s."""
    return max(0.5, min(10.0, duration_seconds / 4))


def micro_time(epoch_seconds: float) -> str:
    """A Kubernetes MicroTime: RFC3339 with microseconds, in UTC."""
    return datetime.fromtimestamp(epoch_seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseElector:
    """Acquires, renews and releases Lease ``name`` in ``namespace`` as ``identity``; thread-safe."""

    def __init__(
        self,
        api: KubeApi,
        namespace: str,
        name: str,
        identity: str,
        *,
        duration_seconds: float,
        clock: Clock,
        metrics: Metrics,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.duration = duration_seconds
        self.poll = poll_seconds(duration_seconds)
        self.renew_every = duration_seconds / 3
        self.margin = duration_seconds / 5
        self.clock = clock
        self.metrics = metrics
        self._timeout = request_timeout_seconds(duration_seconds)
        self._cond = threading.Condition()
        self._term: Term | None = None
        self._valid_until = float("-inf")
        self._version: str | None = None
        """resourceVersion of our last successful write while holding."""
        self._seen: tuple[str | None, float] = (None, 0.0)
        """A standby's last observation: (resourceVersion, monotonic time of the read that first saw it)."""
        self._free_after: float | None = None
        """After a deletion this standby saw: when the Lease it last saw would have expired (monotonic). A Lease
        created again meanwhile, free, is taken only then: its last holder may still believe it holds."""
        self._metadata: dict[str, Any] = {}
        """Labels and annotations of the Lease as last seen (the stack's): every write keeps them."""
        self._renew_failures = 0
        self._look_failures = 0
        """A standby's failed looks in a row (logged at the first and every LOG_EVERY-th)."""
        self._acquired_at = ""
        self.on_lost: Callable[[], None] | None = None
        """Called (from whichever thread finds out) when the current term ends without a clean release."""
        for event in ("acquired", "renewed", "renew_failed", "look_failed", "lost", "released"):
            metrics.lease_events_total.labels(event=event)
        metrics.lease_term.set(-1)

    # --- what the rest of the forwarder asks ----------------------------------------------------------------

    def _path(self, with_name: bool = True) -> str:
        return self.api.path(API, self.namespace, "leases", self.name if with_name else None)

    def holding(self, term: Term | None = None) -> bool:
        """This replica holds the Lease now (in ``term``, if given), by its own clock: it may read, deliver and
        write. A term's threads ask with their term: one that outlived its term must not act in the next."""
        with self._cond:
            return (self._term is not None and (term is None or self._term == term)
                    and self.clock.monotonic() < self._valid_until)

    def fence(self) -> Term:
        """The current term, for a checkpoint write; FencedError when this replica no longer holds the Lease."""
        with self._cond:
            term = self._term
            if term is None or self.clock.monotonic() >= self._valid_until:
                raise FencedError(f"this replica no longer holds Lease {self.namespace}/{self.name}")
            return term

    def wait_for_term(self, stop: threading.Event) -> Term | None:
        """Block until this replica holds the Lease (its term), or None once ``stop`` is set."""
        while not stop.is_set():
            with self._cond:
                if self._term is not None and self.clock.monotonic() < self._valid_until:
                    return self._term
                self._cond.wait(0.25)
        return None

    def step_down(self, reason: str) -> None:
        """Stop acting as the holder now (a newer term owns the checkpoint); the elector reads the Lease again."""
        self._lose(reason)

    # --- the elector thread ---------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Acquire and renew until ``stop``; the caller releases (``release``) once its last write is done."""
        self.metrics.active.set(0)
        while not stop.is_set():
            self.clock.wait(max(0.01, self.step()), stop)

    def step(self) -> float:
        """One renewal (holding) or one look at the Lease (standing by); seconds until the next step."""
        with self._cond:
            holding = self._term is not None
        return self._renew() if holding else self._try_acquire()

    def _request(self, method: str, body: dict[str, Any] | None = None, *, named: bool = True
                 ) -> tuple[int, dict[str, Any]]:
        return self.api.request(method, self._path(named), body, timeout_seconds=self._timeout)

    def _keep(self, doc: dict[str, Any]) -> None:
        """Remember the labels and annotations of the Lease as the API server returned it."""
        metadata = doc.get("metadata") or {}
        self._metadata = {key: dict(metadata[key]) for key in ("labels", "annotations") if metadata.get(key)}

    def _body(self, version: str | None, transitions: int, holder: str | None) -> dict[str, Any]:
        now = micro_time(self.clock.time())
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace, **self._metadata}
        if version is not None:
            metadata["resourceVersion"] = version
        spec: dict[str, Any] = {"leaseDurationSeconds": math.ceil(self.duration),
                                "acquireTime": self._acquired_at or now, "renewTime": now,
                                "leaseTransitions": transitions}
        if holder is not None:
            spec["holderIdentity"] = holder
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata, "spec": spec}

    def _try_acquire(self) -> float:
        """One look at the Lease as a standby; seconds until the next."""
        started = self.clock.monotonic()
        try:
            status, doc = self._request("GET")
            if status == 404:
                wait = self._wait_after_deletion()
                if wait > 0:
                    return wait
                self._acquired_at = ""
                self._metadata = {}
                status, doc = self._request("POST", self._body(None, 0, self.identity), named=False)
                if status == 201:
                    self._acquired(doc, started)
                    return self.renew_every
                if status in (401, 403):
                    self._missing()
                elif status != 409:  # 409: created by another replica first
                    self._refused("POST", status, doc)
                return self.poll
            if status != 200:
                self._refused("GET", status, doc)
                return self.poll
            self._look_failures = 0
            self._keep(doc)
            metadata, spec = doc.get("metadata") or {}, doc.get("spec") or {}
            version = metadata.get("resourceVersion")
            if version != self._seen[0]:
                # Seen now, after the answer: the holder's renewal may have landed while the request was on its way,
                # so only the answer's time is surely after it.
                self._seen = (version, self.clock.monotonic())
            holder = spec.get("holderIdentity") or None
            expires_in = self._expires_in(float(spec.get("leaseDurationSeconds") or self.duration))
            if holder is not None and expires_in > 0:
                self._free_after = None  # held by someone live: its own expiry is what counts
                return min(self.poll, expires_in)
            if holder is None and self._free_after is not None:
                left = self._free_after - self.clock.monotonic()
                if left > 0:
                    return min(self.poll, left)  # created again after a deletion: wait as if it had expired
            # A new term; a Lease never held (the stack's, with an empty spec) starts at 0, as one created here does.
            transitions = int(spec.get("leaseTransitions") or 0) + 1 if "leaseTransitions" in spec else 0
            self._acquired_at = ""
            status, doc = self._request("PUT", self._body(version, transitions, self.identity))
            if status == 200:
                self._acquired(doc, started, previous=holder)
                return self.renew_every
            if status != 409:  # 409: another standby was faster, or the holder renewed just now
                self._refused("PUT", status, doc)
            return self.poll
        except KubeError as exc:
            if self._look_failed():
                log.warning("cannot read the Lease; retrying", extra={
                    "lease": f"{self.namespace}/{self.name}", "error": str(exc), "attempt": self._look_failures})
            return self.poll

    def _wait_after_deletion(self) -> float:
        """Seconds to wait before creating a Lease that is missing now but was seen before (kubectl delete).

        Its holder learns of the deletion only at its next renewal, or not at all while paused: it may go on
        for a duration after its last renewal, so the Lease is taken as if it had expired, never sooner."""
        if self._seen[0] is None:
            return 0.0  # never seen: a first start, nobody can hold it
        left = self._expires_in(self.duration)
        self._free_after = self.clock.monotonic() + left  # when it would have expired, had it stayed
        return min(self.poll, left) if left > 0 else 0.0

    def _expires_in(self, duration: float) -> float:
        """Seconds until the Lease last seen changing runs out: the holder's ``duration`` (it gives up a fifth of it
        early) after that look, less at most a tenth of it for the look itself."""
        return self._seen[1] + duration - min(self.poll, duration / 10) - self.clock.monotonic()

    def _look_failed(self) -> bool:
        """Count a standby's failed look; True when it is to be logged (a standby looks every tenth of the
        duration: an API that keeps refusing would otherwise log ten lines a lease)."""
        self._look_failures += 1
        self.metrics.lease_events_total.labels(event="look_failed").inc()
        return (self._look_failures - 1) % LOG_EVERY == 0

    def _acquired(self, doc: dict[str, Any], started: float, previous: str | None = None) -> None:
        spec = doc.get("spec") or {}
        term = Term(int(spec.get("leaseTransitions") or 0), self.identity)
        self._acquired_at = str(spec.get("acquireTime") or "")
        self._free_after = None
        self._keep(doc)
        with self._cond:
            self._term = term
            self._version = (doc.get("metadata") or {}).get("resourceVersion")
            self._valid_until = started + self.duration - self.margin
            self._renew_failures = 0
            self._look_failures = 0
            self._cond.notify_all()
        self.metrics.lease_events_total.labels(event="acquired").inc()
        self.metrics.lease_term.set(term.number)
        self.metrics.active.set(1)
        log.info("lease acquired: this replica is active", extra={
            "lease": f"{self.namespace}/{self.name}", "identity": self.identity, "term": term.number,
            "previous_holder": previous})

    def _renew(self) -> float:
        started = self.clock.monotonic()
        with self._cond:
            term, version = self._term, self._version
        if term is None:
            return 0.0
        try:
            status, doc = self._request("PUT", self._body(version, term.number, self.identity))
            if status == 404:
                # Deleted (kubectl delete lease): a standby creates it anew at its next look; this term is over.
                self._lose("the Lease was deleted")
                return self.poll
            if status == 409:
                # Written by someone else: still ours if only metadata changed (kubectl annotate, say).
                status, doc = self._request("GET")
                spec = doc.get("spec") or {}
                if status == 200 and spec.get("holderIdentity") == self.identity and int(
                        spec.get("leaseTransitions") or 0) == term.number:
                    self._keep(doc)
                    with self._cond:
                        self._version = (doc.get("metadata") or {}).get("resourceVersion")
                    return 0.0
                self._lose("another replica holds the Lease now", holder=spec.get("holderIdentity"))
                return self.poll
            if status != 200:
                raise KubeError(f"PUT lease: HTTP {status} {doc.get('message', '')}".rstrip())
        except KubeError as exc:
            return self._renew_failed(str(exc))
        self._keep(doc)
        with self._cond:
            if self._term != term:
                return 0.0  # stepped down meanwhile
            self._version = (doc.get("metadata") or {}).get("resourceVersion")
            self._valid_until = started + self.duration - self.margin
            self._renew_failures = 0
            # Paused between reading the clock and sending (SIGSTOP): held again only from the next renewal.
            late = self.clock.monotonic() >= self._valid_until
        self.metrics.lease_events_total.labels(event="renewed").inc()
        return 0.0 if late else self.renew_every

    def _renew_failed(self, error: str) -> float:
        self._renew_failures += 1
        self.metrics.lease_events_total.labels(event="renew_failed").inc()
        with self._cond:
            left = self._valid_until - self.clock.monotonic()
        if left <= 0:
            self._lose("could not renew the Lease in time", error=error)
            return self.poll
        if (self._renew_failures - 1) % LOG_EVERY == 0:
            log.warning("cannot renew the Lease; retrying while it is still held", extra={
                "lease": f"{self.namespace}/{self.name}", "error": error, "attempt": self._renew_failures,
                "held_for_s": round(left, 1)})
        return min(self.poll, left)

    def _lose(self, reason: str, **fields: Any) -> None:
        with self._cond:
            term = self._term
            if term is None:
                return
            self._term = None
            self._valid_until = float("-inf")
            self._seen = (None, 0.0)
            callback = self.on_lost
            self._cond.notify_all()
        self.metrics.lease_events_total.labels(event="lost").inc()
        self.metrics.active.set(0)
        log.warning(f"lease lost: {reason}; stopped reading and delivering, standing by", extra={
            "lease": f"{self.namespace}/{self.name}", "identity": self.identity, "term": term.number, **fields})
        if callback is not None:
            callback()

    def _missing(self) -> None:
        """The Lease does not exist and this service account may not create it (the stack creates it)."""
        if self._look_failed():
            log.error(f"Lease {self.namespace}/{self.name} does not exist, and this service account may not create it: "
                      "the stack creates it (deleted by hand? pulumi up --refresh creates it again); standing by",
                      extra={"lease": f"{self.namespace}/{self.name}", "attempt": self._look_failures})

    def _refused(self, method: str, status: int, doc: dict[str, Any]) -> None:
        if not self._look_failed():
            return
        hint = ""
        if status in (401, 403):
            hint = (f" (the service account needs get and update on leases {self.name} in namespace "
                    f"{self.namespace}: the AuditForwarder component grants them)")
        log.error("the Kubernetes API refused a Lease request; retrying", extra={
            "lease": f"{self.namespace}/{self.name}", "method": method, "status": status,
            "error": f"{doc.get('message', '')}{hint}", "attempt": self._look_failures})

    def release(self) -> None:
        """Give the Lease up (clean stop, after the last checkpoint write): a standby takes over within a poll."""
        with self._cond:
            term, version = self._term, self._version
            self._term = None
            self._valid_until = float("-inf")
        if term is None:
            return
        try:
            status, doc = self._request("PUT", self._body(version, term.number, None))
        except KubeError as exc:
            status, doc = 0, {"message": str(exc)}
        self.metrics.active.set(0)
        if status == 200:
            self.metrics.lease_events_total.labels(event="released").inc()
            log.info("lease released", extra={"lease": f"{self.namespace}/{self.name}", "term": term.number})
        else:
            log.warning("could not release the Lease: a standby takes over when it expires", extra={
                "lease": f"{self.namespace}/{self.name}", "status": status, "error": doc.get("message")})
