"""Kubernetes specs for the audit forwarder's pod and network policies, as typed pulumi_kubernetes args.

Pure builders (no resources): AuditForwarder creates the resources from them. Kept apart so the hardening
(one security context for every container, probes, volumes) reads in one place.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from ..network_policy import anywhere_egress, dns_egress, labels_selector, namespace_selector, tcp_port

METRICS_PORT_NAME = "metrics"
SOURCE_ROOT = "/opt/forwarder"  # PYTHONPATH entry; the package is mounted at <root>/forwarder
DEPS_DIR = "/opt/deps"  # pip --target of the init container, read-only in the main container
SOURCE_HASH_ANNOTATION = "falco-eks.dev/forwarder-source-sha256"


@dataclass(frozen=True)
class PodIdentity:
    """Numeric ids the pod runs as (non-root; the images need no named user).

    fs_group also makes the projected tokens (IRSA's and the service account's) readable by the non-root user.
    """

    run_as_user: int
    run_as_group: int
    fs_group: int


@dataclass(frozen=True)
class Resources:
    """CPU and memory requests and limits of a container, as Kubernetes quantities."""

    cpu_request: str
    """CPU the container is guaranteed, e.g. 50m (a twentieth of a CPU)."""
    memory_request: str
    """Memory the container is guaranteed, e.g. 128Mi."""
    cpu_limit: str
    """Most CPU the container may use, e.g. 500m."""
    memory_limit: str
    """Most memory the container may use, e.g. 384Mi; above it the container is restarted."""

    def args(self) -> k8s.core.v1.ResourceRequirementsArgs:
        return k8s.core.v1.ResourceRequirementsArgs(
            requests={"cpu": self.cpu_request, "memory": self.memory_request},
            limits={"cpu": self.cpu_limit, "memory": self.memory_limit},
        )


def pod_security_context(identity: PodIdentity) -> k8s.core.v1.PodSecurityContextArgs:
    return k8s.core.v1.PodSecurityContextArgs(
        run_as_non_root=True,
        run_as_user=identity.run_as_user,
        run_as_group=identity.run_as_group,
        fs_group=identity.fs_group,
        seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
    )


def container_security_context(identity: PodIdentity) -> k8s.core.v1.SecurityContextArgs:
    """What the "restricted" Pod Security Standard asks for, plus a read-only root filesystem."""
    return k8s.core.v1.SecurityContextArgs(
        run_as_non_root=True,
        run_as_user=identity.run_as_user,
        run_as_group=identity.run_as_group,
        read_only_root_filesystem=True,
        allow_privilege_escalation=False,
        privileged=False,
        capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
        seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
    )


def env_vars(
    values: Mapping[str, pulumi.Input[str]], pod_fields: Mapping[str, str] | None = None
) -> list[k8s.core.v1.EnvVarArgs]:
    """Plain variables, then variables from the pod's own fields (downward API, e.g. POD_NAME: metadata.name)."""
    plain = [k8s.core.v1.EnvVarArgs(name=key, value=value) for key, value in values.items()]
    from_pod = [
        k8s.core.v1.EnvVarArgs(
            name=key,
            value_from=k8s.core.v1.EnvVarSourceArgs(field_ref=k8s.core.v1.ObjectFieldSelectorArgs(field_path=path)),
        )
        for key, path in (pod_fields or {}).items()
    ]
    return plain + from_pod


def http_probe(path: str, *, initial_delay: int, period: int, failure_threshold: int) -> k8s.core.v1.ProbeArgs:
    return k8s.core.v1.ProbeArgs(
        http_get=k8s.core.v1.HTTPGetActionArgs(path=path, port=METRICS_PORT_NAME),
        initial_delay_seconds=initial_delay,
        period_seconds=period,
        timeout_seconds=5,
        failure_threshold=failure_threshold,
    )


def forwarder_container(
    *,
    image: pulumi.Input[str],
    args: Sequence[pulumi.Input[str]],
    env: Mapping[str, pulumi.Input[str]],
    metrics_port: int,
    identity: PodIdentity,
    resources: Resources,
    extra_mounts: Sequence[k8s.core.v1.VolumeMountArgs] = (),
    pod_fields: Mapping[str, str] | None = None,
) -> k8s.core.v1.ContainerArgs:
    return k8s.core.v1.ContainerArgs(
        name="forwarder",
        image=image,
        image_pull_policy="IfNotPresent",
        command=["python", "-m", "forwarder", "run"],
        args=list(args),
        env=env_vars(env, pod_fields),
        ports=[k8s.core.v1.ContainerPortArgs(name=METRICS_PORT_NAME, container_port=metrics_port, protocol="TCP")],
        # /healthz turns 503 once one of the forwarder's threads (reader, delivery, checkpoint) has not beaten for
        # a minute (hung): three failures 20 s apart restart it within two minutes of the hang. /readyz turns 503
        # while it cannot read.
        liveness_probe=http_probe("/healthz", initial_delay=15, period=20, failure_threshold=3),
        readiness_probe=http_probe("/readyz", initial_delay=5, period=10, failure_threshold=3),
        resources=resources.args(),
        security_context=container_security_context(identity),
        volume_mounts=[k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp"), *extra_mounts],  # noqa: S108
    )


def pip_install_container(
    *, image: str, identity: PodIdentity, resources: Resources, env: Mapping[str, str]
) -> k8s.core.v1.ContainerArgs:
    """Init container of the source mode: the pinned requirements into an emptyDir (needs PyPI over HTTPS)."""
    return k8s.core.v1.ContainerArgs(
        name="install-requirements",
        image=image,
        image_pull_policy="IfNotPresent",
        command=[
            "python",
            "-m",
            "pip",
            "install",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--no-input",
            "--only-binary=:all:",
            "--target",
            DEPS_DIR,
            "--requirement",
            f"{SOURCE_ROOT}/forwarder/requirements.txt",
        ],
        env=env_vars(env),
        resources=resources.args(),
        security_context=container_security_context(identity),
        volume_mounts=[
            k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp"),  # noqa: S108
            k8s.core.v1.VolumeMountArgs(name="deps", mount_path=DEPS_DIR),
            k8s.core.v1.VolumeMountArgs(name="source", mount_path=f"{SOURCE_ROOT}/forwarder", read_only=True),
        ],
    )


def source_mode_mounts() -> list[k8s.core.v1.VolumeMountArgs]:
    return [
        k8s.core.v1.VolumeMountArgs(name="deps", mount_path=DEPS_DIR, read_only=True),
        k8s.core.v1.VolumeMountArgs(name="source", mount_path=f"{SOURCE_ROOT}/forwarder", read_only=True),
    ]


def source_mode_volumes(
    configmap_name: pulumi.Input[str], items: Sequence[tuple[str, str]]
) -> list[k8s.core.v1.VolumeArgs]:
    return [
        k8s.core.v1.VolumeArgs(name="deps", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit="256Mi")),
        k8s.core.v1.VolumeArgs(
            name="source",
            config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(
                name=configmap_name,
                items=[k8s.core.v1.KeyToPathArgs(key=key, path=path) for key, path in items],
                default_mode=0o444,
            ),
        ),
    ]


def tmp_volume() -> k8s.core.v1.VolumeArgs:
    return k8s.core.v1.VolumeArgs(name="tmp", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit="64Mi"))


def spread_over_nodes(labels: Mapping[str, str]) -> list[k8s.core.v1.TopologySpreadConstraintArgs]:
    """Replicas on different nodes, then zones, where the cluster has them.

    ScheduleAnyway: a preference the scheduler scores, never a reason to leave a pod pending, so a one-node cluster
    (or a node group scaled down) still runs every replica. matchLabelKeys pod-template-hash counts only pods of
    the same ReplicaSet, so during a rolling update the new pods spread among themselves."""
    return [
        k8s.core.v1.TopologySpreadConstraintArgs(
            max_skew=1,
            topology_key=key,
            when_unsatisfiable="ScheduleAnyway",
            label_selector=labels_selector(labels),
            match_label_keys=["pod-template-hash"],
        )
        for key in ("kubernetes.io/hostname", "topology.kubernetes.io/zone")
    ]


def falco_webhook_ingress_spec(
    *,
    falco_pod_labels: Mapping[str, str],
    falco_port: int,
    forwarder_namespace: pulumi.Input[str],
    forwarder_labels: Mapping[str, str],
) -> k8s.networking.v1.NetworkPolicySpecArgs:
    """In Falco's namespace: only the forwarder's pods may open the audit webhook port.

    The k8saudit webhook has no authentication: whoever reaches it can feed Falco forged audit events,
    so nothing but the forwarder may. The policy selects only the audit instance's pods; every other port of
    them (e.g. Falco's webserver on 8765) gets no ingress from pods either, which costs nothing: the kubelet's
    liveness/readiness probes come from the node's own IP, which the VPC CNI network policy agent allows by
    default (aws/aws-network-policy-agent#56, fixed in VPC CNI v1.15.1), as Calico and Cilium do. A Prometheus
    that should scrape the audit pod needs its own additional policy.
    """
    return k8s.networking.v1.NetworkPolicySpecArgs(
        pod_selector=labels_selector(falco_pod_labels),
        policy_types=["Ingress"],
        ingress=[
            k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                # One peer holding both selectors: pods with these labels IN that namespace (not "or").
                from_=[
                    k8s.networking.v1.NetworkPolicyPeerArgs(
                        namespace_selector=namespace_selector(forwarder_namespace),
                        pod_selector=labels_selector(forwarder_labels),
                    )
                ],
                ports=[tcp_port(falco_port)],
            )
        ],
    )


def forwarder_network_spec(
    *,
    forwarder_labels: Mapping[str, str],
    metrics_port: int,
    falco_namespace: pulumi.Input[str],
    falco_pod_labels: Mapping[str, str],
    falco_port: int,
) -> k8s.networking.v1.NetworkPolicySpecArgs:
    """In the forwarder's namespace: ingress only to the metrics port, egress only to DNS, Falco and HTTPS.

    HTTPS (TCP 443, any address) carries CloudWatch Logs and STS (public AWS endpoints or VPC endpoints),
    the Kubernetes API for the checkpoint ConfigMap (the `kubernetes` Service on 443 and, after DNAT, the EKS
    control plane's ENIs, also on 443), and in the source mode pip's downloads from PyPI at pod start.
    """
    return k8s.networking.v1.NetworkPolicySpecArgs(
        pod_selector=labels_selector(forwarder_labels),
        policy_types=["Ingress", "Egress"],
        # Prometheus scrapes and the kubelet's probes; port-forward enters the pod's netns and needs no rule.
        ingress=[k8s.networking.v1.NetworkPolicyIngressRuleArgs(ports=[tcp_port(metrics_port)])],
        egress=[
            dns_egress(),
            k8s.networking.v1.NetworkPolicyEgressRuleArgs(
                to=[
                    k8s.networking.v1.NetworkPolicyPeerArgs(
                        namespace_selector=namespace_selector(falco_namespace),
                        pod_selector=labels_selector(falco_pod_labels),
                    )
                ],
                ports=[tcp_port(falco_port)],
            ),
            anywhere_egress([443]),
        ],
    )
