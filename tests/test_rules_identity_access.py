"""Identity and access rules (components/falco/rules/identity.py, access.py) on requests the tests write:
impersonation, minted tokens, default service accounts, certificate approvals, aws-auth, permission probing,
exec, port-forward, debug containers, anonymous requests and secrets read across the cluster."""

from __future__ import annotations

from typing import Any

import pytest
from support.k8s_requests import (
    ADMIN,
    ANONYMOUS,
    CONTROLLER_MANAGER,
    DEVELOPER,
    Identity,
    Request,
    certificate_user,
    controller,
    create,
    iam_mapped,
    iam_role,
    node,
    service_account,
)
from support.lab_engine import alerts, fired

DEFAULT_SA = service_account("default", "default")


# --- impersonation -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "impersonated",
    [
        {"username": "eks-break-glass", "groups": ["system:masters", "system:authenticated"]},
        {"username": "system:admin", "groups": ["system:authenticated"]},
        {"username": "system:serviceaccount:kube-system:replicaset-controller"},
        {"username": "system:node:ip-10-0-9-9.ec2.internal", "groups": ["system:nodes"]},
        {"username": "eks:addon-manager"},
        {"username": "someone", "groups": ["eks:admins"]},
    ],
)
def test_impersonating_a_privileged_identity_alerts(impersonated: dict[str, Any]) -> None:
    request = Request(DEVELOPER, "list", "secrets", "kube-system", impersonated=impersonated)
    (alert,) = [a for a in alerts(request) if a.rule == "Privileged Identity Impersonated"]
    assert alert.priority == "Critical"
    assert f"user={DEVELOPER.username} as_user={impersonated['username']}" in alert.output


def test_impersonating_an_ordinary_user_or_group_does_not() -> None:
    request = Request(ADMIN, "get", "pods", "app", "web-1", impersonated={"username": "jane", "groups": ["dev-team"]})
    assert "Privileged Identity Impersonated" not in fired(request)
    assert "Privileged Identity Impersonated" not in fired(Request(DEVELOPER, "get", "pods", "app", "web-1"))


# --- tokens ----------------------------------------------------------------------------------------------------


def token(who: Identity, namespace: str, account: str, code: int = 201) -> Request:
    body = {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1", "metadata": {}, "spec": {}}
    return Request(who, "create", "serviceaccounts", namespace, account, subresource="token", code=code,
                   request_object=body)  # fmt: skip


@pytest.mark.parametrize("who", [DEVELOPER, ADMIN, DEFAULT_SA], ids=lambda i: i.username)
def test_a_token_minted_for_another_account_alerts_and_for_kube_system_critically(who: Identity) -> None:
    (alert,) = [a for a in alerts(token(who, "kube-system", "daemon-set-controller")) if "Token" in a.rule]
    assert (alert.rule, alert.priority) == ("Token Minted for a kube-system Service Account", "Critical")
    assert f"user={who.username} account=daemon-set-controller ns=kube-system" in alert.output
    assert "Service Account Token Minted" in fired(token(who, "app", "app-sa"))


def test_tokens_minted_by_the_kubelet_or_the_control_plane_or_refused_stay_quiet() -> None:
    assert fired(token(node(), "app", "app-sa")) == set()
    assert fired(token(CONTROLLER_MANAGER, "kube-system", "replicaset-controller")) == set()
    assert fired(token(DEVELOPER, "kube-system", "replicaset-controller", code=403)) == set()
    # A role mapped to the controller manager's name is not the controller manager.
    impostor = iam_mapped("system:kube-controller-manager")
    assert "Token Minted for a kube-system Service Account" in fired(token(impostor, "kube-system", "x"))


# --- default service accounts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_",
    [
        Request(DEFAULT_SA, "create", "deployments", "default", "miner"),
        Request(DEFAULT_SA, "delete", "configmaps", "payments", "settings"),
        Request(DEFAULT_SA, "get", "secrets", "payments", "db-credentials"),
        Request(service_account("shop", "default"), "list", "secrets", "shop"),
    ],
    ids=["create", "delete", "get-secret", "list-secrets"],
)
def test_a_default_service_account_changing_objects_or_reading_secrets_alerts(request_: Request) -> None:
    assert "Default Service Account Used to Change or Read Secrets" in fired(request_)


def test_a_default_service_account_reading_other_things_or_refused_does_not() -> None:
    assert fired(Request(DEFAULT_SA, "get", "configmaps", "default", "settings")) == set()
    refused = Request(DEFAULT_SA, "create", "pods", "default", "x", decision="forbid", code=403)
    assert fired(refused) == set()
    # An account merely called "default-worker" is not a default account.
    assert fired(Request(service_account("app", "default-worker"), "create", "pods", "app", "x")) == set()


# --- certificates --------------------------------------------------------------------------------------------


def approval(who: Identity) -> Request:
    csr = {"kind": "CertificateSigningRequest", "apiVersion": "certificates.k8s.io/v1", "metadata": {"name": "csr-b"},
           "spec": {"signerName": "kubernetes.io/kube-apiserver-client", "username": DEVELOPER.username},
           "status": {"conditions": [{"type": "Approved", "status": "True"}]}}  # fmt: skip
    return Request(who, "update", "certificatesigningrequests", None, "csr-b", subresource="approval",
                   request_object=csr)  # fmt: skip


def test_approving_a_certificate_request_alerts_unless_a_certificate_controller_does() -> None:
    (alert,) = alerts(approval(DEVELOPER))
    assert alert.rule == "Certificate Signing Request Approved"
    assert "csr=csr-b signer=kubernetes.io/kube-apiserver-client" in alert.output
    assert fired(approval(controller("certificate-controller"))) == set()
    assert fired(approval(certificate_user("eks:certificate-controller"))) == set()
    assert fired(approval(iam_mapped("eks:certificate-controller"))) == {"Certificate Signing Request Approved"}


# --- aws-auth ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("verb", ["update", "patch", "delete"])
def test_aws_auth_changed_by_a_non_admin_alerts_critically_by_an_admin_as_a_notice(verb: str) -> None:
    data = {"data": {"mapUsers": "- userarn: arn:aws:iam::999999999999:user/backdoor\n  groups: [system:masters]\n"}}
    by_developer = Request(DEVELOPER, verb, "configmaps", "kube-system", "aws-auth", request_object=data)
    (alert,) = alerts(by_developer)
    assert (alert.rule, alert.priority) == ("aws-auth ConfigMap Changed by a Non-Admin", "Critical")
    assert "backdoor" in alert.output
    by_admin = Request(iam_role("WorkshopAdmin", "someone@example.com"), verb, "configmaps", "kube-system", "aws-auth")
    assert [(a.rule, a.priority) for a in alerts(by_admin)] == [("aws-auth ConfigMap Changed", "Notice")]


def test_reading_aws_auth_or_another_configmap_of_that_name_does_not_alert() -> None:
    assert fired(Request(DEVELOPER, "get", "configmaps", "kube-system", "aws-auth")) == set()
    assert fired(Request(DEVELOPER, "patch", "configmaps", "app", "aws-auth")) == set()


# --- permission probing --------------------------------------------------------------------------------------


def access_review(who: Identity, attributes: dict[str, str], impersonated: dict[str, Any] | None = None) -> Request:
    body = {"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1", "metadata": {},
            "spec": {"resourceAttributes": attributes}, "status": {"allowed": False}}  # fmt: skip
    return create(who, "selfsubjectaccessreviews", None, None, body, impersonated=impersonated)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "attributes",
    [
        {"namespace": "kube-system", "verb": "get", "resource": "secrets"},
        {"verb": "create", "group": "rbac.authorization.k8s.io", "resource": "clusterrolebindings"},
        {"verb": "impersonate", "resource": "groups"},
        {"verb": "*", "group": "*", "resource": "*"},
        {"namespace": "app", "verb": "create", "resource": "pods", "subresource": "exec"},
    ],
)
def test_checking_a_sensitive_permission_alerts(attributes: dict[str, str]) -> None:
    assert fired(access_review(DEVELOPER, attributes)) == {"Sensitive Permission Checked"}


def test_checking_an_ordinary_permission_or_a_human_listing_theirs_does_not() -> None:
    assert fired(access_review(DEVELOPER, {"namespace": "app", "verb": "list", "resource": "pods"})) == set()
    rules_review = {"kind": "SelfSubjectRulesReview", "apiVersion": "authorization.k8s.io/v1", "metadata": {},
                    "spec": {"namespace": "app"}}  # fmt: skip
    assert fired(create(DEVELOPER, "selfsubjectrulesreviews", None, None, rules_review)) == set()  # type: ignore[arg-type]
    by_account = create(service_account("app", "app-sa"), "selfsubjectrulesreviews", None, None, rules_review)  # type: ignore[arg-type]
    assert fired(by_account) == {"Permissions Listed by a Service Account"}


# --- exec, port-forward, debug containers ----------------------------------------------------------------------


def exec_request(who: Identity, namespace: str, verb: str = "get", subresource: str = "exec") -> Request:
    return Request(who, verb, "pods", namespace, "coredns-7f9c8b6d5-x2k4q", subresource=subresource, code=101,
                   query="command=cat&command=%2Fvar%2Frun%2Fsecrets%2Ftoken&container=main&stdout=true")  # fmt: skip


@pytest.mark.parametrize("verb", ["get", "create"])  # WebSocket and SPDY
@pytest.mark.parametrize("subresource", ["exec", "attach"])
def test_exec_and_attach_alert_once_when_the_stream_opens(verb: str, subresource: str) -> None:
    kube_system = exec_request(ADMIN, "kube-system", verb, subresource)
    (alert,) = alerts(kube_system, stage="ResponseStarted")
    assert (alert.rule, alert.priority) == ("Exec Into kube-system Pod", "Warning")
    assert f"user={ADMIN.username} pod=coredns-7f9c8b6d5-x2k4q ns=kube-system action={subresource}" in alert.output
    assert fired(kube_system, stage="ResponseComplete") == set()
    assert fired(exec_request(DEVELOPER, "app", verb, subresource), stage="ResponseStarted") == {"Exec Into Pod"}


def test_a_refused_exec_writes_no_started_stage_and_raises_nothing() -> None:
    refused = exec_request(DEVELOPER, "kube-system")
    refused.code, refused.decision = 403, "forbid"
    assert fired(refused) == set()


def test_port_forward_by_a_non_admin_alerts_and_by_an_admin_does_not() -> None:
    forward = Request(DEVELOPER, "create", "pods", "app", "web-1", subresource="portforward", code=101)
    assert fired(forward, stage="ResponseStarted") == {"Port Forward by a Non-Admin"}
    assert fired(forward, stage="ResponseComplete") == set()
    by_admin = Request(iam_role("WorkshopAdmin", "s-2"), "get", "pods", "falco", "ui-1", subresource="portforward")
    assert fired(by_admin, stage="ResponseStarted") == set()


def test_a_debug_container_alerts_when_rbac_allowed_it_even_if_the_pod_refused_it() -> None:
    body = {"spec": {"ephemeralContainers": [{"image": "docker.io/library/busybox:1.36", "name": "debugger",
                                              "targetContainerName": "coredns"}]}}  # fmt: skip
    debug = Request(DEVELOPER, "patch", "pods", "kube-system", "coredns-1", subresource="ephemeralcontainers",
                    request_object=body, code=422)  # fmt: skip
    (alert,) = alerts(debug)
    assert alert.rule == "Ephemeral Container Added to Pod"
    assert "image=docker.io/library/busybox:1.36 target=coredns resp=422" in alert.output
    debug.decision, debug.code = "forbid", 403
    assert fired(debug) == set()


# --- anonymous requests, secrets ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("verb", "resource", "namespace"),
    [("list", "namespaces", None), ("get", "secrets", "payments"), ("create", "cronjobs", "default"),
     ("delete", "networkpolicies", "payments")],
)  # fmt: skip
def test_an_anonymous_request_let_through_alerts(verb: str, resource: str, namespace: str | None) -> None:
    request = Request(ANONYMOUS, verb, resource, namespace, reason='RBAC: allowed by ClusterRoleBinding "anon-ops"')
    found = [a for a in alerts(request) if a.rule == "Successful Anonymous Request"]
    assert [a.priority for a in found] == ["Error"]
    assert len(found[0].tags) == 2 + 1 + 5  # k8s, eks_lab, T1078.001 and the five tactics GuardDuty names


@pytest.mark.parametrize("uri", ["/healthz", "/livez?verbose", "/readyz", "/version", "/version/"])
def test_anonymous_health_and_version_checks_and_refused_requests_stay_quiet(uri: str) -> None:
    public = Request(ANONYMOUS, "get", "", uri=uri)  # a non-resource URL: no objectRef
    assert fired(public) == set()
    assert fired(Request(ANONYMOUS, "list", "secrets", "payments", decision="forbid", code=403)) == set()


@pytest.mark.parametrize(
    ("verb", "namespace", "name"),
    [
        ("list", None, None),
        ("watch", None, None),
        ("list", "kube-system", None),
        ("get", "kube-system", "aws-node-token"),
    ],
)
def test_secrets_read_cluster_wide_or_in_kube_system_alert(verb: str, namespace: str | None, name: str | None) -> None:
    assert "Secrets Read Cluster-Wide or in kube-system" in fired(Request(DEVELOPER, verb, "secrets", namespace, name))


def test_secrets_read_in_a_namespace_or_by_kube_system_and_the_control_plane_do_not() -> None:
    rule = "Secrets Read Cluster-Wide or in kube-system"
    assert rule not in fired(Request(DEVELOPER, "list", "secrets", "app"))
    assert rule not in fired(Request(CONTROLLER_MANAGER, "list", "secrets", None))
    assert rule not in fired(Request(service_account("kube-system", "aws-node"), "get", "secrets", "kube-system", "x"))
    assert rule not in fired(Request(node(), "get", "secrets", "kube-system", "x"))
    assert rule not in fired(Request(DEVELOPER, "list", "secrets", None, decision="forbid", code=403))


def test_dry_runs_of_changes_raise_nothing() -> None:
    aws_auth = Request(DEVELOPER, "patch", "configmaps", "kube-system", "aws-auth", query="dryRun=All")
    assert fired(aws_auth) == set()
    minted = token(DEVELOPER, "kube-system", "daemon-set-controller")
    minted.query = "dryRun=All"
    assert fired(minted) == set()
