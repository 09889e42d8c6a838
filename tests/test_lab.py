"""FalcoEksLab, the umbrella: its arguments, that everything hangs under it, and how the parts are wired.

The lab is AuditedCluster plus FalcoDetection (the existing-cluster component, here given the cluster's facts)."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws
import pytest
from pulumi_mocks import OIDC_PROVIDER_ARN, Recorded, is_secret, resolve, run_program

from components import AuditedCluster, AuditedClusterSettings, AuditForwarder, AuditForwarderArgs, Falco, FalcoSettings
from components.args import AuditSource, ForwarderBuild
from components.errors import ConfigError
from components.forwarding.audit_stream import KinesisSettings
from components.lab import FalcoEksLab, FalcoEksLabArgs

LAB = "falco-eks:index:FalcoEksLab"
DETECTION = "falco-eks:index:FalcoDetection"
RELEASE = "kubernetes:helm.sh/v3:Release"
WEBHOOK_URL = "http://falco-k8saudit-k8saudit-webhook-headless.falco.svc.cluster.local:9765/k8s-audit"


def lab_args(**overrides: Any) -> FalcoEksLabArgs:
    cluster = overrides.pop("cluster", AuditedClusterSettings(cluster_name="falco-lab"))
    return FalcoEksLabArgs(cluster=cluster, **overrides)


def build(**overrides: Any) -> tuple[Recorded, FalcoEksLab]:
    args = lab_args(**overrides)
    recorded = run_program(lambda: FalcoEksLab("lab", args))
    return recorded, recorded.result


@pytest.fixture(scope="module")
def default() -> tuple[Recorded, FalcoEksLab]:
    return build(falco=FalcoSettings(admin_identities=("arn:aws:iam::123456789012:role/Admin",)))


def test_every_resource_hangs_under_the_lab(default):
    recorded, _ = default
    lab = recorded.one(LAB)
    assert lab.parent.endswith("::falco-eks-lab-test"), "the umbrella is a child of the stack itself"
    others = [r for r in recorded.resources if r is not lab]
    assert len(others) > 30
    for registration in others:
        assert lab in recorded.parent_chain(registration), f"{registration.type} {registration.name}"


def test_the_lab_is_the_cluster_plus_the_detection_component(default):
    recorded, _ = default
    lab_urn = recorded.one(LAB).urn
    for typ in ("falco-eks:index:AuditedCluster", DETECTION):
        assert recorded.one(typ).parent == lab_urn, typ
    detection_urn = recorded.one(DETECTION).urn
    for typ in ("falco-eks:index:Falco", "falco-eks:index:AuditForwarder"):
        assert recorded.one(typ).parent == detection_urn, typ


def test_the_detection_uses_the_clusters_kubernetes_provider_and_looks_nothing_up(default):
    recorded, lab = default
    provider = recorded.one("pulumi:providers:kubernetes")
    assert provider.parent == recorded.one("falco-eks:index:AuditedCluster").urn
    kubernetes = [r for r in recorded.resources if r.type.startswith("kubernetes:")]
    assert len(kubernetes) > 10
    for registration in kubernetes:
        assert registration.provider.startswith(provider.urn + "::"), registration.name
    assert lab.detection.kubernetes_provider is None  # it made none of its own


def test_forwarder_waits_for_both_falco_releases(default):
    recorded, _ = default
    releases = recorded.of_type(RELEASE)
    assert len(releases) == 2
    forwarder = recorded.one("falco-eks:index:AuditForwarder")
    assert {r.urn for r in releases} <= set(forwarder.dependencies)


def test_forwarder_gets_the_clusters_log_group_and_oidc_provider(default):
    recorded, _ = default
    policy = json.loads(recorded.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    resources = [r for statement in policy["Statement"] for r in statement["Resource"]]
    assert "arn:aws:logs:us-west-2:123456789012:log-group:/aws/eks/falco-lab/cluster" in resources
    irsa = next(r for r in recorded.of_type("aws:iam/role:Role") if r.name == "lab-forwarder-irsa")
    trust = json.loads(irsa.inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"]["Federated"] == OIDC_PROVIDER_ARN


def test_forwarder_sends_to_falcos_webhook_and_reads_the_region(default):
    recorded, _ = default
    container = recorded.one("kubernetes:apps/v1:Deployment").inputs["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    assert args[args.index("--falco-url") + 1] == WEBHOOK_URL
    assert args[args.index("--log-group") + 1] == "/aws/eks/falco-lab/cluster"
    assert args[args.index("--region") + 1] == "us-west-2"


def test_admin_identities_reach_falcos_audit_rules(default):
    recorded, _ = default
    values = json.dumps([r.inputs.get("values") for r in recorded.of_type(RELEASE)])
    assert "arn:aws:sts::123456789012:assumed-role/Admin/" in values


def test_the_callers_aws_provider_serves_the_whole_lab():
    def program() -> FalcoEksLab:
        provider = aws.Provider("company", region="us-west-2")
        return FalcoEksLab("lab", lab_args(), opts=pulumi.ResourceOptions(providers=[provider]))

    recorded = run_program(program)
    ref = recorded.one("pulumi:providers:aws").urn + "::"
    assert all(r.provider.startswith(ref) for r in recorded.resources if r.type.startswith("aws:"))
    assert recorded.one("eks:index:Cluster").providers["aws"].startswith(ref)
    assert all(i.provider.startswith(ref) for i in recorded.invokes if i.token.startswith("aws:"))
    k8s_ref = recorded.one("pulumi:providers:kubernetes").urn + "::"  # the cluster's own
    assert all(r.provider.startswith(k8s_ref) for r in recorded.resources if r.type.startswith("kubernetes:"))


def test_falco_settings_reach_the_releases():
    recorded, lab = build(falco=FalcoSettings(chart_version="9.0.0", sidekick_ui=False))
    assert {r.inputs["version"] for r in recorded.of_type(RELEASE)} == {"9.0.0"}
    assert recorded.of_type("random:index/randomPassword:RandomPassword") == []
    assert lab.falco_ui_password is None
    assert not {"falcoUiCommand", "falcoUiPassword", "falcoUiUsername"} & set(lab.outputs())


def test_cluster_admins_count_as_admin_identities_for_falcos_rules():
    admin = "arn:aws:iam::123456789012:role/platform/OnCall"
    recorded, _ = build(cluster=AuditedClusterSettings(cluster_name="falco-lab", cluster_admin_arns=(admin,)))
    values = json.dumps([r.inputs.get("values") for r in recorded.of_type(RELEASE)])
    assert "arn:aws:sts::123456789012:assumed-role/OnCall/" in values


def test_arm64_nodes_get_an_arm64_forwarder_image():
    recorded, _ = build(cluster=AuditedClusterSettings(cluster_name="falco-lab", node_instance_type="t4g.large"))
    assert recorded.one("docker-build:index:Image").inputs["platforms"] == ["linux/arm64"]


def test_a_given_forwarder_image_is_run_without_a_build():
    image = "123456789012.dkr.ecr.us-west-2.amazonaws.com/forwarder:1.0"
    recorded, lab = build(forwarder_image=image)
    assert recorded.of_type("docker-build:index:Image") == []
    assert resolve(lab.forwarder_image) == image


def test_outputs_the_stack_exports(default):
    _, lab = default
    outputs = lab.outputs()
    assert resolve(outputs["clusterName"]) == "falco-lab"
    assert resolve(outputs["auditLogGroupName"]) == "/aws/eks/falco-lab/cluster"
    assert resolve(outputs["falcoWebhookUrl"]) == WEBHOOK_URL
    assert resolve(outputs["falcoNamespace"]) == "falco"
    assert resolve(outputs["forwarderRoleArn"]).startswith("arn:aws:iam::123456789012:role/")
    assert resolve(outputs["forwarderNamespace"]) == "falco-forwarder"
    assert "kubectl" in resolve(outputs["forwarderLogsCommand"])
    assert "9090" in resolve(outputs["forwarderMetricsCommand"])
    assert "port-forward" in resolve(outputs["falcoUiCommand"])
    assert "auditStreamArn" not in outputs  # polling
    assert outputs["falcoUiUsername"] == "admin"
    assert is_secret(outputs["kubeconfig"])
    assert is_secret(outputs["falcoUiPassword"])


def test_a_lab_with_kinesis_subscribes_its_own_log_group_and_destroys_the_filter_first():
    recorded, lab = build(audit_source="kinesis", kinesis=KinesisSettings(shard_count=1))
    group = recorded.one("aws:cloudwatch/logGroup:LogGroup")
    subscription = recorded.one("aws:cloudwatch/logSubscriptionFilter:LogSubscriptionFilter")
    assert subscription.inputs["logGroup"] == "/aws/eks/falco-lab/cluster"
    # Deleted before the log group (and the cluster that writes to it), whose name it takes.
    assert group.urn in subscription.dependencies
    stream = recorded.one("aws:kinesis/stream:Stream")
    assert stream.inputs["streamModeDetails"] == {"streamMode": "PROVISIONED"} and stream.inputs["shardCount"] == 1
    assert resolve(lab.outputs()["auditStreamArn"]) == stream.outputs["arn"]
    container = recorded.one("kubernetes:apps/v1:Deployment").inputs["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:2] == ["--source", f"kinesis:{stream.outputs['arn']}"]
    lab_urn = recorded.one(LAB).urn
    assert all(recorded.one(LAB) in recorded.parent_chain(r) for r in recorded.resources if r.urn != lab_urn)


# --- argument checks -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "overrides"),
    [
        ("forwarder_image", {"forwarder_image": " "}),
        ("forwarder_build", {"forwarder_build": "kaniko"}),
        ("cluster", {"cluster": {"cluster_name": "falco-lab"}}),
        ("falco", {"falco": {"sidekick_ui": False}}),
        ("audit_source", {"audit_source": "push"}),
        ("kinesis", {"kinesis": KinesisSettings(shard_count=4)}),  # only with audit_source "kinesis"
    ],
)
def test_bad_arguments_are_refused_by_field(setting, overrides):
    with pytest.raises(ConfigError) as caught:
        lab_args(**overrides)
    assert caught.value.setting == setting


def test_the_forwarder_build_is_read_from_its_name():
    assert lab_args(forwarder_build="source").forwarder_build is ForwarderBuild.SOURCE
    assert lab_args(audit_source="kinesis").audit_source is AuditSource.KINESIS


def test_bad_arguments_register_nothing():
    def attempt() -> ConfigError | None:
        try:
            FalcoEksLab("lab", lab_args(forwarder_build="kaniko"))
        except ConfigError as err:
            return err
        return None

    recorded = run_program(attempt)
    assert isinstance(recorded.result, ConfigError)
    assert recorded.resources == []


def test_components_compose_without_the_umbrella_in_a_company_stack():
    """The README's reuse example: the caller's VPC and KMS key, its own image, no FalcoEksLab."""

    def company_stack() -> AuditForwarder:
        cluster = AuditedCluster(
            "prod",
            AuditedClusterSettings(
                cluster_name="prod-eu",
                node_instance_type="m7g.large",
                node_count=3,
                log_retention_days=90,
                extra_log_types=("authenticator",),
                log_kms_key_arn=pulumi.Output.from_input(
                    "arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
                ),
                vpc_id="vpc-0company",
                private_subnet_ids=["subnet-a", "subnet-b", "subnet-c"],
                api_public_access_cidrs=("203.0.113.0/24",),
                tags={"team": "platform"},
            ),
        )
        falco = Falco(
            "falco",
            FalcoSettings(admin_identities=("arn:aws:iam::123456789012:role/PlatformAdmin",)),
            opts=pulumi.ResourceOptions(provider=cluster.provider),
        )
        return AuditForwarder(
            "audit-forwarder",
            AuditForwarderArgs(
                log_group_name=cluster.log_group_name,
                log_group_arn=cluster.log_group_arn,
                oidc_provider_arn=cluster.oidc_provider_arn,
                oidc_issuer=cluster.oidc_issuer,
                region="eu-central-1",
                falco_url=falco.webhook_url,
                falco_namespace=falco.namespace,
                falco_pod_labels=falco.audit_pod_labels,
                falco_port=falco.webhook_port,
                node_architecture=cluster.node_architecture,
                image="123456789012.dkr.ecr.eu-central-1.amazonaws.com/audit-forwarder:1.0",
            ),
            opts=pulumi.ResourceOptions(providers=[cluster.provider], depends_on=falco.releases),
        )

    recorded = run_program(company_stack)
    assert recorded.of_type(LAB) == []
    assert recorded.of_type("aws:ec2/vpc:Vpc") == []
    group = recorded.one("aws:cloudwatch/logGroup:LogGroup").inputs
    assert group["kmsKeyId"].endswith(":key/1234abcd-12ab-34cd-56ef-1234567890ab")
    assert group["tags"] == {"team": "platform"}
    cluster = recorded.one("eks:index:Cluster").inputs
    assert cluster["enabledClusterLogTypes"] == ["audit", "authenticator"]
    assert cluster["publicAccessCidrs"] == ["203.0.113.0/24"]
    assert recorded.one("aws:eks/nodeGroup:NodeGroup").inputs["subnetIds"] == ["subnet-a", "subnet-b", "subnet-c"]
    assert resolve(recorded.result.image) == "123456789012.dkr.ecr.eu-central-1.amazonaws.com/audit-forwarder:1.0"


def _keys(value: Any) -> list[str]:
    """Every mapping key anywhere in `value` (Helm values), lower-cased."""
    if isinstance(value, dict):
        return [str(k).lower() for k in value] + [k for v in value.values() for k in _keys(v)]
    if isinstance(value, list):
        return [k for v in value for k in _keys(v)]
    return []


def test_no_pod_of_the_lab_needs_the_instance_metadata_service(default):
    # The nodes answer metadata requests from the host only (IMDSv2, hop limit 1: test_cluster.py).
    # The forwarder: credentials from IRSA, the region given, the metadata fallback switched off.
    recorded, _ = default
    pod = recorded.one("kubernetes:apps/v1:Deployment").inputs["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["AWS_EC2_METADATA_DISABLED"] == "true"
    assert env["AWS_REGION"] == "us-west-2"
    account = recorded.one("kubernetes:core/v1:ServiceAccount").inputs["metadata"]["annotations"]
    assert account["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")
    assert not pod.get("hostNetwork")
    # Falco, falcoctl and Falcosidekick: no AWS output or credentials configured in either release, so
    # nothing in them asks the metadata service for a role.
    for release in recorded.of_type(RELEASE):
        keys = _keys(release.inputs["values"])
        assert "driver" in keys and "falcoctl" in keys  # the values themselves, not a wrapper
        assert not [k for k in keys if k in ("aws", "hostnetwork") or k.startswith("aws_")], release.name
