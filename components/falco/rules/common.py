"""What every lab rule says the same way: request stages and verbs, and who is EKS's own machinery.

EKS's own components are recognised by more than a name wherever a name could be taken by someone else:

- The API server's own requests (RBAC bootstrap, leases): user ``system:apiserver`` in group
  ``system:masters``, from a single loopback address. An ``X-Forwarded-For`` header puts its address
  first and the real peer after it (k8s.io/apimachinery util/net SourceIPs), so a lone loopback entry
  is the API server's own connection.
- The control plane (``system:kube-controller-manager``, ``system:kube-scheduler``) and EKS's own
  ``eks:`` users: those names, authenticated by something other than IAM. Every IAM identity EKS lets
  in (access entries or aws-auth) carries the authenticator's ``uid`` (``aws-iam-authenticator:...``)
  and ``user.extra.arn``, so an IAM role mapped to such a name does not pass.
- The controllers of kube-controller-manager: their service accounts in kube-system (the authenticator
  adds the group ``system:serviceaccounts:kube-system``). An object they create or update is exempt
  only when it names its controller in ``ownerReferences`` (``"controller":true``), as every real
  controller writes: a pod made by hand with a controller's stolen token has no owner.

A server-side dry run (``?dryRun=All``) is checked and audited like the real request and changes nothing: the
rules that report a change (a workload, a binding, a role, aws-auth, a webhook, a token) leave it out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from .language import Expr, FalcoList, Macro, any_of, f, pointer

USER = f("ka.user.name")
GROUPS = f("ka.user.groups")
VERB = f("ka.verb")
STAGE = f("ka.stage")
RESOURCE = f("ka.target.resource")
SUBRESOURCE = f("ka.target.subresource")
NAMESPACE = f("ka.target.namespace")
NAME = f("ka.target.name")
CODE = f("ka.response.code")
DECISION = f("ka.auth.decision")
URI = f("ka.uri")
IMPERSONATED_USER = f("ka.impuser.name")

WRITE_VERBS: Final = ("create", "update", "patch")
CHANGE_VERBS: Final = ("create", "update", "patch", "delete", "deletecollection")

KUBE_NAMESPACES = FalcoList("eks_lab_kube_namespaces", ("kube-system", "kube-public"))

# The service accounts kube-controller-manager runs its controllers as (--use-service-account-credentials),
# Kubernetes 1.30-1.35, with the namespace and prefix the authenticator gives their tokens.
CONTROLLER_ACCOUNTS: Final = (
    "attachdetach-controller",
    "certificate-controller",
    "clusterrole-aggregation-controller",
    "cronjob-controller",
    "daemon-set-controller",
    "deployment-controller",
    "disruption-controller",
    "endpoint-controller",
    "endpointslice-controller",
    "endpointslicemirroring-controller",
    "ephemeral-volume-controller",
    "expand-controller",
    "generic-garbage-collector",
    "horizontal-pod-autoscaler",
    "job-controller",
    "legacy-service-account-token-cleaner",
    "namespace-controller",
    "node-controller",
    "persistent-volume-binder",
    "pod-garbage-collector",
    "pv-protection-controller",
    "pvc-protection-controller",
    "replicaset-controller",
    "replication-controller",
    "resourcequota-controller",
    "root-ca-cert-publisher",
    "service-account-controller",
    "service-controller",
    "statefulset-controller",
    "ttl-after-finished-controller",
    "ttl-controller",
    "validatingadmissionpolicy-status-controller",
)
CONTROLLER_USERS = FalcoList(
    "eks_lab_controller_users", tuple(f"system:serviceaccount:kube-system:{name}" for name in CONTROLLER_ACCOUNTS)
)

NEVER = Macro("eks_lab_never", f("jevt.rawtime").eq("0"))
"""Matches no event: the event time is never 0."""
COMPLETED = Macro("eks_lab_completed", STAGE.eq("ResponseComplete"))
STARTED = Macro("eks_lab_started", STAGE.eq("ResponseStarted"))
SUCCEEDED = Macro("eks_lab_succeeded", CODE.startswith("2"))
AUTHORIZED = Macro("eks_lab_authorized", DECISION.eq("allow"))
"""RBAC (or another authorizer) let the request through; admission or validation may still refuse it."""
WRITE = Macro("eks_lab_write", VERB.in_(WRITE_VERBS))
DRY_RUN = Macro("eks_lab_dry_run", f("ka.uri.param", "dryRun").eq("All"))
"""A server-side dry run (kubectl --dry-run=server): the API server checks and audits the request, changes nothing."""
CHANGE = Macro("eks_lab_change", VERB.in_(CHANGE_VERBS))

IAM_AUTHENTICATED = Macro(
    "eks_lab_iam_authenticated",
    pointer("/user/uid").startswith("aws-iam-authenticator:") | pointer("/user/extra/arn").exists(),
)
API_SERVER = Macro(
    "eks_lab_api_server",
    USER.eq("system:apiserver")
    & GROUPS.intersects(["system:masters"])
    & pointer("/sourceIPs").in_(['["127.0.0.1"]', '["::1"]']),
)
CONTROL_PLANE = Macro(
    "eks_lab_control_plane",
    USER.in_(["system:kube-controller-manager", "system:kube-scheduler"]) & ~IAM_AUTHENTICATED.ref,
)
EKS_USER = Macro("eks_lab_eks_user", USER.startswith("eks:") & ~IAM_AUTHENTICATED.ref)
OWN_COMPONENT = Macro("eks_lab_own_component", API_SERVER.ref | CONTROL_PLANE.ref | EKS_USER.ref)
"""The API server, the control plane and EKS's own eks: users, recognised as the module docstring says."""

CONTROLLER = Macro(
    "eks_lab_controller",
    USER.in_(CONTROLLER_USERS) & GROUPS.intersects(["system:serviceaccounts:kube-system"]) & ~IAM_AUTHENTICATED.ref,
)
OWNED_BY_CONTROLLER = Macro(
    "eks_lab_owned_by_controller",
    pointer("/requestObject/metadata/ownerReferences").contains('"controller":true')
    | pointer("/responseObject/metadata/ownerReferences").contains('"controller":true'),
)
TRUSTED_CREATOR = Macro("eks_lab_trusted_creator", OWN_COMPONENT.ref | (CONTROLLER.ref & OWNED_BY_CONTROLLER.ref))
"""Whose workloads need no alert: EKS's own components, and a controller making the pods (or ReplicaSets, Jobs)
of an object that names it as owner. The person who created that object was reported when they did."""

NODE = Macro("eks_lab_node", USER.startswith("system:node:") & GROUPS.intersects(["system:nodes"]))
SERVICE_ACCOUNT = Macro(
    "eks_lab_service_account", USER.startswith("system:serviceaccount:") & GROUPS.intersects(["system:serviceaccounts"])
)
KUBE_SYSTEM_ACCOUNT = Macro(
    "eks_lab_kube_system_account",
    USER.startswith("system:serviceaccount:kube-system:")
    & GROUPS.intersects(["system:serviceaccounts:kube-system"])
    & ~IAM_AUTHENTICATED.ref,
)
DEFAULT_ACCOUNT = Macro(
    "eks_lab_default_account",
    USER.glob("system:serviceaccount:*:default") & GROUPS.intersects(["system:serviceaccounts"]),
)
ANONYMOUS = Macro("eks_lab_anonymous", USER.eq("system:anonymous") | GROUPS.intersects(["system:unauthenticated"]))


def identity_macro(name: str, matchers: Sequence[tuple[str, bool]]) -> Macro:
    """A macro true for the users `matchers` describe: (value, prefix) pairs, a prefix for all sessions of a role."""
    if not matchers:
        return Macro(name, NEVER.ref)
    return Macro(name, any_of(*(USER.startswith(v) if prefix else USER.eq(v) for v, prefix in matchers)))


ADMIN_IDENTITIES_NAME: Final = "eks_lab_admin_identities"
ALLOWED_IDENTITIES_NAME: Final = "eks_lab_allowed_identities"


def admin_ref() -> Expr:
    return Expr(ADMIN_IDENTITIES_NAME, macros=frozenset({ADMIN_IDENTITIES_NAME}))


DEFINITIONS: Final[tuple[FalcoList | Macro, ...]] = (
    KUBE_NAMESPACES,
    CONTROLLER_USERS,
    NEVER,
    COMPLETED,
    STARTED,
    SUCCEEDED,
    AUTHORIZED,
    WRITE,
    DRY_RUN,
    CHANGE,
    IAM_AUTHENTICATED,
    API_SERVER,
    CONTROL_PLANE,
    EKS_USER,
    OWN_COMPONENT,
    CONTROLLER,
    OWNED_BY_CONTROLLER,
    TRUSTED_CREATOR,
    NODE,
    SERVICE_ACCOUNT,
    KUBE_SYSTEM_ACCOUNT,
    DEFAULT_ACCOUNT,
    ANONYMOUS,
)
"""In definition order: a macro only sees what is defined before it."""
