"""Where Falco's alerts go besides Falcosidekick's UI: the alert-outputs argument and its checks.

Each output is off unless its settings are given. Falcosidekick delivers to every enabled output on its own
(one goroutine per output and event, so a destination that is down costs only its own deliveries):

- SNS: a topic FalcoDetection creates ("create") or an existing topic ARN, in the AWS provider's account and Region.
- CloudWatch Logs: a log group FalcoDetection creates ("create") or an existing one, by name.
- AWS Security Lake: an existing custom source's S3 location, written as OCSF Parquet files.
- Slack, Teams, a generic webhook: the URL comes from a Kubernetes Secret the caller creates in Falco's namespace
  and names here (name and key); it never passes through Helm values, the stack's config or the Pulumi state.

Plain values are checked when the arguments are built; where an output names something in AWS, `check_places`
compares it with the AWS provider's account and Region before anything is created (components/
destinations.py asks AWS for those). The facts behind each rule are in components/alerts/sidekick_upstream.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import pulumi

from ..args import check_whole_number, schema_args
from ..cluster import check_kms_key_arn, check_retention_days
from ..errors import ConfigError
from ..names import is_data_key, is_dns_subdomain
from .sidekick_upstream import PRIORITIES

CREATE = "create"
"""The value of `sns.topic` or `cloudWatchLogs.logGroup` that asks FalcoDetection to create the destination."""

DEFAULT_ALERT_LOG_RETENTION_DAYS = 30


class AlertPriority(StrEnum):
    """A Falco priority, the least an alert needs to reach an output (Falcosidekick's minimumpriority)."""

    DEBUG = "debug"
    """Every alert."""
    INFORMATIONAL = "informational"
    """Also Falco's metrics snapshot (about one a minute per audit replica) and the k8saudit "K8s ... Created" rules."""
    NOTICE = "notice"
    """E.g. "Terminal shell in container", "Attach/Exec Pod"."""
    WARNING = "warning"
    """E.g. "Full K8s Administrative Access", "Pod Created in Kube Namespace"."""
    ERROR = "error"
    """Error and above."""
    CRITICAL = "critical"
    """Critical and above."""
    ALERT = "alert"
    """Alert and Emergency."""
    EMERGENCY = "emergency"
    """Emergency only."""


# Kubernetes names (apimachinery validation): a Secret's name is a DNS subdomain, a data key is
# [-._a-zA-Z0-9]+; both at most 253 characters.
# SNS: arn:<partition>:sns:<region>:<account>:<name>, the name 1-256 letters, digits, '-' or '_' (.fifo for FIFO).
_TOPIC_ARN = re.compile(r"^arn:(aws[a-z-]*):sns:([a-z0-9-]+):(\d{12}):([A-Za-z0-9_-]{1,256}(\.fifo)?)$")
# CloudWatch Logs group names: 1-512 of letters, digits, '_', '-', '/', '.', '#'.
_LOG_GROUP_NAME = re.compile(r"^[A-Za-z0-9_/.#-]{1,512}$")
_ACCOUNT_ID = re.compile(r"^\d{12}$")
# S3 bucket names: 3-63 lowercase letters, digits, '.', '-', starting and ending with a letter or digit.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# Security Lake's own buckets: aws-security-data-lake-<region>-<id>.
_LAKE_BUCKET_REGION = re.compile(r"^aws-security-data-lake-([a-z]{2}(?:-[a-z]+)+-\d+)-")
_KMS_REGION = re.compile(r"^arn:aws[a-z-]*:kms:([a-z0-9-]+):(\d{12}):key/")


def check_priority(setting: str, value: object) -> AlertPriority:
    """The priority `value` names (any case; "info" is Falco's short form of informational), or a ConfigError.

    Falcosidekick itself would take an unknown name as "no minimum" and send every alert."""
    text = value.lower().strip() if isinstance(value, str) else ""
    if text == "info":
        text = AlertPriority.INFORMATIONAL.value
    if text not in PRIORITIES:
        raise ConfigError(setting, f"{value!r} is not a Falco priority; use one of {', '.join(PRIORITIES)}")
    return AlertPriority(text)


def check_secret_ref(name_setting: str, name: object, key_setting: str, key: object) -> None:
    """Refuse a Secret name or key that Kubernetes would refuse."""
    if not is_dns_subdomain(name):
        raise ConfigError(
            name_setting,
            f"{name!r} is not a Kubernetes Secret name (lower-case letters, digits, '-' and '.', at most 253 "
            "characters)",
        )
    if not is_data_key(key):
        raise ConfigError(key_setting, f"{key!r} is not a Kubernetes Secret key (letters, digits, '-', '_' and '.')")


@dataclass(frozen=True)
class TopicArn:
    partition: str
    region: str
    account_id: str
    name: str


def topic_arn_parts(setting: str, arn: str) -> TopicArn:
    """An SNS topic ARN's parts, or a ConfigError; FIFO topics are refused (Falcosidekick sends no message group)."""
    match = _TOPIC_ARN.match(arn)
    if match is None:
        raise ConfigError(
            setting, f"{arn!r} is neither {CREATE!r} nor an SNS topic ARN (arn:aws:sns:<region>:<account>:<name>)"
        )
    if match[5]:
        raise ConfigError(setting, f"{arn!r} is a FIFO topic: Falcosidekick publishes without a message group ID")
    return TopicArn(match[1], match[2], match[3], match[4])


@schema_args
@dataclass(frozen=True)
class SnsAlerts:
    """Alerts published to an SNS topic, one message per alert: the alert's JSON as Falcosidekick sends it."""

    topic: pulumi.Input[str] = CREATE
    """"create" (FalcoDetection creates an encrypted topic that only Falcosidekick's role may publish to), or the ARN
    of an existing standard topic in the AWS provider's account and Region."""

    kms_key_arn: pulumi.Input[str] | None = None
    """ARN of the customer managed KMS key that encrypts the topic: a created topic is encrypted with it, and
    Falcosidekick's role may use it to publish. Unset: a created topic uses the AWS managed key alias/aws/sns, and
    an existing topic must not need a customer managed key."""

    minimum_priority: AlertPriority = AlertPriority.WARNING
    """The least priority an alert needs to be published (warning by default: the topic pages or mails)."""

    def __post_init__(self) -> None:
        if self.topic is None or (isinstance(self.topic, str) and not self.topic.strip()):
            raise ConfigError("topic", f"is required: {CREATE!r} or an SNS topic ARN")
        if isinstance(self.topic, str) and self.topic != CREATE:
            topic_arn_parts("topic", self.topic)
        check_kms_key_arn("kms_key_arn", self.kms_key_arn)
        object.__setattr__(self, "minimum_priority", check_priority("minimum_priority", self.minimum_priority))


@schema_args
@dataclass(frozen=True)
class LogGroupAlerts:
    """Alerts written to a CloudWatch Logs log group, one log event per alert (the alert's JSON), in the stream
    falcosidekick-logstream, which Falcosidekick creates."""

    log_group: pulumi.Input[str] = CREATE
    """"create" (FalcoDetection creates /falco-eks/<clusterName>/alerts, removed on destroy), or the name of an
    existing log group in the AWS provider's Region."""

    retention_days: int = DEFAULT_ALERT_LOG_RETENTION_DAYS
    """How long a created log group keeps alerts; one of the values CloudWatch accepts (30 by default)."""

    kms_key_arn: pulumi.Input[str] | None = None
    """ARN of a customer managed KMS key that encrypts a created log group (its key policy must allow the
    logs.<region>.amazonaws.com service principal). Unset: CloudWatch's own encryption."""

    minimum_priority: AlertPriority = AlertPriority.NOTICE
    """The least priority an alert needs to be logged (notice by default: leaves out the k8saudit "K8s ... Created"
    rules and Falco's metrics snapshot, both informational)."""

    def __post_init__(self) -> None:
        group = self.log_group
        if group is None or (isinstance(group, str) and not group.strip()):
            raise ConfigError("log_group", f"is required: {CREATE!r} or a log group name")
        if isinstance(group, str) and group != CREATE:
            if group.startswith("arn:"):
                raise ConfigError("log_group", f"{group!r}: give the log group's name, not its ARN")
            if not _LOG_GROUP_NAME.match(group):
                raise ConfigError("log_group", f"{group!r} is not a CloudWatch Logs log group name")
        check_retention_days("retention_days", self.retention_days)
        check_kms_key_arn("kms_key_arn", self.kms_key_arn)
        existing = isinstance(group, str) and group != CREATE
        if existing and (self.kms_key_arn is not None or self.retention_days != DEFAULT_ALERT_LOG_RETENTION_DAYS):
            setting = "kms_key_arn" if self.kms_key_arn is not None else "retention_days"
            raise ConfigError(setting, f"applies only to a log group FalcoDetection creates (log_group {CREATE!r})")
        object.__setattr__(self, "minimum_priority", check_priority("minimum_priority", self.minimum_priority))


@dataclass(frozen=True)
class LakeLocation:
    bucket: str
    prefix: str


def lake_location(setting: str, location: object) -> LakeLocation:
    """A custom source's S3 location (s3://<bucket>/<prefix>/), or a ConfigError naming what is missing."""
    if not isinstance(location, str) or not location.startswith("s3://"):
        raise ConfigError(
            setting, f"{location!r} is not an S3 location; give the custom source's s3://<bucket>/<prefix>/"
        )
    bucket, _, prefix = location[len("s3://") :].partition("/")
    prefix = prefix.strip("/")
    if not bucket:
        raise ConfigError(setting, f"{location!r} names no bucket; Falcosidekick needs the bucket and the prefix")
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise ConfigError(setting, f"{bucket!r} is not an S3 bucket name")
    if not prefix:
        raise ConfigError(
            setting,
            f"{location!r} has no prefix; Falcosidekick needs the custom source's prefix as well as its bucket "
            "(e.g. s3://aws-security-data-lake-us-west-2-abcd/ext/falco/)",
        )
    if "//" in prefix or any(c in prefix for c in "*?"):
        raise ConfigError(setting, f"{prefix!r} is not an S3 key prefix")
    return LakeLocation(bucket, prefix)


@schema_args
@dataclass(frozen=True)
class SecurityLakeAlerts:
    """Alerts written to an Amazon Security Lake custom source as OCSF Security Findings, in Parquet files of up to
    1,000 alerts every 5 minutes. The custom source must exist; Falcosidekick writes with its own IAM role, not the
    custom source's provider role."""

    location: str
    """The custom source's S3 location, as Security Lake reports it: s3://<bucket>/<prefix>/ (e.g.
    s3://aws-security-data-lake-us-west-2-abcd/ext/falco/). The bucket must be in the AWS provider's Region."""

    account_id: str | None = None
    """The AWS account the alerts are about (the accountId partition of the files); unset: the AWS provider's."""

    kms_key_arn: pulumi.Input[str] | None = None
    """ARN of the customer managed KMS key the lake's bucket encrypts with, if any: Falcosidekick's role may then
    generate data keys with it, through S3 only."""

    minimum_priority: AlertPriority = AlertPriority.NOTICE
    """The least priority an alert needs to be written (notice by default)."""

    def __post_init__(self) -> None:
        lake_location("location", self.location)
        account = self.account_id
        if account is not None and (not isinstance(account, str) or not _ACCOUNT_ID.match(account)):
            raise ConfigError("account_id", f"{self.account_id!r} is not an AWS account ID (12 digits)")
        check_kms_key_arn("kms_key_arn", self.kms_key_arn)
        object.__setattr__(self, "minimum_priority", check_priority("minimum_priority", self.minimum_priority))

    @property
    def bucket(self) -> str:
        return lake_location("location", self.location).bucket

    @property
    def prefix(self) -> str:
        return lake_location("location", self.location).prefix


@schema_args
@dataclass(frozen=True)
class ChatAlerts:
    """Alerts posted to a Slack or Microsoft Teams incoming webhook whose URL is in a Kubernetes Secret."""

    secret_name: str
    """Name of the Secret, in Falco's namespace, that holds the webhook URL; the caller creates it (kubectl create
    secret generic ...). Until it exists, Falcosidekick runs without this output; restart Falcosidekick after
    creating or changing it."""

    secret_key: str = "url"  # noqa: S105 (a key name)
    """Key of the URL in that Secret."""

    minimum_priority: AlertPriority = AlertPriority.WARNING
    """The least priority an alert needs to be posted (warning by default)."""

    def __post_init__(self) -> None:
        check_secret_ref("secret_name", self.secret_name, "secret_key", self.secret_key)
        object.__setattr__(self, "minimum_priority", check_priority("minimum_priority", self.minimum_priority))


@schema_args
@dataclass(frozen=True)
class WebhookAlerts:
    """Alerts sent as JSON (an HTTP POST per alert) to a URL that is in a Kubernetes Secret."""

    secret_name: str
    """Name of the Secret, in Falco's namespace, that holds the URL; the caller creates it. Until it exists,
    Falcosidekick runs without this output; restart Falcosidekick after creating or changing it."""

    secret_key: str = "url"  # noqa: S105 (a key name)
    """Key of the URL in that Secret."""

    headers_secret_key: str | None = None
    """Key, in the same Secret, of extra request headers as "Name:value,Name:value" (e.g. an authorization token);
    unset: none."""

    port: int = 443
    """TCP port of the URL (its host is reached on this port through Falcosidekick's NetworkPolicy)."""

    minimum_priority: AlertPriority = AlertPriority.NOTICE
    """The least priority an alert needs to be sent (notice by default)."""

    def __post_init__(self) -> None:
        check_secret_ref("secret_name", self.secret_name, "secret_key", self.secret_key)
        if self.headers_secret_key is not None:
            check_secret_ref("secret_name", self.secret_name, "headers_secret_key", self.headers_secret_key)
            if self.headers_secret_key == self.secret_key:
                raise ConfigError("headers_secret_key", "must differ from secret_key")
        check_whole_number("port", self.port, 1, 65535)
        object.__setattr__(self, "minimum_priority", check_priority("minimum_priority", self.minimum_priority))


@schema_args
@dataclass(frozen=True)
class AlertOutputs:
    """Where Falcosidekick sends Falco's alerts besides its UI; each output is off unless set. Any output installs
    Falcosidekick, with or without its UI."""

    sns: SnsAlerts | None = None
    """An SNS topic (e.g. for e-mail or paging); unset: off."""

    cloud_watch_logs: LogGroupAlerts | None = None
    """A CloudWatch Logs log group (metric filters, alarms, Logs Insights); unset: off."""

    security_lake: SecurityLakeAlerts | None = None
    """An Amazon Security Lake custom source; unset: off."""

    slack: ChatAlerts | None = None
    """A Slack incoming webhook; unset: off."""

    teams: ChatAlerts | None = None
    """A Microsoft Teams incoming webhook (Office 365 connector card); unset: off."""

    webhook: WebhookAlerts | None = None
    """A generic HTTP endpoint; unset: off."""

    def __post_init__(self) -> None:
        for setting, kind in (
            ("sns", SnsAlerts),
            ("cloud_watch_logs", LogGroupAlerts),
            ("security_lake", SecurityLakeAlerts),
            ("slack", ChatAlerts),
            ("teams", ChatAlerts),
            ("webhook", WebhookAlerts),
        ):
            value = getattr(self, setting)
            if value is not None and not isinstance(value, kind):
                raise ConfigError(setting, f"must be a {kind.__name__}")
        chats = [(n, getattr(self, n)) for n in ("slack", "teams", "webhook") if getattr(self, n) is not None]
        refs: dict[tuple[str, str], str] = {}
        for name, chat in chats:
            for key in (chat.secret_key, getattr(chat, "headers_secret_key", None)):
                if key is None:
                    continue
                other = refs.setdefault((chat.secret_name, key), name)
                if other != name:
                    raise ConfigError(f"{name}.secret_key", f"{chat.secret_name}/{key} is already {other}'s URL")

    @property
    def uses_aws(self) -> bool:
        """Whether any output calls AWS (and Falcosidekick needs an IAM role)."""
        return any(o is not None for o in (self.sns, self.cloud_watch_logs, self.security_lake))

    @property
    def enabled(self) -> bool:
        """Whether any output is on."""
        return self.uses_aws or any(o is not None for o in (self.slack, self.teams, self.webhook))

    @property
    def creates(self) -> bool:
        """Whether an output asks for a destination to be created."""
        return (self.sns is not None and self.sns.topic == CREATE) or (
            self.cloud_watch_logs is not None and self.cloud_watch_logs.log_group == CREATE
        )


@dataclass(frozen=True)
class AwsPlace:
    """The account, Region and partition of the AWS provider the destinations must live with."""

    account_id: str
    region: str
    partition: str = "aws"


def check_places(outputs: AlertOutputs, place: AwsPlace, setting: str = "alert_outputs") -> None:
    """Refuse plain ARNs and locations outside the provider's account or Region: Falcosidekick has one AWS client,
    in one Region, and publishes to SNS, writes to S3 and uses KMS keys there."""
    if outputs.sns is not None and isinstance(outputs.sns.topic, str) and outputs.sns.topic != CREATE:
        topic = topic_arn_parts(f"{setting}.sns.topic", outputs.sns.topic)
        if topic.region != place.region or topic.account_id != place.account_id:
            raise ConfigError(
                f"{setting}.sns.topic",
                f"{outputs.sns.topic} is in {topic.account_id}/{topic.region}, but Falcosidekick publishes from "
                f"{place.account_id}/{place.region} (the AWS provider's account and Region); use a topic there",
            )
    keys: list[tuple[str, Any]] = []
    if outputs.sns is not None:
        keys.append((f"{setting}.sns.kms_key_arn", outputs.sns.kms_key_arn))
    if outputs.cloud_watch_logs is not None:
        keys.append((f"{setting}.cloud_watch_logs.kms_key_arn", outputs.cloud_watch_logs.kms_key_arn))
    if outputs.security_lake is not None:
        keys.append((f"{setting}.security_lake.kms_key_arn", outputs.security_lake.kms_key_arn))
        bucket = outputs.security_lake.bucket
        lake_region = _LAKE_BUCKET_REGION.match(bucket)
        if lake_region is not None and lake_region[1] != place.region:
            raise ConfigError(
                f"{setting}.security_lake.location",
                f"the bucket {bucket} is Security Lake's for {lake_region[1]}, but Falcosidekick writes from "
                f"{place.region} (the AWS provider's Region); use the custom source of {place.region}",
            )
    for key_setting, key in keys:
        match = _KMS_REGION.match(key) if isinstance(key, str) else None
        if match is not None and match[1] != place.region:
            raise ConfigError(key_setting, f"{key} is a key in {match[1]}; the destination is in {place.region}")
