"""Access: exec and attach into pods, port forwarding, ephemeral debug containers, anonymous requests the API
server let through, and secrets read across the cluster or in kube-system.

An exec, attach or port-forward is reported at its ResponseStarted stage: the API server writes it when the
stream opens (101 Switching Protocols for WebSocket and SPDY alike, whether kubectl sent ``get`` or
``create``), and ResponseComplete only when the session ends, maybe hours later. One alert per request.
"""

from __future__ import annotations

from typing import Final

from . import common as c
from .language import FalcoList, Macro, Output, Rule, all_of, any_of, f, pointer

EXEC = Macro(
    "eks_lab_exec",
    all_of(
        c.STARTED.ref,
        c.RESOURCE.eq("pods"),
        c.SUBRESOURCE.in_(["exec", "attach"]),
        c.VERB.in_(["get", "create"]),
        ~c.OWN_COMPONENT.ref,
    ),
)
EXEC_OUTPUT = (
    ("user", c.USER),
    ("pod", c.NAME),
    ("ns", c.NAMESPACE),
    ("action", c.SUBRESOURCE),
    ("command", f("ka.uri.param", "command")),
    ("container", f("ka.uri.param", "container")),
    ("resp", c.CODE),
)

EXEC_KUBE_SYSTEM = Rule(
    name="Exec Into kube-system Pod",
    desc="A shell or command started in (or attached to) a pod of kube-system, whose containers hold the "
    "credentials of the cluster's own components.",
    condition=EXEC.ref & c.NAMESPACE.eq("kube-system"),
    output=Output("Exec into a kube-system pod", EXEC_OUTPUT),
    priority="WARNING",
    mitre=("T1609",),
    guardduty=("Execution:Kubernetes/ExecInKubeSystemPod",),
)

EXEC_POD = Rule(
    name="Exec Into Pod",
    desc="A shell or command started in (or attached to) a running pod outside kube-system.",
    condition=EXEC.ref & ~c.NAMESPACE.eq("kube-system"),
    output=Output("Exec into a pod", EXEC_OUTPUT),
    priority="WARNING",
    mitre=("T1609",),
    guardduty=("Execution:Kubernetes/AnomalousBehavior.ExecInPod",),
)

PORT_FORWARD = Rule(
    name="Port Forward by a Non-Admin",
    desc="A tunnel from a workstation into a pod (kubectl port-forward) by an identity outside the lab's admin "
    "identities: it reaches the pod past Services and NetworkPolicies.",
    condition=all_of(
        c.STARTED.ref,
        c.RESOURCE.eq("pods"),
        c.SUBRESOURCE.eq("portforward"),
        ~c.OWN_COMPONENT.ref,
        ~c.admin_ref(),
    ),
    output=Output(
        "Port forward to a pod by a non-admin",
        (
            ("user", c.USER),
            ("pod", c.NAME),
            ("ns", c.NAMESPACE),
            ("resp", c.CODE),
        ),
    ),
    priority="WARNING",
    mitre=("T1572",),
)

EPHEMERAL = Rule(
    name="Ephemeral Container Added to Pod",
    desc="A debug container added to a running pod (kubectl debug): it can share the target's process "
    "namespace, read its memory and environment. Reported when RBAC allowed it, even if the pod refused it.",
    condition=all_of(
        c.COMPLETED.ref,
        c.RESOURCE.eq("pods"),
        c.SUBRESOURCE.eq("ephemeralcontainers"),
        c.VERB.in_(["update", "patch"]),
        c.AUTHORIZED.ref,
        ~c.OWN_COMPONENT.ref,
    ),
    output=Output(
        "Ephemeral container added to a pod",
        (
            ("user", c.USER),
            ("pod", c.NAME),
            ("ns", c.NAMESPACE),
            ("image", pointer("/requestObject/spec/ephemeralContainers/0/image")),
            ("target", pointer("/requestObject/spec/ephemeralContainers/0/targetContainerName")),
            ("resp", c.CODE),
        ),
    ),
    priority="WARNING",
    mitre=("T1609", "T1610"),
)

PUBLIC_PATHS: Final = ("/healthz", "/livez", "/readyz", "/version")
"""What the default system:public-info-viewer ClusterRole lets anyone read: not worth an alarm."""

ANONYMOUS_ALLOWED = Rule(
    name="Successful Anonymous Request",
    desc="The API server let an unauthenticated caller (system:anonymous) through to something other than its "
    "health and version endpoints: someone bound a role to anonymous or unauthenticated users.",
    condition=all_of(
        c.COMPLETED.ref,
        c.ANONYMOUS.ref,
        c.AUTHORIZED.ref,
        ~any_of(*(c.URI.startswith(path) for path in PUBLIC_PATHS)),
    ),
    output=Output(
        "Anonymous request allowed",
        (
            ("user", c.USER),
            ("verb", c.VERB),
            ("uri", c.URI),
            ("resource", c.RESOURCE),
            ("name", c.NAME),
            ("ns", c.NAMESPACE),
            ("resp", c.CODE),
            ("reason", f("ka.auth.reason")),
        ),
    ),
    priority="ERROR",
    mitre=("T1078.001",),
    guardduty=(
        "Discovery:Kubernetes/SuccessfulAnonymousAccess",
        "CredentialAccess:Kubernetes/SuccessfulAnonymousAccess",
        "Persistence:Kubernetes/SuccessfulAnonymousAccess",
        "Impact:Kubernetes/SuccessfulAnonymousAccess",
        "DefenseEvasion:Kubernetes/SuccessfulAnonymousAccess",
    ),
)

SECRETS_WIDE = Rule(
    name="Secrets Read Cluster-Wide or in kube-system",
    desc="Secrets listed or watched across all namespaces, or read in kube-system, by someone other than the "
    "cluster's own components, kube-system's workloads and the kubelets.",
    condition=all_of(
        c.COMPLETED.ref,
        c.RESOURCE.eq("secrets"),
        c.VERB.in_(["get", "list", "watch"]),
        c.AUTHORIZED.ref,
        (c.VERB.in_(["list", "watch"]) & ~c.NAMESPACE.exists()) | c.NAMESPACE.eq("kube-system"),
        ~(c.OWN_COMPONENT.ref | c.KUBE_SYSTEM_ACCOUNT.ref | c.NODE.ref),
    ),
    output=Output(
        "Secrets read cluster-wide or in kube-system",
        (
            ("user", c.USER),
            ("as_user", c.IMPERSONATED_USER),
            ("verb", c.VERB),
            ("secret", c.NAME),
            ("ns", c.NAMESPACE),
            ("resp", c.CODE),
        ),
    ),
    priority="WARNING",
    mitre=("T1552.007", "T1613"),
    guardduty=("CredentialAccess:Kubernetes/AnomalousBehavior.SecretsAccessed",),
)

DEFINITIONS: Final[tuple[FalcoList | Macro, ...]] = (EXEC,)
RULES: Final = (EXEC_KUBE_SYSTEM, EXEC_POD, PORT_FORWARD, EPHEMERAL, ANONYMOUS_ALLOWED, SECRETS_WIDE)
