"""IAM documents for the audit forwarder's IRSA role, as plain data (built once, tested as JSON).

Facts they rest on (see ../shared/DESIGN.md and the Service Authorization Reference for CloudWatch Logs):
  - IRSA: the cluster's OIDC provider is the `Federated` principal; EKS's projected token carries
    `sub = system:serviceaccount:<namespace>:<name>` and `aud = sts.amazonaws.com`; the condition keys are
    prefixed with the issuer host and path, without `https://`.
  - logs:FilterLogEvents takes the resource type `log-group`
    (arn:<partition>:logs:<region>:<account>:log-group:<name>). IAM evaluates some log-group actions
    against the group's ARN with a trailing `:*` (the form DescribeLogGroups returns), so both the bare ARN
    and `<arn>:*` are listed; `<arn>:*` also covers the group's `:log-stream:<stream>` ARNs. Nothing else:
    FilterLogEvents with a stream prefix finds new and rotated streams itself, so the forwarder never
    lists streams (tests/test_audit_forwarder.py checks this list against the calls in forwarder/).
  - With the Kinesis source the forwarder makes three calls, all on the `stream` resource type
    (arn:<partition>:kinesis:<region>:<account>:stream/<name>): ListShards, GetShardIterator, GetRecords (the
    contract between the components and the forwarder; the same test checks them against forwarder/). No
    FilterLogEvents then. A stream encrypted with a customer-managed key also needs kms:Decrypt on that key
    (Kinesis Data Streams developer guide, "Permissions to use user-generated KMS keys"); the AWS-managed key
    needs no grant.
"""

from __future__ import annotations

from typing import Any

# The only CloudWatch Logs calls the forwarder makes (forwarder/sources/cloudwatch.py).
LOG_READER_ACTIONS: tuple[str, ...] = ("logs:FilterLogEvents",)

# The only Kinesis calls the forwarder's Kinesis source makes.
STREAM_READER_ACTIONS: tuple[str, ...] = ("kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:ListShards")

STS_AUDIENCE = "sts.amazonaws.com"
POLICY_VERSION = "2012-10-17"


def issuer_host_path(oidc_issuer: str) -> str:
    """The issuer as IAM condition keys want it: no scheme, no trailing slash."""
    issuer = oidc_issuer.strip()
    for scheme in ("https://", "http://"):
        if issuer.startswith(scheme):
            issuer = issuer[len(scheme) :]
    return issuer.rstrip("/")


def log_group_base_arn(log_group_arn: str) -> str:
    """The log group's ARN without the `:*` suffix that DescribeLogGroups adds."""
    arn = log_group_arn.strip()
    return arn[:-2] if arn.endswith(":*") else arn


def service_account_subject(namespace: str, service_account: str) -> str:
    return f"system:serviceaccount:{namespace}:{service_account}"


def irsa_trust_policy(
    oidc_provider_arn: str,
    oidc_issuer: str,
    namespace: str,
    service_account: str,
    sid: str = "ForwarderServiceAccountOnly",
) -> dict[str, Any]:
    """Trust policy that lets only `namespace/service_account`, via the cluster's OIDC provider, assume the role."""
    issuer = issuer_host_path(oidc_issuer)
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                "Sid": sid,
                "Effect": "Allow",
                "Principal": {"Federated": oidc_provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{issuer}:sub": service_account_subject(namespace, service_account),
                        f"{issuer}:aud": STS_AUDIENCE,
                    }
                },
            }
        ],
    }


def log_reader_policy(log_group_arn: str) -> dict[str, Any]:
    """Read-only access to one log group and its streams, for exactly the calls the forwarder makes."""
    group = log_group_base_arn(log_group_arn)
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                "Sid": "ReadClusterAuditLog",
                "Effect": "Allow",
                "Action": list(LOG_READER_ACTIONS),
                "Resource": [group, f"{group}:*"],
            }
        ],
    }


def stream_reader_policy(stream_arn: str, kms_key_arn: str | None = None) -> dict[str, Any]:
    """Read access to one Kinesis Data Stream, for exactly the calls the Kinesis source makes, and decryption with
    its customer-managed key if it has one."""
    return stream_access_policy(
        ("ReadAuditStream", STREAM_READER_ACTIONS), stream_arn, ("DecryptAuditStream", "kms:Decrypt"), kms_key_arn
    )


def stream_access_policy(
    stream: tuple[str, tuple[str, ...]], stream_arn: str, key: tuple[str, str], kms_key_arn: str | None
) -> dict[str, Any]:
    """`stream` (Sid, actions) on the one stream; with a customer-managed key, `key` (Sid, action) on that key."""
    statements: list[dict[str, Any]] = [
        {"Sid": stream[0], "Effect": "Allow", "Action": list(stream[1]), "Resource": stream_arn}
    ]
    if kms_key_arn is not None:
        statements.append({"Sid": key[0], "Effect": "Allow", "Action": key[1], "Resource": kms_key_arn})
    return {"Version": POLICY_VERSION, "Statement": statements}
