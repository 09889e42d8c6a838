"""The stack's settings: Pulumi.yaml's schema, reading config into FalcoEksLabArgs, refusing bad values by key."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from pulumi_mocks import run_program

from components.cluster import AuditedClusterSettings
from components.cluster.kubernetes_versions import OfferedVersion
from components.errors import ConfigError
from components.lab import FalcoEksLabArgs
from components.stack_config import (
    SETTINGS,
    check_kubernetes_version,
    default_cluster_name,
    read_lab_args,
    stack_region,
    with_admin_identity,
    with_cluster_creator,
)

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "falco-eks-lab"
REGION = {"aws:region": "eu-central-1"}


def read(
    values: dict[str, str] | None = None, environ: dict[str, str] | None = None, stack: str = "test"
) -> FalcoEksLabArgs:
    """read_lab_args inside a mocked program whose stack config holds `values` (project keys unprefixed)."""
    config = {(k if ":" in k else f"{PROJECT}:{k}"): v for k, v in (values or {}).items()}
    recorded = run_program(
        lambda: read_lab_args(pulumi.Config(), pulumi.Config("aws"), environ=environ or {}), config=config, stack=stack
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
    assert args.cluster.cluster_name == "falco-eks-lab-test"  # <project>-<stack>
    assert args.cluster.kubernetes_version == "1.35"
    assert args.cluster.node_instance_type == "t3.large"
    assert args.cluster.node_count == 2
    assert args.cluster.log_retention_days == 7
    assert args.cluster.extra_log_types == ()
    assert args.cluster.api_public_access_cidrs == ("0.0.0.0/0",)
    assert args.cluster.api_private_only is False
    assert args.cluster.api_private_access_cidrs == ()
    assert args.cluster.tags == {"pulumi:project": "falco-eks-lab", "pulumi:stack": "test"}
    assert args.cluster.cluster_admin_arns == () and args.cluster.cluster_viewer_arns == ()
    assert args.cluster.kubeconfig_role_arn is None
    assert args.falco.sidekick_ui is True
    assert args.falco.admin_identities == ()
    assert args.falco.chart_repository == "https://falcosecurity.github.io/charts"
    assert args.falco.image_registry is None
    assert args.forwarder_image is None
    assert args.forwarder_build == "docker"
    assert args.audit_source == "poll"
    assert args.kinesis.shard_count is None and args.kinesis.kms_key_arn is None
    assert args.falco.audit_events_per_second == 1000 and args.falco.audit_replica_count == 1
    # The workshop shows every admin request; nothing allowed or hostile until the operator says so.
    assert args.falco.admin_access_alerts is True
    assert args.falco.allowed_identities == () and args.falco.hostile_source_addresses == ()


def test_the_detection_settings_are_read_with_their_types():
    args = read(
        {
            **REGION,
            "falcoAdminAccessAlerts": "false",
            "falcoAllowedIdentities": '["arn:aws:iam::123456789012:role/CICDDeployRole", "jenkins"]',
            "hostileSourceAddresses": '["185.220.101.34", "198.51.100.0/24", "2001:db8:beef::/48"]',
        }
    )
    assert args.falco.admin_access_alerts is False
    assert args.falco.allowed_identities == ("arn:aws:iam::123456789012:role/CICDDeployRole", "jenkins")
    assert args.falco.hostile_source_addresses == ("185.220.101.34", "198.51.100.0/24", "2001:db8:beef::/48")


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
            "apiPrivateAccessCidrs": '["10.8.0.0/16"]',
            "clusterAdminArns": '["arn:aws:iam::123456789012:role/platform/Oncall"]',
            "clusterViewerArns": '["arn:aws:iam::123456789012:user/auditor"]',
            "kubeconfigRoleArn": "arn:aws:iam::123456789012:role/Deployer",
            "falcoChartVersion": "9.0.0",
            "falcoChartRepository": "oci://registry.example.com/charts",
            "imageRegistry": "registry.example.com/docker-hub",
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
    assert args.cluster.api_private_access_cidrs == ("10.8.0.0/16",)
    assert args.cluster.cluster_admin_arns == ("arn:aws:iam::123456789012:role/platform/Oncall",)
    assert args.cluster.cluster_viewer_arns == ("arn:aws:iam::123456789012:user/auditor",)
    assert args.cluster.kubeconfig_role_arn == "arn:aws:iam::123456789012:role/Deployer"
    assert args.falco.chart_version == "9.0.0"
    assert args.falco.chart_repository == "oci://registry.example.com/charts"
    assert args.falco.image_registry == "registry.example.com/docker-hub"
    assert args.falco.sidekick_ui is False
    assert args.falco.admin_identities == ("arn:aws:iam::123456789012:role/Admin",)
    assert args.forwarder_image == "123456789012.dkr.ecr.eu-central-1.amazonaws.com/fwd:1"
    assert args.forwarder_build == "source"


KEY_ARN = "arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def test_the_audit_source_and_load_settings_are_read_with_their_types():
    args = read(
        {
            **REGION,
            "auditSource": "kinesis",
            "kinesisShardCount": "4",
            "kinesisKmsKeyArn": KEY_ARN,
            "auditEventsPerSecond": "5000",
        }
    )
    assert args.audit_source == "kinesis"
    assert (args.kinesis.shard_count, args.kinesis.kms_key_arn) == (4, KEY_ARN)
    assert args.falco.audit_events_per_second == 5000 and args.falco.audit_replica_count == 5
    on_demand = read({**REGION, "auditSource": "kinesis"}).kinesis  # 0 and "" mean on-demand, AWS-managed key
    assert (on_demand.shard_count, on_demand.kms_key_arn) == (None, None)


@pytest.mark.parametrize("key", ["kinesisShardCount", "kinesisKmsKeyArn"])
def test_a_kinesis_setting_while_polling_is_refused_with_what_to_set(key):
    error = refused({key: {"kinesisShardCount": "2", "kinesisKmsKeyArn": KEY_ARN}[key]})
    assert error.setting == key
    assert "make config KEY=auditSource VALUE=kinesis" in str(error)


def test_the_audit_source_setting_says_a_log_group_takes_two_subscription_filters(project):
    assert "at most two subscription filters" in project["config"]["auditSource"]["description"]


def _region(values: dict[str, str], environ: dict[str, str]) -> str:
    config = {(k if ":" in k else f"{PROJECT}:{k}"): v for k, v in values.items()}
    return run_program(lambda: stack_region(pulumi.Config("aws"), environ), config=config).result


def test_region_falls_back_to_the_environment_like_the_aws_provider():
    assert _region({}, {"AWS_REGION": "ap-south-1"}) == "ap-south-1"
    assert _region({}, {"AWS_DEFAULT_REGION": "sa-east-1"}) == "sa-east-1"
    assert _region(REGION, {"AWS_REGION": "ap-south-1"}) == "eu-central-1"
    read({}, environ={"AWS_REGION": "ap-south-1"})  # enough for the lab's settings


# --- the kubeconfig's role ---------------------------------------------------------------------------------

DEPLOYER_ROLE = "arn:aws:iam::123456789012:role/ci/Deployer"


def test_the_kubeconfig_assumes_the_role_the_aws_provider_assumes():
    args = read({**REGION, "aws:assumeRoles": f'[{{"roleArn": "{DEPLOYER_ROLE}", "sessionName": "pulumi"}}]'})
    assert args.cluster.kubeconfig_role_arn == DEPLOYER_ROLE


def test_kubeconfig_role_arn_wins_over_the_providers_role():
    other = "arn:aws:iam::123456789012:role/KubectlUsers"
    args = read({**REGION, "kubeconfigRoleArn": other, "aws:assumeRoles": f'[{{"roleArn": "{DEPLOYER_ROLE}"}}]'})
    assert args.cluster.kubeconfig_role_arn == other


@pytest.mark.parametrize(
    ("roles", "says"),
    [
        (f'[{{"roleArn": "{DEPLOYER_ROLE}"}}, {{"roleArn": "arn:aws:iam::210987654321:role/Target"}}]', "chains 2"),
        (f'[{{"roleArn": "{DEPLOYER_ROLE}", "externalId": "x-1"}}]', "external ID"),
        ('[{"roleArn": "arn:aws:sts::123456789012:assumed-role/Deployer/s"}]', "is not an IAM role ARN"),
    ],
)
def test_a_provider_role_the_kubeconfig_cannot_assume_is_refused(roles, says):
    error = refused({"aws:assumeRoles": roles})
    assert error.setting == "aws:assumeRoles"
    assert says in str(error)
    if "chains" in says or "external" in says:
        assert "kubeconfigRoleArn" in str(error)


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
        ("clusterName", "c" * 101),
        ("kubernetesVersion", "latest"),
        ("nodeInstanceType", "large"),
        ("apiPublicAccessCidrs", '["0.0.0.0/99"]'),
        ("apiPrivateOnly", "maybe"),
        ("apiPrivateAccessCidrs", '["10.0.0.0/33"]'),
        ("falcoChartVersion", "latest"),
        ("falcoSidekickUi", "maybe"),
        ("falcoAdminIdentities", '["arn:aws:iam::123:nonsense"]'),
        ("falcoAdminAccessAlerts", "maybe"),
        ("falcoAllowedIdentities", '["arn:aws:iam::123:nonsense"]'),
        ("falcoAllowedIdentities", '"arn:aws:iam::123456789012:role/CI"'),
        ("hostileSourceAddresses", '["tor-exit.example.org"]'),
        ("hostileSourceAddresses", '["10.0.0.1/8"]'),
        ("hostileSourceAddresses", '["fe80::1%eth0"]'),
        ("forwarderImage", "has space:1"),
        ("forwarderBuild", "podman"),
        ("clusterAdminArns", '["arn:aws:sts::123456789012:assumed-role/Admin/alice"]'),
        ("clusterViewerArns", '["alice"]'),
        ("kubeconfigRoleArn", "Deployer"),
        ("falcoChartRepository", "http://charts.example.com"),
        ("imageRegistry", "https://registry.example.com"),
        ("auditSource", "push"),
        ("auditEventsPerSecond", "0"),
        ("auditEventsPerSecond", "many"),
    ],
)
def test_bad_value_is_refused_with_its_key(key, value):
    error = refused({key: value})
    assert error.setting == key
    assert str(error).startswith(f"{key}: ")


@pytest.mark.parametrize(
    ("key", "value"),
    [("kinesisShardCount", "101"), ("kinesisShardCount", "-1"), ("kinesisKmsKeyArn", "alias/audit")],
)
def test_bad_kinesis_value_is_refused_with_its_key(key, value):
    error = refused({"auditSource": "kinesis", key: value})
    assert error.setting == key
    assert str(error).startswith(f"{key}: ")


def test_missing_region_is_refused_with_how_to_set_it():
    error = refused({"aws:region": ""})
    assert error.setting == "aws:region"
    assert "make config KEY=aws:region" in str(error) and "pulumi config set aws:region" in str(error)


def test_malformed_region_is_refused():
    assert refused({"aws:region": "Oregon"}).setting == "aws:region"


# --- the deployer's identity ---------------------------------------------------------------------------


def test_deployer_identity_is_added_once():
    args = read({**REGION, "falcoAdminIdentities": '["alice"]'})
    arn = "arn:aws:sts::123456789012:assumed-role/Admin/alice"
    added = with_admin_identity(args, arn)
    assert added.falco.admin_identities == ("alice", arn)
    assert with_admin_identity(added, arn) is added
    assert added.cluster == args.cluster


def test_unusable_deployer_identity_is_refused_by_key():
    args = read(REGION)
    with pytest.raises(ConfigError) as caught:
        with_admin_identity(args, "arn:aws:iam::123456789012:root")
    assert caught.value.setting == "falcoAdminIdentities"


DEPLOYER_SESSION = "arn:aws:sts::123456789012:assumed-role/Deployer/pulumi-1700000000"


@pytest.mark.parametrize("key", ["clusterAdminArns", "clusterViewerArns"])
def test_the_deployer_listed_for_an_access_entry_is_refused_by_key_with_what_to_do(key):
    args = read({**REGION, key: '["arn:aws:iam::123456789012:role/ci/Deployer"]'})
    with pytest.raises(ConfigError) as caught:
        with_cluster_creator(args, DEPLOYER_SESSION)
    assert caught.value.setting == key
    assert str(caught.value).startswith(f"{key}: arn:aws:iam::123456789012:role/ci/Deployer is the identity")
    assert "remove it from the list, or deploy as another identity" in str(caught.value)


def test_the_deployer_becomes_the_clusters_creator_and_others_keep_their_access():
    args = read({**REGION, "clusterAdminArns": '["arn:aws:iam::123456789012:role/ci/Auditor"]'})
    created = with_cluster_creator(args, DEPLOYER_SESSION)
    assert created.cluster.cluster_creator_arn == DEPLOYER_SESSION
    assert created.cluster.cluster_admin_arns == ("arn:aws:iam::123456789012:role/ci/Auditor",)
    assert created.falco == args.falco


def test_private_only_endpoint_without_ranges_is_refused_naming_the_missing_ranges():
    error = refused({"apiPrivateOnly": "true"})
    assert error.setting == "apiPrivateAccessCidrs"


def test_private_only_endpoint_is_read_with_its_ranges():
    args = read({**REGION, "apiPrivateOnly": "true", "apiPrivateAccessCidrs": '["10.8.0.0/16"]'})
    assert args.cluster.api_private_only is True
    assert args.cluster.api_private_access_cidrs == ("10.8.0.0/16",)


# --- names and tags that keep stacks apart ---------------------------------------------------------------


def test_default_cluster_name_is_project_dash_stack():
    assert default_cluster_name("falco-eks-lab", "dev") == "falco-eks-lab-dev"
    assert default_cluster_name("falco-eks-lab", "qa") == "falco-eks-lab-qa"


@pytest.mark.parametrize(
    ("stack", "other"),
    [
        ("team.a", "team-a"),  # '.' is fine in a stack name, not in an EKS name
        ("x" * 100, "x" * 99 + "y"),  # too long: cut, and told apart by the hash
        ("_hidden", "hidden"),
    ],
)
def test_default_cluster_name_fits_eks_and_keeps_stacks_apart(stack, other):
    name = default_cluster_name("falco-eks-lab", stack)
    assert name != default_cluster_name("falco-eks-lab", other)
    assert AuditedClusterSettings(cluster_name=name).cluster_name == name  # EKS's rules: the args check them
    assert len(name) <= 100
    assert name.startswith("falco-eks-lab-")


def test_default_cluster_name_is_stable():
    long_stack = "feature-" * 20
    assert default_cluster_name("falco-eks-lab", long_stack) == default_cluster_name("falco-eks-lab", long_stack)


def test_explicit_cluster_name_wins_over_the_derived_one():
    assert read({**REGION, "clusterName": "workshop-7"}, stack="qa").cluster.cluster_name == "workshop-7"
    assert read(REGION, stack="qa").cluster.cluster_name == "falco-eks-lab-qa"


def test_every_resource_is_tagged_with_its_project_and_stack():
    assert read(REGION, stack="qa").cluster.tags == {"pulumi:project": "falco-eks-lab", "pulumi:stack": "qa"}


# --- the Kubernetes version EKS offers -------------------------------------------------------------------


def test_version_in_extended_support_is_refused_by_its_key():
    args = read({**REGION, "kubernetesVersion": "1.33"})
    offered = [
        OfferedVersion("1.35", "STANDARD_SUPPORT"),
        OfferedVersion("1.33", "EXTENDED_SUPPORT", "2026-07-29T00:00:00Z"),
    ]
    with pytest.raises(ConfigError) as caught:
        check_kubernetes_version(args, offered)
    assert caught.value.setting == "kubernetesVersion"
    assert "2026-07-29" in str(caught.value) and "1.35" in str(caught.value)


def test_without_eks_the_calendar_decides():
    args = read({**REGION, "kubernetesVersion": "1.30"})
    check_kubernetes_version(args, None, today=date(2025, 7, 22))
    with pytest.raises(ConfigError) as caught:
        check_kubernetes_version(args, None, today=date(2025, 7, 23))
    assert caught.value.setting == "kubernetesVersion"


# --- alert outputs ------------------------------------------------------------------------------------------

ALERT_KEY = "arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def test_every_alert_output_is_off_by_default():
    outputs = read(REGION).falco.alert_outputs
    assert not outputs.enabled


def test_every_alert_setting_is_read_into_its_output():
    outputs = read(
        {
            **REGION,
            "alertSnsTopic": "create",
            "alertSnsKmsKeyArn": ALERT_KEY,
            "alertSnsMinimumPriority": "Critical",
            "alertLogGroup": "create",
            "alertLogGroupRetentionDays": "90",
            "alertLogGroupKmsKeyArn": ALERT_KEY,
            "alertLogMinimumPriority": "info",
            "alertSecurityLakeLocation": "s3://aws-security-data-lake-eu-central-1-ab/ext/falco/",
            "alertSecurityLakeAccountId": "210987654321",
            "alertSecurityLakeKmsKeyArn": ALERT_KEY,
            "alertSecurityLakeMinimumPriority": "error",
            "alertSlackSecret": "falco-chat",
            "alertSlackSecretKey": "slack",
            "alertSlackMinimumPriority": "alert",
            "alertTeamsSecret": "falco-chat",
            "alertTeamsSecretKey": "teams",
            "alertTeamsMinimumPriority": "emergency",
            "alertWebhookSecret": "siem",
            "alertWebhookSecretKey": "endpoint",
            "alertWebhookHeadersSecretKey": "headers",
            "alertWebhookPort": "8443",
            "alertWebhookMinimumPriority": "debug",
        }
    ).falco.alert_outputs
    assert outputs.sns is not None and outputs.cloud_watch_logs is not None and outputs.security_lake is not None
    sns = outputs.sns
    assert (sns.topic, sns.kms_key_arn, sns.minimum_priority) == ("create", ALERT_KEY, "critical")
    logs = outputs.cloud_watch_logs
    assert (logs.log_group, logs.retention_days, logs.kms_key_arn, logs.minimum_priority) == (
        "create", 90, ALERT_KEY, "informational"
    )
    lake = outputs.security_lake
    assert (lake.bucket, lake.prefix, lake.account_id, lake.minimum_priority) == (
        "aws-security-data-lake-eu-central-1-ab", "ext/falco", "210987654321", "error"
    )
    assert outputs.slack is not None and outputs.teams is not None and outputs.webhook is not None
    assert (outputs.slack.secret_name, outputs.slack.secret_key, outputs.slack.minimum_priority) == (
        "falco-chat", "slack", "alert"
    )
    assert (outputs.teams.secret_key, outputs.teams.minimum_priority) == ("teams", "emergency")
    webhook = outputs.webhook
    assert (webhook.secret_name, webhook.secret_key, webhook.headers_secret_key, webhook.port) == (
        "siem", "endpoint", "headers", 8443
    )


def test_optional_alert_settings_left_empty_are_unset():
    outputs = read({**REGION, "alertSnsTopic": "create", "alertSecurityLakeLocation": "s3://lake-1/ext/f/",
                    "alertWebhookSecret": "siem"}).falco.alert_outputs
    assert outputs.sns is not None and outputs.sns.kms_key_arn is None
    assert outputs.security_lake is not None and outputs.security_lake.account_id is None
    assert outputs.webhook is not None and outputs.webhook.headers_secret_key is None


@pytest.mark.parametrize(
    ("key", "value", "switch"),
    [
        ("alertSnsMinimumPriority", "critical", "alertSnsTopic"),
        ("alertLogGroupRetentionDays", "90", "alertLogGroup"),
        ("alertSecurityLakeAccountId", "210987654321", "alertSecurityLakeLocation"),
        ("alertSlackSecretKey", "slack", "alertSlackSecret"),
        ("alertWebhookPort", "8443", "alertWebhookSecret"),
    ],
)
def test_a_setting_of_an_output_that_is_off_is_refused_naming_what_turns_it_on(key, value, switch):
    error = refused({key: value})
    assert error.setting == key and switch in error.message


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"alertSnsTopic": "arn:aws:sns:eu-central-1:123456789012:alerts.fifo"}, "alertSnsTopic"),
        ({"alertSnsTopic": "create", "alertSnsMinimumPriority": "high"}, "alertSnsMinimumPriority"),
        ({"alertLogGroup": "create", "alertLogGroupRetentionDays": "10"}, "alertLogGroupRetentionDays"),
        ({"alertLogGroup": "/platform/falco", "alertLogGroupKmsKeyArn": ALERT_KEY}, "alertLogGroupKmsKeyArn"),
        ({"alertSecurityLakeLocation": "s3://aws-security-data-lake-x"}, "alertSecurityLakeLocation"),
        ({"alertSlackSecret": "Falco_Slack"}, "alertSlackSecret"),
        ({"alertTeamsSecret": "chat", "alertTeamsSecretKey": "a/b"}, "alertTeamsSecretKey"),
        ({"alertWebhookSecret": "siem", "alertWebhookPort": "70000"}, "alertWebhookPort"),
        ({"alertSlackSecret": "chat", "alertTeamsSecret": "chat"}, "alertTeamsSecretKey"),
    ],
)
def test_a_bad_alert_setting_is_refused_by_its_key(values, key):
    assert refused(values).setting == key


def test_a_topic_elsewhere_is_refused_by_its_key_before_anything_is_created():
    from components.stack_config import check_alert_destinations

    args = read({**REGION, "alertSnsTopic": "arn:aws:sns:eu-west-1:123456789012:paging"})

    def program():
        try:
            check_alert_destinations(args)
        except ConfigError as err:
            return err
        return None

    recorded = run_program(program)
    assert isinstance(recorded.result, ConfigError)
    assert recorded.result.setting == "alertSnsTopic" and "eu-west-1" in recorded.result.message
    assert recorded.resources == []
