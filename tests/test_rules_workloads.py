"""The workload rules (components/falco/rules/workloads.py) on pod specs the tests write, in every kind that carries
one.

Every kind (a pod, a Deployment, DaemonSet, StatefulSet, ReplicaSet, Job, CronJob, ReplicationController), every
place a container sits (containers, initContainers, an ephemeral container), other names, namespaces and
identities: the alert names who wrote the object, the object and its namespace. Look-alikes stay quiet, and so do
the pods a controller makes for an owner and what EKS's own components deploy.
"""

from __future__ import annotations

from typing import Any

import pytest
from support.k8s_requests import (
    ADDON_MANAGER,
    ADMIN,
    DEVELOPER,
    WORKLOAD_KINDS,
    Identity,
    Request,
    container,
    controller,
    create,
    iam_mapped,
    iam_role,
    owner,
    pod_spec,
    service_account,
    workload,
)
from support.lab_engine import alerts, fired

PRIVILEGED = "Privileged Container Deployed"
HOST_NAMESPACES = "Host Namespaces Shared With Workload"
SENSITIVE_MOUNT = "Sensitive Host Path Mounted by Workload"
KUBE_NAMESPACE = "Workload Created in Kube Namespace"
SYSTEM_ACCOUNT = "Workload Runs as a System Service Account"
MINER = "Cryptocurrency Miner Deployed"
WORKLOAD_RULES = {PRIVILEGED, HOST_NAMESPACES, SENSITIVE_MOUNT, KUBE_NAMESPACE, SYSTEM_ACCOUNT, MINER}

KINDS = list(WORKLOAD_KINDS)
IDENTITIES = [
    DEVELOPER,
    iam_role("CICDDeployRole", "gha-run-7"),
    service_account("default", "default"),
    service_account("argocd", "argocd-application-controller"),
]


def _write(user: Identity, kind: str, spec: dict[str, Any], name: str = "agent", namespace: str = "app", verb="create"):
    body = workload(kind, name, namespace, spec)
    if verb == "create":
        return create(user, kind, namespace, name, body)
    return Request(user, verb, kind, namespace, name, request_object=body, response_object=body)


def _workload_rules(request: Request) -> set[str]:
    return fired(request) & WORKLOAD_RULES


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("where", ["containers", "initContainers"])
def test_a_privileged_container_alerts_in_every_kind_and_place(kind: str, where: str) -> None:
    privileged = container("tools", "docker.io/nicolaka/netshoot:latest", privileged=True, add=("SYS_ADMIN",))
    spec = pod_spec([container()], [privileged]) if where == "initContainers" else pod_spec([container(), privileged])
    assert _workload_rules(_write(DEVELOPER, kind, spec)) == {PRIVILEGED}


@pytest.mark.parametrize("user", IDENTITIES, ids=lambda u: u.username)
@pytest.mark.parametrize(("name", "namespace"), [("perf-agent", "app"), ("node-exporter", "monitoring")])
def test_the_alert_names_whoever_wrote_the_object_the_object_and_its_namespace(
    user: Identity, name: str, namespace: str
) -> None:
    spec = pod_spec([container(privileged=True)])
    (alert,) = [a for a in alerts(_write(user, "daemonsets", spec, name, namespace)) if a.rule == PRIVILEGED]
    assert alert.priority == "Warning"
    assert f"user={user.username} verb=create resource=daemonsets name={name} ns={namespace} resp=201" in alert.output


@pytest.mark.parametrize("verb", ["update", "patch"])
@pytest.mark.parametrize("kind", ["deployments", "cronjobs", "statefulsets"])
def test_updates_and_patches_of_a_workload_are_judged_too(verb: str, kind: str) -> None:
    assert _workload_rules(_write(DEVELOPER, kind, pod_spec(host_pid=True), verb=verb)) == {HOST_NAMESPACES}


def test_a_patch_is_judged_by_the_stored_object_when_the_patch_itself_does_not_say() -> None:
    # A JSON patch ('replace /spec/template/spec/containers/0/securityContext/privileged') carries no pod spec.
    stored = workload("deployments", "web", "app", pod_spec([container(privileged=True)]))
    patch = [{"op": "replace", "path": "/spec/template/spec/containers/0/securityContext/privileged", "value": True}]
    request = Request(DEVELOPER, "patch", "deployments", "app", "web", request_object=patch, response_object=stored)
    assert _workload_rules(request) == {PRIVILEGED}
    # A strategic-merge patch as kubectl writes it (sorted keys) is read directly.
    merge = {"spec": {"template": {"spec": {"containers": [{"name": "web", "securityContext": {"privileged": True}}]}}}}
    assert _workload_rules(Request(DEVELOPER, "patch", "deployments", "app", "web", request_object=merge)) == {
        PRIVILEGED
    }


@pytest.mark.parametrize(
    "spec",
    [pod_spec(host_network=True), pod_spec(host_pid=True), pod_spec(host_ipc=True)],
    ids=["hostNetwork", "hostPID", "hostIPC"],
)
@pytest.mark.parametrize("kind", ["pods", "daemonsets", "jobs"])
def test_sharing_a_host_namespace_alerts(spec: dict[str, Any], kind: str) -> None:
    assert _workload_rules(_write(DEVELOPER, kind, spec)) == {HOST_NAMESPACES}


@pytest.mark.parametrize(
    "path",
    ["/", "/etc", "/etc/", "/proc", "/var/run/docker.sock", "/run/containerd/containerd.sock", "/var/lib/kubelet",
     "/root", "/etc/kubernetes/manifests"],
)  # fmt: skip
@pytest.mark.parametrize("kind", ["pods", "daemonsets", "cronjobs", "replicationcontrollers"])
def test_mounting_a_sensitive_host_path_alerts(path: str, kind: str) -> None:
    spec = pod_spec([container(mounts=(("host", "/host"),))], host_paths={"host": path})
    assert _workload_rules(_write(DEVELOPER, kind, spec)) == {SENSITIVE_MOUNT}


@pytest.mark.parametrize(
    "spec",
    [
        pod_spec([container(privileged=False)]),
        pod_spec([container(add=("NET_BIND_SERVICE",))]),
        pod_spec([container(command=("sh", "-c", 'echo "privileged":true /etc/passwd hostNetwork'))]),
        pod_spec(host_paths={"cni": "/etc/cni/net.d", "logs": "/var/log/app", "etc-ish": "/etcd-data"}),
        pod_spec([container(image="docker.io/library/nginx:1.27")]),
        pod_spec(service_account="app-sa"),
    ],
    ids=["privileged-false", "benign-capability", "words-in-a-command", "benign-host-paths", "nginx", "own-sa"],
)
@pytest.mark.parametrize("kind", ["pods", "deployments", "cronjobs"])
def test_look_alikes_stay_quiet(spec: dict[str, Any], kind: str) -> None:
    assert _workload_rules(_write(DEVELOPER, kind, spec)) == set()


def test_an_ephemeral_container_is_read_where_kubectl_debug_puts_it() -> None:
    debugger = {
        "name": "debugger-x",
        "image": "docker.io/library/busybox:1.36",
        "securityContext": {"privileged": True},
    }
    request = Request(
        DEVELOPER,
        "patch",
        "pods",
        "kube-system",
        "coredns-7f9c8b6d5-x2k4q",
        subresource="ephemeralcontainers",
        request_object={"spec": {"ephemeralContainers": [debugger]}},
    )
    assert PRIVILEGED in fired(request)
    assert "Ephemeral Container Added to Pod" in fired(request)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("namespace", ["kube-system", "kube-public"])
def test_creating_a_workload_in_a_kube_namespace_alerts(kind: str, namespace: str) -> None:
    assert _workload_rules(_write(DEVELOPER, kind, pod_spec(), "kube-cleanup", namespace)) == {KUBE_NAMESPACE}
    # Changing one there is routine (a rollout by its owner): creation is the event.
    if kind != "pods":
        assert _workload_rules(_write(ADMIN, kind, pod_spec(), "coredns", namespace, verb="patch")) == set()


@pytest.mark.parametrize("account", ["replicaset-controller", "daemon-set-controller", "aws-node", "kube-proxy"])
@pytest.mark.parametrize("kind", ["pods", "deployments", "cronjobs"])
def test_running_as_a_system_service_account_alerts_in_kube_system_only(account: str, kind: str) -> None:
    spec = pod_spec(service_account=account)
    assert _workload_rules(_write(DEVELOPER, kind, spec, "helper", "kube-system")) == {KUBE_NAMESPACE, SYSTEM_ACCOUNT}
    # An account of the same name in another namespace is that namespace's own.
    assert _workload_rules(_write(DEVELOPER, kind, spec, "helper", "app")) == set()


@pytest.mark.parametrize(
    "miner",
    [
        container(image="docker.io/xmrig/xmrig:6.21.0"),
        container(image="ghcr.io/acme/agent:1", args=("-o", "stratum+tcp://pool.example.invalid:3333")),
        container(image="docker.io/library/alpine:3.20", command=("/tmp/cpuminer", "-a", "yescrypt")),
    ],
    ids=["image", "pool-url", "command"],
)
@pytest.mark.parametrize("kind", ["pods", "deployments", "cronjobs"])
def test_a_cryptocurrency_miner_alerts(miner: dict[str, Any], kind: str) -> None:
    assert _workload_rules(_write(service_account("default", "default"), kind, pod_spec([miner]))) == {MINER}


# --- who is trusted, by more than a name ------------------------------------------------------------------


KUBE_PROXY_SPEC = pod_spec(
    [container("kube-proxy", "602401143452.dkr.ecr.us-west-2.amazonaws.com/eks/kube-proxy:v1.36.2", privileged=True)],
    host_paths={"varlog": "/var/log", "xtables-lock": "/run/xtables.lock", "lib-modules": "/lib/modules"},
    host_network=True,
    service_account="kube-proxy",
)


def test_a_controllers_pods_for_an_owner_raise_nothing() -> None:
    pod = workload("pods", "kube-proxy-9hq6d", "kube-system", KUBE_PROXY_SPEC, owner("DaemonSet", "kube-proxy"))
    assert (
        _workload_rules(
            create(controller("daemon-set-controller"), "pods", "kube-system", pod["metadata"]["name"], pod)
        )
        == set()
    )
    # ReplicaSets a Deployment's controller makes, Jobs a CronJob's: the same.
    rs = workload(
        "replicasets", "coredns-7f9c8b6d5", "kube-system", pod_spec(host_network=True), owner("Deployment", "coredns")
    )
    assert (
        _workload_rules(
            create(controller("deployment-controller"), "replicasets", "kube-system", "coredns-7f9c8b6d5", rs)
        )
        == set()
    )
    job = workload(
        "jobs", "kube-cleanup-29123", "kube-system", pod_spec(), owner("CronJob", "kube-cleanup", "batch/v1")
    )
    assert (
        _workload_rules(create(controller("cronjob-controller"), "jobs", "kube-system", "kube-cleanup-29123", job))
        == set()
    )


def test_a_pod_made_with_a_controllers_token_but_no_owner_alerts_under_that_identity() -> None:
    # What a stolen controller token does (and what the recording's stand-in controllers did: they wrote no owner).
    pod = workload("pods", "kube-proxy-9hq6d", "kube-system", KUBE_PROXY_SPEC)
    request = create(controller("daemon-set-controller"), "pods", "kube-system", "kube-proxy-9hq6d", pod)
    assert _workload_rules(request) == {PRIVILEGED, HOST_NAMESPACES, KUBE_NAMESPACE, SYSTEM_ACCOUNT}


@pytest.mark.parametrize(
    "impostor",
    [
        service_account("app", "replicaset-controller"),  # a controller's name in another namespace
        iam_mapped("system:serviceaccount:kube-system:replicaset-controller", ("system:serviceaccounts:kube-system",)),
    ],
    ids=["namespace", "iam-mapped"],
)
def test_a_controllers_name_without_its_credentials_is_not_trusted(impostor: Identity) -> None:
    pod = workload("pods", "x-1", "kube-system", KUBE_PROXY_SPEC, owner("DaemonSet", "kube-proxy"))
    assert PRIVILEGED in _workload_rules(create(impostor, "pods", "kube-system", "x-1", pod))


def test_eks_deploying_its_add_ons_raises_nothing_but_an_iam_role_named_like_it_does() -> None:
    daemonset = workload("daemonsets", "kube-proxy", "kube-system", KUBE_PROXY_SPEC)
    assert _workload_rules(create(ADDON_MANAGER, "daemonsets", "kube-system", "kube-proxy", daemonset)) == set()
    impostor = iam_mapped("eks:addon-manager", ("system:masters",))
    assert _workload_rules(create(impostor, "daemonsets", "kube-system", "kube-proxy", daemonset)) == {
        PRIVILEGED, HOST_NAMESPACES, KUBE_NAMESPACE, SYSTEM_ACCOUNT,
    }  # fmt: skip


def test_a_refused_request_raises_nothing_but_an_admission_refusal_does() -> None:
    spec = pod_spec([container(privileged=True)])
    forbidden = _write(DEVELOPER, "deployments", spec)
    forbidden.decision, forbidden.code, forbidden.response_object = "forbid", 403, None
    assert _workload_rules(forbidden) == set()
    # RBAC allowed it, Pod Security admission refused it: the attempt is what is reported.
    admission = _write(DEVELOPER, "pods", spec)
    admission.code, admission.response_object = 403, None
    assert _workload_rules(admission) == {PRIVILEGED}


def test_only_the_completed_stage_counts() -> None:
    request = _write(DEVELOPER, "pods", pod_spec([container(privileged=True)]))
    assert _workload_rules(request) == {PRIVILEGED}
    assert fired(request, stage="ResponseStarted") == set()


def test_a_server_side_dry_run_changes_nothing_and_raises_nothing() -> None:
    request = _write(DEVELOPER, "daemonsets", pod_spec([container(privileged=True)], host_pid=True), "x", "kube-system")
    request.query = "dryRun=All&fieldManager=kubectl-create"
    assert _workload_rules(request) == set()
    request.query = "fieldManager=kubectl-create"
    assert _workload_rules(request) == {PRIVILEGED, HOST_NAMESPACES, KUBE_NAMESPACE}
