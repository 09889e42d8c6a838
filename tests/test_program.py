"""The whole stack program (__main__.py) under mocks: it reads config, builds the lab and exports its outputs."""

from __future__ import annotations

import json
import runpy
from pathlib import Path
from typing import Any

import pulumi
import pytest
from pulumi_mocks import ACCOUNT_ID, Recorded, is_secret, resolve, run_program

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


def run_stack(monkeypatch: pytest.MonkeyPatch, settings: dict[str, str]) -> tuple[Recorded, dict[str, Any]]:
    """Run __main__.py as Pulumi would, with the stack config `settings` (project keys unprefixed).

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

    return run_program(program, config=config), exported


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


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("auditLogRetentionDays", "8"),
        ("nodeCount", "0"),
        ("extraLogTypes", '["api", "kubelet"]'),
        ("clusterName", "bad name!"),
        ("forwarderBuild", "podman"),
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


def test_missing_region_is_refused(monkeypatch):
    for variable in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(variable, raising=False)
    recorded, _ = run_stack(monkeypatch, {})
    assert isinstance(recorded.result, pulumi.RunError)
    assert "aws:region" in str(recorded.result)
    assert recorded.resources == []
