"""The AWS side of the alert outputs: what FalcoDetection looks up, checks and creates for Falcosidekick.

Before its first child, FalcoDetection (and FalcoEksLab, before its cluster) asks AWS with plain invokes, through
the AWS provider of its resource options, for the provider's account, Region and partition, and for the existing
destinations it was given (the SNS topic, the log group). A destination elsewhere, or missing, is refused with the
setting's name, and nothing is created.

Then it creates, as its own children:
  - the SNS topic when asked ("create"): encrypted (alias/aws/sns or the given customer managed key), with a topic
    policy that lets the account administer it and only Falcosidekick's role publish; removed on destroy;
  - the log group when asked ("create"): /falco-eks/<cluster>/alerts, with a retention and an optional KMS key like
    the audit log group's; removed on destroy;
  - Falcosidekick's IRSA role, when any AWS output is on: trusted by Falcosidekick's ServiceAccount only, allowed
    exactly the enabled outputs' calls on those destinations (components/alerts/sidekick_iam.py). No AWS output, no
    role.
The ARNs handed on to Falco resolve only after the policies exist, so Falcosidekick starts with its permissions.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from ..errors import ConfigError
from .outputs import CREATE, AlertOutputs, AwsPlace, check_places
from .sidekick_iam import Destinations, sidekick_policy, sidekick_trust_policy, topic_policy

AWS_MANAGED_SNS_KEY = "alias/aws/sns"
"""SNS's own KMS key: encryption at rest at no key charge; publishers need no KMS permission for it."""


def look_up_place(opts: pulumi.InvokeOptions) -> AwsPlace:
    """The AWS provider's account, Region and partition (plain invokes: they return before anything is created)."""
    return AwsPlace(
        account_id=aws.get_caller_identity(opts=opts).account_id,
        region=aws.get_region(opts=opts).region,
        partition=aws.get_partition(opts=opts).partition,
    )


def log_group_of_alerts(cluster_name: str) -> str:
    """The name of the log group FalcoDetection creates for a cluster's alerts."""
    return f"/falco-eks/{cluster_name}/alerts"


def look_up_destinations(outputs: AlertOutputs, opts: pulumi.InvokeOptions, setting: str = "alert_outputs") -> AwsPlace:
    """Check the AWS outputs against AWS before anything is created: the provider's account and Region, and that the
    existing topic and log group are there. Raises ConfigError naming the setting."""
    place = look_up_place(opts)
    check_places(outputs, place, setting)
    sns = outputs.sns
    if sns is not None and isinstance(sns.topic, str) and sns.topic != CREATE:
        try:
            aws.sns.get_topic(name=sns.topic.rsplit(":", 1)[1], opts=opts)
        except Exception as err:  # noqa: BLE001 - not found, or not allowed to look: either way it cannot be used
            raise ConfigError(
                f"{setting}.sns.topic",
                f"{sns.topic} cannot be read in {place.region} ({err}); create it first, or use {CREATE!r}",
            ) from err
    logs = outputs.cloud_watch_logs
    if logs is not None and isinstance(logs.log_group, str) and logs.log_group != CREATE:
        try:
            aws.cloudwatch.get_log_group(name=logs.log_group, opts=opts)
        except Exception as err:  # noqa: BLE001
            raise ConfigError(
                f"{setting}.cloud_watch_logs.log_group",
                f"no log group {logs.log_group} can be read in {place.region} ({err}); create it first, or use "
                f"{CREATE!r}",
            ) from err
    return place


@dataclass(frozen=True)
class SidekickIdentity:
    """Who Falcosidekick runs as in the cluster, and the cluster's OIDC provider that vouches for it."""

    namespace: str
    service_account: str
    oidc_provider_arn: pulumi.Input[str]
    oidc_issuer: pulumi.Input[str]


@dataclass(frozen=True)
class CreatedDestinations:
    """What create_alert_destinations made: the outputs with every "create" replaced by the real destination."""

    outputs: AlertOutputs
    role_arn: pulumi.Output[str] | None
    topic_arn: pulumi.Output[str] | None
    log_group_name: pulumi.Output[str] | None


def create_alert_destinations(
    name: str,
    outputs: AlertOutputs,
    cluster_name: str,
    identity: SidekickIdentity,
    place: AwsPlace | None,
    tags: Mapping[str, str],
    parent: pulumi.Resource,
) -> CreatedDestinations:
    """Create the asked-for topic and log group and Falcosidekick's role, as children of `parent`; `place` is
    look_up_destinations' answer (required with an AWS output)."""
    if not outputs.uses_aws:
        return CreatedDestinations(outputs, None, None, None)
    if place is None:
        raise ValueError("AWS alert outputs need the AWS provider's place (look_up_destinations)")
    child = pulumi.ResourceOptions(parent=parent)
    tags = dict(tags)

    trust = pulumi.Output.all(identity.oidc_provider_arn, identity.oidc_issuer).apply(
        lambda v: json.dumps(sidekick_trust_policy(v[0], v[1], identity.namespace, identity.service_account), indent=2)
    )
    role = aws.iam.Role(
        f"{name}-sidekick-irsa",
        description=f"Falcosidekick ({identity.namespace}/{identity.service_account}): delivers Falco's alerts",
        assume_role_policy=trust,
        max_session_duration=3600,
        tags=tags,
        opts=child,
    )

    sns = outputs.sns
    topic_arn: pulumi.Output[str] | None = None
    topic_ready: pulumi.Output[str] | None = None
    if sns is not None:
        if sns.topic == CREATE:
            topic = aws.sns.Topic(
                f"{name}-alerts",
                name=f"{cluster_name}-falco-alerts",
                kms_master_key_id=sns.kms_key_arn if sns.kms_key_arn is not None else AWS_MANAGED_SNS_KEY,
                tags=tags,
                opts=child,
            )
            policy = aws.sns.TopicPolicy(
                f"{name}-alerts",
                arn=topic.arn,
                policy=pulumi.Output.all(topic.arn, role.arn).apply(
                    lambda v: json.dumps(topic_policy(v[0], v[1], place.account_id, place.partition), indent=2)
                ),
                opts=child,
            )
            topic_arn = topic.arn
            # Handed on once the policy is in place.
            topic_ready = pulumi.Output.all(topic.arn, policy.id).apply(lambda v: v[0])
        else:
            topic_arn = pulumi.Output.from_input(sns.topic)
            topic_ready = topic_arn

    logs = outputs.cloud_watch_logs
    log_group_name: pulumi.Output[str] | None = None
    if logs is not None:
        if logs.log_group == CREATE:
            group = aws.cloudwatch.LogGroup(
                f"{name}-alerts",
                name=log_group_of_alerts(cluster_name),
                retention_in_days=logs.retention_days,
                kms_key_id=logs.kms_key_arn,
                tags=tags,
                opts=child,
            )
            log_group_name = group.name
        else:
            log_group_name = pulumi.Output.from_input(logs.log_group)

    lake = outputs.security_lake
    permissions = aws.iam.RolePolicy(
        f"{name}-sidekick-outputs",
        role=role.id,
        policy=pulumi.Output.all(
            topic_arn,
            sns.kms_key_arn if sns is not None else None,
            log_group_name,
            lake.kms_key_arn if lake is not None else None,
        ).apply(
            lambda v: json.dumps(
                sidekick_policy(
                    Destinations(
                        partition=place.partition,
                        region=place.region,
                        account_id=place.account_id,
                        topic_arn=v[0],
                        topic_kms_key_arn=v[1],
                        log_group_name=v[2],
                        lake_bucket=lake.bucket if lake is not None else None,
                        lake_prefix=lake.prefix if lake is not None else None,
                        lake_kms_key_arn=v[3],
                    )
                ),
                indent=2,
            )
        ),
        opts=child,
    )
    role_arn = pulumi.Output.all(role.arn, permissions.id).apply(lambda v: v[0])

    resolved = outputs
    if sns is not None and topic_ready is not None:
        resolved = dataclasses.replace(resolved, sns=dataclasses.replace(sns, topic=topic_ready))
    if logs is not None and log_group_name is not None and logs.log_group == CREATE:
        resolved = dataclasses.replace(resolved, cloud_watch_logs=dataclasses.replace(logs, log_group=log_group_name))
    return CreatedDestinations(resolved, role_arn, topic_arn, log_group_name)
