"""Reusable Pulumi components of the Falco-on-EKS lab.

A company stack imports what it needs, e.g. ``from components import AuditedCluster, AuditedClusterArgs``,
or the whole lab with ``FalcoEksLab``.
"""

from components.audit_forwarder import AuditForwarder, AuditForwarderArgs
from components.cluster import AuditedCluster, AuditedClusterArgs
from components.errors import ConfigError
from components.falco import Falco, FalcoArgs
from components.lab import FalcoEksLab, FalcoEksLabArgs
from components.network import LabVpc, LabVpcArgs

__all__ = [
    "AuditForwarder",
    "AuditForwarderArgs",
    "AuditedCluster",
    "AuditedClusterArgs",
    "ConfigError",
    "Falco",
    "FalcoArgs",
    "FalcoEksLab",
    "FalcoEksLabArgs",
    "LabVpc",
    "LabVpcArgs",
]
