"""The lab stack's settings: what Pulumi.yaml declares, read and checked into FalcoEksLabArgs.

Used by __main__.py only (components never read config). Every setting is read and every value
checked before the program registers anything; a bad value raises ConfigError naming the config
key the user sets (`pulumi config set <key> ...`), not the Python field behind it.

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
from typing import Any, Literal

import pulumi

from .cluster import (
    DEFAULT_KUBERNETES_VERSION,
    DEFAULT_LOG_RETENTION_DAYS,
    DEFAULT_NODE_COUNT,
    DEFAULT_NODE_INSTANCE_TYPE,
    AuditedClusterArgs,
)
from .errors import ConfigError
from .falco import DEFAULT_CHART_VERSION
from .kubernetes_versions import OfferedVersion, check_calendar, check_offered_by_eks
from .lab import FalcoEksLabArgs

REGION_KEY = "aws:region"

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
    """The FalcoEksLabArgs / AuditedClusterArgs field the value fills."""
    description: str
    """What the setting does (Pulumi.yaml carries the same text)."""


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "clusterName",
        "string",
        "",
        "cluster_name",
        "Name of the EKS cluster; also names its log group /aws/eks/<name>/cluster. Empty: <project>-<stack>, "
        "e.g. falco-eks-lab-dev, so stacks side by side in one account and region do not collide.",
    ),
    Setting(
        "kubernetesVersion",
        "string",
        DEFAULT_KUBERNETES_VERSION,
        "kubernetes_version",
        "Kubernetes version of the control plane and the nodes; must be in EKS standard support (checked with EKS "
        "before anything is created; extended support costs 6x and stays off).",
    ),
    Setting(
        "nodeInstanceType",
        "string",
        DEFAULT_NODE_INSTANCE_TYPE,
        "node_instance_type",
        "EC2 instance type of the managed node group (Amazon Linux 2023); Graviton types such as m7g.large "
        "get arm64 nodes.",
    ),
    Setting("nodeCount", "integer", DEFAULT_NODE_COUNT, "node_count", "Number of nodes (at least 1)."),
    Setting(
        "auditLogRetentionDays",
        "integer",
        DEFAULT_LOG_RETENTION_DAYS,
        "log_retention_days",
        "Days CloudWatch keeps the control-plane logs: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, "
        "545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653.",
    ),
    Setting(
        "extraLogTypes",
        "array",
        [],
        "extra_log_types",
        "Control-plane log types to enable besides audit (always on): api, authenticator, controllerManager, "
        "scheduler.",
    ),
    Setting(
        "apiPublicAccessCidrs",
        "array",
        ["0.0.0.0/0"],
        "api_public_access_cidrs",
        "Address ranges allowed to reach the cluster's public API endpoint; narrow it to your own address.",
    ),
    Setting(
        "apiPrivateOnly",
        "boolean",
        False,
        "api_private_only",
        "Serve the Kubernetes API only inside the VPC (no public endpoint); pulumi up and kubectl must then run "
        "from an address in apiPrivateAccessCidrs that routes into the VPC.",
    ),
    Setting(
        "apiPrivateAccessCidrs",
        "array",
        [],
        "api_private_access_cidrs",
        "Address ranges in the VPC or connected to it (VPN, peering) allowed to reach the API's private endpoint; "
        "required with apiPrivateOnly.",
    ),
    Setting(
        "falcoChartVersion",
        "string",
        DEFAULT_CHART_VERSION,
        "falco_chart_version",
        "Version of the falcosecurity/falco Helm chart.",
    ),
    Setting(
        "falcoSidekickUi",
        "boolean",
        True,
        "sidekick_ui",
        "Install Falcosidekick and its web UI (ClusterIP, reached with kubectl port-forward, generated password).",
    ),
    Setting(
        "falcoAdminIdentities",
        "array",
        [],
        "admin_identities",
        "IAM ARNs or Kubernetes user names whose API calls raise 'Full K8s Administrative Access'; the deploying "
        "identity is always added.",
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

_KEY_OF_FIELD: dict[str, str] = {s.field: s.key for s in SETTINGS} | {"region": REGION_KEY}

# The FalcoEksLabArgs fields; every other setting fills AuditedClusterArgs.
_LAB_FIELDS = {f.name for f in dataclasses.fields(FalcoEksLabArgs)}


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

    `config` is the project's namespace, `aws_config` the "aws" namespace; the region falls back to
    AWS_REGION / AWS_DEFAULT_REGION from `environ` (the process environment by default), as the AWS
    provider itself does. `project` and `stack` (the running program's by default) name the default
    cluster and go into the tags of every AWS resource.
    """
    project = pulumi.get_project() if project is None else project
    stack = pulumi.get_stack() if stack is None else stack
    values = {setting.field: _read(config, setting) for setting in SETTINGS}
    if values["forwarder_image"] == "":
        values["forwarder_image"] = None
    if values["cluster_name"] == "":
        values["cluster_name"] = default_cluster_name(project, stack)
    region = _region(aws_config, os.environ if environ is None else environ)

    cluster_values = {k: v for k, v in values.items() if k not in _LAB_FIELDS}
    lab_values = {k: v for k, v in values.items() if k in _LAB_FIELDS}
    try:
        cluster = AuditedClusterArgs(**cluster_values, tags=stack_tags(project, stack))
        return FalcoEksLabArgs(cluster=cluster, region=region, **lab_values)
    except ConfigError as err:
        raise _as_config_key(err) from err


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


def with_admin_identity(args: FalcoEksLabArgs, identity: str) -> FalcoEksLabArgs:
    """`args` with `identity` (e.g. the deployer's ARN) added to the admin identities, once."""
    if identity in args.admin_identities:
        return args
    try:
        return dataclasses.replace(args, admin_identities=(*args.admin_identities, identity))
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


def _region(aws_config: pulumi.Config, environ: Mapping[str, str]) -> str:
    region = aws_config.get("region") or environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    if not region:
        raise ConfigError(REGION_KEY, "is not set: run `pulumi config set aws:region <region>`, e.g. us-west-2")
    return region


def _as_config_key(err: ConfigError) -> ConfigError:
    """The same error, named after the config key the user sets instead of the Python field."""
    key = _KEY_OF_FIELD.get(err.setting)
    return err if key is None else ConfigError(key, err.message)
