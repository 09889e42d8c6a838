"""Falco and the audit forwarder on an EKS cluster that exists already, deployed as a platform role."""

import pulumi
import pulumi_aws as aws
from falco_eks.components import FalcoDetection, FalcoDetectionArgs, FalcoSettings, KinesisSettings

deployer = "arn:aws:iam::123456789012:role/platform/Deployer"
prod = aws.Provider(
    "prod", region="eu-central-1", assume_roles=[aws.ProviderAssumeRoleArgs(role_arn=deployer)]
)

detection = FalcoDetection(
    "falco",
    FalcoDetectionArgs(
        cluster_name="prod-eu",
        kubeconfig_role_arn=deployer,  # the component's kubeconfig acts as the provider's role
        forwarder_build="source",  # no Docker needed where `pulumi up` runs
        audit_source="kinesis",  # one of the log group's two subscription filters
        kinesis=KinesisSettings(shard_count=2),  # provisioned; leave out for on-demand
        falco=FalcoSettings(
            audit_events_per_second=4000,  # four audit replicas of one CPU each
            admin_identities=("arn:aws:iam::123456789012:role/PlatformAdmin",),
            image_registry="123456789012.dkr.ecr.eu-central-1.amazonaws.com/docker-hub",
            audit_values={"podPriorityClassName": "system-cluster-critical"},
            syscall_values={"nodeSelector": {"kubernetes.io/os": "linux"}},
        ),
    ),
    opts=pulumi.ResourceOptions(providers={"aws": prod}),
)

pulumi.export("falcoUiCommand", detection.falco_ui_command)
pulumi.export("forwarderLogsCommand", detection.forwarder_logs_command)
pulumi.export("auditStreamArn", detection.audit_stream_arn)
