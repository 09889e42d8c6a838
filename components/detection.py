"""FalcoDetection: Falco, the audit forwarder with its IRSA role, their NetworkPolicies and the lab's rules, on an
EKS cluster that exists already or that the same stack creates.

How it learns about the cluster:
- `cluster_name` alone: a cluster that exists. When the program runs (previews included) the component asks AWS,
  through the AWS provider it is given, for the cluster (eks:DescribeCluster), its IAM OIDC provider
  (iam:GetOpenIDConnectProvider) and its control-plane log group (logs:DescribeLogGroups). A cluster without
  audit logging, without an IAM OIDC provider for IRSA, or without its log group yet is refused with what to turn
  on, before the component creates anything: the lookups are plain (synchronous) invokes, made before the first
  child. The component never changes the cluster.
- `cluster_name` with `cluster` (a KnownCluster): the cluster's facts as Outputs, from a cluster the same stack
  creates (FalcoEksLab passes AuditedCluster's). Nothing is looked up; the cluster need not exist yet.

Audit source: `poll` (the default) has the forwarder read the log group with FilterLogEvents; `kinesis` adds an
AuditStream (a Kinesis Data Stream, the log group's subscription filter into it, the role CloudWatch Logs writes as)
and the forwarder reads the stream. A log group takes at most two subscription filters, and the component cannot
see a group's filters before it adds its own (the AWS provider has no lookup for them): on a group with two
already, `pulumi up` stops at the filter with `LimitExceededException: Resource limit exceeded.`
(`aws logs describe-subscription-filters --log-group-name <group>` lists them; remove one, or keep `poll`).

Alert outputs (`falco.alertOutputs`): before its first child the component also checks the AWS destinations with
plain invokes (the provider's account and Region, that a given topic or log group exists), then creates what was
asked for and Falcosidekick's IRSA role (components/alerts/destinations.py) and hands them to Falco.

Providers: AWS children and invokes use the AWS provider of the resource options, Kubernetes children the
Kubernetes provider of the resource options. Without a Kubernetes provider the component makes one for the named
cluster (its endpoint and CA from the lookup, tokens from `aws eks get-token`); it never falls back on the ambient
kubeconfig, whose current context may be another cluster.
"""

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from .alerts.destinations import SidekickIdentity, create_alert_destinations, look_up_destinations
from .args import Architecture, AuditSource, ForwarderBuild, from_inputs, schema_args
from .cluster import check_cluster_name, check_role_arn, kubeconfig_document
from .errors import ConfigError
from .falco import Falco, FalcoSettings
from .falco.mirror import check_image_reference, mirrored
from .forwarding.audit_forwarder import DEFAULT_SOURCE_MODE_IMAGE, AuditForwarder, AuditForwarderArgs
from .forwarding.audit_stream import AuditStream, AuditStreamArgs, KinesisSettings
from .forwarding.iam import STS_AUDIENCE, issuer_host_path

COMPONENT_TYPE = "falco-eks:index:FalcoDetection"

POLL_CEILING_EVENTS_PER_SECOND = 1000
"""About the most one account can follow by polling: FilterLogEvents allows 5 calls per second per account and
Region (not raisable), a page holds at most 1 MB, and every event is read at least twice (../shared/DESIGN.md)."""
CONNECTIONS_PER_AUDIT_REPLICA = 2
"""The forwarder's deliveries in flight per audit Falco replica: each replica has its next batch while its answer
to the last one travels back."""


class ClusterNotReadyError(ConfigError):
    """An existing cluster lacks what detection needs; `problems` says each thing to turn on."""

    def __init__(self, cluster_name: str, problems: list[str]) -> None:
        super().__init__(
            "cluster_name",
            f"EKS cluster {cluster_name} is not ready for audit-log detection, so nothing was installed:\n- "
            + "\n- ".join(problems)
            + "\nThis component never changes the cluster itself; run again once that is done.",
        )
        self.problems = problems


@schema_args
@dataclass(frozen=True)
class KnownCluster:
    """What FalcoDetection would otherwise look up, for a cluster the same stack creates (AuditedCluster's outputs)."""

    oidc_provider_arn: pulumi.Input[str]
    """ARN of the cluster's IAM OIDC provider (the forwarder role's trusted principal)."""

    oidc_issuer: pulumi.Input[str]
    """The cluster's OIDC issuer, with or without https://."""

    log_group_name: pulumi.Input[str]
    """The log group the cluster writes its audit log to, /aws/eks/<cluster>/cluster."""

    log_group_arn: pulumi.Input[str]
    """ARN of that log group; the forwarder's role may read it and nothing else."""

    def __post_init__(self) -> None:
        for setting in ("oidc_provider_arn", "oidc_issuer", "log_group_name", "log_group_arn"):
            value = getattr(self, setting)
            if value is None or (isinstance(value, str) and not value.strip()):
                raise ConfigError(setting, "is required")
        # Plain values are checked now; Outputs (a cluster being created) when they resolve.
        if isinstance(self.oidc_provider_arn, str) and ":oidc-provider/" not in self.oidc_provider_arn:
            raise ConfigError("oidc_provider_arn", f"must be an IAM OIDC provider ARN, got {self.oidc_provider_arn!r}")
        if isinstance(self.log_group_arn, str) and ":log-group:" not in self.log_group_arn:
            raise ConfigError("log_group_arn", f"must be a CloudWatch Logs log group ARN, got {self.log_group_arn!r}")


@schema_args
@dataclass(frozen=True)
class FalcoDetectionArgs:
    """Arguments of FalcoDetection. Checked when built; errors name the field."""

    cluster_name: str
    """The EKS cluster to install into. Without `cluster`, it must exist, with audit logging and an IAM OIDC
    provider, in the region of the AWS provider."""

    falco: FalcoSettings = field(default_factory=FalcoSettings)
    """Falco's settings: chart version and source, image mirror, Falcosidekick UI, alert outputs (the component
    creates a "create" topic or log group, and Falcosidekick's role), admin identities, extra Helm values per
    release."""

    forwarder_image: pulumi.Input[str] | None = None
    """A ready forwarder image to run; unset, the component gets one as `forwarderBuild` says."""

    forwarder_build: ForwarderBuild = ForwarderBuild.DOCKER
    """Without `forwarderImage`: "docker" builds the bundled forwarder and pushes it to a stack-owned ECR repository
    (needs Docker where `pulumi up` runs); "source" runs the bundled source on the official Python image (pulled
    through `falco.imageRegistry` when set)."""

    node_architecture: Architecture = Architecture.AMD64
    """CPU architecture of the nodes the forwarder runs on: the platform of the image built with "docker"."""

    kubeconfig_role_arn: str | None = None
    """IAM role the component's own kubeconfig assumes for its token (made only without a Kubernetes provider in
    the resource options): give the role your AWS provider assumes. Unset: the credentials current at the time."""

    cluster: KnownCluster | None = None
    """The cluster's facts, for a cluster the same stack creates; unset, they are looked up by `clusterName`. Given,
    pass the cluster's Kubernetes provider in the resource options."""

    audit_source: AuditSource = AuditSource.POLL
    """Where the forwarder reads the audit log: "poll" (FilterLogEvents on the log group; about 1,000 events/s per
    account at most) or "kinesis" (the component adds a subscription filter to the log group, into a Kinesis Data
    Stream it creates). A log group takes at most two subscription filters: with "kinesis", the cluster's log group
    must have room for one more."""

    kinesis: KinesisSettings = field(default_factory=KinesisSettings)
    """The stream's capacity and key, with `auditSource` "kinesis"."""

    tags: Mapping[str, str] = field(default_factory=dict)
    """AWS tags for the forwarder's IAM role and ECR repository, the Kinesis stream and its role, and the alert
    outputs' topic, log group and Falcosidekick's role."""

    def __post_init__(self) -> None:
        check_cluster_name("cluster_name", self.cluster_name)
        check_audit_source(self.audit_source, self.kinesis)
        object.__setattr__(self, "audit_source", AuditSource(self.audit_source))
        if not isinstance(self.falco, FalcoSettings):
            raise ConfigError("falco", "must be a FalcoSettings")
        if self.falco.sidekick_role_arn is not None:
            raise ConfigError(
                "falco.sidekick_role_arn",
                "is made by FalcoDetection (trusted by Falcosidekick's ServiceAccount, allowed its outputs' calls); "
                "leave it unset",
            )
        check_image_reference("forwarder_image", self.forwarder_image)
        if self.forwarder_build not in tuple(ForwarderBuild):
            raise ConfigError("forwarder_build", f"must be 'docker' or 'source', got {self.forwarder_build!r}")
        object.__setattr__(self, "forwarder_build", ForwarderBuild(self.forwarder_build))
        if self.node_architecture not in tuple(Architecture):
            raise ConfigError("node_architecture", f"must be 'amd64' or 'arm64', got {self.node_architecture!r}")
        object.__setattr__(self, "node_architecture", Architecture(self.node_architecture))
        if self.kubeconfig_role_arn is not None:
            check_role_arn("kubeconfig_role_arn", self.kubeconfig_role_arn)
        if self.cluster is not None and not isinstance(self.cluster, KnownCluster):
            raise ConfigError("cluster", "must be a KnownCluster")
        if not isinstance(self.tags, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.tags.items()
        ):
            raise ConfigError("tags", "must map tag names to string values")


def check_audit_source(source: object, kinesis: object) -> None:
    """Refuse an unknown audit source, and Kinesis settings that would be ignored (they need "kinesis")."""
    if source not in tuple(AuditSource):
        raise ConfigError("audit_source", f"must be 'poll' or 'kinesis', got {source!r}")
    if not isinstance(kinesis, KinesisSettings):
        raise ConfigError("kinesis", "must be a KinesisSettings")
    if source == AuditSource.POLL and kinesis != KinesisSettings():
        raise ConfigError("kinesis", "takes effect only with audit_source 'kinesis'; set that, or leave kinesis out")


def polling_warning(source: AuditSource, events_per_second: int) -> str | None:
    """What to say when the configured load is more than polling can follow; None when it is not."""
    if source != AuditSource.POLL or events_per_second <= POLL_CEILING_EVENTS_PER_SECOND:
        return None
    return (
        f"the audit log is read by polling, which follows about {POLL_CEILING_EVENTS_PER_SECOND} events/s per account "
        f"at most, but the cluster is expected to write {events_per_second}/s: the forwarder will fall behind; use "
        "audit source 'kinesis'"
    )


@dataclass(frozen=True)
class FoundCluster:
    """What the lookups found out about an existing cluster."""

    known: KnownCluster
    endpoint: str
    certificate_authority: str
    region: str


def log_group_of(cluster_name: str) -> str:
    return f"/aws/eks/{cluster_name}/cluster"


def look_up_cluster(cluster_name: str, opts: pulumi.InvokeOptions) -> FoundCluster:
    """Ask AWS about `cluster_name` (plain invokes: they return before anything else is registered).

    Raises ClusterNotReadyError naming everything missing at once, or ConfigError if the cluster cannot be read."""
    region = aws.get_region(opts=opts).region
    try:
        cluster = aws.eks.get_cluster(name=cluster_name, opts=opts)
    except Exception as err:  # noqa: BLE001 - any failure means the cluster cannot be used; AWS's reason is kept
        raise ConfigError(
            "cluster_name",
            f"could not read EKS cluster {cluster_name!r} in {region} ({err}); check the name, the AWS provider's "
            "region and that its identity may call eks:DescribeCluster",
        ) from err

    problems: list[str] = []
    update_logging = (
        f"aws eks update-cluster-config --region {region} --name {cluster_name} "
        """--logging '{"clusterLogging":[{"types":["audit"],"enabled":true}]}'"""
    )
    audit_on = "audit" in (cluster.enabled_cluster_log_types or [])
    if not audit_on:
        problems.append(
            "audit logging is off: turn on the 'audit' control-plane log type (EKS console: Observability, "
            f"Control plane logging; or `{update_logging}`)"
        )

    issuer = _issuer(cluster)
    oidc_provider_arn = ""
    associate = f"eksctl utils associate-iam-oidc-provider --region {region} --cluster {cluster_name} --approve"
    if not issuer:
        problems.append(
            f"the cluster has no OIDC issuer, so the forwarder cannot get an IAM role (IRSA): `{associate}`"
        )
    else:
        try:
            oidc = aws.iam.get_open_id_connect_provider(url=issuer, opts=opts)
        except Exception as err:  # noqa: BLE001 - not found, or not allowed to look: both stop IRSA here
            problems.append(
                f"no IAM OIDC provider for the cluster's issuer {issuer} ({err}), so the forwarder cannot get an IAM "
                f"role (IRSA): create one with `{associate}` (or an IAM OIDC identity provider for that URL with "
                f"audience {STS_AUDIENCE})"
            )
        else:
            oidc_provider_arn = oidc.arn
            if STS_AUDIENCE not in (oidc.client_id_lists or []):
                problems.append(
                    f"the IAM OIDC provider {oidc.arn} does not list the audience {STS_AUDIENCE}: add it as a client "
                    "ID (IRSA tokens carry that audience)"
                )

    group_name = log_group_of(cluster_name)
    log_group_arn = ""
    if audit_on:
        try:
            log_group_arn = aws.cloudwatch.get_log_group(name=group_name, opts=opts).arn
        except Exception as err:  # noqa: BLE001
            problems.append(
                f"the log group {group_name} cannot be read ({err}): EKS creates it when it first writes, a few "
                "minutes after audit logging is turned on; run again then (the identity needs logs:DescribeLogGroups)"
            )
    if problems:
        raise ClusterNotReadyError(cluster_name, problems)

    return FoundCluster(
        known=KnownCluster(
            oidc_provider_arn=oidc_provider_arn,
            oidc_issuer=issuer_host_path(issuer),
            log_group_name=group_name,
            log_group_arn=log_group_arn,
        ),
        endpoint=cluster.endpoint,
        certificate_authority=cluster.certificate_authorities[0].data,
        region=region,
    )


def _issuer(cluster: Any) -> str:
    for identity in cluster.identities or []:
        for oidc in identity.oidcs or []:
            if oidc.issuer:
                return cast(str, oidc.issuer)
    return ""


class FalcoDetection(pulumi.ComponentResource):
    """Falco (syscall DaemonSet, k8saudit instance, optionally Falcosidekick and its UI) and the audit forwarder,
    with its IRSA role and NetworkPolicies, on an EKS cluster: one that exists (looked up by its name), or one the
    same stack creates (its facts given as `cluster`)."""

    # The annotations below are the component's outputs (in its schema for other languages too).

    falco_namespace: pulumi.Output[str]
    """Namespace of Falco."""

    falco_webhook_url: pulumi.Output[str]
    """In-cluster URL of Falco's k8saudit webhook."""

    falco_ui_command: pulumi.Output[str] | None
    """kubectl command that opens the Falcosidekick UI on localhost; unset without the UI."""

    falco_ui_username: str | None
    """Login of the Falcosidekick UI; unset without the UI."""

    falco_ui_password: pulumi.Output[str] | None
    """Generated password of the Falcosidekick UI (secret); unset without the UI."""

    audit_log_group_name: pulumi.Output[str]
    """The CloudWatch log group the forwarder reads."""

    forwarder_role_arn: pulumi.Output[str]
    """IAM role the forwarder runs as (IRSA)."""

    forwarder_namespace: pulumi.Output[str]
    """Namespace of the forwarder."""

    forwarder_logs_command: pulumi.Output[str]
    """kubectl command that follows the forwarder's logs."""

    forwarder_metrics_command: pulumi.Output[str]
    """Command that prints the forwarder's Prometheus metrics."""

    forwarder_image: pulumi.Output[str]
    """The image the forwarder runs."""

    audit_stream_arn: pulumi.Output[str] | None
    """ARN of the Kinesis Data Stream the forwarder reads (`auditSource` "kinesis"); unset when it polls."""

    alert_topic_arn: pulumi.Output[str] | None
    """ARN of the SNS topic Falcosidekick publishes alerts to; unset without the SNS output."""

    alert_log_group_name: pulumi.Output[str] | None
    """The CloudWatch Logs log group Falcosidekick writes alerts to; unset without the CloudWatch Logs output."""

    sidekick_role_arn: pulumi.Output[str] | None
    """IAM role Falcosidekick runs as (IRSA); unset without an AWS alert output."""

    def __init__(self, name: str, args: FalcoDetectionArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        """Python callers also reach the children: `falco` (Falco), `forwarder` (AuditForwarder) and
        `kubernetes_provider` (the provider the component made, or None with the caller's)."""
        args = from_inputs(FalcoDetectionArgs, args)
        super().__init__(COMPONENT_TYPE, name, None, opts)
        given_kubernetes = self.get_provider("kubernetes:index:Provider")

        # Everything is checked before the first child: a refusal leaves nothing behind.
        found: FoundCluster | None = None
        if args.cluster is None:
            found = look_up_cluster(args.cluster_name, pulumi.InvokeOptions(parent=self))
            known = found.known
        else:
            if given_kubernetes is None:
                raise ConfigError(
                    "cluster",
                    "with the cluster's facts given, pass the cluster's Kubernetes provider in the resource options "
                    "(provider= or providers=); the component only makes its own for a cluster it looks up",
                )
            known = args.cluster
        alerts = args.falco.alert_outputs
        place = (
            look_up_destinations(alerts, pulumi.InvokeOptions(parent=self), "falco.alert_outputs")
            if alerts.uses_aws
            else None
        )

        child = pulumi.ResourceOptions(parent=self)
        self.kubernetes_provider: k8s.Provider | None = None
        if given_kubernetes is None and found is not None:
            document = kubeconfig_document(
                cluster_name=args.cluster_name,
                endpoint=found.endpoint,
                certificate_authority_data=found.certificate_authority,
                region=found.region,
                role_arn=args.kubeconfig_role_arn,
            )
            self.kubernetes_provider = k8s.Provider(
                f"{name}-k8s", kubeconfig=pulumi.Output.secret(json.dumps(document)), opts=child
            )
            child = pulumi.ResourceOptions(parent=self, providers={"kubernetes": self.kubernetes_provider})

        falco_names = args.falco.names
        destinations = create_alert_destinations(
            name,
            alerts,
            args.cluster_name,
            SidekickIdentity(
                namespace=args.falco.namespace,
                service_account=falco_names.sidekick_fullname,  # the chart's ServiceAccount (templates/rbac.yaml)
                oidc_provider_arn=known.oidc_provider_arn,
                oidc_issuer=known.oidc_issuer,
            ),
            place,
            dict(args.tags),
            self,
        )
        falco_args = dataclasses.replace(
            args.falco, alert_outputs=destinations.outputs, sidekick_role_arn=destinations.role_arn
        )
        self.falco = Falco(f"{name}-falco", falco_args, opts=child)
        if (warning := polling_warning(args.audit_source, args.falco.audit_events_per_second)) is not None:
            pulumi.log.warn(warning, resource=self)
        self.audit_stream: AuditStream | None = None
        forwarder_waits_for: list[pulumi.Resource] = list(self.falco.releases)
        if args.audit_source == AuditSource.KINESIS:
            self.audit_stream = AuditStream(
                f"{name}-audit-stream",
                AuditStreamArgs(
                    log_group_name=known.log_group_name,
                    log_group_arn=known.log_group_arn,
                    kinesis=args.kinesis,
                    tags=dict(args.tags),
                ),
                opts=child,
            )
            # The stream fills from the filter on: the forwarder starts reading once it exists.
            forwarder_waits_for.append(self.audit_stream.subscription)
        stream = self.audit_stream
        region = aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self)).region
        self.forwarder = AuditForwarder(
            f"{name}-forwarder",
            AuditForwarderArgs(
                log_group_name=known.log_group_name,
                log_group_arn=known.log_group_arn,
                oidc_provider_arn=known.oidc_provider_arn,
                oidc_issuer=known.oidc_issuer,
                region=region,
                falco_url=self.falco.webhook_url,
                falco_namespace=self.falco.namespace,
                falco_pod_labels=self.falco.audit_pod_labels,
                falco_port=self.falco.webhook_port,
                falco_connections=CONNECTIONS_PER_AUDIT_REPLICA * self.falco.audit_replicas,
                kinesis_stream_arn=stream.stream_arn if stream is not None else None,
                kinesis_kms_key_arn=args.kinesis.kms_key_arn if stream is not None else None,
                image=args.forwarder_image,
                build=args.forwarder_build,
                node_architecture=args.node_architecture,
                source_mode_image=mirrored(DEFAULT_SOURCE_MODE_IMAGE, args.falco.image_registry),
                tags=dict(args.tags),
            ),
            # Nothing to deliver to before Falco's audit instance is up.
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=forwarder_waits_for)),
        )

        self.falco_namespace = self.falco.namespace
        self.falco_webhook_url = self.falco.webhook_url
        self.falco_ui_command = self.falco.ui_command
        self.falco_ui_username = self.falco.ui_username
        self.falco_ui_password = self.falco.ui_password
        self.audit_log_group_name = pulumi.Output.from_input(known.log_group_name)
        self.forwarder_role_arn = self.forwarder.role_arn
        self.forwarder_namespace = self.forwarder.namespace
        self.forwarder_logs_command = self.forwarder.logs_command
        self.forwarder_metrics_command = self.forwarder.metrics_command
        self.forwarder_image = self.forwarder.image
        self.audit_stream_arn = stream.stream_arn if stream is not None else None
        self.alert_topic_arn = destinations.topic_arn
        self.alert_log_group_name = destinations.log_group_name
        self.sidekick_role_arn = destinations.role_arn
        self.register_outputs(self.outputs())

    def outputs(self) -> dict[str, Any]:
        """The outputs by export name (camelCase); the UI entries only with the UI, the stream's only with Kinesis,
        the alert outputs' only with them."""
        exported: dict[str, Any] = {
            "auditLogGroupName": self.audit_log_group_name,
            "falcoNamespace": self.falco_namespace,
            "falcoWebhookUrl": self.falco_webhook_url,
            "forwarderRoleArn": self.forwarder_role_arn,
            "forwarderNamespace": self.forwarder_namespace,
            "forwarderImage": self.forwarder_image,
            "forwarderLogsCommand": self.forwarder_logs_command,
            "forwarderMetricsCommand": self.forwarder_metrics_command,
        }
        if self.falco_ui_password is not None:
            exported.update(
                falcoUiCommand=self.falco_ui_command,
                falcoUiUsername=self.falco_ui_username,
                falcoUiPassword=self.falco_ui_password,
            )
        if self.audit_stream_arn is not None:
            exported["auditStreamArn"] = self.audit_stream_arn
        for export, value in (
            ("alertTopicArn", self.alert_topic_arn),
            ("alertLogGroupName", self.alert_log_group_name),
            ("sidekickRoleArn", self.sidekick_role_arn),
        ):
            if value is not None:
                exported[export] = value
        return exported
