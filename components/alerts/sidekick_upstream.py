"""What the pinned Falcosidekick reads and calls, and what its chart makes of values: facts, not logic.

Read from falcosecurity/falcosidekick at tag ``2.34.1`` (config.go, types/types.go, handlers.go, main.go,
outputs/aws.go, outputs/awssecuritylake.go) and from falcosecurity/charts at tag ``falcosidekick-0.12.1``
(charts/falcosidekick/values.yaml, templates/secrets.yaml, templates/deployment.yaml, templates/rbac.yaml),
the subchart version the falco chart 9.x resolves (its dependency is ``falcosidekick 0.12.*``).

Why the lab does not run the image that chart ships (2.32.0): Falcosidekick 2.32.0, the first release on
aws-sdk-go-v2, builds its AWS client from a bare ``aws.Config{Region: ...}`` without any credentials
provider, so IRSA's web-identity credentials are never used and every AWS call goes out unsigned; its
start-up identity check then fails and every AWS output is switched off. 2.33.0 loads the SDK's default
configuration instead (commit "Modify AWS output to use recommended chain of configuration providers"), and
2.34.1 also recovers from a panic in one output without losing the others. Between 2.32.0 and 2.34.1 the
keys the lab sets are unchanged.

tests/test_alert_outputs.py checks the lab's Helm values and IAM policies against these lists; when the pinned
version changes, re-read the sources above and update them with it.
"""

from __future__ import annotations

VERSION = "2.34.1"
"""The Falcosidekick image the lab runs (`falcosidekick.image.tag`)."""
CHART_VERSION = "0.12.1"
"""The falcosidekick chart the falco chart 9.0.0 and 9.1.0 resolve (newest 0.12.x)."""
CHART_IMAGE_TAG = "2.32.0"
"""The image that chart ships (its values.yaml `image.tag`; its appVersion says 2.31.1)."""


# --- configuration: viper keys, and how they become environment variables -----------------------------

CONFIG_KEYS = frozenset(
    {
        # config.go getConfig: top-level defaults
        "ListenAddress",
        "ListenPort",
        "Debug",
        "BracketReplacer",
        "MutualTlsFilesPath",
        "MutualTLSClient.CertFile",
        "MutualTLSClient.KeyFile",
        "MutualTLSClient.CaCertFile",
        "TLSClient.CaCertFile",
        "OutputFieldFormat",
        "TLSServer.Deploy",
        "TLSServer.CertFile",
        "TLSServer.KeyFile",
        "TLSServer.MutualTLS",
        "TLSServer.CaCertFile",
        "TLSServer.NoTLSPort",
        # AWS (config.go SetDefault "AWS.*")
        "AWS.AccessKeyID",
        "AWS.SecretAccessKey",
        "AWS.Region",
        "AWS.RoleARN",
        "AWS.ExternalID",
        "AWS.CheckIdentity",
        "AWS.Lambda.FunctionName",
        "AWS.Lambda.InvocationType",
        "AWS.Lambda.Logtype",
        "AWS.Lambda.MinimumPriority",
        "AWS.SQS.URL",
        "AWS.SQS.MinimumPriority",
        "AWS.SNS.TopicArn",
        "AWS.SNS.MinimumPriority",
        "AWS.SNS.RawJSON",
        "AWS.CloudWatchLogs.LogGroup",
        "AWS.CloudWatchLogs.LogStream",
        "AWS.CloudWatchLogs.MinimumPriority",
        "AWS.S3.Bucket",
        "AWS.S3.Prefix",
        "AWS.S3.MinimumPriority",
        "AWS.S3.Endpoint",
        "AWS.S3.ObjectCannedACL",
        "AWS.SecurityLake.Bucket",
        "AWS.SecurityLake.Region",
        "AWS.SecurityLake.Prefix",
        "AWS.SecurityLake.Interval",
        "AWS.SecurityLake.BatchSize",
        "AWS.SecurityLake.AccountID",
        "AWS.SecurityLake.MinimumPriority",
        "AWS.Kinesis.StreamName",
        "AWS.Kinesis.MinimumPriority",
        # httpOutputDefaults (each also gets the common MutualTLS, CheckCert, MaxConcurrentRequests)
        "Slack.WebhookURL",
        "Slack.Footer",
        "Slack.Username",
        "Slack.Channel",
        "Slack.Icon",
        "Slack.OutputFormat",
        "Slack.MessageFormat",
        "Slack.MinimumPriority",
        "Slack.MutualTLS",
        "Slack.CheckCert",
        "Slack.MaxConcurrentRequests",
        "Teams.WebhookURL",
        "Teams.ActivityImage",
        "Teams.OutputFormat",
        "Teams.MinimumPriority",
        "Teams.MutualTLS",
        "Teams.CheckCert",
        "Teams.MaxConcurrentRequests",
        "Webhook.Address",
        "Webhook.Method",
        "Webhook.MinimumPriority",
        "Webhook.MutualTLS",
        "Webhook.CheckCert",
        "Webhook.MaxConcurrentRequests",
        # outputDefaults
        "Webui.URL",
    }
)
"""Keys Falcosidekick's config loader knows (a default), in the sections the lab touches. viper unmarshals only
keys it knows; an environment variable for any other key is ignored."""

ENV_ONLY = frozenset({"CUSTOMFIELDS", "TEMPLATEDFIELDS", "CUSTOMTAGS", "WEBHOOK_CUSTOMHEADERS", "TLSSERVER_NOTLSPATHS"})
"""Variables config.go reads with os.LookupEnv instead of through a viper key."""


def env_name(key: str) -> str:
    """The environment variable of a viper key: `SetEnvKeyReplacer(".", "_")` and viper's upper-casing."""
    return key.replace(".", "_").upper()


READ_ENV = frozenset(env_name(key) for key in CONFIG_KEYS) | ENV_ONLY
"""Every environment variable the lab may set that Falcosidekick reads."""

SDK_ENV = frozenset({"AWS_EC2_METADATA_DISABLED"})
"""Variables the lab sets for Falcosidekick's AWS SDK (aws-sdk-go-v2's shared configuration, through
LoadDefaultConfig; AWS SDKs and Tools reference guide, "IMDS client"), not for Falcosidekick itself."""

CHART_ENV = {
    # templates/secrets.yaml: chart value path (below `config.`) -> key of the chart's own Secret (envFrom)
    "aws.region": "AWS_REGION",
    "aws.checkidentity": "AWS_CHECKIDENTITY",
    "aws.sns.topicarn": "AWS_SNS_TOPICARN",
    "aws.sns.rawjson": "AWS_SNS_RAWJSON",
    "aws.sns.minimumpriority": "AWS_SNS_MINIMUMPRIORITY",
    "aws.cloudwatchlogs.loggroup": "AWS_CLOUDWATCHLOGS_LOGGROUP",
    "aws.cloudwatchlogs.logstream": "AWS_CLOUDWATCHLOGS_LOGSTREAM",
    "aws.cloudwatchlogs.minimumpriority": "AWS_CLOUDWATCHLOGS_MINIMUMPRIORITY",
    "aws.securitylake.bucket": "AWS_SECURITYLAKE_BUCKET",
    "aws.securitylake.region": "AWS_SECURITYLAKE_REGION",
    "aws.securitylake.prefix": "AWS_SECURITYLAKE_PREFIX",
    "aws.securitylake.accountid": "AWS_SECURITYLAKE_ACCOUNTID",
    "aws.securitylake.interval": "AWS_SECURITYLAKE_INTERVAL",
    "aws.securitylake.batchsize": "AWS_SECURITYLAKE_BATCHSIZE",
    "aws.securitylake.minimumpriority": "AWS_SECURITYLAKE_MINIMUMPRIORITY",
    "slack.minimumpriority": "SLACK_MINIMUMPRIORITY",
    "teams.minimumpriority": "TEAMS_MINIMUMPRIORITY",
    "webhook.minimumpriority": "WEBHOOK_MINIMUMPRIORITY",
}
"""The `config.*` chart values the lab sets and the variable each becomes. `aws.useirsa` and `aws.rolearn`
become no variable with IRSA: the role ARN goes into the ServiceAccount's `eks.amazonaws.com/role-arn`
annotation (templates/rbac.yaml), and `AWS_ROLEARN` is left out so the role is not assumed twice."""

# --- outputs: what turns each on, and the AWS calls each makes --------------------------------------------

PRIORITIES = ("debug", "informational", "notice", "warning", "error", "critical", "alert", "emergency")
"""Falco's priorities, lowest first (types/priority.go). A minimum priority Falcosidekick's checkPriority regex
does not match (e.g. a typo, or "info") is dropped silently and the output then gets every event."""

LOG_STREAM = "falcosidekick-logstream"
"""The stream Falcosidekick creates (CreateLogStream, reused when it exists) when no stream is configured."""

SECURITY_LAKE_REQUIRED = ("Bucket", "Region", "AccountID", "Prefix")
"""AWS.SecurityLake.* keys that must all be set, or the output stays off (main.go, handlers.go)."""
SECURITY_LAKE_INTERVAL_MINUTES = (5, 60)
"""Interval between two Parquet uploads, clamped to this range (config.go); default 5."""

AWS_CALLS: dict[str, tuple[str, ...]] = {
    # outputs/aws.go PublishTopic: one Publish per event.
    "sns": ("sns:Publish",),
    # outputs/aws.go SendCloudWatchLog: CreateLogStream (only while no stream is configured), then PutLogEvents.
    "cloudwatch_logs": ("logs:CreateLogStream", "logs:PutLogEvents"),
    # outputs/awssecuritylake.go writeParquet: one PutObject per batch, with the canned ACL
    # bucket-owner-full-control, which S3 authorizes as s3:PutObjectAcl too (S3 API reference, PutObject).
    "security_lake": ("s3:PutObject", "s3:PutObjectAcl"),
}
"""IAM actions of the calls each AWS output makes. At start Falcosidekick also calls sts:GetCallerIdentity
(AWS.CheckIdentity), which needs no permission; the SDK's AssumeRoleWithWebIdentity is the trust policy's."""

KMS_CALLS: dict[str, tuple[str, ...]] = {
    # Amazon SNS developer guide, "Managing Amazon SNS encryption keys": a publisher to a topic encrypted with a
    # customer managed key needs these on the key.
    "sns": ("kms:Decrypt", "kms:GenerateDataKey"),
    # CloudWatch Logs encrypts with the log group's key itself (the key policy grants logs.<region>): the writer
    # needs nothing.
    "cloudwatch_logs": (),
    # A single-part PutObject into a bucket with SSE-KMS default encryption: the writer needs GenerateDataKey.
    "security_lake": ("kms:GenerateDataKey",),
}
"""KMS actions the writer needs when the destination is encrypted with a customer managed key."""

SECURITY_LAKE_KEY = "/{prefix}/region={region}/accountId={account_id}/eventDay={day}/{uuid}.parquet"
"""The object key Falcosidekick writes (awssecuritylake.go). Its leading "/" was cleaned away by aws-sdk-go v1;
aws-sdk-go-v2 (Falcosidekick 2.32.0 and later) keeps it, so the object may land at "/<prefix>/..." outside the
custom source's location. The lab's policy allows only the location itself."""
