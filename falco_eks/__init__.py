"""Falco on Amazon EKS, fed by the cluster's Kubernetes audit log, as Pulumi components.

Installed, the project's packages live under this one name::

    from falco_eks.components import FalcoEksLab, FalcoEksLabArgs

``falco_eks.components`` holds the Pulumi components, ``falco_eks.forwarder`` the audit forwarder
(shipped as the source the components build or run), ``falco_eks.workshop`` the lab's workshop
commands. In the repository they are the top-level folders components/, forwarder/ and workshop/.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("falco-eks")
except PackageNotFoundError:  # a source checkout, not installed
    __version__ = "0.0.0+source"
