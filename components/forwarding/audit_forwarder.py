"""AuditForwarder: the bundled forwarder running in the cluster, between the audit log and Falco's webhook.

What it creates (every one a child of the component):
  - an IAM role for the forwarder's ServiceAccount only (IRSA), allowed to read the one audit log group
    (FilterLogEvents), or with the Kinesis source the one stream (ListShards, GetShardIterator, GetRecords);
  - its own namespace (Pod Security "restricted"), ServiceAccount, the ConfigMaps of its checkpoint
    (`<deployment>-state`, `<deployment>-state-hashes-0` to `-6`) and its Lease (`<deployment>-lease`), created
    empty (their contents are the forwarder's: a later `pulumi up` leaves them as they are), and Roles that allow
    only get and update on exactly these (RBAC cannot limit `create` by name: the forwarder is granted none), and on
    the objects a 0.3 forwarder created itself (below);
  - a Deployment of two replicas on different nodes where it can: one holds the Lease and reads, the other waits to
    take over; the checkpoint is written only by the Lease's holder. A rolling update never leaves it without a
    replica, and a PodDisruptionBudget lets a drain take only one at a time;
  - NetworkPolicies: only the forwarder reaches Falco's audit webhook, and the forwarder reaches only DNS,
    that webhook and HTTPS;
  - the image: given by the caller, or built from forwarder/ and pushed to a stack-owned ECR repository
    (build="docker"), or no image at all (build="source"): the official Python image runs the bundled source
    from a ConfigMap, with the pinned requirements installed by an init container.

AWS and Kubernetes children use the providers the caller passes in the resource options (inherited through
``parent=self``).

Upgrading from 0.3: a 0.3 forwarder created its checkpoint's ConfigMaps (`<checkpoint_configmap_name>` and `-hashes`)
and its Lease (`<deployment>-leader`) itself. The stack's own objects have other names (a create of a name in use
fails the update), and the forwarder takes over from those once (forwarder/replicas/upgrade.py): it waits until the
0.3 Lease is free for good before it takes its own, and a first start carries the 0.3 checkpoint over. They stay,
unused, until `pulumi destroy` deletes the namespace.
"""

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from ..args import Architecture, ForwarderBuild, check_whole_number, from_inputs, schema_args
from ..cluster import check_kms_key_arn
from ..errors import ConfigError
from ..names import is_dns_label, is_dns_subdomain, is_label_key, is_label_value, is_region
from ..network_policy import labels_selector
from .iam import irsa_trust_policy, log_reader_policy, stream_reader_policy
from .image import build_forwarder_image
from .source import bundled_forwarder_dir, load_forwarder_source
from .workload import (
    SOURCE_HASH_ANNOTATION,
    SOURCE_ROOT,
    PodIdentity,
    Resources,
    falco_webhook_ingress_spec,
    forwarder_container,
    forwarder_network_spec,
    pip_install_container,
    pod_security_context,
    source_mode_mounts,
    source_mode_volumes,
    spread_over_nodes,
    tmp_volume,
)

# Official Python image for build="source", pinned to a patch release (same minor as the project's runtime).
DEFAULT_SOURCE_MODE_IMAGE = "python:3.11.13-slim-bookworm"
# The forwarder keeps its remembered hashes in HASH_SHARDS ConfigMaps named after the checkpoint ConfigMap plus
# HASHES_SUFFIX and the part's number (forwarder/checkpoint/store.py hashes_names; components import nothing from the
# forwarder, a test keeps the two equal).
HASHES_SUFFIX = "-hashes-"
HASH_SHARDS = 7
# The stack's objects are named after the Deployment: the checkpoint's ConfigMap plus this, the Lease the replicas take
# turns on plus LEASE_SUFFIX. Neither is a name a 0.3 forwarder gave the objects it created itself.
STATE_SUFFIX = "-state"
LEASE_SUFFIX = "-lease"
# What a 0.3 forwarder created itself, which today's forwarder only reads (forwarder/replicas/upgrade.py): its hashes
# ConfigMap, the checkpoint ConfigMap's name plus this, and its Lease, the Deployment's name plus the other.
PREVIOUS_HASHES_SUFFIX = "-hashes"
PREVIOUS_LEASE_SUFFIX = "-leader"
# The Role for the Leases keeps its 0.3 name (the 0.3 Lease's): a new name would replace it and its binding.
LEASE_ROLE_SUFFIX = "-leader"
MAX_REPLICAS = 5
MAX_FALCO_CONNECTIONS = 256
# The first start reads back at most a day: the Kinesis stream's retention (AuditStream) and CloudWatch's shortest.
MAX_INITIAL_LOOKBACK_SECONDS = 86_400


def checkpoint_configmap_names(name: str) -> list[str]:
    """The checkpoint's ConfigMaps: the positions (``name``), then each part of the remembered hashes."""
    return [name, *(f"{name}{HASHES_SUFFIX}{i}" for i in range(HASH_SHARDS))]


def previous_configmap_names(checkpoint_configmap_name: str) -> list[str]:
    """The ConfigMaps a 0.3 forwarder created itself: its positions, then all its remembered hashes."""
    return [checkpoint_configmap_name, checkpoint_configmap_name + PREVIOUS_HASHES_SUFFIX]


_QUANTITY = re.compile(r"^\d+(\.\d+)?(m|Ki|Mi|Gi|k|M|G)?$")
_STREAM_ARN = re.compile(r"^arn:aws[a-z-]*:kinesis:[a-z0-9-]+:\d{12}:stream/[A-Za-z0-9_.-]{1,128}$")


def _check_dns_label(setting: str, value: object) -> None:
    if not is_dns_label(value):
        raise ConfigError(setting, f"must be a DNS-1123 label (a-z, 0-9, '-', at most 63), got {value!r}")


def _check_port(setting: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ConfigError(setting, f"must be a TCP port number 1-65535, got {value!r}")


def _check_label_key(setting: str, key: object) -> None:
    if not isinstance(key, str) or not key:
        raise ConfigError(setting, f"label key must be a non-empty string, got {key!r}")
    if not is_label_key(key):
        raise ConfigError(setting, f"{key!r} is not a valid Kubernetes label key")


def _name(metadata: k8s.meta.v1.outputs.ObjectMeta) -> str:
    """metadata.name of a created object (always set once Kubernetes accepted it)."""
    return cast(str, metadata.name)


def _plain(value: object) -> str | None:
    """The value if the caller gave a plain string (checked now); None for Outputs (known only at deploy time)."""
    return value if isinstance(value, str) else None


@schema_args
@dataclass(frozen=True)
class AuditForwarderArgs:
    """Inputs of AuditForwarder. Plain-string values are checked when the object is built."""

    log_group_name: pulumi.Input[str]
    """CloudWatch log group the cluster writes its audit log to (/aws/eks/<cluster>/cluster)."""
    log_group_arn: pulumi.Input[str]
    """ARN of that log group; the role may read it and its streams, nothing else."""
    oidc_provider_arn: pulumi.Input[str]
    """ARN of the cluster's IAM OIDC provider (the trust policy's Federated principal)."""
    oidc_issuer: pulumi.Input[str]
    """The cluster's OIDC issuer (with or without https://; the condition keys use it without)."""
    region: pulumi.Input[str]
    """AWS region of the cluster and its log group."""
    falco_url: pulumi.Input[str]
    """URL of Falco's k8saudit webhook (Falco's `webhookUrl`)."""
    falco_namespace: pulumi.Input[str]
    """Namespace of the Falco audit instance (Falco's `namespace`)."""
    falco_pod_labels: Mapping[str, str]
    """Labels that select only the Falco audit instance's pods (Falco's `auditPodLabels`)."""
    falco_port: int = 9765
    """Port of the webhook on those pods (Falco's `webhookPort`)."""
    falco_connections: int = 1
    """Deliveries in flight at once, each on its own keep-alive connection, spread over every address `falcoUrl`'s
    host resolves to: with Falco's headless Service, over every audit replica. At least the number of replicas."""
    kinesis_stream_arn: pulumi.Input[str] | None = None
    """A Kinesis Data Stream that a subscription filter fills from the log group (AuditStream's `streamArn`): the
    forwarder reads it (`--source kinesis:<ARN>`) and its role may read that stream and nothing else. Unset: it
    polls the log group with FilterLogEvents."""
    kinesis_kms_key_arn: pulumi.Input[str] | None = None
    """The customer-managed KMS key of that stream, which the role may then decrypt with; unset for the AWS-managed
    key (or without a stream)."""
    replicas: int = 2
    """Forwarder pods: one holds the Lease and reads, the others stand by to take over within the Lease duration
    (15 s). 1 runs a single pod, which a node failure stops until Kubernetes reschedules it."""
    image: pulumi.Input[str] | None = None
    """Forwarder image to run; unset, the bundled forwarder is built or shipped as `build` says."""
    build: ForwarderBuild = ForwarderBuild.DOCKER
    """Without `image`: "docker" builds and pushes to a stack-owned ECR repository (needs a Docker engine where
    `pulumi up` runs); "source" needs no Docker: the official Python image runs the bundled source from a ConfigMap
    and installs the pinned requirements from PyPI when the pod starts."""
    node_architecture: Architecture = Architecture.AMD64
    """CPU architecture of the nodes (AuditedCluster's `nodeArchitecture`); the built image's platform."""
    namespace: str = "falco-forwarder"
    """Namespace the component creates for the forwarder."""
    service_account_name: str = "audit-forwarder"
    """ServiceAccount the IAM role trusts."""
    deployment_name: str = "audit-forwarder"
    """Name of the Deployment, and the prefix of the other Kubernetes objects: the forwarder keeps its checkpoint's
    positions in the ConfigMap `<deploymentName>-state` and its remembered hashes in `<deploymentName>-state-hashes-0`
    to `-6`, and its replicas take turns on the Lease `<deploymentName>-lease`. The stack creates them empty and the
    forwarder fills them; its Roles allow get and update on exactly these."""
    checkpoint_configmap_name: str = "audit-forwarder-checkpoint"
    """The ConfigMap where a forwarder of release 0.3 kept its checkpoint (it created that one and the one of the same
    name plus "-hashes" itself): on its first start the forwarder carries that checkpoint over into its own, so an
    upgraded lab resumes where it was. Keep what the 0.3 stack had; a stack that never ran 0.3 can leave the
    default. The forwarder only reads it (and its Role grants get and update on it, which 0.3 replicas use until the
    upgrade's rolling update stops them)."""
    initial_lookback_seconds: int = 3600
    """How far back the forwarder reads on its first start, before it has a checkpoint: the audit log written while
    the cluster, its nodes and Falco came up (10 to 25 minutes in the lab), or before the forwarder was added to a
    running cluster. 0 starts at the present; at most 86400, and never more than the source keeps (the log group's
    retention; with `kinesisStreamArn`, the stream's records since the subscription began)."""
    checkpoint_interval_seconds: float = 10.0
    """How often at most the forwarder saves its positions, when something changed (0: after every batch)."""
    checkpoint_hashes_interval_seconds: float = 60.0
    """How often at most it saves its remembered hashes: a crash re-sends about this many seconds of events."""
    metrics_port: int = 9090
    """Port of /metrics, /healthz and /readyz."""
    run_as_user: int = 65532
    """Numeric, non-root user id of the containers."""
    run_as_group: int = 65532
    """Numeric group id of the containers."""
    fs_group: int = 65532
    """Group that owns the pod's volumes."""
    resources: Resources = field(default_factory=lambda: Resources("50m", "128Mi", "500m", "384Mi"))
    """CPU and memory requests and limits of the forwarder container."""
    source_mode_image: str = DEFAULT_SOURCE_MODE_IMAGE
    """Python image of `build` "source" (pinned tag)."""
    source_dir: str | None = None
    """Folder of the forwarder's source to build or ship, on the machine that runs `pulumi up`; unset: the forwarder
    bundled with the components."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """AWS tags for the role and the ECR repository."""

    def __post_init__(self) -> None:
        for setting in ("log_group_name", "log_group_arn", "oidc_provider_arn", "oidc_issuer", "region", "falco_url"):
            value = getattr(self, setting)
            if value is None or (isinstance(value, str) and not value.strip()):
                raise ConfigError(setting, "is required")
        if (arn := _plain(self.log_group_arn)) is not None and ":log-group:" not in arn:
            raise ConfigError("log_group_arn", f"must be a CloudWatch Logs log group ARN, got {arn!r}")
        if (arn := _plain(self.oidc_provider_arn)) is not None and (
            not arn.startswith("arn:") or ":oidc-provider/" not in arn
        ):
            raise ConfigError("oidc_provider_arn", f"must be an IAM OIDC provider ARN, got {arn!r}")
        if (region := _plain(self.region)) is not None and not is_region(region):
            raise ConfigError("region", f"must be an AWS region such as us-west-2, got {region!r}")
        if (url := _plain(self.falco_url)) is not None and not url.startswith(("http://", "https://")):
            raise ConfigError("falco_url", f"must be an http:// or https:// URL, got {url!r}")
        if (falco_ns := _plain(self.falco_namespace)) is not None:
            _check_dns_label("falco_namespace", falco_ns)
        elif self.falco_namespace is None:
            raise ConfigError("falco_namespace", "is required")
        if not isinstance(self.falco_pod_labels, Mapping) or not self.falco_pod_labels:
            raise ConfigError("falco_pod_labels", "must name at least one label of the Falco audit pods")
        for key, value in self.falco_pod_labels.items():
            _check_label_key("falco_pod_labels", key)
            if not is_label_value(value):
                raise ConfigError("falco_pod_labels", f"value of {key!r} is not a valid label value: {value!r}")
        _check_port("falco_port", self.falco_port)
        check_whole_number("replicas", self.replicas, 1, MAX_REPLICAS)
        check_whole_number("falco_connections", self.falco_connections, 1, MAX_FALCO_CONNECTIONS)
        if (arn := _plain(self.kinesis_stream_arn)) is not None and not _STREAM_ARN.match(arn):
            raise ConfigError(
                "kinesis_stream_arn",
                f"must be a Kinesis stream ARN (arn:aws:kinesis:<region>:<account>:stream/<name>), got {arn!r}",
            )
        if self.kinesis_kms_key_arn is not None and self.kinesis_stream_arn is None:
            raise ConfigError("kinesis_kms_key_arn", "is the key of kinesis_stream_arn: give both, or neither")
        check_kms_key_arn("kinesis_kms_key_arn", self.kinesis_kms_key_arn)
        _check_port("metrics_port", self.metrics_port)
        if isinstance(self.image, str) and (not self.image.strip() or any(c.isspace() for c in self.image)):
            raise ConfigError("image", f"must be an image reference without spaces, got {self.image!r}")
        if self.build not in tuple(ForwarderBuild):
            raise ConfigError("build", f"must be 'docker' or 'source', got {self.build!r}")
        object.__setattr__(self, "build", ForwarderBuild(self.build))
        if self.node_architecture not in tuple(Architecture):
            raise ConfigError("node_architecture", f"must be 'amd64' or 'arm64', got {self.node_architecture!r}")
        object.__setattr__(self, "node_architecture", Architecture(self.node_architecture))
        for setting in ("namespace", "service_account_name", "deployment_name"):
            _check_dns_label(setting, getattr(self, setting))
        name = self.checkpoint_configmap_name
        longest = len(PREVIOUS_HASHES_SUFFIX)
        if not is_dns_subdomain(name, most=253 - longest):
            raise ConfigError(
                "checkpoint_configmap_name",
                f"must be a DNS-1123 subdomain of at most {253 - longest} characters, got {name!r}",
            )
        # The 0.3 ConfigMaps exist beside the stack's own on an upgraded lab: the same name would fail the update.
        ours = checkpoint_configmap_names(self.deployment_name + STATE_SUFFIX)
        if clash := [n for n in previous_configmap_names(name) if n in ours]:
            raise ConfigError(
                "checkpoint_configmap_name",
                f"names the 0.3 forwarder's checkpoint, which must not be one of the stack's own ConfigMaps "
                f"({ours[0]}, {ours[1]} to {ours[-1]}), got {name!r} ({clash[0]})",
            )
        check_whole_number("initial_lookback_seconds", self.initial_lookback_seconds, 0, MAX_INITIAL_LOOKBACK_SECONDS)
        for setting in ("checkpoint_interval_seconds", "checkpoint_hashes_interval_seconds"):
            value = getattr(self, setting)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 3600:
                raise ConfigError(setting, f"must be a number of seconds from 0 to 3600, got {value!r}")
        for setting in ("run_as_user", "run_as_group", "fs_group"):
            value = getattr(self, setting)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 2**31 - 1:
                raise ConfigError(setting, f"must be a numeric id > 0 (never root), got {value!r}")
        for setting in ("cpu_request", "memory_request", "cpu_limit", "memory_limit"):
            quantity = getattr(self.resources, setting)
            if not isinstance(quantity, str) or not _QUANTITY.match(quantity):
                raise ConfigError(f"resources.{setting}", f"must be a quantity such as 100m or 128Mi, got {quantity!r}")
        if not isinstance(self.source_mode_image, str) or not self.source_mode_image.strip():
            raise ConfigError("source_mode_image", "must be an image reference")
        if self.source_dir is not None and not Path(self.source_dir).is_dir():
            raise ConfigError("source_dir", f"{self.source_dir!r} is not a directory")

    @property
    def forwarder_dir(self) -> Path:
        return Path(self.source_dir) if self.source_dir is not None else bundled_forwarder_dir()


class AuditForwarder(pulumi.ComponentResource):
    """The audit forwarder in the cluster, with its IRSA role, RBAC, network policies and image."""

    role_arn: pulumi.Output[str]
    """ARN of the IAM role the forwarder's ServiceAccount assumes (IRSA)."""
    namespace: pulumi.Output[str]
    """Namespace the forwarder runs in."""
    image: pulumi.Output[str]
    """Image the Deployment runs (digest reference when built here)."""
    logs_command: pulumi.Output[str]
    """kubectl command that follows the forwarder's logs."""
    metrics_command: pulumi.Output[str]
    """Shell command that prints the forwarder's Prometheus metrics through a port-forward."""

    def __init__(self, name: str, args: AuditForwarderArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        args = from_inputs(AuditForwarderArgs, args)
        super().__init__("falco-eks:index:AuditForwarder", name, None, opts)
        aws_opts = pulumi.ResourceOptions(parent=self)

        def k8s_opts(**extra: object) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, **extra)  # type: ignore[arg-type]

        labels = {
            "app.kubernetes.io/name": "audit-forwarder",
            "app.kubernetes.io/instance": args.deployment_name,
            "app.kubernetes.io/component": "forwarder",
            "app.kubernetes.io/part-of": "falco-eks-lab",
        }
        pod_labels = {k: labels[k] for k in ("app.kubernetes.io/name", "app.kubernetes.io/instance")}

        # --- identity: IRSA role, trusted by exactly one ServiceAccount -------------------------------------
        trust_policy = pulumi.Output.all(args.oidc_provider_arn, args.oidc_issuer).apply(
            lambda values: json.dumps(
                irsa_trust_policy(values[0], values[1], args.namespace, args.service_account_name), indent=2
            )
        )
        role = aws.iam.Role(
            f"{name}-irsa",
            description=f"Audit forwarder ({args.namespace}/{args.service_account_name}): reads the EKS audit log",
            assume_role_policy=trust_policy,
            max_session_duration=3600,
            tags=dict(args.tags),
            opts=aws_opts,
        )
        # Exactly what the source reads: the log group, or the stream (and its key); never both.
        policy_document = (
            pulumi.Output.from_input(args.log_group_arn).apply(lambda arn: json.dumps(log_reader_policy(arn), indent=2))
            if args.kinesis_stream_arn is None
            else pulumi.Output.all(args.kinesis_stream_arn, args.kinesis_kms_key_arn).apply(
                lambda values: json.dumps(stream_reader_policy(values[0], values[1]), indent=2)
            )
        )
        read_policy = aws.iam.RolePolicy(f"{name}-read-audit-log", role=role.id, policy=policy_document, opts=aws_opts)

        # --- namespace, ServiceAccount, RBAC for the checkpoint ---------------------------------------------
        ns = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=args.namespace,
                labels={
                    **labels,
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                    "pod-security.kubernetes.io/audit": "restricted",
                    "pod-security.kubernetes.io/warn": "restricted",
                },
            ),
            opts=k8s_opts(),
        )
        ns_name = ns.metadata.apply(_name)
        service_account = k8s.core.v1.ServiceAccount(
            f"{name}-sa",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=args.service_account_name,
                namespace=ns_name,
                labels=labels,
                annotations={
                    "eks.amazonaws.com/role-arn": role.arn,
                    "eks.amazonaws.com/sts-regional-endpoints": "true",
                },
            ),
            opts=k8s_opts(),
        )

        def bind_role(suffix: str, rbac_name: str, rules: list[k8s.rbac.v1.PolicyRuleArgs]) -> k8s.rbac.v1.RoleBinding:
            """A Role with `rules` in the forwarder's namespace, bound to its ServiceAccount only."""
            role = k8s.rbac.v1.Role(
                f"{name}-{suffix}",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=rbac_name, namespace=ns_name, labels=labels),
                rules=rules,
                opts=k8s_opts(),
            )
            return k8s.rbac.v1.RoleBinding(
                f"{name}-{suffix}",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=rbac_name, namespace=ns_name, labels=labels),
                role_ref=k8s.rbac.v1.RoleRefArgs(
                    api_group="rbac.authorization.k8s.io", kind="Role", name=role.metadata.apply(_name)
                ),
                subjects=[
                    k8s.rbac.v1.SubjectArgs(
                        kind="ServiceAccount", name=service_account.metadata.apply(_name), namespace=ns_name
                    )
                ],
                opts=k8s_opts(),
            )

        # The checkpoint's ConfigMaps and the Lease, made here so that the forwarder needs no `create` (RBAC cannot
        # limit it by name). Empty: an empty ConfigMap is no checkpoint yet, a Lease without a spec is free. What the
        # forwarder writes there is its own: ignore_changes keeps a later `pulumi up` (also with --refresh) from
        # reverting it, and under server-side apply the provider then leaves out of its apply the fields another
        # manager (the forwarder, field manager "falco-eks-forwarder") owns. The forwarder replaces them with the
        # resourceVersion it last saw and keeps their labels, so nothing else changes under Pulumi. `pulumi destroy`
        # deletes them, after the Deployment.
        state_name = args.deployment_name + STATE_SUFFIX
        configmap_names = checkpoint_configmap_names(state_name)
        previous_configmaps = previous_configmap_names(args.checkpoint_configmap_name)
        checkpoint_objects: list[pulumi.Resource] = [
            k8s.core.v1.ConfigMap(
                f"{name}-checkpoint" + (f"-hashes-{part - 1}" if part else ""),
                metadata=k8s.meta.v1.ObjectMetaArgs(name=cm_name, namespace=ns_name, labels=labels),
                opts=k8s_opts(ignore_changes=["data", "binaryData"]),
            )
            for part, cm_name in enumerate(configmap_names)
        ]
        lease_name = args.deployment_name + LEASE_SUFFIX
        previous_lease = args.deployment_name + PREVIOUS_LEASE_SUFFIX
        checkpoint_objects.append(
            k8s.coordination.v1.Lease(
                f"{name}-leader",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=lease_name, namespace=ns_name, labels=labels),
                opts=k8s_opts(ignore_changes=["spec"]),
            )
        )
        checkpoint_binding = bind_role(
            "checkpoint",
            f"{args.deployment_name}-checkpoint",
            [
                k8s.rbac.v1.PolicyRuleArgs(
                    api_groups=[""],
                    resources=["configmaps"],
                    # The positions and the parts of the remembered hashes (forwarder/checkpoint/store.py), nothing
                    # else.
                    resource_names=configmap_names,
                    verbs=["get", "update"],
                ),
                # A 0.3 forwarder's own checkpoint: today's forwarder only reads it, once
                # (forwarder/replicas/upgrade.py). The 0.3 replicas still running while the Deployment rolls (this
                # Role changes first) keep writing it under this same ServiceAccount until they stop: without update
                # they would fail and re-send more.
                k8s.rbac.v1.PolicyRuleArgs(
                    api_groups=[""],
                    resources=["configmaps"],
                    resource_names=previous_configmaps,
                    verbs=["get", "update"],
                ),
            ],
        )
        # The Lease the replicas take turns on: get/update on it by name; nothing else in coordination.k8s.io. And the
        # 0.3 Lease: read by today's forwarder until it is free, renewed by the 0.3 replicas until they stop.
        lease_binding = bind_role(
            "leader",
            args.deployment_name + LEASE_ROLE_SUFFIX,
            [
                k8s.rbac.v1.PolicyRuleArgs(
                    api_groups=["coordination.k8s.io"],
                    resources=["leases"],
                    resource_names=[lease_name],
                    verbs=["get", "update"],
                ),
                k8s.rbac.v1.PolicyRuleArgs(
                    api_groups=["coordination.k8s.io"],
                    resources=["leases"],
                    resource_names=[previous_lease],
                    verbs=["get", "update"],
                ),
            ],
        )

        # --- image ------------------------------------------------------------------------------------------
        identity = PodIdentity(args.run_as_user, args.run_as_group, args.fs_group)
        env: dict[str, pulumi.Input[str]] = {
            "AWS_REGION": args.region,
            "AWS_DEFAULT_REGION": args.region,
            "AWS_STS_REGIONAL_ENDPOINTS": "regional",
            # Credentials come only from the IRSA web identity token: never fall back to the node's role.
            "AWS_EC2_METADATA_DISABLED": "true",
            "HOME": "/tmp",  # noqa: S108 - the only writable place (emptyDir) under a read-only root
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        pod_annotations: dict[str, pulumi.Input[str]] = {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(args.metrics_port),
            "prometheus.io/path": "/metrics",
            "kubectl.kubernetes.io/default-container": "forwarder",
        }
        volumes = [tmp_volume()]
        init_containers: list[k8s.core.v1.ContainerArgs] = []
        extra_mounts = []
        image: pulumi.Input[str]
        if args.image is not None:
            image = args.image
        elif args.build == "docker":
            built = build_forwarder_image(
                name,
                context_dir=args.forwarder_dir,
                dockerfile=args.forwarder_dir / "Dockerfile",
                architecture=args.node_architecture,
                tags=dict(args.tags),
                parent=self,
            )
            image = built.ref
        else:
            source = load_forwarder_source(args.forwarder_dir)
            source_configmap = k8s.core.v1.ConfigMap(
                f"{name}-source",
                metadata=k8s.meta.v1.ObjectMetaArgs(namespace=ns_name, labels=labels),
                data=source.configmap_data(),
                immutable=True,  # a change makes a new ConfigMap (auto-named) and rolls the pod to it
                opts=k8s_opts(),
            )
            image = args.source_mode_image
            env["PYTHONPATH"] = f"{SOURCE_ROOT}:/opt/deps"
            pod_annotations[SOURCE_HASH_ANNOTATION] = source.sha256
            volumes += source_mode_volumes(source_configmap.metadata.apply(_name), source.configmap_items())
            extra_mounts = source_mode_mounts()
            # Needs HTTPS egress from the pod to PyPI (pypi.org, files.pythonhosted.org) when the pod starts.
            init_containers.append(
                pip_install_container(
                    image=args.source_mode_image,
                    identity=identity,
                    resources=Resources("100m", "128Mi", "1", "512Mi"),
                    env={"HOME": "/tmp", "PIP_NO_CACHE_DIR": "1", "PYTHONDONTWRITEBYTECODE": "1"},  # noqa: S108
                )
            )

        # --- workload ---------------------------------------------------------------------------------------
        forwarder_args: list[pulumi.Input[str]] = []
        if args.kinesis_stream_arn is not None:
            forwarder_args += ["--source", pulumi.Output.concat("kinesis:", args.kinesis_stream_arn)]
        forwarder_args += [
            "--log-group",
            args.log_group_name,
            "--region",
            args.region,
            "--falco-url",
            args.falco_url,
            "--checkpoint",
            ns_name.apply(lambda n: f"configmap:{n}/{state_name}"),
            "--metrics-port",
            str(args.metrics_port),
            "--checkpoint-interval",
            f"{args.checkpoint_interval_seconds:g}",
            "--checkpoint-hashes-interval",
            f"{args.checkpoint_hashes_interval_seconds:g}",
            "--start-at",
            f"{args.initial_lookback_seconds}s" if args.initial_lookback_seconds else "now",
            "--lease",
            ns_name.apply(lambda n: f"{n}/{lease_name}"),
            "--falco-connections",
            str(args.falco_connections),
            # Taking over from a 0.3 forwarder, where one ran (forwarder/replicas/upgrade.py); a fresh install has
            # neither.
            "--migrate-from",
            ns_name.apply(lambda n: f"configmap:{n}/{args.checkpoint_configmap_name}"),
            "--wait-for-lease",
            ns_name.apply(lambda n: f"{n}/{previous_lease}"),
        ]
        # The forwarder's Deployment (others may depend on it).
        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=args.deployment_name, namespace=ns_name, labels=labels),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=args.replicas,
                # A new pod starts (and is ready, which a standby is) before an old one stops: never zero replicas.
                # The Lease, not the strategy, keeps a second reader from running at the same time.
                strategy=k8s.apps.v1.DeploymentStrategyArgs(
                    type="RollingUpdate",
                    rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(max_surge=1, max_unavailable=0),
                ),
                revision_history_limit=3,
                selector=labels_selector(pod_labels),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels, annotations=pod_annotations),
                    spec=k8s.core.v1.PodSpecArgs(
                        service_account_name=service_account.metadata.apply(_name),
                        # The token is needed twice: the Kubernetes API (checkpoint ConfigMap) and, projected by
                        # the EKS pod identity webhook, STS AssumeRoleWithWebIdentity.
                        automount_service_account_token=True,
                        enable_service_links=False,
                        termination_grace_period_seconds=30,
                        topology_spread_constraints=spread_over_nodes(pod_labels),
                        security_context=pod_security_context(identity),
                        init_containers=init_containers or None,
                        containers=[
                            forwarder_container(
                                image=image,
                                args=forwarder_args,
                                env=env,
                                metrics_port=args.metrics_port,
                                identity=identity,
                                resources=args.resources,
                                extra_mounts=extra_mounts,
                                # The forwarder's Lease identity (--lease-identity's default).
                                pod_fields={"POD_NAME": "metadata.name"},
                            )
                        ],
                        volumes=volumes,
                    ),
                ),
            ),
            # The role's permissions, the RBAC and the objects it grants must exist before the first read, or it
            # starts with errors.
            opts=k8s_opts(depends_on=[read_policy, checkpoint_binding, lease_binding, *checkpoint_objects]),
        )
        if args.replicas > 1:
            # A drain or a node upgrade evicts one replica at a time: the other takes the Lease meanwhile. An
            # unhealthy pod may always be evicted, so a crash-looping replica never blocks a drain.
            k8s.policy.v1.PodDisruptionBudget(
                f"{name}-disruption-budget",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=args.deployment_name, namespace=ns_name, labels=labels),
                spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
                    max_unavailable=1,
                    selector=labels_selector(pod_labels),
                    unhealthy_pod_eviction_policy="AlwaysAllow",
                ),
                opts=k8s_opts(),
            )

        # --- network ----------------------------------------------------------------------------------------
        k8s.networking.v1.NetworkPolicy(
            f"{name}-falco-webhook-ingress",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=f"{args.deployment_name}-to-falco-webhook", namespace=args.falco_namespace, labels=labels
            ),
            spec=falco_webhook_ingress_spec(
                falco_pod_labels=args.falco_pod_labels,
                falco_port=args.falco_port,
                forwarder_namespace=ns_name,
                forwarder_labels=pod_labels,
            ),
            opts=k8s_opts(),
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-forwarder-network",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=args.deployment_name, namespace=ns_name, labels=labels),
            spec=forwarder_network_spec(
                forwarder_labels=pod_labels,
                metrics_port=args.metrics_port,
                falco_namespace=args.falco_namespace,
                falco_pod_labels=args.falco_pod_labels,
                falco_port=args.falco_port,
            ),
            opts=k8s_opts(),
        )

        # --- outputs ----------------------------------------------------------------------------------------
        port = args.metrics_port
        selector = ",".join(f"{key}={value}" for key, value in pod_labels.items())
        self.role_arn = role.arn
        self.namespace = ns_name
        self.image = pulumi.Output.from_input(image)
        # Every replica, each line prefixed with its pod: the leader's and the standby's.
        self.logs_command = pulumi.Output.concat(
            "kubectl -n ", ns_name, f" logs -l {selector} -c forwarder --prefix -f"
        )
        # Each replica's metrics in turn (a standby's say so); `deploy/` would pick one pod, maybe the standby.
        self.metrics_command = pulumi.Output.concat(
            "for pod in $(kubectl -n ",
            ns_name,
            f" get pods -l {selector} -o name); do ",
            'echo "# $pod"; kubectl -n ',
            ns_name,
            f' port-forward "$pod" {port}:{port} >/dev/null & ',
            f"sleep 3; curl -s http://127.0.0.1:{port}/metrics; kill $!; wait $! 2>/dev/null || :; done",
        )
        self.register_outputs(
            {
                "role_arn": self.role_arn,
                "namespace": self.namespace,
                "image": self.image,
                "logs_command": self.logs_command,
                "metrics_command": self.metrics_command,
            }
        )
