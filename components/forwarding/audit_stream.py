"""AuditStream: the cluster's audit log pushed from CloudWatch Logs into a Kinesis Data Stream, for the forwarder's
Kinesis source (audit_source "kinesis").

What it creates (every one a child of the component, through the AWS provider of the resource options):
  - a Kinesis Data Stream, on-demand or with a fixed shard count, encrypted (the AWS-managed key alias/aws/kinesis,
    or a customer-managed key), keeping records 24 hours (the retention the base price includes);
  - the IAM role CloudWatch Logs assumes to write to it: trusted by the CloudWatch Logs service of the log group's
    Region only, and only when it acts for that log group (aws:SourceArn); allowed PutRecord/PutRecords on that
    stream only (and kms:GenerateDataKey on a customer-managed key);
  - the log group's subscription filter into the stream: every event (the forwarder keeps the audit streams),
    spread over the shards at random.

A log group takes at most two subscription filters. On a group that has two already, creating the filter fails
with `LimitExceededException: Resource limit exceeded.`; `aws logs describe-subscription-filters --log-group-name
<group>` lists them.

Destroy: the filter depends on the stream, the role and the role's policy, so Pulumi deletes it first and nothing
is written to a stream that is going away or with a role that lost its permissions. The stream deletes its
consumers with it (enforce_consumer_deletion) and has no deletion protection.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from ..args import check_whole_number, from_inputs, schema_args
from ..cluster import check_kms_key_arn
from ..errors import ConfigError
from .iam import POLICY_VERSION, log_group_base_arn, stream_access_policy

COMPONENT_TYPE = "falco-eks:index:AuditStream"

RETENTION_HOURS = 24
"""Kinesis' minimum and the retention its base price includes: a forwarder that was away less than this loses
nothing."""
AWS_MANAGED_KEY = "alias/aws/kinesis"
"""Kinesis' own KMS key: encryption at rest at no extra charge, and readers need no KMS grant."""
MAX_SHARDS = 100
"""Refused above this: 100 shards take 100 MB/s of compressed audit log, far beyond any cluster, and cost
$1,080 a month (provisioned, us-east-1); a typo should not."""
WRITER_ACTIONS: tuple[str, ...] = ("kinesis:PutRecord", "kinesis:PutRecords")
"""What CloudWatch Logs calls on the stream (CloudWatch Logs user guide, subscription filters with Kinesis)."""


@schema_args
@dataclass(frozen=True)
class KinesisSettings:
    """The Kinesis Data Stream of `auditSource` "kinesis"."""

    shard_count: int | None = None
    """Shards of a provisioned stream (each takes in 1 MB/s of compressed log records); unset: on-demand, which
    scales by itself and bills per GB plus an hourly charge per stream."""

    kms_key_arn: pulumi.Input[str] | None = None
    """ARN of a customer-managed KMS key that encrypts the stream (its key policy must let the account's IAM
    policies grant its use); unset: the AWS-managed key alias/aws/kinesis."""

    def __post_init__(self) -> None:
        if self.shard_count is not None:
            check_whole_number("shard_count", self.shard_count, 1, MAX_SHARDS, none_means="on-demand")
        check_kms_key_arn("kms_key_arn", self.kms_key_arn)


@schema_args
@dataclass(frozen=True)
class AuditStreamArgs:
    """Arguments of AuditStream. Plain values are checked when built; errors name the field."""

    log_group_name: pulumi.Input[str]
    """The log group to subscribe (/aws/eks/<cluster>/cluster). It must have room for one more subscription
    filter: a log group takes at most two."""

    log_group_arn: pulumi.Input[str]
    """ARN of that log group, with or without the trailing :* (the writer role trusts CloudWatch Logs acting for
    this group only, in its Region)."""

    kinesis: KinesisSettings = field(default_factory=KinesisSettings)
    """Capacity mode and encryption key of the stream."""

    tags: Mapping[str, str] = field(default_factory=dict)
    """AWS tags for the stream and the role."""

    def __post_init__(self) -> None:
        for setting in ("log_group_name", "log_group_arn"):
            value = getattr(self, setting)
            if value is None or (isinstance(value, str) and not value.strip()):
                raise ConfigError(setting, "is required")
        if isinstance(self.log_group_arn, str):
            log_group_parts(self.log_group_arn)  # raises ConfigError naming the field
        if not isinstance(self.kinesis, KinesisSettings):
            raise ConfigError("kinesis", "must be a KinesisSettings")
        if not isinstance(self.tags, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.tags.items()
        ):
            raise ConfigError("tags", "must map tag names to string values")


@dataclass(frozen=True)
class LogGroupArn:
    arn: str
    """The ARN without a trailing :*."""
    region: str


def log_group_parts(log_group_arn: str) -> LogGroupArn:
    """The log group's ARN (bare) and Region: arn:<partition>:logs:<region>:<account>:log-group:<name>[:*]."""
    bare = log_group_base_arn(log_group_arn)
    parts = bare.split(":", 6)
    if len(parts) != 7 or parts[0] != "arn" or parts[2] != "logs" or parts[5] != "log-group" or not parts[6]:
        raise ConfigError(
            "log_group_arn",
            f"must be a CloudWatch Logs log group ARN (arn:aws:logs:<region>:<account>:log-group:"
            f"<name>), got {log_group_arn!r}",
        )
    return LogGroupArn(arn=bare, region=parts[3])


def writer_trust_policy(log_group_arn: str) -> dict[str, Any]:
    """Only CloudWatch Logs of the log group's Region, acting for that log group, may assume the role.

    aws:SourceArn is the confused-deputy guard the CloudWatch Logs user guide recommends for subscription roles.
    Its value is the log group's ARN; AWS writes it with a trailing :* in its examples (and accepts wildcards for
    the unknown part), so both forms match, and nothing outside the group's ARN does."""
    group = log_group_parts(log_group_arn)
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                "Sid": "CloudWatchLogsForThisLogGroupOnly",
                "Effect": "Allow",
                # The Regional principal: CloudWatch Logs of another Region cannot assume it.
                "Principal": {"Service": f"logs.{group.region}.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {"ArnLike": {"aws:SourceArn": [group.arn, f"{group.arn}:*"]}},
            }
        ],
    }


def writer_policy(stream_arn: str, kms_key_arn: str | None = None) -> dict[str, Any]:
    """Write to the one stream; with a customer-managed key, make data keys with it (Kinesis encrypts each record
    with the writer's permissions)."""
    return stream_access_policy(
        ("WriteAuditStream", WRITER_ACTIONS), stream_arn, ("EncryptAuditStream", "kms:GenerateDataKey"), kms_key_arn
    )


class AuditStream(pulumi.ComponentResource):
    """A Kinesis Data Stream fed by the log group's subscription filter, with the role CloudWatch Logs writes as."""

    stream_arn: pulumi.Output[str]
    """ARN of the stream (the forwarder's --source kinesis:<ARN>)."""

    stream_name: pulumi.Output[str]
    """Name of the stream; the subscription filter has the same name."""

    writer_role_arn: pulumi.Output[str]
    """IAM role CloudWatch Logs assumes to write to the stream."""

    def __init__(self, name: str, args: AuditStreamArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        args = from_inputs(AuditStreamArgs, args)
        super().__init__(COMPONENT_TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        kinesis = args.kinesis
        provisioned = kinesis.shard_count is not None

        stream = aws.kinesis.Stream(
            name,
            stream_mode_details=aws.kinesis.StreamStreamModeDetailsArgs(
                stream_mode="PROVISIONED" if provisioned else "ON_DEMAND"
            ),
            shard_count=kinesis.shard_count,
            retention_period=RETENTION_HOURS,
            encryption_type="KMS",
            kms_key_id=kinesis.kms_key_arn if kinesis.kms_key_arn is not None else AWS_MANAGED_KEY,
            # Registered consumers (the forwarder registers none) would otherwise block the stream's deletion.
            enforce_consumer_deletion=True,
            tags=dict(args.tags),
            opts=child,
        )
        role = aws.iam.Role(
            f"{name}-writer",
            description="CloudWatch Logs writes the EKS audit log into the audit stream",
            assume_role_policy=pulumi.Output.from_input(args.log_group_arn).apply(
                lambda arn: json.dumps(writer_trust_policy(arn), indent=2)
            ),
            max_session_duration=3600,
            tags=dict(args.tags),
            opts=child,
        )
        permissions = aws.iam.RolePolicy(
            f"{name}-writer",
            role=role.id,
            policy=pulumi.Output.all(stream.arn, kinesis.kms_key_arn).apply(
                lambda values: json.dumps(writer_policy(values[0], values[1]), indent=2)
            ),
            opts=child,
        )
        subscription = aws.cloudwatch.LogSubscriptionFilter(
            name,
            name=stream.name,  # unique like the stream: a second filter of the same name would replace this one
            log_group=args.log_group_name,
            filter_pattern="",  # every event; the forwarder keeps the kube-apiserver-audit-* streams
            destination_arn=stream.arn,
            role_arn=role.arn,
            # Random, not ByLogStream: EKS writes through a few audit streams, which would each load one shard.
            distribution="Random",
            # CloudWatch Logs tests the role when the filter is created, and must keep its permission until the
            # filter is gone: the policy is created before the filter and deleted after it.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[permissions]),
        )

        self.stream_arn = stream.arn
        self.stream_name = stream.name
        self.writer_role_arn = role.arn
        self.subscription = subscription
        """The subscription filter (others may depend on it)."""
        self.register_outputs(
            {"stream_arn": self.stream_arn, "stream_name": self.stream_name, "writer_role_arn": self.writer_role_arn}
        )
