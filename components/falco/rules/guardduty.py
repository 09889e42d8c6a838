"""Amazon GuardDuty's finding types for EKS audit logs, the names the lab's rules answer to.

From the GuardDuty user guide, "EKS Protection finding types"
(https://docs.aws.amazon.com/guardduty/latest/ug/guardduty-finding-types-eks-audit-logs.html), and
the retired-types page for PrivilegedContainer and ContainerWithSensitiveMount, whose
AnomalousBehavior.WorkloadDeployed! variants are current. A rule's tags carry them as
``guardduty:<finding type>``, so Falco's JSON alert (and Falcosidekick) shows which GuardDuty finding
the alert stands for.

MODELLED are the 24 types the recorded threat scenarios model (../shared/corpus/real-falco/threats/);
the rest are the tactic variants of the same behaviours (a caller from a hostile address does the
same whatever it calls) and the ``.Custom`` variants, which GuardDuty raises for a customer's own
threat list, as the lab's hostileSourceAddresses is.
"""

from __future__ import annotations

from typing import Final

MODELLED: Final = (
    "CredentialAccess:Kubernetes/AnomalousBehavior.SecretsAccessed",
    "CredentialAccess:Kubernetes/MaliciousIPCaller",
    "CredentialAccess:Kubernetes/SuccessfulAnonymousAccess",
    "CredentialAccess:Kubernetes/TorIPCaller",
    "DefenseEvasion:Kubernetes/SuccessfulAnonymousAccess",
    "Discovery:Kubernetes/AnomalousBehavior.PermissionChecked",
    "Discovery:Kubernetes/MaliciousIPCaller",
    "Discovery:Kubernetes/SuccessfulAnonymousAccess",
    "Discovery:Kubernetes/TorIPCaller",
    "Execution:Kubernetes/AnomalousBehavior.ExecInPod",
    "Execution:Kubernetes/AnomalousBehavior.WorkloadDeployed",
    "Execution:Kubernetes/ExecInKubeSystemPod",
    "Impact:Kubernetes/SuccessfulAnonymousAccess",
    "Persistence:Kubernetes/AnomalousBehavior.WorkloadDeployed!ContainerWithSensitiveMount",
    "Persistence:Kubernetes/ContainerWithSensitiveMount",
    "Persistence:Kubernetes/SuccessfulAnonymousAccess",
    "Policy:Kubernetes/AdminAccessToDefaultServiceAccount",
    "Policy:Kubernetes/AnonymousAccessGranted",
    "Policy:Kubernetes/ExposedDashboard",
    "Policy:Kubernetes/KubeflowDashboardExposed",
    "PrivilegeEscalation:Kubernetes/AnomalousBehavior.RoleBindingCreated",
    "PrivilegeEscalation:Kubernetes/AnomalousBehavior.RoleCreated",
    "PrivilegeEscalation:Kubernetes/AnomalousBehavior.WorkloadDeployed!PrivilegedContainer",
    "PrivilegeEscalation:Kubernetes/PrivilegedContainer",
)

HOSTILE_CALLER: Final = tuple(
    f"{tactic}:Kubernetes/{kind}"
    for tactic in ("CredentialAccess", "DefenseEvasion", "Discovery", "Impact", "Persistence")
    for kind in ("MaliciousIPCaller", "MaliciousIPCaller.Custom", "TorIPCaller")
)
"""A request from a listed address, by tactic; GuardDuty names the tactic from what was called."""

FINDING_TYPES: Final = frozenset(MODELLED) | frozenset(HOSTILE_CALLER)


def tag(finding_type: str) -> str:
    """The rule tag for a finding type."""
    if finding_type not in FINDING_TYPES:
        raise ValueError(f"{finding_type!r} is not a GuardDuty EKS audit-log finding type")
    return f"guardduty:{finding_type}"
