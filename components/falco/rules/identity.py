"""Identities: impersonation of privileged users, tokens minted for other service accounts, a namespace's
default service account at work, certificate approvals, the aws-auth ConfigMap, and permission probing.

Who may do these things routinely is told apart by more than a name (common): the kubelet mints the tokens
of the pods on its node (``system:node:*`` in ``system:nodes``), kube-controller-manager those of its
controllers and its certificate controller approves node certificates, EKS (``eks:certificate-controller``)
approves the kubelets' serving certificates. aws-auth is the lab's admins' to change (``adminIdentities``):
anyone else changing it is the threat.
"""

from __future__ import annotations

from typing import Final

from . import common as c
from .language import FalcoList, Macro, Output, Rule, all_of, any_of, pointer

PRIVILEGED_USERS = FalcoList(
    "eks_lab_privileged_users",
    ("system:admin", "system:apiserver", "system:kube-controller-manager", "system:kube-scheduler", "kubernetes-admin"),
)
PRIVILEGED_GROUPS_JSON: Final = ('"system:masters"', '"system:nodes"', '"eks:')
"""Impersonated groups, as they appear (quoted) in the JSON text of impersonatedUser.groups."""

IMPERSONATION = Rule(
    name="Privileged Identity Impersonated",
    desc="A request impersonating a member of system:masters or system:nodes, an eks: or kube-system "
    "identity, or a control-plane user: the caller acts with powers it may not hold itself.",
    condition=all_of(
        c.COMPLETED.ref,
        c.IMPERSONATED_USER.exists(),
        ~c.OWN_COMPONENT.ref,
        any_of(
            *(pointer("/impersonatedUser/groups").contains(g) for g in PRIVILEGED_GROUPS_JSON),
            c.IMPERSONATED_USER.in_(PRIVILEGED_USERS),
            c.IMPERSONATED_USER.startswith("eks:"),
            c.IMPERSONATED_USER.startswith("system:serviceaccount:kube-system:"),
            c.IMPERSONATED_USER.startswith("system:node:"),
        ),
    ),
    output=Output(
        "Privileged identity impersonated",
        (
            ("user", c.USER),
            ("as_user", c.IMPERSONATED_USER),
            ("as_groups", pointer("/impersonatedUser/groups")),
            ("verb", c.VERB),
            ("resource", c.RESOURCE),
            ("name", c.NAME),
            ("ns", c.NAMESPACE),
            ("resp", c.CODE),
        ),
    ),
    priority="CRITICAL",
    mitre=("T1078", "T1548"),
)

TOKEN_REQUEST = Macro(
    "eks_lab_token_request",
    all_of(
        c.COMPLETED.ref,
        c.RESOURCE.eq("serviceaccounts"),
        c.SUBRESOURCE.eq("token"),
        c.VERB.eq("create"),
        c.SUCCEEDED.ref,
        ~c.DRY_RUN.ref,
        ~(c.OWN_COMPONENT.ref | c.NODE.ref),
    ),
)
"""A token minted (TokenRequest) by someone other than the kubelets and the control plane."""
TOKEN_OUTPUT = (("user", c.USER), ("account", c.NAME), ("ns", c.NAMESPACE), ("resp", c.CODE))

KUBE_SYSTEM_TOKEN = Rule(
    name="Token Minted for a kube-system Service Account",
    desc="A token was minted for a kube-system service account (a controller's or an add-on's) by someone other "
    "than the kubelets or the control plane: whoever holds it acts as that component.",
    condition=TOKEN_REQUEST.ref & c.NAMESPACE.eq("kube-system"),
    output=Output("Token minted for a kube-system service account", TOKEN_OUTPUT),
    priority="CRITICAL",
    mitre=("T1528", "T1550.001"),
)

TOKEN = Rule(
    name="Service Account Token Minted",
    desc="A token was minted for a service account by a person or another workload (not the kubelet, which "
    "mints the tokens its pods mount): a credential that outlives the session that made it.",
    condition=TOKEN_REQUEST.ref & ~c.NAMESPACE.eq("kube-system"),
    output=Output("Service account token minted", TOKEN_OUTPUT),
    priority="WARNING",
    mitre=("T1528", "T1550.001"),
)

DEFAULT_ACCOUNT_USED = Rule(
    name="Default Service Account Used to Change or Read Secrets",
    desc="A namespace's default service account (which holds no permissions unless someone grants them) "
    "changed an object or read secrets: a pod's token at work with powers it was given on the side.",
    condition=all_of(
        c.COMPLETED.ref,
        c.DEFAULT_ACCOUNT.ref,
        c.AUTHORIZED.ref,
        c.CHANGE.ref | (c.RESOURCE.eq("secrets") & c.VERB.in_(["get", "list", "watch"])),
    ),
    output=Output(
        "Default service account changed an object or read secrets",
        (
            ("user", c.USER),
            ("verb", c.VERB),
            ("resource", c.RESOURCE),
            ("name", c.NAME),
            ("ns", c.NAMESPACE),
            ("resp", c.CODE),
        ),
    ),
    priority="WARNING",
    mitre=("T1078.001",),
    guardduty=(
        "Execution:Kubernetes/AnomalousBehavior.WorkloadDeployed",
        "CredentialAccess:Kubernetes/AnomalousBehavior.SecretsAccessed",
    ),
)

CSR_APPROVAL = Rule(
    name="Certificate Signing Request Approved",
    desc="A CertificateSigningRequest was approved by someone other than kube-controller-manager's or EKS's "
    "certificate controllers: a client certificate for a name the approver chose, valid until it expires.",
    condition=all_of(
        c.COMPLETED.ref,
        c.RESOURCE.eq("certificatesigningrequests"),
        c.SUBRESOURCE.eq("approval"),
        c.VERB.in_(["update", "patch"]),
        c.SUCCEEDED.ref,
        ~c.DRY_RUN.ref,
        ~(c.OWN_COMPONENT.ref | c.CONTROLLER.ref),
    ),
    output=Output(
        "Certificate signing request approved",
        (
            ("user", c.USER),
            ("csr", c.NAME),
            ("signer", pointer("/requestObject/spec/signerName")),
            ("requester", pointer("/requestObject/spec/username")),
            ("resp", c.CODE),
        ),
    ),
    priority="WARNING",
    mitre=("T1649",),
)

AWS_AUTH_CHANGE = Macro(
    "eks_lab_aws_auth_change",
    all_of(
        c.COMPLETED.ref,
        c.RESOURCE.eq("configmaps"),
        c.NAMESPACE.eq("kube-system"),
        c.NAME.eq("aws-auth"),
        c.CHANGE.ref,
        ~c.DRY_RUN.ref,
        c.AUTHORIZED.ref,
        ~c.OWN_COMPONENT.ref,
    ),
)
AWS_AUTH_OUTPUT = (
    ("user", c.USER),
    ("verb", c.VERB),
    ("configmap", c.NAME),
    ("ns", c.NAMESPACE),
    ("resp", c.CODE),
    ("data", pointer("/requestObject/data")),
)

AWS_AUTH_BY_OTHERS = Rule(
    name="aws-auth ConfigMap Changed by a Non-Admin",
    desc="kube-system/aws-auth, which maps IAM identities to Kubernetes users and groups, was changed by an "
    "identity outside the lab's admin identities: whoever it maps gets in, as whatever group it names.",
    condition=AWS_AUTH_CHANGE.ref & ~c.admin_ref(),
    output=Output("aws-auth ConfigMap changed by a non-admin", AWS_AUTH_OUTPUT),
    priority="CRITICAL",
    mitre=("T1098", "T1556"),
)

AWS_AUTH_BY_ADMIN = Rule(
    name="aws-auth ConfigMap Changed",
    desc="kube-system/aws-auth was changed by one of the lab's admin identities (a record, not an alarm).",
    condition=AWS_AUTH_CHANGE.ref & c.admin_ref(),
    output=Output("aws-auth ConfigMap changed by an admin", AWS_AUTH_OUTPUT),
    priority="NOTICE",
    mitre=("T1098",),
)

SENSITIVE_RESOURCES = FalcoList(
    "eks_lab_sensitive_resources",
    (
        "*",
        "secrets",
        "clusterrolebindings",
        "rolebindings",
        "clusterroles",
        "roles",
        "certificatesigningrequests",
        "mutatingwebhookconfigurations",
        "validatingwebhookconfigurations",
        "serviceaccounts",
        "nodes",
    ),
)
_ACCESS = "/requestObject/spec/resourceAttributes"
SENSITIVE_CHECK = Rule(
    name="Sensitive Permission Checked",
    desc="A SelfSubjectAccessReview (kubectl auth can-i) asking whether the caller may touch secrets, RBAC, "
    "certificates, webhooks, tokens or nodes, exec into pods, impersonate, escalate or bind: how a stolen "
    "credential is sized up.",
    condition=all_of(
        c.COMPLETED.ref,
        c.RESOURCE.eq("selfsubjectaccessreviews"),
        c.VERB.eq("create"),
        ~c.OWN_COMPONENT.ref,
        any_of(
            pointer(f"{_ACCESS}/resource").in_(SENSITIVE_RESOURCES),
            pointer(f"{_ACCESS}/verb").in_(["*", "impersonate", "escalate", "bind"]),
            pointer(f"{_ACCESS}/subresource").in_(["exec", "attach", "portforward", "proxy", "token"]),
        ),
    ),
    output=Output(
        "Sensitive permission checked",
        (
            ("user", c.USER),
            ("as_user", c.IMPERSONATED_USER),
            ("verb", pointer(f"{_ACCESS}/verb")),
            ("resource", pointer(f"{_ACCESS}/resource")),
            ("subresource", pointer(f"{_ACCESS}/subresource")),
            ("ns", pointer(f"{_ACCESS}/namespace")),
            ("allowed", pointer("/responseObject/status/allowed")),
        ),
    ),
    priority="WARNING",
    mitre=("T1069", "T1613"),
    guardduty=("Discovery:Kubernetes/AnomalousBehavior.PermissionChecked",),
)

RULES_REVIEW_BY_ACCOUNT = Rule(
    name="Permissions Listed by a Service Account",
    desc="A service account asked for the list of everything it may do (SelfSubjectRulesReview, kubectl auth "
    "can-i --list): workloads have no use for it, a stolen token does.",
    condition=all_of(
        c.COMPLETED.ref,
        c.RESOURCE.eq("selfsubjectrulesreviews"),
        c.VERB.eq("create"),
        c.SERVICE_ACCOUNT.ref,
        ~c.KUBE_SYSTEM_ACCOUNT.ref,
    ),
    output=Output(
        "Permissions listed by a service account",
        (("user", c.USER), ("ns", pointer("/requestObject/spec/namespace")), ("resp", c.CODE)),
    ),
    priority="WARNING",
    mitre=("T1069", "T1613"),
    guardduty=("Discovery:Kubernetes/AnomalousBehavior.PermissionChecked",),
)

DEFINITIONS: Final[tuple[FalcoList | Macro, ...]] = (
    PRIVILEGED_USERS,
    TOKEN_REQUEST,
    AWS_AUTH_CHANGE,
    SENSITIVE_RESOURCES,
)
RULES: Final = (
    IMPERSONATION,
    KUBE_SYSTEM_TOKEN,
    TOKEN,
    DEFAULT_ACCOUNT_USED,
    CSR_APPROVAL,
    AWS_AUTH_BY_OTHERS,
    AWS_AUTH_BY_ADMIN,
    SENSITIVE_CHECK,
    RULES_REVIEW_BY_ACCOUNT,
)
