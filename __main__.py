"""The lab stack: read and check the stack's config, build the FalcoEksLab umbrella, export its outputs.

Settings are declared in Pulumi.yaml (`pulumi config` lists them); components/stack_config.py reads
them and checks every value before anything is created.
"""

import pulumi
import pulumi_aws as aws

from components.cluster.kubernetes_versions import OfferedVersion
from components.errors import ConfigError
from components.lab import FalcoEksLab
from components.stack_config import (
    check_alert_destinations,
    check_kubernetes_version,
    read_lab_args,
    with_admin_identity,
    with_cluster_creator,
)


def offered_versions() -> list[OfferedVersion] | None:
    """The Kubernetes versions EKS offers in this region, or None (with a warning) if it cannot be asked."""
    try:
        answer = aws.eks.get_cluster_versions(include_all=True)
    except Exception as err:  # noqa: BLE001 - any failure (permission, network) falls back to the calendar
        pulumi.log.warn(f"could not ask EKS which Kubernetes versions it offers ({err}); using the lab's calendar")
        return None
    return [
        OfferedVersion(v.cluster_version, v.version_status, v.end_of_standard_support_date)
        for v in answer.cluster_versions or []
    ]


try:
    lab_args = read_lab_args(pulumi.Config(), pulumi.Config("aws"))
    # Before any resource: a version EKS no longer offers would otherwise fail half-way through `up`.
    check_kubernetes_version(lab_args, offered_versions())
    # The alert outputs' AWS destinations: in the stack's account and region, and there.
    check_alert_destinations(lab_args)
except ConfigError as err:
    # A one-line message naming the setting instead of a Python traceback.
    raise pulumi.RunError(f"invalid stack configuration: {err}") from err

# The deploying identity creates the cluster, and EKS gives it admin access itself.
deployer = aws.get_caller_identity()
try:
    # Before any resource: a second access entry for it (clusterAdminArns) would fail half-way through `up`.
    lab_args = with_cluster_creator(lab_args, deployer.arn)
except ConfigError as err:
    raise pulumi.RunError(f"invalid stack configuration: {err}") from err

# It is also the identity attendees use, so the "Full K8s Administrative Access" rule should fire for it.
try:
    lab_args = with_admin_identity(lab_args, deployer.arn)
except ConfigError as err:
    # E.g. the account's root user: nothing the rule can match; deploy anyway and say so.
    pulumi.log.warn(f"the deploying identity is left out of the admin-access rule: {err}")

lab = FalcoEksLab("falco-eks-lab", lab_args)

for export_name, value in lab.outputs().items():
    pulumi.export(export_name, value)
