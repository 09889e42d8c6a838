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

from .args import AuditSource, ForwarderBuild, from_inputs, schema_args
from .audit_stream import KinesisSettings
from .cluster import AuditedCluster, AuditedClusterArgs, node_architecture_of
from .detection import FalcoDetection, FalcoDetectionArgs, KnownCluster, check_audit_source
from .errors import ConfigError
from .falco import FalcoArgs

COMPONENT_TYPE = "falco-eks:index:FalcoEksLab"


@schema_args
@dataclass(frozen=True)
class FalcoEksLabArgs:
    """Arguments of FalcoEksLab: the cluster's, Falco's, and how to get the forwarder.

    Everything that can be checked without a cluster is checked here, so a bad value fails before any resource
    is registered."""

    cluster: AuditedClusterArgs
    """The audited EKS cluster. Its cluster admins also count as admin identities for Falco's rules."""

    falco: FalcoArgs = field(default_factory=lambda: FalcoArgs(admin_access_alerts=True))
    """Falco's settings: chart version and source, image mirror, Falcosidekick UI, admin identities, extra Helm
    values per release. By default with `adminAccessAlerts` on, as the workshop shows it."""

    forwarder_image: pulumi.Input[str] | None = None
    """A ready forwarder image to run; None gets one as forwarder_build says."""

    forwarder_build: ForwarderBuild = ForwarderBuild.DOCKER
    """Without forwarder_image: "docker" builds and pushes to a stack-owned ECR repository (needs a Docker engine);
    "source" runs the bundled source on the official Python image."""

    audit_source: AuditSource = AuditSource.POLL
    """Where the forwarder reads the audit log: "poll" (FilterLogEvents; about 1,000 events/s per account at most)
    or "kinesis" (the lab adds the log group's subscription filter into a Kinesis Data Stream it creates; a log
    group takes at most two subscription filters)."""

    kinesis: KinesisSettings = field(default_factory=KinesisSettings)
    """The stream's capacity mode and key, with audit_source "kinesis"."""

    def __post_init__(self) -> None:
        if not isinstance(self.cluster, AuditedClusterArgs):
            raise ConfigError("cluster", "must be an AuditedClusterArgs")
        if not isinstance(self.falco, FalcoArgs):
            raise ConfigError("falco", "must be a FalcoArgs")
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
    """The whole lab: an audited EKS cluster, Falco on it, and the audit forwarder between them.

    The annotations below are its outputs. Python callers also reach the children: `cluster` (AuditedCluster) and
    `detection` (FalcoDetection, holding `falco` and `forwarder`)."""

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
    """kubectl command that opens the Falcosidekick UI on localhost; None without the UI."""

    falco_ui_username: str | None
    """Login of the Falcosidekick UI; None without the UI."""

    falco_ui_password: pulumi.Output[str] | None
    """Generated password of the Falcosidekick UI (secret); None without the UI."""

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
    """ARN of the Kinesis Data Stream the forwarder reads (audit source "kinesis"); None when it polls."""

    def __init__(self, name: str, args: FalcoEksLabArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        args = from_inputs(FalcoEksLabArgs, args)
        super().__init__(COMPONENT_TYPE, name, None, opts)

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
            opts=pulumi.ResourceOptions(parent=self, providers={"kubernetes": self.cluster.provider}),
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
