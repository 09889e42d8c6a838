"""An upgrade from release 0.3 (forwarder/replicas/upgrade.py): the forwarder takes over from what a 0.3 forwarder
created itself, beside the objects today's stack creates, reading the 0.3 objects only.

The Kubernetes API stand-in (support/kube_api.py) enforces the AuditForwarder component's Roles (tests/
test_audit_forwarder.py checks that the rendered Roles are these rules) and holds the stack's objects, empty; the 0.3
objects are written as 0.3 wrote them (support/release_0_3.py, checked against 0.3's own code from the project's
history where it is at hand). Simulated clocks, no sleeps; the processes of a real rolling update are in
test_fwd_upgrade_rollout.py."""

from __future__ import annotations

import base64
import importlib
import json
import logging
import re
import sys
import threading
import zlib
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest
from fwd_fakes import FakeClock, FakeLogs, Harness, steady_load
from support import release_0_3 as v03
from support.audit_events import make_event
from support.kube_api import FakeKubeApi, Rbac

from forwarder.checkpoint.codec import (
    Checkpoint,
    Positions,
    Remembered,
    decode_positions,
    decode_remembered,
    merge_remembered,
    split_remembered,
)
from forwarder.checkpoint.dedup import event_hash, pack
from forwarder.checkpoint.ledger import BucketState
from forwarder.checkpoint.store import CheckpointError, ConfigMapCheckpointStore, Term, hashes_names
from forwarder.config import CheckpointSpec, ConfigError, LeaseSpec, RunConfig, StartAt, parse
from forwarder.metrics import Health
from forwarder.pipeline import _wait_for_previous
from forwarder.replicas.upgrade import PreviousLease, quiet_seconds, read_previous_checkpoint

NS = v03.NAMESPACE
STATE, LEASE = "audit-forwarder-state", "audit-forwarder-lease"  # what today's stack creates
GROUP, PREFIX = "/aws/eks/lab/cluster", "kube-apiserver-audit"
DURATION = 15.0
STREAM = "kube-apiserver-audit-0a0a"


def _rbac(previous: bool = True) -> Rbac:
    """The component's Roles (with ``previous``: as rendered today; without: as if the grants on 0.3's objects were
    missing)."""
    if not previous:
        return Rbac.forwarder(LEASE, STATE)
    return Rbac.forwarder(LEASE, STATE, previous_checkpoint=v03.CHECKPOINT, previous_lease=v03.LEASE)


@pytest.fixture
def api() -> Iterator[FakeKubeApi]:
    """An upgraded lab before the new forwarder's first start: the stack's objects, empty, and the Roles."""
    with FakeKubeApi(None, rbac=_rbac()) as server:
        server.create_like_the_stack(NS, STATE, LEASE)
        yield server


def _store(api: FakeKubeApi, **kwargs: Any) -> ConfigMapCheckpointStore:
    """The ConfigMap store as the pipeline opens it with the component's flags (--migrate-from)."""
    kube = api.client()
    return ConfigMapCheckpointStore(NS, STATE, api=kube, previous=partial(read_previous_checkpoint, kube, NS,
                                                                           v03.CHECKPOINT), **kwargs)


def _hashes(n: int, salt: str) -> bytes:
    return pack(event_hash(STREAM, f"{salt}{i}") for i in range(n))


def _checkpoint_03(minutes: int = 12) -> Checkpoint:
    """A checkpoint as a 0.3 forwarder kept it at 20 events/s: its positions, and 5-second buckets of remembered
    hashes over the last ``minutes``."""
    head = 1_700_000_400_000
    buckets = tuple(BucketState(head - minutes * 60_000 + i * 5_000, _hashes(100, f"b{i}-"), 100, 150_000)
                    for i in range(minutes * 12))
    positions = Positions(GROUP, PREFIX, {"head": head, "7s": head - 7_000, "final": head - 600_000},
                          saved_at_ms=head + 2_000)
    return Checkpoint(positions, Remembered(GROUP, PREFIX, buckets))


def _paths(api: FakeKubeApi, *names: str) -> list[tuple[str, str]]:
    """(method, object name) of every request for ``names``."""
    return [(method, path.rsplit("/", 1)[-1]) for method, path in api.requests if path.rsplit("/", 1)[-1] in names]


# --- the 0.3 fixture is what 0.3 wrote --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def release_0_3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """0.3's forwarder package from the project's history, imported as ``forwarder_0_3``."""
    root = tmp_path_factory.mktemp("release-0.3")
    v03.checkout_or_skip(root, "forwarder_0_3")
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module("forwarder_0_3")
    finally:
        sys.path.remove(str(root))
        for module in [m for m in sys.modules if m == "forwarder_0_3" or m.startswith("forwarder_0_3.")]:
            del sys.modules[module]


def test_the_0_3_fixture_writes_byte_for_byte_what_a_0_3_forwarder_wrote(release_0_3: Any) -> None:
    old_cp = importlib.import_module("forwarder_0_3.checkpoint")
    old_codec = importlib.import_module("forwarder_0_3.checkpoint_codec")
    old_kube = importlib.import_module("forwarder_0_3.kube")
    old_ledger = importlib.import_module("forwarder_0_3.ledger")
    checkpoint = _checkpoint_03()
    positions = old_codec.Positions(**{k: getattr(checkpoint.positions, k) for k in (
        "log_group", "stream_prefix", "positions", "source", "saved_at_ms")})
    assert checkpoint.remembered is not None
    remembered = old_codec.Remembered(GROUP, PREFIX, tuple(
        old_ledger.BucketState(b.start_ms, b.hashes, b.events, b.bytes) for b in checkpoint.remembered.buckets))
    with FakeKubeApi(None, rbac=Rbac.older_stack(v03.LEASE, v03.CHECKPOINT)) as written, FakeKubeApi(None) as fixture:
        # 0.3's own store, as its holder in term 4 saved: it creates both ConfigMaps (its stack let it).
        store = old_cp.ConfigMapCheckpointStore(NS, v03.CHECKPOINT, api=old_kube.KubeApi(
            written.url, token_path="/nonexistent/token", ca_path=None), fence=lambda: old_cp.Term(4, "fwd-03"))
        store.save_positions(positions)
        store.save_remembered(remembered)
        v03.write_checkpoint(fixture, checkpoint, term=(4, "fwd-03"))
        for name in (v03.CHECKPOINT, v03.HASHES):
            for doc in (written.objects[name], fixture.objects[name]):
                doc["metadata"].pop("resourceVersion")
            assert written.objects[name] == fixture.objects[name], name
        assert [(w.method, w.name) for w in written.writes] == [("POST", v03.CHECKPOINT), ("POST", v03.HASHES)]
        # 0.3's Lease, as its elector takes and releases it, and as the fixture's holder writes it.
        elector = importlib.import_module("forwarder_0_3.lease").LeaseElector(
            old_kube.KubeApi(written.url, token_path="/nonexistent/token", ca_path=None), NS, v03.LEASE, "fwd-03",
            duration_seconds=DURATION, clock=FakeClock(), metrics=importlib.import_module("forwarder_0_3.metrics")
            .Metrics())
        elector.step()
        holder = v03.Holder03(fixture, "fwd-03", duration_seconds=DURATION, now=FakeClock())
        holder.acquire()
        for taken in (written.lease(v03.LEASE), fixture.lease(v03.LEASE)):
            assert {k: v for k, v in taken.items() if not k.endswith("Time")} == {
                "holderIdentity": "fwd-03", "leaseDurationSeconds": 15, "leaseTransitions": 0}
        elector.release()
        holder.release()
        assert written.lease(v03.LEASE).keys() == fixture.lease(v03.LEASE).keys()
        assert "holderIdentity" not in fixture.lease(v03.LEASE)
    # And today's codec reads 0.3's encodings (the carry-over copies them, splitting only the hashes).
    assert decode_positions(v03.encode_positions(checkpoint.positions)) == checkpoint.positions
    assert decode_remembered(v03.encode_hashes(checkpoint.remembered)) == checkpoint.remembered


def test_the_fixture_names_the_objects_0_3_created_itself_as_0_3_named_them() -> None:
    component = v03.source_or_skip("components/audit_forwarder.py")
    store = v03.source_or_skip("forwarder/checkpoint.py")
    # 0.3's component ran the forwarder with --checkpoint configmap:<namespace>/<checkpointConfigmapName> and
    # --lease <namespace>/<deploymentName>-leader, and let it create them; its store added "-hashes".
    assert 'ns_name.apply(lambda n: f"configmap:{n}/{args.checkpoint_configmap_name}")' in component
    assert "lease_name = args.deployment_name + LEASE_SUFFIX" in component
    assert 'ns_name.apply(lambda n: f"{n}/{lease_name}")' in component
    assert re.search(r'^LEASE_SUFFIX = "-leader"$', component, re.MULTILINE)
    assert re.search(r'^HASHES_SUFFIX = "-hashes"$', store, re.MULTILINE)
    setting = r'^    (namespace|deployment_name|checkpoint_configmap_name): str = "([^"]+)"$'
    defaults = dict(re.findall(setting, component, re.MULTILINE))
    assert defaults == {"namespace": v03.NAMESPACE, "deployment_name": "audit-forwarder",
                        "checkpoint_configmap_name": v03.CHECKPOINT}
    assert {n.format(checkpoint=v03.CHECKPOINT, deployment="audit-forwarder") for _, n in v03.SELF_CREATED} == {
        v03.CHECKPOINT, v03.HASHES, v03.LEASE}


# --- the checkpoint is carried over ----------------------------------------------------------------------------


def test_a_first_start_carries_the_0_3_checkpoint_over_into_the_stacks_objects_reading_the_old_ones_only(
        api: FakeKubeApi) -> None:
    old = _checkpoint_03()
    v03.write_checkpoint(api, old)
    before = {n: json.dumps(api.objects[n], sort_keys=True) for n in (v03.CHECKPOINT, v03.HASHES)}
    store = _store(api, fence=lambda: Term(0, "fwd-04-a"))
    assert store.claim() == old
    # The stack's objects now hold it: the positions as they were, the hashes in their parts by time.
    assert decode_positions(api.objects[STATE]["data"]["positions.json"].encode()) == old.positions
    parts = [decode_remembered(base64.b64decode(api.objects[n]["binaryData"]["hashes.bin"]))
             for n in hashes_names(STATE) if api.objects[n].get("binaryData")]
    assert old.remembered is not None
    assert [p for p in split_remembered(old.remembered) if p.buckets] == parts
    assert merge_remembered(parts) == old.remembered
    # Written in this holder's term, positions last; the 0.3 objects only read, and left as they were.
    writes = api.successful_writes("configmaps")
    assert writes[-1].name == STATE and {w.term for w in writes} == {0} and {w.holder for w in writes} == {"fwd-04-a"}
    assert _paths(api, v03.CHECKPOINT, v03.HASHES) == [("GET", v03.CHECKPOINT), ("GET", v03.HASHES)]
    assert {n: json.dumps(api.objects[n], sort_keys=True) for n in (v03.CHECKPOINT, v03.HASHES)} == before
    assert api.denied == []
    # A new process reads it back from the stack's objects alone, and writes no hashes until they change.
    again = _store(api)
    seen = len(api.requests)
    assert again.claim() == old
    assert _paths(api, v03.CHECKPOINT, v03.HASHES)[2:] == [] and len(api.requests) > seen
    assert again.save_remembered(old.remembered).bytes_written == 0


def test_a_fresh_install_has_nothing_to_carry_over_and_says_nothing_about_it(
        api: FakeKubeApi, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    assert _store(api).claim() is None
    assert _paths(api, v03.CHECKPOINT, v03.HASHES) == [("GET", v03.CHECKPOINT)]  # 404: no 0.3 forwarder ran here
    assert [r for r in caplog.records if r.name.startswith("forwarder")] == []
    assert api.successful_writes() == [] and api.denied == []


def test_a_start_after_a_crash_before_the_positions_were_written_carries_the_checkpoint_over_again(
        api: FakeKubeApi) -> None:
    old = _checkpoint_03()
    v03.write_checkpoint(api, old)
    _store(api).claim()
    # The crash: the parts written, the positions not (the carry-over writes them last).
    api.store(STATE, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": STATE, "namespace": NS}})
    assert _store(api).claim() == old
    assert decode_positions(api.objects[STATE]["data"]["positions.json"].encode()) == old.positions


def test_a_0_2_checkpoint_of_the_same_name_is_carried_over_for_its_positions(api: FakeKubeApi) -> None:
    """Release 0.2 (cff263f) kept one ConfigMap of the same name, a version 1 document of segments (zlib, binary key
    checkpoint.json.zlib), and no Lease: every stage resumes from its oldest open segment, read again, never lost."""
    v1 = {"version": 1, "log_group": GROUP, "stream_prefix": PREFIX, "head_ms": 1_700_000_400_000, "seq": 9,
          "segments": [{"start_ms": 1_700_000_100_000, "end_ms": 1_700_000_400_000, "hashes": ""}]}
    raw = base64.b64encode(zlib.compress(json.dumps(v1).encode(), 6)).decode()
    api.store(v03.CHECKPOINT, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": v03.CHECKPOINT},
                               "binaryData": {"checkpoint.json.zlib": raw}})
    assert _store(api).claim() == Checkpoint(Positions(GROUP, PREFIX, {"final": 1_700_000_100_000}), None)
    assert decode_positions(api.objects[STATE]["data"]["positions.json"].encode()).positions == {
        "final": 1_700_000_100_000}


def test_unreadable_0_3_hashes_cost_only_duplicates_and_the_positions_are_carried_over(
        api: FakeKubeApi, caplog: pytest.LogCaptureFixture) -> None:
    old = _checkpoint_03()
    v03.write_checkpoint(api, old)
    api.store(v03.HASHES, v03.configmap(v03.HASHES, binary={"hashes.bin": base64.b64encode(b"FWDHASH2\0").decode()}))
    with caplog.at_level(logging.WARNING, logger="forwarder.upgrade"):
        carried = _store(api).claim()
    assert carried == Checkpoint(old.positions, None)
    assert "remembered hashes of the forwarder before the upgrade are unreadable" in caplog.text
    assert not any(api.objects[n].get("binaryData") for n in hashes_names(STATE))


def test_0_3_hashes_of_another_log_group_are_not_carried_over(api: FakeKubeApi) -> None:
    old = _checkpoint_03()
    assert old.remembered is not None
    v03.write_checkpoint(api, Checkpoint(old.positions, Remembered("/aws/eks/other/cluster", PREFIX,
                                                                    old.remembered.buckets)))
    assert _store(api).claim() == Checkpoint(old.positions, None)


def test_invalid_0_3_positions_stop_the_first_start_with_what_to_do(api: FakeKubeApi) -> None:
    api.store(v03.CHECKPOINT, v03.configmap(v03.CHECKPOINT, data={"positions.json": '{"version": 9}'}))
    with pytest.raises(CheckpointError, match=rf"configmap {NS}/{v03.CHECKPOINT} \(the checkpoint of the forwarder "
                                              rf"before the upgrade\) is not a valid checkpoint .*kubectl -n {NS} "
                                              rf"delete configmap {v03.CHECKPOINT}"):
        _store(api).claim()
    assert not api.objects[STATE].get("data")


def test_without_get_on_the_0_3_checkpoint_the_first_start_says_what_grants_it(api: FakeKubeApi) -> None:
    api.rbac = _rbac(previous=False)
    with pytest.raises(CheckpointError, match=rf"GET configmap {NS}/{v03.CHECKPOINT}: HTTP 403 .*the AuditForwarder "
                                              "component of the same version grants it"):
        _store(api).claim()


# --- the 0.3 Lease is waited for ---------------------------------------------------------------------------------


def _gate(api: FakeKubeApi, clock: FakeClock) -> PreviousLease:
    return PreviousLease(api.client(), NS, v03.LEASE, clock=clock, duration_seconds=DURATION)


def _look_until_free(gate: PreviousLease, clock: FakeClock, limit: float, during: Any = None) -> float | None:
    """Look as the replica does (waiting what each look says) until the Lease is free for good: the simulated seconds
    that took, or None when it was not within ``limit``. ``during(t)`` acts at each look, t seconds in."""
    start = clock.now
    while clock.now - start <= limit:
        if during is not None:
            during(clock.now - start)
        pause = gate.step()
        if pause <= 0:
            return clock.now - start
        clock.now += pause
    return None


class _Renewing:
    """A 0.3 replica holding its Lease: renews every third of the duration (0.3's cadence) until ``stop_at``, then
    releases it (a clean stop) or, ``killed``, just stops renewing."""

    def __init__(self, holder: v03.Holder03, stop_at: float, killed: bool = False) -> None:
        self.holder, self.stop_at, self.killed = holder, stop_at, killed
        self.next = 0.0
        self.stopped_at: float | None = None

    def __call__(self, t: float) -> None:
        if self.stopped_at is not None:
            return
        if t >= self.stop_at:
            if not self.killed:
                self.holder.release()
            self.stopped_at = t
        elif t >= self.next:
            self.holder.renew()
            self.next = t + DURATION / 3


def test_the_new_replica_waits_while_a_0_3_holder_renews_and_goes_on_within_the_duration_after_it_released(
        api: FakeKubeApi, caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    holder = v03.Holder03(api, duration_seconds=DURATION, now=clock)
    holder.acquire()
    renewing = _Renewing(holder, stop_at=10 * DURATION)
    with caplog.at_level(logging.INFO, logger="forwarder.upgrade"):
        took = _look_until_free(_gate(api, clock), clock, 20 * DURATION, renewing)
    assert took is not None and renewing.stopped_at is not None
    after_release = took - renewing.stopped_at
    # Not before a 0.3 standby would have taken the released Lease (half the duration), within the duration.
    assert quiet_seconds(DURATION) <= after_release <= DURATION, after_release
    assert caplog.messages == [
        "waiting until the Lease of the forwarder before the upgrade is free (the rolling update stops its replicas)",
        "the Lease of the forwarder before the upgrade is free: its replicas are gone"]
    assert {method for method, _ in api.requests} == {"GET"} and api.denied == []


def test_a_0_3_standby_that_takes_the_released_lease_keeps_the_new_replica_waiting_until_it_stops_too(
        api: FakeKubeApi) -> None:
    clock = FakeClock()
    first = v03.Holder03(api, "fwd-03-a", duration_seconds=DURATION, now=clock)
    second = v03.Holder03(api, "fwd-03-b", duration_seconds=DURATION, now=clock)
    first.acquire()
    holding = _Renewing(first, stop_at=DURATION)  # the rolling update stops the holder first ...
    standby = _Renewing(second, stop_at=4 * DURATION)  # ... and its standby takes the free Lease at its next look

    def rolling_update(t: float) -> None:
        holding(t)
        if holding.stopped_at is not None and t > holding.stopped_at:
            standby(t)

    took = _look_until_free(_gate(api, clock), clock, 20 * DURATION, rolling_update)
    assert took is not None and standby.stopped_at is not None
    assert api.lease(v03.LEASE).get("leaseTransitions") == 1  # the standby did hold it, in the next term
    assert standby.stopped_at + quiet_seconds(DURATION) <= took <= standby.stopped_at + DURATION


def test_a_killed_0_3_holder_is_waited_for_until_its_lease_expired_and_half_a_duration_more(api: FakeKubeApi) -> None:
    clock = FakeClock()
    holder = v03.Holder03(api, duration_seconds=DURATION, now=clock)
    holder.acquire()
    renewing = _Renewing(holder, stop_at=2 * DURATION, killed=True)
    took = _look_until_free(_gate(api, clock), clock, 20 * DURATION, renewing)
    assert took is not None and renewing.stopped_at is not None
    last_renewal = renewing.next - DURATION / 3
    # Its holder stops holding by its own clock within the duration of its last renewal; then a 0.3 standby would
    # have taken it within the quiet time. Seen from here, a look (a tenth of the duration) may come late.
    assert last_renewal + DURATION + quiet_seconds(DURATION) <= took <= (
        last_renewal + DURATION + quiet_seconds(DURATION) + DURATION / 10 + 0.01)


def test_a_0_3_lease_deleted_while_held_is_waited_for_as_if_it_had_expired(api: FakeKubeApi) -> None:
    clock = FakeClock()
    v03.Holder03(api, duration_seconds=DURATION, now=clock).acquire()
    gate = _gate(api, clock)
    assert gate.step() > 0
    del api.leases[v03.LEASE]  # kubectl delete: its holder learns it only at its next renewal
    took = _look_until_free(gate, clock, 20 * DURATION)
    assert took is not None and DURATION + quiet_seconds(DURATION) - DURATION / 10 <= took


def test_a_fresh_install_without_a_0_3_lease_goes_on_at_the_first_look_and_says_nothing(
        api: FakeKubeApi, caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    with caplog.at_level(logging.DEBUG):
        assert _gate(api, clock).step() == 0.0
    assert [r for r in caplog.records if r.name.startswith("forwarder")] == []
    assert _paths(api, v03.LEASE) == [("GET", v03.LEASE)]


def test_a_0_3_lease_that_cannot_be_read_keeps_the_replica_waiting_logged_at_the_first_and_every_tenth_look(
        api: FakeKubeApi, caplog: pytest.LogCaptureFixture) -> None:
    api.rbac = _rbac(previous=False)
    clock = FakeClock()
    with caplog.at_level(logging.ERROR, logger="forwarder.upgrade"):
        assert _look_until_free(_gate(api, clock), clock, 30 * DURATION / 10 - 0.01) is None
    assert len(caplog.records) == 3  # looks 1, 11 and 21 of 30
    assert f"the service account needs get on leases {v03.LEASE} in namespace {NS}" in caplog.records[0].error


def test_a_replica_started_after_the_carry_over_does_not_wait_for_the_0_3_lease(api: FakeKubeApi) -> None:
    v03.write_checkpoint(api, _checkpoint_03())
    _store(api).claim()  # the first new replica carried it over
    clock = FakeClock()
    v03.Holder03(api, duration_seconds=DURATION, now=clock).acquire()  # whatever the 0.3 Lease says
    health = Health(60.0)
    assert _wait_for_previous(_gate(api, clock), _store(api), health=health, stop=threading.Event())
    assert _paths(api, v03.LEASE) == []  # one read of its own positions told it: only a replica that waited wrote them
    assert health.ready()


def test_a_stop_while_waiting_for_the_0_3_lease_ends_the_wait(api: FakeKubeApi) -> None:
    clock = FakeClock()
    v03.Holder03(api, duration_seconds=DURATION, now=clock).acquire()
    stop = threading.Event()
    health = Health(60.0)

    class Stopping(FakeClock):
        def wait(self, seconds: float, event: threading.Event) -> bool:
            stop.set()
            return super().wait(seconds, event)

    gate = PreviousLease(api.client(), NS, v03.LEASE, clock=Stopping(), duration_seconds=DURATION)
    assert not _wait_for_previous(gate, _store(api), health=health, stop=stop)
    assert health.ready()  # a replica waiting is doing its job: the rolling update goes on and stops the 0.3 ones


# --- what is delivered across the upgrade --------------------------------------------------------------------------


@pytest.mark.parametrize(("how", "duplicates"), [
    ("stopped", (0, 0)),  # SIGTERM, as a rolling update stops it: its last save has everything it delivered
    ("killed", (0, 20 * 60)),  # SIGKILL: its hashes were saved at most a minute before (0.3's default)
    ("hashes missing", (1, 20 * 11 * 60)),  # nothing to dedup with: the open window is sent again
])
def test_after_the_upgrade_nothing_is_lost_nothing_is_read_back_from_the_lookback_and_duplicates_are_what_the_0_3_save_allows(  # noqa: E501
        api: FakeKubeApi, how: str, duplicates: tuple[int, int]) -> None:
    clock = FakeClock()
    logs = FakeLogs(clock)
    # Events written half an hour before the 0.3 forwarder started: 0.3 started at "now" and never read them; a
    # start from --start-at (an hour back) would.
    before = [logs.add(STREAM, ts, make_event(ts, size=300)[1], visible_at=clock.now - 1700)
              for ts in range(int((clock.now - 1800) * 1000), int((clock.now - 1790) * 1000), 100)]
    first = Harness(clock=clock, logs=logs, start_at=StartAt("now", seconds_ago=0),
                    checkpoint_interval_seconds=10.0, checkpoint_hashes_interval_seconds=60.0)
    first.with_store(v03.Store03(api))
    ids = steady_load(first, 20, 420, size=300)  # 7 minutes at 20 events/s
    if how == "stopped":
        assert first.checkpointer is not None
        first.checkpointer.tick(final=True)
    elif how == "hashes missing":
        del api.objects[v03.HASHES]
    store = _store(api)
    carried = store.claim()
    assert carried is not None
    second = Harness(clock=clock, logs=logs, checkpoint=carried, start_at=StartAt("ago", seconds_ago=3600))
    second.with_store(store, resumed=True)
    more = steady_load(second, 20, 60, size=300)
    second.run_until(clock.now + 700)
    for event_id in ids + more:
        assert first.delivered[event_id] + second.delivered[event_id] >= 1, "lost"
    assert not any(second.delivered[i] for i in before), "read back from the lookback"
    sent_twice = sum(1 for i in ids if first.delivered[i] and second.delivered[i])
    assert duplicates[0] <= sent_twice <= duplicates[1], sent_twice
    assert api.denied == []


# --- the flags ---------------------------------------------------------------------------------------------------

RUN = ["run", "--log-group", GROUP, "--falco-url", "http://falco:9765/k8s-audit",
       "--checkpoint", f"configmap:{NS}/{STATE}", "--lease", f"{NS}/{LEASE}"]


def test_the_upgrade_flags_come_from_flags_or_the_environment_and_are_off_without_them() -> None:
    flags = parse([*RUN, "--migrate-from", f"configmap:{NS}/{v03.CHECKPOINT}", "--wait-for-lease", f"{NS}/{v03.LEASE}"],
                  {})
    env = parse(RUN, {"FORWARDER_MIGRATE_FROM": f"configmap:{NS}/{v03.CHECKPOINT}",
                      "FORWARDER_WAIT_FOR_LEASE": f"{NS}/{v03.LEASE}"})
    for config in (flags, env):
        assert isinstance(config, RunConfig)
        assert config.migrate_from == CheckpointSpec("configmap", namespace=NS, name=v03.CHECKPOINT)
        assert config.wait_for_lease == LeaseSpec(NS, v03.LEASE)
    plain = parse(RUN, {})
    assert isinstance(plain, RunConfig) and plain.migrate_from is None and plain.wait_for_lease is None
    alone = parse([*RUN[:5], "--wait-for-lease", f"{NS}/{v03.LEASE}"], {})  # one replica, no checkpoint: allowed
    assert isinstance(alone, RunConfig) and alone.wait_for_lease == LeaseSpec(NS, v03.LEASE)


@pytest.mark.parametrize(("argv", "flag", "says"), [
    ([*RUN, "--migrate-from", f"file:/var/lib/{v03.CHECKPOINT}"], "--migrate-from", "configmap:NAMESPACE/NAME"),
    ([*RUN, "--migrate-from", v03.CHECKPOINT], "--migrate-from", "configmap:NAMESPACE/NAME"),
    ([*RUN, "--migrate-from", "configmap:Falco/x"], "--migrate-from", "valid namespace"),
    ([*RUN[:5], "--migrate-from", f"configmap:{NS}/{v03.CHECKPOINT}"], "--migrate-from",
     "needs --checkpoint configmap"),
    ([*RUN, "--migrate-from", f"configmap:{NS}/{STATE}"], "--migrate-from", "names ConfigMaps of --checkpoint itself"),
    ([*RUN, "--migrate-from", f"configmap:{NS}/{STATE}-hashes-2"], "--migrate-from", "of --checkpoint itself"),
    ([*RUN, "--wait-for-lease", v03.LEASE], "--wait-for-lease", "NAMESPACE/NAME"),
    ([*RUN, "--wait-for-lease", f"{NS}/{LEASE}"], "--wait-for-lease", "is --lease itself"),
])
def test_bad_upgrade_flags_stop_with_one_line_naming_the_flag(argv: list[str], flag: str, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(argv, {})
    assert str(info.value).startswith(f"{flag}: ") and says in str(info.value) and "\n" not in str(info.value)


def test_another_namespace_may_hold_a_configmap_of_the_same_name() -> None:
    config = parse([*RUN, "--migrate-from", f"configmap:old-forwarder/{STATE}"], {})
    assert isinstance(config, RunConfig) and config.migrate_from == CheckpointSpec(
        "configmap", namespace="old-forwarder", name=STATE)
