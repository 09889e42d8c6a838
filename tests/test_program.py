"""The whole stack program (__main__.py) under mocks: it reads config, builds the lab and exports its outputs."""

from __future__ import annotations

import json
import runpy
from pathlib import Path
from typing import Any

import pulumi
import pytest
from pulumi_mocks import ACCOUNT_ID, LabMocks, Recorded, is_secret, resolve, run_program

from components.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
PROGRAM = ROOT / "__main__.py"
PROJECT = "falco-eks-lab"
DEPLOYER_ARN = f"arn:aws:iam::{ACCOUNT_ID}:user/test"  # what the mocked get_caller_identity answers

EXPORTS = {
    "clusterName",
    "kubeconfig",
    "auditLogGroupName",
    "falcoNamespace",
    "falcoWebhookUrl",
    "falcoUiCommand",
    "falcoUiUsername",
    "falcoUiPassword",
    "forwarderRoleArn",
    "forwarderNamespace",
    "forwarderImage",
    "forwarderLogsCommand",
    "forwarderMetricsCommand",
}


def run_stack(
    monkeypatch: pytest.MonkeyPatch,
    settings: dict[str, str],
    stack: str = "test",
    mocks: LabMocks | None = None,
) -> tuple[Recorded, dict[str, Any]]:
    """Run __main__.py as Pulumi would, as stack `stack` with the config `settings` (project keys unprefixed).

    Returns the registrations and what the program passed to pulumi.export; an exception the program
    raised comes back as the Recorded's result, so the test still sees what was registered before it.
    """
    exported: dict[str, Any] = {}
    monkeypatch.setattr(pulumi, "export", lambda name, value: exported.__setitem__(name, value))
    config = {(k if ":" in k else f"{PROJECT}:{k}"): v for k, v in settings.items()}

    def program() -> Exception | None:
        try:
            runpy.run_path(str(PROGRAM), run_name="__main__")
        except Exception as err:  # handed to the test to assert on
            return err
        return None

    return run_program(program, config=config, stack=stack, mocks=mocks), exported


@pytest.fixture(scope="module")
def lab_stack() -> tuple[Recorded, dict[str, Any]]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        return run_stack(monkeypatch, {"aws:region": "us-west-2", "clusterName": "workshop-1"})


def test_program_runs_and_exports_the_outputs(lab_stack):
    recorded, exported = lab_stack
    assert recorded.result is None
    assert set(exported) == EXPORTS
    assert resolve(exported["clusterName"]) == "workshop-1"
    assert resolve(exported["auditLogGroupName"]) == "/aws/eks/workshop-1/cluster"
    assert json.loads(resolve(exported["kubeconfig"]))["kind"] == "Config"
    assert resolve(exported["falcoWebhookUrl"]).endswith(":9765/k8s-audit")
    assert resolve(exported["forwarderRoleArn"]).startswith(f"arn:aws:iam::{ACCOUNT_ID}:role/")
    assert resolve(exported["forwarderNamespace"]) == "falco-forwarder"
    assert resolve(exported["forwarderImage"])


def test_secrets_are_exported_as_secrets(lab_stack):
    _, exported = lab_stack
    assert is_secret(exported["kubeconfig"])
    assert is_secret(exported["falcoUiPassword"])
    assert not is_secret(exported["clusterName"])


def test_program_builds_one_umbrella_holding_everything(lab_stack):
    recorded, _ = lab_stack
    lab = recorded.one("falco-eks:index:FalcoEksLab")
    for registration in recorded.resources:
        if registration is not lab:
            assert lab in recorded.parent_chain(registration), f"{registration.type} {registration.name}"
    cluster = recorded.one("eks:index:Cluster").inputs
    assert cluster["name"] == "workshop-1"
    assert "audit" in cluster["enabledClusterLogTypes"]


def test_deployer_identity_reaches_the_admin_access_rule(lab_stack):
    recorded, _ = lab_stack
    values = json.dumps([r.inputs.get("values") for r in recorded.of_type("kubernetes:helm.sh/v3:Release")])
    assert DEPLOYER_ARN in values


def test_config_settings_reach_the_resources(monkeypatch):
    recorded, exported = run_stack(
        monkeypatch,
        {
            "aws:region": "us-west-2",
            "auditLogRetentionDays": "14",
            "extraLogTypes": '["api"]',
            "nodeInstanceType": "m7g.large",
            "nodeCount": "1",
            "falcoSidekickUi": "false",
            "forwarderBuild": "source",
        },
    )
    assert recorded.result is None
    assert recorded.one("aws:cloudwatch/logGroup:LogGroup").inputs["retentionInDays"] == 14
    assert recorded.one("eks:index:Cluster").inputs["enabledClusterLogTypes"] == ["audit", "api"]
    node_group = recorded.one("aws:eks/nodeGroup:NodeGroup").inputs
    assert node_group["amiType"] == "AL2023_ARM_64_STANDARD"
    assert node_group["scalingConfig"]["desiredSize"] == 1
    assert recorded.of_type("docker-build:index:Image") == []
    assert not {"falcoUiCommand", "falcoUiPassword", "falcoUiUsername"} & set(exported)


def test_reuse_settings_reach_the_resources(monkeypatch):
    """Access for more identities, the kubeconfig's role from the AWS provider's, and the mirrors."""
    role = "arn:aws:iam::123456789012:role/ci/Deployer"
    viewer = "arn:aws:iam::123456789012:user/auditor"
    recorded, exported = run_stack(
        monkeypatch,
        {
            "aws:region": "us-west-2",
            "aws:assumeRoles": json.dumps([{"roleArn": role, "sessionName": "pulumi"}]),
            "clusterViewerArns": json.dumps([viewer]),
            "falcoChartRepository": "oci://registry.example.com/charts",
            "imageRegistry": "registry.example.com/hub",
        },
    )
    assert recorded.result is None
    assert json.loads(resolve(exported["kubeconfig"]))["users"][0]["user"]["exec"]["args"][-2:] == ["--role-arn", role]
    assert recorded.one("aws:eks/accessEntry:AccessEntry").inputs["principalArn"] == viewer
    for release in recorded.of_type("kubernetes:helm.sh/v3:Release"):
        assert release.inputs["chart"] == "oci://registry.example.com/charts/falco"
        assert release.inputs["values"]["image"]["registry"] == "registry.example.com/hub"


def test_the_kinesis_audit_source_comes_up_with_the_stack(monkeypatch):
    recorded, exported = run_stack(
        monkeypatch, {"aws:region": "us-west-2", "auditSource": "kinesis", "auditEventsPerSecond": "4000"}
    )
    assert recorded.result is None
    stream = recorded.one("aws:kinesis/stream:Stream")
    assert stream.inputs["streamModeDetails"] == {"streamMode": "ON_DEMAND"}
    assert stream.inputs["tags"] == {"pulumi:project": PROJECT, "pulumi:stack": "test"}
    assert set(exported) == EXPORTS | {"auditStreamArn"}
    assert resolve(exported["auditStreamArn"]) == stream.outputs["arn"]
    audit = next(r for r in recorded.of_type("kubernetes:helm.sh/v3:Release") if r.inputs["name"] == "falco-k8saudit")
    assert audit.inputs["values"]["controller"]["deployment"]["replicas"] == 4
    args = recorded.one("kubernetes:apps/v1:Deployment").inputs["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:2] == ["--source", f"kinesis:{stream.outputs['arn']}"]
    assert args[args.index("--falco-connections") + 1] == "8"


def test_alert_outputs_come_up_with_the_stack(monkeypatch):
    recorded, exported = run_stack(
        monkeypatch,
        {"aws:region": "us-west-2", "alertSnsTopic": "create", "alertLogGroup": "create", "falcoSidekickUi": "false"},
    )
    assert recorded.result is None
    assert set(exported) == (EXPORTS - {"falcoUiCommand", "falcoUiUsername", "falcoUiPassword"}) | {
        "alertTopicArn", "alertLogGroupName", "sidekickRoleArn"
    }
    topic = recorded.one("aws:sns/topic:Topic")
    assert resolve(exported["alertTopicArn"]) == topic.outputs["arn"]
    assert topic.inputs["tags"] == {"pulumi:project": PROJECT, "pulumi:stack": "test"}
    assert resolve(exported["alertLogGroupName"]) == "/falco-eks/falco-eks-lab-test/alerts"
    syscall = next(r for r in recorded.of_type("kubernetes:helm.sh/v3:Release") if r.inputs["name"] == "falco")
    sidekick = syscall.inputs["values"]["falcosidekick"]
    assert sidekick["enabled"] is True and sidekick["webui"] == {"enabled": False}
    assert sidekick["config"]["aws"]["rolearn"] == resolve(exported["sidekickRoleArn"])


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("auditLogRetentionDays", "8"),
        ("nodeCount", "0"),
        ("extraLogTypes", '["api", "kubelet"]'),
        ("clusterName", "bad name!"),
        ("forwarderBuild", "podman"),
        ("auditSource", "push"),
        ("kinesisShardCount", "3"),  # without auditSource kinesis
        ("alertSnsTopic", "arn:aws:sns:eu-west-1:123456789012:paging"),  # another region than the stack's
        ("alertSnsTopic", f"arn:aws:sns:us-west-2:{ACCOUNT_ID}:missing"),  # not there
        ("alertSlackSecret", "Slack_URL"),
    ],
)
def test_bad_config_is_refused_by_name_before_anything_is_created(monkeypatch, key, value):
    recorded, exported = run_stack(monkeypatch, {"aws:region": "us-west-2", key: value})
    error = recorded.result
    assert isinstance(error, pulumi.RunError)
    assert f"invalid stack configuration: {key}: " in str(error)
    assert isinstance(error.__cause__, ConfigError) and error.__cause__.setting == key
    assert recorded.resources == []
    assert exported == {}


@pytest.mark.parametrize(
    ("caller", "listed"),
    [
        (DEPLOYER_ARN, DEPLOYER_ARN),
        # A session of a role with a path: the caller identity names the role without it.
        (f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/Deployer/pulumi", f"arn:aws:iam::{ACCOUNT_ID}:role/ci/Deployer"),
    ],
)
def test_the_deployer_as_cluster_admin_is_refused_before_anything_is_created(monkeypatch, caller, listed):
    mocks = LabMocks()
    mocks.caller_arn = caller
    settings = {"aws:region": "us-west-2", "clusterAdminArns": json.dumps([listed])}
    recorded, exported = run_stack(monkeypatch, settings, mocks=mocks)
    error = recorded.result
    assert isinstance(error, pulumi.RunError)
    assert str(error).startswith(f"invalid stack configuration: clusterAdminArns: {listed} is the identity")
    assert "already has cluster-admin as the cluster's creator" in str(error)
    assert "\n" not in str(error)
    assert recorded.resources == []
    assert exported == {}


def test_another_identity_as_cluster_admin_gets_its_access_entry(monkeypatch):
    mocks = LabMocks()
    mocks.caller_arn = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/Deployer/pulumi"
    admin = f"arn:aws:iam::{ACCOUNT_ID}:role/ci/DeployerReadOnly"
    settings = {"aws:region": "us-west-2", "clusterAdminArns": json.dumps([admin])}
    recorded, _ = run_stack(monkeypatch, settings, mocks=mocks)
    assert recorded.result is None
    assert recorded.one("aws:eks/accessEntry:AccessEntry").inputs["principalArn"] == admin


def test_missing_region_is_refused(monkeypatch):
    for variable in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(variable, raising=False)
    recorded, _ = run_stack(monkeypatch, {})
    assert isinstance(recorded.result, pulumi.RunError)
    assert "aws:region" in str(recorded.result)
    assert recorded.resources == []


# --- the Kubernetes version, checked with EKS before anything is created --------------------------------


@pytest.mark.parametrize(
    ("version", "reason"),
    [
        ("1.33", "left EKS standard support on 2026-07-29"),  # EXTENDED_SUPPORT in the mocked answer
        ("1.31", "EKS no longer supports Kubernetes 1.31"),  # UNSUPPORTED
        ("1.40", "EKS does not offer Kubernetes 1.40"),  # not listed
    ],
)
def test_version_eks_does_not_offer_in_standard_support_is_refused_before_anything_is_created(
    monkeypatch, version, reason
):
    recorded, exported = run_stack(monkeypatch, {"aws:region": "us-west-2", "kubernetesVersion": version})
    assert isinstance(recorded.result, pulumi.RunError)
    assert "invalid stack configuration: kubernetesVersion: " in str(recorded.result)
    assert reason in str(recorded.result)
    assert recorded.resources == []
    assert exported == {}


def test_when_eks_cannot_be_asked_the_calendar_decides_and_a_warning_says_so(monkeypatch):
    warnings: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *args, **kwargs: warnings.append(message))
    mocks = LabMocks()
    mocks.versions_error = "AccessDeniedException: not authorized to perform eks:DescribeClusterVersions"
    recorded, _ = run_stack(monkeypatch, {"aws:region": "us-west-2", "kubernetesVersion": "1.29"}, mocks=mocks)
    assert isinstance(recorded.result, pulumi.RunError)
    assert "1.29 left EKS standard support on 2025-03-23" in str(recorded.result)
    assert recorded.resources == []
    assert any("could not ask EKS" in w and "DescribeClusterVersions" in w for w in warnings)


# --- two stacks in one account and region ----------------------------------------------------------------

# Inputs that become an AWS resource's physical name (unique per account and region, or per VPC/cluster).
NAME_INPUTS = ("name", "namePrefix", "nodeGroupNamePrefix", "roleName", "repositoryName", "aliasName", "bucket")


def physical_names(recorded: Recorded) -> dict[tuple[str, str], dict[str, Any]]:
    """(type, logical name) -> the name inputs it sets, for every AWS resource and the EKS component."""
    names: dict[tuple[str, str], dict[str, Any]] = {}
    for registration in recorded.resources:
        if registration.type.startswith(("aws:", "eks:")) and registration.custom | registration.remote:
            names[(registration.type, registration.name)] = {
                key: registration.inputs[key] for key in NAME_INPUTS if key in registration.inputs
            }
    return names


@pytest.fixture(scope="module")
def two_stacks() -> tuple[Recorded, Recorded]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        dev, _ = run_stack(monkeypatch, {"aws:region": "us-west-2"}, stack="dev")
        qa, _ = run_stack(monkeypatch, {"aws:region": "us-west-2"}, stack="qa")
    assert dev.result is None and qa.result is None
    return dev, qa


def test_two_stacks_get_their_own_cluster_and_log_group(two_stacks):
    dev, qa = two_stacks
    assert dev.one("eks:index:Cluster").inputs["name"] == "falco-eks-lab-dev"
    assert qa.one("eks:index:Cluster").inputs["name"] == "falco-eks-lab-qa"
    assert dev.one("aws:cloudwatch/logGroup:LogGroup").inputs["name"] == "/aws/eks/falco-eks-lab-dev/cluster"
    assert qa.one("aws:cloudwatch/logGroup:LogGroup").inputs["name"] == "/aws/eks/falco-eks-lab-qa/cluster"


def test_two_stacks_share_no_physical_name(two_stacks):
    dev, qa = (physical_names(recorded) for recorded in two_stacks)
    assert dev.keys() == qa.keys(), "both stacks create the same resources"
    explicit = {key: names for key, names in dev.items() if names}
    # The resources that set a name themselves: each one differs between the stacks.
    assert {typ for typ, _ in explicit} == {
        "eks:index:Cluster",
        "aws:cloudwatch/logGroup:LogGroup",
        "aws:eks/nodeGroup:NodeGroup",
    }
    for key, names in explicit.items():
        for field, value in names.items():
            assert value != qa[key][field], f"{key} {field} {value!r} is the same in both stacks"
    # Every other AWS resource is auto-named by Pulumi: its logical name plus a random suffix, never shared.
    # (pulumi-eks names its own children the same way; only the cluster name is passed through.)


def test_two_stacks_tag_their_resources_with_their_own_stack(two_stacks):
    for recorded, stack in zip(two_stacks, ("dev", "qa"), strict=True):
        tagged = [r for r in recorded.resources if r.type.startswith("aws:") and "tags" in r.inputs]
        assert len(tagged) > 10
        for registration in tagged:
            tags = registration.inputs["tags"]
            assert (tags["pulumi:project"], tags["pulumi:stack"]) == (PROJECT, stack), registration.name


def test_kubernetes_objects_live_in_each_stacks_own_cluster(two_stacks):
    # Kubernetes names (namespaces, releases) only need to be unique per cluster: every object goes
    # through the stack's own provider, built from its own cluster's kubeconfig.
    for recorded in two_stacks:
        (provider,) = recorded.of_type("pulumi:providers:kubernetes")
        kubernetes_objects = [r for r in recorded.resources if r.type.startswith("kubernetes:")]
        assert kubernetes_objects
        assert all(r.provider.startswith(provider.urn + "::") for r in kubernetes_objects)
