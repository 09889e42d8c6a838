"""Workloads: privileged containers, the host's namespaces and paths, kube-system, system service accounts, miners.

Each rule reads the pod spec wherever a write carries one, and alerts on that write, under the identity
that made it:

- a pod's create: ``/requestObject/spec`` (containers, initContainers and volumes together);
- a Deployment, DaemonSet, StatefulSet, ReplicaSet, Job or ReplicationController written (create,
  update, patch): ``/requestObject/spec/template/spec``; a CronJob: ``/requestObject/spec/jobTemplate/
  spec/template/spec``; for a patch, whose request holds only the change, also the stored object in
  ``/responseObject`` (logged at the RequestResponse level);
- an ephemeral container added (``pods/ephemeralcontainers``): ``/requestObject/spec/ephemeralContainers``.

The spec is searched as the compact JSON text the json plugin gives for an object (``jevt.value``), which
the k8saudit plugin's own pod fields cannot replace: they read ``spec.containers`` of a pod only, never
initContainers, ephemeral containers or a workload's template. The API server logs a create or update
request as the decoded object, in the field order of its Go type (``"hostPath":{"path":...,"type":...}``),
and kubectl writes patches with sorted keys, so ``"path":"/etc"`` and ``"privileged":true`` appear as
written here; a quoted value ends at its closing quote, so ``/etc`` does not match ``/etc/cni/net.d``.

Pods and workloads made by a controller for an object that names it as owner, and EKS's own components'
workloads, raise nothing (common.TRUSTED_CREATOR): their owner's write was reported, by its author.
"""

from __future__ import annotations

from typing import Final

from . import common as c
from .language import Expr, FalcoList, Macro, Output, Rule, all_of, any_of, pointer

TEMPLATE_KINDS = FalcoList(
    "eks_lab_template_kinds",
    ("deployments", "daemonsets", "statefulsets", "replicasets", "jobs", "replicationcontrollers"),
)
POD_CREATE = Macro("eks_lab_pod_create", c.RESOURCE.eq("pods") & ~c.SUBRESOURCE.exists() & c.VERB.eq("create"))
TEMPLATE_WRITE = Macro("eks_lab_template_write", c.RESOURCE.in_(TEMPLATE_KINDS) & ~c.SUBRESOURCE.exists() & c.WRITE.ref)
CRONJOB_WRITE = Macro("eks_lab_cronjob_write", c.RESOURCE.eq("cronjobs") & ~c.SUBRESOURCE.exists() & c.WRITE.ref)
EPHEMERAL_WRITE = Macro(
    "eks_lab_ephemeral_write",
    c.RESOURCE.eq("pods") & c.SUBRESOURCE.eq("ephemeralcontainers") & c.VERB.in_(["update", "patch"]),
)
WORKLOAD_WRITE = Macro(
    "eks_lab_workload_write",
    all_of(
        c.COMPLETED.ref,
        c.AUTHORIZED.ref,
        POD_CREATE.ref | TEMPLATE_WRITE.ref | CRONJOB_WRITE.ref | EPHEMERAL_WRITE.ref,
        ~c.DRY_RUN.ref,
        ~c.TRUSTED_CREATOR.ref,
    ),
)
"""A write of a pod spec that RBAC allowed (admission may still refuse it: the attempt is reported too), not a
dry run."""

_PATCH = c.VERB.eq("patch")
_LOCATIONS: Final = (
    (POD_CREATE, ("/requestObject/spec",)),
    (TEMPLATE_WRITE, ("/requestObject/spec/template/spec", "/responseObject/spec/template/spec")),
    (
        CRONJOB_WRITE,
        ("/requestObject/spec/jobTemplate/spec/template/spec", "/responseObject/spec/jobTemplate/spec/template/spec"),
    ),
    (EPHEMERAL_WRITE, ("/requestObject/spec/ephemeralContainers",)),
)


def spec_contains(*texts: str) -> Expr:
    """The pod spec the write carries holds one of `texts` (its stored form too, for a patch)."""
    alternatives = []
    for kind, (request, *stored) in _LOCATIONS:
        found = any_of(*(pointer(request).contains(t) for t in texts))
        if stored:
            found = found | (_PATCH & any_of(*(pointer(stored[0]).contains(t) for t in texts)))
        alternatives.append(kind.ref & found)
    return any_of(*alternatives)


SENSITIVE_HOST_PATHS: Final = (
    "/",
    "/etc",
    "/proc",
    "/sys",
    "/dev",
    "/root",
    "/home",
    "/home/admin",
    "/boot",
    "/var/run",
    "/run",
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/var/lib/docker",
    "/run/containerd",
    "/run/containerd/containerd.sock",
    "/var/run/containerd",
    "/var/run/containerd/containerd.sock",
    "/var/lib/containerd",
    "/var/run/crio/crio.sock",
    "/run/crio/crio.sock",
    "/var/lib/kubelet",
    "/var/lib/kubelet/pki",
    "/etc/kubernetes",
    "/etc/kubernetes/manifests",
    "/etc/eks",
)
"""Host paths that hand a container the node: its root, configuration, processes, devices, container runtime
and kubelet credentials. Exact paths (the API server keeps a hostPath as written); with and without a
trailing '/'."""


def _host_path_texts() -> tuple[str, ...]:
    texts = []
    for path in SENSITIVE_HOST_PATHS:
        for variant in dict.fromkeys((path, path.rstrip("/") + "/")):  # in order: the text must not vary by run
            texts.append(f'"hostPath":{{"path":"{variant}"')
    return tuple(texts)


MINER_MARKERS: Final = (
    "xmrig",
    "xmr-stak",
    "cpuminer",
    "minerd",
    "ethminer",
    "nbminer",
    "lolminer",
    "phoenixminer",
    "teamredminer",
    "nanominer",
    "srbminer",
    "stratum+tcp://",
    "stratum+ssl://",
)
"""Names of cryptocurrency miners and their pool protocol, searched in the pod spec (images, commands, args)."""

SYSTEM_ACCOUNTS = FalcoList(
    "eks_lab_system_accounts",
    (
        *c.CONTROLLER_ACCOUNTS,
        "aws-node",
        "kube-proxy",
        "coredns",
        "ebs-csi-controller-sa",
        "efs-csi-controller-sa",
        "aws-load-balancer-controller",
        "cluster-autoscaler",
        "eks-pod-identity-agent",
    ),
)
"""kube-system service accounts whose token a pod must not get: the controllers' (cluster-wide powers) and the
EKS add-ons' (their IAM roles through IRSA, e.g. aws-node's for the VPC's network interfaces)."""

_ACCOUNT_PATHS: Final = (
    (POD_CREATE, "/requestObject/spec/serviceAccountName"),
    (TEMPLATE_WRITE, "/requestObject/spec/template/spec/serviceAccountName"),
    (CRONJOB_WRITE, "/requestObject/spec/jobTemplate/spec/template/spec/serviceAccountName"),
)

WHO_WHAT_WHERE: Final = (
    ("user", c.USER),
    ("verb", c.VERB),
    ("resource", c.RESOURCE),
    ("name", c.NAME),
    ("ns", c.NAMESPACE),
    ("resp", c.CODE),
)


def _output(summary: str) -> Output:
    return Output(summary, WHO_WHAT_WHERE)


def _in_kube_system() -> Expr:
    return c.NAMESPACE.eq("kube-system")


def _system_account() -> Expr:
    return any_of(*(kind.ref & pointer(path).in_(SYSTEM_ACCOUNTS) for kind, path in _ACCOUNT_PATHS))


PRIVILEGED = Rule(
    name="Privileged Container Deployed",
    desc="A pod or workload template with a privileged container (in containers, initContainers or an "
    "ephemeral container): it has every capability and the node's devices, and can take the node.",
    condition=WORKLOAD_WRITE.ref & spec_contains('"privileged":true'),
    output=_output("Privileged container in a pod spec"),
    priority="WARNING",
    mitre=("T1610", "T1611"),
    guardduty=(
        "PrivilegeEscalation:Kubernetes/PrivilegedContainer",
        "PrivilegeEscalation:Kubernetes/AnomalousBehavior.WorkloadDeployed!PrivilegedContainer",
    ),
)

HOST_NAMESPACES = Rule(
    name="Host Namespaces Shared With Workload",
    desc="A pod or workload template sharing the node's network, process or IPC namespace (hostNetwork, "
    "hostPID, hostIPC): it sees the node's traffic and processes.",
    condition=WORKLOAD_WRITE.ref & spec_contains('"hostNetwork":true', '"hostPID":true', '"hostIPC":true'),
    output=_output("Pod spec shares the node's namespaces"),
    priority="WARNING",
    mitre=("T1610", "T1611"),
)

SENSITIVE_MOUNT = Rule(
    name="Sensitive Host Path Mounted by Workload",
    desc="A pod or workload template mounting a sensitive path of the node (its root, /etc, /proc, the container "
    "runtime's socket, the kubelet's credentials ...): a way out of the container.",
    condition=WORKLOAD_WRITE.ref & spec_contains(*_host_path_texts()),
    output=_output("Pod spec mounts a sensitive host path"),
    priority="WARNING",
    mitre=("T1610", "T1611"),
    guardduty=(
        "Persistence:Kubernetes/ContainerWithSensitiveMount",
        "Persistence:Kubernetes/AnomalousBehavior.WorkloadDeployed!ContainerWithSensitiveMount",
    ),
)

KUBE_NAMESPACE_WORKLOAD = Rule(
    name="Workload Created in Kube Namespace",
    desc="A pod, workload or CronJob created in kube-system or kube-public by someone other than EKS's own "
    "components or a controller: a place where it passes for part of the cluster.",
    condition=all_of(
        WORKLOAD_WRITE.ref,
        c.VERB.eq("create"),
        c.NAMESPACE.in_(c.KUBE_NAMESPACES),
    ),
    output=_output("Workload created in a kube namespace"),
    priority="WARNING",
    mitre=("T1610", "T1036.005"),
    guardduty=("Execution:Kubernetes/AnomalousBehavior.WorkloadDeployed",),
)

SYSTEM_ACCOUNT = Rule(
    name="Workload Runs as a System Service Account",
    desc="A pod or workload template in kube-system running as a controller's or an EKS add-on's service "
    "account: its containers get that account's token (and, for an add-on, its IAM role).",
    condition=all_of(WORKLOAD_WRITE.ref, _in_kube_system(), _system_account()),
    output=Output(
        "Pod spec runs as a system service account",
        (*WHO_WHAT_WHERE, ("account", pointer("/requestObject/spec/serviceAccountName"))),
    ),
    priority="ERROR",
    mitre=("T1610", "T1528"),
    guardduty=("Execution:Kubernetes/AnomalousBehavior.WorkloadDeployed",),
)

MINER = Rule(
    name="Cryptocurrency Miner Deployed",
    desc="A pod or workload template naming a known cryptocurrency miner or a mining pool protocol in its images, "
    "commands or arguments.",
    condition=WORKLOAD_WRITE.ref & spec_contains(*MINER_MARKERS),
    output=_output("Pod spec names a cryptocurrency miner"),
    priority="CRITICAL",
    mitre=("T1496", "T1610"),
    guardduty=("Execution:Kubernetes/AnomalousBehavior.WorkloadDeployed",),
)

DEFINITIONS: Final[tuple[FalcoList | Macro, ...]] = (
    TEMPLATE_KINDS,
    POD_CREATE,
    TEMPLATE_WRITE,
    CRONJOB_WRITE,
    EPHEMERAL_WRITE,
    WORKLOAD_WRITE,
    SYSTEM_ACCOUNTS,
)
RULES: Final = (PRIVILEGED, HOST_NAMESPACES, SENSITIVE_MOUNT, KUBE_NAMESPACE_WORKLOAD, SYSTEM_ACCOUNT, MINER)
