"""IAM documents for Falcosidekick's IRSA role and for the SNS topic FalcoDetection creates, as plain data.

The role is trusted by Falcosidekick's ServiceAccount only (`sub` and `aud`, as the forwarder's role) and allowed
exactly the calls its enabled outputs make (components/alerts/sidekick_upstream.py, AWS_CALLS), on exactly their
destinations:
  - SNS: sns:Publish on the topic.
  - CloudWatch Logs: logs:CreateLogStream and logs:PutLogEvents on the one stream Falcosidekick writes,
    `<group>:log-stream:falcosidekick-logstream` (both actions take the log-stream resource type).
  - Security Lake: s3:PutObject and s3:PutObjectAcl on `<bucket>/<prefix>/*`, only with the canned ACL
    Falcosidekick sends (bucket-owner-full-control).
  - A customer managed KMS key only where the writer needs it (KMS_CALLS), and only through that service
    (kms:ViaService): SNS publishes need kms:GenerateDataKey and kms:Decrypt, S3 puts kms:GenerateDataKey; a log
    group's key is CloudWatch Logs' own business.

The topic's policy lets the account administer the topic and subscribe to it, and denies sns:Publish to every
principal but Falcosidekick's role: an IAM policy elsewhere in the account that allows sns:Publish on "*" does not
reach this topic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..forwarding.iam import POLICY_VERSION, irsa_trust_policy
from .sidekick_upstream import AWS_CALLS, KMS_CALLS, LOG_STREAM

TOPIC_ADMIN_ACTIONS: tuple[str, ...] = (
    "sns:AddPermission",
    "sns:DeleteTopic",
    "sns:GetTopicAttributes",
    "sns:ListSubscriptionsByTopic",
    "sns:RemovePermission",
    "sns:SetTopicAttributes",
    "sns:Subscribe",
)
"""What a topic's owner does (SNS's default topic policy, without Publish)."""

CANNED_ACL = "bucket-owner-full-control"
"""The ACL Falcosidekick puts on every Security Lake object (awssecuritylake.go)."""


@dataclass(frozen=True)
class Destinations:
    """The resolved destinations of the enabled AWS outputs: plain values, once every ARN is known."""

    partition: str
    region: str
    account_id: str
    topic_arn: str | None = None
    topic_kms_key_arn: str | None = None
    log_group_name: str | None = None
    lake_bucket: str | None = None
    lake_prefix: str | None = None
    lake_kms_key_arn: str | None = None

    def log_stream_arn(self) -> str:
        return (
            f"arn:{self.partition}:logs:{self.region}:{self.account_id}:log-group:{self.log_group_name}"
            f":log-stream:{LOG_STREAM}"
        )

    def lake_objects_arn(self) -> str:
        return f"arn:{self.partition}:s3:::{self.lake_bucket}/{self.lake_prefix}/*"


def sidekick_trust_policy(
    oidc_provider_arn: str, oidc_issuer: str, namespace: str, service_account: str
) -> dict[str, Any]:
    """Trust policy: only Falcosidekick's ServiceAccount, through the cluster's OIDC provider."""
    return irsa_trust_policy(oidc_provider_arn, oidc_issuer, namespace, service_account, sid="FalcosidekickOnly")


def _via(service: str, region: str) -> dict[str, Any]:
    return {"StringEquals": {"kms:ViaService": f"{service}.{region}.amazonaws.com"}}


def sidekick_policy(d: Destinations) -> dict[str, Any]:
    """The role's permissions: the calls of the enabled outputs, on their destinations only."""
    statements: list[dict[str, Any]] = []
    if d.topic_arn is not None:
        statements.append(
            {"Sid": "PublishAlerts", "Effect": "Allow", "Action": list(AWS_CALLS["sns"]), "Resource": d.topic_arn}
        )
        if d.topic_kms_key_arn is not None:
            statements.append(
                {
                    "Sid": "PublishWithTheTopicKey",
                    "Effect": "Allow",
                    "Action": list(KMS_CALLS["sns"]),
                    "Resource": d.topic_kms_key_arn,
                    "Condition": _via("sns", d.region),
                }
            )
    if d.log_group_name is not None:
        statements.append(
            {
                "Sid": "WriteAlertLog",
                "Effect": "Allow",
                "Action": list(AWS_CALLS["cloudwatch_logs"]),
                "Resource": d.log_stream_arn(),
            }
        )
    if d.lake_bucket is not None:
        statements.append(
            {
                "Sid": "WriteSecurityLake",
                "Effect": "Allow",
                "Action": list(AWS_CALLS["security_lake"]),
                "Resource": d.lake_objects_arn(),
                "Condition": {"StringEquals": {"s3:x-amz-acl": CANNED_ACL}},
            }
        )
        if d.lake_kms_key_arn is not None:
            statements.append(
                {
                    "Sid": "EncryptSecurityLakeObjects",
                    "Effect": "Allow",
                    "Action": list(KMS_CALLS["security_lake"]),
                    "Resource": d.lake_kms_key_arn,
                    "Condition": _via("s3", d.region),
                }
            )
    if not statements:
        raise ValueError("Falcosidekick's role needs at least one AWS output")
    return {"Version": POLICY_VERSION, "Statement": statements}


def topic_policy(topic_arn: str, role_arn: str, account_id: str, partition: str) -> dict[str, Any]:
    """The created topic's policy: the account administers and subscribes; only Falcosidekick's role publishes."""
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                "Sid": "AccountAdministers",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
                "Action": list(TOPIC_ADMIN_ACTIONS),
                "Resource": topic_arn,
            },
            {
                "Sid": "FalcosidekickPublishes",
                "Effect": "Allow",
                "Principal": {"AWS": role_arn},
                "Action": "sns:Publish",
                "Resource": topic_arn,
            },
            {
                "Sid": "NobodyElsePublishes",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "sns:Publish",
                "Resource": topic_arn,
                "Condition": {"ArnNotEquals": {"aws:PrincipalArn": role_arn}},
            },
        ],
    }
