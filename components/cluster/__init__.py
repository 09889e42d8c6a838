"""AuditedCluster: an EKS cluster whose Kubernetes audit log goes to a CloudWatch log group the stack owns.

What it makes, all children of the component:
- a dedicated VPC (LabVpc) unless the caller passes its own VPC and subnets;
- the log group ``/aws/eks/<cluster name>/cluster`` with a retention, created before the cluster.
  Left to EKS, the group would be created with no retention and outlive ``pulumi destroy``;
- ``eks.Cluster`` with an explicit name (so the group's name is known), ``audit`` among the
  control-plane log types, an OIDC provider for IRSA, access entries (``API`` authentication mode),
  no self-managed default node group, and the VPC CNI managed add-on with its network policy agent
  on, so Kubernetes NetworkPolicies are enforced, logging at INFO instead of pulumi-eks's DEBUG. Without
  pulumi-eks's default security groups: the nodes and the control plane share the cluster security group
  EKS creates, and pulumi-eks's node security group would sit on no node;
- an EKS managed node group on Amazon Linux 2023 in the private subnets, with its own IAM role, at the
  control plane's Kubernetes version, through a launch template that requires IMDSv2 with a hop limit of 1
  (pods cannot reach the instance metadata service, so they cannot take the node's IAM role);
- the CoreDNS managed add-on, after the nodes (its pods need them), at the newest version EKS offers for the
  Kubernetes version, so an upgrade of that version upgrades CoreDNS too. pulumi-eks makes it only with its own
  default node group; without it EKS leaves CoreDNS self-managed, and nothing would ever upgrade it;
- with private API access ranges, a security group on the API endpoint's network interfaces that admits them on
  443 (and nothing else: the cluster security group EKS creates is also on every node);
- EKS access entries for the identities given as cluster admins or viewers (cluster-wide access policies);
- a kubeconfig that runs ``aws eks get-token`` with whatever AWS credentials are current when it is used
  (never a profile name, which may be gone by the time ``pulumi destroy`` runs), and a
  ``pulumi_kubernetes.Provider`` built from it for other components' children.

AWS resources and invokes use the AWS provider the caller passes in the resource options (inherited through
``parent=self``), the remote ``eks.Cluster`` included.

Beside this module: network.py (LabVpc, the VPC a cluster gets when the caller brings none) and
kubernetes_versions.py (the versions EKS offers a new cluster).
"""

import dataclasses
import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks
import pulumi_kubernetes as k8s

from ..args import Architecture, from_inputs, schema_args
from ..errors import ConfigError
from ..renamed import renamed
from .network import LabVpc, LabVpcArgs

COMPONENT_TYPE = "falco-eks:index:AuditedCluster"

# Retention periods CloudWatch Logs accepts (PutRetentionPolicy, retentionInDays).
CLOUDWATCH_RETENTION_DAYS: frozenset[int] = frozenset(
    {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}
)

# Control-plane log types besides "audit", which is always on.
EXTRA_LOG_TYPES: tuple[str, ...] = ("api", "authenticator", "controllerManager", "scheduler")

DEFAULT_KUBERNETES_VERSION = "1.35"
DEFAULT_NODE_INSTANCE_TYPE = "t3.large"
DEFAULT_NODE_COUNT = 2
DEFAULT_LOG_RETENTION_DAYS = 7
DEFAULT_API_PUBLIC_ACCESS_CIDRS: tuple[str, ...] = ("0.0.0.0/0",)

# EKS CreateCluster: 1-100 characters, starting with a letter or digit.
_CLUSTER_NAME = re.compile(r"^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$")
_KUBERNETES_VERSION = re.compile(r"^1\.(\d{2})$")
# family letters, generation digit(s), attribute letters (g = Graviton), optional "-flex", size.
_INSTANCE_TYPE = re.compile(
    r"^(?P<family>[a-z]+)(?P<generation>\d+)(?P<attributes>[a-z]*)(?:-flex)?\.(?P<size>[a-z0-9]+)$"
)
_KMS_KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
# EKS access entries take IAM users and roles (never an STS session).
_PRINCIPAL_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:(role|user)/[\w+=,.@/-]{1,512}$")
# What STS GetCallerIdentity answers: an IAM user, an assumed role's session, the root user, a federated user.
_CALLER_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):(?:iam|sts)::(?P<account>\d{12}):"
    r"(?:(?P<kind>user|role|assumed-role|federated-user)/(?P<rest>[\w+=,.@/-]{1,1024})|root)$"
)
# Node groups above this are surely a typo in a lab (and an expensive one).
MAX_NODE_COUNT = 100
# AL2023, EKS access entries and the VPC CNI network policy agent all need at least this version.
MIN_KUBERNETES_MINOR = 29

# EKS access policies (cluster-wide) for the identities given as admins and viewers.
ADMIN_ACCESS_POLICY = "AmazonEKSClusterAdminPolicy"
VIEW_ACCESS_POLICY = "AmazonEKSViewPolicy"

# AWS managed policies an EKS node needs: join the cluster, run the VPC CNI, pull images from ECR.
NODE_POLICIES: tuple[str, ...] = (
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
    "AmazonEC2ContainerRegistryReadOnly",
)

# The vpc-cni add-on's log level for ipamd and for the CNI plugin. pulumi-eks sets DEBUG for both unless told
# otherwise (nodejs/eks/addons/cni-addon.ts), which is also amazon-vpc-cni-k8s's own default; INFO keeps what
# an operator reads (IP allocation, warnings, errors) without the debug lines written to every node's disk.
VPC_CNI_LOG_LEVEL = "INFO"

# The EKS add-on that runs the cluster's DNS.
COREDNS_ADDON = "coredns"

# The nodes' root volume (AL2023 EKS AMIs boot from /dev/xvda): the size EKS uses without a launch template,
# encrypted with the account's default EBS key.
NODE_ROOT_DEVICE = "/dev/xvda"
NODE_ROOT_VOLUME_GIB = 20

# What `aws eks get-token` returns, and what the kubeconfig's exec entry declares.
EXEC_API_VERSION = "client.authentication.k8s.io/v1beta1"

# Only EC2 instances may assume the node role.
NODE_TRUST_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }
)


def node_architecture_of(instance_type: str) -> Architecture:
    """The CPU architecture of an EC2 instance type: "arm64" for Graviton (a1, and any family with a
    "g" among its attribute letters after the generation, e.g. t4g, m7g, c6gn, x2gd), else "amd64"
    (e.g. t3, m7i, m6a, g5: there the "g" is the family, not an attribute)."""
    match = _INSTANCE_TYPE.match(instance_type)
    if match is None:
        raise ConfigError(
            "node_instance_type", f"{instance_type!r} is not an EC2 instance type like t3.large or m7g.large"
        )
    if match["family"] == "a" and match["generation"] == "1":
        return Architecture.ARM64
    return Architecture.ARM64 if "g" in match["attributes"] else Architecture.AMD64


def check_cluster_name(setting: str, name: object) -> None:
    """Refuse what EKS would refuse as a cluster name."""
    if not isinstance(name, str) or not _CLUSTER_NAME.match(name):
        raise ConfigError(
            setting,
            f"{name!r} is not a valid EKS cluster name: 1-100 letters, digits, '-' or '_', starting with a letter "
            "or digit",
        )


def check_role_arn(setting: str, arn: object) -> None:
    """Refuse anything but an IAM role ARN."""
    if not isinstance(arn, str) or not _ROLE_ARN.match(arn):
        raise ConfigError(setting, f"{arn!r} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)")


def _principal_key(arn: str) -> tuple[str, str, str, str] | None:
    """(partition, account, "user" or "role", lower-case name) of an IAM user or role ARN, or of an STS session
    of a role; None for anything else (the root user, a federated user, a malformed ARN).

    IAM names are unique in an account whatever their path and case, and an assumed-role ARN carries the role's
    name without its path, so these four say which principal an ARN is."""
    match = _CALLER_ARN.match(arn)
    if match is None or match["kind"] in (None, "federated-user"):
        return None
    if match["kind"] == "assumed-role":  # <role name>/<session name>
        return match["partition"], match["account"], "role", match["rest"].split("/", 1)[0].lower()
    return match["partition"], match["account"], match["kind"], match["rest"].rsplit("/", 1)[-1].lower()


def same_principal(listed_arn: str, caller_arn: str) -> bool:
    """Whether `listed_arn` (an IAM role or user ARN, with its path) names the identity `caller_arn` is (what STS
    GetCallerIdentity returns: a user's ARN, or a session of a role, `assumed-role/<role>/<session>`)."""
    listed, caller = _principal_key(listed_arn), _principal_key(caller_arn)
    return listed is not None and listed == caller


def check_retention_days(setting: str, value: object) -> None:
    """Refuse a retention CloudWatch Logs does not accept (CLOUDWATCH_RETENTION_DAYS); a bool is not a number."""
    if isinstance(value, bool) or value not in CLOUDWATCH_RETENTION_DAYS:
        raise ConfigError(
            setting,
            f"{value!r} is not a retention CloudWatch Logs accepts; use one of "
            + ", ".join(str(d) for d in sorted(CLOUDWATCH_RETENTION_DAYS)),
        )


def check_kms_key_arn(setting: str, arn: object) -> None:
    """Refuse a plain value that is not a KMS key ARN (an alias would not match the key in an IAM policy);
    Outputs are taken as they come."""
    if isinstance(arn, str) and not _KMS_KEY_ARN.match(arn):
        raise ConfigError(setting, f"{arn!r} is not a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)")


def ami_type_for(architecture: Architecture) -> str:
    """The EKS managed node group AMI type: Amazon Linux 2023, standard variant, for the architecture."""
    return "AL2023_ARM_64_STANDARD" if architecture == Architecture.ARM64 else "AL2023_x86_64_STANDARD"


@schema_args
@dataclass(frozen=True)
class AuditedClusterSettings:
    """Settings of an AuditedCluster (FalcoEksLab's `cluster`): its name, Kubernetes version, nodes, log group,
    network, API endpoint and access. Checked before anything is created; an error names the setting."""

    cluster_name: str
    """The EKS cluster's name (1-100 letters, digits, '-' or '_', starting with a letter or digit).
    It also names the log group: /aws/eks/<clusterName>/cluster."""

    kubernetes_version: str = DEFAULT_KUBERNETES_VERSION
    """The control plane's Kubernetes version, "1.<minor>". Pick one in EKS standard support: versions in
    extended support cost six times as much per hour."""

    node_instance_type: str = DEFAULT_NODE_INSTANCE_TYPE
    """EC2 instance type of the managed node group. Graviton types (t4g, m7g, ...) get arm64 nodes."""

    node_count: int = DEFAULT_NODE_COUNT
    """Desired number of nodes (at least 1)."""

    node_min_count: int | None = None
    """Smallest size of the node group; unset means `nodeCount`."""

    node_max_count: int | None = None
    """Largest size of the node group; unset means `nodeCount`."""

    log_retention_days: int = DEFAULT_LOG_RETENTION_DAYS
    """How long CloudWatch keeps the control-plane logs; one of the values CloudWatch accepts."""

    extra_log_types: Sequence[str] = ()
    """Control-plane log types to enable besides "audit" (always on): api, authenticator,
    controllerManager, scheduler. Each one adds CloudWatch ingestion cost."""

    log_kms_key_arn: pulumi.Input[str] | None = None
    """KMS key that encrypts the log group; unset uses CloudWatch's own encryption. The key policy
    must allow the logs.<region>.amazonaws.com service principal."""

    vpc_id: pulumi.Input[str] | None = None
    """The caller's VPC; unset creates a dedicated VPC. Given together with `privateSubnetIds`."""

    public_subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]] | None = None
    """The caller's public subnets (internet-facing load balancers); optional with `vpcId`. A whole list from
    another resource works too (an awsx Vpc's publicSubnetIds)."""

    private_subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]] | None = None
    """The caller's private subnets for the nodes, in at least two availability zones, with egress to
    the internet (falcoctl downloads Falco's rules and plugins when the pods start). A whole list from another
    resource works too (an awsx Vpc's privateSubnetIds); its length is then checked once it is known."""

    vpc_cidr: str = "10.0.0.0/16"
    """IPv4 range of the dedicated VPC (ignored with `vpcId`)."""

    api_public_access_cidrs: Sequence[str] = DEFAULT_API_PUBLIC_ACCESS_CIDRS
    """Address ranges allowed to reach the cluster's public API endpoint (kubectl and Pulumi run from
    outside the VPC). Narrow it to your own address where you can. Leave the default with
    `apiPrivateOnly`: there is no public endpoint then."""

    api_private_only: bool = False
    """Serve the Kubernetes API only inside the VPC: no public endpoint at all. Pulumi (which installs
    workloads through the API) and kubectl must then run from an address in `apiPrivateAccessCidrs`
    that routes into the VPC (a host in it, a peered VPC, a VPN)."""

    api_private_access_cidrs: Sequence[str] = ()
    """Address ranges in the VPC or in networks connected to it (VPN, peering) allowed to reach the API's
    private endpoint on port 443; the nodes always can. Required with `apiPrivateOnly`."""

    kubeconfig_role_arn: str | None = None
    """IAM role the kubeconfig assumes for its token (`aws eks get-token --role-arn`): give the role your AWS
    provider assumes, so kubectl and the Kubernetes provider act as that role, not as whoever runs them. Unset:
    the token comes from whatever AWS credentials are current where the kubeconfig is used (a profile name is
    never written into it)."""

    cluster_admin_arns: Sequence[str] = ()
    """IAM role or user ARNs that get cluster-admin access (an EKS access entry with AmazonEKSClusterAdminPolicy,
    cluster-wide). The identity that creates the cluster has it already: do not list it again."""

    cluster_viewer_arns: Sequence[str] = ()
    """IAM role or user ARNs that get read-only access to the whole cluster (AmazonEKSViewPolicy: no Secrets)."""

    cluster_creator_arn: str | None = None
    """The identity that creates the cluster, as STS GetCallerIdentity names the caller of the AWS provider that
    deploys it (an IAM user ARN or an assumed-role ARN). EKS gives that identity cluster-admin access itself, and
    a second access entry for it fails while deploying, so clusterAdminArns and clusterViewerArns may not list it
    (a role matches its sessions: same account and role name). Unset: looked up (STS GetCallerIdentity through the
    component's AWS provider) when either list names anyone."""

    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags added to the AWS resources the component creates directly."""

    def __post_init__(self) -> None:
        check_cluster_name("cluster_name", self.cluster_name)
        version = _KUBERNETES_VERSION.match(str(self.kubernetes_version))
        if version is None:
            raise ConfigError(
                "kubernetes_version", f"{self.kubernetes_version!r} is not of the form 1.<minor>, e.g. 1.35"
            )
        if int(version[1]) < MIN_KUBERNETES_MINOR:
            raise ConfigError(
                "kubernetes_version",
                f"{self.kubernetes_version} is too old: the lab needs 1.{MIN_KUBERNETES_MINOR} or newer",
            )
        node_architecture_of(self.node_instance_type)  # raises for a malformed instance type

        self._check_count("node_count", self.node_count, minimum=1)
        self._check_count("node_min_count", self.node_min_count, minimum=0)
        self._check_count("node_max_count", self.node_max_count, minimum=1)
        if self.min_size > self.node_count:
            raise ConfigError("node_min_count", f"{self.min_size} is larger than node_count ({self.node_count})")
        if self.max_size < self.node_count:
            raise ConfigError("node_max_count", f"{self.max_size} is smaller than node_count ({self.node_count})")

        check_retention_days("log_retention_days", self.log_retention_days)

        if isinstance(self.extra_log_types, str):
            raise ConfigError("extra_log_types", "must be a list of log types, not one string")
        unknown = [t for t in self.extra_log_types if t not in EXTRA_LOG_TYPES and t != "audit"]
        if unknown:
            raise ConfigError(
                "extra_log_types",
                f"unknown log type(s) {unknown}; choose from {list(EXTRA_LOG_TYPES)} ('audit' is always on)",
            )
        # Keep the caller's order, drop repeats and "audit" (added anyway), store as a tuple.
        object.__setattr__(
            self, "extra_log_types", tuple(dict.fromkeys(t for t in self.extra_log_types if t != "audit"))
        )

        check_kms_key_arn("log_kms_key_arn", self.log_kms_key_arn)

        self._check_network()

        self._check_api_access()

        if self.kubeconfig_role_arn is not None:
            check_role_arn("kubeconfig_role_arn", self.kubeconfig_role_arn)

        self._check_access()
        self._check_creator_not_listed()

    def _check_access(self) -> None:
        seen: dict[str, str] = {}
        for setting in ("cluster_admin_arns", "cluster_viewer_arns"):
            values = getattr(self, setting)
            if isinstance(values, str):
                raise ConfigError(setting, "must be a list of IAM role or user ARNs, not one string")
            for arn in values:
                if not isinstance(arn, str) or not _PRINCIPAL_ARN.match(arn):
                    hint = (
                        " (an assumed-role ARN names one session: give the role's ARN, arn:aws:iam::<account>:role/"
                        "<name>, with its path)"
                        if isinstance(arn, str) and ":assumed-role/" in arn
                        else ""
                    )
                    raise ConfigError(setting, f"{arn!r} is not an IAM role or user ARN{hint}")
                if arn in seen:
                    raise ConfigError(setting, f"{arn} is listed twice (also in {seen[arn]}): EKS keeps one entry each")
                seen[arn] = setting
            object.__setattr__(self, setting, tuple(values))

    def _check_creator_not_listed(self) -> None:
        creator = self.cluster_creator_arn
        if creator is None:
            return
        if not isinstance(creator, str) or not _CALLER_ARN.match(creator):
            raise ConfigError(
                "cluster_creator_arn",
                f"{creator!r} is not an identity STS GetCallerIdentity returns (arn:aws:iam::<account>:user/<name>, "
                "arn:aws:sts::<account>:assumed-role/<role>/<session>)",
            )
        for setting in ("cluster_admin_arns", "cluster_viewer_arns"):
            for arn in getattr(self, setting):
                if same_principal(arn, creator):
                    raise ConfigError(
                        setting,
                        f"{arn} is the identity that creates the cluster ({creator}), which already has cluster-admin "
                        "as the cluster's creator (EKS gives it an access entry of its own, and a second one would "
                        "fail while deploying): remove it from the list, or deploy as another identity",
                    )

    def _check_api_access(self) -> None:
        if isinstance(self.api_public_access_cidrs, str) or not self.api_public_access_cidrs:
            raise ConfigError("api_public_access_cidrs", "must be a non-empty list of CIDR ranges")
        public = _cidrs("api_public_access_cidrs", self.api_public_access_cidrs)
        object.__setattr__(self, "api_public_access_cidrs", public)
        if isinstance(self.api_private_access_cidrs, str):
            raise ConfigError("api_private_access_cidrs", "must be a list of CIDR ranges, not one string")
        object.__setattr__(
            self, "api_private_access_cidrs", _cidrs("api_private_access_cidrs", self.api_private_access_cidrs)
        )
        if not isinstance(self.api_private_only, bool):
            raise ConfigError("api_private_only", f"must be true or false, got {self.api_private_only!r}")
        if self.api_private_only and not self.api_private_access_cidrs:
            raise ConfigError(
                "api_private_access_cidrs",
                "a private-only API endpoint needs the address ranges Pulumi and kubectl connect from "
                "(in the VPC or routed into it), or nothing outside the nodes can reach the API",
            )
        if self.api_private_only and self.api_public_access_cidrs != DEFAULT_API_PUBLIC_ACCESS_CIDRS:
            raise ConfigError(
                "api_public_access_cidrs",
                "has no effect with a private-only API endpoint (there is no public endpoint); "
                "remove it or turn api_private_only off",
            )

    @staticmethod
    def _check_count(setting: str, value: int | None, minimum: int) -> None:
        if value is None and setting != "node_count":
            return
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(setting, f"must be a whole number, got {value!r}")
        if not minimum <= value <= MAX_NODE_COUNT:
            raise ConfigError(setting, f"must be between {minimum} and {MAX_NODE_COUNT}, got {value}")

    def _check_network(self) -> None:
        if self.vpc_id is None:
            if self.public_subnet_ids is not None or self.private_subnet_ids is not None:
                raise ConfigError("vpc_id", "is required when subnet IDs are given")
            try:
                LabVpcArgs(cluster_name=self.cluster_name, cidr_block=self.vpc_cidr)
            except ConfigError as err:
                raise ConfigError("vpc_cidr", err.message) from err
            return
        if self.private_subnet_ids is None or isinstance(self.private_subnet_ids, str):
            raise ConfigError("private_subnet_ids", "a list of private subnet IDs is required with vpc_id")
        if isinstance(self.private_subnet_ids, Sequence):  # another resource's whole list: checked when known
            enough_subnets(self.private_subnet_ids)
        if isinstance(self.public_subnet_ids, str):
            raise ConfigError("public_subnet_ids", "must be a list of subnet IDs, not one string")

    @property
    def min_size(self) -> int:
        """The node group's minimum size."""
        return self.node_count if self.node_min_count is None else self.node_min_count

    @property
    def max_size(self) -> int:
        """The node group's maximum size."""
        return self.node_count if self.node_max_count is None else self.node_max_count

    @property
    def node_group_name_prefix(self) -> str:
        """Prefix of the node group's name: EKS allows 63 characters and the provider appends 26."""
        return f"{self.cluster_name[:30]}-nodes-"

    @property
    def log_types(self) -> list[str]:
        """Every control-plane log type the cluster enables: "audit" first, then the extras."""
        return ["audit", *self.extra_log_types]

    @property
    def log_group_name(self) -> str:
        """The log group EKS writes the control-plane logs to."""
        return f"/aws/eks/{self.cluster_name}/cluster"

    @property
    def access(self) -> list[tuple[str, str]]:
        """(principal ARN, access policy name) of every access entry the component creates."""
        return [(arn, ADMIN_ACCESS_POLICY) for arn in self.cluster_admin_arns] + [
            (arn, VIEW_ACCESS_POLICY) for arn in self.cluster_viewer_arns
        ]


def enough_subnets(subnet_ids: Sequence[Any] | None) -> Sequence[Any]:
    """The caller's private subnets, if there are at least two (EKS needs two availability zones)."""
    if subnet_ids is None or len(subnet_ids) < 2:
        raise ConfigError(
            "private_subnet_ids", "EKS needs subnets in at least two availability zones: give two or more"
        )
    return subnet_ids


def _cidrs(setting: str, values: Sequence[str]) -> tuple[str, ...]:
    for cidr in values:
        try:
            ipaddress.ip_network(cidr, strict=True)
        except (TypeError, ValueError) as err:
            raise ConfigError(setting, f"{cidr!r} is not a CIDR range ({err})") from err
    return tuple(values)


def kubeconfig_document(
    *, cluster_name: str, endpoint: str, certificate_authority_data: str, region: str, role_arn: str | None = None
) -> dict[str, Any]:
    """A kubeconfig for the cluster whose token comes from `aws eks get-token`.

    No profile and no AWS environment variables are written into it: the AWS CLI uses the credentials of
    whoever runs kubectl or Pulumi at that moment, so `pulumi destroy` works with the credentials at hand,
    not only the profile that ran `pulumi up`. `role_arn` makes the token come from that role instead."""
    token_args = ["--region", region, "eks", "get-token", "--cluster-name", cluster_name, "--output", "json"]
    if role_arn:
        token_args += ["--role-arn", role_arn]
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster_name,
                "cluster": {"server": endpoint, "certificate-authority-data": certificate_authority_data},
            }
        ],
        "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": cluster_name}}],
        "current-context": cluster_name,
        "preferences": {},
        "users": [
            {
                "name": cluster_name,
                "user": {
                    "exec": {
                        "apiVersion": EXEC_API_VERSION,
                        "command": "aws",
                        "args": token_args,
                        # Pulumi runs without a terminal: never wait for input.
                        "interactiveMode": "Never",
                    }
                },
            }
        ],
    }


def endpoint_and_certificate(kubeconfig: str) -> tuple[str, str]:
    """The API endpoint and CA data out of a kubeconfig (pulumi-eks's `kubeconfig_json`)."""
    cluster = json.loads(kubeconfig)["clusters"][0]["cluster"]
    return cluster["server"], cluster["certificate-authority-data"]


class AuditedCluster(pulumi.ComponentResource):
    """An EKS cluster with its audit log in a stack-owned CloudWatch log group, IRSA, enforced
    NetworkPolicies and an Amazon Linux 2023 managed node group."""

    # The annotations below are the component's outputs (in its schema for other languages too).

    vpc_id: pulumi.Output[str]
    """The VPC the cluster runs in."""

    cluster_name: pulumi.Output[str]
    """The EKS cluster's name (known before deployment; carries no dependency on the cluster)."""

    kubeconfig: pulumi.Output[str]
    """Kubeconfig (JSON) for the cluster; it runs `aws eks get-token` with the current AWS credentials
    (or as `kubeconfigRoleArn`). Secret."""

    oidc_provider_arn: pulumi.Output[str]
    """ARN of the cluster's IAM OIDC provider (IRSA trust policies use it as the federated principal)."""

    oidc_issuer: pulumi.Output[str]
    """The OIDC issuer without https:// (the prefix of IRSA condition keys)."""

    log_group_name: pulumi.Output[str]
    """Name of the control-plane log group."""

    log_group_arn: pulumi.Output[str]
    """ARN of the control-plane log group."""

    node_architecture: Architecture
    """CPU architecture of the nodes, "amd64" or "arm64", from the instance type."""

    def __init__(self, name: str, args: AuditedClusterSettings, opts: pulumi.ResourceOptions | None = None) -> None:
        """Python callers also reach the children: `cluster` (the pulumi-eks cluster, a remote component),
        `log_group`, `node_group`, `node_role`, `node_launch_template`, `coredns` (the add-on), `network` (the
        dedicated VPC, None with the caller's), `api_security_group` (None without private access ranges),
        `access_entries`, and `provider`, the Kubernetes provider for the cluster; it waits for the node group, so
        workloads have nodes."""
        args = from_inputs(AuditedClusterSettings, args)
        super().__init__(COMPONENT_TYPE, name, None, opts)
        if args.cluster_creator_arn is None and (args.cluster_admin_arns or args.cluster_viewer_arns):
            # Before any child: the caller of this component's AWS provider creates the cluster, and a list naming
            # it would fail half-way through the deployment (its second access entry).
            creator = aws.get_caller_identity(opts=pulumi.InvokeOptions(parent=self)).arn
            args = dataclasses.replace(args, cluster_creator_arn=creator)
        tags = dict(args.tags)
        self.node_architecture = node_architecture_of(args.node_instance_type)

        self.network: LabVpc | None = None
        if args.vpc_id is None:
            self.network = LabVpc(
                f"{name}-network",
                LabVpcArgs(cluster_name=args.cluster_name, cidr_block=args.vpc_cidr, tags=tags),
                opts=pulumi.ResourceOptions(parent=self),
            )
            vpc_id: pulumi.Input[str] = self.network.vpc_id
            public_subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]] | None = self.network.public_subnet_ids
            private_subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]] = self.network.private_subnet_ids
        else:
            vpc_id = args.vpc_id
            public_subnet_ids = args.public_subnet_ids
            # A whole list from another resource (an awsx Vpc's privateSubnetIds) is checked once it is known.
            private_subnet_ids = pulumi.Output.from_input(args.private_subnet_ids).apply(enough_subnets)

        # Created before the cluster, so EKS writes into it instead of creating an unmanaged one.
        self.log_group = aws.cloudwatch.LogGroup(
            f"{name}-control-plane-logs",
            name=args.log_group_name,
            retention_in_days=args.log_retention_days,
            kms_key_id=args.log_kms_key_arn,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self),
        )

        # Pulumi and kubectl reach the private endpoint from these ranges. Their own security group on the endpoint's
        # network interfaces: the cluster security group EKS creates is also on every node (and its pods' addresses).
        # No egress rules: answers go out by the connection's state, and the EKS-made group allows the rest.
        self.api_security_group: aws.ec2.SecurityGroup | None = None
        if args.api_private_access_cidrs:
            api_security_group = aws.ec2.SecurityGroup(
                f"{name}-api-endpoint",
                vpc_id=vpc_id,
                description=f"Kubernetes API private endpoint of the EKS cluster {args.cluster_name}",
                revoke_rules_on_delete=True,
                tags=tags,
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.api_security_group = api_security_group
            for index, cidr in enumerate(args.api_private_access_cidrs):
                network = ipaddress.ip_network(cidr)
                aws.vpc.SecurityGroupIngressRule(
                    f"{name}-api-private-{index}",
                    security_group_id=api_security_group.id,
                    description="Kubernetes API (private endpoint)",
                    ip_protocol="tcp",
                    from_port=443,
                    to_port=443,
                    cidr_ipv4=cidr if network.version == 4 else None,
                    cidr_ipv6=cidr if network.version == 6 else None,
                    tags=tags,
                    opts=pulumi.ResourceOptions(parent=self),
                )

        self.cluster = eks.Cluster(
            f"{name}-eks",
            name=args.cluster_name,
            version=args.kubernetes_version,
            vpc_id=vpc_id,
            public_subnet_ids=public_subnet_ids,
            private_subnet_ids=private_subnet_ids,
            node_associate_public_ip_address=False,
            endpoint_public_access=not args.api_private_only,
            endpoint_private_access=True,  # nodes reach the API server inside the VPC
            # pulumi-eks refuses public ranges without a public endpoint.
            public_access_cidrs=None if args.api_private_only else list(args.api_public_access_cidrs),
            enabled_cluster_log_types=args.log_types,
            create_oidc_provider=True,
            authentication_mode=eks.AuthenticationMode.API,
            skip_default_node_group=True,
            # The EKS managed vpc-cni add-on with its network policy agent; without it NetworkPolicy
            # objects are accepted by the API server and silently not enforced.
            use_default_vpc_cni=False,
            vpc_cni_options=eks.VpcCniOptionsArgs(
                enable_network_policy=True,
                log_level=VPC_CNI_LOG_LEVEL,
                # pulumi-eks's schema has no pluginLogLevel; its env in the add-on's configuration wins over
                # pulumi-eks's own (mergeConfigurationValues in nodejs/eks/addons/cni-addon.ts).
                configuration_values={"env": {"AWS_VPC_K8S_PLUGIN_LOG_LEVEL": VPC_CNI_LOG_LEVEL}},
            ),
            # No node security group (and its four rules) that no node would use: the managed node group's nodes
            # get the cluster security group EKS creates, which also sits on the control plane's network interfaces
            # and admits all traffic between them. Nor pulumi-eks's extra cluster group, whose only ingress was from
            # that node group; the private endpoint's ranges get their own group above.
            skip_default_security_groups=True,
            cluster_security_group=self.api_security_group,
            # STANDARD: when the version leaves standard support EKS upgrades the cluster instead of
            # moving it to extended support, which costs $0.60 an hour instead of $0.10.
            upgrade_policy=aws.eks.ClusterUpgradePolicyArgs(support_type="STANDARD"),
            # Given (even empty), pulumi-eks takes no profile from AWS_PROFILE / aws:profile into the
            # kubeconfig of its internal Kubernetes provider.
            provider_credential_opts=eks.KubeconfigOptionsArgs(role_arn=args.kubeconfig_role_arn),
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.log_group]),
        )

        self.node_role = aws.iam.Role(
            f"{name}-node-role",
            description=f"Nodes of the EKS cluster {args.cluster_name}",
            assume_role_policy=NODE_TRUST_POLICY,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        partition = aws.get_partition_output(opts=pulumi.InvokeOptions(parent=self)).partition
        attachments = [
            aws.iam.RolePolicyAttachment(
                f"{name}-node-{policy}",
                role=self.node_role.name,
                policy_arn=pulumi.Output.concat("arn:", partition, ":iam::aws:policy/", policy),
                opts=pulumi.ResourceOptions(parent=self),
            )
            for policy in NODE_POLICIES
        ]

        # IMDSv2 with a hop limit of 1: a pod's request to the metadata service needs a second hop (out of the
        # pod's network namespace), so pods cannot read the node role's credentials. Host-network pods (the
        # VPC CNI, kube-proxy) still can; nothing else in the lab needs it: the forwarder uses IRSA.
        self.node_launch_template = aws.ec2.LaunchTemplate(
            f"{name}-nodes",
            description=f"Nodes of the EKS cluster {args.cluster_name}",
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                http_endpoint="enabled",
                http_tokens="required",
                http_put_response_hop_limit=1,
                instance_metadata_tags="disabled",
            ),
            block_device_mappings=[
                aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                    device_name=NODE_ROOT_DEVICE,
                    ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                        volume_size=NODE_ROOT_VOLUME_GIB,
                        volume_type="gp3",
                        encrypted="true",
                        delete_on_termination="true",
                    ),
                )
            ],
            tag_specifications=[
                aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type=kind, tags=tags)
                for kind in ("instance", "volume")
                if tags
            ],
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self),
        )

        # A plain EKS managed node group (what eks.ManagedNodeGroup wraps): with access entries EKS
        # registers the node role itself, and every input stays visible to tests under mocks.
        self.node_group = aws.eks.NodeGroup(
            f"{name}-nodes",
            cluster_name=args.cluster_name,
            node_group_name_prefix=args.node_group_name_prefix,
            node_role_arn=self.node_role.arn,
            # The control plane's version, from the same setting: a change upgrades the control plane first
            # (the node group depends on the cluster), then the nodes. Without it the nodes stay behind.
            version=args.kubernetes_version,
            ami_type=ami_type_for(self.node_architecture),
            instance_types=[args.node_instance_type],
            launch_template=aws.eks.NodeGroupLaunchTemplateArgs(
                id=self.node_launch_template.id,
                version=self.node_launch_template.latest_version.apply(str),
            ),
            capacity_type="ON_DEMAND",
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                desired_size=args.node_count, min_size=args.min_size, max_size=args.max_size
            ),
            update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1),
            subnet_ids=private_subnet_ids,
            tags=tags,
            # After the whole cluster (a remote component: depending on it waits for its add-ons and
            # OIDC provider too), and after the role has its policies: without the CNI policy nodes
            # never become ready.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.cluster, *attachments]),
        )

        # CoreDNS as an EKS add-on: EKS installed a self-managed CoreDNS when it created the cluster (pulumi-eks makes
        # the add-on only for its own default node group), which a Kubernetes upgrade would leave behind. OVERWRITE
        # adopts that Deployment. After the nodes: the add-on stays DEGRADED, and its creation waits, until its pods
        # run; on an upgrade it follows the control plane and the nodes. The version is the newest EKS offers for the
        # Kubernetes version, as pulumi-eks picks kube-proxy's and vpc-cni's.
        coredns_version = aws.eks.get_addon_version_output(
            addon_name=COREDNS_ADDON,
            kubernetes_version=args.kubernetes_version,
            most_recent=True,
            opts=pulumi.InvokeOutputOptions(parent=self),
        ).version
        self.coredns = aws.eks.Addon(
            f"{name}-coredns",
            cluster_name=args.cluster_name,
            addon_name=COREDNS_ADDON,
            addon_version=coredns_version,
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE",
            # Removing the add-on from the program leaves CoreDNS running (as pulumi-eks does for its add-ons).
            preserve=True,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.node_group]),
        )

        self.vpc_id = pulumi.Output.from_input(vpc_id)
        # The explicit name, known before deployment (previews show it). It carries no dependency on
        # the cluster: depend on `cluster` or use `provider` to order work after it.
        self.cluster_name = pulumi.Output.from_input(args.cluster_name)
        region = aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self)).region
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(self.cluster.kubeconfig_json, region).apply(
                lambda values: _kubeconfig_json(args, values[0], values[1])
            )
        )
        self.oidc_provider_arn = self.cluster.oidc_provider_arn
        self.oidc_issuer = self.cluster.oidc_issuer
        self.log_group_name = self.log_group.name
        self.log_group_arn = self.log_group.arn

        # Access for more identities: one entry each, with a cluster-wide access policy.
        self.access_entries: list[aws.eks.AccessEntry] = []
        for index, (principal, policy) in enumerate(args.access):
            entry = aws.eks.AccessEntry(
                f"{name}-access-{index}",
                cluster_name=args.cluster_name,
                principal_arn=principal,
                type="STANDARD",
                tags=tags,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.cluster]),
            )
            aws.eks.AccessPolicyAssociation(
                f"{name}-access-{index}-policy",
                cluster_name=args.cluster_name,
                principal_arn=entry.principal_arn,
                policy_arn=pulumi.Output.concat("arn:", partition, ":eks::aws:cluster-access-policy/", policy),
                access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"),
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.access_entries.append(entry)

        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            # Charts and workloads wait for nodes to exist, not only for the control plane.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.node_group]),
        )

        self.register_outputs(
            {
                "clusterName": self.cluster_name,
                "kubeconfig": self.kubeconfig,
                "vpcId": self.vpc_id,
                "oidcProviderArn": self.oidc_provider_arn,
                "oidcIssuer": self.oidc_issuer,
                "logGroupName": self.log_group_name,
                "logGroupArn": self.log_group_arn,
                "nodeArchitecture": self.node_architecture,
            }
        )


def _kubeconfig_json(args: AuditedClusterSettings, eks_kubeconfig: str, region: str) -> str:
    endpoint, certificate = endpoint_and_certificate(eks_kubeconfig)
    document = kubeconfig_document(
        cluster_name=args.cluster_name,
        endpoint=endpoint,
        certificate_authority_data=certificate,
        region=region,
        role_arn=args.kubeconfig_role_arn,
    )
    return json.dumps(document)


def __getattr__(name: str) -> Any:
    # Old names of renamed classes (components/renamed.py).
    return renamed(__name__, name)
