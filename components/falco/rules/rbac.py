"""RBAC: bindings to cluster-admin, grants to anonymous or all users or to a default service account, roles
with wildcards or with powers that lead further (exec, impersonate, escalate, bind).

Bindings are read from the request (``ka.req.binding.*``: ``requestObject.roleRef`` and ``.subjects``), so a
create or an update is judged by what it asks for; the rules fire when it succeeded. The API server's own
bootstrap (its default roles and the ``system:masters`` binding) and kube-controller-manager's role
aggregation are EKS's machinery and raise nothing (common.OWN_COMPONENT, common.CONTROLLER).
"""

from __future__ import annotations

from typing import Final

from . import common as c
from .language import Expr, FalcoList, Macro, Output, Rule, all_of, f

BINDING_WRITE = Macro(
    "eks_lab_binding_write",
    all_of(
        c.COMPLETED.ref,
        c.RESOURCE.in_(["rolebindings", "clusterrolebindings"]),
        ~c.SUBRESOURCE.exists(),
        c.WRITE.ref,
        c.SUCCEEDED.ref,
        ~c.DRY_RUN.ref,
        ~c.OWN_COMPONENT.ref,
    ),
)
ROLE_WRITE = Macro(
    "eks_lab_role_write",
    all_of(
        c.COMPLETED.ref,
        c.RESOURCE.in_(["roles", "clusterroles"]),
        ~c.SUBRESOURCE.exists(),
        c.WRITE.ref,
        c.SUCCEEDED.ref,
        ~c.DRY_RUN.ref,
        ~(c.OWN_COMPONENT.ref | c.CONTROLLER.ref),
    ),
)
ALL_USERS = FalcoList(
    "eks_lab_all_users_groups", ("system:unauthenticated", "system:authenticated", "system:serviceaccounts")
)
"""Groups that hold everyone: anonymous callers, every authenticated identity, every service account."""

ROLE = f("ka.req.binding.role")
SUBJECTS = f("ka.req.binding.subjects")
RULES_FIELD = f("ka.req.role.rules")

BINDING_OUTPUT = (
    ("user", c.USER),
    ("binding", c.NAME),
    ("resource", c.RESOURCE),
    ("ns", c.NAMESPACE),
    ("role", ROLE),
    ("subjects", SUBJECTS),
)
ROLE_OUTPUT = (
    ("user", c.USER),
    ("role", c.NAME),
    ("resource", c.RESOURCE),
    ("ns", c.NAMESPACE),
    ("rules", RULES_FIELD),
)

CLUSTER_ADMIN_BINDING = Rule(
    name="Binding to cluster-admin Created",
    desc="A RoleBinding or ClusterRoleBinding to the cluster-admin ClusterRole was created or changed: its "
    "subjects can do anything (in the RoleBinding's namespace, or everywhere).",
    condition=BINDING_WRITE.ref & ROLE.eq("cluster-admin"),
    output=Output("Binding to cluster-admin", BINDING_OUTPUT),
    priority="WARNING",
    mitre=("T1098.006",),
    guardduty=("PrivilegeEscalation:Kubernetes/AnomalousBehavior.RoleBindingCreated",),
)

DEFAULT_ACCOUNT_ADMIN = Rule(
    name="Admin Access Granted to Default Service Account",
    desc="A binding gives a namespace's default service account (the one every pod without its own runs as) "
    "cluster-admin, admin or edit: any pod of that namespace gets those powers.",
    condition=all_of(
        BINDING_WRITE.ref,
        ROLE.in_(["cluster-admin", "admin", "edit"]),
        f("ka.req.binding.subjects.serviceaccount_names").intersects(["default"]),
    ),
    output=Output("Admin access granted to a default service account", BINDING_OUTPUT),
    priority="CRITICAL",
    mitre=("T1098.006", "T1078.001"),
    guardduty=("Policy:Kubernetes/AdminAccessToDefaultServiceAccount",),
)

ANONYMOUS_GRANT = Rule(
    name="Access Granted to Anonymous or All Users",
    desc="A binding names system:anonymous, or a group holding every caller (system:unauthenticated, "
    "system:authenticated, system:serviceaccounts), as a subject.",
    condition=BINDING_WRITE.ref
    & (
        f("ka.req.binding.subjects.user_names").intersects(["system:anonymous"])
        | f("ka.req.binding.subjects.group_names").intersects(ALL_USERS)
    ),
    output=Output("Access granted to anonymous or all users", BINDING_OUTPUT),
    priority="CRITICAL",
    mitre=("T1098.006", "T1078.001"),
    guardduty=("Policy:Kubernetes/AnonymousAccessGranted",),
)


def _rules_hold(field: str, values: list[str]) -> Expr:
    return f(field).intersects(values)


WILDCARD_ROLE = Rule(
    name="Role With Wildcard Permissions Created",
    desc="A Role or ClusterRole granting every verb or every resource ('*') was created or changed.",
    condition=ROLE_WRITE.ref
    & (_rules_hold("ka.req.role.rules.verbs", ["*"]) | _rules_hold("ka.req.role.rules.resources", ["*"])),
    output=Output("Role with wildcard permissions", ROLE_OUTPUT),
    priority="WARNING",
    mitre=("T1098.006",),
    guardduty=("PrivilegeEscalation:Kubernetes/AnomalousBehavior.RoleCreated",),
)

POWERFUL_ROLE = Rule(
    name="Role Granting Exec, Impersonation or Escalation Created",
    desc="A Role or ClusterRole granting exec or attach into pods, port forwarding, node proxying, token "
    "minting, impersonation, escalate or bind was created or changed. Routine for administrators, so only a "
    "notice.",
    condition=ROLE_WRITE.ref
    & (
        _rules_hold(
            "ka.req.role.rules.resources",
            ["pods/exec", "pods/attach", "pods/portforward", "nodes/proxy", "serviceaccounts/token"],
        )
        | _rules_hold("ka.req.role.rules.verbs", ["impersonate", "escalate", "bind"])
    ),
    output=Output("Role granting exec, impersonation or escalation", ROLE_OUTPUT),
    priority="NOTICE",
    mitre=("T1098.006",),
    guardduty=("PrivilegeEscalation:Kubernetes/AnomalousBehavior.RoleCreated",),
)

DEFINITIONS: Final[tuple[FalcoList | Macro, ...]] = (BINDING_WRITE, ROLE_WRITE, ALL_USERS)
RULES: Final = (CLUSTER_ADMIN_BINDING, DEFAULT_ACCOUNT_ADMIN, ANONYMOUS_GRANT, WILDCARD_ROLE, POWERFUL_ROLE)
