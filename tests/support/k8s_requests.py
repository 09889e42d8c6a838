"""Audit events of Kubernetes API requests, shaped as kube-apiserver 1.36 writes them, for the rule tests.

The shapes follow the recorded events in ../shared/corpus/real-falco/threats/ (read, not copied): one JSON
line per stage, ``objectRef`` with resource, namespace, name, subresource and API group, the authorizer's
decision and reason in ``annotations``, ``sourceIPs`` with the ``X-Forwarded-For`` entries first and the peer
last, and a create or update logged with the decoded object, fields in the order of its Go type
(``"hostPath":{"path":...,"type":...}``, a container's ``securityContext`` before nothing else it holds).

Identities are the ones EKS writes: an IAM role's session (user name the assumed-role ARN, uid
``aws-iam-authenticator:<account>:<role id>``, ``extra.arn`` ...), a service account's token (its groups),
EKS's own ``eks:`` and control-plane users (client certificates), a node, anonymous.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

ACCOUNT = "111122223333"


@dataclass(frozen=True)
class Identity:
    """The ``user`` of an audit event."""

    username: str
    groups: tuple[str, ...] = ("system:authenticated",)
    uid: str | None = None
    extra: dict[str, list[str]] | None = None

    def user(self) -> dict[str, Any]:
        user: dict[str, Any] = {"username": self.username}
        if self.uid is not None:
            user["uid"] = self.uid
        user["groups"] = list(self.groups)
        if self.extra is not None:
            user["extra"] = self.extra
        return user


def iam_role(role: str, session: str = "session-1", account: str = ACCOUNT, groups: tuple[str, ...] = ()) -> Identity:
    """A session of an IAM role as EKS's authenticator names it (access entries and aws-auth alike)."""
    arn = f"arn:aws:sts::{account}:assumed-role/{role}/{session}"
    role_id = "AROA" + role.upper().replace("-", "")[:12].ljust(12, "0")
    return Identity(
        arn,
        (*groups, "system:authenticated"),
        uid=f"aws-iam-authenticator:{account}:{role_id}",
        extra={
            "accessKeyId": ["ASIAEXAMPLE0000000"],
            "arn": [arn],
            "canonicalArn": [f"arn:aws:iam::{account}:role/{role}"],
            "principalId": [role_id],
            "sessionName": [session],
        },
    )


def iam_mapped(username: str, groups: tuple[str, ...] = ()) -> Identity:
    """An IAM role mapped (aws-auth mapRoles) to a Kubernetes user name of its choosing, e.g. ``eks:foo``."""
    role = iam_role("Mapped")
    return Identity(username, (*groups, "system:authenticated"), uid=role.uid, extra=role.extra)


def service_account(namespace: str, name: str) -> Identity:
    return Identity(
        f"system:serviceaccount:{namespace}:{name}",
        ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"),
        uid=str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{namespace}/{name}")),
        extra={"authentication.kubernetes.io/credential-id": ["JTI=3f1c2d4e-0000-4000-8000-000000000001"]},
    )


def certificate_user(username: str, groups: tuple[str, ...] = ("system:authenticated",)) -> Identity:
    """A control-plane or EKS component authenticated by a client certificate."""
    return Identity(
        username,
        groups,
        extra={"authentication.kubernetes.io/credential-id": ["X509SHA256=c7a7eb281154f3cf7a06757acc0ac991"]},
    )


def node(name: str = "ip-10-0-1-23.ec2.internal") -> Identity:
    """A kubelet: EKS maps the node role to system:node:<private DNS name> in system:nodes (through IAM)."""
    role = iam_role("eks-node-group-ng-default", "i-0abc123def4567890")
    return Identity(
        f"system:node:{name}", ("system:bootstrappers", "system:nodes", "system:authenticated"), role.uid, role.extra
    )


ANONYMOUS = Identity("system:anonymous", ("system:unauthenticated",))
ADMIN = iam_role("WorkshopAdmin", groups=("system:masters",))
DEVELOPER = iam_role("DevRole", "dev-1", groups=("dev-team",))
CONTROLLER_MANAGER = certificate_user("system:kube-controller-manager")
ADDON_MANAGER = certificate_user("eks:addon-manager", ("system:masters", "system:authenticated"))
API_SERVER = Identity("system:apiserver", ("system:authenticated", "system:masters"), uid="c232b8f0-e18a-43f4")


def controller(name: str) -> Identity:
    """One of kube-controller-manager's controllers (its service account in kube-system)."""
    return service_account("kube-system", name)


_GROUPS = {
    "deployments": ("apps", "v1"), "daemonsets": ("apps", "v1"), "statefulsets": ("apps", "v1"),
    "replicasets": ("apps", "v1"), "jobs": ("batch", "v1"), "cronjobs": ("batch", "v1"),
    "clusterroles": ("rbac.authorization.k8s.io", "v1"), "clusterrolebindings": ("rbac.authorization.k8s.io", "v1"),
    "roles": ("rbac.authorization.k8s.io", "v1"), "rolebindings": ("rbac.authorization.k8s.io", "v1"),
    "mutatingwebhookconfigurations": ("admissionregistration.k8s.io", "v1"),
    "validatingwebhookconfigurations": ("admissionregistration.k8s.io", "v1"),
    "certificatesigningrequests": ("certificates.k8s.io", "v1"),
    "selfsubjectaccessreviews": ("authorization.k8s.io", "v1"),
    "selfsubjectrulesreviews": ("authorization.k8s.io", "v1"),
}  # fmt: skip
_CLUSTER_SCOPED = {
    "namespaces", "nodes", "clusterroles", "clusterrolebindings", "mutatingwebhookconfigurations",
    "validatingwebhookconfigurations", "certificatesigningrequests", "selfsubjectaccessreviews",
    "selfsubjectrulesreviews",
}  # fmt: skip


@dataclass
class Request:
    """One API request; ``line()`` is its audit event at a stage."""

    user: Identity
    verb: str
    resource: str
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None
    request_object: Any = None
    response_object: Any = None
    code: int = 200
    decision: str = "allow"
    reason: str = ""
    source_ips: tuple[str, ...] = ("203.0.113.10",)
    impersonated: dict[str, Any] | None = None
    uri: str | None = None
    query: str = ""
    audit_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def path(self) -> str:
        group, version = _GROUPS.get(self.resource, ("", "v1"))
        base = f"/apis/{group}/{version}" if group else "/api/v1"
        if self.namespace is not None and self.resource not in _CLUSTER_SCOPED:
            base += f"/namespaces/{self.namespace}"
        base += f"/{self.resource}"
        if self.name and not (self.verb == "create" and self.subresource is None):
            base += f"/{self.name}"
        if self.subresource:
            base += f"/{self.subresource}"
        return base + (f"?{self.query}" if self.query else "")

    def event(self, stage: str = "ResponseComplete") -> dict[str, Any]:
        group, version = _GROUPS.get(self.resource, ("", "v1"))
        ref: dict[str, Any] = {"resource": self.resource}
        if self.namespace is not None:
            ref["namespace"] = self.namespace
        if self.name is not None:
            ref["name"] = self.name
        if group:
            ref["apiGroup"] = group
        ref["apiVersion"] = version
        if self.subresource is not None:
            ref["subresource"] = self.subresource
        level = "RequestResponse" if self.request_object is not None or self.response_object is not None else "Metadata"
        event: dict[str, Any] = {
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": level,
            "auditID": self.audit_id,
            "stage": stage,
            "requestURI": self.uri or self.path(),
            "verb": self.verb,
            "user": self.user.user(),
        }
        if self.impersonated is not None:
            event["impersonatedUser"] = self.impersonated
        event["sourceIPs"] = list(self.source_ips)
        event["userAgent"] = "kubectl/v1.34.5 (linux/amd64) kubernetes/ebfac05"
        if self.resource:  # a non-resource URL (/healthz, /version) has no objectRef
            event["objectRef"] = ref
        event["responseStatus"] = {"metadata": {}, "code": self.code}
        if self.request_object is not None:
            event["requestObject"] = self.request_object
        if self.response_object is not None:
            event["responseObject"] = self.response_object
        event["requestReceivedTimestamp"] = "2026-12-07T04:02:28.159563Z"
        event["stageTimestamp"] = "2026-12-07T04:02:28.162730Z"
        event["annotations"] = {
            "authorization.k8s.io/decision": self.decision,
            "authorization.k8s.io/reason": self.reason,
        }
        return event

    def line(self, stage: str = "ResponseComplete") -> str:
        return json.dumps(self.event(stage), separators=(",", ":"))


# --- pod specs, in the field order the API server logs them ---------------------------------------------


def container(
    name: str = "app",
    image: str = "111122223333.dkr.ecr.us-west-2.amazonaws.com/app:1.0.0",
    privileged: bool | None = None,
    add: tuple[str, ...] = (),
    command: tuple[str, ...] = (),
    args: tuple[str, ...] = (),
    mounts: tuple[tuple[str, str], ...] = (),
) -> dict[str, Any]:
    c: dict[str, Any] = {"name": name, "image": image}
    if command:
        c["command"] = list(command)
    if args:
        c["args"] = list(args)
    c["resources"] = {}
    if mounts:
        c["volumeMounts"] = [{"name": v, "mountPath": p} for v, p in mounts]
    c["terminationMessagePath"] = "/dev/termination-log"
    c["terminationMessagePolicy"] = "File"
    c["imagePullPolicy"] = "IfNotPresent"
    context: dict[str, Any] = {}
    if add:
        context["capabilities"] = {"add": list(add)}
    if privileged is not None:
        context["privileged"] = privileged
    if context:
        c["securityContext"] = context
    return c


def pod_spec(
    containers: list[dict[str, Any]] | None = None,
    init_containers: list[dict[str, Any]] | None = None,
    host_paths: dict[str, str] | None = None,
    host_network: bool = False,
    host_pid: bool = False,
    host_ipc: bool = False,
    service_account: str | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if host_paths:
        spec["volumes"] = [{"name": n, "hostPath": {"path": p, "type": ""}} for n, p in host_paths.items()]
    if init_containers:
        spec["initContainers"] = init_containers
    spec["containers"] = containers or [container()]
    spec["restartPolicy"] = "Always"
    spec["terminationGracePeriodSeconds"] = 30
    spec["dnsPolicy"] = "ClusterFirst"
    if service_account:
        spec["serviceAccountName"] = service_account
        spec["serviceAccount"] = service_account
    if host_network:
        spec["hostNetwork"] = True
    if host_pid:
        spec["hostPID"] = True
    if host_ipc:
        spec["hostIPC"] = True
    spec["securityContext"] = {}
    spec["schedulerName"] = "default-scheduler"
    return spec


WORKLOAD_KINDS = {
    "pods": ("Pod", "v1"),
    "deployments": ("Deployment", "apps/v1"),
    "daemonsets": ("DaemonSet", "apps/v1"),
    "statefulsets": ("StatefulSet", "apps/v1"),
    "replicasets": ("ReplicaSet", "apps/v1"),
    "jobs": ("Job", "batch/v1"),
    "cronjobs": ("CronJob", "batch/v1"),
    "replicationcontrollers": ("ReplicationController", "v1"),
}


def metadata(name: str, namespace: str, owner: dict[str, Any] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": {"app": name}}
    if owner is not None:
        meta["ownerReferences"] = [owner]
    return meta


def owner(kind: str, name: str, api_version: str = "apps/v1") -> dict[str, Any]:
    """An ownerReference as a controller writes it into what it creates."""
    return {
        "apiVersion": api_version, "kind": kind, "name": name, "uid": "5b0d2a8e-9d7e-4c3b-8f1a-2c4d6e8f0a1b",
        "controller": True, "blockOwnerDeletion": True,
    }  # fmt: skip


def workload(resource: str, name: str, namespace: str, spec: dict[str, Any], owned_by: dict[str, Any] | None = None):
    """The object of `resource` (a pod or a workload kind) whose pods run `spec`."""
    kind, api_version = WORKLOAD_KINDS[resource]
    template = {"metadata": {"labels": {"app": name}}, "spec": spec}
    body: dict[str, Any]
    if resource == "pods":
        body = spec
    elif resource == "cronjobs":
        body = {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": template}}}
    elif resource == "jobs":
        body = {"template": template}
    elif resource == "replicationcontrollers":
        body = {"replicas": 1, "selector": {"app": name}, "template": template}
    else:
        body = {"selector": {"matchLabels": {"app": name}}, "template": template}
    return {
        "kind": kind,
        "apiVersion": api_version,
        "metadata": metadata(name, namespace, owned_by),
        "spec": body,
        "status": {},
    }


def create(user: Identity, resource: str, namespace: str | None, name: str, body: Any, code: int = 201, **kw: Any):
    return Request(
        user, "create", resource, namespace, name, request_object=body, response_object=body, code=code, **kw
    )
