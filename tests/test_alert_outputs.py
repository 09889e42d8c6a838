"""The alert outputs as data: their arguments and checks, the Falcosidekick values they become, and the IAM
documents of Falcosidekick's role, checked against the pinned Falcosidekick's facts
(components/alerts/sidekick_upstream.py), botocore's service models and an IAM policy linter (parliament)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import warnings
from typing import Any

import pytest

from components.alerts.outputs import (
    CREATE,
    AlertOutputs,
    AlertPriority,
    AwsPlace,
    ChatAlerts,
    LogGroupAlerts,
    SecurityLakeAlerts,
    SnsAlerts,
    WebhookAlerts,
    check_places,
    check_priority,
)
from components.alerts.sidekick_config import output_config_values, secret_env
from components.alerts.sidekick_iam import (
    CANNED_ACL,
    Destinations,
    sidekick_policy,
    sidekick_trust_policy,
    topic_policy,
)
from components.alerts.sidekick_upstream import (
    AWS_CALLS,
    CHART_ENV,
    CONFIG_KEYS,
    KMS_CALLS,
    LOG_STREAM,
    PRIORITIES,
    READ_ENV,
    SDK_ENV,
    VERSION,
    env_name,
)
from components.errors import ConfigError
from components.falco import OWNED_VALUES, FalcoNames, FalcoSettings, release_values, sidekick_values
from components.falco.helm_values import check_overrides, set_paths
from components.falco.upstream_changes import rules_files
from components.forwarding.iam import log_reader_policy, stream_reader_policy

ACCOUNT = "123456789012"
REGION = "us-west-2"
PLACE = AwsPlace(ACCOUNT, REGION)
TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:falco-alerts"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/falco-sidekick"
LAKE = f"s3://aws-security-data-lake-{REGION}-abcd1234/ext/falco/"
EVERY_OUTPUT = AlertOutputs(
    sns=SnsAlerts(topic=TOPIC, minimum_priority="critical"),
    cloud_watch_logs=LogGroupAlerts(log_group="/platform/falco", minimum_priority="debug"),
    security_lake=SecurityLakeAlerts(location=LAKE),
    slack=ChatAlerts(secret_name="falco-chat", secret_key="slack"),
    teams=ChatAlerts(secret_name="falco-chat", secret_key="teams", minimum_priority="error"),
    webhook=WebhookAlerts(secret_name="falco-siem", headers_secret_key="headers", port=8443),
)
NAMES = FalcoNames("falco", "falco", "falco-k8saudit")


def _config(outputs: AlertOutputs = EVERY_OUTPUT) -> dict[str, Any]:
    return output_config_values(outputs, ROLE, REGION, ACCOUNT)


def _leaves(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    leaves: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            leaves.update(_leaves(value, f"{prefix}{key}."))
        else:
            leaves[f"{prefix}{key}"] = value
    return leaves


# --- the arguments ---------------------------------------------------------------------------------------


def test_every_output_is_off_by_default() -> None:
    outputs = AlertOutputs()
    assert not outputs.enabled and not outputs.uses_aws and not outputs.creates
    assert FalcoSettings().alert_outputs == outputs
    assert _config(outputs) == {}


def test_priorities_are_falcos_lowest_first_and_any_case() -> None:
    assert tuple(p.value for p in AlertPriority) == PRIORITIES
    assert check_priority("p", "WARNING") is AlertPriority.WARNING
    # Falco's short form; Falcosidekick's own check would take "info" as "no minimum".
    assert check_priority("p", "info") is AlertPriority.INFORMATIONAL
    assert SnsAlerts().minimum_priority is AlertPriority.WARNING
    assert LogGroupAlerts().minimum_priority is AlertPriority.NOTICE


@pytest.mark.parametrize("value", ["warn", "high", "", "informationalish", 3, None])
def test_a_priority_falco_does_not_know_is_refused_by_its_field(value: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        ChatAlerts(secret_name="chat", minimum_priority=value)
    assert caught.value.setting == "minimum_priority"
    assert "debug, informational, notice, warning, error, critical, alert, emergency" in str(caught.value)


@pytest.mark.parametrize(
    ("args", "setting"),
    [
        ({"secret_name": "Falco_Slack"}, "secret_name"),
        ({"secret_name": "slack-"}, "secret_name"),
        ({"secret_name": "a" * 254}, "secret_name"),
        ({"secret_name": ""}, "secret_name"),
        ({"secret_name": "slack", "secret_key": "url/1"}, "secret_key"),
        ({"secret_name": "slack", "secret_key": ""}, "secret_key"),
    ],
)
def test_a_secret_name_or_key_kubernetes_refuses_is_refused(args: dict[str, Any], setting: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ChatAlerts(**args)
    assert caught.value.setting == setting


def test_names_kubernetes_takes_are_taken() -> None:
    ChatAlerts(secret_name="falco.chat-1", secret_key="SLACK_url.v2")
    WebhookAlerts(secret_name="siem", headers_secret_key="auth_headers", port=8080)


@pytest.mark.parametrize(
    ("topic", "says"),
    [
        ("falco-alerts", "nor an SNS topic ARN"),
        (f"arn:aws:sqs:{REGION}:{ACCOUNT}:falco", "nor an SNS topic ARN"),
        (f"arn:aws:sns:{REGION}:{ACCOUNT}:alerts.fifo", "FIFO topic"),
        ("", "is required"),
    ],
)
def test_an_sns_topic_that_is_not_a_standard_topic_arn_is_refused(topic: str, says: str) -> None:
    with pytest.raises(ConfigError, match=f"^topic: .*{re.escape(says)}"):
        SnsAlerts(topic=topic)


@pytest.mark.parametrize(
    ("args", "setting", "says"),
    [
        ({"log_group": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:x"}, "log_group", "not its ARN"),
        ({"log_group": "falco alerts"}, "log_group", "not a CloudWatch Logs log group name"),
        ({"retention_days": 10}, "retention_days", "1, 3, 5, 7, 14, 30"),
        ({"log_group": "/platform/falco", "retention_days": 7}, "retention_days", "FalcoDetection creates"),
        ({"log_group": "/platform/falco", "kms_key_arn": KEY}, "kms_key_arn", "FalcoDetection creates"),
        ({"kms_key_arn": "alias/falco"}, "kms_key_arn", "is not a KMS key ARN"),
    ],
)
def test_a_log_group_setting_cloudwatch_would_refuse_is_refused(args: dict[str, Any], setting: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        LogGroupAlerts(**args)
    assert caught.value.setting == setting and says in caught.value.message


@pytest.mark.parametrize(
    ("location", "says"),
    [
        (f"s3://aws-security-data-lake-{REGION}-abcd1234", "has no prefix"),
        (f"s3://aws-security-data-lake-{REGION}-abcd1234/", "has no prefix"),
        ("s3:///ext/falco/", "names no bucket"),
        ("aws-security-data-lake-x/ext/falco", "is not an S3 location"),
        ("s3://Bucket_Name/ext/falco", "is not an S3 bucket name"),
        ("s3://lake/ext//falco", "is not an S3 key prefix"),
    ],
)
def test_a_security_lake_location_without_what_falcosidekick_needs_is_refused(location: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        SecurityLakeAlerts(location=location)
    assert caught.value.setting == "location" and says in caught.value.message


def test_a_security_lake_location_gives_bucket_and_prefix() -> None:
    lake = SecurityLakeAlerts(location=LAKE)
    assert (lake.bucket, lake.prefix) == (f"aws-security-data-lake-{REGION}-abcd1234", "ext/falco")
    with pytest.raises(ConfigError, match="^account_id: "):
        SecurityLakeAlerts(location=LAKE, account_id="1234")


def test_a_webhook_needs_a_port_and_distinct_keys() -> None:
    with pytest.raises(ConfigError, match="^port: "):
        WebhookAlerts(secret_name="siem", port=0)
    with pytest.raises(ConfigError, match="^headers_secret_key: must differ"):
        WebhookAlerts(secret_name="siem", headers_secret_key="url")


def test_two_outputs_reading_the_same_secret_key_are_refused() -> None:
    with pytest.raises(ConfigError, match="^teams.secret_key: falco-chat/url is already slack's URL"):
        AlertOutputs(slack=ChatAlerts(secret_name="falco-chat"), teams=ChatAlerts(secret_name="falco-chat"))


@pytest.mark.parametrize(
    ("outputs", "setting", "says"),
    [
        (AlertOutputs(sns=SnsAlerts(topic=f"arn:aws:sns:eu-west-1:{ACCOUNT}:alerts")), "sns.topic", "eu-west-1"),
        (AlertOutputs(sns=SnsAlerts(topic=f"arn:aws:sns:{REGION}:210987654321:alerts")), "sns.topic", "210987654321"),
        (
            AlertOutputs(sns=SnsAlerts(kms_key_arn=KEY.replace(REGION, "eu-west-1"))),
            "sns.kms_key_arn",
            "a key in eu-west-1",
        ),
        (
            AlertOutputs(security_lake=SecurityLakeAlerts(location="s3://aws-security-data-lake-eu-west-1-ab/ext/f/")),
            "security_lake.location",
            "Security Lake's for eu-west-1",
        ),
    ],
)
def test_a_destination_outside_the_providers_account_or_region_is_refused(
    outputs: AlertOutputs, setting: str, says: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        check_places(outputs, PLACE)
    assert caught.value.setting == f"alert_outputs.{setting}" and says in caught.value.message


def test_destinations_in_the_providers_account_and_region_pass() -> None:
    check_places(EVERY_OUTPUT, PLACE)
    check_places(AlertOutputs(sns=SnsAlerts(topic=CREATE, kms_key_arn=KEY)), PLACE)


# --- the Helm values ---------------------------------------------------------------------------------------


def test_every_variable_the_values_produce_is_one_the_pinned_falcosidekick_reads() -> None:
    """Each `config.*` value the lab sets becomes the variable the chart's Secret gives it, and Falcosidekick
    2.34.1's config loader knows that variable; each extraEnv variable is read by Falcosidekick or its AWS SDK."""
    config = _config()
    set_values = {
        path
        for path in _leaves({k: v for k, v in config.items() if k != "extraEnv"})
        if path not in ("aws.useirsa", "aws.rolearn")  # the ServiceAccount's annotation, no variable (IRSA)
    }
    assert set_values <= set(CHART_ENV), set_values - set(CHART_ENV)
    assert set(CHART_ENV.values()) <= READ_ENV
    for entry in config["extraEnv"]:
        assert entry["name"] in READ_ENV | SDK_ENV, entry["name"]
    assert env_name("AWS.SNS.TopicArn") == "AWS_SNS_TOPICARN"


def test_urls_come_from_the_callers_secret_never_from_values() -> None:
    env = {entry["name"]: entry for entry in secret_env(EVERY_OUTPUT)}
    assert env["SLACK_WEBHOOKURL"]["valueFrom"] == {
        "secretKeyRef": {"name": "falco-chat", "key": "slack", "optional": True}
    }
    assert env["TEAMS_WEBHOOKURL"]["valueFrom"]["secretKeyRef"]["key"] == "teams"
    assert env["WEBHOOK_ADDRESS"]["valueFrom"]["secretKeyRef"] == {"name": "falco-siem", "key": "url", "optional": True}
    assert env["WEBHOOK_CUSTOMHEADERS"]["valueFrom"]["secretKeyRef"]["key"] == "headers"
    config = _config()
    for output in ("slack", "teams", "webhook"):
        assert set(config[output]) == {"minimumpriority"}  # no webhookurl / address / customHeaders
    assert [e["name"] for e in config["extraEnv"] if "value" in e] == ["AWS_EC2_METADATA_DISABLED"]


@pytest.mark.parametrize(
    "values",
    [
        {"falcosidekick": {"config": {"slack": {"webhookurl": "https://hooks.slack.com/services/T/B/x"}}}},
        {"falcosidekick": {"config": {"webhook": {"address": "https://siem.example.com/in"}}}},
        {"falcosidekick": {"config": {"existingSecret": "my-urls"}}},
        {"falcosidekick": {"config": {"extraEnv": [{"name": "TEAMS_WEBHOOKURL", "value": "https://x"}]}}},
        {"falcosidekick": {"config": {"aws": {"rolearn": ROLE}}}},
        {"falcosidekick": {"image": {"tag": "2.32.0"}}},
    ],
)
def test_a_url_or_an_identity_in_helm_values_is_refused(values: dict[str, Any]) -> None:
    path = next(iter(set_paths(values)))
    with pytest.raises(ConfigError, match=f"^syscall_values.{re.escape(path)}: .* is set by the component"):
        check_overrides("syscall_values", values, OWNED_VALUES)


def test_chat_options_that_are_no_url_stay_the_callers() -> None:
    check_overrides("syscall_values", {"falcosidekick": {"config": {"slack": {"channel": "#sec"}}}}, OWNED_VALUES)


def test_aws_outputs_use_irsa_the_providers_region_and_the_raw_alert() -> None:
    aws = _config()["aws"]
    assert aws["useirsa"] is True and aws["rolearn"] == ROLE and aws["region"] == REGION
    assert aws["checkidentity"] is True
    # The alert's JSON: attributes would carry the empty fields SNS refuses.
    assert aws["sns"] == {"topicarn": TOPIC, "rawjson": True, "minimumpriority": "critical"}
    assert aws["cloudwatchlogs"] == {"loggroup": "/platform/falco", "logstream": "", "minimumpriority": "debug"}
    assert aws["securitylake"] == {
        "bucket": f"aws-security-data-lake-{REGION}-abcd1234",
        "prefix": "ext/falco",
        "region": REGION,
        "accountid": ACCOUNT,  # the provider's when unset
        "interval": 5,
        "batchsize": 1000,
        "minimumpriority": "notice",
    }
    assert {"name": "AWS_EC2_METADATA_DISABLED", "value": "true"} in _config()["extraEnv"]


def test_chat_outputs_alone_need_no_aws_identity() -> None:
    config = _config(AlertOutputs(slack=ChatAlerts(secret_name="chat")))
    assert "aws" not in config
    assert [e["name"] for e in config["extraEnv"]] == ["SLACK_WEBHOOKURL"]
    assert config["slack"] == {"minimumpriority": "warning"}


def test_outputs_without_the_ui_install_falcosidekick_alone() -> None:
    falco = FalcoSettings(sidekick_ui=False, alert_outputs=AlertOutputs(teams=ChatAlerts(secret_name="chat")))
    assert falco.sidekick
    syscall, audit = release_values(falco, NAMES, rules_files(), _config(falco.alert_outputs))
    sidekick = syscall["falcosidekick"]
    assert sidekick["enabled"] is True and sidekick["webui"] == {"enabled": False}
    assert sidekick["config"]["teams"] == {"minimumpriority": "warning"}
    for values in (syscall, audit):
        assert values["falco"]["http_output"]["url"] == NAMES.sidekick_url  # both releases feed it
    assert audit["falcosidekick"] == {"enabled": False}


def test_falcosidekick_runs_the_pinned_version_with_or_without_the_ui() -> None:
    assert VERSION == "2.34.1"
    for ui in (True, False):
        assert sidekick_values(NAMES, ui)["image"] == {"tag": VERSION}


# --- IAM ---------------------------------------------------------------------------------------------------


FULL = Destinations(
    partition="aws",
    region=REGION,
    account_id=ACCOUNT,
    topic_arn=TOPIC,
    topic_kms_key_arn=KEY,
    log_group_name="/falco-eks/prod/alerts",
    lake_bucket=f"aws-security-data-lake-{REGION}-abcd1234",
    lake_prefix="ext/falco",
    lake_kms_key_arn=KEY,
)


def _statements(policy: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in policy["Statement"]}


def test_the_role_is_trusted_by_falcosidekicks_service_account_only() -> None:
    issuer = f"oidc.eks.{REGION}.amazonaws.com/id/ABC"
    provider = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{issuer}"
    (statement,) = sidekick_trust_policy(provider, f"https://{issuer}", "falco", "falco-falcosidekick")["Statement"]
    assert statement["Principal"] == {"Federated": provider}
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Condition"] == {
        "StringEquals": {
            f"{issuer}:sub": "system:serviceaccount:falco:falco-falcosidekick",
            f"{issuer}:aud": "sts.amazonaws.com",
        }
    }


def test_each_output_allows_exactly_its_calls_on_exactly_its_destination() -> None:
    statements = _statements(sidekick_policy(FULL))
    assert statements["PublishAlerts"]["Action"] == ["sns:Publish"] == list(AWS_CALLS["sns"])
    assert statements["PublishAlerts"]["Resource"] == TOPIC
    write_log = statements["WriteAlertLog"]
    assert sorted(write_log["Action"]) == sorted(AWS_CALLS["cloudwatch_logs"])
    # The one stream Falcosidekick creates and writes, not the group's every stream.
    assert write_log["Resource"] == (
        f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/falco-eks/prod/alerts:log-stream:{LOG_STREAM}"
    )
    lake = statements["WriteSecurityLake"]
    assert sorted(lake["Action"]) == sorted(AWS_CALLS["security_lake"])
    assert lake["Resource"] == f"arn:aws:s3:::aws-security-data-lake-{REGION}-abcd1234/ext/falco/*"
    assert lake["Condition"] == {"StringEquals": {"s3:x-amz-acl": CANNED_ACL}}
    for statement in statements.values():
        assert statement["Effect"] == "Allow" and "*" not in json.dumps(statement["Action"])
        assert "NotAction" not in statement and "NotResource" not in statement


def test_a_customer_key_is_usable_only_for_what_the_writer_needs_and_only_through_that_service() -> None:
    statements = _statements(sidekick_policy(FULL))
    sns_key = statements["PublishWithTheTopicKey"]
    assert sorted(sns_key["Action"]) == sorted(KMS_CALLS["sns"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert sns_key["Resource"] == KEY
    assert sns_key["Condition"] == {"StringEquals": {"kms:ViaService": f"sns.{REGION}.amazonaws.com"}}
    lake_key = statements["EncryptSecurityLakeObjects"]
    assert lake_key["Action"] == ["kms:GenerateDataKey"]
    assert lake_key["Condition"] == {"StringEquals": {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}}
    # AWS managed keys (alias/aws/sns) and the log group's key need no grant at all.
    plain = Destinations("aws", REGION, ACCOUNT, topic_arn=TOPIC, log_group_name="/x")
    assert "kms:" not in json.dumps(sidekick_policy(plain))


def test_the_policy_has_only_the_enabled_outputs() -> None:
    only_logs = sidekick_policy(Destinations("aws", REGION, ACCOUNT, log_group_name="/x"))
    assert [s["Sid"] for s in only_logs["Statement"]] == ["WriteAlertLog"]
    with pytest.raises(ValueError, match="at least one AWS output"):
        sidekick_policy(Destinations("aws", REGION, ACCOUNT))


def test_only_falcosidekick_publishes_to_the_topic_and_the_account_administers_it() -> None:
    statements = _statements(topic_policy(TOPIC, ROLE, ACCOUNT, "aws"))
    assert statements["FalcosidekickPublishes"]["Principal"] == {"AWS": ROLE}
    deny = statements["NobodyElsePublishes"]
    assert (deny["Effect"], deny["Principal"], deny["Action"]) == ("Deny", "*", "sns:Publish")
    assert deny["Condition"] == {"ArnNotEquals": {"aws:PrincipalArn": ROLE}}
    admin = statements["AccountAdministers"]
    assert admin["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
    assert "sns:Publish" not in admin["Action"] and "sns:Subscribe" in admin["Action"]
    assert all(s["Resource"] == TOPIC for s in statements.values())


def _policies() -> dict[str, dict[str, Any]]:
    return {
        "sidekick role": sidekick_policy(FULL),
        "alert topic": topic_policy(TOPIC, ROLE, ACCOUNT, "aws"),
        "forwarder (poll)": log_reader_policy(f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/eks/prod/cluster"),
        "forwarder (kinesis)": stream_reader_policy(f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/audit", KEY),
    }


def test_every_action_is_an_operation_in_botocores_service_model() -> None:
    import botocore.session

    session = botocore.session.get_session()
    operations: dict[str, set[str]] = {}
    for name, policy in _policies().items():
        for statement in policy["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            for action in actions:
                prefix, operation = action.split(":")
                service = {"logs": "logs"}.get(prefix, prefix)
                if service not in operations:
                    operations[service] = set(session.get_service_model(service).operation_names)
                assert operation in operations[service], f"{name}: {action} is no {service} operation"


def test_the_policies_pass_an_iam_policy_linter() -> None:
    """parliament (pinned in requirements-dev.txt; its IAM data ships with it, so it runs offline) finds nothing in
    its default checks: every action exists and matches its resource's type. Its community checks flag only the
    permission-management actions the lab means: the account's administration of its topic, and PutObjectAcl,
    which Falcosidekick's canned ACL needs and the policy's condition pins to that ACL."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # parliament imports pkg_resources
        from parliament import analyze_policy_string

    for name, policy in _policies().items():
        findings = analyze_policy_string(json.dumps(policy)).findings
        assert findings == [], f"{name}: {[(f.issue, f.detail, f.location) for f in findings]}"
    community = {
        name: sorted(
            action
            for f in analyze_policy_string(json.dumps(policy), include_community_auditors=True).findings
            if f.issue == "PERMISSIONS_MANAGEMENT_ACTIONS"
            for action in f.location["actions"]
        )
        for name, policy in _policies().items()
    }
    assert community == {
        "sidekick role": ["s3:putobjectacl"],
        "alert topic": ["sns:addpermission", "sns:removepermission", "sns:settopicattributes"],
        "forwarder (poll)": [],
        "forwarder (kinesis)": [],
    }


def test_the_linter_would_see_a_wrong_resource() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from parliament import analyze_policy_string

    statement = {"Effect": "Allow", "Action": "logs:PutLogEvents", "Resource": TOPIC}
    wrong = {"Version": "2012-10-17", "Statement": [statement]}
    assert [f.issue for f in analyze_policy_string(json.dumps(wrong)).findings] == ["RESOURCE_MISMATCH"]


# --- against the real Falcosidekick source (optional) -----------------------------------------------------

SOURCE_ENV = "FALCOSIDEKICK_REPO"
OUTPUT_FUNCTIONS = {
    "sns": ("outputs/aws.go", ("PublishTopic",)),
    "cloudwatch_logs": ("outputs/aws.go", ("SendCloudWatchLog", "putLogEvents")),
    "security_lake": ("outputs/awssecuritylake.go", ("writeParquet",)),
}
SERVICE_OF_CLIENT = {"sns": "sns", "cloudwatchlogs": "logs", "s3": "s3"}


def _source(path: str) -> str:
    repo = os.environ.get(SOURCE_ENV)
    if not repo:
        pytest.skip(f"{SOURCE_ENV} is not set (a git checkout or mirror of falcosecurity/falcosidekick)")
    return subprocess.run(
        ["git", "-C", repo, "show", f"{VERSION}:{path}"], check=True, capture_output=True, text=True
    ).stdout


def _function(source: str, name: str) -> str:
    start = re.search(rf"^func (\(c \*Client\) )?{name}\(", source, re.MULTILINE)
    assert start is not None, name
    end = re.search(r"^}", source[start.end() :], re.MULTILINE)
    assert end is not None
    return source[start.start() : start.end() + end.end()]


def test_the_calls_listed_are_the_calls_in_the_pinned_falcosidekick_source() -> None:
    """With FALCOSIDEKICK_REPO pointing at a clone of falcosecurity/falcosidekick: the AWS SDK calls in each
    output's functions at tag VERSION are AWS_CALLS, and each is an operation of its service in botocore."""
    import botocore.session

    session = botocore.session.get_session()
    for output, (path, functions) in OUTPUT_FUNCTIONS.items():
        body = "\n".join(_function(_source(path), f) for f in functions)
        calls = {op for _, op in re.findall(r"(?:\b(\w+)\.NewFromConfig\([^)]*\)|svc)\.([A-Z]\w+)\(", body)}
        services = {SERVICE_OF_CLIENT[c] for c in re.findall(r"\b(\w+)\.NewFromConfig\(", body)}
        (service,) = services
        model = set(session.get_service_model(service).operation_names)
        assert calls <= model, calls - model
        expected = {f"{service}:{op}" for op in calls}
        if "ACL:" in body:  # a canned ACL on PutObject is authorized as PutObjectAcl too
            expected.add("s3:PutObjectAcl")
        assert expected == set(AWS_CALLS[output]), output
    # Every key listed has a default in config.go (viper unmarshals only keys it knows), so each variable the lab
    # sets is read.
    assert CONFIG_KEYS <= _config_keys(_source("config.go")), CONFIG_KEYS - _config_keys(_source("config.go"))
    assert "awscfg, err := awsconfig.LoadDefaultConfig(" in _source("outputs/aws.go")  # the chain IRSA needs


def _config_keys(config: str) -> set[str]:
    """The keys config.go gives a default: SetDefault("A.B", ...) calls, and the per-output default maps
    (`"Slack": {"WebhookURL": ..., ...}`), where every http output also gets the common http defaults."""
    keys = set(re.findall(r'SetDefault\("([\w.]+)"', config))
    common = re.search(r"var commonHttpOutputDefaults = map\[string\]any\{(.*?)^\}", config, re.DOTALL | re.MULTILINE)
    assert common is not None
    common_keys = re.findall(r'^\t"(\w+)":', common[1], re.MULTILINE)
    for table in ("httpOutputDefaults", "outputDefaults"):
        body = re.search(rf"var {table} = map\[string\]map\[string\]any\{{(.*?)^\}}", config, re.DOTALL | re.MULTILINE)
        assert body is not None, table
        for section, entries in re.findall(r'^\t"(\w+)": \{(.*?)^\t\}', body[1], re.DOTALL | re.MULTILINE):
            names = re.findall(r'^\t\t"([\w.]+)":', entries, re.MULTILINE)
            if table == "httpOutputDefaults":
                names += common_keys
            keys |= {f"{section}.{name}" for name in names}
    return keys


def test_the_image_the_chart_ships_could_not_sign_aws_calls() -> None:
    """Why the lab pins VERSION: at the chart's 2.32.0 the AWS client is a bare aws.Config with a Region only."""
    repo = os.environ.get(SOURCE_ENV)
    if not repo:
        pytest.skip(f"{SOURCE_ENV} is not set (a git checkout or mirror of falcosecurity/falcosidekick)")
    old = subprocess.run(
        ["git", "-C", repo, "show", "2.32.0:outputs/aws.go"], check=True, capture_output=True, text=True
    ).stdout
    assert "awscfg := &aws.Config{Region: region}" in old and "awscfg, err := awsconfig.LoadDefaultConfig(" not in old
