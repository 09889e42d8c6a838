"""Fakes for the forwarder: a simulated CloudWatch Logs and clock, the production source built over them
(Harness), checkpoint stores (in memory; the ConfigMap store over the Kubernetes API stand-in of
support/kube_api.py, writing EKS's audit event of every ConfigMap write back into the simulated log:
AuditedCluster).

FakeLogs answers filter_log_events like the API reference describes it: startTime and endTime
inclusive on the event timestamp, logStreamNamePrefix applied, pages of at most `page_events`
events and `page_bytes` bytes with a nextToken while more remain. An event is visible from its
`visible_at` (simulated seconds) on. Pagination works on the set of events matching at the
first call of a range (a server-side cursor), so an event that becomes visible mid-pagination
appears only in a later read, one of the ways the real service may behave.
"""

from __future__ import annotations

import bisect
import itertools
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from botocore.exceptions import ClientError
from support.kube_api import FakeKubeApi, KubeWrite, Rbac  # noqa: F401 (the stand-in lives in support/; re-exported)

from forwarder.checkpoint.codec import (
    Checkpoint,
    Positions,
    Remembered,
    decode_positions,
    decode_remembered,
    encode_positions,
    encode_remembered,
)
from forwarder.checkpoint.ledger import EventKey
from forwarder.checkpoint.policy import Checkpointer, SelfWriteFilter
from forwarder.checkpoint.store import Saved
from forwarder.config import RunConfig, StartAt
from forwarder.metrics import Metrics
from forwarder.model import LogEvent
from forwarder.sources.source import build_polling_source


class FakeClock:
    """Simulated seconds since the epoch; waiting advances it."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        self.now += max(seconds, 0.0)
        return stop.is_set()


class RecordingClock:
    """A view of a FakeClock that records the waits made through it; ``on_wait`` may act instead of waiting
    (set stop, change the world) and returns what the wait returns."""

    def __init__(self, clock: FakeClock, on_wait: Any = None) -> None:
        self.clock = clock
        self.on_wait = on_wait
        self.waits: list[float] = []

    def time(self) -> float:
        return self.clock.now

    def monotonic(self) -> float:
        return self.clock.now

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        self.waits.append(seconds)
        if self.on_wait is not None:
            return bool(self.on_wait(seconds, stop))
        return self.clock.wait(seconds, stop)


@dataclass
class FakeEvent:
    stream: str
    event_id: str
    timestamp_ms: int
    message: str
    visible_at: float  # simulated seconds


@dataclass
class FakeLogs:
    clock: FakeClock
    page_events: int = 10_000
    page_bytes: int = 1_048_576
    call_seconds: float = 0.02
    cloudwatch_offset_s: float = 0.0
    """CloudWatch's clock minus the forwarder's (visible_at and ingestion times are on CloudWatch's clock)."""
    events: list[FakeEvent] = field(default_factory=list)
    calls: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    script: list[Exception] = field(default_factory=list)
    """Errors to raise on the next calls, in order (then normal answers)."""
    returned: Counter[str] = field(default_factory=Counter)
    """How many times each event id was returned (read amplification)."""
    _cursors: dict[str, list[FakeEvent]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=itertools.count)
    _order: list[tuple[int, int]] = field(default_factory=list)

    def add(self, stream: str, timestamp_ms: int, message: str, visible_at: float | None = None) -> str:
        n = next(self._ids)
        event_id = f"{n:056d}"
        now = self.clock.now + self.cloudwatch_offset_s
        event = FakeEvent(stream, event_id, timestamp_ms, message, now if visible_at is None else visible_at)
        # Kept sorted by timestamp so a range is found by bisection (the simulations hold 100k+ events).
        i = bisect.bisect_right(self._order, (timestamp_ms, n))
        self._order.insert(i, (timestamp_ms, n))
        self.events.insert(i, event)
        return event_id

    def filter_log_events(self, **params: Any) -> dict[str, Any]:
        self.calls.append((self.clock.now, dict(params)))
        self.clock.now += self.call_seconds
        if self.script:
            raise self.script.pop(0)
        token = params.get("nextToken")
        if token is None:
            start, end = params["startTime"], params["endTime"]
            prefix = params.get("logStreamNamePrefix", "")
            lo = bisect.bisect_left(self._order, (start, -1))
            hi = bisect.bisect_right(self._order, (end, float("inf")))
            cw_now = self.clock.now + self.cloudwatch_offset_s
            matching = [e for e in self.events[lo:hi] if e.visible_at <= cw_now and e.stream.startswith(prefix)]
            offset = 0
        else:
            key, _, rest = token.partition("#")
            matching = self._cursors[key]
            offset = int(rest)
        page: list[FakeEvent] = []
        size = 0
        i = offset
        while i < len(matching) and len(page) < self.page_events:
            cost = len(matching[i].message) + 26
            if page and size + cost > self.page_bytes:
                break
            page.append(matching[i])
            size += cost
            i += 1
        response: dict[str, Any] = {
            "events": [
                {"logStreamName": e.stream, "eventId": e.event_id, "timestamp": e.timestamp_ms,
                 "ingestionTime": int(e.visible_at * 1000), "message": e.message}
                for e in page
            ]
        }
        for e in page:
            self.returned[e.event_id] += 1
        if i < len(matching):
            key = token.partition("#")[0] if token else f"c{len(self._cursors)}"
            self._cursors[key] = matching
            response["nextToken"] = f"{key}#{i}"
        return response

    def calls_between(self, t0: float, t1: float) -> int:
        return sum(1 for at, _ in self.calls if t0 <= at < t1)


def client_error(code: str, status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "FilterLogEvents")


def harness_config(**overrides: Any) -> RunConfig:
    """The production defaults (what users run), with only what a test names changed."""
    base = RunConfig(log_group="/aws/eks/lab/cluster", falco_url="http://127.0.0.1:1/k8s-audit", region="us-west-2")
    return replace(base, **overrides)


class Harness:
    """The production polling source (source.build_polling_source, the pipeline's factory) over FakeLogs and a
    FakeClock. Its emit stands in for validation and delivery: it acknowledges every new event at once (or
    holds them while ``acknowledge`` is False). Optionally with the production Checkpointer and a store."""

    def __init__(
        self,
        config: RunConfig | None = None,
        *,
        clock: FakeClock | None = None,
        logs: FakeLogs | None = None,
        checkpoint: Checkpoint | None = None,
        start_ms: int | None = None,
        page_events: int = 10_000,
        page_bytes: int = 1_048_576,
        **settings: Any,
    ) -> None:
        self.clock = clock or FakeClock()
        self.logs = logs or FakeLogs(self.clock, page_events=page_events, page_bytes=page_bytes)
        if start_ms is not None:
            settings["start_at"] = StartAt("time", epoch_ms=start_ms)
        self.config = config or harness_config(**settings)
        self.metrics = Metrics()
        self.delivered: Counter[str] = Counter()
        self.delivered_at: dict[str, float] = {}
        self.timestamps: dict[str, int] = {}
        self.acknowledge = True
        self.held: list[EventKey] = []
        self.self_writes: SelfWriteFilter | None = None
        self.source = build_polling_source(self.config, logs_client=self.logs, clock=self.clock, metrics=self.metrics,
                                           emit=self.emit, checkpoint=checkpoint, prefetch=False)
        self.ledger = self.source.ledger
        self.schedule = self.source.schedule
        self.reader = self.source.logs
        self.checkpointer: Checkpointer | None = None
        self.stop = threading.Event()

    def with_store(self, store: Any, *, resumed: bool = False) -> Harness:
        """Save checkpoints to ``store`` as the pipeline does (the production policy), driven by the fake clock."""
        self.checkpointer = Checkpointer(
            store, self.ledger, log_group=self.config.log_group, stream_prefix=self.config.stream_prefix,
            source=self.source.kind, clock=self.clock, metrics=self.metrics,
            positions_interval_seconds=self.config.checkpoint_interval_seconds,
            hashes_interval_seconds=self.config.checkpoint_hashes_interval_seconds, resumed=resumed)
        if store.self_writes is not None:
            self.self_writes = SelfWriteFilter(store.self_writes)
        return self

    def emit(self, fresh: list[tuple[EventKey, LogEvent]]) -> bool:
        keys = []
        for key, event in fresh:
            self.delivered[event.event_id] += 1
            self.delivered_at.setdefault(event.event_id, self.clock.now)
            self.timestamps[event.event_id] = event.timestamp_ms
            if self.self_writes is not None and self.self_writes.matches(event.message):
                key = replace(key, material=False)
            keys.append(key)
        if self.acknowledge:
            self.source.acknowledge(keys)
            if self.checkpointer is not None:
                self.checkpointer.after_acknowledged()
        else:
            self.held.extend(keys)
        return True

    def release(self) -> None:
        """Acknowledge what was held."""
        self.source.acknowledge(self.held)
        self.held = []

    def run_until(self, t: float, on_step: Any = None) -> None:
        guard = 0
        while self.clock.now < t:
            if on_step is not None:
                on_step(self.clock.now)
            self.source.step(self.stop)
            if self.checkpointer is not None:
                self.checkpointer.tick()
            guard += 1
            assert guard < 5_000_000, "simulation did not advance"

    def latency(self, event_id: str) -> float:
        """Seconds from the event's timestamp to its delivery."""
        return self.delivered_at[event_id] - self.timestamps[event_id] / 1000

    def now_ms(self) -> int:
        return int(self.clock.now * 1000)


class MemoryStore:
    """A checkpoint store in memory (the file store's encodings), recording every save with the simulated time."""

    remembered_bytes_per_minute = None

    def __init__(self, clock: FakeClock, self_writes: Any = None) -> None:
        self.clock = clock
        self.self_writes = self_writes
        self.positions: bytes | None = None
        self.remembered: bytes | None = None
        self.saves: list[tuple[float, str, int]] = []
        """(simulated time, part, bytes)."""

    def load(self) -> Checkpoint | None:
        if self.positions is None:
            return None
        remembered = decode_remembered(self.remembered) if self.remembered else None
        return Checkpoint(decode_positions(self.positions), remembered)

    def claim(self) -> Checkpoint | None:
        return self.load()

    def save_positions(self, positions: Positions) -> Saved:
        self.positions = encode_positions(positions)
        self.saves.append((self.clock.now, "positions", len(self.positions)))
        return Saved(len(self.positions))

    def save_remembered(self, remembered: Remembered) -> Saved:
        self.remembered, _, _ = encode_remembered(remembered)
        self.saves.append((self.clock.now, "hashes", len(self.remembered)))
        return Saved(len(self.remembered))

    def saves_between(self, t0: float, t1: float, part: str | None = None) -> int:
        return sum(1 for at, p, _ in self.saves if t0 <= at < t1 and (part is None or p == part))


SELF_NAMESPACE, SELF_CONFIGMAP, SELF_LEASE = "forwarder", "audit-checkpoint", "audit-forwarder-leader"
SELF_USERNAME = f"system:serviceaccount:{SELF_NAMESPACE}:audit-forwarder"
# A service account token (JWT) whose "sub" is SELF_USERNAME; only that claim is ever read.
SELF_TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6Zm9yd2FyZGVyOmF1ZGl0LWZvcndhcmRlciJ9.c2ln"


class AuditedCluster:
    """A simulated clock and CloudWatch, and a Kubernetes API that, like EKS, writes an audit event into the
    simulated log for every ConfigMap write it takes (visible 3 s later), enforcing the AuditForwarder
    component's Roles, with the objects the stack creates (the checkpoint's ConfigMaps, the Lease); with the
    ConfigMap store the forwarder uses in the cluster, for real, over HTTP on 127.0.0.1."""

    def __init__(self, token_dir: Any) -> None:
        from forwarder.clock import SystemClock

        self.clock = FakeClock()
        self.logs = FakeLogs(self.clock)
        self.writes: list[tuple[float, str, int]] = []
        """(simulated time, ConfigMap, request bytes) of every write the API server took."""
        self.api = FakeKubeApi(SELF_TOKEN, on_write=self._audit, rbac=Rbac.forwarder(SELF_LEASE, SELF_CONFIGMAP),
                               now=lambda: self.clock.now)
        self.api.create_like_the_stack(SELF_NAMESPACE, SELF_CONFIGMAP, SELF_LEASE)
        self.token = token_dir / "token"
        self.token.write_text(SELF_TOKEN)
        self.store = self.new_store(clock=SystemClock())

    def kube(self) -> Any:
        """A client of the stand-in with the service account's token."""
        return self.api.client(token_path=str(self.token))

    def new_store(self, **kwargs: Any) -> Any:
        """The ConfigMap store the forwarder uses in the cluster (``fence``, ``also_own`` as it passes them)."""
        from forwarder.checkpoint.store import ConfigMapCheckpointStore

        return ConfigMapCheckpointStore(SELF_NAMESPACE, SELF_CONFIGMAP, api=self.kube(), **kwargs)

    def _audit(self, verb: str, name: str) -> None:
        self.writes.append((self.clock.now, name, self.api.bodies[-1][2]))
        self.logs.add("kube-apiserver-audit-0a0a", int(self.clock.now * 1000), own_write_event(self.clock, verb, name),
                      visible_at=self.clock.now + 3)

    def bytes_per_minute(self, start: float, minutes: int) -> list[int]:
        return [sum(size for at, _, size in self.writes if start + 60 * m <= at < start + 60 * (m + 1))
                for m in range(minutes)]

    def requests(self, start: float = float("-inf"), end: float = float("inf")) -> list[tuple[float, int]]:
        """(simulated time, request bytes) of every write sent to the API server from ``start`` to ``end``: the
        checkpoint's ConfigMaps and the Lease, refused ones included."""
        return [(at, size) for at, (_, _, size) in zip(self.api.body_times, self.api.bodies, strict=True)
                if start <= at <= end]

    def close(self) -> None:
        self.api.close()


def own_write_event(clock: FakeClock, verb: str, name: str, resource: str = "configmaps") -> str:
    """The audit event EKS writes for the forwarder's own request on ``resource`` ``name`` (Metadata level)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(clock.now)) + ".000000Z"
    return json.dumps({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "auditID": f"own-{clock.now}-{name}",
        "stage": "ResponseComplete", "requestURI": f"/api/v1/namespaces/{SELF_NAMESPACE}/{resource}/{name}",
        "verb": verb, "user": {"username": SELF_USERNAME, "groups": ["system:serviceaccounts"]},
        "objectRef": {"resource": resource, "namespace": SELF_NAMESPACE, "name": name, "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 200}, "requestReceivedTimestamp": stamp, "stageTimestamp": stamp,
    }, separators=(",", ":"))


def steady_load(h: Harness, rate: int, seconds: float, *, size: int = 300, delay_s: float = 1.0,
                late_every: int = 0, late_s: float = 0.0, stream: str = "kube-apiserver-audit-0a0a") -> list[str]:
    """Run ``h`` while ``rate`` events/s of ``size`` bytes arrive for ``seconds``, each visible ``delay_s`` after
    its timestamp (every ``late_every``-th ``late_s`` after it); their ids."""
    end = h.clock.now + seconds
    feeder = Feeder(h.logs, rate, size=size, delay_s=delay_s, late_every=late_every, late_s=late_s, stream=stream,
                    start=h.clock.now, end=end)
    h.run_until(end, on_step=feeder.feed)
    return feeder.ids


class Feeder:
    """Events arriving in the simulated log at ``rate`` a second from ``start`` (by default the log's clock now)
    until ``end`` or until ``feed`` is no longer called (``size`` bytes, visible ``delay_s`` after their timestamps;
    every ``late_every``-th ``late_s`` after it); their ids in ``ids``."""

    def __init__(self, logs: FakeLogs, rate: int, *, size: int = 300, delay_s: float = 1.0, late_every: int = 0,
                 late_s: float = 0.0, stream: str = "kube-apiserver-audit-0a0a", start: float | None = None,
                 end: float = float("inf")) -> None:
        self.logs, self.rate, self.delay_s, self.stream = logs, rate, delay_s, stream
        self.late_every, self.late_s, self.end = late_every, late_s, end
        self.body = "x" * size
        self.next = logs.clock.now if start is None else start
        self.count = 0
        self.ids: list[str] = []

    def feed(self, now: float) -> None:
        while self.next <= now and self.next < self.end:
            for k in range(self.rate):
                self.count += 1
                late = self.late_every and self.count % self.late_every == 0
                ts = int(self.next * 1000) + k * 1000 // self.rate
                self.ids.append(self.logs.add(self.stream, ts, self.body,
                                              visible_at=ts / 1000 + (self.late_s if late else self.delay_s)))
            self.next += 1


def most_in_a_minute(writes: list[tuple[float, int]]) -> int:
    """The most bytes among ``writes`` (time, bytes) in any 60 seconds."""
    times = sorted(writes)
    best = total = 0
    first = 0
    for at, size in times:
        total += size
        while times[first][0] <= at - 60:
            total -= times[first][1]
            first += 1
        best = max(best, total)
    return best


def steady_bytes(cluster: AuditedCluster, rate: int = 100, minutes: int = 13) -> list[int]:
    """Bytes a minute the checkpoint's ConfigMaps take at a steady ``rate``, one replica (the last minutes are the
    steady state: 11 minutes of hashes remembered)."""
    h = Harness(clock=cluster.clock, logs=cluster.logs).with_store(cluster.store)
    t0 = cluster.clock.now
    steady_load(h, rate, minutes * 60)
    return cluster.bytes_per_minute(t0, minutes)


def takeover_bytes(cluster: AuditedCluster, rate: int = 100, duration: float = 15.0) -> dict[str, Any]:
    """Two replicas taking turns on the Lease while ``rate`` events/s arrive: the holder runs 12 minutes (its hashes
    full), is killed right after it saved them (the worst moment), the standby takes over the Lease and the
    checkpoint and runs 4 more minutes. The most bytes written to the API server (ConfigMaps and Lease) in any
    minute from a minute before the kill to two after the claim; and what each replica delivered."""
    from forwarder.replicas.lease import LeaseElector

    clock = cluster.clock
    feeder = Feeder(cluster.logs, rate)
    own = (("leases", SELF_NAMESPACE, SELF_LEASE),)

    def elector(identity: str) -> LeaseElector:
        return LeaseElector(cluster.kube(), SELF_NAMESPACE, SELF_LEASE, identity, duration_seconds=duration,
                            clock=clock, metrics=Metrics())

    def replica(lease: LeaseElector) -> Harness:
        store = cluster.new_store(fence=lease.fence, also_own=own)
        checkpoint = store.claim()
        return Harness(clock=clock, logs=cluster.logs, checkpoint=checkpoint).with_store(
            store, resumed=checkpoint is not None)

    def run(h: Harness, lease: LeaseElector, until: Any) -> None:
        due = clock.now
        while not until():
            feeder.feed(clock.now)
            if clock.now >= due:
                due = clock.now + lease.step()
            h.source.step(h.stop)
            assert h.checkpointer is not None
            h.checkpointer.tick()

    a = elector("fwd-a")
    a.step()
    first = replica(a)
    assert first.checkpointer is not None
    t0 = clock.now
    run(first, a, lambda: clock.now >= t0 + 12 * 60)
    saves = first.checkpointer.saves["hashes"]
    run(first, a, lambda: first.checkpointer.saves["hashes"] > saves)
    killed = clock.now  # SIGKILL: the first replica is never stepped again
    b = elector("fwd-b")
    while not b.holding():
        feeder.feed(clock.now)
        clock.now += max(0.01, b.step())
    second = replica(b)
    claimed = clock.now
    run(second, b, lambda: clock.now >= claimed + 4 * 60)
    return {"most_in_a_minute": most_in_a_minute(cluster.requests(killed - 60, claimed + 120)),
            "killed": killed, "claimed": claimed, "ids": feeder.ids, "first": first, "second": second}


def idle_burst_bytes(cluster: AuditedCluster, rate: int = 100) -> dict[str, Any]:
    """One replica: ``rate`` events/s for 12 minutes, 3 idle minutes (its last saves done), then a burst of four
    events. The most bytes the checkpoint's ConfigMaps take in any minute after the burst came."""
    h = Harness(clock=cluster.clock, logs=cluster.logs).with_store(cluster.store)
    t0 = cluster.clock.now
    steady_load(h, rate, 12 * 60)
    h.run_until(t0 + 15 * 60)
    burst = cluster.clock.now
    ids = [cluster.logs.add("kube-apiserver-audit-0a0a", int(burst * 1000) + k, "x" * 300, visible_at=burst + 2)
           for k in range(4)]
    h.run_until(burst + 5 * 60)
    after = [(at, size) for at, _, size in cluster.writes if at >= burst]
    return {"most_in_a_minute": most_in_a_minute(after), "burst": burst, "ids": ids, "harness": h}
