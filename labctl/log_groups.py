"""The cluster's log group outside Pulumi: what EKS leaves behind after the cluster, and whose it is.

EKS writes its last control-plane log lines after the cluster is deleted, and recreates
/aws/eks/<cluster>/cluster to hold them: with no retention and without the stack's tags, even when the
stack deleted the cluster before the group (terraform-aws-eks #920, #2446, #2763). The next `pulumi up`
with that name then fails with ResourceAlreadyExistsException. So:

- after `pulumi destroy`, `make down` deletes the group each time it comes back, until it has stayed
  gone for a quiet period (bounded in total);
- before `pulumi up`, `make up` removes a group an earlier cluster of this stack left behind.

Whose a group is: a running cluster of that name owns it (never touched); otherwise its tags
(pulumi:project / pulumi:stack, which the stack puts on everything it creates) name the stack; a
group without them is this stack's only when the name is certainly this stack's (see `ownership`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from components.stack_config import PROJECT_TAG, STACK_TAG

from .errors import STEP_FAILED, LabError
from .stack import config_hint

Say = Callable[[str], None]

# EKS delivers control-plane logs "within a few minutes, best effort" (EKS user guide); its last lines
# are written as the control plane shuts down, before `pulumi destroy` returns. Five minutes without the
# group coming back covers that delivery delay after the last sighting; twenty bounds `make down`.
DEFAULT_QUIET_SECONDS = 300.0
DEFAULT_MAX_WAIT_SECONDS = 1200.0
MAX_POLL_SECONDS = 15.0
PROGRESS_EVERY_SECONDS = 60.0


@dataclass(frozen=True)
class Owner:
    """A Pulumi project and stack."""

    project: str
    stack: str

    def __str__(self) -> str:
        return f"{self.project}/{self.stack}"


@dataclass(frozen=True)
class FoundGroup:
    """A log group as CloudWatch Logs describes it."""

    name: str
    tags: Mapping[str, str]

    @property
    def owner(self) -> Owner | None:
        """The stack its tags name, or None if it carries no stack tags (as a group EKS recreated)."""
        if PROJECT_TAG in self.tags or STACK_TAG in self.tags:
            return Owner(self.tags.get(PROJECT_TAG, "?"), self.tags.get(STACK_TAG, "?"))
        return None


class Ownership(Enum):
    THIS_STACK = "this stack's"
    OTHER_STACK = "another stack's"
    LIVE_CLUSTER = "a running cluster's"
    UNKNOWN = "of unknown owner"


def ownership(group: FoundGroup, ours: Owner, cluster_exists: bool, untagged_is_ours: bool) -> Ownership:
    """Whose `group` is. A running cluster of its name keeps it whatever the tags say (another checkout of
    the same stack may run it); then the tags decide; an untagged group is ours only if the caller is sure
    the name is (the stack's derived default name, or the cluster `make down` just destroyed)."""
    if cluster_exists:
        return Ownership.LIVE_CLUSTER
    owner = group.owner
    if owner is None:
        return Ownership.THIS_STACK if untagged_is_ours else Ownership.UNKNOWN
    return Ownership.THIS_STACK if owner == ours else Ownership.OTHER_STACK


def _not_found(err: ClientError) -> bool:
    return err.response.get("Error", {}).get("Code") in ("ResourceNotFoundException", "NotFoundException")


class LogGroups:
    """The CloudWatch Logs and EKS calls the clean-up makes (boto3 clients passed in)."""

    def __init__(self, logs: Any, eks: Any) -> None:
        self.logs = logs
        self.eks = eks
        self.region: str = logs.meta.region_name

    def _failed(self, what: str, err: Exception) -> LabError:
        return LabError(f"{what} failed in {self.region}: {err}", STEP_FAILED)

    def find(self, name: str) -> FoundGroup | None:
        try:
            groups = self.logs.describe_log_groups(logGroupNamePrefix=name).get("logGroups", [])
            group = next((g for g in groups if g.get("logGroupName") == name), None)
            if group is None:
                return None
            arn = group.get("logGroupArn") or group["arn"].removesuffix(":*")
            tags = self.logs.list_tags_for_resource(resourceArn=arn).get("tags", {})
        except ClientError as err:
            if _not_found(err):  # deleted between the two calls
                return None
            raise self._failed(f"reading log group {name}", err) from err
        except BotoCoreError as err:
            raise self._failed(f"reading log group {name}", err) from err
        return FoundGroup(name=name, tags=dict(tags))

    def delete(self, name: str) -> None:
        try:
            self.logs.delete_log_group(logGroupName=name)
        except ClientError as err:
            if not _not_found(err):
                raise self._failed(f"deleting log group {name}", err) from err
        except BotoCoreError as err:
            raise self._failed(f"deleting log group {name}", err) from err

    def cluster_exists(self, cluster_name: str) -> bool:
        try:
            self.eks.describe_cluster(name=cluster_name)
        except ClientError as err:
            if _not_found(err):
                return False
            raise self._failed(f"looking for EKS cluster {cluster_name}", err) from err
        except BotoCoreError as err:
            raise self._failed(f"looking for EKS cluster {cluster_name}", err) from err
        return True

    def ownership(self, group: FoundGroup, cluster_name: str, ours: Owner, untagged_is_ours: bool) -> Ownership:
        return ownership(group, ours, self.cluster_exists(cluster_name), untagged_is_ours)


def duration(seconds: float) -> str:
    """5m, 2m30s, 45s, 0.5s."""
    if seconds < 10 and seconds != int(seconds):
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(round(seconds)), 60)
    if not minutes:
        return f"{rest}s"
    return f"{minutes}m{rest:02d}s" if rest else f"{minutes}m"


def _left_alone(name: str, verdict: Ownership, group: FoundGroup, cluster_name: str) -> str:
    if verdict is Ownership.LIVE_CLUSTER:
        return f"an EKS cluster named {cluster_name} runs in this account and region, so {name} is its log group"
    return f"{name} belongs to stack {group.owner} (its {PROJECT_TAG}/{STACK_TAG} tags say so)"


def clear_leftover_before_up(
    groups: LogGroups,
    name: str,
    cluster_name: str,
    ours: Owner,
    managed: bool,
    name_is_derived: bool,
    say: Say,
) -> None:
    """Before `pulumi up`: remove the group an earlier cluster of this stack left, or stop with what to do.

    `managed`: the stack's state holds the group (an update, or an interrupted `up`): nothing to do."""
    if managed:
        return
    group = groups.find(name)
    if group is None:
        return
    verdict = groups.ownership(group, cluster_name, ours, untagged_is_ours=name_is_derived)
    rename = config_hint(ours.stack, "clusterName", "<another name>", quote=False)
    if verdict is Ownership.THIS_STACK:
        why = (
            f"tagged {STACK_TAG}={ours.stack}"
            if group.owner is not None
            else "untagged as EKS recreates it, named after this stack's default cluster name, and no such cluster runs"
        )
        say(f"Removing log group {name}: what an earlier cluster of this stack left behind ({why}).")
        groups.delete(name)
        return
    if verdict is Ownership.UNKNOWN:
        raise LabError(
            f"log group {name} already exists, without the stack tags, and no cluster {cluster_name} runs: most likely "
            f"EKS recreated it after an earlier cluster of that name was deleted, but clusterName is set explicitly, "
            f"so this stack cannot tell whose it is. If it is this stack's (an interrupted 'make down'), run "
            f"'make down STACK={ours.stack}' to finish that; if it is no one's, delete it: aws logs delete-log-group "
            f"--log-group-name {name} --region {groups.region}; otherwise: {rename}",
            STEP_FAILED,
        )
    raise LabError(
        f"{_left_alone(name, verdict, group, cluster_name)}; this stack leaves it alone and cannot create its "
        f"cluster under that name. Choose another: {rename}",
        STEP_FAILED,
    )


@dataclass(frozen=True)
class Wait:
    """How long `make down` waits for the log group to stay gone."""

    quiet_seconds: float = DEFAULT_QUIET_SECONDS
    """It must stay gone this long after it was last seen (and deleted)."""
    max_wait_seconds: float = DEFAULT_MAX_WAIT_SECONDS
    """Give up after this long in all."""

    @property
    def poll_seconds(self) -> float:
        return min(MAX_POLL_SECONDS, max(0.05, self.quiet_seconds / 20))


def remove_after_destroy(
    groups: LogGroups,
    name: str,
    cluster_name: str,
    ours: Owner,
    wait: Wait,
    say: Say,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """After `pulumi destroy`: delete the group whenever it is there, until it stays gone for the quiet period.

    Raises LabError if it keeps coming back for longer than the bound. A group a running cluster or another
    stack owns is left alone (said, not an error: this stack's cluster is gone)."""
    say(
        f"Waiting until EKS stops recreating {name}: it must stay gone for {duration(wait.quiet_seconds)} "
        f"(at most {duration(wait.max_wait_seconds)} in all; EKS writes its last log lines after the cluster is gone)."
    )
    start = clock()
    last_seen = start
    deletions = 0
    next_progress = start + PROGRESS_EVERY_SECONDS
    while True:
        group = groups.find(name)
        if group is not None:
            verdict = groups.ownership(group, cluster_name, ours, untagged_is_ours=True)
            if verdict is not Ownership.THIS_STACK:
                say(f"Left alone: {_left_alone(name, verdict, group, cluster_name)}.")
                return
            groups.delete(name)
            deletions += 1
            last_seen = clock()
            times = "" if deletions == 1 else f" ({deletions} times now)"
            say(f"Deleted {name}: EKS had recreated it after the cluster was gone{times}.")
        now = clock()
        if now - last_seen >= wait.quiet_seconds:
            say(f"{name} has stayed gone for {duration(wait.quiet_seconds)}: no log group of the lab is left.")
            return
        if now - start >= wait.max_wait_seconds:
            raise LabError(
                f"{name} kept coming back for {duration(now - start)} (deleted {deletions} times). The stack is kept: "
                f"run 'make down STACK={ours.stack}' again later to finish; it only waits for the log group then.",
                STEP_FAILED,
            )
        if now >= next_progress:
            say(
                f"  ... {name} gone for {duration(now - last_seen)} of {duration(wait.quiet_seconds)} "
                f"(waited {duration(now - start)} of at most {duration(wait.max_wait_seconds)})"
            )
            next_progress += PROGRESS_EVERY_SECONDS
        sleep(wait.poll_seconds)
