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

from .alerts.destinations import look_up_destinations
from .alerts.outputs import (
    CREATE,
    DEFAULT_ALERT_LOG_RETENTION_DAYS,
    AlertOutputs,
    AlertPriority,
    ChatAlerts,
    LogGroupAlerts,
    SecurityLakeAlerts,
    SnsAlerts,
    WebhookAlerts,
)
from .args import AuditSource
from .cluster import (
    DEFAULT_KUBERNETES_VERSION,
    DEFAULT_LOG_RETENTION_DAYS,
    DEFAULT_NODE_COUNT,
    DEFAULT_NODE_INSTANCE_TYPE,
    AuditedClusterSettings,
    check_role_arn,
)
from .cluster.kubernetes_versions import OfferedVersion, check_calendar, check_offered_by_eks
from .errors import ConfigError
from .falco import (
    AUDIT_EVENTS_PER_REPLICA,
    DEFAULT_AUDIT_EVENTS_PER_SECOND,
    DEFAULT_CHART_REPOSITORY,
    DEFAULT_CHART_VERSION,
    FalcoSettings,
)
from .forwarding.audit_stream import MAX_SHARDS, KinesisSettings
from .lab import FalcoEksLabArgs
from .names import is_region

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


_LAB_SETTINGS: tuple[Setting, ...] = (
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
        "Install Falcosidekick's web UI (ClusterIP, reached with kubectl port-forward, generated password). "
        "Falcosidekick itself is installed when the UI or any alert output (alert* settings) is on.",
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


# The alert outputs: each is off while its first key is empty; the others then keep their defaults.
_ALERTS = "falco.alert_outputs"
ALERT_SETTINGS: tuple[Setting, ...] = (
    Setting(
        "alertSnsTopic",
        "string",
        "",
        f"{_ALERTS}.sns.topic",
        f"Publish alerts to SNS: '{CREATE}' (the stack creates an encrypted topic only Falcosidekick may publish to) "
        "or an existing standard topic's ARN in the stack's account and region. Empty: off.",
    ),
    Setting(
        "alertSnsKmsKeyArn",
        "string",
        "",
        f"{_ALERTS}.sns.kms_key_arn",
        "With alertSnsTopic: ARN of the customer-managed KMS key that encrypts the topic. Empty: the AWS-managed key "
        "alias/aws/sns.",
    ),
    Setting(
        "alertSnsMinimumPriority",
        "string",
        AlertPriority.WARNING.value,
        f"{_ALERTS}.sns.minimum_priority",
        "With alertSnsTopic: the least Falco priority an alert needs to be published (debug, informational, notice, "
        "warning, error, critical, alert, emergency).",
    ),
    Setting(
        "alertLogGroup",
        "string",
        "",
        f"{_ALERTS}.cloud_watch_logs.log_group",
        f"Write alerts to CloudWatch Logs: '{CREATE}' (the stack creates /falco-eks/<clusterName>/alerts, removed on "
        "destroy) or an existing log group's name in the stack's region. Empty: off.",
    ),
    Setting(
        "alertLogGroupRetentionDays",
        "integer",
        DEFAULT_ALERT_LOG_RETENTION_DAYS,
        f"{_ALERTS}.cloud_watch_logs.retention_days",
        f"With alertLogGroup '{CREATE}': days the log group keeps alerts (a value CloudWatch Logs accepts).",
    ),
    Setting(
        "alertLogGroupKmsKeyArn",
        "string",
        "",
        f"{_ALERTS}.cloud_watch_logs.kms_key_arn",
        f"With alertLogGroup '{CREATE}': ARN of a customer-managed KMS key that encrypts the log group (its key "
        "policy must allow logs.<region>.amazonaws.com). Empty: CloudWatch's own encryption.",
    ),
    Setting(
        "alertLogMinimumPriority",
        "string",
        AlertPriority.NOTICE.value,
        f"{_ALERTS}.cloud_watch_logs.minimum_priority",
        "With alertLogGroup: the least Falco priority an alert needs to be logged.",
    ),
    Setting(
        "alertSecurityLakeLocation",
        "string",
        "",
        f"{_ALERTS}.security_lake.location",
        "Write alerts to an Amazon Security Lake custom source: its S3 location s3://<bucket>/<prefix>/ in the "
        "stack's region (OCSF Parquet files every 5 minutes). Empty: off.",
    ),
    Setting(
        "alertSecurityLakeAccountId",
        "string",
        "",
        f"{_ALERTS}.security_lake.account_id",
        "With alertSecurityLakeLocation: the account ID the alerts are filed under. Empty: the stack's account.",
    ),
    Setting(
        "alertSecurityLakeKmsKeyArn",
        "string",
        "",
        f"{_ALERTS}.security_lake.kms_key_arn",
        "With alertSecurityLakeLocation: ARN of the customer-managed KMS key the lake's bucket encrypts with, if any.",
    ),
    Setting(
        "alertSecurityLakeMinimumPriority",
        "string",
        AlertPriority.NOTICE.value,
        f"{_ALERTS}.security_lake.minimum_priority",
        "With alertSecurityLakeLocation: the least Falco priority an alert needs to be written.",
    ),
    Setting(
        "alertSlackSecret",
        "string",
        "",
        f"{_ALERTS}.slack.secret_name",
        "Post alerts to Slack: the name of a Kubernetes Secret in Falco's namespace holding the incoming webhook's "
        "URL (you create it; the URL never enters the stack's config or state). Empty: off.",
    ),
    Setting(
        "alertSlackSecretKey",
        "string",
        "url",
        f"{_ALERTS}.slack.secret_key",
        "With alertSlackSecret: the key of the URL in that Secret.",
    ),
    Setting(
        "alertSlackMinimumPriority",
        "string",
        AlertPriority.WARNING.value,
        f"{_ALERTS}.slack.minimum_priority",
        "With alertSlackSecret: the least Falco priority an alert needs to be posted.",
    ),
    Setting(
        "alertTeamsSecret",
        "string",
        "",
        f"{_ALERTS}.teams.secret_name",
        "Post alerts to Microsoft Teams: the name of a Kubernetes Secret in Falco's namespace holding the incoming "
        "webhook's URL. Empty: off.",
    ),
    Setting(
        "alertTeamsSecretKey",
        "string",
        "url",
        f"{_ALERTS}.teams.secret_key",
        "With alertTeamsSecret: the key of the URL in that Secret.",
    ),
    Setting(
        "alertTeamsMinimumPriority",
        "string",
        AlertPriority.WARNING.value,
        f"{_ALERTS}.teams.minimum_priority",
        "With alertTeamsSecret: the least Falco priority an alert needs to be posted.",
    ),
    Setting(
        "alertWebhookSecret",
        "string",
        "",
        f"{_ALERTS}.webhook.secret_name",
        "Send every alert as JSON to a webhook: the name of a Kubernetes Secret in Falco's namespace holding its URL. "
        "Empty: off.",
    ),
    Setting(
        "alertWebhookSecretKey",
        "string",
        "url",
        f"{_ALERTS}.webhook.secret_key",
        "With alertWebhookSecret: the key of the URL in that Secret.",
    ),
    Setting(
        "alertWebhookHeadersSecretKey",
        "string",
        "",
        f"{_ALERTS}.webhook.headers_secret_key",
        "With alertWebhookSecret: the key, in the same Secret, of extra headers as 'Name:value,Name:value'. Empty: "
        "none.",
    ),
    Setting(
        "alertWebhookPort",
        "integer",
        443,
        f"{_ALERTS}.webhook.port",
        "With alertWebhookSecret: the TCP port of the webhook's URL (Falcosidekick's NetworkPolicy opens it).",
    ),
    Setting(
        "alertWebhookMinimumPriority",
        "string",
        AlertPriority.NOTICE.value,
        f"{_ALERTS}.webhook.minimum_priority",
        "With alertWebhookSecret: the least Falco priority an alert needs to be sent.",
    ),
)

# output -> (its args class, the field whose key turns it on)
_ALERT_OUTPUTS: dict[str, tuple[type, str]] = {
    "sns": (SnsAlerts, "topic"),
    "cloud_watch_logs": (LogGroupAlerts, "log_group"),
    "security_lake": (SecurityLakeAlerts, "location"),
    "slack": (ChatAlerts, "secret_name"),
    "teams": (ChatAlerts, "secret_name"),
    "webhook": (WebhookAlerts, "secret_name"),
}

SETTINGS: tuple[Setting, ...] = _LAB_SETTINGS + ALERT_SETTINGS
"""Every setting, in Pulumi.yaml's order."""

# The field an args class names in its errors (the last part of the path) -> the config key; the alert outputs'
# fields repeat across outputs, so their errors are named by their full path.
_KEY_OF_FIELD: dict[str, str] = {s.field.rpartition(".")[2]: s.key for s in SETTINGS if s not in ALERT_SETTINGS}
_KEY_OF_PATH: dict[str, str] = {s.field: s.key for s in SETTINGS}



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
                    "takes effect only with auditSource kinesis: `make config KEY=auditSource VALUE=kinesis`, or "
                    "remove it",
                )
    for path, unset in unset_kinesis.items():
        if values[path] == unset:
            values[path] = None
    if values["cluster.cluster_name"] == "":
        values["cluster.cluster_name"] = default_cluster_name(project, stack)
    if values["cluster.kubeconfig_role_arn"] is None:
        values["cluster.kubeconfig_role_arn"] = assumed_role(aws_config)

    alert_values = {path: values.pop(path) for path in [s.field for s in ALERT_SETTINGS]}
    alert_outputs = _alert_outputs(alert_values)
    groups: dict[str, dict[str, Any]] = {"cluster": {}, "falco": {}, "kinesis": {}, "": {}}
    for path, value in values.items():
        group, _, name = path.rpartition(".")
        groups[group][name] = value
    try:
        cluster = AuditedClusterSettings(**groups["cluster"], tags=stack_tags(project, stack))
        return FalcoEksLabArgs(
            cluster=cluster,
            falco=FalcoSettings(**groups["falco"], alert_outputs=alert_outputs),
            kinesis=KinesisSettings(**groups["kinesis"]),
            **groups[""],
        )
    except ConfigError as err:
        raise _as_config_key(err) from err


def _alert_outputs(values: dict[str, Any]) -> AlertOutputs:
    """The alert outputs from their settings (full field path -> value): an output is on when its first key is set;
    its other keys must keep their defaults while it is off. Errors name the config key."""
    defaults = {s.field: s.default for s in ALERT_SETTINGS}
    outputs: dict[str, Any] = {}
    for output, (kind, switch) in _ALERT_OUTPUTS.items():
        prefix = f"{_ALERTS}.{output}."
        fields = {path[len(prefix) :]: value for path, value in values.items() if path.startswith(prefix)}
        if fields[switch] == "":
            for name, value in fields.items():
                if value != defaults[prefix + name]:
                    raise ConfigError(
                        _KEY_OF_PATH[prefix + name],
                        f"takes effect only with {_KEY_OF_PATH[prefix + switch]}: set that too, or remove this",
                    )
            continue
        # Empty optional strings mean "unset".
        args = {name: (None if value == "" and name != switch else value) for name, value in fields.items()}
        try:
            outputs[output] = kind(**args)
        except ConfigError as err:
            raise ConfigError(_KEY_OF_PATH.get(prefix + err.setting, err.setting), err.message) from err
    try:
        return AlertOutputs(**outputs)
    except ConfigError as err:
        raise ConfigError(_KEY_OF_PATH.get(f"{_ALERTS}.{err.setting}", err.setting), err.message) from err


def check_alert_destinations(args: FalcoEksLabArgs, opts: pulumi.InvokeOptions | None = None) -> None:
    """Ask AWS whether the alert outputs' destinations can be used (account, region, existence), before anything is
    created; errors name the config key (alertSnsTopic, ...)."""
    outputs = args.falco.alert_outputs
    if not outputs.uses_aws:
        return
    try:
        look_up_destinations(outputs, opts or pulumi.InvokeOptions(), _ALERTS)
    except ConfigError as err:
        raise ConfigError(_KEY_OF_PATH.get(err.setting, err.setting), err.message) from err


def stack_region(aws_config: pulumi.Config, environ: Mapping[str, str]) -> str:
    """The region the stack's AWS provider uses: aws:region, else AWS_REGION / AWS_DEFAULT_REGION."""
    region = aws_config.get("region") or environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    if not region:
        raise ConfigError(
            REGION_KEY,
            "is not set: run `make config KEY=aws:region VALUE=<region>` (or `pulumi config set aws:region "
            "<region>`), e.g. us-west-2",
        )
    if not is_region(region):
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
