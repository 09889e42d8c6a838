"""RBAC and exposure rules (components/falco/rules/rbac.py, exposure.py) on requests the tests write: bindings, roles,
published dashboards and admission webhooks, with their look-alikes and EKS's own machinery."""

from __future__ import annotations

from typing import Any

import pytest
from support.k8s_requests import (
    ADDON_MANAGER,
    ADMIN,
    API_SERVER,
    DEVELOPER,
    Identity,
    Request,
    controller,
    create,
    iam_mapped,
    service_account,
)
from support.lab_engine import alerts, fired

CLUSTER_ADMIN = "Binding to cluster-admin Created"
DEFAULT_ADMIN = "Admin Access Granted to Default Service Account"
ANONYMOUS_GRANT = "Access Granted to Anonymous or All Users"
WILDCARD = "Role With Wildcard Permissions Created"
POWERFUL = "Role Granting Exec, Impersonation or Escalation Created"
DASHBOARD = "Kubernetes Dashboard Exposed"
KUBEFLOW = "Kubeflow Dashboard Exposed"
WEBHOOK = "Admission Webhook Configuration Changed"


def binding(kind: str, name: str, role: str, subjects: list[dict[str, str]], namespace: str | None = None):
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {
        "kind": kind, "apiVersion": "rbac.authorization.k8s.io/v1", "metadata": meta, "subjects": subjects,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
    }  # fmt: skip


def user(name: str) -> dict[str, str]:
    return {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": name}


def group(name: str) -> dict[str, str]:
    return {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": name}


def sa(namespace: str, name: str) -> dict[str, str]:
    return {"kind": "ServiceAccount", "name": name, "namespace": namespace}


def bind(who: Identity, role: str, subjects: list[dict[str, str]], namespace: str | None = None, code: int = 201):
    resource = "rolebindings" if namespace else "clusterrolebindings"
    kind = "RoleBinding" if namespace else "ClusterRoleBinding"
    return create(who, resource, namespace, "grant", binding(kind, "grant", role, subjects, namespace), code=code)


@pytest.mark.parametrize("namespace", [None, "kube-system", "app"])
@pytest.mark.parametrize("who", [DEVELOPER, ADMIN, service_account("ci", "deployer")], ids=lambda i: i.username)
def test_a_binding_to_cluster_admin_alerts_cluster_wide_or_in_a_namespace(namespace: str | None, who: Identity) -> None:
    request = bind(who, "cluster-admin", [group("dev-team")], namespace)
    assert fired(request) == {CLUSTER_ADMIN}
    (alert,) = alerts(request)
    assert f"user={who.username} binding=grant" in alert.output and "role=cluster-admin" in alert.output


def test_bindings_to_other_roles_failed_ones_and_the_api_servers_bootstrap_stay_quiet() -> None:
    assert fired(bind(DEVELOPER, "view", [group("dev-team")], "app")) == set()
    assert fired(bind(DEVELOPER, "cluster-admin", [group("dev-team")], code=403)) == set()
    bootstrap = bind(API_SERVER, "cluster-admin", [group("system:masters")])
    bootstrap.source_ips = ("127.0.0.1",)
    assert fired(bootstrap) == set()
    # The API server's name from elsewhere (an X-Forwarded-For in front of the peer) is not the API server.
    bootstrap.source_ips = ("127.0.0.1", "203.0.113.5")
    assert fired(bootstrap) == {CLUSTER_ADMIN}


@pytest.mark.parametrize("role", ["cluster-admin", "admin", "edit"])
@pytest.mark.parametrize("namespace", [None, "payments"])
def test_admin_powers_for_a_default_service_account_alert(role: str, namespace: str | None) -> None:
    rules = fired(bind(ADMIN, role, [sa("default", "default")], namespace))
    assert DEFAULT_ADMIN in rules
    assert fired(bind(ADMIN, role, [sa("default", "app-sa")], namespace)) <= {CLUSTER_ADMIN}
    assert DEFAULT_ADMIN not in fired(bind(ADMIN, "view", [sa("default", "default")], namespace))


@pytest.mark.parametrize(
    "subject",
    [user("system:anonymous"), group("system:unauthenticated"), group("system:authenticated"),
     group("system:serviceaccounts")],
    ids=lambda s: s["name"],
)  # fmt: skip
def test_grants_to_anonymous_or_everyone_alert(subject: dict[str, str]) -> None:
    assert ANONYMOUS_GRANT in fired(bind(ADMIN, "view", [subject], "default"))
    assert ANONYMOUS_GRANT in fired(bind(ADMIN, "anon-ops", [group("dev-team"), subject]))
    assert ANONYMOUS_GRANT not in fired(bind(ADMIN, "view", [group("system:authenticated-devs")], "default"))


def role(kind: str, rules: list[dict[str, list[str]]], namespace: str | None = None):
    resource = "roles" if namespace else "clusterroles"
    meta: dict[str, Any] = {"name": "ops"}
    if namespace:
        meta["namespace"] = namespace
    body = {"kind": kind, "apiVersion": "rbac.authorization.k8s.io/v1", "metadata": meta, "rules": rules}
    return create(DEVELOPER, resource, namespace, "ops", body)


@pytest.mark.parametrize(
    "rules",
    [
        [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
        [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}, {"apiGroups": [""], "resources": ["*"],
                                                                       "verbs": ["list"]}],
        [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["*"]}],
    ],
)  # fmt: skip
@pytest.mark.parametrize("namespace", [None, "app"])
def test_a_role_with_a_wildcard_verb_or_resource_alerts(
    rules: list[dict[str, list[str]]], namespace: str | None
) -> None:
    assert WILDCARD in fired(role("ClusterRole" if namespace is None else "Role", rules, namespace))


def test_powerful_roles_are_a_notice_and_plain_ones_nothing() -> None:
    exec_role = role("ClusterRole", [{"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]}])
    assert [(a.rule, a.priority) for a in alerts(exec_role)] == [(POWERFUL, "Notice")]
    impersonate = role("ClusterRole", [{"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"]}])
    assert fired(impersonate) == {POWERFUL}
    reader = role("Role", [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}], "app")
    assert fired(reader) == set()


def test_role_aggregation_by_the_controller_and_the_bootstrap_stay_quiet() -> None:
    wildcard = role("ClusterRole", [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}])
    wildcard.user = controller("clusterrole-aggregation-controller")
    wildcard.verb = "update"
    assert fired(wildcard) == set()
    wildcard.user, wildcard.verb, wildcard.source_ips = API_SERVER, "create", ("127.0.0.1",)
    assert fired(wildcard) == set()


# --- exposure ----------------------------------------------------------------------------------------------


def service(name: str, namespace: str, kind: str, selector: dict[str, str], annotations: dict[str, str] | None = None):
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if annotations:
        meta["annotations"] = annotations
    body = {
        "kind": "Service", "apiVersion": "v1", "metadata": meta,
        "spec": {"ports": [{"protocol": "TCP", "port": 443, "targetPort": 8443}], "selector": selector, "type": kind},
        "status": {"loadBalancer": {}},
    }  # fmt: skip
    return create(ADMIN, "services", namespace, name, body)


@pytest.mark.parametrize("kind", ["LoadBalancer", "NodePort"])
@pytest.mark.parametrize(
    ("name", "namespace", "selector"),
    [
        ("kubernetes-dashboard", "kubernetes-dashboard", {"k8s-app": "kubernetes-dashboard"}),
        ("ui", "ops", {"k8s-app": "kubernetes-dashboard"}),  # whatever the Service is called, it selects the dashboard
        ("web", "tools", {"app": "kubernetes-dashboard-web"}),
    ],
)
def test_a_published_kubernetes_dashboard_alerts(
    kind: str, name: str, namespace: str, selector: dict[str, str]
) -> None:
    request = service(name, namespace, kind, selector)
    assert fired(request) == {DASHBOARD}
    (alert,) = alerts(request)
    assert f"service={name} ns={namespace} type={kind}" in alert.output


@pytest.mark.parametrize("kind", ["LoadBalancer", "NodePort"])
def test_a_published_kubeflow_dashboard_alerts(kind: str) -> None:
    assert fired(service("centraldashboard", "kubeflow", kind, {"app": "centraldashboard"})) == {KUBEFLOW}


@pytest.mark.parametrize(
    "annotations",
    [{"service.beta.kubernetes.io/aws-load-balancer-scheme": "internal"},
     {"service.beta.kubernetes.io/aws-load-balancer-internal": "true"}],
)  # fmt: skip
def test_internal_load_balancers_and_cluster_ip_services_publish_nothing(annotations: dict[str, str]) -> None:
    selector = {"k8s-app": "kubernetes-dashboard"}
    assert (
        fired(service("kubernetes-dashboard", "kubernetes-dashboard", "LoadBalancer", selector, annotations)) == set()
    )
    assert fired(service("kubernetes-dashboard", "kubernetes-dashboard", "ClusterIP", selector)) == set()
    assert fired(service("storefront", "shop", "LoadBalancer", {"app": "storefront"})) == set()


def webhook(resource: str, verb: str, who: Identity) -> Request:
    kind = "MutatingWebhookConfiguration" if resource.startswith("mutating") else "ValidatingWebhookConfiguration"
    body = {
        "kind": kind, "apiVersion": "admissionregistration.k8s.io/v1", "metadata": {"name": "pod-defaults.acme-ops.io"},
        "webhooks": [{"name": "pod-defaults.acme-ops.io", "clientConfig": {"url": "https://198.51.100.9/mutate"}}],
    }  # fmt: skip
    if verb == "delete":
        return Request(who, "delete", resource, None, "pod-defaults.acme-ops.io")
    return create(who, resource, None, "pod-defaults.acme-ops.io", body)


@pytest.mark.parametrize("resource", ["mutatingwebhookconfigurations", "validatingwebhookconfigurations"])
@pytest.mark.parametrize("verb", ["create", "delete"])
def test_webhook_configuration_changes_alert_unless_eks_makes_them(resource: str, verb: str) -> None:
    assert fired(webhook(resource, verb, DEVELOPER)) == {WEBHOOK}
    assert fired(webhook(resource, verb, ADMIN)) == {WEBHOOK}
    assert fired(webhook(resource, verb, ADDON_MANAGER)) == set()
    assert fired(webhook(resource, verb, iam_mapped("eks:addon-manager"))) == {WEBHOOK}
    if verb == "create":
        (alert,) = alerts(webhook(resource, verb, DEVELOPER))
        assert "url=https://198.51.100.9/mutate" in alert.output
