"""forwarder/checkpoint/policy.py: when the checkpoint is saved, what it costs the cluster, what a crash costs.

Simulated CloudWatch and clock (the production source and policy, through the factory), no wall-clock
sleeps; the ConfigMap store runs for real against a fake Kubernetes API on 127.0.0.1 that, like EKS,
writes an audit event into the simulated log for every ConfigMap write it takes.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from fwd_fakes import (
    SELF_CONFIGMAP,
    SELF_NAMESPACE,
    SELF_USERNAME,
    AuditedCluster,
    FakeClock,
    FakeLogs,
    Harness,
    MemoryStore,
    idle_burst_bytes,
    own_write_event,
    steady_bytes,
    steady_load,
    takeover_bytes,
)
from support.audit_events import make_event

from forwarder.checkpoint.codec import Remembered
from forwarder.checkpoint.ledger import Ledger
from forwarder.checkpoint.policy import Checkpointer, SelfWriteFilter
from forwarder.checkpoint.store import FileCheckpointStore, Saved, SelfWrites, hashes_names
from forwarder.metrics import Metrics
from forwarder.model import LogEvent

STREAM = "kube-apiserver-audit-0a0a"
NAME = SELF_CONFIGMAP


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[AuditedCluster]:
    cluster = AuditedCluster(tmp_path)
    try:
        yield cluster
    finally:
        cluster.close()


def test_at_100_events_per_second_the_checkpoint_writes_under_1_mb_a_minute_to_the_api_server(cluster) -> None:
    minutes = 13  # past the 11 minutes a hash stays remembered: the steady state
    per_minute = steady_bytes(cluster, 100, minutes)
    assert max(per_minute) <= 1_000_000, per_minute
    # Only the parts of the hashes that changed are written: the newest one or two, not the whole window (which,
    # 66,000 events of 8 bytes in base64, is 704,000 bytes a write).
    assert max(per_minute) <= 250_000, per_minute
    names = [name for _, name, _ in cluster.writes]
    # Positions about every 10 s; every part of the hashes in turn, about one or two a minute.
    assert names.count(NAME) >= 6 * (minutes - 1)
    parts = [n for n in names if n in hashes_names(NAME)]
    assert set(parts) == set(hashes_names(NAME)) and minutes - 2 <= len(parts) <= 2 * (minutes + 1)
    # ...and together they hold the window's hashes.
    loaded = cluster.new_store().load()
    assert loaded is not None and loaded.hash_count() >= 60_000


def test_a_minute_with_a_lease_takeover_writes_under_1_mb_to_the_api_server(cluster) -> None:
    run = takeover_bytes(cluster)
    assert run["most_in_a_minute"] <= 1_000_000, run["most_in_a_minute"]
    # The new holder claims the positions and writes no hashes until its own change them.
    claimed = [name for at, name, _ in cluster.writes if run["claimed"] - 5 <= at <= run["claimed"] + 30]
    assert set(claimed) == {NAME}, claimed
    # Nothing lost (but what arrived in the last seconds, not read yet), nothing sent twice.
    first, second = run["first"], run["second"]
    fed, end_ms = set(run["ids"]), int((cluster.clock.now - 10) * 1000)
    settled = [e.event_id for e in cluster.logs.events if e.event_id in fed and e.timestamp_ms < end_ms]
    assert len(settled) > 90_000
    assert all(first.delivered[i] + second.delivered[i] == 1 for i in settled)


def test_a_burst_after_an_idle_spell_writes_only_its_own_part_of_the_hashes(cluster) -> None:
    run = idle_burst_bytes(cluster)
    assert run["most_in_a_minute"] <= 1_000_000
    assert run["most_in_a_minute"] <= 10_000, run["most_in_a_minute"]  # four hashes, the positions: not the window
    assert all(run["harness"].delivered[i] == 1 for i in run["ids"])
    after = [name for at, name, _ in cluster.writes if at >= run["burst"]]
    assert NAME in after and len([n for n in after if n in hashes_names(NAME)]) == 1, after


def test_on_an_idle_cluster_its_own_checkpoint_writes_do_not_keep_it_writing(cluster) -> None:
    h = Harness(clock=cluster.clock, logs=cluster.logs).with_store(cluster.store)
    t0 = cluster.clock.now
    cluster.logs.add(STREAM, int(t0 * 1000) + 500, make_event(int(t0 * 1000) + 500)[1], visible_at=t0 + 2)
    h.run_until(t0 + 30 * 60)
    # The start (no checkpoint yet), the one real event (positions, then its hash): then nothing, although
    # every write came back through the audit log and was delivered.
    assert len(cluster.writes) <= 4, cluster.writes
    assert all(at < t0 + 120 for at, _, _ in cluster.writes), cluster.writes
    own = [e for e in cluster.logs.events if "system:serviceaccount" in e.message]
    assert own and all(h.delivered[e.event_id] == 1 for e in own)
    assert h.ledger.acks == 1 + len(own) and h.ledger.material_acks == 1


def test_a_write_to_its_configmaps_by_someone_else_is_material() -> None:
    writes = SelfWrites((("configmaps", SELF_NAMESPACE, NAME), ("configmaps", SELF_NAMESPACE, f"{NAME}-hashes"),
                         ("leases", SELF_NAMESPACE, "audit-forwarder-leader")), SELF_USERNAME)
    matcher = SelfWriteFilter(writes)
    clock = FakeClock()
    assert matcher.matches(own_write_event(clock, "update", NAME))
    assert matcher.matches(own_write_event(clock, "create", f"{NAME}-hashes"))
    # Its Lease too, read (a standby) or renewed (the holder): neither is worth a checkpoint save.
    assert matcher.matches(own_write_event(clock, "get", "audit-forwarder-leader", resource="leases"))
    assert not matcher.matches(own_write_event(clock, "update", "audit-forwarder-leader"))  # a ConfigMap of that name
    tampering = make_event(0, objectRef={"resource": "configmaps", "namespace": SELF_NAMESPACE, "name": NAME},
                           user={"username": "kubernetes-admin"})[1]
    assert not matcher.matches(tampering)
    assert not matcher.matches(make_event(0)[1])  # anything else
    assert not matcher.matches(f'not json but mentions {NAME}')


def test_positions_are_saved_on_their_timer_only_while_something_material_changes() -> None:
    clock = FakeClock()
    store = MemoryStore(clock)
    h = Harness(clock=clock).with_store(store)
    t0 = clock.now
    steady_load(h, 20, 120)
    h.run_until(t0 + 600)
    # The start, then every 10 s while events flow (and once after, for the last ones); then nothing.
    assert store.saves_between(t0, t0 + 1, "positions") == 1
    assert 11 <= store.saves_between(t0 + 1, t0 + 130, "positions") <= 14
    assert store.saves_between(t0 + 130, t0 + 600) == 0
    # The hashes every minute while material.
    assert 2 <= store.saves_between(t0, t0 + 600, "hashes") <= 3


def test_shutdown_saves_both_parts_when_material_and_nothing_otherwise(tmp_path: Path) -> None:
    clock = FakeClock()
    store = FileCheckpointStore(tmp_path / "cp.json")
    h = Harness(clock=clock).with_store(store)
    assert h.checkpointer is not None
    h.logs.add(STREAM, int(clock.now * 1000), make_event(int(clock.now * 1000))[1], visible_at=clock.now + 1)
    h.run_until(clock.now + 5)  # delivered, not yet on the timer
    assert h.checkpointer.tick(final=True)
    loaded = store.load()
    assert loaded is not None and loaded.hash_count() == 1
    before = (store.path.stat().st_mtime_ns, store.hashes_path.stat().st_mtime_ns)
    assert h.checkpointer.tick(final=True)  # nothing new: no write
    assert (store.path.stat().st_mtime_ns, store.hashes_path.stat().st_mtime_ns) == before


def test_too_many_hashes_for_a_configmap_drop_the_oldest_and_say_so(cluster, caplog) -> None:
    store, api = cluster.store, cluster.api
    ledger = Ledger({"head": 0, "final": 0})
    ledger.retention = ("final",)
    # 150,000 events in the two minutes one part of the hashes keeps (1,250 events/s): more than a ConfigMap holds.
    events = [LogEvent(str(i), STREAM, i * 4 // 5, 1, "x") for i in range(150_000)]
    ledger.acknowledge([k for k, _ in ledger.admit(0, 10**9, events, now_ms=0)])
    metrics = Metrics()
    checkpointer = Checkpointer(store, ledger, log_group="g", stream_prefix="p", source="cloudwatch-poll",
                                clock=FakeClock(), metrics=metrics, positions_interval_seconds=10,
                                hashes_interval_seconds=60, resumed=True)
    with caplog.at_level(logging.WARNING, logger="forwarder.checkpoint"):
        assert checkpointer.tick(final=True)
    dropped = metrics.registry.get_sample_value("forwarder_checkpoint_hashes_dropped_total")
    assert dropped is not None and 150_000 - 900 * 1024 // 8 <= dropped <= 150_000 - 100_000
    assert any("oldest left out" in r.getMessage() for r in caplog.records)
    import base64

    stored = base64.b64decode(api.objects[f"{NAME}-hashes-0"]["binaryData"]["hashes.bin"])
    assert len(stored) <= 900 * 1024
    # The next hashes save waits long enough to keep the writes under the byte budget a minute.
    assert checkpointer.due_in() <= 5 and checkpointer._hashes_spacing >= 60


@pytest.mark.parametrize(("hashes_interval", "bound"), [(60.0, 100 * 60), (0.0, 0)])
def test_after_a_crash_nothing_is_lost_and_duplicates_stay_within_the_hashes_interval(
        tmp_path: Path, hashes_interval: float, bound: int) -> None:
    clock = FakeClock()
    logs = FakeLogs(clock)
    store = FileCheckpointStore(tmp_path / "cp.json")
    settings = {"checkpoint_hashes_interval_seconds": hashes_interval,
                "checkpoint_interval_seconds": 10.0 if hashes_interval else 0.0}
    first = Harness(clock=clock, logs=logs, **settings).with_store(store)
    t0 = clock.now
    crash_at = t0 + 180 + random.Random(3).uniform(0, 60)
    ids = steady_load(first, 100, crash_at - t0, size=400)
    # SIGKILL: the process's memory is gone; what the store holds is what the restart gets.
    second = Harness(clock=clock, logs=logs, checkpoint=store.load(), **settings).with_store(store, resumed=True)
    more = []
    for k in range(300):  # and the cluster goes on meanwhile
        ts = int((clock.now + k * 0.1) * 1000)
        more.append(logs.add(STREAM, ts, make_event(ts, size=400)[1], visible_at=ts / 1000 + 1))
    second.run_until(clock.now + 700)
    for event_id in ids + more:
        assert first.delivered[event_id] + second.delivered[event_id] >= 1
    duplicates = sum(1 for i in ids if first.delivered[i] and second.delivered[i])
    assert duplicates <= bound, duplicates


def test_a_save_the_store_left_unfinished_is_completed_when_next_due_with_nothing_new() -> None:
    class BudgetedStore(MemoryStore):
        """Writes half of what changed at the first save (as a ConfigMap store over its byte budget)."""

        def save_remembered(self, remembered: Remembered) -> Saved:
            saved = super().save_remembered(remembered)
            return replace(saved, pending=self.saves_between(0, float("inf"), "hashes") == 1)

    clock = FakeClock()
    store = BudgetedStore(clock)
    ledger = Ledger({"head": 0, "final": 0})
    events = [LogEvent(str(i), STREAM, i, 1, "x") for i in range(10)]
    ledger.acknowledge([k for k, _ in ledger.admit(0, 10**9, events, now_ms=0)])
    checkpointer = Checkpointer(store, ledger, log_group="g", stream_prefix="p", source="cloudwatch-poll",
                                clock=clock, metrics=Metrics(), positions_interval_seconds=3600,
                                hashes_interval_seconds=60, resumed=True)
    for _ in range(4):
        clock.now += 61
        checkpointer.tick()
    # The second save finished it; then nothing more.
    assert [part for _, part, _ in store.saves if part == "hashes"] == ["hashes", "hashes"]


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_after_a_crash_the_configmap_parts_lose_nothing_and_duplicates_stay_within_the_hashes_interval(
        cluster, seed: int) -> None:
    """The same crash with the ConfigMap store: whichever parts of the hashes were last written, the restart
    loses nothing and sends again at most what was acknowledged since the last save (100 events/s x 60 s)."""
    first = Harness(clock=cluster.clock, logs=cluster.logs).with_store(cluster.store)
    t0 = cluster.clock.now
    crash_at = t0 + 180 + random.Random(seed).uniform(0, 180)
    ids = steady_load(first, 100, crash_at - t0, size=400)
    store = cluster.new_store()  # the new process
    second = Harness(clock=cluster.clock, logs=cluster.logs, checkpoint=store.claim()).with_store(store, resumed=True)
    more = steady_load(second, 100, 60, size=400)
    second.run_until(cluster.clock.now + 700)
    for event_id in ids + more:
        assert first.delivered[event_id] + second.delivered[event_id] >= 1
    duplicates = sum(1 for i in ids if first.delivered[i] and second.delivered[i])
    assert duplicates <= 100 * 60, duplicates
