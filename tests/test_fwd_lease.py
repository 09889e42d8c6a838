"""LeaseElector (forwarder/replicas/lease.py) against the Kubernetes API stand-in, on a simulated clock: acquiring,
renewing, two candidates, the end of a term, release, and the fenced checkpoint (forwarder/checkpoint/store.py).

The stand-in enforces the AuditForwarder component's Roles (get and update by name, no create) and holds what
the stack creates (the empty Lease and ConfigMaps); the ``older`` stand-in is a stack from before, which let the
forwarder create them (the create paths, still taken where allowed)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fwd_fakes import FakeClock
from support.kube_api import STACK_LABELS, FakeKubeApi, Rbac

from forwarder.checkpoint.codec import BucketState, Positions, Remembered
from forwarder.checkpoint.store import ConfigMapCheckpointStore, FencedError, Term, hashes_names
from forwarder.config import ConfigError, LeaseSpec, RunConfig, parse
from forwarder.metrics import Metrics
from forwarder.replicas.lease import LeaseElector

NS, LEASE, CHECKPOINT = "forwarder", "audit-forwarder-leader", "audit-checkpoint"
DURATION = 15.0


@pytest.fixture
def api() -> Iterator[FakeKubeApi]:
    with FakeKubeApi(None, rbac=Rbac.forwarder(LEASE, CHECKPOINT)) as server:
        server.create_like_the_stack(NS, CHECKPOINT, LEASE)
        yield server


@pytest.fixture
def older() -> Iterator[FakeKubeApi]:
    """A stack from before: no Lease yet, and the forwarder may create one."""
    with FakeKubeApi(None, rbac=Rbac.older_stack(LEASE, CHECKPOINT)) as server:
        yield server


def _elector(api: FakeKubeApi, clock: FakeClock, identity: str, duration: float = DURATION) -> LeaseElector:
    return LeaseElector(api.client(), NS, LEASE, identity, duration_seconds=duration, clock=clock, metrics=Metrics())


def _value(elector: LeaseElector, name: str, **labels: str) -> float:
    value = elector.metrics.registry.get_sample_value(name, labels or None)
    return 0.0 if value is None else value


def _step_until(elector: LeaseElector, clock: FakeClock, done: Any, limit: float) -> float:
    """Step ``elector`` as its own loop would (waiting what each step says) until ``done()`` after a step; the
    clock is left at that step's time."""
    start = clock.now
    while True:
        wait = elector.step()
        if done():
            return clock.now - start
        assert clock.now - start <= limit, f"not done within {limit} simulated seconds"
        clock.now += max(0.01, wait)


def _positions(marker: int) -> Positions:
    return Positions(log_group="/aws/eks/lab/cluster", stream_prefix="kube-apiserver-audit", positions={"s": marker})


def test_the_first_candidate_takes_the_stacks_empty_lease_at_once_and_keeps_its_labels(api: FakeKubeApi) -> None:
    clock = FakeClock()
    a = _elector(api, clock, "fwd-a")
    assert not a.holding() and _value(a, "forwarder_active") == 0

    a.step()

    spec = api.lease(LEASE)
    assert spec["holderIdentity"] == "fwd-a" and spec["leaseTransitions"] == 0
    assert spec["leaseDurationSeconds"] == 15
    assert a.holding() and a.fence() == Term(0, "fwd-a")
    assert _value(a, "forwarder_active") == 1 and _value(a, "forwarder_lease_term") == 0
    assert _value(a, "forwarder_lease_events_total", event="acquired") == 1
    assert [(w.method, w.status, w.field_manager) for w in api.writes] == [("PUT", 200, "falco-eks-forwarder")]
    assert api.denied == []
    # Renewals and a release keep what the stack put on it (a later `pulumi up --refresh` sees no change).
    clock.now += a.renew_every
    a.step()
    a.release()
    assert api.leases[LEASE]["metadata"]["labels"] == STACK_LABELS


def test_where_the_forwarder_may_create_it_the_first_candidate_creates_the_lease(older: FakeKubeApi) -> None:
    a = _elector(older, FakeClock(), "fwd-a")
    a.step()
    assert a.holding() and a.fence() == Term(0, "fwd-a")
    assert [(w.method, w.status) for w in older.writes] == [("POST", 201)]


def test_holder_renews_with_its_resource_version_and_keeps_the_lease_past_its_duration(api: FakeKubeApi) -> None:
    clock = FakeClock()
    a = _elector(api, clock, "fwd-a")
    a.step()
    first = api.lease(LEASE)
    for _ in range(10):  # 10 renewals, 50 s: far past one duration
        clock.now += a.renew_every
        a.step()
    assert a.holding() and a.fence() == Term(0, "fwd-a")
    spec = api.lease(LEASE)
    assert spec["acquireTime"] == first["acquireTime"] and spec["renewTime"] > first["renewTime"]
    puts = [w for w in api.writes if w.method == "PUT"]
    assert puts and all(w.ok and w.version is not None for w in puts), "every renewal is a compare-and-swap"
    # The first PUT took the stack's Lease; every later one renewed it.
    assert _value(a, "forwarder_lease_events_total", event="renewed") == len(puts) - 1


def test_standby_waits_while_the_holder_renews_and_takes_over_within_the_duration_once_it_stops(
        api: FakeKubeApi) -> None:
    clock = FakeClock()
    a, b = _elector(api, clock, "fwd-a"), _elector(api, clock, "fwd-b")
    a.step()
    # Both run their loops for a minute: a renews every third of the duration, b never takes over.
    last_renewal = clock.now
    next_a, next_b, end = clock.now + a.renew_every, clock.now, clock.now + 60
    while clock.now < end:
        clock.now = min(next_a, next_b)
        if clock.now == next_a:
            last_renewal = clock.now
            next_a += a.step()
        if clock.now == next_b:
            next_b += max(0.01, b.step())
    assert a.holding() and not b.holding() and api.lease(LEASE)["holderIdentity"] == "fwd-a"
    assert _value(b, "forwarder_active") == 0

    # a stops renewing (killed): b takes over at most a duration after a's last renewal, not before a itself
    # has stopped acting as the holder (by a's own clock).
    clock.now = next_b
    _step_until(b, clock, b.holding, limit=2 * DURATION)
    assert last_renewal + DURATION - b.poll <= clock.now <= last_renewal + DURATION
    assert not a.holding(), "the old holder gives up before the standby takes over"
    spec = api.lease(LEASE)
    assert spec["holderIdentity"] == "fwd-b" and spec["leaseTransitions"] == 1
    assert b.fence() == Term(1, "fwd-b")


def test_a_standby_configured_with_a_longer_duration_follows_the_holders(api: FakeKubeApi) -> None:
    clock = FakeClock()
    a, b = _elector(api, clock, "fwd-a"), _elector(api, clock, "fwd-b", duration=100.0)
    a.step()
    renewed = clock.now
    _step_until(b, clock, b.holding, limit=3 * DURATION)
    assert renewed + DURATION - a.duration / 10 <= clock.now <= renewed + DURATION + b.poll
    assert not a.holding()


def test_of_two_candidates_racing_for_the_lease_only_one_wins(older: FakeKubeApi) -> None:
    api = older
    clock = FakeClock()
    b = _elector(api, clock, "fwd-b")

    def rival_first(method: str, resource: str, name: str) -> None:
        # Another candidate's create lands between b's read (404) and b's own create.
        api.before_write = None
        api.put(api.leases, LEASE, {"metadata": {"name": LEASE, "namespace": NS},
                                    "spec": {"holderIdentity": "fwd-c", "leaseDurationSeconds": 15,
                                             "leaseTransitions": 0}})

    api.before_write = rival_first
    b.step()
    assert not b.holding() and api.lease(LEASE)["holderIdentity"] == "fwd-c"
    assert [(w.method, w.status) for w in api.writes] == [("POST", 409)]
    assert _value(b, "forwarder_lease_events_total", event="acquired") == 0

    # Later, both standbys see the Lease expire; the rival's takeover lands first, b's (same version) conflicts.
    _step_until(b, clock, lambda: clock.now >= 1_700_000_000 + DURATION + 1, limit=2 * DURATION)

    def rival_takes_over(method: str, resource: str, name: str) -> None:
        api.before_write = None
        spec = api.leases[LEASE]["spec"]
        api.put(api.leases, LEASE, {"metadata": {"name": LEASE, "namespace": NS},
                                    "spec": {**spec, "holderIdentity": "fwd-c2",
                                             "leaseTransitions": spec["leaseTransitions"] + 1}})

    api.before_write = rival_takes_over
    writes = len(api.writes)
    _step_until(b, clock, lambda: len(api.writes) > writes, limit=2 * DURATION)
    assert [(w.method, w.status) for w in api.writes[writes:]] == [("PUT", 409)]
    assert not b.holding() and api.lease(LEASE)["holderIdentity"] == "fwd-c2"


def test_two_electors_in_threads_never_hold_the_same_term(api: FakeKubeApi) -> None:
    from forwarder.clock import SystemClock

    electors = [LeaseElector(api.client(), NS, LEASE, f"fwd-{n}", duration_seconds=1.0, clock=SystemClock(),
                             metrics=Metrics()) for n in "ab"]
    stop = threading.Event()
    threads = [threading.Thread(target=e.run, args=(stop,), daemon=True) for e in electors]
    for thread in threads:
        thread.start()
    timeout = threading.Timer(20, stop.set)  # bounds every wait below
    timeout.start()
    while not any(e.holding() for e in electors):
        assert not stop.wait(0.05), "nobody acquired the Lease"
    holder = next(e for e in electors if e.holding())
    holder.release()  # the holder gives up; the other takes over at its next look
    other = next(e for e in electors if e is not holder)
    assert other.wait_for_term(stop) is not None
    stop.set()
    timeout.cancel()
    for thread in threads:
        thread.join(5)
    for e in electors:
        e.release()
    terms: dict[int, set[str]] = {}
    for write in api.successful_writes("leases"):
        if write.holder is not None:
            terms.setdefault(write.term or 0, set()).add(write.holder)
    assert all(len(holders) == 1 for holders in terms.values()), terms
    assert len(terms) >= 2, "the release handed the Lease over"


def test_a_lease_taken_by_another_replica_ends_the_term_at_the_next_renewal(
        api: FakeKubeApi, caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    a = _elector(api, clock, "fwd-a")
    lost = threading.Event()
    a.on_lost = lost.set
    a.step()
    spec = api.leases[LEASE]["spec"]
    api.put(api.leases, LEASE, {"metadata": {"name": LEASE, "namespace": NS},
                                "spec": {**spec, "holderIdentity": "fwd-b", "leaseTransitions": 1}})
    clock.now += a.renew_every
    with caplog.at_level(logging.WARNING, logger="forwarder.lease"):
        a.step()
    assert lost.is_set() and not a.holding()
    with pytest.raises(FencedError):
        a.fence()
    assert _value(a, "forwarder_lease_events_total", event="lost") == 1 and _value(a, "forwarder_active") == 0
    assert any("lease lost" in r.getMessage() and getattr(r, "holder", None) == "fwd-b" for r in caplog.records)
    assert api.lease(LEASE)["holderIdentity"] == "fwd-b", "the loser does not write the Lease back"


def test_a_term_that_ended_stays_ended_when_the_replica_holds_the_lease_again(api: FakeKubeApi) -> None:
    """Threads of an earlier term (still finishing a request) must not act in the replica's next term."""
    clock = FakeClock()
    a, b = _elector(api, clock, "fwd-a"), _elector(api, clock, "fwd-b")
    a.step()
    first = a.fence()
    clock.now += DURATION + 1  # a paused; b takes over, then releases on a clean stop
    _step_until(b, clock, b.holding, limit=2 * DURATION)
    b.release()
    _step_until(a, clock, lambda: a.holding() and a.fence() != first, limit=3 * DURATION)
    assert a.fence() == Term(2, "fwd-a")
    assert a.holding(a.fence()) and not a.holding(first)


def test_a_deleted_lease_ends_the_term_at_the_next_renewal_and_is_created_again(older: FakeKubeApi) -> None:
    api = older
    clock = FakeClock()
    a, b = _elector(api, clock, "fwd-a"), _elector(api, clock, "fwd-b")
    a.step()
    del api.leases[LEASE]  # kubectl delete lease
    b.step()
    clock.now += a.renew_every
    a.step()
    assert not a.holding() and _value(a, "forwarder_lease_events_total", event="lost") == 1
    assert b.holding() and b.fence() == Term(0, "fwd-b")


def test_a_standby_that_saw_the_lease_waits_a_duration_after_its_deletion_so_no_two_replicas_deliver(
        older: FakeKubeApi) -> None:
    api = older
    # The holder is paused (SIGSTOP) when the Lease is deleted: it cannot learn of it, and resumes believing
    # it holds until its own renewal deadline. The standby must not take over before that.
    clock = FakeClock()
    a, b = _elector(api, clock, "fwd-a"), _elector(api, clock, "fwd-b")
    a.step()
    renewed = clock.now
    clock.now += 1.0
    b.step()  # sees fwd-a holding
    del api.leases[LEASE]
    while not b.holding():
        assert not (a.holding() and b.holding())
        clock.now += b.step()  # only the standby runs: fwd-a is paused
        assert clock.now < renewed + 2 * DURATION
    assert not a.holding(), "the standby took over while the paused holder still believed it held the Lease"
    assert clock.now >= renewed + DURATION - DURATION / 10
    assert b.fence() == Term(0, "fwd-b")


def test_a_lease_created_again_free_after_a_deletion_is_taken_only_when_the_old_one_would_have_expired(
        api: FakeKubeApi) -> None:
    clock = FakeClock()
    a, b = _elector(api, clock, "fwd-a"), _elector(api, clock, "fwd-b")
    a.step()
    renewed = clock.now
    clock.now += 1.0
    b.step()  # sees fwd-a holding
    del api.leases[LEASE]  # kubectl delete lease; fwd-a is paused and does not know
    clock.now += b.step()
    api.create_like_the_stack(NS, CHECKPOINT, LEASE)  # pulumi up --refresh: created again at once, free
    while not b.holding():
        assert not (a.holding() and b.holding())
        clock.now += b.step()
        assert clock.now < renewed + 2 * DURATION
    assert not a.holding(), "the standby took the Lease while the paused holder still believed it held it"
    assert clock.now >= renewed + DURATION - DURATION / 10
    assert b.fence() == Term(0, "fwd-b")


def test_a_missing_lease_the_forwarder_may_not_create_is_named_in_one_line_at_the_first_and_every_tenth_look(
        api: FakeKubeApi, caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    del api.leases[LEASE]  # deleted by hand, or never created
    b = _elector(api, clock, "fwd-b")
    with caplog.at_level(logging.ERROR, logger="forwarder.lease"):
        while len(api.denied) < 25:
            clock.now += b.step()
    assert not b.holding()
    # Each look tries to create it and is refused (RBAC cannot grant create by name; the stack creates it).
    assert {method for method, _ in api.denied} == {"POST"}
    missing = [r for r in caplog.records if "does not exist" in r.getMessage()]
    assert [r.attempt for r in missing] == [1, 11, 21]  # type: ignore[attr-defined]
    assert missing[0].getMessage() == (
        f"Lease {NS}/{LEASE} does not exist, and this service account may not create it: the stack creates it "
        "(deleted by hand? pulumi up --refresh creates it again); standing by")
    assert len(caplog.records) == len(missing) and all(r.exc_info is None for r in caplog.records)
    api.create_like_the_stack(NS, CHECKPOINT, LEASE)
    b.step()
    assert b.holding()


def test_an_unreachable_api_ends_the_term_when_the_lease_runs_out_not_before(
        api: FakeKubeApi, caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    a = _elector(api, clock, "fwd-a")
    a.step()
    acquired = clock.now
    api.close()  # the API server goes away: every renewal fails to connect
    with caplog.at_level(logging.WARNING, logger="forwarder.lease"):
        clock.now += a.renew_every
        while a.holding():
            assert clock.now < acquired + DURATION
            clock.now += a.step()
        a.step()
    assert clock.now >= acquired + DURATION - a.margin
    assert _value(a, "forwarder_lease_events_total", event="renew_failed") >= 2
    assert _value(a, "forwarder_lease_events_total", event="lost") == 1
    messages = [r.getMessage() for r in caplog.records]
    assert any("cannot renew the Lease" in m for m in messages) and any("lease lost" in m for m in messages)


def test_a_paused_holder_stops_holding_by_its_own_clock_before_any_thread_notices(api: FakeKubeApi) -> None:
    clock = FakeClock()
    a = _elector(api, clock, "fwd-a")
    a.step()
    clock.now += DURATION - a.margin  # SIGSTOP: no renewal ran
    assert not a.holding()
    with pytest.raises(FencedError):
        a.fence()


def test_release_on_a_clean_stop_hands_the_lease_over_at_the_standbys_next_look(api: FakeKubeApi) -> None:
    clock = FakeClock()
    a, b = _elector(api, clock, "fwd-a"), _elector(api, clock, "fwd-b")
    a.step()
    b.step()
    a.release()
    assert not a.holding() and "holderIdentity" not in api.lease(LEASE)
    assert _value(a, "forwarder_lease_events_total", event="released") == 1 and _value(a, "forwarder_active") == 0
    b.step()  # no waiting for the duration: nobody holds it
    assert b.holding() and api.lease(LEASE)["holderIdentity"] == "fwd-b" and b.fence() == Term(1, "fwd-b")


def test_rbac_refusal_is_logged_with_what_the_service_account_needs(caplog: pytest.LogCaptureFixture) -> None:
    with FakeKubeApi(None, rbac=Rbac.forwarder("another-lease", CHECKPOINT)) as api:
        a = _elector(api, FakeClock(), "fwd-a")
        with caplog.at_level(logging.ERROR, logger="forwarder.lease"):
            a.step()
        path = f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases/{LEASE}"
        assert not a.holding() and api.denied == [("GET", path)]
        record = next(r for r in caplog.records if "refused a Lease request" in r.getMessage())
        assert record.status == 403 and f"get and update on leases {LEASE}" in record.error  # type: ignore[attr-defined]
        # A standby looks every tenth of the duration: a refusal that persists is counted at every look and
        # logged at the first and every tenth, not ten lines a lease.
        with caplog.at_level(logging.ERROR, logger="forwarder.lease"):
            for _ in range(24):
                a.step()
        refusals = [r for r in caplog.records if "refused a Lease request" in r.getMessage()]
        assert [r.attempt for r in refusals] == [1, 11, 21]  # type: ignore[attr-defined]
        assert _value(a, "forwarder_lease_events_total", event="look_failed") == 25


# --- the fenced checkpoint ---------------------------------------------------------------------------


def _store(api: FakeKubeApi, fence: Any) -> ConfigMapCheckpointStore:
    return ConfigMapCheckpointStore(NS, CHECKPOINT, api=api.client(), fence=fence)


def test_a_deposed_holder_cannot_write_the_checkpoint(api: FakeKubeApi) -> None:
    clock = FakeClock()
    a, b = _elector(api, clock, "fwd-a"), _elector(api, clock, "fwd-b")
    a.step()
    store_a = _store(api, a.fence)
    assert store_a.claim() is None
    store_a.save_positions(_positions(1))

    clock.now += DURATION + 1  # a paused; b takes over and claims the checkpoint
    _step_until(b, clock, b.holding, limit=2 * DURATION)
    store_b = _store(api, b.fence)
    claimed = store_b.claim()
    assert claimed is not None and claimed.positions.positions == {"s": 1}
    store_b.save_positions(_positions(2))
    before = len(api.writes)

    with pytest.raises(FencedError):  # a's own clock says it no longer holds: nothing is even sent
        store_a.save_positions(_positions(3))
    assert len(api.writes) == before
    loaded = store_b.load()
    assert loaded is not None and loaded.positions.positions == {"s": 2}


def test_a_write_sent_in_a_stale_term_is_refused_by_the_newer_terms_claim(api: FakeKubeApi) -> None:
    """The hard case: the old holder passed its check, then paused; its write arrives after the new term's
    claim. The resourceVersion it carries is stale and the ConfigMap says a newer term owns it."""
    clock = FakeClock()
    b = _elector(api, clock, "fwd-b")
    store_a = _store(api, lambda: Term(0, "fwd-a"))  # still believes it holds term 0
    store_a.save_positions(_positions(1))
    store_a.save_positions(_positions(2))
    api.put(api.leases, LEASE, {"metadata": {"name": LEASE, "namespace": NS},
                                "spec": {"holderIdentity": "fwd-a", "leaseDurationSeconds": 15,
                                         "leaseTransitions": 0}})
    clock.now += 1
    _step_until(b, clock, b.holding, limit=2 * DURATION)
    store_b = _store(api, b.fence)
    store_b.claim()
    claim_at = max(w.at for w in api.successful_writes("configmaps") if w.term == 1)

    with pytest.raises(FencedError, match="term 1"):
        store_a.save_positions(_positions(9))
    stale = [w for w in api.successful_writes("configmaps") if w.term == 0 and w.at > claim_at]
    assert stale == []
    loaded = store_b.load()
    assert loaded is not None and loaded.positions.positions == {"s": 2}


# --- the flags ----------------------------------------------------------------------------------------------

BASE = ["run", "--log-group", "/aws/eks/lab/cluster", "--falco-url", "http://falco:9765/k8s-audit",
        "--checkpoint", f"configmap:{NS}/{CHECKPOINT}"]


@pytest.mark.parametrize(("extra", "flag", "says"), [
    (["--lease", "audit-forwarder-leader"], "--lease", "NAMESPACE/NAME"),
    (["--lease", "Forwarder/leader"], "--lease", "NAMESPACE/NAME"),
    (["--lease", "forwarder/Leader_1"], "--lease", "lower-case"),
    (["--lease", f"{NS}/{LEASE}", "--lease-duration", "0"], "--lease-duration", "> 0"),
    (["--lease", f"{NS}/{LEASE}", "--lease-duration", "0.5"], "--lease-duration", "at least 1 second"),
    (["--lease", f"{NS}/{LEASE}", "--lease-duration", "soon"], "--lease-duration", "number"),
    (["--lease-duration", "0"], "--lease-duration", "> 0"),
    (["--lease", f"{NS}/{LEASE}", "--lease-identity", "x" * 254], "--lease-identity", "1-253"),
])
def test_bad_lease_flags_stop_with_a_message_naming_the_flag(extra: list[str], flag: str, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse([*BASE, *extra], {})
    assert str(info.value).startswith(f"{flag}: ") and says in str(info.value)


def test_a_lease_needs_the_shared_configmap_checkpoint() -> None:
    argv = [a for a in BASE if a not in ("--checkpoint", f"configmap:{NS}/{CHECKPOINT}")]
    for checkpoint in ([], ["--checkpoint", "file:/tmp/cp.json"]):
        with pytest.raises(ConfigError, match="^--lease: needs --checkpoint configmap"):
            parse([*argv, *checkpoint, "--lease", f"{NS}/{LEASE}"], {})


def test_lease_identity_defaults_to_the_pod_name() -> None:
    config = parse([*BASE, "--lease", f"{NS}/{LEASE}", "--lease-duration", "3"], {"POD_NAME": "audit-fwd-7d9-x2"})
    assert isinstance(config, RunConfig)
    assert (config.lease, config.lease_duration_seconds, config.lease_identity) == (
        LeaseSpec(NS, LEASE), 3.0, "audit-fwd-7d9-x2")
    plain = parse(BASE, {"POD_NAME": "audit-fwd-7d9-x2"})
    assert isinstance(plain, RunConfig) and plain.lease is None and plain.lease_identity is None


def test_a_deposed_holder_cannot_overwrite_the_checkpoint_even_after_the_lease_was_created_again(
        api: FakeKubeApi) -> None:
    """Terms restart at 0 when the Lease is deleted: the fence must not rely on a higher number winning."""
    store_a = _store(api, lambda: Term(5, "fwd-a"))  # held term 5 and still believes so (paused)
    store_a.save_positions(_positions(1))
    store_b = _store(api, lambda: Term(0, "fwd-b"))  # holder of the Lease created anew
    claimed = store_b.claim()
    assert claimed is not None and claimed.positions.positions == {"s": 1}
    store_b.save_positions(_positions(2))
    with pytest.raises(FencedError, match="fwd-b in term 0"):
        store_a.save_positions(_positions(9))
    loaded = store_b.load()
    assert loaded is not None and loaded.positions.positions == {"s": 2}
    store_b.save_positions(_positions(3))  # the holder itself goes on writing


def _remembered(start_ms: int, hashes: bytes) -> Remembered:
    return Remembered("/aws/eks/lab/cluster", "kube-apiserver-audit", (BucketState(start_ms, hashes, 1, 100),))


def test_a_takeover_claims_the_positions_and_reads_the_remembered_hashes_without_writing_them(
        api: FakeKubeApi) -> None:
    clock = FakeClock()
    a, b = _elector(api, clock, "fwd-a"), _elector(api, clock, "fwd-b")
    a.step()
    store_a = _store(api, a.fence)
    store_a.claim()
    store_a.save_positions(_positions(1))
    store_a.save_remembered(_remembered(0, b"\x01" * 8 * 1000))
    clock.now += DURATION + 1  # a paused; b takes over
    _step_until(b, clock, b.holding, limit=2 * DURATION)
    before = len(api.writes)
    claimed = _store(api, b.fence).claim()
    assert claimed is not None and claimed.hash_count() == 1000
    configmap_writes = [w for w in api.writes[before:] if w.resource == "configmaps"]
    assert [(w.name, w.term, w.holder) for w in configmap_writes] == [(CHECKPOINT, 1, "fwd-b")]


def test_a_deposed_holders_late_write_of_remembered_hashes_is_written_over_by_the_holder_who_is_not_fenced_by_it(
        api: FakeKubeApi) -> None:
    store_a = _store(api, lambda: Term(0, "fwd-a"))  # still believes it holds term 0 (paused)
    store_a.claim()
    store_a.save_positions(_positions(1))
    store_b = _store(api, lambda: Term(1, "fwd-b"))
    store_b.claim()
    part = hashes_names(CHECKPOINT)[0]
    store_a.save_remembered(_remembered(0, b"\x02" * 8))  # lands: its version of that part is still current
    assert api.objects[part]["metadata"]["annotations"]["falco-eks-forwarder/lease-term"] == "0"
    store_b.save_remembered(_remembered(0, b"\x03" * 16))  # 409, the positions are b's: written over
    loaded = store_b.load()
    assert loaded is not None and loaded.remembered is not None
    assert loaded.remembered.buckets[0].hashes == b"\x03" * 16
    with pytest.raises(FencedError, match="fwd-b in term 1"):
        store_a.save_remembered(_remembered(0, b"\x04" * 24))  # now stale: the positions name b's term
