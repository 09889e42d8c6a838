"""The stack's settings: Pulumi.yaml's schema, reading config into FalcoEksLabArgs, refusing bad values by key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from pulumi_mocks import run_program

from components.errors import ConfigError
from components.lab import FalcoEksLabArgs
from components.stack_config import SETTINGS, read_lab_args, with_admin_identity

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "falco-eks-lab"
REGION = {"aws:region": "eu-central-1"}


def read(values: dict[str, str] | None = None, environ: dict[str, str] | None = None) -> FalcoEksLabArgs:
    """read_lab_args inside a mocked program whose stack config holds `values` (project keys unprefixed)."""
    config = {(k if ":" in k else f"{PROJECT}:{k}"): v for k, v in (values or {}).items()}
    recorded = run_program(
        lambda: read_lab_args(pulumi.Config(), pulumi.Config("aws"), environ=environ or {}), config=config
    )
    return recorded.result


def refused(values: dict[str, str], environ: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        read({**REGION, **values}, environ)
    return caught.value


# --- Pulumi.yaml ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def project() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "Pulumi.yaml").read_text())


def test_project_runs_python_from_the_repository_venv(project):
    assert project["name"] == PROJECT
    assert project["description"].strip()
    assert project["runtime"] == {"name": "python", "options": {"toolchain": "pip", "virtualenv": ".venv"}}


def test_schema_declares_every_setting_with_type_default_and_description(project):
    schema = project["config"]
    assert list(schema) == [s.key for s in SETTINGS]
    for setting in SETTINGS:
        entry = schema[setting.key]
        assert entry["type"] == setting.type, setting.key
        assert entry["description"].strip(), setting.key
        # The CLI fills in Pulumi.yaml's default; the program's own default must be the same value.
        assert entry["default"] == setting.default, setting.key
        if setting.type == "array":
            assert entry["items"] == {"type": "string"}, setting.key


def test_schema_holds_the_settings_the_issue_asks_for(project):
    required = {
        "clusterName",
        "kubernetesVersion",
        "nodeInstanceType",
        "nodeCount",
        "auditLogRetentionDays",
        "extraLogTypes",
        "falcoChartVersion",
        "falcoSidekickUi",
        "falcoAdminIdentities",
        "forwarderImage",
        "forwarderBuild",
    }
    assert required <= set(project["config"])
    assert project["config"]["auditLogRetentionDays"]["default"] == 7
    assert project["config"]["extraLogTypes"]["default"] == []
    # The region is the AWS provider's own setting, not the project's.
    assert not any("region" in key.lower() for key in project["config"])


# --- reading -------------------------------------------------------------------------------------------


def test_defaults_when_the_stack_sets_only_the_region():
    args = read(REGION)
    assert args.region == "eu-central-1"
    assert args.cluster.cluster_name == "falco-lab"
    assert args.cluster.kubernetes_version == "1.35"
    assert args.cluster.node_instance_type == "t3.large"
    assert args.cluster.node_count == 2
    assert args.cluster.log_retention_days == 7
    assert args.cluster.extra_log_types == ()
    assert args.cluster.api_public_access_cidrs == ("0.0.0.0/0",)
    assert args.sidekick_ui is True
    assert args.admin_identities == ()
    assert args.forwarder_image is None
    assert args.forwarder_build == "docker"


def test_every_setting_is_read_with_its_type():
    args = read(
        {
            **REGION,
            "clusterName": "workshop-7",
            "kubernetesVersion": "1.34",
            "nodeInstanceType": "m7g.large",
            "nodeCount": "3",
            "auditLogRetentionDays": "30",
            "extraLogTypes": '["api", "authenticator"]',
            "apiPublicAccessCidrs": '["203.0.113.0/24"]',
            "falcoChartVersion": "9.0.0",
            "falcoSidekickUi": "false",
            "falcoAdminIdentities": '["arn:aws:iam::123456789012:role/Admin"]',
            "forwarderImage": "123456789012.dkr.ecr.eu-central-1.amazonaws.com/fwd:1",
            "forwarderBuild": "source",
        }
    )
    assert args.cluster.cluster_name == "workshop-7"
    assert args.cluster.kubernetes_version == "1.34"
    assert args.cluster.node_instance_type == "m7g.large"
    assert args.cluster.node_count == 3
    assert args.cluster.log_retention_days == 30
    assert args.cluster.extra_log_types == ("api", "authenticator")
    assert args.cluster.api_public_access_cidrs == ("203.0.113.0/24",)
    assert args.falco_chart_version == "9.0.0"
    assert args.sidekick_ui is False
    assert args.admin_identities == ("arn:aws:iam::123456789012:role/Admin",)
    assert args.forwarder_image == "123456789012.dkr.ecr.eu-central-1.amazonaws.com/fwd:1"
    assert args.forwarder_build == "source"


def test_region_falls_back_to_the_environment_like_the_aws_provider():
    assert read({}, environ={"AWS_REGION": "ap-south-1"}).region == "ap-south-1"
    assert read({}, environ={"AWS_DEFAULT_REGION": "sa-east-1"}).region == "sa-east-1"
    assert read(REGION, environ={"AWS_REGION": "ap-south-1"}).region == "eu-central-1"


# --- refusing bad values, named by the key the user sets -------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("auditLogRetentionDays", "8"),
        ("auditLogRetentionDays", "seven"),
        ("nodeCount", "0"),
        ("nodeCount", "2.5"),
        ("extraLogTypes", '["api", "etcd"]'),
        ("extraLogTypes", "api"),  # not JSON
        ("extraLogTypes", '{"api": true}'),
        ("clusterName", "my cluster"),
        ("kubernetesVersion", "latest"),
        ("nodeInstanceType", "large"),
        ("apiPublicAccessCidrs", '["0.0.0.0/99"]'),
        ("falcoChartVersion", "latest"),
        ("falcoSidekickUi", "maybe"),
        ("falcoAdminIdentities", '["arn:aws:iam::123:nonsense"]'),
        ("forwarderImage", "has space:1"),
        ("forwarderBuild", "podman"),
    ],
)
def test_bad_value_is_refused_with_its_key(key, value):
    error = refused({key: value})
    assert error.setting == key
    assert str(error).startswith(f"{key}: ")


def test_missing_region_is_refused_with_how_to_set_it():
    error = refused({"aws:region": ""})
    assert error.setting == "aws:region"
    assert "pulumi config set aws:region" in str(error)


def test_malformed_region_is_refused():
    assert refused({"aws:region": "Oregon"}).setting == "aws:region"


# --- the deployer's identity ---------------------------------------------------------------------------


def test_deployer_identity_is_added_once():
    args = read({**REGION, "falcoAdminIdentities": '["alice"]'})
    arn = "arn:aws:sts::123456789012:assumed-role/Admin/alice"
    added = with_admin_identity(args, arn)
    assert added.admin_identities == ("alice", arn)
    assert with_admin_identity(added, arn) is added
    assert added.cluster == args.cluster


def test_unusable_deployer_identity_is_refused_by_key():
    args = read(REGION)
    with pytest.raises(ConfigError) as caught:
        with_admin_identity(args, "arn:aws:iam::123456789012:root")
    assert caught.value.setting == "falcoAdminIdentities"
