"""Reusable Pulumi components of the Falco-on-EKS lab.

Installed, they are ``falco_eks.components``: a company stack imports what it needs, e.g.
``from falco_eks.components import FalcoDetection, FalcoDetectionArgs`` for an EKS cluster it already runs, or
the whole lab with ``FalcoEksLab``. The same components are served to other languages by provider/.
"""

from typing import Any

from .args import Architecture, AuditSource, ForwarderBuild
from .cluster import AuditedCluster, AuditedClusterSettings
from .cluster.network import LabVpc, LabVpcArgs
from .detection import ClusterNotReadyError, FalcoDetection, FalcoDetectionArgs, KnownCluster
from .errors import ConfigError
from .falco import OWNED_VALUES, Falco, FalcoSettings
from .forwarding.audit_forwarder import AuditForwarder, AuditForwarderArgs
from .forwarding.audit_stream import AuditStream, AuditStreamArgs, KinesisSettings
from .forwarding.workload import Resources
from .lab import FalcoEksLab, FalcoEksLabArgs
from .renamed import renamed

COMPONENTS = (FalcoEksLab, AuditedCluster, FalcoDetection, Falco, AuditForwarder, AuditStream, LabVpc)
"""Every component, as the component package (provider/) hosts them."""

__all__ = [
    "COMPONENTS",
    "OWNED_VALUES",
    "Architecture",
    "AuditForwarder",
    "AuditForwarderArgs",
    "AuditSource",
    "AuditStream",
    "AuditStreamArgs",
    "AuditedCluster",
    "AuditedClusterSettings",
    "ClusterNotReadyError",
    "ConfigError",
    "Falco",
    "FalcoSettings",
    "FalcoDetection",
    "FalcoDetectionArgs",
    "FalcoEksLab",
    "FalcoEksLabArgs",
    "ForwarderBuild",
    "KinesisSettings",
    "KnownCluster",
    "LabVpc",
    "LabVpcArgs",
    "Resources",
]


def __getattr__(name: str) -> Any:
    # Old names of renamed classes (components/renamed.py).
    return renamed(__name__, name)
