"""FalcoDetection on a cluster that exists already: what it looks up, what it installs, which providers it uses,
and that a cluster it cannot serve is refused before anything is created."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pytest
from pulumi.runtime import rpc
from pulumi_mocks import ExistingCluster, LabMocks, Recorded, Registration, resolve, run_program

from components import (
    AuditSource,
    ClusterNotReadyError,
    FalcoDetection,
    FalcoDetectionArgs,
    FalcoSettings,
    KinesisSettings,
    KnownCluster,
)
from components.detection import polling_warning
from components.errors import ConfigError

DETECTION = "falco-eks:index:FalcoDetection"
RELEASE = "kubernetes:helm.sh/v3:Release"
PROD = ExistingCluster("prod-eu")
DEPLOYER_ROLE = "arn:aws:iam::123456789012:role/platform/Deployer"
LOOKUPS = {
    "aws:eks/getCluster:getCluster",
    "aws:iam/getOpenIdConnectProvider:getOpenIdConnectProvider",
    "aws:cloudwatch/getLogGroup:getLogGroup",
}


def install(
    existing: ExistingCluster = PROD,
    opts: Any = None,
    preview: bool = False,
    **args: Any,
) -> Recorded:
    """FalcoDetection for `existing` (a cluster in the mocked AWS); a refusal comes back as the result.

    `opts` is a function building the resource options inside the program (providers are resources)."""

    def program() -> FalcoDetection | ConfigError:
        try:
            return FalcoDetection(
                "falco",
                FalcoDetectionArgs(cluster_name=args.pop("cluster_name", existing.name), **args),
                opts=opts() if opts else None,
            )
        except ConfigError as err:
            return err

    return run_program(program, preview=preview, mocks=LabMocks(existing))


def _release(recorded: Recorded, helm_name: str) -> Registration:
    return next(r for r in recorded.of_type(RELEASE) if r.inputs["name"] == helm_name)


def _children(recorded: Recorded) -> list[Registration]:
    return recorded.under(recorded.one(DETECTION))


def _kubeconfig(recorded: Recorded) -> dict[str, Any]:
    return json.loads(recorded.one("pulumi:providers:kubernetes").inputs["kubeconfig"]["value"])


@pytest.fixture(scope="module")
def prod() -> Recorded:
    return install()


# --- what it installs, from what it looked up --------------------------------------------------------------


def test_installs_falco_the_forwarder_and_their_network_policies(prod: Recorded) -> None:
    types = [r.type for r in _children(prod)]
    assert types.count(RELEASE) == 2
    assert types.count("kubernetes:apps/v1:Deployment") == 1
    # The forwarder's two, and Falcosidekick's, its UI's and Redis's (tests/test_alert_outputs.py).
    assert types.count("kubernetes:networking.k8s.io/v1:NetworkPolicy") == 5
    assert "kubernetes:core/v1:ServiceAccount" in types and "aws:iam/role:Role" in types
    audit = _release(prod, "falco-k8saudit")
    assert "customRules" in json.dumps(audit.inputs["values"])  # the lab's rules


def test_the_forwarder_role_trusts_the_clusters_oidc_provider_it_looked_up(prod: Recorded) -> None:
    role = next(r for r in prod.of_type("aws:iam/role:Role") if r.name == "falco-forwarder-irsa")
    statement = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert statement["Principal"]["Federated"] == PROD.oidc_provider_arn
    issuer = PROD.issuer.removeprefix("https://")
    assert statement["Condition"]["StringEquals"] == {
        f"{issuer}:sub": "system:serviceaccount:falco-forwarder:audit-forwarder",
        f"{issuer}:aud": "sts.amazonaws.com",
    }


def test_the_forwarder_reads_the_clusters_audit_log_group(prod: Recorded) -> None:
    policy = json.loads(prod.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    assert policy["Statement"][0]["Resource"] == [PROD.log_group_arn, f"{PROD.log_group_arn}:*"]
    args = prod.one("kubernetes:apps/v1:Deployment").inputs["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--log-group") + 1] == PROD.log_group_name
    assert args[args.index("--region") + 1] == "us-west-2"
    assert resolve(prod.result.audit_log_group_name) == PROD.log_group_name


def test_it_only_reads_from_aws_and_never_touches_the_cluster(prod: Recorded) -> None:
    assert LOOKUPS <= {i.token for i in prod.invokes}
    assert all("/get" in i.token for i in prod.invokes), [i.token for i in prod.invokes]
    assert not [r for r in prod.resources if r.type.startswith("aws:eks/") or r.type.startswith("eks:")]


def test_without_a_kubernetes_provider_it_makes_one_for_the_named_cluster(prod: Recorded) -> None:
    provider = prod.one("pulumi:providers:kubernetes")
    assert provider.parent == prod.one(DETECTION).urn
    assert provider.inputs["kubeconfig"][rpc._special_sig_key] == rpc._special_secret_sig  # sent as a secret
    kubeconfig = _kubeconfig(prod)
    assert kubeconfig["clusters"][0]["cluster"]["server"] == PROD.endpoint
    user = kubeconfig["users"][0]["user"]["exec"]
    assert user["command"] == "aws"
    assert user["args"] == [
        "--region", "us-west-2", "eks", "get-token", "--cluster-name", "prod-eu", "--output", "json"
    ]
    kubernetes = [r for r in prod.resources if r.type.startswith("kubernetes:")]
    assert kubernetes and all(r.provider.startswith(provider.urn + "::") for r in kubernetes)


def test_its_kubeconfig_authenticates_as_the_given_role() -> None:
    recorded = install(kubeconfig_role_arn=DEPLOYER_ROLE)
    args = _kubeconfig(recorded)["users"][0]["user"]["exec"]["args"]
    assert args[-2:] == ["--role-arn", DEPLOYER_ROLE]


def test_the_callers_providers_serve_every_child_and_every_lookup() -> None:
    def opts() -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(
            providers=[
                aws.Provider("company-aws", region="us-west-2"),
                k8s.Provider("company-k8s", kubeconfig="{}"),
            ]
        )

    recorded = install(opts=opts)
    aws_ref = recorded.one("pulumi:providers:aws").urn + "::"
    k8s_ref = recorded.one("pulumi:providers:kubernetes").urn + "::"
    assert len(recorded.of_type("pulumi:providers:kubernetes")) == 1  # none of its own
    assert recorded.result.kubernetes_provider is None
    for child in _children(recorded):
        if child.type.startswith("aws:"):
            assert child.provider.startswith(aws_ref), child.name
        elif child.type.startswith("kubernetes:"):
            assert child.provider.startswith(k8s_ref), child.name
        elif child.type.startswith("falco-eks:"):
            assert child.providers["aws"].startswith(aws_ref) and child.providers["kubernetes"].startswith(k8s_ref)
    lookups = [i for i in recorded.invokes if i.token in LOOKUPS | {"aws:index/getRegion:getRegion"}]
    assert len(lookups) >= 4
    assert all(i.provider.startswith(aws_ref) for i in lookups), [(i.token, i.provider) for i in lookups]


def test_settings_reach_falco_and_the_forwarder() -> None:
    recorded = install(
        falco=FalcoSettings(sidekick_ui=False, image_registry="registry.example.com/hub"),
        forwarder_build="source",
        tags={"team": "security"},
    )
    syscall = _release(recorded, "falco")
    assert syscall.inputs["values"]["image"]["registry"] == "registry.example.com/hub"
    pod = recorded.one("kubernetes:apps/v1:Deployment").inputs["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "registry.example.com/hub/library/python:3.11.13-slim-bookworm"
    assert recorded.of_type("random:index/randomPassword:RandomPassword") == []
    role = next(r for r in recorded.of_type("aws:iam/role:Role") if r.name == "falco-forwarder-irsa")
    assert role.inputs["tags"] == {"team": "security"}


# --- refusals: nothing is created ------------------------------------------------------------------------


@pytest.mark.parametrize("preview", [True, False], ids=["preview", "update"])
@pytest.mark.parametrize(
    ("cluster", "says"),
    [
        (ExistingCluster("no-audit", audit_logging=False), ["audit logging is off", "'audit' control-plane log type",
                                                            "aws eks update-cluster-config --region us-west-2 "
                                                            "--name no-audit"]),
        (ExistingCluster("no-oidc", oidc_provider=False), ["no IAM OIDC provider", "eksctl utils "
                                                           "associate-iam-oidc-provider --region us-west-2 "
                                                           "--cluster no-oidc --approve"]),
        (ExistingCluster("no-audience", audiences=("other",)), ["does not list the audience sts.amazonaws.com"]),
        (ExistingCluster("fresh", log_group=False), ["/aws/eks/fresh/cluster cannot be read", "a few minutes"]),
    ],
    ids=["audit-off", "no-oidc-provider", "no-sts-audience", "no-log-group-yet"],
)
def test_a_cluster_it_cannot_serve_is_refused_with_what_to_turn_on_and_nothing_created(
    cluster: ExistingCluster, says: list[str], preview: bool
) -> None:
    recorded = install(cluster, preview=preview)
    error = recorded.result
    assert isinstance(error, ClusterNotReadyError), error
    assert error.setting == "cluster_name"
    for phrase in says:
        assert phrase in str(error), str(error)
    assert "never changes the cluster" in str(error)
    assert [r.type for r in recorded.resources] == [DETECTION]  # the component alone: no child at all


def test_every_missing_prerequisite_is_named_at_once() -> None:
    recorded = install(ExistingCluster("bare", audit_logging=False, oidc_provider=False))
    assert isinstance(recorded.result, ClusterNotReadyError)
    assert len(recorded.result.problems) == 2
    assert "audit logging is off" in recorded.result.problems[0]
    assert "no IAM OIDC provider" in recorded.result.problems[1]


def test_an_unknown_cluster_is_refused_by_name() -> None:
    recorded = install(cluster_name="missing")
    error = recorded.result
    assert isinstance(error, ConfigError) and error.setting == "cluster_name"
    assert "could not read EKS cluster 'missing' in us-west-2" in str(error)
    assert "couldn't find resource" in str(error)  # AWS's own reason
    assert [r.type for r in recorded.resources] == [DETECTION]


def test_known_facts_without_a_kubernetes_provider_are_refused_before_any_child() -> None:
    known = KnownCluster(
        oidc_provider_arn=PROD.oidc_provider_arn,
        oidc_issuer=PROD.issuer,
        log_group_name=PROD.log_group_name,
        log_group_arn=PROD.log_group_arn,
    )
    recorded = install(cluster=known)  # type: ignore[arg-type]
    assert isinstance(recorded.result, ConfigError) and recorded.result.setting == "cluster"
    assert "Kubernetes provider" in str(recorded.result)
    assert [r.type for r in recorded.resources] == [DETECTION]
    assert not [i for i in recorded.invokes if i.token in LOOKUPS]


def test_known_facts_with_a_kubernetes_provider_look_nothing_up() -> None:
    def program() -> FalcoDetection:
        known = KnownCluster(
            oidc_provider_arn=pulumi.Output.from_input(PROD.oidc_provider_arn),
            oidc_issuer=pulumi.Output.from_input(PROD.issuer),
            log_group_name=pulumi.Output.from_input(PROD.log_group_name),
            log_group_arn=pulumi.Output.from_input(PROD.log_group_arn),
        )
        return FalcoDetection(
            "falco",
            FalcoDetectionArgs(cluster_name="being-created", cluster=known),
            opts=pulumi.ResourceOptions(provider=k8s.Provider("cluster", kubeconfig="{}")),
        )

    recorded = run_program(program, mocks=LabMocks())  # the cluster does not exist (yet)
    assert not [i for i in recorded.invokes if i.token in LOOKUPS]
    assert len(recorded.of_type(RELEASE)) == 2


@pytest.mark.parametrize(
    ("setting", "args"),
    [
        ("cluster_name", {"cluster_name": "prod eu"}),
        ("forwarder_build", {"forwarder_build": "kaniko"}),
        ("forwarder_image", {"forwarder_image": "has space"}),
        ("node_architecture", {"node_architecture": "x86"}),
        ("kubeconfig_role_arn", {"kubeconfig_role_arn": "arn:aws:sts::123456789012:assumed-role/Deployer/x"}),
        ("tags", {"tags": {"team": 1}}),
        ("oidc_provider_arn", {"cluster": {"oidc_provider_arn": "nope"}}),
    ],
)
def test_bad_arguments_are_refused_by_field(setting: str, args: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as caught:
        if "cluster" in args:
            KnownCluster(
                oidc_provider_arn="nope", oidc_issuer=PROD.issuer, log_group_name="g", log_group_arn=PROD.log_group_arn
            )
        else:
            FalcoDetectionArgs(**{"cluster_name": "prod", **args})
    assert caught.value.setting == setting


# --- the audit source ------------------------------------------------------------------------------------

STREAM = "aws:kinesis/stream:Stream"
FILTER = "aws:cloudwatch/logSubscriptionFilter:LogSubscriptionFilter"
KINESIS_TYPES = {"falco-eks:index:AuditStream", STREAM, FILTER}


def _forwarder_flags(recorded: Recorded) -> dict[str, str]:
    args = recorded.one("kubernetes:apps/v1:Deployment").inputs["spec"]["template"]["spec"]["containers"][0]["args"]
    return dict(zip(args[0::2], args[1::2], strict=True))


@pytest.fixture(scope="module")
def pushed() -> Recorded:
    return install(audit_source="kinesis", kinesis=KinesisSettings(shard_count=2))


def test_polling_creates_nothing_of_kinesis(prod: Recorded) -> None:
    assert not [r for r in prod.resources if r.type in KINESIS_TYPES or r.type.startswith("aws:kinesis")]
    assert "--source" not in _forwarder_flags(prod)
    assert prod.result.audit_stream_arn is None and "auditStreamArn" not in prod.result.outputs()


def test_with_kinesis_it_subscribes_the_clusters_log_group_into_a_stream(pushed: Recorded) -> None:
    stream = pushed.one("falco-eks:index:AuditStream")
    assert stream.parent == pushed.one(DETECTION).urn
    assert pushed.one(STREAM).inputs["shardCount"] == 2
    subscription = pushed.one(FILTER).inputs
    assert subscription["logGroup"] == PROD.log_group_name  # the one it looked up
    writer = next(r for r in pushed.of_type("aws:iam/role:Role") if r.name == "falco-audit-stream-writer")
    condition = json.loads(writer.inputs["assumeRolePolicy"])["Statement"][0]["Condition"]
    assert condition == {"ArnLike": {"aws:SourceArn": [PROD.log_group_arn, f"{PROD.log_group_arn}:*"]}}
    assert not [r for r in pushed.resources if r.type.startswith(("aws:eks/", "eks:"))]  # the cluster untouched


def test_with_kinesis_the_forwarder_reads_the_stream_and_nothing_else(pushed: Recorded) -> None:
    stream_arn = pushed.one(STREAM).outputs["arn"]
    flags = _forwarder_flags(pushed)
    assert flags["--source"] == f"kinesis:{stream_arn}"
    assert flags["--log-group"] == PROD.log_group_name
    reader = next(
        r for r in pushed.of_type("aws:iam/rolePolicy:RolePolicy") if r.name == "falco-forwarder-read-audit-log"
    )
    (statement,) = json.loads(reader.inputs["policy"])["Statement"]
    assert statement["Resource"] == stream_arn
    assert resolve(pushed.result.audit_stream_arn) == stream_arn
    assert resolve(pushed.result.outputs()["auditStreamArn"]) == stream_arn
    # It starts once the filter exists, so the stream is filling when it first reads.
    assert pushed.one(FILTER).urn in set(pushed.one("falco-eks:index:AuditForwarder").dependencies)


def test_a_customer_key_reaches_the_stream_and_both_roles() -> None:
    key = "arn:aws:kms:us-west-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    recorded = install(audit_source="kinesis", kinesis=KinesisSettings(kms_key_arn=key))
    assert recorded.one(STREAM).inputs["kmsKeyId"] == key
    granted = {
        r.name: [s["Action"] for s in json.loads(r.inputs["policy"])["Statement"] if s["Resource"] == key]
        for r in recorded.of_type("aws:iam/rolePolicy:RolePolicy")
    }
    assert granted == {
        "falco-audit-stream-writer": ["kms:GenerateDataKey"],
        "falco-forwarder-read-audit-log": ["kms:Decrypt"],
    }


@pytest.mark.parametrize(("events_per_second", "connections"), [(1000, "2"), (3000, "6"), (12_000, "22")])
def test_the_forwarder_opens_two_connections_per_audit_replica(events_per_second: int, connections: str) -> None:
    recorded = install(audit_source="kinesis", falco=FalcoSettings(audit_events_per_second=events_per_second))
    assert _forwarder_flags(recorded)["--falco-connections"] == connections


def test_only_the_forwarder_reaches_the_headless_webhook_pods(prod: Recorded) -> None:
    """The headless Service selects the audit pods by the chart's selector labels; the ingress policy selects the
    same pods, on the port the forwarder connects to directly."""
    audit = _release(prod, "falco-k8saudit").inputs["values"]
    (service,) = audit["services"]
    assert service["clusterIP"] == "None"
    policy = next(
        r.inputs["spec"]
        for r in prod.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
        if r.inputs["metadata"]["namespace"] == "falco" and "falcosidekick" not in r.inputs["metadata"]["name"]
    )
    audit_pods = {"app.kubernetes.io/name": "falco", "app.kubernetes.io/instance": "falco-k8saudit"}
    assert policy["podSelector"]["matchLabels"] == audit_pods
    assert policy["ingress"][0]["ports"] == [{"protocol": "TCP", "port": int(service["ports"][0]["targetPort"])}]
    url = _forwarder_flags(prod)["--falco-url"]
    assert url.startswith(f"http://falco-k8saudit-{service['name']}.falco.svc.cluster.local:9765/")


def test_polling_a_load_it_cannot_follow_is_warned_about(monkeypatch: pytest.MonkeyPatch) -> None:
    assert polling_warning(AuditSource.POLL, 1000) is None
    assert polling_warning(AuditSource.KINESIS, 50_000) is None
    warnings: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *args, **kwargs: warnings.append(message))
    recorded = install(falco=FalcoSettings(audit_events_per_second=1001))
    assert isinstance(recorded.result, FalcoDetection)  # a warning, not a refusal
    (warning,) = warnings
    assert "follows about 1000 events/s" in warning and "1001/s" in warning and "'kinesis'" in warning


@pytest.mark.parametrize(
    ("setting", "args"),
    [
        ("audit_source", {"audit_source": "push"}),
        ("kinesis", {"kinesis": KinesisSettings(shard_count=2)}),  # ignored while polling: refused
        ("kinesis", {"audit_source": "kinesis", "kinesis": {"shard_count": 2}}),
    ],
)
def test_bad_audit_source_settings_are_refused_by_field(setting: str, args: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as caught:
        FalcoDetectionArgs(cluster_name="prod", **args)
    assert caught.value.setting == setting
