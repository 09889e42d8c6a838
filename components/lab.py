"""FalcoEksLab: the umbrella the lab stack creates: an AuditedCluster, and FalcoDetection on it.

FalcoDetection is the same component a company points at a cluster it already runs; here it gets the cluster's
facts (OIDC provider, log group) and its Kubernetes provider from AuditedCluster instead of looking them up, so
both paths share one implementation. All of it hangs under one component: `pulumi up` and `pulumi destroy`
handle the whole lab as one unit.
"""

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import pulumi

from .alerts.destinations import look_up_destinations
from .args import AuditSource, ForwarderBuild, from_inputs, schema_args
from .cluster import AuditedCluster, AuditedClusterSettings, node_architecture_of
from .detection import FalcoDetection, FalcoDetectionArgs, KnownCluster, check_audit_source
from .errors import ConfigError
from .falco import FalcoSettings
from .forwarding.audit_stream import KinesisSettings

COMPONENT_TYPE = "falco-eks:index:FalcoEksLab"

MOVED_UNDER_DETECTION = frozenset({"falco-eks:index:Falco", "falco-eks:index:AuditForwarder"})
"""Up to 0.2 these were the lab's own children; since 0.3 FalcoDetection holds them (same names)."""


def _moved_from(lab: pulumi.Resource) -> pulumi.ResourceTransformation:
    """A transformation for the lab's FalcoDetection: its Falco and AuditForwarder were the lab's children up to
    0.2, so each also answers to its old place (an alias with the lab as parent). The engine then finds every
    resource below them at its old place too, and an upgrade from 0.2 takes them over instead of replacing them."""

    def alias_old_place(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
        if args.type_ not in MOVED_UNDER_DETECTION or not isinstance(args.opts.parent, FalcoDetection):
            return None
        moved = pulumi.ResourceOptions(aliases=[pulumi.Alias(parent=lab)])
        return pulumi.ResourceTransformationResult(args.props, pulumi.ResourceOptions.merge(args.opts, moved))

    return alias_old_place


@schema_args
@dataclass(frozen=True)
class FalcoEksLabArgs:
    """Arguments of FalcoEksLab: the cluster's, Falco's, and how to get the forwarder.

    Everything that can be checked without a cluster is checked here, so a bad value fails before any resource
    is registered."""

    cluster: AuditedClusterSettings
    """The audited EKS cluster. Its `clusterAdminArns` also count as admin identities for Falco's rules."""

    falco: FalcoSettings = field(default_factory=lambda: FalcoSettings(admin_access_alerts=True))
    """Falco's settings: chart version and source, image mirror, Falcosidekick UI, alert outputs, admin identities,
    extra Helm values per release. By default with `adminAccessAlerts` on, as the workshop shows it."""

    forwarder_image: pulumi.Input[str] | None = None
    """A ready forwarder image to run; unset, the lab gets one as `forwarderBuild` says."""

    forwarder_build: ForwarderBuild = ForwarderBuild.DOCKER
    """Without `forwarderImage`: "docker" builds the forwarder and pushes it to a stack-owned ECR repository (needs a
    Docker engine where `pulumi up` runs); "source" runs the bundled source on the official Python image."""

    audit_source: AuditSource = AuditSource.POLL
    """Where the forwarder reads the audit log: "poll" (FilterLogEvents; about 1,000 events/s per account at most)
    or "kinesis" (the lab subscribes a Kinesis Data Stream it creates to the log group; a log group takes at most
    two subscription filters)."""

    kinesis: KinesisSettings = field(default_factory=KinesisSettings)
    """The stream's capacity and key, with `auditSource` "kinesis"."""

    def __post_init__(self) -> None:
        if not isinstance(self.cluster, AuditedClusterSettings):
            raise ConfigError("cluster", "must be an AuditedClusterSettings")
        if not isinstance(self.falco, FalcoSettings):
            raise ConfigError("falco", "must be a FalcoSettings")
        check_audit_source(self.audit_source, self.kinesis)
        checked = self.detection_args()  # raises ConfigError naming the field
        object.__setattr__(self, "forwarder_build", checked.forwarder_build)
        object.__setattr__(self, "audit_source", checked.audit_source)

    def detection_args(self, cluster: KnownCluster | None = None) -> FalcoDetectionArgs:
        """FalcoDetection's arguments for this lab's cluster (`cluster`: its facts once it is declared)."""
        admins = tuple(dict.fromkeys((*self.falco.admin_identities, *self.cluster.cluster_admin_arns)))
        return FalcoDetectionArgs(
            cluster_name=self.cluster.cluster_name,
            falco=dataclasses.replace(self.falco, admin_identities=admins),
            forwarder_image=self.forwarder_image,
            forwarder_build=self.forwarder_build,
            node_architecture=node_architecture_of(self.cluster.node_instance_type),
            cluster=cluster,
            audit_source=self.audit_source,
            kinesis=self.kinesis,
            tags=dict(self.cluster.tags),
        )


class FalcoEksLab(pulumi.ComponentResource):
    """The whole lab: an audited EKS cluster, Falco on it, and the audit forwarder between them, all under this one
    component, so `pulumi destroy` removes them together."""

    # The annotations below are the component's outputs (in its schema for other languages too).

    cluster_name: pulumi.Output[str]
    """The EKS cluster's name."""

    kubeconfig: pulumi.Output[str]
    """Kubeconfig of the cluster (JSON, secret)."""

    audit_log_group_name: pulumi.Output[str]
    """The CloudWatch log group holding the audit log."""

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

    def __init__(self, name: str, args: FalcoEksLabArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        """Python callers also reach the children: `cluster` (AuditedCluster) and `detection` (FalcoDetection,
        holding `falco` and `forwarder`)."""
        args = from_inputs(FalcoEksLabArgs, args)
        super().__init__(COMPONENT_TYPE, name, None, opts)

        # The alert outputs' AWS destinations are checked before the cluster, so a refusal creates nothing.
        if args.falco.alert_outputs.uses_aws:
            look_up_destinations(args.falco.alert_outputs, pulumi.InvokeOptions(parent=self), "falco.alert_outputs")
        self.cluster = AuditedCluster(f"{name}-cluster", args.cluster, opts=pulumi.ResourceOptions(parent=self))
        known = KnownCluster(
            oidc_provider_arn=self.cluster.oidc_provider_arn,
            oidc_issuer=self.cluster.oidc_issuer,
            log_group_name=self.cluster.log_group_name,
            log_group_arn=self.cluster.log_group_arn,
        )
        # Named like the lab (a different type): its children are <lab>-falco and <lab>-forwarder.
        self.detection = FalcoDetection(
            name,
            args.detection_args(known),
            opts=pulumi.ResourceOptions(
                parent=self,
                providers={"kubernetes": self.cluster.provider},
                transformations=[_moved_from(self)],
            ),
        )

        self.cluster_name = self.cluster.cluster_name
        self.kubeconfig = self.cluster.kubeconfig
        # The lab's other outputs are the detection's (declared again above: the schema reads each class).
        for output in FalcoDetection.__annotations__:
            setattr(self, output, getattr(self.detection, output))

        self.register_outputs(self.outputs())

    def outputs(self) -> dict[str, Any]:
        """The values a stack exports, by export name (camelCase); the UI entries only with the UI."""
        return {"clusterName": self.cluster_name, "kubeconfig": self.kubeconfig, **self.detection.outputs()}
