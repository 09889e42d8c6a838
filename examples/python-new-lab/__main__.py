"""A Falco lab on a new EKS cluster: the cluster with its audit log, Falco, and the audit forwarder, as one unit."""

import pulumi
from falco_eks.components import AuditedClusterSettings, FalcoEksLab, FalcoEksLabArgs, FalcoSettings

lab = FalcoEksLab(
    "lab",
    FalcoEksLabArgs(
        cluster=AuditedClusterSettings(
            cluster_name="falco-lab",
            node_count=2,
            # Narrow the public API endpoint to your own address where you can.
            api_public_access_cidrs=("203.0.113.0/24",),
            cluster_viewer_arns=("arn:aws:iam::123456789012:role/Auditors",),
        ),
        falco=FalcoSettings(sidekick_ui=True),
        forwarder_build="source",  # no Docker needed where `pulumi up` runs
    ),
)

pulumi.export("clusterName", lab.cluster_name)
pulumi.export("kubeconfig", lab.kubeconfig)
pulumi.export("falcoUiCommand", lab.falco_ui_command)
pulumi.export("falcoUiPassword", lab.falco_ui_password)
pulumi.export("forwarderLogsCommand", lab.forwarder_logs_command)
