"""AuditedCluster and LabVpc: the arguments' checks, and what the components register (under mocks)."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pulumi
import pulumi_aws as aws
import pytest
from pulumi.runtime import rpc
from pulumi_mocks import (
    EKS_CA_DATA,
    EKS_ENDPOINT,
    OIDC_ISSUER,
    OIDC_PROVIDER_ARN,
    LabMocks,
    Recorded,
    addon_version,
    is_secret,
    resolve,
    run_program,
    unwrap_secret,
)

from components.cluster import (
    CLOUDWATCH_RETENTION_DAYS,
    AuditedCluster,
    AuditedClusterSettings,
    ami_type_for,
    kubeconfig_document,
    node_architecture_of,
    same_principal,
)
from components.cluster.network import LabVpcArgs
from components.errors import ConfigError

CLUSTER = "eks:index:Cluster"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
ADDON = "aws:eks/addon:Addon"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
SUBNET = "aws:ec2/subnet:Subnet"
KMS_KEY = "arn:aws:kms:us-west-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def build(**overrides: Any) -> tuple[Recorded, AuditedCluster]:
    args = AuditedClusterSettings(**{"cluster_name": "falco-lab", **overrides})
    recorded = run_program(lambda: AuditedCluster("lab", args))
    return recorded, recorded.result


@pytest.fixture(scope="module")
def default() -> tuple[Recorded, AuditedCluster]:
    return build()


def urn_of(recorded: Recorded, typ: str, name: str | None = None) -> str:
    return recorded.one(typ, name).urn


# --- the audit log group -----------------------------------------------------------------------------


def test_log_group_is_the_one_eks_writes_to_with_the_default_retention(default):
    recorded, _ = default
    group = recorded.one(LOG_GROUP)
    assert group.inputs["name"] == "/aws/eks/falco-lab/cluster"
    assert group.inputs["retentionInDays"] == 7
    assert "kmsKeyId" not in group.inputs


def test_log_group_takes_the_retention_and_kms_key_given():
    recorded, _ = build(log_retention_days=30, log_kms_key_arn=KMS_KEY)
    group = recorded.one(LOG_GROUP)
    assert group.inputs["retentionInDays"] == 30
    assert group.inputs["kmsKeyId"] == KMS_KEY


def test_cluster_is_created_after_its_log_group(default):
    recorded, _ = default
    assert urn_of(recorded, LOG_GROUP) in recorded.one(CLUSTER).dependencies


def test_log_group_outputs(default):
    _, cluster = default
    assert resolve(cluster.log_group_name) == "/aws/eks/falco-lab/cluster"
    assert resolve(cluster.log_group_arn).endswith(":log-group:/aws/eks/falco-lab/cluster")


# --- eks.Cluster ---------------------------------------------------------------------------------------


def test_eks_cluster_inputs(default):
    recorded, _ = default
    inputs = recorded.one(CLUSTER).inputs
    assert inputs["name"] == "falco-lab"
    assert inputs["version"] == "1.35"
    assert inputs["enabledClusterLogTypes"] == ["audit"]
    assert inputs["createOidcProvider"] is True
    assert inputs["authenticationMode"] == "API"
    assert inputs["skipDefaultNodeGroup"] is True
    assert inputs["nodeAssociatePublicIpAddress"] is False
    assert inputs["endpointPrivateAccess"] is True
    assert inputs["upgradePolicy"] == {"supportType": "STANDARD"}


def test_vpc_cni_addon_enforces_network_policies(default):
    recorded, _ = default
    inputs = recorded.one(CLUSTER).inputs
    # The managed vpc-cni add-on (not the default self-managed CNI) with its network policy agent.
    assert inputs["useDefaultVpcCni"] is False
    assert inputs["vpcCniOptions"]["enableNetworkPolicy"] is True


def test_vpc_cni_logs_at_info_instead_of_pulumi_eks_debug(default):
    recorded, _ = default
    options = recorded.one(CLUSTER).inputs["vpcCniOptions"]
    # ipamd through the schema's logLevel; the CNI plugin through the add-on's env, which pulumi-eks lays over
    # its own DEBUG default (its schema has no pluginLogLevel).
    assert options["logLevel"] == "INFO"
    assert options["configurationValues"] == {"env": {"AWS_VPC_K8S_PLUGIN_LOG_LEVEL": "INFO"}}


# --- security groups ---------------------------------------------------------------------------------------


def test_pulumi_eks_makes_no_security_group_of_its_own(default):
    """Its node group (four rules) would sit on no node: the managed nodes get the cluster security group EKS
    creates. Its extra cluster group would only admit that unused node group."""
    recorded, _ = default
    inputs = recorded.one(CLUSTER).inputs
    assert inputs["skipDefaultSecurityGroups"] is True
    assert "clusterSecurityGroup" not in inputs
    assert "nodeSecurityGroup" not in inputs and "nodeSecurityGroupTags" not in inputs
    assert recorded.of_type(SECURITY_GROUP) == []


def test_nodes_use_the_cluster_security_group_eks_creates(default):
    recorded, _ = default
    node_group = recorded.one(NODE_GROUP).inputs
    template = recorded.one("aws:ec2/launchTemplate:LaunchTemplate").inputs
    # Neither names a security group nor allows SSH, so EKS puts its cluster security group on the nodes, which
    # admits all traffic between the nodes and the control plane's network interfaces.
    assert "remoteAccess" not in node_group
    assert not {"vpcSecurityGroupIds", "securityGroupNames", "networkInterfaces"} & set(template)


# --- CoreDNS -----------------------------------------------------------------------------------------------


def test_coredns_is_an_eks_addon_that_takes_over_the_self_managed_one(default):
    recorded, _ = default
    addon = recorded.one(ADDON).inputs
    assert addon["clusterName"] == "falco-lab"
    assert addon["addonName"] == "coredns"
    assert addon["resolveConflictsOnCreate"] == "OVERWRITE"
    assert addon["resolveConflictsOnUpdate"] == "OVERWRITE"
    assert addon["preserve"] is True


def test_coredns_comes_after_the_nodes_it_runs_on(default):
    recorded, _ = default
    # Without nodes its pods stay Pending, the add-on DEGRADED, and its creation waits until it times out.
    assert urn_of(recorded, NODE_GROUP) in recorded.one(ADDON).dependencies


@pytest.mark.parametrize("version", ["1.34", "1.35", "1.36"])
def test_coredns_version_follows_the_kubernetes_version(version):
    recorded, _ = build(kubernetes_version=version)
    assert recorded.one(ADDON).inputs["addonVersion"] == addon_version("coredns", version)
    (asked,) = [i.args for i in recorded.invokes if i.token == "aws:eks/getAddonVersion:getAddonVersion"]
    assert asked == {"addonName": "coredns", "kubernetesVersion": version, "mostRecent": True}


def test_coredns_addon_carries_the_tags():
    recorded, _ = build(tags={"team": "sec"})
    assert recorded.one(ADDON).inputs["tags"] == {"team": "sec"}


def test_extra_log_types_come_after_audit_without_repeats():
    recorded, _ = build(extra_log_types=("api", "audit", "authenticator", "api"))
    assert recorded.one(CLUSTER).inputs["enabledClusterLogTypes"] == ["audit", "api", "authenticator"]


def test_cluster_outputs_for_other_components(default):
    recorded, cluster = default
    assert resolve(cluster.cluster_name) == "falco-lab"
    assert resolve(cluster.oidc_provider_arn) == OIDC_PROVIDER_ARN
    assert resolve(cluster.oidc_issuer) == OIDC_ISSUER
    assert not resolve(cluster.oidc_issuer).startswith("https://")
    assert cluster.node_architecture == "amd64"
    kubeconfig = resolve(cluster.kubeconfig)
    assert json.loads(kubeconfig)["kind"] == "Config"
    assert is_secret(cluster.kubeconfig)


def test_kubernetes_provider_uses_the_kubeconfig_as_a_secret_and_waits_for_nodes(default):
    recorded, cluster = default
    provider = recorded.one("pulumi:providers:kubernetes")
    assert provider.parent == urn_of(recorded, "falco-eks:index:AuditedCluster")
    raw = provider.inputs["kubeconfig"]
    assert raw.get(rpc._special_sig_key) == rpc._special_secret_sig, "kubeconfig must reach the provider as a secret"
    assert json.loads(unwrap_secret(raw)[0])["clusters"][0]["name"] == "falco-lab"
    assert urn_of(recorded, NODE_GROUP) in provider.dependencies


# --- the managed node group ----------------------------------------------------------------------------


def test_managed_node_group_on_al2023_in_the_private_subnets(default):
    recorded, _ = default
    group = recorded.one(NODE_GROUP)
    inputs = group.inputs
    assert inputs["clusterName"] == "falco-lab"
    assert inputs["nodeGroupNamePrefix"] == "falco-lab-nodes-"
    assert inputs["amiType"] == "AL2023_x86_64_STANDARD"
    assert inputs["instanceTypes"] == ["t3.large"]
    assert inputs["capacityType"] == "ON_DEMAND"
    assert inputs["scalingConfig"] == {"desiredSize": 2, "minSize": 2, "maxSize": 2}
    private = sorted(f"{r.name}-id" for r in recorded.of_type(SUBNET) if "private" in r.name)
    assert sorted(inputs["subnetIds"]) == private
    # After the whole cluster (add-ons included) and after its role has every policy.
    assert urn_of(recorded, CLUSTER) in group.dependencies
    for attachment in recorded.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment"):
        assert attachment.urn in group.dependencies


def test_node_group_has_its_own_role_with_exactly_the_node_policies(default):
    recorded, _ = default
    role = recorded.one("aws:iam/role:Role")
    assert recorded.one(NODE_GROUP).inputs["nodeRoleArn"] == role.outputs["arn"]
    trust = json.loads(role.inputs["assumeRolePolicy"])
    assert trust["Statement"] == [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ]
    attached = sorted(
        a.inputs["policyArn"] for a in recorded.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    )
    assert attached == [
        "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
        "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
        "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
    ]


def test_graviton_instance_type_gets_arm64_nodes():
    recorded, cluster = build(node_instance_type="m7g.large", node_count=3, node_min_count=1, node_max_count=4)
    inputs = recorded.one(NODE_GROUP).inputs
    assert inputs["amiType"] == "AL2023_ARM_64_STANDARD"
    assert inputs["scalingConfig"] == {"desiredSize": 3, "minSize": 1, "maxSize": 4}
    assert cluster.node_architecture == "arm64"


@pytest.mark.parametrize(
    ("instance_type", "architecture"),
    [
        ("t3.large", "amd64"),
        ("m7i-flex.large", "amd64"),
        ("m6a.xlarge", "amd64"),
        ("g5.xlarge", "amd64"),  # the "g" is the GPU family, not Graviton
        ("g4dn.xlarge", "amd64"),
        ("t4g.large", "arm64"),
        ("m7g.large", "arm64"),
        ("c6gn.large", "arm64"),
        ("x2gd.large", "arm64"),
        ("g5g.xlarge", "arm64"),
        ("a1.large", "arm64"),
    ],
)
def test_node_architecture_from_instance_type(instance_type, architecture):
    assert node_architecture_of(instance_type) == architecture
    expected_ami = "AL2023_ARM_64_STANDARD" if architecture == "arm64" else "AL2023_x86_64_STANDARD"
    assert ami_type_for(architecture) == expected_ami


# --- the dedicated VPC ---------------------------------------------------------------------------------


def test_dedicated_vpc_with_public_and_private_subnets_in_two_zones(default):
    recorded, cluster = default
    vpc = recorded.one("aws:ec2/vpc:Vpc")
    assert vpc.inputs["cidrBlock"] == "10.0.0.0/16"
    assert vpc.inputs["enableDnsHostnames"] is True
    subnets = recorded.of_type(SUBNET)
    public = [s for s in subnets if "public" in s.name]
    private = [s for s in subnets if "private" in s.name]
    assert len(public) == 2 and len(private) == 2
    for group in (public, private):
        assert len({s.inputs["availabilityZone"] for s in group}) == 2
    for subnet in subnets:
        assert subnet.inputs["vpcId"] == "lab-network-vpc-id"
        assert subnet.inputs["mapPublicIpOnLaunch"] is False
    assert all(s.inputs["tags"]["kubernetes.io/role/elb"] == "1" for s in public)
    assert all(s.inputs["tags"]["kubernetes.io/role/internal-elb"] == "1" for s in private)
    networks = [ipaddress.ip_network(s.inputs["cidrBlock"]) for s in subnets]
    assert all(n.subnet_of(ipaddress.ip_network("10.0.0.0/16")) for n in networks)
    assert not any(a.overlaps(b) for i, a in enumerate(networks) for b in networks[i + 1 :])
    # The cluster gets the same VPC and subnets.
    inputs = recorded.one(CLUSTER).inputs
    assert inputs["vpcId"] == "lab-network-vpc-id"
    assert sorted(inputs["privateSubnetIds"]) == sorted(f"{s.name}-id" for s in private)
    assert sorted(inputs["publicSubnetIds"]) == sorted(f"{s.name}-id" for s in public)
    assert resolve(cluster.vpc_id) == "lab-network-vpc-id"


def test_one_nat_gateway_routes_the_private_subnets(default):
    recorded, _ = default
    nat = recorded.one("aws:ec2/natGateway:NatGateway")
    assert nat.inputs["subnetId"] == "lab-network-public-0-id"
    assert urn_of(recorded, "aws:ec2/internetGateway:InternetGateway") in nat.dependencies
    private_rt = recorded.one("aws:ec2/routeTable:RouteTable", "lab-network-private-rt")
    assert private_rt.inputs["routes"] == [{"cidrBlock": "0.0.0.0/0", "natGatewayId": "lab-network-nat-id"}]
    public_rt = recorded.one("aws:ec2/routeTable:RouteTable", "lab-network-public-rt")
    assert public_rt.inputs["routes"] == [{"cidrBlock": "0.0.0.0/0", "gatewayId": "lab-network-igw-id"}]
    associations = {
        a.inputs["subnetId"]: a.inputs["routeTableId"]
        for a in recorded.of_type("aws:ec2/routeTableAssociation:RouteTableAssociation")
    }
    assert associations == {
        "lab-network-private-0-id": "lab-network-private-rt-id",
        "lab-network-private-1-id": "lab-network-private-rt-id",
        "lab-network-public-0-id": "lab-network-public-rt-id",
        "lab-network-public-1-id": "lab-network-public-rt-id",
    }


def test_default_security_group_of_the_vpc_has_no_rules(default):
    recorded, _ = default
    group = recorded.one("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
    assert group.inputs.get("ingress", []) == [] and group.inputs.get("egress", []) == []


def test_callers_vpc_is_used_as_given_and_no_vpc_is_created():
    recorded, cluster = build(
        vpc_id="vpc-0abc", private_subnet_ids=["subnet-a", "subnet-b"], public_subnet_ids=["subnet-c", "subnet-d"]
    )
    assert recorded.of_type("aws:ec2/vpc:Vpc") == []
    assert recorded.of_type("falco-eks:index:LabVpc") == []
    assert recorded.of_type("aws:ec2/natGateway:NatGateway") == []
    inputs = recorded.one(CLUSTER).inputs
    assert inputs["vpcId"] == "vpc-0abc"
    assert inputs["privateSubnetIds"] == ["subnet-a", "subnet-b"]
    assert recorded.one(NODE_GROUP).inputs["subnetIds"] == ["subnet-a", "subnet-b"]
    assert resolve(cluster.vpc_id) == "vpc-0abc"


def test_every_child_is_under_the_component(default):
    recorded, _ = default
    top = recorded.one("falco-eks:index:AuditedCluster")
    for registration in recorded.resources:
        if registration is not top:
            assert top in recorded.parent_chain(registration), registration.name


# --- argument checks -------------------------------------------------------------------------------------


def bad(setting: str, **overrides: Any) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        AuditedClusterSettings(**{"cluster_name": "falco-lab", **overrides})
    assert caught.value.setting == setting
    assert str(caught.value).startswith(f"{setting}: ")
    return caught.value


@pytest.mark.parametrize("retention", [0, 2, 8, 366, 10000, True])
def test_retention_must_be_one_cloudwatch_accepts(retention):
    error = bad("log_retention_days", log_retention_days=retention)
    assert "3653" in str(error)


def test_every_cloudwatch_retention_is_accepted():
    for days in sorted(CLOUDWATCH_RETENTION_DAYS):
        assert AuditedClusterSettings(cluster_name="x", log_retention_days=days).log_retention_days == days


@pytest.mark.parametrize("count", [0, -1, 101, 2.5, "2"])
def test_node_count_must_be_a_whole_number_from_1(count):
    bad("node_count", node_count=count)


def test_node_min_and_max_must_bracket_the_count():
    bad("node_min_count", node_count=2, node_min_count=3)
    bad("node_max_count", node_count=2, node_max_count=1)


def test_unknown_log_type_is_refused_with_the_choices():
    error = bad("extra_log_types", extra_log_types=("api", "kube-apiserver"))
    assert "kube-apiserver" in str(error) and "controllerManager" in str(error)


def test_log_types_as_one_string_is_refused():
    bad("extra_log_types", extra_log_types="api")


@pytest.mark.parametrize("name", ["", "-lab", "lab cluster", "lab/1", "x" * 101])
def test_cluster_name_must_be_valid_for_eks(name):
    bad("cluster_name", cluster_name=name)


@pytest.mark.parametrize("version", ["1.2", "v1.35", "1.35.1", "latest", "1.28"])
def test_kubernetes_version_is_checked(version):
    bad("kubernetes_version", kubernetes_version=version)


@pytest.mark.parametrize("instance_type", ["t3", "large", "T3.LARGE", "t3.large "])
def test_instance_type_is_checked(instance_type):
    bad("node_instance_type", node_instance_type=instance_type)


def test_kms_key_must_be_a_key_arn():
    bad("log_kms_key_arn", log_kms_key_arn="alias/aws/logs")


def test_callers_network_needs_vpc_and_two_private_subnets():
    bad("vpc_id", private_subnet_ids=["subnet-a", "subnet-b"])
    bad("private_subnet_ids", vpc_id="vpc-1")
    bad("private_subnet_ids", vpc_id="vpc-1", private_subnet_ids=["subnet-a"])


def test_api_access_cidrs_are_checked():
    bad("api_public_access_cidrs", api_public_access_cidrs=("10.0.0.0/33",))
    bad("api_public_access_cidrs", api_public_access_cidrs=())


def test_vpc_cidr_is_checked():
    bad("vpc_cidr", vpc_cidr="10.0.0.0/24")
    bad("vpc_cidr", vpc_cidr="not-a-cidr")
    with pytest.raises(ConfigError):
        LabVpcArgs(cluster_name="x", cidr_block="10.0.0.1/16")


def test_node_group_name_prefix_fits_eks_limit_for_long_cluster_names():
    assert AuditedClusterSettings(cluster_name="lab").node_group_name_prefix == "lab-nodes-"
    long_name = AuditedClusterSettings(cluster_name="c" * 100).node_group_name_prefix
    assert len(long_name) + 26 <= 63


def test_args_are_normalised():
    args = AuditedClusterSettings(cluster_name="lab", extra_log_types=["scheduler", "scheduler"])  # type: ignore[arg-type]
    assert args.extra_log_types == ("scheduler",)
    assert args.log_types == ["audit", "scheduler"]
    assert args.log_group_name == "/aws/eks/lab/cluster"


# --- the nodes: IMDSv2, hop limit 1, the control plane's version ------------------------------------------

LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"


def test_nodes_require_imdsv2_with_a_hop_limit_of_one_so_pods_cannot_take_the_node_role(default):
    recorded, cluster = default
    template = recorded.one(LAUNCH_TEMPLATE)
    assert template.inputs["metadataOptions"] == {
        "httpEndpoint": "enabled",
        "httpTokens": "required",  # IMDSv2 only: no unauthenticated GET of the role's credentials
        "httpPutResponseHopLimit": 1,  # the token request from a pod's network namespace needs 2 hops
        "instanceMetadataTags": "disabled",
    }
    assert template.parent == urn_of(recorded, "falco-eks:index:AuditedCluster")
    launch = recorded.one(NODE_GROUP).inputs["launchTemplate"]
    assert launch == {"id": f"{template.name}-id", "version": "1"}  # the template's latest version
    assert "diskSize" not in recorded.one(NODE_GROUP).inputs  # EKS refuses it together with a launch template


def test_node_root_volume_is_the_usual_20_gib_gp3_encrypted(default):
    recorded, _ = default
    (device,) = recorded.one(LAUNCH_TEMPLATE).inputs["blockDeviceMappings"]
    assert device["deviceName"] == "/dev/xvda"
    assert device["ebs"] == {"volumeSize": 20, "volumeType": "gp3", "encrypted": "true", "deleteOnTermination": "true"}


def test_launch_template_tags_instances_and_volumes_with_the_stack_tags():
    tags = {"pulumi:project": "p", "pulumi:stack": "s"}
    recorded, _ = build(tags=tags)
    template = recorded.one(LAUNCH_TEMPLATE).inputs
    assert template["tags"] == tags
    assert template["tagSpecifications"] == [
        {"resourceType": "instance", "tags": tags},
        {"resourceType": "volume", "tags": tags},
    ]


@pytest.mark.parametrize("version", ["1.34", "1.35"])
def test_node_group_runs_the_control_planes_kubernetes_version(version):
    recorded, _ = build(kubernetes_version=version)
    assert recorded.one(CLUSTER).inputs["version"] == version
    node_group = recorded.one(NODE_GROUP)
    assert node_group.inputs["version"] == version
    # An upgrade changes both; the node group waits for the control plane.
    assert urn_of(recorded, CLUSTER) in node_group.dependencies


# --- the kubeconfig: current credentials, never a profile ----------------------------------------------


def test_kubeconfig_document_gets_its_token_from_the_aws_cli_with_current_credentials():
    document = kubeconfig_document(
        cluster_name="lab-dev", endpoint="https://x.eks.amazonaws.com", certificate_authority_data="Q0E=",
        region="eu-west-1",
    )
    assert document["clusters"] == [
        {"name": "lab-dev", "cluster": {"server": "https://x.eks.amazonaws.com", "certificate-authority-data": "Q0E="}}
    ]
    assert document["current-context"] == "lab-dev"
    assert document["contexts"] == [{"name": "lab-dev", "context": {"cluster": "lab-dev", "user": "lab-dev"}}]
    (user,) = document["users"]
    assert user["user"] == {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "aws",
            "args": ["--region", "eu-west-1", "eks", "get-token", "--cluster-name", "lab-dev", "--output", "json"],
            "interactiveMode": "Never",
        }
    }


def test_kubeconfig_document_assumes_the_role_it_is_given():
    document = kubeconfig_document(
        cluster_name="c", endpoint="https://e", certificate_authority_data="x", region="us-east-1",
        role_arn="arn:aws:iam::123456789012:role/Deployer",
    )
    args = document["users"][0]["user"]["exec"]["args"]
    assert args[-2:] == ["--role-arn", "arn:aws:iam::123456789012:role/Deployer"]


def test_stack_kubeconfig_names_no_profile_even_when_aws_profile_is_set(monkeypatch):
    # pulumi-eks copies AWS_PROFILE / aws:profile into the kubeconfig it hands its own provider; a
    # profile that is gone at `pulumi destroy` time would then stop the destroy.
    monkeypatch.setenv("AWS_PROFILE", "workshop-admin")
    recorded, cluster = build()
    stored = json.loads(unwrap_secret(recorded.one("pulumi:providers:kubernetes").inputs["kubeconfig"])[0])
    exported = json.loads(resolve(cluster.kubeconfig))
    assert stored == exported
    assert stored["clusters"][0]["cluster"] == {"server": EKS_ENDPOINT, "certificate-authority-data": EKS_CA_DATA}
    exec_entry = stored["users"][0]["user"]["exec"]
    assert exec_entry["args"] == [
        "--region", "us-west-2", "eks", "get-token", "--cluster-name", "falco-lab", "--output", "json",
    ]
    assert "env" not in exec_entry
    assert "profile" not in json.dumps(stored).lower()
    # Given explicitly, pulumi-eks's own provider takes no profile either.
    assert recorded.one(CLUSTER).inputs["providerCredentialOpts"] == {}


def test_kubeconfig_role_reaches_the_kubeconfig_and_pulumi_eks():
    role = "arn:aws:iam::123456789012:role/LabDeployer"
    recorded, cluster = build(kubeconfig_role_arn=role)
    assert json.loads(resolve(cluster.kubeconfig))["users"][0]["user"]["exec"]["args"][-2:] == ["--role-arn", role]
    assert recorded.one(CLUSTER).inputs["providerCredentialOpts"] == {"roleArn": role}


def test_kubeconfig_role_must_be_a_role_arn():
    bad("kubeconfig_role_arn", kubeconfig_role_arn="arn:aws:iam::123456789012:user/alice")


def test_an_explicit_aws_provider_serves_every_child_the_eks_component_and_the_invokes():
    """A company stack's provider that assumes a deployment role: everything AWS goes through it, and the
    kubeconfig (and pulumi-eks's own provider) authenticate as that role, not as the shell's identity."""
    role = "arn:aws:iam::210987654321:role/platform/Deployer"

    def program() -> AuditedCluster:
        provider = aws.Provider(
            "deployer", region="us-west-2", assume_roles=[aws.ProviderAssumeRoleArgs(role_arn=role)]
        )
        return AuditedCluster(
            "lab",
            AuditedClusterSettings(cluster_name="falco-lab", kubeconfig_role_arn=role),
            opts=pulumi.ResourceOptions(providers={"aws": provider}),
        )

    recorded = run_program(program)
    ref = recorded.one("pulumi:providers:aws").urn + "::"
    aws_children = [r for r in recorded.resources if r.type.startswith("aws:")]
    assert len(aws_children) > 20
    for child in aws_children:
        assert child.provider.startswith(ref), child.name
    # The remote eks.Cluster and the VPC component get the provider map, so their own children use it too.
    assert recorded.one(CLUSTER).providers["aws"].startswith(ref)
    assert recorded.one("falco-eks:index:LabVpc").providers["aws"].startswith(ref)
    invokes = [i for i in recorded.invokes if i.token.startswith("aws:")]
    assert {i.token for i in invokes} >= {"aws:index/getRegion:getRegion", "aws:index/getPartition:getPartition"}
    assert all(i.provider.startswith(ref) for i in invokes), [(i.token, i.provider) for i in invokes]
    exec_args = json.loads(resolve(recorded.result.kubeconfig))["users"][0]["user"]["exec"]["args"]
    assert exec_args[-2:] == ["--role-arn", role]
    assert recorded.one(CLUSTER).inputs["providerCredentialOpts"] == {"roleArn": role}
    # The Kubernetes provider the component makes is its own, built from that kubeconfig.
    kubeconfig = json.loads(unwrap_secret(recorded.one("pulumi:providers:kubernetes").inputs["kubeconfig"])[0])
    assert kubeconfig["users"][0]["user"]["exec"]["args"][-2:] == ["--role-arn", role]


# --- access for more identities --------------------------------------------------------------------------

ADMIN = "arn:aws:iam::123456789012:role/platform/OnCall"
VIEWER = "arn:aws:iam::123456789012:user/auditor"


def test_access_entries_give_admins_and_viewers_cluster_wide_policies():
    recorded, _ = build(cluster_admin_arns=(ADMIN,), cluster_viewer_arns=[VIEWER])
    entries = {r.inputs["principalArn"]: r for r in recorded.of_type("aws:eks/accessEntry:AccessEntry")}
    assert set(entries) == {ADMIN, VIEWER}
    eks_cluster = recorded.one(CLUSTER).urn
    for entry in entries.values():
        assert entry.inputs["clusterName"] == "falco-lab" and entry.inputs["type"] == "STANDARD"
        assert eks_cluster in entry.dependencies  # the cluster exists first
    associations = recorded.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
    policies = {r.inputs["principalArn"]: r.inputs for r in associations}
    assert policies[ADMIN]["policyArn"] == "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
    assert policies[VIEWER]["policyArn"] == "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy"
    assert all(p["accessScope"] == {"type": "cluster"} for p in policies.values())


def test_no_access_entries_by_default(default):
    recorded, _ = default
    assert recorded.of_type("aws:eks/accessEntry:AccessEntry") == []


@pytest.mark.parametrize(
    ("setting", "overrides", "says"),
    [
        ("cluster_admin_arns", {"cluster_admin_arns": ("arn:aws:sts::123456789012:assumed-role/OnCall/alice",)},
         "give the role's ARN"),
        ("cluster_admin_arns", {"cluster_admin_arns": ADMIN}, "not one string"),
        ("cluster_viewer_arns", {"cluster_viewer_arns": ("arn:aws:iam::123456789012:group/devs",)}, "role or user"),
        ("cluster_viewer_arns", {"cluster_admin_arns": (ADMIN,), "cluster_viewer_arns": (ADMIN,)}, "listed twice"),
    ],
)
def test_access_identities_are_checked(setting, overrides, says):
    assert says in str(bad(setting, **overrides))


# --- the cluster's creator -------------------------------------------------------------------------------

CREATOR_SESSION = "arn:aws:sts::123456789012:assumed-role/OnCall/alice@example.com"


@pytest.mark.parametrize(
    ("listed", "caller", "same"),
    [
        # A role's session names the role without its path; EKS takes the role's ARN with it.
        ("arn:aws:iam::123456789012:role/platform/OnCall", CREATOR_SESSION, True),
        ("arn:aws:iam::123456789012:role/OnCall", CREATOR_SESSION, True),
        ("arn:aws:iam::123456789012:role/oncall", CREATOR_SESSION, True),  # IAM names ignore case
        ("arn:aws:iam::123456789012:role/OnCallReadOnly", CREATOR_SESSION, False),
        ("arn:aws:iam::999999999999:role/OnCall", CREATOR_SESSION, False),
        ("arn:aws-cn:iam::123456789012:role/OnCall", CREATOR_SESSION, False),
        ("arn:aws:iam::123456789012:user/OnCall", CREATOR_SESSION, False),  # a user, not the role
        (
            "arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_Admin_0a1b",
            "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Admin_0a1b/alice",
            True,
        ),
        ("arn:aws:iam::123456789012:user/ops/alice", "arn:aws:iam::123456789012:user/ops/alice", True),
        ("arn:aws:iam::123456789012:user/alice", "arn:aws:iam::123456789012:user/ops/alice", True),
        ("arn:aws:iam::123456789012:user/alice", "arn:aws:iam::123456789012:user/bob", False),
        ("arn:aws:iam::123456789012:role/OnCall", "arn:aws:iam::123456789012:role/platform/OnCall", True),
        ("arn:aws:iam::123456789012:user/root", "arn:aws:iam::123456789012:root", False),
        ("arn:aws:iam::123456789012:user/alice", "arn:aws:sts::123456789012:federated-user/alice", False),
    ],
)
def test_same_principal_matches_account_kind_and_name(listed, caller, same):
    assert same_principal(listed, caller) is same


@pytest.mark.parametrize("setting", ["cluster_admin_arns", "cluster_viewer_arns"])
def test_the_creator_listed_for_an_access_entry_is_refused_with_what_to_do(setting):
    error = bad(
        setting, cluster_creator_arn=CREATOR_SESSION, **{setting: ("arn:aws:iam::123456789012:role/platform/OnCall",)}
    )
    message = str(error)
    assert "\n" not in message
    assert "arn:aws:iam::123456789012:role/platform/OnCall" in message and CREATOR_SESSION in message
    assert "already has cluster-admin as the cluster's creator" in message
    assert "remove it from the list, or deploy as another identity" in message


def test_other_identities_are_granted_access_beside_the_creator():
    recorded, _ = build(
        cluster_creator_arn=CREATOR_SESSION,
        cluster_admin_arns=("arn:aws:iam::123456789012:role/platform/Auditor",),
        cluster_viewer_arns=("arn:aws:iam::123456789012:user/OnCall",),
    )
    assert len(recorded.of_type("aws:eks/accessEntry:AccessEntry")) == 2


def test_a_root_creator_is_accepted_and_matches_no_listed_identity():
    args = AuditedClusterSettings(
        cluster_name="falco-lab",
        cluster_creator_arn="arn:aws:iam::123456789012:root",
        cluster_admin_arns=("arn:aws:iam::123456789012:role/Admin",),
    )
    assert args.cluster_admin_arns == ("arn:aws:iam::123456789012:role/Admin",)


CALLER_TOKEN = "aws:index/getCallerIdentity:getCallerIdentity"


def build_refused(mocks: LabMocks, **overrides: Any) -> Recorded:
    """`build`, with a refusal from inside the component coming back as the result."""
    args = AuditedClusterSettings(**{"cluster_name": "falco-lab", **overrides})

    def program() -> AuditedCluster | ConfigError:
        try:
            return AuditedCluster("lab", args)
        except ConfigError as err:
            return err

    return run_program(program, mocks=mocks)


@pytest.mark.parametrize("setting", ["cluster_admin_arns", "cluster_viewer_arns"])
def test_unset_the_creator_is_the_aws_providers_caller_and_listing_it_is_refused_before_any_child(setting):
    mocks = LabMocks()
    mocks.caller_arn = CREATOR_SESSION
    recorded = build_refused(mocks, **{setting: ("arn:aws:iam::123456789012:role/platform/OnCall",)})
    error = recorded.result
    assert isinstance(error, ConfigError) and error.setting == setting
    assert CREATOR_SESSION in str(error) and "already has cluster-admin as the cluster's creator" in str(error)
    assert [r.type for r in recorded.resources if r.custom] == []
    assert [i.token for i in recorded.invokes].count(CALLER_TOKEN) == 1


def test_the_creator_is_looked_up_only_when_a_list_could_name_it_or_it_is_not_given():
    mocks = LabMocks()
    mocks.caller_arn = CREATOR_SESSION
    nobody_listed = build_refused(mocks)
    assert isinstance(nobody_listed.result, AuditedCluster)
    assert CALLER_TOKEN not in [i.token for i in nobody_listed.invokes]
    mocks = LabMocks()
    given = build_refused(
        mocks, cluster_creator_arn=CREATOR_SESSION, cluster_viewer_arns=("arn:aws:iam::123456789012:user/OnCall",)
    )
    assert isinstance(given.result, AuditedCluster)
    assert CALLER_TOKEN not in [i.token for i in given.invokes]


@pytest.mark.parametrize(
    "creator", ["alice", "arn:aws:iam::123456789012:group/devs", "arn:aws:iam::12345:user/alice", ""]
)
def test_creator_must_be_an_identity_sts_names(creator):
    assert "GetCallerIdentity" in str(bad("cluster_creator_arn", cluster_creator_arn=creator))


# --- the API endpoint ------------------------------------------------------------------------------------

SG_INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"


def test_public_endpoint_takes_the_allowed_ranges_and_keeps_the_private_one(default):
    recorded, _ = default
    inputs = recorded.one(CLUSTER).inputs
    assert inputs["endpointPublicAccess"] is True
    assert inputs["endpointPrivateAccess"] is True
    assert inputs["publicAccessCidrs"] == ["0.0.0.0/0"]
    assert recorded.of_type(SG_INGRESS) == []


def test_private_only_endpoint_has_no_public_access_and_admits_the_given_ranges_on_443():
    recorded, _ = build(api_private_only=True, api_private_access_cidrs=("10.20.0.0/16", "fd00::/8"))
    inputs = recorded.one(CLUSTER).inputs
    assert inputs["endpointPublicAccess"] is False
    assert inputs["endpointPrivateAccess"] is True
    assert "publicAccessCidrs" not in inputs  # pulumi-eks refuses ranges without a public endpoint
    rules = sorted((r.inputs for r in recorded.of_type(SG_INGRESS)), key=lambda r: str(r.get("cidrIpv4")))
    assert [(r.get("cidrIpv4"), r.get("cidrIpv6")) for r in rules] == [("10.20.0.0/16", None), (None, "fd00::/8")]
    group = recorded.one(SECURITY_GROUP)
    for rule in rules:
        assert (rule["ipProtocol"], rule["fromPort"], rule["toPort"]) == ("tcp", 443, 443)
        assert rule["securityGroupId"] == f"{group.name}-id"  # the mocked ID of the endpoint's own group


def test_private_access_ranges_reach_only_the_endpoint_through_a_group_of_their_own():
    recorded, _ = build(api_private_access_cidrs=("10.20.0.0/16",))
    group = recorded.one(SECURITY_GROUP)
    cluster = recorded.one(CLUSTER).inputs
    # The endpoint's extra group (pulumi-eks's clusterSecurityGroup), not the one EKS creates, which every node
    # (and every pod address) carries too.
    assert cluster["clusterSecurityGroup"] == group.urn
    assert cluster["skipDefaultSecurityGroups"] is True
    assert group.inputs["vpcId"] == resolve(recorded.result.vpc_id)
    assert group.inputs["revokeRulesOnDelete"] is True
    assert "ingress" not in group.inputs and "egress" not in group.inputs  # the rules are their own resources
    assert len(recorded.of_type(SG_INGRESS)) == 1


def test_private_only_endpoint_needs_the_ranges_pulumi_connects_from():
    error = bad("api_private_access_cidrs", api_private_only=True)
    assert "kubectl" in str(error)


def test_public_ranges_with_a_private_only_endpoint_are_refused():
    bad(
        "api_public_access_cidrs",
        api_private_only=True,
        api_private_access_cidrs=("10.0.0.0/8",),
        api_public_access_cidrs=("203.0.113.0/24",),
    )


def test_private_access_ranges_are_checked():
    bad("api_private_access_cidrs", api_private_access_cidrs=("10.0.0.1/8",))
    bad("api_private_access_cidrs", api_private_access_cidrs="10.0.0.0/8")
    bad("api_private_only", api_private_only="yes", api_private_access_cidrs=("10.0.0.0/8",))
