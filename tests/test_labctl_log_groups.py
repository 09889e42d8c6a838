"""The log group EKS recreates after the cluster is gone: deleted until it stays gone, and never another's.

Against moto in server mode with the real boto3 clients; EKS's revival is a background thread that
recreates the group (untagged, as EKS does) a moment after it was deleted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from support.moto_server import MotoServer, moto, moto_server  # noqa: F401  (pytest fixtures)

from labctl.errors import LabError
from labctl.log_groups import (
    FoundGroup,
    LogGroups,
    Owner,
    Ownership,
    Wait,
    clear_leftover_before_up,
    duration,
    ownership,
    remove_after_destroy,
)

CLUSTER = "falco-eks-lab-dev"
GROUP = f"/aws/eks/{CLUSTER}/cluster"
OURS = Owner("falco-eks-lab", "dev")
OUR_TAGS = {"pulumi:project": "falco-eks-lab", "pulumi:stack": "dev"}
QA_TAGS = {"pulumi:project": "falco-eks-lab", "pulumi:stack": "qa"}


@pytest.fixture
def groups(moto: MotoServer) -> LogGroups:  # noqa: F811
    return LogGroups(moto.client("logs"), moto.client("eks"))


def exists(groups: LogGroups, name: str = GROUP) -> bool:
    return groups.find(name) is not None


def create(groups: LogGroups, name: str = GROUP, tags: dict[str, str] | None = None) -> None:
    groups.logs.create_log_group(logGroupName=name, **({"tags": tags} if tags else {}))


def create_cluster(groups: LogGroups, name: str = CLUSTER) -> None:
    groups.eks.create_cluster(
        name=name, roleArn="arn:aws:iam::123456789012:role/eks", resourcesVpcConfig={"subnetIds": []}
    )


class Revival:
    """Like EKS after the cluster is gone: once the group is deleted, recreate it (untagged) a moment later."""

    def __init__(self, groups: LogGroups) -> None:
        self.groups = groups
        self.stop = threading.Event()
        self.times: list[float] = []  # when it recreated the group
        self.thread: threading.Thread | None = None

    def start(self, times: int, delay: float) -> None:
        self.thread = threading.Thread(target=self._run, args=(times, delay), daemon=True)
        self.thread.start()

    def _run(self, times: int, delay: float) -> None:
        while len(self.times) < times and not self.stop.is_set():
            if exists(self.groups):
                self.stop.wait(0.02)
                continue
            if not self.stop.wait(delay):
                create(self.groups)
                self.times.append(time.monotonic())


@pytest.fixture
def eks_revives(groups: LogGroups) -> Iterator[Revival]:
    revival = Revival(groups)
    yield revival
    revival.stop.set()
    # Joined, so that a create already under way cannot land in the next test's (reset) moto.
    if revival.thread is not None:
        revival.thread.join(10)
        assert not revival.thread.is_alive()


# --- whose a group is --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tags", "cluster_exists", "untagged_is_ours", "expected"),
    [
        (OUR_TAGS, False, False, Ownership.THIS_STACK),
        (QA_TAGS, False, True, Ownership.OTHER_STACK),
        ({"pulumi:stack": "dev"}, False, True, Ownership.OTHER_STACK),  # half the tags: not provably ours
        ({}, False, True, Ownership.THIS_STACK),  # EKS-recreated, the name is certainly ours
        ({}, False, False, Ownership.UNKNOWN),
        (OUR_TAGS, True, True, Ownership.LIVE_CLUSTER),  # a running cluster keeps its group, whatever the tags
        ({}, True, True, Ownership.LIVE_CLUSTER),
    ],
)
def test_ownership(tags, cluster_exists, untagged_is_ours, expected):
    group = FoundGroup(GROUP, tags)
    assert ownership(group, OURS, cluster_exists, untagged_is_ours) is expected


def test_find_reads_the_tags_and_ignores_groups_that_only_share_the_prefix(groups):
    create(groups, GROUP + "-other", OUR_TAGS)
    assert groups.find(GROUP) is None
    create(groups, GROUP, OUR_TAGS)
    found = groups.find(GROUP)
    assert found is not None and found.owner == OURS


# --- after `pulumi destroy` ----------------------------------------------------------------------------------


def test_group_that_comes_back_after_deletion_is_deleted_until_it_stays_gone(groups, eks_revives):
    create(groups)  # EKS already recreated it once when destroy returned
    eks_revives.start(times=2, delay=1.0)
    said: list[str] = []
    started = time.monotonic()
    remove_after_destroy(groups, GROUP, CLUSTER, OURS, Wait(quiet_seconds=1.5, max_wait_seconds=20), said.append)
    finished = time.monotonic()
    assert not exists(groups)
    assert len(eks_revives.times) == 2
    assert sum("Deleted" in line for line in said) == 3
    assert "3 times now" in said[-2]
    assert said[-1].endswith("has stayed gone for 1.5s: no log group of the lab is left.")
    # It waited the quiet period after the last revival, not less.
    assert finished - eks_revives.times[-1] >= 1.5
    assert finished - started < 15


def test_wait_is_bounded_when_the_group_keeps_coming_back(groups, eks_revives):
    create(groups)
    eks_revives.start(times=1000, delay=0.1)
    said: list[str] = []
    with pytest.raises(LabError) as caught:
        remove_after_destroy(groups, GROUP, CLUSTER, OURS, Wait(quiet_seconds=0.5, max_wait_seconds=1.5), said.append)
    assert "kept coming back" in caught.value.message
    assert "make down STACK=dev" in caught.value.message  # what to do: run it again later


def test_group_of_a_running_cluster_is_left_alone(groups):
    create(groups, tags=OUR_TAGS)
    create_cluster(groups)
    said: list[str] = []
    remove_after_destroy(groups, GROUP, CLUSTER, OURS, Wait(0.2, 5), said.append)
    assert exists(groups)
    assert "Left alone: an EKS cluster named falco-eks-lab-dev runs" in said[-1]


def test_group_another_stack_owns_is_never_deleted(groups):
    create(groups, tags=QA_TAGS)
    said: list[str] = []
    remove_after_destroy(groups, GROUP, CLUSTER, OURS, Wait(0.2, 5), said.append)
    assert exists(groups)
    assert "belongs to stack falco-eks-lab/qa" in said[-1]


def test_default_wait_is_five_quiet_minutes_with_progress_every_minute(groups):
    now = [1000.0]
    said: list[str] = []

    def sleep(seconds: float) -> None:
        now[0] += seconds

    remove_after_destroy(groups, GROUP, CLUSTER, OURS, Wait(), said.append, clock=lambda: now[0], sleep=sleep)
    assert now[0] - 1000.0 == 300.0  # polled every 15 s until 5 minutes without the group
    assert "must stay gone for 5m (at most 20m in all" in said[0]
    progress = [line for line in said if line.startswith("  ...")]
    assert len(progress) == 4  # at 1, 2, 3 and 4 minutes
    assert "gone for 2m of 5m (waited 2m of at most 20m)" in progress[1]


# --- before `pulumi up` --------------------------------------------------------------------------------------


def test_leftover_of_this_stack_by_its_tags_is_removed_before_up(groups):
    create(groups, tags=OUR_TAGS)
    said: list[str] = []
    clear_leftover_before_up(groups, GROUP, CLUSTER, OURS, managed=False, name_is_derived=False, say=said.append)
    assert not exists(groups)
    assert "tagged pulumi:stack=dev" in said[0]


def test_untagged_leftover_under_the_stacks_derived_name_is_removed_before_up(groups):
    create(groups)
    said: list[str] = []
    clear_leftover_before_up(groups, GROUP, CLUSTER, OURS, managed=False, name_is_derived=True, say=said.append)
    assert not exists(groups)
    assert "default cluster name" in said[0]


def test_untagged_group_under_an_explicit_name_is_kept_and_up_says_what_to_do(groups):
    create(groups, "/aws/eks/workshop/cluster")
    with pytest.raises(LabError) as caught:
        clear_leftover_before_up(
            groups, "/aws/eks/workshop/cluster", "workshop", OURS, managed=False, name_is_derived=False, say=print
        )
    assert exists(groups, "/aws/eks/workshop/cluster")
    message = caught.value.message
    assert "make down STACK=dev" in message
    assert "aws logs delete-log-group --log-group-name /aws/eks/workshop/cluster --region us-west-2" in message
    assert "make config KEY=clusterName" in message


def test_group_another_stack_owns_stops_up_and_is_kept(groups):
    create(groups, tags=QA_TAGS)
    with pytest.raises(LabError) as caught:
        clear_leftover_before_up(groups, GROUP, CLUSTER, OURS, managed=False, name_is_derived=True, say=print)
    assert exists(groups)
    assert "belongs to stack falco-eks-lab/qa" in caught.value.message
    assert "make config KEY=clusterName VALUE=<another name>" in caught.value.message


def test_group_of_a_running_cluster_stops_up_and_is_kept(groups):
    create(groups)
    create_cluster(groups)
    with pytest.raises(LabError):
        clear_leftover_before_up(groups, GROUP, CLUSTER, OURS, managed=False, name_is_derived=True, say=print)
    assert exists(groups)


def test_group_in_the_stacks_state_is_left_to_pulumi(groups):
    create(groups, tags=OUR_TAGS)
    clear_leftover_before_up(groups, GROUP, CLUSTER, OURS, managed=True, name_is_derived=True, say=print)
    assert exists(groups)


@pytest.mark.parametrize(("seconds", "text"), [(300, "5m"), (150, "2m30s"), (45, "45s"), (0.5, "0.5s"), (1200, "20m")])
def test_duration(seconds, text):
    assert duration(seconds) == text
