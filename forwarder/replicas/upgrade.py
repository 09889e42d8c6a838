"""Taking over from the forwarder of release 0.3, whose objects the stack did not create: only reading them.

A 0.3 forwarder created its objects itself: ConfigMap NAME (the positions), NAME-hashes (every remembered hash in
one part) and its Lease. Today's stack creates the forwarder's objects itself, under names no 0.3 forwarder used (a
create of an existing name fails the update), so on an upgraded lab the 0.3 objects stay beside them, unused after
the upgrade, until the namespace goes. The forwarder takes over from them once:

- ``PreviousLease``: before this replica first takes its own Lease (``--wait-for-lease``), the 0.3 Lease must be
  free for good: released, or not renewed for its duration (a killed holder), and then left alone for half its
  duration more. A 0.3 replica still standing by during the rolling update takes a free Lease at its next look
  (every tenth of the duration, a request taking at most a quarter), which changes it and starts the wait again;
  so no 0.3 replica and new one ever deliver at once. A 0.3 replica that got SIGTERM never takes it again.
- ``read_previous_checkpoint``: on a first start (its own positions ConfigMap still empty), the 0.3 positions and
  hashes are read (``--migrate-from``), and the ConfigMap store writes them into its own objects
  (checkpoint/store.py, ConfigMapCheckpointStore.claim) before the forwarder carries on from there: nothing is read
  again from ``--start-at``, and what 0.3 delivered is not delivered again. The encodings are the same
  (checkpoint/codec.py); only the hashes are split into parts.

A missing object (404) is nothing to take over, silently: a fresh install never had one. The stack grants ``get``
on them by name (and ``update``, which only the 0.3 replicas use, until the rolling update stops them).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from ..checkpoint.codec import Checkpoint
from ..checkpoint.store import get_configmap, positions_in, remembered_in
from ..clock import Clock
from ..kube import KubeApi, KubeError
from ..retry import LOG_EVERY
from .lease import API as LEASE_API
from .lease import poll_seconds, request_timeout_seconds

log = logging.getLogger("forwarder.upgrade")

PREVIOUS_HASHES_SUFFIX = "-hashes"
"""Release 0.3 kept every remembered hash in one ConfigMap: the positions ConfigMap's name plus this."""


def quiet_seconds(duration_seconds: float) -> float:
    """How long a free 0.3 Lease must stay unchanged before it counts as free for good: half its duration, at least a
    second; more than a 0.3 standby takes to see it free and take it (a tenth of the duration to its next look, and
    that request's timeout, a quarter of the duration, at least 0.5 s: lease.poll_seconds and
    request_timeout_seconds)."""
    return max(1.0, duration_seconds / 2)


# --- the checkpoint ----------------------------------------------------------------------------------------


_DENIED = ("the service account needs get on it to carry the checkpoint of the forwarder before the upgrade over: "
           "the AuditForwarder component of the same version grants it")


def read_previous_checkpoint(api: KubeApi, namespace: str, name: str) -> Checkpoint | None:
    """The checkpoint a 0.3 forwarder kept in ConfigMaps ``name`` and ``name``-hashes, or None when there is none.

    CheckpointError when it cannot be read or its positions are not valid (the pipeline retries, logging it): going on
    without would read the last hour again. Unreadable hashes only cost duplicates: a warning, and on without them."""
    doc = get_configmap(api, namespace, name, _DENIED)
    where = f"configmap {namespace}/{name} (the checkpoint of the forwarder before the upgrade)"
    hint = f"delete it to start from --start-at instead: kubectl -n {namespace} delete configmap {name}"
    positions = positions_in(doc, where, hint)
    if positions is None:
        return None
    hashes_name = name + PREVIOUS_HASHES_SUFFIX
    remembered = remembered_in(get_configmap(api, namespace, hashes_name, _DENIED),
                               f"configmap {namespace}/{hashes_name}",
                               "remembered hashes of the forwarder before the upgrade")
    if remembered is not None and (remembered.log_group, remembered.stream_prefix) != (
            positions.log_group, positions.stream_prefix):
        remembered = None
    checkpoint = Checkpoint(positions, remembered)
    log.info("carrying over the checkpoint of the forwarder before the upgrade", extra={
        "from": f"configmap {namespace}/{name}", "hashes": checkpoint.hash_count()})
    return checkpoint


# --- the Lease ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Seen:
    version: str | None
    holder: str | None
    duration: float
    at: float
    """Monotonic time of the answer that first showed this version."""


class PreviousLease:
    """The Lease of the replicas before an upgrade, only read; ``wait`` returns once it is free for good (module
    docstring). Times are this replica's own monotonic clock, from the answers it gets: never another node's."""

    def __init__(self, api: KubeApi, namespace: str, name: str, *, clock: Clock, duration_seconds: float) -> None:
        self.api = api
        self.namespace = namespace
        self.name = name
        self.clock = clock
        self.default_duration = duration_seconds
        """Assumed when the Lease states none."""
        self._seen: _Seen | None = None
        self._failures = 0
        self._waiting_since: float | None = None

    @property
    def lease(self) -> str:
        return f"{self.namespace}/{self.name}"

    def step(self) -> float:
        """One look: 0.0 once the Lease is free for good (or missing, never seen), else seconds until the next look."""
        duration = self._seen.duration if self._seen is not None else self.default_duration
        try:
            status, doc = self.api.request("GET", self.api.path(LEASE_API, self.namespace, "leases", self.name),
                                           timeout_seconds=request_timeout_seconds(duration))
        except KubeError as exc:
            self._failed(str(exc))
            return poll_seconds(duration)
        now = self.clock.monotonic()
        if status == 404:
            if self._seen is None:
                return 0.0  # a fresh install, or a Lease deleted long ago: nobody to wait for
            # Deleted since it was last seen (kubectl delete): its holder may not know yet. Wait as if unchanged.
        elif status != 200:
            self._failed(f"HTTP {status} {doc.get('message', '')}".rstrip(), status)
            return poll_seconds(duration)
        else:
            spec, metadata = doc.get("spec") or {}, doc.get("metadata") or {}
            version = metadata.get("resourceVersion")
            if self._seen is None or version != self._seen.version:
                stated = spec.get("leaseDurationSeconds")
                self._seen = _Seen(version, spec.get("holderIdentity") or None,
                                   float(stated) if stated else self.default_duration, now)
        self._failures = 0
        seen = self._seen
        assert seen is not None
        # Held: its holder stops by its own clock within the duration of its last renewal, as seen here. Then, free
        # or expired, a live 0.3 standby would take it within the quiet time.
        free_at = seen.at + (seen.duration if seen.holder else 0.0) + quiet_seconds(seen.duration)
        left = free_at - now
        if left <= 0:
            if self._waiting_since is not None:
                log.info("the Lease of the forwarder before the upgrade is free: its replicas are gone", extra={
                    "lease": self.lease, "waited_seconds": round(now - self._waiting_since, 1)})
            return 0.0
        if self._waiting_since is None:
            self._waiting_since = now
            log.info("waiting until the Lease of the forwarder before the upgrade is free (the rolling update stops "
                     "its replicas)", extra={"lease": self.lease, "holder": seen.holder})
        return min(poll_seconds(seen.duration), left)

    def _failed(self, error: str, status: int | None = None) -> None:
        """A look that failed: waiting goes on (a 0.3 replica may still deliver); logged at the first and every
        LOG_EVERY-th."""
        self._failures += 1
        if (self._failures - 1) % LOG_EVERY:
            return
        hint = ""
        if status in (401, 403):
            hint = (f" (the service account needs get on leases {self.name} in namespace {self.namespace}: the "
                    "AuditForwarder component of the same version grants it)")
        log.error("cannot read the Lease of the forwarder before the upgrade; waiting", extra={
            "lease": self.lease, "error": error + hint, "attempt": self._failures})

    def wait(self, stop: threading.Event) -> bool:
        """Look until the Lease is free for good (True), or ``stop`` is set (False)."""
        while not stop.is_set():
            pause = self.step()
            if pause <= 0:
                return True
            if self.clock.wait(pause, stop):
                break
        return False
