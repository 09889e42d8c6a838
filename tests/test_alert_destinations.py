"""The alert outputs under Pulumi mocks: what FalcoDetection, FalcoEksLab and Falco check with AWS, create and hand to
Falcosidekick (topic, log group, IRSA role, Helm values, NetworkPolicies), and the refusals that create nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pulumi_mocks import (
    ACCOUNT_ID,
    REGION,
    ExistingCluster,
    LabMocks,
    Recorded,
    Registration,
    resolve,
    run_falco,
    run_program,
)

from components.alerts.outputs import (
    CREATE,
    AlertOutputs,
    ChatAlerts,
    LogGroupAlerts,
    SecurityLakeAlerts,
    SnsAlerts,
    WebhookAlerts,
)
from components.alerts.sidekick_upstream import LOG_STREAM
from components.cluster import AuditedClusterSettings
from components.detection import FalcoDetection, FalcoDetectionArgs
from components.errors import ConfigError
from components.falco import Falco, FalcoSettings
from components.lab import FalcoEksLab, FalcoEksLabArgs

PROD = ExistingCluster("prod")
RELEASE = "kubernetes:helm.sh/v3:Release"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
TOPIC = "aws:sns/topic:Topic"
TOPIC_POLICY = "aws:sns/topicPolicy:TopicPolicy"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
LAKE = f"s3://aws-security-data-lake-{REGION}-abcd1234/ext/falco/"


def detect(outputs: AlertOutputs, mocks: LabMocks | None = None, **falco: Any) -> Recorded:
    """FalcoDetection on the existing cluster PROD with `outputs`; a refusal comes back as the result."""

    def program() -> FalcoDetection | ConfigError:
        try:
            return FalcoDetection(
                "falco",
                FalcoDetectionArgs(
                    cluster_name=PROD.name,
                    falco=FalcoSettings(alert_outputs=outputs, **falco),
                    forwarder_image="registry.example.com/fwd:1",
                    tags={"team": "sec"},
                ),
            )
        except ConfigError as err:
            return err

    return run_program(program, mocks=mocks or LabMocks(PROD, topics=("paging",), log_groups=("/platform/falco",)))


def _json(registration: Registration, key: str) -> dict[str, Any]:
    return json.loads(registration.inputs[key])


def _sidekick(recorded: Recorded) -> dict[str, Any]:
    syscall = next(r for r in recorded.of_type(RELEASE) if r.inputs["name"] == "falco")
    return syscall.inputs["values"]["falcosidekick"]


def _sidekick_role(recorded: Recorded) -> Registration:
    return next(r for r in recorded.of_type(ROLE) if r.name.endswith("-sidekick-irsa"))


def _sidekick_policy(recorded: Recorded) -> dict[str, Any]:
    return _json(next(r for r in recorded.of_type(ROLE_POLICY) if r.name.endswith("-sidekick-outputs")), "policy")


def _created(recorded: Recorded) -> list[Registration]:
    return [r for r in recorded.resources if r.custom and not r.type.startswith("pulumi:providers:")]


@pytest.fixture(scope="module")
def created_topic() -> Recorded:
    return detect(AlertOutputs(sns=SnsAlerts(topic=CREATE)))


# --- what gets created ------------------------------------------------------------------------------------


def test_no_aws_output_no_role_and_no_destination() -> None:
    recorded = detect(AlertOutputs(slack=ChatAlerts(secret_name="falco-slack")))
    assert not [r for r in recorded.of_type(ROLE) if "sidekick" in r.name]
    assert recorded.of_type(TOPIC) == recorded.of_type(LOG_GROUP) == []
    sidekick = _sidekick(recorded)
    assert "aws" not in sidekick["config"]
    exported = recorded.result.outputs()
    assert not {"alertTopicArn", "alertLogGroupName", "sidekickRoleArn"} & set(exported)


def test_a_created_topic_is_encrypted_and_removed_on_destroy(created_topic: Recorded) -> None:
    topic = created_topic.one(TOPIC)
    assert topic.inputs["name"] == "prod-falco-alerts"
    assert topic.inputs["kmsMasterKeyId"] == "alias/aws/sns"
    assert topic.inputs["tags"] == {"team": "sec"}
    assert not topic.protect and not topic.retain_on_delete
    assert topic.parent == created_topic.one("falco-eks:index:FalcoDetection").urn


def test_only_falcosidekicks_role_may_publish_to_the_created_topic(created_topic: Recorded) -> None:
    topic_arn = f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:prod-falco-alerts"
    role_arn = _sidekick_role(created_topic).outputs["arn"]
    policy = created_topic.one(TOPIC_POLICY)
    assert policy.inputs["arn"] == topic_arn
    statements = {s["Sid"]: s for s in _json(policy, "policy")["Statement"]}
    assert statements["NobodyElsePublishes"]["Condition"] == {"ArnNotEquals": {"aws:PrincipalArn": role_arn}}
    assert statements["FalcosidekickPublishes"]["Principal"] == {"AWS": role_arn}
    assert statements["AccountAdministers"]["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"}
    (publish,) = _sidekick_policy(created_topic)["Statement"]
    assert (publish["Action"], publish["Resource"]) == (["sns:Publish"], topic_arn)


def test_the_role_trusts_falcosidekicks_service_account_on_the_looked_up_cluster(created_topic: Recorded) -> None:
    trust = _json(_sidekick_role(created_topic), "assumeRolePolicy")
    (statement,) = trust["Statement"]
    issuer = PROD.issuer.removeprefix("https://")
    assert statement["Principal"] == {"Federated": PROD.oidc_provider_arn}
    assert statement["Condition"]["StringEquals"] == {
        f"{issuer}:sub": "system:serviceaccount:falco:falco-falcosidekick",
        f"{issuer}:aud": "sts.amazonaws.com",
    }
    assert _sidekick_role(created_topic).inputs["tags"] == {"team": "sec"}


def test_falcosidekick_gets_the_role_and_the_topic_once_their_policies_exist(created_topic: Recorded) -> None:
    aws = _sidekick(created_topic)["config"]["aws"]
    assert aws["rolearn"] == _sidekick_role(created_topic).outputs["arn"]
    assert aws["sns"]["topicarn"] == f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:prod-falco-alerts"
    assert aws["region"] == REGION
    # The release waits for the role's permissions and the topic's policy: their ids are in its dependencies.
    syscall = next(r for r in created_topic.of_type(RELEASE) if r.inputs["name"] == "falco")
    for needed in (created_topic.one(TOPIC_POLICY), next(r for r in created_topic.of_type(ROLE_POLICY)
                                                          if r.name.endswith("-sidekick-outputs"))):
        assert needed.urn in syscall.dependencies, needed.name
    exported = created_topic.result.outputs()
    assert resolve(exported["alertTopicArn"]) == aws["sns"]["topicarn"]
    assert resolve(exported["sidekickRoleArn"]) == aws["rolearn"]


def test_a_topic_with_a_customer_key_lets_the_role_use_that_key_through_sns_only() -> None:
    recorded = detect(AlertOutputs(sns=SnsAlerts(topic=CREATE, kms_key_arn=KEY)))
    assert recorded.one(TOPIC).inputs["kmsMasterKeyId"] == KEY
    statements = {s["Sid"]: s for s in _sidekick_policy(recorded)["Statement"]}
    key = statements["PublishWithTheTopicKey"]
    assert (key["Resource"], sorted(key["Action"])) == (KEY, ["kms:Decrypt", "kms:GenerateDataKey"])
    assert key["Condition"] == {"StringEquals": {"kms:ViaService": f"sns.{REGION}.amazonaws.com"}}


def test_a_created_log_group_keeps_alerts_as_long_as_asked_and_is_removed_on_destroy() -> None:
    recorded = detect(AlertOutputs(cloud_watch_logs=LogGroupAlerts(retention_days=90, kms_key_arn=KEY)))
    group = next(r for r in recorded.of_type(LOG_GROUP) if r.name.endswith("-alerts"))
    assert group.inputs["name"] == "/falco-eks/prod/alerts"
    assert (group.inputs["retentionInDays"], group.inputs["kmsKeyId"]) == (90, KEY)
    assert not group.protect and not group.retain_on_delete
    (write,) = _sidekick_policy(recorded)["Statement"]  # the log group's key is CloudWatch Logs' own business
    assert write["Resource"] == (
        f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:/falco-eks/prod/alerts:log-stream:{LOG_STREAM}"
    )
    logs = _sidekick(recorded)["config"]["aws"]["cloudwatchlogs"]
    assert logs["loggroup"] == "/falco-eks/prod/alerts" and logs["minimumpriority"] == "notice"
    assert resolve(recorded.result.outputs()["alertLogGroupName"]) == "/falco-eks/prod/alerts"


def test_existing_destinations_are_used_as_they_are() -> None:
    topic_arn = f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:paging"
    recorded = detect(
        AlertOutputs(
            sns=SnsAlerts(topic=topic_arn, minimum_priority="critical"),
            cloud_watch_logs=LogGroupAlerts(log_group="/platform/falco"),
        )
    )
    assert recorded.of_type(TOPIC) == recorded.of_type(TOPIC_POLICY) == []
    assert [r.name for r in recorded.of_type(LOG_GROUP)] == []
    resources = {s["Sid"]: s["Resource"] for s in _sidekick_policy(recorded)["Statement"]}
    assert resources == {
        "PublishAlerts": topic_arn,
        "WriteAlertLog": f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:/platform/falco:log-stream:{LOG_STREAM}",
    }
    aws = _sidekick(recorded)["config"]["aws"]
    assert aws["sns"] == {"topicarn": topic_arn, "rawjson": True, "minimumpriority": "critical"}


def test_security_lake_is_written_with_the_role_under_the_custom_sources_prefix_only() -> None:
    recorded = detect(AlertOutputs(security_lake=SecurityLakeAlerts(location=LAKE, kms_key_arn=KEY)))
    statements = {s["Sid"]: s for s in _sidekick_policy(recorded)["Statement"]}
    bucket = f"aws-security-data-lake-{REGION}-abcd1234"
    assert statements["WriteSecurityLake"]["Resource"] == f"arn:aws:s3:::{bucket}/ext/falco/*"
    assert statements["EncryptSecurityLakeObjects"]["Condition"] == {
        "StringEquals": {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}
    }
    lake = _sidekick(recorded)["config"]["aws"]["securitylake"]
    assert (lake["bucket"], lake["prefix"], lake["region"], lake["accountid"]) == (
        f"aws-security-data-lake-{REGION}-abcd1234", "ext/falco", REGION, ACCOUNT_ID
    )


# --- refusals before anything is created ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outputs", "setting", "says"),
    [
        (AlertOutputs(sns=SnsAlerts(topic=f"arn:aws:sns:eu-west-1:{ACCOUNT_ID}:paging")), "sns.topic", "eu-west-1"),
        (AlertOutputs(sns=SnsAlerts(topic=f"arn:aws:sns:{REGION}:999999999999:paging")), "sns.topic", "999999999999"),
        (AlertOutputs(sns=SnsAlerts(topic=f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:gone")), "sns.topic", "cannot be read"),
        (AlertOutputs(cloud_watch_logs=LogGroupAlerts(log_group="/no")), "cloud_watch_logs.log_group", "no log group"),
        (
            AlertOutputs(security_lake=SecurityLakeAlerts(location="s3://aws-security-data-lake-eu-west-1-a/ext/f/")),
            "security_lake.location",
            "eu-west-1",
        ),
    ],
)
def test_a_destination_that_cannot_be_used_is_refused_before_anything_is_created(
    outputs: AlertOutputs, setting: str, says: str
) -> None:
    recorded = detect(outputs)
    assert isinstance(recorded.result, ConfigError)
    assert recorded.result.setting == f"falco.alert_outputs.{setting}" and says in recorded.result.message
    assert _created(recorded) == []


def test_the_lab_refuses_before_its_cluster() -> None:
    def program() -> Any:
        try:
            return FalcoEksLab(
                "lab",
                FalcoEksLabArgs(
                    cluster=AuditedClusterSettings(cluster_name="lab"),
                    falco=FalcoSettings(
                        alert_outputs=AlertOutputs(sns=SnsAlerts(topic=f"arn:aws:sns:eu-west-1:{ACCOUNT_ID}:t"))
                    ),
                    forwarder_image="registry.example.com/fwd:1",
                ),
            )
        except ConfigError as err:
            return err

    recorded = run_program(program)
    assert isinstance(recorded.result, ConfigError) and recorded.result.setting == "falco.alert_outputs.sns.topic"
    assert _created(recorded) == [] and recorded.of_type("eks:index:Cluster") == []


def test_falcodetection_makes_falcosidekicks_role_itself() -> None:
    with pytest.raises(ConfigError, match="^falco.sidekick_role_arn: is made by FalcoDetection"):
        FalcoDetectionArgs(
            cluster_name="prod", falco=FalcoSettings(sidekick_role_arn=f"arn:aws:iam::{ACCOUNT_ID}:role/mine")
        )


# --- Falco on its own ---------------------------------------------------------------------------------------


def falco_alone(outputs: AlertOutputs, **args: Any) -> Recorded:
    return run_falco(alert_outputs=outputs, refusal_as_result=True, **args)


def test_falco_alone_creates_nothing_in_aws() -> None:
    role = f"arn:aws:iam::{ACCOUNT_ID}:role/r"
    recorded = falco_alone(AlertOutputs(sns=SnsAlerts(topic=CREATE)), sidekick_role_arn=role)
    assert isinstance(recorded.result, ConfigError) and recorded.result.setting == "alert_outputs"
    assert "FalcoDetection" in recorded.result.message and _created(recorded) == []


def test_falco_alone_needs_a_role_for_an_aws_output() -> None:
    recorded = falco_alone(AlertOutputs(sns=SnsAlerts(topic=f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:paging")))
    assert isinstance(recorded.result, ConfigError) and recorded.result.setting == "sidekick_role_arn"
    assert _created(recorded) == []


def test_falco_alone_wires_a_given_role_and_topic() -> None:
    role = f"arn:aws:iam::{ACCOUNT_ID}:role/falcosidekick"
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:paging"
    recorded = falco_alone(AlertOutputs(sns=SnsAlerts(topic=topic)), sidekick_role_arn=role)
    aws = _sidekick(recorded)["config"]["aws"]
    assert (aws["rolearn"], aws["sns"]["topicarn"], aws["region"]) == (role, topic, REGION)
    assert recorded.of_type(ROLE) == []


def test_outputs_without_the_ui_run_falcosidekick_without_ui_password_or_login() -> None:
    recorded = falco_alone(AlertOutputs(webhook=WebhookAlerts(secret_name="siem")), sidekick_ui=False)
    falco: Falco = recorded.result
    sidekick = _sidekick(recorded)
    assert sidekick["enabled"] is True and sidekick["webui"] == {"enabled": False}
    assert recorded.of_type("random:index/randomPassword:RandomPassword") == []
    assert recorded.of_type("kubernetes:core/v1:Secret") == []
    assert falco.ui_password is None and falco.ui_command is None
    names = [r.inputs["metadata"]["name"] for r in recorded.of_type(POLICY)]
    assert names == ["falco-falcosidekick"]  # no UI, no Redis


# --- NetworkPolicies --------------------------------------------------------------------------------------


def _policies(recorded: Recorded) -> dict[str, dict[str, Any]]:
    return {r.inputs["metadata"]["name"]: r.inputs["spec"] for r in recorded.of_type(POLICY)}


def test_only_falcos_pods_reach_falcosidekick_only_falcosidekick_its_ui_only_the_ui_redis() -> None:
    recorded = falco_alone(AlertOutputs())
    policies = _policies(recorded)
    assert set(policies) == {"falco-falcosidekick", "falco-falcosidekick-ui", "falco-falcosidekick-ui-redis"}
    core = {"app.kubernetes.io/name": "falcosidekick", "app.kubernetes.io/instance": "falco",
            "app.kubernetes.io/component": "core"}
    ui = {**core, "app.kubernetes.io/component": "ui"}
    sidekick = policies["falco-falcosidekick"]
    assert sidekick["podSelector"]["matchLabels"] == core
    (ingress,) = sidekick["ingress"]
    (peer,) = ingress["from"]
    assert "namespaceSelector" not in peer  # Falco's namespace only
    assert peer["podSelector"]["matchExpressions"] == [
        {"key": "app.kubernetes.io/name", "operator": "In", "values": ["falco"]},
        {"key": "app.kubernetes.io/instance", "operator": "In", "values": ["falco", "falco-k8saudit"]},
    ]
    assert ingress["ports"] == [{"protocol": "TCP", "port": 2801}]
    ui_policy = policies["falco-falcosidekick-ui"]
    assert ui_policy["podSelector"]["matchLabels"] == ui
    assert ui_policy["ingress"] == [{"from": [{"podSelector": {"matchLabels": core}}],
                                     "ports": [{"protocol": "TCP", "port": 2802}]}]
    redis = policies["falco-falcosidekick-ui-redis"]
    assert redis["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "ui-redis"
    assert redis["ingress"] == [{"from": [{"podSelector": {"matchLabels": ui}}],
                                 "ports": [{"protocol": "TCP", "port": 6379}]}]


def test_falcosidekick_reaches_dns_its_ui_and_https_only() -> None:
    egress = _policies(falco_alone(AlertOutputs()))["falco-falcosidekick"]["egress"]
    assert [rule["ports"] for rule in egress] == [
        [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
        [{"protocol": "TCP", "port": 443}],
        [{"protocol": "TCP", "port": 2802}],
    ]
    assert egress[0]["to"][0]["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
    assert egress[1]["to"] == [{"ipBlock": {"cidr": "0.0.0.0/0"}}, {"ipBlock": {"cidr": "::/0"}}]


def test_a_webhook_on_another_port_opens_that_port_too() -> None:
    recorded = falco_alone(AlertOutputs(webhook=WebhookAlerts(secret_name="siem", port=8443)))
    egress = _policies(recorded)["falco-falcosidekick"]["egress"]
    assert egress[1]["ports"] == [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 8443}]
