"""FalcoEksLab: the umbrella the lab stack creates.

AuditedCluster -> Falco -> AuditForwarder, all children of one component, so `pulumi up` and
`pulumi destroy` handle the whole lab as one unit. The forwarder waits for both Falco releases:
it has nothing to send events to before the audit instance serves its webhook.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import pulumi

from .audit_forwarder import AuditForwarder, AuditForwarderArgs
from .cluster import AuditedCluster, AuditedClusterArgs
from .errors import ConfigError
from .falco import DEFAULT_CHART_VERSION, Falco, FalcoArgs, chart_release
from .falco_rules import admin_matchers

COMPONENT_TYPE = "falco-eks:index:FalcoEksLab"

_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")

ForwarderBuild = Literal["docker", "source"]


@dataclass(frozen=True)
class FalcoEksLabArgs:
    """Arguments of FalcoEksLab: the cluster's, plus the Falco and forwarder settings the lab exposes.

    Everything that can be checked without a cluster is checked here, so a bad value fails before
    any resource is registered."""

    cluster: AuditedClusterArgs
    """The audited EKS cluster."""

    region: str
    """AWS region of the stack (the forwarder's CloudWatch client uses it)."""

    falco_chart_version: str = DEFAULT_CHART_VERSION
    """Pinned version of the falcosecurity `falco` chart; one the lab knows (components/falco.py CHART_RELEASES)."""

    sidekick_ui: bool = True
    """Install Falcosidekick and its web UI (reached with kubectl port-forward; password generated)."""

    admin_identities: tuple[str, ...] = ()
    """Identities whose API calls raise "Full K8s Administrative Access": IAM user, role or assumed-role
    ARNs (as EKS writes them into the audit log) or Kubernetes user names."""

    forwarder_image: str | None = None
    """A ready forwarder image to run; None builds the bundled forwarder as forwarder_build says."""

    forwarder_build: ForwarderBuild = "docker"
    """How to get the forwarder without forwarder_image: "docker" builds and pushes to a stack-owned ECR
    repository (needs a Docker engine); "source" runs the bundled source on the official Python image."""

    def __post_init__(self) -> None:
        if not isinstance(self.cluster, AuditedClusterArgs):
            raise ConfigError("cluster", "must be an AuditedClusterArgs")
        if not isinstance(self.region, str) or not _REGION.match(self.region):
            raise ConfigError("region", f"{self.region!r} is not an AWS region such as us-west-2")
        chart_release(self.falco_chart_version, "falco_chart_version")  # only versions the lab pins artifacts for
        if not isinstance(self.sidekick_ui, bool):
            raise ConfigError("sidekick_ui", f"must be true or false, got {self.sidekick_ui!r}")
        if isinstance(self.admin_identities, str):
            raise ConfigError("admin_identities", "must be a list of identities, not one string")
        object.__setattr__(self, "admin_identities", tuple(self.admin_identities))
        admin_matchers(self.admin_identities, "admin_identities")  # raises ConfigError naming the field
        if self.forwarder_image is not None and (
            not self.forwarder_image.strip() or any(c.isspace() for c in self.forwarder_image)
        ):
            raise ConfigError("forwarder_image", f"{self.forwarder_image!r} is not an image reference")
        if self.forwarder_build not in ("docker", "source"):
            raise ConfigError("forwarder_build", f"must be 'docker' or 'source', got {self.forwarder_build!r}")


class FalcoEksLab(pulumi.ComponentResource):
    """The whole lab: an audited EKS cluster, Falco on it, and the audit forwarder between them."""

    cluster: AuditedCluster
    """The audited EKS cluster."""

    falco: Falco
    """Falco: syscall DaemonSet, k8saudit instance and (optionally) Falcosidekick with its UI."""

    forwarder: AuditForwarder
    """The forwarder from the CloudWatch audit log to Falco's webhook."""

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

    def __init__(self, name: str, args: FalcoEksLabArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(COMPONENT_TYPE, name, None, opts)

        self.cluster = AuditedCluster(f"{name}-cluster", args.cluster, opts=pulumi.ResourceOptions(parent=self))

        self.falco = Falco(
            f"{name}-falco",
            FalcoArgs(
                provider=self.cluster.provider,
                chart_version=args.falco_chart_version,
                sidekick_ui=args.sidekick_ui,
                admin_identities=args.admin_identities,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

        self.forwarder = AuditForwarder(
            f"{name}-forwarder",
            AuditForwarderArgs(
                provider=self.cluster.provider,
                log_group_name=self.cluster.log_group_name,
                log_group_arn=self.cluster.log_group_arn,
                oidc_provider_arn=self.cluster.oidc_provider_arn,
                oidc_issuer=self.cluster.oidc_issuer,
                region=args.region,
                falco_url=self.falco.webhook_url,
                falco_namespace=self.falco.namespace,
                falco_pod_labels=self.falco.audit_pod_labels,
                falco_port=self.falco.webhook_port,
                image=args.forwarder_image,
                build=args.forwarder_build,
                node_architecture=self.cluster.node_architecture,
                tags=dict(args.cluster.tags),
            ),
            # Nothing to deliver to before Falco's audit instance is up.
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(self.falco.releases)),
        )

        self.cluster_name = self.cluster.cluster_name
        self.kubeconfig = self.cluster.kubeconfig
        self.audit_log_group_name = self.cluster.log_group_name
        self.falco_namespace = self.falco.namespace
        self.falco_webhook_url = self.falco.webhook_url
        self.falco_ui_command = self.falco.ui_command
        self.falco_ui_username = self.falco.ui_username
        self.falco_ui_password = self.falco.ui_password
        self.forwarder_role_arn = self.forwarder.role_arn
        self.forwarder_namespace = self.forwarder.namespace
        self.forwarder_logs_command = self.forwarder.logs_command
        self.forwarder_metrics_command = self.forwarder.metrics_command
        self.forwarder_image = self.forwarder.image

        self.register_outputs(self.outputs())

    def outputs(self) -> dict[str, Any]:
        """The values a stack exports, by export name (camelCase); the UI entries only with the UI."""
        exported: dict[str, Any] = {
            "clusterName": self.cluster_name,
            "kubeconfig": self.kubeconfig,
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
        return exported
