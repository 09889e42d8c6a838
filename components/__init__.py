"""Reusable Pulumi components of the Falco-on-EKS lab.

A company stack imports what it needs, e.g. ``from components import AuditedCluster, AuditedClusterArgs``,
or the whole lab with ``FalcoEksLab``.
"""

from .audit_forwarder import AuditForwarder, AuditForwarderArgs
from .cluster import AuditedCluster, AuditedClusterArgs
from .errors import ConfigError
from .falco import Falco, FalcoArgs
from .lab import FalcoEksLab, FalcoEksLabArgs
from .network import LabVpc, LabVpcArgs

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
