"""The lab stack's settings: what Pulumi.yaml declares, read and checked into FalcoEksLabArgs.

Used by __main__.py only (components never read config). Every setting is read and every value
checked before the program registers anything; a bad value raises ConfigError naming the config
key the user sets (`pulumi config set <key> ...`), not the Python field behind it.

The kubeconfig's role: kubeconfigRoleArn, or else the role the stack's AWS provider assumes
(`aws:assumeRoles`), so kubectl and the Kubernetes provider act as the same identity as the AWS provider.

Also what ties the lab's AWS resources to one stack: the default cluster name (and with it the log
group's) derived from the project and stack names, and the tags that say which stack owns a resource.
The `make up` / `make down` commands (labctl) use the same functions.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal, cast

import pulumi

from .args import AuditSource
from .audit_stream import MAX_SHARDS, KinesisSettings
from .cluster import (
    DEFAULT_KUBERNETES_VERSION,
    DEFAULT_LOG_RETENTION_DAYS,
    DEFAULT_NODE_COUNT,
    DEFAULT_NODE_INSTANCE_TYPE,
    AuditedClusterArgs,
    check_role_arn,
)
from .errors import ConfigError
from .falco import (
    AUDIT_EVENTS_PER_REPLICA,
    DEFAULT_AUDIT_EVENTS_PER_SECOND,
    DEFAULT_CHART_REPOSITORY,
    DEFAULT_CHART_VERSION,
    FalcoArgs,
)
from .kubernetes_versions import OfferedVersion, check_calendar, check_offered_by_eks
from .lab import FalcoEksLabArgs

REGION_KEY = "aws:region"
ASSUME_ROLES_KEY = "aws:assumeRoles"

# Tags on every AWS resource the lab creates: which Pulumi project and stack own it. `make up` / `make down`
# read them on a leftover log group to tell this stack's from another's.
PROJECT_TAG = "pulumi:project"
STACK_TAG = "pulumi:stack"

# EKS cluster names: 1-100 letters, digits, '-' or '_', starting with a letter or digit. Every other limit
# that derives from the name is looser (log group 512, `kubernetes.io/cluster/<name>` tag key 128, node group
# prefix: cut to 30 characters, the provider adds a unique suffix).
_MAX_CLUSTER_NAME = 100
_VALID_CLUSTER_NAME = re.compile(r"^[0-9A-Za-z][A-Za-z0-9_-]*$")
_NAME_HASH_CHARS = 8

SettingType = Literal["string", "integer", "boolean", "array"]


@dataclass(frozen=True)
class Setting:
    """One stack config setting, as Pulumi.yaml declares it."""

    key: str
    """Config key in the project's namespace (`pulumi config set <key> <value>`)."""
    type: SettingType
    """Pulumi.yaml schema type; arrays hold strings."""
    default: Any
    """Value used when the stack does not set the key (the same default Pulumi.yaml declares)."""
    field: str
    """The FalcoEksLabArgs field the value fills, as a path: `cluster.node_count`, `falco.sidekick_ui`."""
    description: str
    """What the setting does (Pulumi.yaml carries the same text)."""


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "clusterName",
        "string",
        "",
        "cluster.cluster_name",
        "Name of the EKS cluster; also names its log group /aws/eks/<name>/cluster. Empty: <project>-<stack>, "
        "e.g. falco-eks-lab-dev, so stacks side by side in one account and region do not collide.",
    ),
    Setting(
        "kubernetesVersion",
        "string",
        DEFAULT_KUBERNETES_VERSION,
        "cluster.kubernetes_version",
        "Kubernetes version of the control plane and the nodes; must be in EKS standard support (checked with EKS "
        "before anything is created; extended support costs 6x and stays off).",
    ),
    Setting(
        "nodeInstanceType",
        "string",
        DEFAULT_NODE_INSTANCE_TYPE,
        "cluster.node_instance_type",
        "EC2 instance type of the managed node group (Amazon Linux 2023); Graviton types such as m7g.large "
        "get arm64 nodes.",
    ),
    Setting("nodeCount", "integer", DEFAULT_NODE_COUNT, "cluster.node_count", "Number of nodes (at least 1)."),
    Setting(
        "auditLogRetentionDays",
        "integer",
        DEFAULT_LOG_RETENTION_DAYS,
        "cluster.log_retention_days",
        "Days CloudWatch keeps the control-plane logs: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, "
        "545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653.",
    ),
    Setting(
        "extraLogTypes",
        "array",
        [],
        "cluster.extra_log_types",
        "Control-plane log types to enable besides audit (always on): api, authenticator, controllerManager, "
        "scheduler.",
    ),
    Setting(
        "apiPublicAccessCidrs",
        "array",
        ["0.0.0.0/0"],
        "cluster.api_public_access_cidrs",
        "Address ranges allowed to reach the cluster's public API endpoint; narrow it to your own address.",
    ),
    Setting(
        "apiPrivateOnly",
        "boolean",
        False,
        "cluster.api_private_only",
        "Serve the Kubernetes API only inside the VPC (no public endpoint); pulumi up and kubectl must then run "
        "from an address in apiPrivateAccessCidrs that routes into the VPC.",
    ),
    Setting(
        "apiPrivateAccessCidrs",
        "array",
        [],
        "cluster.api_private_access_cidrs",
        "Address ranges in the VPC or connected to it (VPN, peering) allowed to reach the API's private endpoint; "
        "required with apiPrivateOnly.",
    ),
    Setting(
        "clusterAdminArns",
        "array",
        [],
        "cluster.cluster_admin_arns",
        "IAM role or user ARNs given cluster-admin access (EKS access entries, AmazonEKSClusterAdminPolicy). Not the "
        "identity that runs pulumi up: as the cluster's creator it has cluster-admin already, and listing it is "
        "refused before anything is created. They also count as falcoAdminIdentities.",
    ),
    Setting(
        "clusterViewerArns",
        "array",
        [],
        "cluster.cluster_viewer_arns",
        "IAM role or user ARNs given read-only access to the whole cluster (AmazonEKSViewPolicy, no Secrets).",
    ),
    Setting(
        "kubeconfigRoleArn",
        "string",
        "",
        "cluster.kubeconfig_role_arn",
        "IAM role the kubeconfig assumes for its token (aws eks get-token --role-arn). Empty: the role in "
        "aws:assumeRoles if the stack's AWS provider assumes one, else the credentials current when it is used.",
    ),
    Setting(
        "falcoChartVersion",
        "string",
        DEFAULT_CHART_VERSION,
        "falco.chart_version",
        "Version of the falcosecurity/falco Helm chart.",
    ),
    Setting(
        "falcoChartRepository",
        "string",
        DEFAULT_CHART_REPOSITORY,
        "falco.chart_repository",
        "Where the falco chart comes from: a Helm repository (https://) or an OCI registry path (oci://host/path, "
        "holding the chart as .../falco), e.g. a company mirror.",
    ),
    Setting(
        "imageRegistry",
        "string",
        "",
        "falco.image_registry",
        "Registry mirror for Falco's, falcoctl's, Falcosidekick's, its UI's and Redis's images and the forwarder's "
        "Python image (Docker Hub paths kept under it), e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/docker-hub. "
        "Empty: Docker Hub.",
    ),
    Setting(
        "falcoSidekickUi",
        "boolean",
        True,
        "falco.sidekick_ui",
        "Install Falcosidekick and its web UI (ClusterIP, reached with kubectl port-forward, generated password).",
    ),
    Setting(
        "falcoAdminIdentities",
        "array",
        [],
        "falco.admin_identities",
        "IAM ARNs or Kubernetes user names whose API calls raise 'Full K8s Administrative Access'; the deploying "
        "identity is always added.",
    ),
    Setting(
        "falcoAdminAccessAlerts",
        "boolean",
        True,
        "falco.admin_access_alerts",
        "Raise 'Full K8s Administrative Access' for every API call of the admin identities, as the workshop shows "
        "it; turn it off where admins work every day.",
    ),
    Setting(
        "falcoAllowedIdentities",
        "array",
        [],
        "falco.allowed_identities",
        "IAM role, assumed-role or user ARNs or Kubernetes user names (CI/CD roles, developers) that 'Disallowed "
        "K8s User' does not report; a role covers all its sessions.",
    ),
    Setting(
        "hostileSourceAddresses",
        "array",
        [],
        "falco.hostile_source_addresses",
        "IPv4/IPv6 addresses and CIDRs (Tor exits, a threat feed) whose API requests raise 'Request From Hostile "
        "Source Address'. A change updates one ConfigMap, which Falco reloads within minutes: no Falco redeploy.",
    ),
    Setting(
        "auditEventsPerSecond",
        "integer",
        DEFAULT_AUDIT_EVENTS_PER_SECOND,
        "falco.audit_events_per_second",
        f"Audit events per second the cluster writes at its busiest: the audit Falco runs ceil(this / "
        f"{AUDIT_EVENTS_PER_REPLICA:,}) replicas of 1 CPU each. Above 1,000, set auditSource to kinesis: polling "
        "cannot follow more.",
    ),
    Setting(
        "auditSource",
        "string",
        AuditSource.POLL.value,
        "audit_source",
        "Where the forwarder reads the audit log: 'poll' (FilterLogEvents; about 1,000 events/s per account at "
        "most, a quota every poller in the account shares) or 'kinesis' (the stack adds a subscription filter on "
        "the cluster's log group, into a Kinesis Data Stream it creates). A log group takes at most two "
        "subscription filters: 'kinesis' uses one.",
    ),
    Setting(
        "kinesisShardCount",
        "integer",
        0,
        "kinesis.shard_count",
        f"With auditSource kinesis: shards of a provisioned stream (1-{MAX_SHARDS}; each takes in 1 MB/s of "
        "compressed audit log). 0: on-demand, which scales by itself and bills per GB.",
    ),
    Setting(
        "kinesisKmsKeyArn",
        "string",
        "",
        "kinesis.kms_key_arn",
        "With auditSource kinesis: ARN of a customer-managed KMS key that encrypts the stream. Empty: the "
        "AWS-managed key alias/aws/kinesis.",
    ),
    Setting(
        "forwarderImage",
        "string",
        "",
        "forwarder_image",
        "A ready audit forwarder image; empty builds the bundled forwarder as forwarderBuild says.",
    ),
    Setting(
        "forwarderBuild",
        "string",
        "docker",
        "forwarder_build",
        "Without forwarderImage: 'docker' builds the forwarder and pushes it to a stack-owned ECR repository "
        "(needs Docker); 'source' runs the bundled source on the official Python image (no Docker needed).",
    ),
)

# The field an args class names in its errors (the last part of the path) -> the config key.
_KEY_OF_FIELD: dict[str, str] = {s.field.rpartition(".")[2]: s.key for s in SETTINGS}
_KEY_OF_PATH: dict[str, str] = {s.field: s.key for s in SETTINGS}

_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")


def default_cluster_name(project: str, stack: str) -> str:
    """The cluster name a stack gets when it sets no clusterName: `<project>-<stack>`.

    Kept as is when EKS accepts it; otherwise (too long, or characters EKS refuses, such as the '.' stack
    names allow) cut and cleaned, with 8 hex digits of a hash of project and stack so that two stacks
    never share a name."""
    plain = f"{project}-{stack}"
    if len(plain) <= _MAX_CLUSTER_NAME and _VALID_CLUSTER_NAME.match(plain):
        return plain
    digest = hashlib.sha256(f"{project}/{stack}".encode()).hexdigest()[:_NAME_HASH_CHARS]
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "-", plain).strip("-_")
    head = cleaned[: _MAX_CLUSTER_NAME - _NAME_HASH_CHARS - 1].rstrip("-_")
    return f"{head}-{digest}" if head else f"lab-{digest}"


def stack_tags(project: str, stack: str) -> dict[str, str]:
    """The tags that name the project and stack owning a resource."""
    return {PROJECT_TAG: project, STACK_TAG: stack}


def read_lab_args(
    config: pulumi.Config,
    aws_config: pulumi.Config,
    environ: Mapping[str, str] | None = None,
    project: str | None = None,
    stack: str | None = None,
) -> FalcoEksLabArgs:
    """Read every setting (defaults for unset keys) and build the checked FalcoEksLabArgs.

    `config` is the project's namespace, `aws_config` the "aws" namespace: the region must be set there or
    in AWS_REGION / AWS_DEFAULT_REGION of `environ` (the process environment by default), as the AWS provider
    itself reads it. `project` and `stack` (the running program's by default) name the default cluster and
    go into the tags of every AWS resource.
    """
    project = pulumi.get_project() if project is None else project
    stack = pulumi.get_stack() if stack is None else stack
    stack_region(aws_config, os.environ if environ is None else environ)
    values = {setting.field: _read(config, setting) for setting in SETTINGS}
    for optional in ("forwarder_image", "falco.image_registry", "cluster.kubeconfig_role_arn"):
        if values[optional] == "":
            values[optional] = None
    unset_kinesis = {"kinesis.shard_count": 0, "kinesis.kms_key_arn": ""}
    if values["audit_source"] == AuditSource.POLL:
        for path, unset in unset_kinesis.items():
            if values[path] != unset:
                raise ConfigError(
                    _KEY_OF_PATH[path],
                    "takes effect only with auditSource kinesis: `pulumi config set auditSource kinesis`, or remove it",
                )
    for path, unset in unset_kinesis.items():
        if values[path] == unset:
            values[path] = None
    if values["cluster.cluster_name"] == "":
        values["cluster.cluster_name"] = default_cluster_name(project, stack)
    if values["cluster.kubeconfig_role_arn"] is None:
        values["cluster.kubeconfig_role_arn"] = assumed_role(aws_config)

    groups: dict[str, dict[str, Any]] = {"cluster": {}, "falco": {}, "kinesis": {}, "": {}}
    for path, value in values.items():
        group, _, name = path.rpartition(".")
        groups[group][name] = value
    try:
        cluster = AuditedClusterArgs(**groups["cluster"], tags=stack_tags(project, stack))
        return FalcoEksLabArgs(
            cluster=cluster,
            falco=FalcoArgs(**groups["falco"]),
            kinesis=KinesisSettings(**groups["kinesis"]),
            **groups[""],
        )
    except ConfigError as err:
        raise _as_config_key(err) from err


def stack_region(aws_config: pulumi.Config, environ: Mapping[str, str]) -> str:
    """The region the stack's AWS provider uses: aws:region, else AWS_REGION / AWS_DEFAULT_REGION."""
    region = aws_config.get("region") or environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    if not region:
        raise ConfigError(REGION_KEY, "is not set: run `pulumi config set aws:region <region>`, e.g. us-west-2")
    if not _REGION.match(region):
        raise ConfigError(REGION_KEY, f"{region!r} is not an AWS region such as us-west-2")
    return region


def assumed_role(aws_config: pulumi.Config) -> str | None:
    """The role the stack's AWS provider assumes (aws:assumeRoles), for the kubeconfig; None if it assumes none.

    `aws eks get-token` assumes one role from the credentials at hand and passes no external ID, so a chain of
    roles, or one that needs an external ID, is refused: the kubeconfig would fail when used."""
    try:
        roles = aws_config.get_object("assumeRoles")
    except pulumi.ConfigTypeError as err:
        raise ConfigError(ASSUME_ROLES_KEY, f"must be a list of roles ({err})") from err
    if not roles:
        return None
    set_role = "set kubeconfigRoleArn to a role the credentials that run kubectl can assume directly"
    if not isinstance(roles, list) or not all(isinstance(r, dict) for r in roles):
        raise ConfigError(ASSUME_ROLES_KEY, f'must be a list such as [{{"roleArn": "arn:..."}}], got {roles!r}')
    if len(roles) > 1:
        raise ConfigError(ASSUME_ROLES_KEY, f"chains {len(roles)} roles; the kubeconfig assumes only one: {set_role}")
    role = cast(dict[str, Any], roles[0])
    if role.get("externalId"):
        raise ConfigError(ASSUME_ROLES_KEY, f"needs an external ID, which `aws eks get-token` cannot pass: {set_role}")
    arn = role.get("roleArn")
    if not arn:
        return None
    check_role_arn(ASSUME_ROLES_KEY, arn)
    return cast(str, arn)


def check_kubernetes_version(
    args: FalcoEksLabArgs, offered: Iterable[OfferedVersion] | None, today: date | None = None
) -> None:
    """Refuse a kubernetesVersion EKS no longer offers a new lab cluster (see kubernetes_versions).

    `offered` is EKS's own answer; None when it could not be asked, and then the calendar decides."""
    version = args.cluster.kubernetes_version
    try:
        if offered is not None:
            check_offered_by_eks(version, offered)
        else:
            check_calendar(version, date.today() if today is None else today)
    except ConfigError as err:
        raise _as_config_key(err) from err


def with_cluster_creator(args: FalcoEksLabArgs, identity: str) -> FalcoEksLabArgs:
    """`args` whose cluster knows `identity` (the deployer, as STS GetCallerIdentity names it) creates it.

    EKS gives the creator cluster-admin itself; clusterAdminArns or clusterViewerArns listing it would fail at
    apply time (CreateAccessEntry), so it is refused here, by key, before anything is created."""
    try:
        cluster = dataclasses.replace(args.cluster, cluster_creator_arn=identity)
    except ConfigError as err:
        raise _as_config_key(err) from err
    return dataclasses.replace(args, cluster=cluster)


def with_admin_identity(args: FalcoEksLabArgs, identity: str) -> FalcoEksLabArgs:
    """`args` with `identity` (e.g. the deployer's ARN) added to Falco's admin identities, once."""
    if identity in args.falco.admin_identities:
        return args
    try:
        falco = dataclasses.replace(args.falco, admin_identities=(*args.falco.admin_identities, identity))
        return dataclasses.replace(args, falco=falco)
    except ConfigError as err:
        raise _as_config_key(err) from err


def _read(config: pulumi.Config, setting: Setting) -> Any:
    try:
        if setting.type == "integer":
            number = config.get_int(setting.key)
            return setting.default if number is None else number
        if setting.type == "boolean":
            flag = config.get_bool(setting.key)
            return setting.default if flag is None else flag
        if setting.type == "array":
            items = config.get_object(setting.key)
            if items is None:
                return tuple(setting.default)
            if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
                raise ConfigError(setting.key, f'must be a list of strings such as ["a", "b"], got {items!r}')
            return tuple(items)
        text = config.get(setting.key)
        return setting.default if text is None else text
    except pulumi.ConfigTypeError as err:
        expected = {"integer": "a whole number", "boolean": "true or false", "array": "a JSON list of strings"}
        raise ConfigError(setting.key, f"must be {expected.get(setting.type, 'a string')} ({err})") from err


def _as_config_key(err: ConfigError) -> ConfigError:
    """The same error, named after the config key the user sets instead of the Python field."""
    key = _KEY_OF_FIELD.get(err.setting)
    return err if key is None else ConfigError(key, err.message)
