"""Shared Pulumi mocks: run component code without an engine and record every registration.

`run_program(fn, config)` builds whatever `fn` creates under `pulumi.runtime.set_mocks`, waits for
every registration, and returns a `Recorded` with each resource's type, name, resolved inputs (a resource
passed as an input recorded as its URN),
parent URN, explicit dependencies and providers (read from the RegisterResource request itself, so the
parent chain, `depends_on` and which provider serves a resource can be asserted as data), the aliases it
declared, and every invoke with the provider it went to.

URNs are formed as the Pulumi engine forms them: a child's type part holds the full qualified type of its
parent (every ancestor's type, `generateURN` in pulumi/pulumi pkg/resource/deploy/deployment.go), not only the
immediate parent's type as Pulumi's own MockMonitor.make_urn does. A resource moved under another component
therefore gets another URN here too, as it would in a real `pulumi up`.

The mocked AWS answers the invokes the components make (zones, region, partition, caller identity, Kubernetes and
add-on versions). It also knows EKS clusters that exist already (`ExistingCluster`): aws.eks.get_cluster,
aws.iam.get_open_id_connect_provider and aws.cloudwatch.get_log_group answer for them as AWS would,
including "not found" failures; and SNS topics and log groups that exist already (`LabMocks.topics`,
`LabMocks.log_groups`), for aws.sns.get_topic and aws.cloudwatch.get_log_group.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pulumi
from google.protobuf import json_format, struct_pb2
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc, settings

ACCOUNT_ID = "123456789012"
REGION = "us-west-2"
OIDC_ID = "EXAMPLED539D4633E53DE1B71EXAMPLE"
OIDC_ISSUER = f"oidc.eks.{REGION}.amazonaws.com/id/{OIDC_ID}"
OIDC_PROVIDER_ARN = f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/{OIDC_ISSUER}"
PROJECT = "falco-eks-lab"
STACK = "test"
EKS_ENDPOINT = "https://EXAMPLE0123456789.gr7.us-west-2.eks.amazonaws.com"
EKS_CA_DATA = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUMvakNDQWVhZ0F3SUJBZ0lCQURBTkJna3Foa2lHOXcwQkFRc0ZBREFW"

# What the mocked DescribeClusterVersions (aws.eks.get_cluster_versions) answers: (version, status, end of
# standard support). Tests may replace LabMocks.cluster_versions.
CLUSTER_VERSIONS: tuple[tuple[str, str, str], ...] = (
    ("1.36", "STANDARD_SUPPORT", "2027-08-02T00:00:00Z"),
    ("1.35", "STANDARD_SUPPORT", "2027-03-27T00:00:00Z"),
    ("1.34", "STANDARD_SUPPORT", "2026-12-02T00:00:00Z"),
    ("1.33", "EXTENDED_SUPPORT", "2026-07-29T00:00:00Z"),
    ("1.32", "EXTENDED_SUPPORT", "2026-03-23T00:00:00Z"),
    ("1.31", "UNSUPPORTED", "2025-11-26T00:00:00Z"),
)


@dataclass(frozen=True)
class ExistingCluster:
    """An EKS cluster created outside the stack, as the mocked AWS describes it."""

    name: str
    audit_logging: bool = True
    """Whether "audit" is among its control-plane log types."""
    oidc_provider: bool = True
    """Whether an IAM OIDC provider exists for its issuer."""
    audiences: tuple[str, ...] = ("sts.amazonaws.com",)
    """Client IDs of that OIDC provider."""
    log_group: bool = True
    """Whether /aws/eks/<name>/cluster exists (EKS makes it on its first write after logging is turned on)."""

    @property
    def issuer(self) -> str:
        return f"https://oidc.eks.{REGION}.amazonaws.com/id/{self.name.upper()}0123"

    @property
    def oidc_provider_arn(self) -> str:
        return f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/{self.issuer.removeprefix('https://')}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/eks/{self.name}/cluster"

    @property
    def log_group_arn(self) -> str:
        return f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{self.log_group_name}"

    @property
    def endpoint(self) -> str:
        return f"https://{self.name.upper()}.gr7.{REGION}.eks.amazonaws.com"


@dataclass
class Registration:
    type: str
    name: str
    urn: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    parent: str
    dependencies: list[str]
    custom: bool
    remote: bool
    provider: str = ""  # provider reference "<urn>::<id>" when one was given explicitly
    providers: dict[str, str] = field(default_factory=dict)  # package -> reference, sent for components
    protect: bool = False  # `pulumi destroy` would refuse to delete it
    retain_on_delete: bool = False  # `pulumi destroy` would leave it in the cloud
    aliases: list[RecordedAlias] = field(default_factory=list)  # as sent: alias specs or whole URNs
    ignore_changes: list[str] = field(default_factory=list)  # properties a later `pulumi up` leaves as they are


@dataclass(frozen=True)
class RecordedAlias:
    """One alias of a RegisterResource request (alias_pb2.Alias): a whole URN, or a spec whose empty fields mean
    "the resource's own" (name, type, stack, project, parent), as the engine reads them."""

    urn: str = ""
    name: str = ""
    type: str = ""
    stack: str = ""
    project: str = ""
    parent_urn: str = ""
    no_parent: bool = False


@dataclass
class Invoke:
    token: str
    args: dict[str, Any]
    provider: str  # provider reference "<urn>::<id>", or "" for the default provider


@dataclass
class Recorded:
    """Everything one mocked program registered, in order, and every invoke it made."""

    resources: list[Registration] = field(default_factory=list)
    invokes: list[Invoke] = field(default_factory=list)
    result: Any = None

    def of_type(self, typ: str) -> list[Registration]:
        return [r for r in self.resources if r.type == typ]

    def one(self, typ: str, name: str | None = None) -> Registration:
        found = [r for r in self.of_type(typ) if name is None or r.name == name]
        if len(found) != 1:
            names = [r.name for r in self.of_type(typ)]
            raise AssertionError(f"expected one {typ} named {name!r}, found {names}")
        return found[0]

    def under(self, component: Registration) -> list[Registration]:
        """Every registration below `component`."""
        return [r for r in self.resources if component in self.parent_chain(r)]

    def by_urn(self, urn: str) -> Registration | None:
        return next((r for r in self.resources if r.urn == urn), None)

    def parent_chain(self, reg: Registration) -> list[Registration]:
        """The registrations above `reg`, nearest first (the stack itself is not recorded)."""
        chain: list[Registration] = []
        parent = self.by_urn(reg.parent) if reg.parent else None
        while parent is not None:
            chain.append(parent)
            parent = self.by_urn(parent.parent) if parent.parent else None
        return chain


def _fake_outputs(typ: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """Realistic outputs for the resource types the components read outputs of."""
    out = dict(inputs)
    if typ == "eks:index:Cluster":
        cluster_name = inputs.get("name", name)
        kubeconfig = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": cluster_name,
                    "cluster": {"server": EKS_ENDPOINT, "certificate-authority-data": EKS_CA_DATA},
                }
            ],
            "users": [
                {
                    "name": "aws",
                    "user": {"exec": {"command": "aws", "args": ["eks", "get-token", "--cluster-name", cluster_name]}},
                }
            ],
        }
        out.update(
            kubeconfigJson=json.dumps(kubeconfig),
            kubeconfig=kubeconfig,
            oidcProviderArn=OIDC_PROVIDER_ARN,
            oidcProviderUrl=f"https://{OIDC_ISSUER}",
            oidcIssuer=OIDC_ISSUER,
            clusterSecurityGroupId="sg-0cluster",
            nodeSecurityGroupId="sg-0node",
            # No eksCluster: the SDK types it as an aws.eks.Cluster resource reference, and a plain
            # dict there makes output translation fail for every eks.Cluster under mocks.
        )
        # Nor the clusterSecurityGroup given as input (a resource reference): echoed back as an output, the SDK
        # would look the resource up again, which the mocks cannot serve.
        out.pop("clusterSecurityGroup", None)
    elif typ.startswith("aws:"):
        resource_name = inputs.get("name", name)
        service = typ.split(":")[1].split("/")[0]
        if typ == "aws:cloudwatch/logGroup:LogGroup":
            out["arn"] = f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{resource_name}"
        elif typ == "aws:sns/topic:Topic":
            out["arn"] = f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:{resource_name}"
        elif typ == "aws:iam/role:Role":
            out["arn"] = f"arn:aws:iam::{ACCOUNT_ID}:role/{resource_name}"
        elif typ == "aws:ec2/launchTemplate:LaunchTemplate":
            out["latestVersion"] = 1
            out["defaultVersion"] = 1
        elif typ == "aws:kinesis/stream:Stream":
            out["name"] = resource_name
            out["arn"] = f"arn:aws:kinesis:{REGION}:{ACCOUNT_ID}:stream/{resource_name}"
        elif typ == "aws:ecr/repository:Repository":
            out["repositoryUrl"] = f"{ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/{resource_name}"
            out["arn"] = f"arn:aws:ecr:{REGION}:{ACCOUNT_ID}:repository/{resource_name}"
        else:
            out.setdefault("arn", f"arn:aws:{service}:{REGION}:{ACCOUNT_ID}:{name}")
    elif typ == "random:index/randomPassword:RandomPassword":
        out["result"] = "mock-generated-password-0123456789"
        out["bcryptHash"] = "$2a$10$mockmockmockmockmockmu"
    elif typ == "docker-build:index:Image":
        out["digest"] = "sha256:" + "ab" * 32
        out["ref"] = f"{ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/forwarder@sha256:{'ab' * 32}"
    elif typ.startswith("kubernetes:"):
        meta = dict(inputs.get("metadata") or {})
        meta.setdefault("name", name)
        out["metadata"] = meta
    return out


def _cluster_version(version: str, status: str, end_of_standard: str) -> dict[str, Any]:
    return {
        "clusterType": "eks",
        "clusterVersion": version,
        "controlPlaneComponentConfigs": [],
        "controlPlaneScalingTiers": [],
        "defaultPlatformVersion": f"eks.{len(version)}",
        "defaultVersion": version == "1.35",
        "endOfExtendedSupportDate": "",  # not read by the lab
        "endOfStandardSupportDate": end_of_standard,
        "kubernetesPatchVersion": f"{version}.0",
        "releaseDate": "2025-01-01T00:00:00Z",
        "versionStatus": status,
    }


class LabMocks(pulumi.runtime.Mocks):
    cluster_versions: tuple[tuple[str, str, str], ...] = CLUSTER_VERSIONS
    """What aws.eks.get_cluster_versions answers."""

    versions_error: str | None = None
    """When set, aws.eks.get_cluster_versions fails with this reason instead."""

    caller_arn: str = f"arn:aws:iam::{ACCOUNT_ID}:user/test"
    """Who aws.get_caller_identity says is deploying."""

    def __init__(
        self, *existing: ExistingCluster, topics: tuple[str, ...] = (), log_groups: tuple[str, ...] = ()
    ) -> None:
        self.existing = {cluster.name: cluster for cluster in existing}
        """The EKS clusters that exist outside the stack."""
        self.topics = set(topics)
        """Names of the SNS topics that exist outside the stack (in REGION and ACCOUNT_ID)."""
        self.log_groups = set(log_groups)
        """Names of other log groups that exist outside the stack."""
        self.invokes: list[Invoke] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        return f"{args.name}-id", _fake_outputs(args.typ, args.name, args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict | tuple[dict, list[tuple[str, str]]]:
        token = args.token
        self.invokes.append(Invoke(token, dict(args.args), args.provider))
        if token == "aws:sns/getTopic:getTopic":
            name = args.args.get("name", "")
            if name not in self.topics:
                return _not_found(f"SNS Topic ({name})")
            arn = f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:{name}"
            return {"id": arn, "arn": arn, "name": name, "tags": {}}
        if token == "aws:cloudwatch/getLogGroup:getLogGroup" and args.args.get("name") in self.log_groups:
            name = args.args["name"]
            arn = f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{name}"
            return {"id": name, "name": name, "arn": arn, "retentionInDays": 30, "kmsKeyId": "",
                    "logGroupClass": "STANDARD", "creationTime": 1700000000000, "tags": {}}
        if token in _EXISTING_CLUSTER_CALLS:
            return _EXISTING_CLUSTER_CALLS[token](self.existing, args.args)
        if token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            return {
                "names": [f"{REGION}a", f"{REGION}b", f"{REGION}c"],
                "zoneIds": ["usw2-az1", "usw2-az2", "usw2-az3"],
                "id": REGION,
            }
        if token == "aws:index/getRegion:getRegion":
            return {"name": REGION, "region": REGION, "id": REGION, "endpoint": f"ec2.{REGION}.amazonaws.com"}
        if token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": ACCOUNT_ID,
                "arn": self.caller_arn,
                "userId": "AIDATEST",
                "id": ACCOUNT_ID,
            }
        if token == "aws:eks/getClusterVersions:getClusterVersions":
            if self.versions_error:  # the provider's answer to a failed call: the program's invoke raises
                return {}, [("", self.versions_error)]
            return {"clusterVersions": [_cluster_version(*entry) for entry in self.cluster_versions], "id": REGION}
        if token == "aws:eks/getAddonVersion:getAddonVersion":
            return _addon_version(args.args)
        if token == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws"}
        if token == "aws:ecr/getAuthorizationToken:getAuthorizationToken":
            return {
                "userName": "AWS",
                "password": "mock-token",
                "proxyEndpoint": f"https://{ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com",
                "authorizationToken": "x",
                "expiresAt": "2099-01-01T00:00:00Z",
                "id": REGION,
            }
        return {}


def addon_version(addon: str, kubernetes_version: str) -> str:
    """What the mocked DescribeAddonVersions (aws.eks.get_addon_version) answers: one version per add-on and
    Kubernetes minor, shaped like EKS's (made up, e.g. coredns on 1.35: v1.12.0-eksbuild.1)."""
    minor = int(kubernetes_version.split(".")[1])
    return f"v1.{minor - 23}.0-eksbuild.1" if addon == "coredns" else f"v{kubernetes_version}.0-eksbuild.1"


def _addon_version(args: dict[str, Any]) -> Any:
    addon, version = args.get("addonName", ""), args.get("kubernetesVersion", "")
    if addon not in ("coredns", "kube-proxy", "vpc-cni") or not version.startswith("1."):
        return {}, [("", f"reading EKS Add-On version info ({addon}, {version}): empty result")]
    return {
        "id": addon,
        "addonName": addon,
        "kubernetesVersion": version,
        "mostRecent": bool(args.get("mostRecent")),
        "version": addon_version(addon, version),
    }


def _not_found(what: str) -> tuple[dict, list[tuple[str, str]]]:
    # The provider's answer to a failed read: the program's invoke raises with this reason.
    return {}, [("", f"reading {what}: couldn't find resource")]


def _describe_cluster(existing: dict[str, ExistingCluster], args: dict[str, Any]) -> Any:
    cluster = existing.get(args.get("name", ""))
    if cluster is None:
        return _not_found(f"EKS Cluster ({args.get('name')})")
    return {
        "id": cluster.name,
        "name": cluster.name,
        "arn": f"arn:aws:eks:{REGION}:{ACCOUNT_ID}:cluster/{cluster.name}",
        "endpoint": cluster.endpoint,
        "status": "ACTIVE",
        "version": "1.34",
        "certificateAuthorities": [{"data": EKS_CA_DATA}],
        "identities": [{"oidcs": [{"issuer": cluster.issuer}]}],
        "enabledClusterLogTypes": ["audit", "api"] if cluster.audit_logging else ["api"],
    }


def _oidc_provider(existing: dict[str, ExistingCluster], args: dict[str, Any]) -> Any:
    cluster = next((c for c in existing.values() if c.issuer == args.get("url")), None)
    if cluster is None or not cluster.oidc_provider:
        return _not_found(f"IAM OIDC Provider (url: {args.get('url')})")
    return {
        "id": cluster.oidc_provider_arn,
        "arn": cluster.oidc_provider_arn,
        "url": cluster.issuer.removeprefix("https://"),
        "clientIdLists": list(cluster.audiences),
        "thumbprintLists": [],
        "tags": {},
    }


def _log_group(existing: dict[str, ExistingCluster], args: dict[str, Any]) -> Any:
    cluster = next((c for c in existing.values() if c.log_group_name == args.get("name")), None)
    if cluster is None or not cluster.log_group:
        return _not_found(f"CloudWatch Logs Log Group ({args.get('name')})")
    return {
        "id": cluster.log_group_name,
        "name": cluster.log_group_name,
        "arn": cluster.log_group_arn,
        "retentionInDays": 0,
        "kmsKeyId": "",
        "logGroupClass": "STANDARD",
        "creationTime": 1700000000000,
        "tags": {},
    }


_EXISTING_CLUSTER_CALLS = {
    "aws:eks/getCluster:getCluster": _describe_cluster,
    "aws:iam/getOpenIdConnectProvider:getOpenIdConnectProvider": _oidc_provider,
    "aws:cloudwatch/getLogGroup:getLogGroup": _log_group,
}


def engine_urn(stack: str, project: str, parent_urn: str, typ: str, name: str) -> str:
    """The URN the engine gives a resource: the parent's whole qualified type (its type part, every ancestor's type
    joined by `$`), unless the parent is the root stack (pulumi/pulumi `Deployment.generateURN` and `urn.New`)."""
    if parent_urn:
        qualified = parent_urn.split("::")[2]
        if qualified != "pulumi:pulumi:Stack":
            typ = f"{qualified}${typ}"
    return f"urn:pulumi:{stack}::{project}::{typ}::{name}"


def _alias(message: Any) -> RecordedAlias:
    if message.urn:
        return RecordedAlias(urn=message.urn)
    spec = message.spec
    return RecordedAlias(
        name=spec.name,
        type=spec.type,
        stack=spec.stack,
        project=spec.project,
        parent_urn=spec.parentUrn,
        no_parent=bool(spec.noParent),
    )


def _resource_references_as_urns(properties: struct_pb2.Struct) -> struct_pb2.Struct:
    """`properties` with every resource reference (a resource passed as an input, e.g. a security group to
    eks.Cluster) replaced by its URN: the mock monitor deserializes inputs in its own thread, where looking the
    resource up again fails (its future belongs to the program's event loop)."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            if value.get(rpc._special_sig_key) == rpc._special_resource_sig:
                return value["urn"]
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    result = struct_pb2.Struct()
    json_format.ParseDict(plain(json_format.MessageToDict(properties)), result)
    return result


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """Pulumi's mock resource monitor, recording every registration into `recorded`. `stack` and `project` name
    the URNs when the monitor serves another process (tests/support/package_plugin.py); by default they are the
    mocked program's."""

    def __init__(self, mocks: LabMocks, recorded: Recorded, stack: str | None = None, project: str | None = None):
        super().__init__(mocks)
        self.recorded = recorded
        self.stack = stack
        self.project = project

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        stack, project = self.stack or settings.get_stack(), self.project or settings.get_project()
        return engine_urn(stack, project, parent, type_, name)

    def RegisterResource(self, request):  # noqa: N802 (gRPC name)
        request.object.CopyFrom(_resource_references_as_urns(request.object))
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            registration = self.resources.get(response.urn)
            self.recorded.resources.append(
                Registration(
                    type=request.type,
                    name=request.name,
                    urn=response.urn,
                    inputs=rpc.deserialize_properties(request.object),
                    outputs=dict(registration.state) if registration else {},
                    parent=request.parent,
                    dependencies=list(request.dependencies),
                    custom=bool(request.custom),
                    remote=bool(request.remote),
                    provider=request.provider,
                    providers=dict(request.providers),
                    protect=bool(request.protect),
                    retain_on_delete=bool(request.retainOnDelete),
                    aliases=[_alias(alias) for alias in request.aliases],
                    ignore_changes=list(request.ignoreChanges),
                )
            )
        return response


def run_program(
    build: Callable[[], Any],
    config: dict[str, str] | None = None,
    preview: bool = False,
    stack: str = STACK,
    mocks: LabMocks | None = None,
) -> Recorded:
    """Run `build` as a Pulumi program under mocks; `config` holds full keys like "falco-eks-lab:clusterName"."""
    recorded = Recorded()
    settings.reset_options()
    _fresh_event_loop()
    pulumi.runtime.set_all_config(dict(config or {}))
    mocks = mocks or LabMocks()
    pulumi.runtime.set_mocks(
        mocks, project=PROJECT, stack=stack, preview=preview, monitor=RecordingMonitor(mocks, recorded)
    )

    @pulumi.runtime.test
    def _run():
        recorded.result = build()
        return pulumi.Output.from_input(None)

    _run()
    recorded.invokes = mocks.invokes
    return recorded


def _fresh_event_loop() -> None:
    """A new event loop for the next program; the previous one (kept open until now, so `resolve` could
    still read its outputs) is closed, or every program would leak its selector's file descriptors."""
    policy = asyncio.get_event_loop_policy()
    try:
        previous = policy.get_event_loop()
    except RuntimeError:
        previous = None
    if previous is not None and not previous.is_running() and not previous.is_closed():
        previous.close()
    policy.set_event_loop(policy.new_event_loop())


def resolve(output: Any) -> Any:
    """The value of an Output once the mocked program finished (None if unknown)."""
    if not isinstance(output, pulumi.Output):
        return output
    loop = asyncio.get_event_loop()
    return loop.run_until_complete(output.future())


def is_secret(output: Any) -> bool:
    if not isinstance(output, pulumi.Output):
        return False
    return bool(asyncio.get_event_loop().run_until_complete(output.is_secret()))


def unwrap_secret(value: Any) -> tuple[Any, bool]:
    """(plain value, whether the engine received it marked secret) for a registered input."""
    if isinstance(value, dict) and value.get(rpc._special_sig_key) == rpc._special_secret_sig:
        return value["value"], True
    return value, False


def run_falco(*, refusal_as_result: bool = False, **settings: Any) -> Recorded:
    """The Falco component on its own under mocks: ``Falco("falco", FalcoSettings(**settings))`` with a Kubernetes
    provider of its own (no cluster). With ``refusal_as_result``, a ConfigError of the settings or the component is
    the program's result (``Recorded.result``) instead of an error."""
    import pulumi_kubernetes as k8s

    from components.errors import ConfigError
    from components.falco import Falco, FalcoSettings

    def build() -> Falco | ConfigError:
        try:
            provider = k8s.Provider("cluster", kubeconfig="{}")
            return Falco("falco", FalcoSettings(**settings), opts=pulumi.ResourceOptions(provider=provider))
        except ConfigError as err:
            if not refusal_as_result:
                raise
            return err

    return run_program(build)
