"""Two real forwarder processes (`python -m forwarder run --lease ...`) sharing one Lease and one checkpoint in
the Kubernetes API stand-in (support/kube_api.py, enforcing the forwarder's RBAC, holding the objects the stack
creates), reading moto in server mode,
each delivering to its own receiver (so the receivers say which replica delivered what).

The Lease duration is 2 s. The takeover is checked on the Lease's writes as the stand-in recorded them (who,
in which term, in which order); every wait is a bounded poll."""

# ruff: noqa: F811 - pytest fixtures imported from support/ (moto, started) are parameters here by design

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.falco_receiver import FalcoReceiver
from support.forwarder_process import ForwarderProcess, forwarder_env, started, wait_until  # noqa: F401 - fixture
from support.kube_api import FakeKubeApi, KubeWrite, Rbac
from support.moto_server import (  # noqa: F401 - pytest fixtures
    MotoServer,
    create_log_group,
    create_subscribed_stream,
    moto,
    moto_server,
    now_ms,
    put_batch,
)

GROUP = "/aws/eks/lease/cluster"
NS, LEASE, CHECKPOINT = "forwarder", "audit-forwarder-leader", "audit-checkpoint"
DURATION = 2.0
POLL = DURATION / 10  # a standby's look at the Lease (forwarder/replicas/lease.py)


@pytest.fixture
def kube() -> Iterator[FakeKubeApi]:
    with FakeKubeApi(None, rbac=Rbac.forwarder(LEASE, CHECKPOINT)) as api:
        api.create_like_the_stack(NS, CHECKPOINT, LEASE)  # as the AuditForwarder component does
        yield api


@pytest.fixture
def receivers() -> Iterator[dict[str, FalcoReceiver]]:
    with FalcoReceiver(keep_events=True) as a, FalcoReceiver(keep_events=True) as b:
        yield {"fwd-a": a, "fwd-b": b}


def _forwarder(tmp_path: Path, moto: MotoServer, kube: FakeKubeApi, receiver: FalcoReceiver, identity: str,
               source: str) -> ForwarderProcess:
    args = ["run", "--log-group", GROUP, "--falco-url", receiver.url, "--source", source, "--start-at", "15m",
            "--poll-interval", "0.2", "--max-requests-per-second", "20",
            "--checkpoint", f"configmap:{NS}/{CHECKPOINT}", "--kube-api-url", kube.url,
            "--checkpoint-interval", "0.2", "--checkpoint-hashes-interval", "0",
            "--lease", f"{NS}/{LEASE}", "--lease-duration", f"{DURATION:g}", "--lease-identity", identity]
    return ForwarderProcess(args, forwarder_env(moto.env()), tmp_path / f"{identity}.log")


def _put_batch(moto: MotoServer, count: int) -> set[str]:
    return put_batch(moto, GROUP, count, now_ms() - 5_000)


def _lease_writes(kube: FakeKubeApi, holder: str) -> list[KubeWrite]:
    return [w for w in kube.successful_writes("leases") if w.holder == holder]


def _checkpointed(kube: FakeKubeApi, receiver: FalcoReceiver, holder: str) -> Callable[[], bool]:
    """True once ``holder`` saved its positions after the last request ``receiver`` answered so far."""
    answered = max(r.at for r in receiver.requests)
    return lambda: any(w.name == CHECKPOINT and w.holder == holder and w.wall > answered
                       for w in kube.successful_writes("configmaps"))


def _delivered(receivers: dict[str, FalcoReceiver]) -> set[str]:
    return receivers["fwd-a"].unique_ids | receivers["fwd-b"].unique_ids


def _start_leader_and_standby(tmp_path: Path, moto: MotoServer, kube: FakeKubeApi,
                              receivers: dict[str, FalcoReceiver], started: list[ForwarderProcess], source: str
                              ) -> tuple[ForwarderProcess, ForwarderProcess]:
    a = _forwarder(tmp_path, moto, kube, receivers["fwd-a"], "fwd-a", source)
    started.append(a.start())
    wait_until("fwd-a holds the Lease", lambda: kube.lease(LEASE).get("holderIdentity") == "fwd-a", a)
    b = _forwarder(tmp_path, moto, kube, receivers["fwd-b"], "fwd-b", source)
    started.append(b.start())
    wait_until("fwd-b stands by", lambda: b.scrape() is not None and b.metric("forwarder_active") == 0
               and b.metric("forwarder_lease_term") == -1, b)
    return a, b


def _assert_standby_probes(standby: ForwarderProcess) -> None:
    assert standby.health("/healthz") == 200 and standby.health("/readyz") == 200
    assert standby.metric("forwarder_active") == 0


def _assert_rbac_and_terms(kube: FakeKubeApi) -> None:
    assert kube.denied == [], f"requests outside the forwarder's Role: {kube.denied}"
    puts = [w for w in kube.writes if w.method == "PUT"]
    assert all(w.version is not None for w in puts), "every update is a compare-and-swap on the resourceVersion"


def test_killed_leader_is_replaced_within_the_lease_duration_and_nothing_is_lost(
        tmp_path: Path, moto: MotoServer, kube: FakeKubeApi, receivers: dict[str, FalcoReceiver],
        started: list[ForwarderProcess]) -> None:
    create_log_group(moto.client("logs"), GROUP)
    a, b = _start_leader_and_standby(tmp_path, moto, kube, receivers, started, "cloudwatch")
    _assert_standby_probes(b)
    first = _put_batch(moto, 300)
    wait_until("fwd-a delivered the first batch", lambda: first <= receivers["fwd-a"].unique_ids, a)
    wait_until("fwd-a checkpointed it", _checkpointed(kube, receivers["fwd-a"], "fwd-a"), a)
    second = _put_batch(moto, 300)  # in flight, or not yet read, when the leader dies

    a.kill()
    third = _put_batch(moto, 300)
    wait_until("fwd-b delivered everything", lambda: first | second | third <= _delivered(receivers), b)

    assert a.proc is not None and a.proc.returncode == -signal.SIGKILL
    last_a = _lease_writes(kube, "fwd-a")[-1]
    first_b = _lease_writes(kube, "fwd-b")[0]
    assert first_b.term == last_a.term + 1 == 1
    took_over = first_b.at - last_a.at
    # Not before the Lease ran out (less the standby's look), and within the duration (plus the scheduling
    # noise of a shared machine).
    assert DURATION - POLL <= took_over <= DURATION + 2.0, took_over
    assert "resuming from checkpoint" in b.output()
    assert b.metric("forwarder_active") == 1 and b.metric("forwarder_lease_term") == 1
    # The first batch was acknowledged and checkpointed before the kill: the new holder does not send it again.
    assert not first & receivers["fwd-b"].unique_ids
    assert receivers["fwd-a"].unique_ids & receivers["fwd-b"].unique_ids <= second
    assert receivers["fwd-a"].violations == [] and receivers["fwd-b"].violations == []
    _assert_rbac_and_terms(kube)


def test_paused_leader_resumed_after_its_lease_delivers_and_writes_nothing(
        tmp_path: Path, moto: MotoServer, kube: FakeKubeApi, receivers: dict[str, FalcoReceiver],
        started: list[ForwarderProcess]) -> None:
    arn = create_subscribed_stream(moto, GROUP)
    a, b = _start_leader_and_standby(tmp_path, moto, kube, receivers, started, f"kinesis:{arn}")
    first = _put_batch(moto, 200)
    wait_until("fwd-a delivered the first batch", lambda: first <= receivers["fwd-a"].unique_ids, a)
    wait_until("fwd-a checkpointed it", _checkpointed(kube, receivers["fwd-a"], "fwd-a"), a)

    receivers["fwd-a"].slow(1.0)  # so that the leader has deliveries in flight when it is paused
    second = _put_batch(moto, 200)
    time.sleep(0.3)
    os.kill(a.pid, signal.SIGSTOP)
    try:
        third = _put_batch(moto, 200)
        wait_until("fwd-b took over and delivered what came since",
                   lambda: first | second | third <= _delivered(receivers), b)
    finally:
        resumed_wall, resumed = time.time(), time.monotonic()
        os.kill(a.pid, signal.SIGCONT)
    wait_until("the resumed fwd-a knows it lost the Lease",
               lambda: a.metric("forwarder_lease_events_total", event="lost") >= 1, a)
    wait_until("the resumed fwd-a stands by", lambda: a.metric("forwarder_active") == 0, a)
    fourth = _put_batch(moto, 200)
    wait_until("fwd-b delivered the fourth batch", lambda: fourth <= receivers["fwd-b"].unique_ids, b)

    assert a.alive() and b.alive()
    _assert_standby_probes(a)
    assert "lease lost: another replica holds the Lease now" in a.output()
    # The stale leader sent at most what had passed its last check before the pause: one request per
    # connection (--falco-connections 1).
    late = [r for r in receivers["fwd-a"].requests if r.at > resumed_wall]
    assert len(late) <= 1, late
    assert not fourth & receivers["fwd-a"].unique_ids
    # Sent twice at most: what the paused leader had in flight, unacknowledged, when the new holder took over.
    assert receivers["fwd-a"].unique_ids & receivers["fwd-b"].unique_ids <= second
    # Its term's writes all landed before the new term's first one: nothing of the stale term overwrote the
    # new holder's checkpoint, and it never wrote the Lease again.
    first_b = min(w.at for w in kube.successful_writes("configmaps") if w.holder == "fwd-b")
    stale = [w for w in kube.successful_writes() if w.holder == "fwd-a" and w.at > first_b]
    assert stale == [], stale
    assert all(w.at < resumed for w in kube.successful_writes() if w.holder == "fwd-a")
    assert kube.lease(LEASE)["holderIdentity"] == "fwd-b"

    # A clean stop (SIGTERM) releases the Lease: the old leader, standing by, takes over at its next look.
    assert b.terminate(10) == 0
    wait_until("fwd-a holds the Lease again", lambda: kube.lease(LEASE).get("holderIdentity") == "fwd-a", a)
    released = [w for w in kube.successful_writes("leases") if w.holder is None]
    assert released and kube.lease(LEASE)["leaseTransitions"] == 2
    fifth = _put_batch(moto, 100)
    wait_until("fwd-a delivers again", lambda: fifth <= receivers["fwd-a"].unique_ids, a)
    _assert_rbac_and_terms(kube)
