"""The rolling update of an upgrade from release 0.3, with real processes: the real 0.3 forwarder (its code from the
project's history, support/release_0_3.py) runs on a 0.3 lab, creating its own checkpoint and Lease; `pulumi up`
then changes the Roles to what today's component renders and creates the stack's own objects; today's forwarder
starts with the component's flags beside the running 0.3 one, and the rolling update stops the 0.3 one (SIGTERM).

Moto in server mode is CloudWatch; each forwarder delivers to its own receiver (so the receivers say which one
delivered what); the Kubernetes API stand-in enforces the Roles throughout. The Lease duration is 2 s; every wait is
a bounded poll."""

# ruff: noqa: F811 - pytest fixtures imported from support/ (moto, started) are parameters here by design

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import release_0_3 as v03
from support.falco_receiver import FalcoReceiver
from support.forwarder_process import ForwarderProcess, forwarder_env, started, wait_until  # noqa: F401 - fixture
from support.kube_api import FakeKubeApi, Rbac
from support.moto_server import (  # noqa: F401 - pytest fixtures
    MotoServer,
    create_log_group,
    moto,
    moto_server,
    now_ms,
    put_batch,
)

from forwarder.checkpoint.codec import decode_positions
from forwarder.replicas.upgrade import quiet_seconds

GROUP = "/aws/eks/upgrade/cluster"
NS = v03.NAMESPACE
STATE, LEASE = "audit-forwarder-state", "audit-forwarder-lease"  # the stack's own objects today
DURATION = 2.0


@pytest.fixture
def release_0_3(tmp_path: Path) -> Path:
    root = tmp_path / "release-0.3"
    v03.checkout_or_skip(root)
    return root


@pytest.fixture
def kube() -> Iterator[FakeKubeApi]:
    """A 0.3 lab: its Roles let the forwarder create the objects, and none exists yet."""
    with FakeKubeApi(None, rbac=Rbac.older_stack(v03.LEASE, v03.CHECKPOINT)) as api:
        yield api


def _put(moto: MotoServer, count: int, age_s: float = 0.0) -> set[str]:
    """``count`` audit events, ``age_s`` old, in a new stream; their audit IDs."""
    return put_batch(moto, GROUP, count, now_ms() - int(age_s * 1000))


def _stage_cursor_ms(proc: ForwarderProcess, stage: str) -> int:
    """Up to where the re-read stage ``stage`` ("21s") of a running forwarder has read (from its metrics: it has
    ``behind`` seconds of the timeline left up to its age before now)."""
    age_s = int(stage.removesuffix("s"))
    behind = proc.metric("forwarder_read_stage_behind_seconds", stage=stage)
    return now_ms() - int((age_s + behind) * 1000)


COMMON = ["--log-group", GROUP, "--poll-interval", "0.2", "--max-requests-per-second", "20",
          "--lease-duration", f"{DURATION:g}"]


def test_a_0_3_lab_upgrades_in_place_one_forwarder_delivering_at_a_time_losing_and_repeating_nothing(
        tmp_path: Path, moto: MotoServer, kube: FakeKubeApi, release_0_3: Path, started: list[ForwarderProcess]
) -> None:
    create_log_group(moto.client("logs"), GROUP)
    early = _put(moto, 200, age_s=1200)  # written 20 minutes before 0.3 started, which started at "now"
    with FalcoReceiver(keep_events=True) as old_falco, FalcoReceiver(keep_events=True) as new_falco:
        # 0.3, as its component ran it (no --start-at: "now"), its checkpoint saved sooner than every 10 and 60 s.
        env = forwarder_env({**moto.env(), "PYTHONPATH": str(release_0_3)})
        old = ForwarderProcess(
            ["run", *COMMON, "--falco-url", old_falco.url, "--checkpoint-interval", "1",
             "--checkpoint-hashes-interval", "2", "--checkpoint", f"configmap:{NS}/{v03.CHECKPOINT}",
             "--lease", f"{NS}/{v03.LEASE}", "--lease-identity", "fwd-03", "--kube-api-url", kube.url],
            env, tmp_path / "fwd-03.log", cwd=release_0_3)
        started.append(old.start())
        wait_until("the 0.3 forwarder holds its Lease",
                   lambda: kube.lease(v03.LEASE).get("holderIdentity") == "fwd-03", old)
        first = _put(moto, 300)
        wait_until("0.3 delivered the first events", lambda: first <= old_falco.unique_ids, old)
        wait_until("0.3 created its checkpoint", lambda: {v03.CHECKPOINT, v03.HASHES} <= set(kube.objects), old)

        # pulumi up: the Roles as today's component renders them (tests/test_audit_forwarder.py), then the stack's
        # objects, then the Deployment rolls: a new replica starts beside the running 0.3 one.
        kube.rbac = Rbac.forwarder(LEASE, STATE, previous_checkpoint=v03.CHECKPOINT, previous_lease=v03.LEASE)
        kube.create_like_the_stack(NS, STATE, LEASE)
        new = ForwarderProcess(
            ["run", *COMMON, "--falco-url", new_falco.url, "--checkpoint-interval", "1",
             "--checkpoint", f"configmap:{NS}/{STATE}", "--lease", f"{NS}/{LEASE}", "--start-at", "3600s",
             "--migrate-from", f"configmap:{NS}/{v03.CHECKPOINT}", "--wait-for-lease", f"{NS}/{v03.LEASE}",
             "--lease-identity", "fwd-04", "--kube-api-url", kube.url],
            forwarder_env(moto.env()), tmp_path / "fwd-04.log")
        started.append(new.start())
        wait_until("the new replica is ready (waiting is its job: the rolling update goes on)",
                   lambda: new.health("/readyz") == 200, new)
        second = _put(moto, 300)
        wait_until("0.3 delivered what came meanwhile, under the new Roles",
                   lambda: second <= old_falco.unique_ids, old)
        waited_until = time.monotonic() + 3 * DURATION
        while time.monotonic() < waited_until:
            assert kube.lease(v03.LEASE).get("holderIdentity") == "fwd-03"
            time.sleep(0.1)
        # While 0.3 renews, the new replica has not taken its Lease, written anything or delivered anything.
        assert not [w for w in kube.writes if "fwd-04" in (w.holder, w.name)]
        assert kube.lease(LEASE) == {} and new_falco.unique_ids == set() and new.metric("forwarder_active") == 0
        third = _put(moto, 100)  # just before the rolling update stops 0.3: its 21 s stage has not read them again
        third_until = now_ms()
        wait_until("0.3 delivered them", lambda: third <= old_falco.unique_ids, old)

        assert old.terminate(timeout=20) == 0
        released = [w for w in kube.successful_writes("leases") if w.name == v03.LEASE][-1]
        assert released.holder is None, "0.3 released its Lease on SIGTERM"
        wait_until("the new replica holds its Lease", lambda: kube.lease(LEASE).get("holderIdentity") == "fwd-04", new)
        taken = next(w for w in kube.successful_writes("leases") if w.name == LEASE)
        took_over = taken.at - released.at
        # Not before a 0.3 standby would have taken the released Lease; within the Lease duration (plus the
        # scheduling noise of a shared machine).
        assert quiet_seconds(DURATION) - 0.05 <= took_over <= DURATION + 1.5, took_over
        fourth = _put(moto, 300)
        wait_until("the new replica delivered what came after", lambda: fourth <= new_falco.unique_ids, new)
        # Its 21 s stage reads again what 0.3 delivered last (0.3's had not yet): the carried-over hashes keep it from
        # sending them again. Once that stage is past them with nothing left unacknowledged, all was said.
        wait_until("the new replica's 21 s stage read 0.3's last events again",
                   lambda: _stage_cursor_ms(new, "21s") > third_until
                   and new.metric("forwarder_oldest_unacknowledged_seconds") == 0, new)

        log = new.output()
        assert "carrying over the checkpoint of the forwarder before the upgrade" in log
        assert "the Lease of the forwarder before the upgrade is free" in log
        assert first | second | third | fourth <= old_falco.unique_ids | new_falco.unique_ids, "lost"
        assert not old_falco.unique_ids & new_falco.unique_ids, "delivered by both"
        assert not early & (old_falco.unique_ids | new_falco.unique_ids), "read back from the lookback"
        assert old_falco.violations == [] and new_falco.violations == []
    # The stack's objects hold the checkpoint now; 0.3's were only read after 0.3 stopped, and stay as they were.
    assert decode_positions(kube.objects[STATE]["data"]["positions.json"].encode()).log_group == GROUP
    after = [w for w in kube.writes if w.at > released.at and w.name in (v03.CHECKPOINT, v03.HASHES, v03.LEASE)]
    assert after == []
    assert kube.denied == [], f"requests outside the Roles: {kube.denied}"
