"""Reusable Pulumi components of the Falco-on-EKS lab.

A company stack imports what it needs, e.g. ``from components import AuditedCluster, AuditedClusterArgs``.
"""

from components.cluster import AuditedCluster, AuditedClusterArgs
from components.errors import ConfigError
from components.network import LabVpc, LabVpcArgs

__all__ = [
    "AuditedCluster",
    "AuditedClusterArgs",
    "ConfigError",
    "LabVpc",
    "LabVpcArgs",
]
