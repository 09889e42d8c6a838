"""The component package (provider/): the schema other languages get, and components built from their inputs.

The schema is the one the plugin serves (components/package/__init__.py: Pulumi's own analyzer, finished). Components
are built through the plugin itself, started as Pulumi starts it and sent ConstructRequests over gRPC as the engine
sends them for a TypeScript or YAML program (tests/support/package_plugin.py): camelCase inputs in a protobuf
Struct, numbers as doubles, under mocks served to the plugin as its resource monitor. That is the path on which
the provider host maps inputs by the schema, so its strictness is tested there, for every component.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from pulumi.provider.experimental.util import camel_case
from pulumi.runtime import rpc
from pulumi_mocks import ACCOUNT_ID, OIDC_ISSUER, OIDC_PROVIDER_ARN, REGION, ExistingCluster, LabMocks, run_program
from support.package_plugin import Constructed, PackagePlugin

from components import COMPONENTS, FalcoDetection
from components.package import NAME, NAMESPACE, SECRET_OUTPUTS, ComponentPackage

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = NAME
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


SCHEMA = ComponentPackage(VERSION).schema_spec


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return SCHEMA


@pytest.fixture(scope="module")
def plugin() -> Iterator[PackagePlugin]:
    with PackagePlugin() as started:
        yield started


def resource(schema: dict[str, Any], component: str) -> dict[str, Any]:
    return schema["resources"][f"{PACKAGE}:index:{component}"]


def prop_type(prop: dict[str, Any]) -> str:
    """A property's type in short: string, integer, array<string>, map<string>, ref:Name, any."""
    if "$ref" in prop:
        ref = prop["$ref"]
        return "any" if ref == "pulumi.json#/Any" else f"ref:{ref.rsplit(':', 1)[-1]}"
    if prop["type"] == "array":
        return f"array<{prop_type(prop['items'])}>"
    if prop["type"] == "object" and "additionalProperties" in prop:
        return f"map<{prop_type(prop['additionalProperties'])}>"
    return str(prop["type"])


def types_of(properties: dict[str, Any]) -> dict[str, str]:
    return {name: prop_type(prop) for name, prop in properties.items()}


# --- the schema ------------------------------------------------------------------------------------------


def test_every_component_is_in_the_package_under_its_type_token(schema: dict[str, Any]) -> None:
    assert schema["name"] == PACKAGE and schema["version"] == VERSION and schema["namespace"] == NAMESPACE
    assert set(schema["resources"]) == {f"{PACKAGE}:index:{c.__name__}" for c in COMPONENTS}
    for component in COMPONENTS:
        assert resource(schema, component.__name__)["isComponent"] is True


@pytest.mark.parametrize("component", COMPONENTS, ids=lambda c: c.__name__)
def test_required_inputs_are_exactly_the_fields_without_a_default(schema: dict[str, Any], component: type) -> None:
    args_type = component.__init__.__annotations__["args"]  # type: ignore[misc]
    required = [
        camel_case(f.name)
        for f in dataclasses.fields(args_type)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    entry = resource(schema, component.__name__)
    assert sorted(entry.get("requiredInputs", [])) == sorted(required)
    assert set(entry["inputProperties"]) == {camel_case(f.name) for f in dataclasses.fields(args_type)}
    for name, prop in {**entry["inputProperties"], **entry["properties"]}.items():
        assert prop.get("description", "").strip(), f"{component.__name__}.{name} has no description"


def test_falco_eks_lab(schema: dict[str, Any]) -> None:
    lab = resource(schema, "FalcoEksLab")
    assert types_of(lab["inputProperties"]) == {
        "cluster": "ref:AuditedClusterSettings",
        "falco": "ref:FalcoSettings",
        "forwarderImage": "string",
        "forwarderBuild": "ref:ForwarderBuild",
        "auditSource": "ref:AuditSource",
        "kinesis": "ref:KinesisSettings",
    }
    assert lab["inputProperties"]["forwarderImage"].get("plain") is None  # takes another resource's output
    assert types_of(lab["properties"]) == {
        name: "string"
        for name in (
            "clusterName", "kubeconfig", "auditLogGroupName", "falcoNamespace", "falcoWebhookUrl", "falcoUiCommand",
            "falcoUiUsername", "falcoUiPassword", "forwarderRoleArn", "forwarderNamespace", "forwarderLogsCommand",
            "forwarderMetricsCommand", "forwarderImage", "auditStreamArn", "alertTopicArn", "alertLogGroupName",
            "sidekickRoleArn",
        )
    }


def test_falco_detection(schema: dict[str, Any]) -> None:
    detection = resource(schema, "FalcoDetection")
    assert types_of(detection["inputProperties"]) == {
        "clusterName": "string",
        "falco": "ref:FalcoSettings",
        "forwarderImage": "string",
        "forwarderBuild": "ref:ForwarderBuild",
        "nodeArchitecture": "ref:Architecture",
        "kubeconfigRoleArn": "string",
        "cluster": "ref:KnownCluster",
        "auditSource": "ref:AuditSource",
        "kinesis": "ref:KinesisSettings",
        "tags": "map<string>",
    }
    assert detection["inputProperties"]["clusterName"]["plain"] is True  # looked up while the program runs
    assert "forwarderRoleArn" in detection["properties"] and "kubeconfig" not in detection["properties"]
    # The lab passes every one of them on.
    lab_outputs = types_of(resource(schema, "FalcoEksLab")["properties"])
    assert types_of(detection["properties"]).items() <= lab_outputs.items()
    known = schema["types"][f"{PACKAGE}:index:KnownCluster"]
    assert set(known["required"]) == {"oidcProviderArn", "oidcIssuer", "logGroupName", "logGroupArn"}
    assert all(p.get("plain") is None for p in known["properties"].values())  # Outputs of another component


def test_audited_cluster(schema: dict[str, Any]) -> None:
    cluster = resource(schema, "AuditedCluster")
    inputs = types_of(cluster["inputProperties"])
    assert inputs["clusterName"] == "string" and inputs["nodeCount"] == "integer"
    assert inputs["apiPrivateOnly"] == "boolean"
    for name in ("extraLogTypes", "apiPublicAccessCidrs", "clusterAdminArns", "clusterViewerArns", "privateSubnetIds"):
        assert inputs[name] == "array<string>", name
    # Subnet IDs take a whole list from another resource (an awsx Vpc's), not only lists of outputs.
    for name in ("privateSubnetIds", "publicSubnetIds"):
        assert cluster["inputProperties"][name].get("plain") is None, name
    assert inputs["tags"] == "map<string>"
    assert cluster["inputProperties"]["vpcId"].get("plain") is None
    assert types_of(cluster["properties"]) == {
        **{name: "string" for name in ("vpcId", "clusterName", "kubeconfig", "oidcProviderArn", "oidcIssuer")},
        **{name: "string" for name in ("logGroupName", "logGroupArn")},
        "nodeArchitecture": "ref:Architecture",
    }


def test_the_parts(schema: dict[str, Any]) -> None:
    falco = resource(schema, "Falco")
    assert types_of(falco["properties"]) == {
        "namespace": "string", "webhookUrl": "string", "webhookPort": "integer", "auditPodLabels": "map<string>",
        "auditReplicas": "integer", "uiPassword": "string", "uiUsername": "string", "uiCommand": "string",
    }
    falco_inputs = types_of(falco["inputProperties"])
    assert falco_inputs["releaseTimeoutSeconds"] == falco_inputs["auditEventsPerSecond"] == "integer"
    assert falco_inputs["auditReplicas"] == "integer"
    forwarder = resource(schema, "AuditForwarder")
    inputs = types_of(forwarder["inputProperties"])
    assert inputs["falcoPodLabels"] == "map<string>" and inputs["resources"] == "ref:Resources"
    assert inputs["build"] == "ref:ForwarderBuild" and inputs["nodeArchitecture"] == "ref:Architecture"
    assert inputs["falcoPort"] == inputs["metricsPort"] == inputs["replicas"] == inputs["falcoConnections"] == "integer"
    assert inputs["kinesisStreamArn"] == inputs["kinesisKmsKeyArn"] == "string"
    assert forwarder["inputProperties"]["kinesisStreamArn"].get("plain") is None  # AuditStream's output
    assert set(types_of(forwarder["properties"]).values()) == {"string"}
    assert set(forwarder["properties"]) == {"roleArn", "namespace", "image", "logsCommand", "metricsCommand"}
    stream = resource(schema, "AuditStream")
    assert types_of(stream["inputProperties"]) == {
        "logGroupName": "string", "logGroupArn": "string", "kinesis": "ref:KinesisSettings", "tags": "map<string>"
    }
    assert types_of(stream["properties"]) == {"streamArn": "string", "streamName": "string", "writerRoleArn": "string"}
    kinesis = schema["types"][f"{PACKAGE}:index:KinesisSettings"]
    assert types_of(kinesis["properties"]) == {"shardCount": "integer", "kmsKeyArn": "string"}
    assert "required" not in kinesis and kinesis["properties"]["kmsKeyArn"].get("plain") is None
    vpc = resource(schema, "LabVpc")
    assert types_of(vpc["inputProperties"]) == {"clusterName": "string", "cidrBlock": "string", "tags": "map<string>"}
    assert types_of(vpc["properties"]) == {
        "vpcId": "string", "publicSubnetIds": "array<string>", "privateSubnetIds": "array<string>"
    }


def test_falco_args_take_extra_helm_values_of_any_shape(schema: dict[str, Any]) -> None:
    falco = schema["types"][f"{PACKAGE}:index:FalcoSettings"]
    properties = types_of(falco["properties"])
    assert properties["syscallValues"] == properties["auditValues"] == "map<any>"
    assert properties["chartRepository"] == properties["imageRegistry"] == "string"
    assert properties["adminIdentities"] == "array<string>"
    assert "required" not in falco  # every Falco setting has a default


def test_enums_list_their_values(schema: dict[str, Any]) -> None:
    def values(name: str) -> list[str]:
        return [v["value"] for v in schema["types"][f"{PACKAGE}:index:{name}"]["enum"]]

    assert values("ForwarderBuild") == ["docker", "source"]
    assert values("AuditSource") == ["poll", "kinesis"]
    assert values("Architecture") == ["amd64", "arm64"]


# --- components built through the plugin, from another language's inputs -----------------------------------

LOG_GROUP = "/aws/eks/prod/cluster"
LOG_GROUP_ARN = f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{LOG_GROUP}"
WEBHOOK = "http://falco-k8saudit-k8saudit-webhook-headless.falco.svc.cluster.local:9765/k8s-audit"

BASE: dict[str, dict[str, Any]] = {
    "FalcoEksLab": {"cluster": {"clusterName": "ts-lab"}, "forwarderBuild": "source"},
    "AuditedCluster": {"clusterName": "prod"},
    "FalcoDetection": {"clusterName": "prod", "forwarderBuild": "source"},
    "Falco": {},
    "AuditForwarder": {
        "logGroupName": LOG_GROUP,
        "logGroupArn": LOG_GROUP_ARN,
        "oidcProviderArn": OIDC_PROVIDER_ARN,
        "oidcIssuer": OIDC_ISSUER,
        "region": REGION,
        "falcoUrl": WEBHOOK,
        "falcoNamespace": "falco",
        "falcoPodLabels": {"app.kubernetes.io/name": "falco", "app.kubernetes.io/instance": "falco-k8saudit"},
        "build": "source",
    },
    "AuditStream": {"logGroupName": LOG_GROUP, "logGroupArn": LOG_GROUP_ARN},
    "LabVpc": {"clusterName": "prod"},
}
"""A valid set of inputs per component, as a TypeScript program would write it."""

NESTED_BASE: dict[str, dict[str, Any]] = {
    "AuditedClusterSettings": {"clusterName": "ts-lab"},
    "FalcoSettings": {},
    "KinesisSettings": {},
    "KnownCluster": {
        "oidcProviderArn": OIDC_PROVIDER_ARN,
        "oidcIssuer": OIDC_ISSUER,
        "logGroupName": LOG_GROUP,
        "logGroupArn": LOG_GROUP_ARN,
    },
    "Resources": {"cpuRequest": "50m", "memoryRequest": "128Mi", "cpuLimit": "500m", "memoryLimit": "384Mi"},
    "SecurityLakeAlerts": {"location": "s3://aws-security-data-lake-eu-west-1-abc/ext/falco"},
    "ChatAlerts": {"secretName": "falco-chat"},
    "WebhookAlerts": {"secretName": "falco-webhook"},
}
"""A valid value per object type with required settings (the others are valid empty)."""


def mocks_for(component: str) -> LabMocks:
    return LabMocks(ExistingCluster("prod")) if component == "FalcoDetection" else LabMocks()


def refusal(answer: Constructed, component_registered: bool = False) -> list[str]:
    """The property errors of a refused construct, as `path: reason`, sorted (inputs cross the wire as a protobuf
    Struct, whose keys keep no order); fails if anything was registered (but the component itself, for a refusal
    that needed to ask AWS in its name)."""
    assert answer.error is not None, "the inputs were accepted"
    registered = [r.type for r in answer.recorded.resources]
    assert registered == ([answer.recorded.resources[0].type] if component_registered else []), registered
    if component_registered:
        assert registered[0].startswith(f"{PACKAGE}:index:"), registered
    return sorted(f"{p.path}: {p.reason}" for p in answer.error.properties)


def test_every_component_builds_from_camel_case_inputs_through_the_plugin(plugin: PackagePlugin) -> None:
    assert set(BASE) == {c.__name__ for c in COMPONENTS}
    for component, inputs in BASE.items():
        answer = plugin.construct(component, inputs, mocks=mocks_for(component))
        assert answer.error is None, f"{component}: {answer.error}"
        assert answer.urn == f"urn:pulumi:test::falco-eks-lab::{PACKAGE}:index:{component}::from-ts"
        assert answer.recorded.resources, component


@pytest.mark.parametrize("component", sorted(SECRET_OUTPUTS))
def test_outputs_marked_secret_are_the_secret_ones(
    plugin: PackagePlugin, schema: dict[str, Any], component: str
) -> None:
    """What the engine receives as secrets is what the schema marks `secret` (with the UI on, its default)."""
    answer = plugin.construct(component, BASE[component], mocks=mocks_for(component))
    assert answer.error is None, answer.error
    secret = {name for name, value in answer.state.items() if rpc.is_rpc_secret(value)}
    marked = {name for name, spec in resource(schema, component)["properties"].items() if spec.get("secret")}
    assert secret == marked == SECRET_OUTPUTS[component]


def test_no_other_component_returns_a_secret(plugin: PackagePlugin) -> None:
    for component in set(BASE) - set(SECRET_OUTPUTS):
        answer = plugin.construct(component, BASE[component], mocks=mocks_for(component))
        assert not [name for name, value in answer.state.items() if rpc.is_rpc_secret(value)], component


def test_a_lab_is_built_from_camel_case_inputs(plugin: PackagePlugin) -> None:
    answer = plugin.construct(
        "FalcoEksLab",
        {
            "cluster": {
                "clusterName": "ts-lab",
                "nodeCount": 3.0,
                "clusterViewerArns": ["arn:aws:iam::123456789012:user/auditor"],
            },
            "falco": {"sidekickUi": False, "auditValues": {"podAnnotations": {"team": "sec"}}},
            "forwarderBuild": "source",
        },
    )
    assert answer.error is None, answer.error
    recorded = answer.recorded
    assert recorded.one("eks:index:Cluster").inputs["name"] == "ts-lab"
    assert recorded.one("aws:eks/nodeGroup:NodeGroup").inputs["scalingConfig"]["desiredSize"] == 3
    assert recorded.one("aws:eks/accessEntry:AccessEntry").inputs["principalArn"].endswith(":user/auditor")
    audit = next(r for r in recorded.of_type("kubernetes:helm.sh/v3:Release") if r.inputs["name"] == "falco-k8saudit")
    assert audit.inputs["values"]["podAnnotations"] == {"team": "sec"}
    assert recorded.of_type("docker-build:index:Image") == []  # "source" arrived as ForwarderBuild.SOURCE
    assert {"clusterName", "kubeconfig", "forwarderRoleArn"} <= set(answer.state)
    assert "falcoUiPassword" not in answer.state  # sidekickUi false arrived as False


def test_a_lab_reading_kinesis_is_built_from_camel_case_inputs(plugin: PackagePlugin) -> None:
    answer = plugin.construct(
        "FalcoEksLab",
        {
            "cluster": {"clusterName": "ts-lab"},
            "auditSource": "kinesis",
            "kinesis": {"shardCount": 2.0},
            "falco": {"auditEventsPerSecond": 2500.0},
            "forwarderBuild": "source",
        },
    )
    assert answer.error is None, answer.error
    recorded = answer.recorded
    assert recorded.one("aws:kinesis/stream:Stream").inputs["shardCount"] == 2
    assert recorded.one("aws:cloudwatch/logSubscriptionFilter:LogSubscriptionFilter").inputs["logGroup"] == (
        "/aws/eks/ts-lab/cluster"
    )
    audit = next(r for r in recorded.of_type("kubernetes:helm.sh/v3:Release") if r.inputs["name"] == "falco-k8saudit")
    assert audit.inputs["values"]["controller"]["deployment"]["replicas"] == 3
    assert "auditStreamArn" in answer.state


def test_subnets_from_another_resource_arrive_as_one_output_list(plugin: PackagePlugin) -> None:
    """An awsx Vpc's privateSubnetIds is one Output<string[]>: it reaches the cluster and the node group whole."""
    vpc = "urn:pulumi:test::falco-eks-lab::awsx:ec2:Vpc::vpc"
    answer = plugin.construct(
        "AuditedCluster",
        {"clusterName": "prod", "vpcId": "vpc-1", "privateSubnetIds": ["subnet-a", "subnet-b"]},
        dependencies={"privateSubnetIds": [vpc], "vpcId": [vpc]},
    )
    assert answer.error is None, answer.error
    assert answer.recorded.one("eks:index:Cluster").inputs["privateSubnetIds"] == ["subnet-a", "subnet-b"]
    assert answer.recorded.one("aws:eks/nodeGroup:NodeGroup").inputs["subnetIds"] == ["subnet-a", "subnet-b"]
    assert answer.recorded.of_type("falco-eks:index:LabVpc") == []


def test_an_existing_cluster_from_another_language_with_its_providers(plugin: PackagePlugin) -> None:
    aws_ref = "urn:pulumi:test::falco-eks-lab::pulumi:providers:aws::ts-aws::ts-aws-id"
    k8s_ref = "urn:pulumi:test::falco-eks-lab::pulumi:providers:kubernetes::ts-k8s::ts-k8s-id"
    answer = plugin.construct(
        "FalcoDetection",
        {"clusterName": "prod", "forwarderBuild": "source"},
        mocks=LabMocks(ExistingCluster("prod")),
        providers={"aws": aws_ref, "kubernetes": k8s_ref},
    )
    assert answer.error is None, answer.error
    kubernetes = [r for r in answer.recorded.resources if r.type.startswith("kubernetes:")]
    assert kubernetes and all(r.provider == k8s_ref for r in kubernetes)
    invokes = [i for i in answer.recorded.invokes if i.token.startswith("aws:")]
    assert invokes and all(i.provider == aws_ref for i in invokes)


def test_alert_outputs_from_another_language(plugin: PackagePlugin) -> None:
    answer = plugin.construct(
        "FalcoDetection",
        {
            "clusterName": "prod",
            "forwarderImage": "registry.example.com/fwd:1",
            "falco": {
                "sidekickUi": False,
                "alertOutputs": {
                    "sns": {"topic": "create", "minimumPriority": "critical"},
                    "slack": {"secretName": "falco-chat", "secretKey": "slack"},
                },
            },
        },
        mocks=LabMocks(ExistingCluster("prod")),
    )
    assert answer.error is None, answer.error
    recorded = answer.recorded
    assert recorded.one("aws:sns/topic:Topic").inputs["name"] == "prod-falco-alerts"
    syscall = next(r for r in recorded.of_type("kubernetes:helm.sh/v3:Release") if r.inputs["name"] == "falco")
    config = syscall.inputs["values"]["falcosidekick"]["config"]
    assert config["aws"]["sns"]["minimumpriority"] == "critical"  # arrived as AlertPriority.CRITICAL
    assert config["extraEnv"][0]["valueFrom"]["secretKeyRef"]["key"] == "slack"
    assert {"alertTopicArn", "sidekickRoleArn"} <= set(answer.state)


def test_a_bad_alert_setting_is_refused_by_its_schema_name(plugin: PackagePlugin) -> None:
    answer = plugin.construct(
        "FalcoDetection",
        {"clusterName": "prod", "falco": {"alertOutputs": {"slack": {"secretName": "Falco_Chat"}}}},
        mocks=LabMocks(ExistingCluster("prod")),
    )
    [problem] = refusal(answer)
    assert problem.startswith("falco.alertOutputs.slack.secretName: 'Falco_Chat' is not a Kubernetes")
    # A priority outside the schema's enum is refused before the component runs, with the values it takes.
    urgent = {"alertOutputs": {"sns": {"minimumPriority": "urgent"}}}
    answer = plugin.construct(
        "FalcoDetection", {"clusterName": "prod", "falco": urgent}, mocks=mocks_for("FalcoDetection")
    )
    [problem] = refusal(answer)
    assert problem.startswith('falco.alertOutputs.sns.minimumPriority: "urgent" is not allowed; use one of ')


# --- strict inputs on the plugin's path ---------------------------------------------------------------------


def test_misspelled_inputs_at_any_depth_are_refused_with_the_nearest_name(plugin: PackagePlugin) -> None:
    """The examples of issue 18: each was silently dropped, and the defaults used, by the provider host alone."""
    answer = plugin.construct(
        "FalcoEksLab",
        {
            "cluster": {"clusterName": "ts-lab", "nodeCont": 3.0},
            "falco": {"sidekickUI": False},
            "forwarderBulid": "source",
        },
    )
    assert refusal(answer) == [
        "cluster.nodeCont: unknown setting; did you mean nodeCount?",
        "falco.sidekickUI: unknown setting; did you mean sidekickUi?",
        "forwarderBulid: unknown setting; did you mean forwarderBuild?",
    ]
    assert answer.error is not None and answer.error.code.name == "INVALID_ARGUMENT"


def test_a_bad_enum_value_names_the_property_and_its_values(plugin: PackagePlugin) -> None:
    answer = plugin.construct("FalcoEksLab", {"cluster": {"clusterName": "ts-lab"}, "forwarderBuild": "podman"})
    assert refusal(answer) == ['forwarderBuild: "podman" is not allowed; use one of "docker", "source"']


@pytest.mark.parametrize(
    ("component", "inputs", "expected"),
    [
        ("LabVpc", {"clusterName": ["a", "b"]}, "clusterName: must be a string, got a list"),
        (
            "AuditedCluster",
            {"clusterName": "prod", "nodeCount": 2.5},
            "nodeCount: must be a whole number, got the number 2.5",
        ),
        (
            "AuditedCluster",
            {"clusterName": "prod", "nodeCount": "3"},
            'nodeCount: must be a whole number, got the string "3"',
        ),
        (
            "AuditedCluster",
            {"clusterName": "prod", "apiPrivateOnly": "yes"},
            'apiPrivateOnly: must be true or false, got the string "yes"',
        ),
        (
            "AuditedCluster",
            {"clusterName": "prod", "clusterAdminArns": "arn:aws:iam::1:role/x"},
            'clusterAdminArns: must be a list of strings, got the string "arn:aws:iam::1:role/x"',
        ),
        ("AuditedCluster", {"clusterName": "prod", "tags": ["team"]}, "tags: must be a map of strings, got a list"),
        (
            "AuditedCluster",
            {"clusterName": "prod", "tags": {"team": 7.0}},
            "tags.team: must be a string, got the number 7.0",
        ),
        (
            "FalcoEksLab",
            {"cluster": [{"clusterName": "x"}]},
            "cluster: must be an object (AuditedClusterSettings), got a list",
        ),
        (
            "FalcoDetection",
            {"clusterName": "prod", "falco": {"adminIdentities": ["a", 1.0]}},
            "falco.adminIdentities[1]: must be a string, got the number 1.0",
        ),
        (
            "FalcoDetection",
            {"clusterName": "prod", "auditSource": "Kinesis"},
            'auditSource: "Kinesis" is not allowed; use one of "poll", "kinesis"',
        ),
        ("FalcoEksLab", {"forwarderBuild": "source"}, "cluster: is required"),
        (
            "AuditStream",
            {"logGroupName": LOG_GROUP, "logGroupArn": LOG_GROUP_ARN, "kinesis": {"shardCount": True}},
            "kinesis.shardCount: must be a whole number, got true",
        ),
    ],
)
def test_a_value_of_the_wrong_kind_names_its_path_and_what_is_allowed(
    plugin: PackagePlugin, component: str, inputs: dict[str, Any], expected: str
) -> None:
    assert refusal(plugin.construct(component, inputs, mocks=mocks_for(component))) == [expected]


def _typo(name: str) -> str:
    """A near miss of a property's name: its last letter dropped."""
    return name[:-1]


@pytest.mark.parametrize("component", sorted(BASE))
def test_every_misspelled_input_of_every_component_is_refused(
    plugin: PackagePlugin, schema: dict[str, Any], component: str
) -> None:
    properties = resource(schema, component)["inputProperties"]
    inputs = dict(BASE[component])
    for name in properties:
        inputs[_typo(name)] = "x"
    expected = sorted(f"{_typo(name)}: unknown setting; did you mean {name}?" for name in properties)
    assert refusal(plugin.construct(component, inputs, mocks=mocks_for(component))) == expected


def _object_inputs(schema: dict[str, Any], component: str) -> Iterator[tuple[str, str]]:
    for name, prop in resource(schema, component)["inputProperties"].items():
        ref = prop.get("$ref", "")
        if ref.startswith("#/types/") and "enum" not in schema["types"][ref.removeprefix("#/types/")]:
            yield name, ref.rsplit(":", 1)[-1]


def _misspelled(type_name: str, path: str, expected: list[str]) -> dict[str, Any]:
    """A valid value of the object type with every setting misspelled beside it, at every depth; the refusals it
    must get are added to `expected`."""
    value = dict(NESTED_BASE.get(type_name, {}))
    for name, prop in SCHEMA["types"][f"{PACKAGE}:index:{type_name}"]["properties"].items():
        value[_typo(name)] = "x"
        expected.append(f"{path}.{_typo(name)}: unknown setting; did you mean {name}?")
        ref = prop.get("$ref", "")
        if ref.startswith("#/types/") and "enum" not in SCHEMA["types"][ref.removeprefix("#/types/")]:
            value[name] = _misspelled(ref.rsplit(":", 1)[-1], f"{path}.{name}", expected)
    return value


@pytest.mark.parametrize("component", sorted(c for c in BASE if list(_object_inputs(SCHEMA, c))))
def test_every_misspelled_setting_of_a_nested_object_is_refused(
    plugin: PackagePlugin, schema: dict[str, Any], component: str
) -> None:
    inputs = dict(BASE[component])
    expected: list[str] = []
    for prop, type_name in _object_inputs(schema, component):
        inputs[prop] = _misspelled(type_name, prop, expected)
    assert refusal(plugin.construct(component, inputs, mocks=mocks_for(component))) == sorted(expected)


@pytest.mark.parametrize("component", sorted(BASE))
def test_every_input_of_every_component_refuses_a_value_of_another_kind(
    plugin: PackagePlugin, schema: dict[str, Any], component: str
) -> None:
    """Each input gets a value no property of its type takes (a list for one value, one value for a list or an
    object, a string outside an enum); each is refused by its path, and nothing is created."""
    wrong: dict[str, Any] = {}
    for name, prop in resource(schema, component)["inputProperties"].items():
        if prop.get("$ref") == "pulumi.json#/Any" or (prop.get("additionalProperties") or {}).get("$ref") == (
            "pulumi.json#/Any"
        ):
            wrong[name] = ["not", "a", "map"]
        elif prop.get("type") in ("array", "object") or "$ref" in prop:
            wrong[name] = "one value"
        else:
            wrong[name] = ["a", "list"]
    problems = refusal(plugin.construct(component, wrong, mocks=mocks_for(component)))
    assert [problem.split(":", 1)[0] for problem in problems] == sorted(wrong)
    assert all((" must be " in p or " is not allowed; use one of " in p) for p in problems), problems


def test_an_output_where_the_schema_needs_a_known_value_is_refused(plugin: PackagePlugin) -> None:
    """clusterName is looked up while the program runs: another resource's output cannot be used there."""
    answer = plugin.construct(
        "FalcoDetection",
        {"clusterName": "prod"},
        mocks=mocks_for("FalcoDetection"),
        dependencies={"clusterName": ["urn:pulumi:test::falco-eks-lab::eks:index:Cluster::other"]},
    )
    assert refusal(answer) == [
        "clusterName: must be known when the program runs (a literal or a config value), not another resource's output"
    ]


def test_the_components_own_checks_are_refused_by_property_path(plugin: PackagePlugin) -> None:
    assert refusal(plugin.construct("FalcoEksLab", {"cluster": {"clusterName": "ts-lab", "nodeCount": 0.0}})) == [
        "cluster.nodeCount: must be between 1 and 100, got 0"
    ]


def test_an_owned_helm_value_is_refused_by_its_path(plugin: PackagePlugin) -> None:
    answer = plugin.construct(
        "FalcoDetection",
        {"clusterName": "prod", "falco": {"auditValues": {"falco": {"rule_matching": "first"}}}},
        mocks=mocks_for("FalcoDetection"),
    )
    [problem] = refusal(answer)
    assert problem.startswith("falco.auditValues.falco.rule_matching: falco.rule_matching is set by")


def test_a_cluster_that_is_not_ready_is_refused_by_its_name(plugin: PackagePlugin) -> None:
    answer = plugin.construct(
        "FalcoDetection", {"clusterName": "prod"}, mocks=LabMocks(ExistingCluster("prod", audit_logging=False))
    )
    [problem] = refusal(answer, component_registered=True)  # no child: the lookups run before the first
    assert problem.startswith("clusterName: EKS cluster prod is not ready for audit-log detection")


def test_an_output_where_a_plain_value_is_needed_is_refused_by_name_in_python() -> None:
    def program() -> Exception | None:
        try:
            FalcoDetection("x", {"cluster_name": pulumi.Output.from_input("prod")})  # type: ignore[arg-type]
        except Exception as err:
            return err
        return None

    error = run_program(program).result
    assert str(error).startswith("clusterName: must be known when the program runs")


def test_an_unknown_key_of_a_python_dict_is_refused_with_the_nearest_name() -> None:
    from components.args import from_inputs
    from components.falco import FalcoSettings

    with pytest.raises(Exception, match=r"^sidekickUI: unknown setting; did you mean sidekickUi\?$"):
        from_inputs(FalcoSettings, {"sidekickUI": False})
    with pytest.raises(Exception, match=r"^sidekick_iu: unknown setting; did you mean sidekick_ui\?$"):
        from_inputs(FalcoSettings, {"sidekick_iu": False})


# --- the plugin ------------------------------------------------------------------------------------------


def test_the_plugin_manifest_runs_the_entry_point_with_python() -> None:
    manifest = yaml.safe_load((ROOT / "provider" / "PulumiPlugin.yaml").read_text())
    assert manifest["runtime"]["name"] == "python"
    assert (ROOT / "provider" / "__main__.py").is_file()
    # Its virtualenv gets the lab's own pinned dependencies.
    assert (ROOT / "provider" / "requirements.txt").read_text().split("\n")[1] == "-r ../requirements.txt"


def test_the_plugin_serves_the_same_schema_over_grpc(plugin: PackagePlugin, schema: dict[str, Any]) -> None:
    """Started as Pulumi starts it (`python <plugin dir> <engine address>`), with the version of pyproject.toml."""
    served = json.loads(plugin.schema())
    assert served == schema
    assert served["version"] == VERSION and served["namespace"] == NAMESPACE


def test_a_whole_output_list_with_one_subnet_is_refused_once_it_is_known() -> None:
    from components import AuditedCluster, AuditedClusterSettings

    def program() -> None:
        AuditedCluster(
            "prod",
            AuditedClusterSettings(
                cluster_name="prod", vpc_id="vpc-1", private_subnet_ids=pulumi.Output.from_input(["subnet-a"])
            ),
        )

    with pytest.raises(Exception, match="private_subnet_ids: EKS needs subnets in at least two availability zones"):
        run_program(program)


@pytest.mark.parametrize(
    ("module", "old", "new"),
    [
        ("components", "FalcoArgs", "FalcoSettings"),
        ("components", "AuditedClusterArgs", "AuditedClusterSettings"),
        ("components.falco", "FalcoArgs", "FalcoSettings"),
        ("components.cluster", "AuditedClusterArgs", "AuditedClusterSettings"),
    ],
)
def test_the_old_names_of_renamed_classes_still_work_with_a_deprecation_warning(
    module: str, old: str, new: str
) -> None:
    import importlib

    imported = importlib.import_module(module)
    with pytest.warns(DeprecationWarning, match=f"{old} is deprecated since 0.4.0; use {new}"):
        assert getattr(imported, old) is getattr(importlib.import_module("components"), new)
    with pytest.raises(AttributeError):
        imported.NoSuchName  # noqa: B018
