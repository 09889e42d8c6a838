"""The falcosidekick subchart's `config` values for the alert outputs: plain settings as chart values, URLs as
environment variables read from the caller's Secret.

How the chart turns them into Falcosidekick's environment (falcosidekick chart 0.12.1, see
components/alerts/sidekick_upstream.py): `config.*` values go into the chart's own Secret, which the container reads
with `envFrom`; `config.extraEnv` goes verbatim into the container's `env`, which Kubernetes lets win over `envFrom`.
So `SLACK_WEBHOOKURL` from a `secretKeyRef` replaces the chart Secret's empty one, and the URL is never a Helm
value. Every `secretKeyRef` is optional: while the caller's Secret is missing, Falcosidekick starts without that
output instead of not starting at all (and taking every other output and the UI with it).

With an AWS output, `config.aws.useirsa` and `config.aws.rolearn` make the chart annotate Falcosidekick's
ServiceAccount with the role (IRSA) and leave `AWS_ROLEARN` out, so the role is not assumed a second time.
"""

from __future__ import annotations

from typing import Any

import pulumi

from .outputs import AlertOutputs, WebhookAlerts
from .sidekick_upstream import SECURITY_LAKE_INTERVAL_MINUTES

SECURITY_LAKE_BATCH_SIZE = 1000
"""Alerts per Parquet file at most (Falcosidekick's default)."""


def _from_secret(variable: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": variable, "valueFrom": {"secretKeyRef": {"name": secret, "key": key, "optional": True}}}


def secret_env(outputs: AlertOutputs) -> list[dict[str, Any]]:
    """The `config.extraEnv` entries that read the chat and webhook URLs (and webhook headers) from Secrets."""
    env: list[dict[str, Any]] = []
    if outputs.slack is not None:
        env.append(_from_secret("SLACK_WEBHOOKURL", outputs.slack.secret_name, outputs.slack.secret_key))
    if outputs.teams is not None:
        env.append(_from_secret("TEAMS_WEBHOOKURL", outputs.teams.secret_name, outputs.teams.secret_key))
    webhook: WebhookAlerts | None = outputs.webhook
    if webhook is not None:
        env.append(_from_secret("WEBHOOK_ADDRESS", webhook.secret_name, webhook.secret_key))
        if webhook.headers_secret_key is not None:
            env.append(_from_secret("WEBHOOK_CUSTOMHEADERS", webhook.secret_name, webhook.headers_secret_key))
    return env


def output_config_values(
    outputs: AlertOutputs,
    role_arn: pulumi.Input[str] | None,
    region: pulumi.Input[str] | None,
    account_id: pulumi.Input[str] | None,
) -> dict[str, Any]:
    """`falcosidekick.config` for the enabled outputs; AWS settings only with an AWS output (then `role_arn`,
    `region` and `account_id`, the AWS provider's, are required)."""
    config: dict[str, Any] = {}
    env = secret_env(outputs)
    for name in ("slack", "teams", "webhook"):
        chat = getattr(outputs, name)
        if chat is not None:
            config[name] = {"minimumpriority": chat.minimum_priority.value}
    if outputs.uses_aws:
        if role_arn is None or region is None or account_id is None:
            raise ValueError("AWS outputs need Falcosidekick's role, the Region and the account")
        aws: dict[str, Any] = {
            "useirsa": True,
            "rolearn": role_arn,
            # Falcosidekick's AWS client takes its Region from AWS_REGION, which the chart sets from this.
            "region": region,
            "checkidentity": True,
        }
        if outputs.sns is not None:
            # The alert's JSON as the message: without it, every empty output field becomes an empty message
            # attribute, which SNS refuses (the k8saudit "K8s ... Created" alerts all carry one).
            aws["sns"] = {
                "topicarn": outputs.sns.topic,
                "rawjson": True,
                "minimumpriority": outputs.sns.minimum_priority.value,
            }
        if outputs.cloud_watch_logs is not None:
            aws["cloudwatchlogs"] = {
                "loggroup": outputs.cloud_watch_logs.log_group,
                "logstream": "",  # Falcosidekick creates falcosidekick-logstream (the role may create only that)
                "minimumpriority": outputs.cloud_watch_logs.minimum_priority.value,
            }
        lake = outputs.security_lake
        if lake is not None:
            aws["securitylake"] = {
                "bucket": lake.bucket,
                "prefix": lake.prefix,
                "region": region,
                "accountid": lake.account_id if lake.account_id is not None else account_id,
                "interval": SECURITY_LAKE_INTERVAL_MINUTES[0],
                "batchsize": SECURITY_LAKE_BATCH_SIZE,
                "minimumpriority": lake.minimum_priority.value,
            }
        config["aws"] = aws
        # Credentials come from IRSA only: the SDK never falls back on the node's instance role.
        env.append({"name": "AWS_EC2_METADATA_DISABLED", "value": "true"})
    if env:
        config["extraEnv"] = env
    return config
