"""The AuditStream component under Pulumi mocks: the Kinesis stream, the log group's subscription filter into it and
the role CloudWatch Logs writes as, asserted as data (IAM documents parsed as JSON)."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws
import pytest
from pulumi_mocks import ACCOUNT_ID, REGION, Recorded, resolve, run_program

from components.errors import ConfigError
from components.forwarding.audit_stream import AuditStream, AuditStreamArgs, KinesisSettings, writer_trust_policy

COMPONENT = "falco-eks:index:AuditStream"
STREAM = "aws:kinesis/stream:Stream"
FILTER = "aws:cloudwatch/logSubscriptionFilter:LogSubscriptionFilter"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
LOG_GROUP = "/aws/eks/falco-lab/cluster"
LOG_GROUP_ARN = f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{LOG_GROUP}"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def _deploy(**settings: Any) -> Recorded:
    """The stream for a log group the same program creates (its name and ARN are Outputs, as in the lab)."""

    def build() -> AuditStream:
        group = aws.cloudwatch.LogGroup("audit-log", name=LOG_GROUP, retention_in_days=7)
        return AuditStream(
            "audit-stream",
            AuditStreamArgs(
                log_group_name=group.name,
                log_group_arn=group.arn,
                kinesis=KinesisSettings(**settings),
                tags={"pulumi:stack": "test"},
            ),
        )

    return run_program(build)


@pytest.fixture(scope="module")
def on_demand() -> Recorded:
    return _deploy()


@pytest.fixture(scope="module")
def provisioned() -> Recorded:
    return _deploy(shard_count=3, kms_key_arn=KEY_ARN)


def _stream_arn(recorded: Recorded) -> str:
    return str(recorded.one(STREAM).outputs["arn"])


def _json(recorded: Recorded, typ: str, key: str) -> dict[str, Any]:
    return json.loads(recorded.one(typ).inputs[key])


# --- the stream ---------------------------------------------------------------------------------------------


def test_the_default_stream_is_on_demand_encrypted_with_the_aws_managed_key_for_24_hours(on_demand: Recorded) -> None:
    stream = on_demand.one(STREAM).inputs
    assert stream["streamModeDetails"] == {"streamMode": "ON_DEMAND"}
    assert "shardCount" not in stream
    assert stream["retentionPeriod"] == 24
    assert stream["encryptionType"] == "KMS"
    assert stream["kmsKeyId"] == "alias/aws/kinesis"
    assert stream["tags"] == {"pulumi:stack": "test"}


def test_a_provisioned_stream_has_its_shards_and_the_customer_key(provisioned: Recorded) -> None:
    stream = provisioned.one(STREAM).inputs
    assert stream["streamModeDetails"] == {"streamMode": "PROVISIONED"}
    assert stream["shardCount"] == 3
    assert stream["retentionPeriod"] == 24
    assert (stream["encryptionType"], stream["kmsKeyId"]) == ("KMS", KEY_ARN)


def test_the_stream_goes_away_on_destroy(on_demand: Recorded) -> None:
    stream = on_demand.one(STREAM)
    # Consumers registered by anyone would otherwise block DeleteStream; nothing protects it from deletion.
    assert stream.inputs["enforceConsumerDeletion"] is True
    assert not [r.name for r in on_demand.resources if r.protect or r.retain_on_delete]


# --- the subscription filter --------------------------------------------------------------------------------


def test_the_filter_sends_every_event_of_the_log_group_into_the_stream_as_the_writer_role(on_demand: Recorded) -> None:
    subscription = on_demand.one(FILTER).inputs
    assert subscription["logGroup"] == LOG_GROUP
    assert subscription["filterPattern"] == ""  # everything: the forwarder keeps the audit streams itself
    assert subscription["destinationArn"] == _stream_arn(on_demand)
    assert subscription["roleArn"] == on_demand.one(ROLE).outputs["arn"]
    assert subscription["distribution"] == "Random"
    # Named like the stream, which Pulumi names uniquely: never another stack's filter on the same group.
    assert subscription["name"] == on_demand.one(STREAM).outputs["name"]


def test_destroy_removes_the_filter_before_the_stream_and_the_writers_permissions(on_demand: Recorded) -> None:
    dependencies = set(on_demand.one(FILTER).dependencies)
    # Deleted in reverse: the filter goes first, while the role may still write and the stream still exists.
    for typ in (STREAM, ROLE, ROLE_POLICY, "aws:cloudwatch/logGroup:LogGroup"):
        assert on_demand.one(typ).urn in dependencies, typ


# --- the role CloudWatch Logs writes as ---------------------------------------------------------------------


def test_only_cloudwatch_logs_of_this_region_acting_for_this_log_group_may_assume_the_writer_role(
    on_demand: Recorded,
) -> None:
    policy = _json(on_demand, ROLE, "assumeRolePolicy")
    (statement,) = policy["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Principal"] == {"Service": f"logs.{REGION}.amazonaws.com"}
    assert statement["Action"] == "sts:AssumeRole"
    assert statement["Condition"] == {"ArnLike": {"aws:SourceArn": [LOG_GROUP_ARN, f"{LOG_GROUP_ARN}:*"]}}


@pytest.mark.parametrize("form", [LOG_GROUP_ARN, f"{LOG_GROUP_ARN}:*"], ids=["bare", "describe-log-groups"])
def test_the_trust_condition_is_the_same_for_either_arn_form(form: str) -> None:
    condition = writer_trust_policy(form)["Statement"][0]["Condition"]
    assert condition == {"ArnLike": {"aws:SourceArn": [LOG_GROUP_ARN, f"{LOG_GROUP_ARN}:*"]}}


def test_the_trusted_service_is_the_log_groups_region() -> None:
    arn = f"arn:aws:logs:eu-central-1:{ACCOUNT_ID}:log-group:/aws/eks/prod/cluster"
    assert writer_trust_policy(arn)["Statement"][0]["Principal"] == {"Service": "logs.eu-central-1.amazonaws.com"}


def test_the_writer_may_only_put_records_into_this_stream(on_demand: Recorded) -> None:
    assert len(on_demand.of_type(ROLE_POLICY)) == 1
    assert on_demand.one(ROLE_POLICY).inputs["role"] == f"{on_demand.one(ROLE).name}-id"
    (statement,) = _json(on_demand, ROLE_POLICY, "policy")["Statement"]  # no KMS grant for the AWS-managed key
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == ["kinesis:PutRecord", "kinesis:PutRecords"]
    assert statement["Resource"] == _stream_arn(on_demand)
    assert "NotAction" not in statement and "NotResource" not in statement
    assert not on_demand.one(ROLE).inputs.get("managedPolicyArns")


def test_with_a_customer_key_the_writer_may_make_data_keys_with_that_key_only(provisioned: Recorded) -> None:
    write, encrypt = _json(provisioned, ROLE_POLICY, "policy")["Statement"]
    assert write["Resource"] == _stream_arn(provisioned)
    assert encrypt == {
        "Sid": "EncryptAuditStream",
        "Effect": "Allow",
        "Action": "kms:GenerateDataKey",
        "Resource": KEY_ARN,
    }


# --- outputs, parents ---------------------------------------------------------------------------------------


def test_outputs_and_children(on_demand: Recorded) -> None:
    component = on_demand.one(COMPONENT)
    result = on_demand.result
    assert resolve(result.stream_arn) == _stream_arn(on_demand)
    assert resolve(result.stream_arn).startswith(f"arn:aws:kinesis:{REGION}:{ACCOUNT_ID}:stream/")
    assert resolve(result.writer_role_arn) == on_demand.one(ROLE).outputs["arn"]
    for typ in (STREAM, FILTER, ROLE, ROLE_POLICY):
        assert on_demand.one(typ).parent == component.urn, typ


# --- arguments ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "build"),
    [
        ("shard_count", lambda: KinesisSettings(shard_count=0)),
        ("shard_count", lambda: KinesisSettings(shard_count=101)),
        ("shard_count", lambda: KinesisSettings(shard_count=True)),
        ("kms_key_arn", lambda: KinesisSettings(kms_key_arn="alias/aws/kinesis")),
        ("log_group_arn", lambda: AuditStreamArgs(log_group_name=LOG_GROUP, log_group_arn="arn:aws:s3:::bucket")),
        ("log_group_name", lambda: AuditStreamArgs(log_group_name=" ", log_group_arn=LOG_GROUP_ARN)),
        ("kinesis", lambda: AuditStreamArgs(log_group_name=LOG_GROUP, log_group_arn=LOG_GROUP_ARN, kinesis={})),
    ],
)
def test_bad_arguments_are_refused_by_field(setting: str, build: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        build()
    assert caught.value.setting == setting
    if setting == "shard_count":
        assert "none for on-demand" in str(caught.value)


def test_the_stream_takes_a_key_from_another_resource() -> None:
    def build() -> AuditStream:
        key = aws.kms.Key("audit-key")
        return AuditStream(
            "audit-stream",
            AuditStreamArgs(
                log_group_name=LOG_GROUP,
                log_group_arn=LOG_GROUP_ARN,
                kinesis=KinesisSettings(kms_key_arn=key.arn),
            ),
            opts=pulumi.ResourceOptions(),
        )

    recorded = run_program(build)
    key_arn = recorded.one("aws:kms/key:Key").outputs["arn"]
    assert recorded.one(STREAM).inputs["kmsKeyId"] == key_arn
    assert json.loads(recorded.one(ROLE_POLICY).inputs["policy"])["Statement"][1]["Resource"] == key_arn
