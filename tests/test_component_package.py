"""The component package (provider/): the schema other languages get, and components built from their inputs.

The schema is built in-process by Pulumi's own analyzer (pulumi.provider.experimental), exactly as the plugin
builds it; components are constructed through the same ComponentProvider the plugin hosts, from the camelCase
inputs a TypeScript or YAML program sends, under mocks. One test starts the plugin itself and asks it for its
schema over gRPC, as `pulumi package add` does.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pytest
import yaml
from pulumi.provider.experimental.component import ComponentProvider
from pulumi.provider.experimental.util import camel_case
from pulumi.provider.server import ComponentInitError
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc
from pulumi_mocks import ExistingCluster, LabMocks, Recorded, run_program

from components import COMPONENTS, FalcoDetection

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "falco-eks"
VERSION = "0.3.0"


def provider() -> ComponentProvider:
    return ComponentProvider(list(COMPONENTS), PACKAGE, None, VERSION)


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    text = provider().schema
    assert text is not None
    return json.loads(text)


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
    assert schema["name"] == PACKAGE and schema["version"] == VERSION
    assert set(schema["resources"]) == {f"{PACKAGE}:index:{c.__name__}" for c in COMPONENTS}
    for component in COMPONENTS:
        assert resource(schema, component.__name__)["isComponent"] is True


@pytest.mark.parametrize("component", COMPONENTS, ids=lambda c: c.__name__)
def test_required_inputs_are_exactly_the_fields_without_a_default(schema: dict[str, Any], component: type) -> None:
    args_type = component.__init__.__annotations__["args"]
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
            "forwarderMetricsCommand", "forwarderImage", "auditStreamArn",
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


# --- components built from another language's inputs -----------------------------------------------------


def construct(component: str, inputs: dict[str, Any], options: Any = None, mocks: LabMocks | None = None) -> Recorded:
    """What the plugin does for a program in another language: inputs arrive camelCase, numbers as floats."""

    def program() -> Any:
        opts = options() if options else pulumi.ResourceOptions()
        try:
            return provider().construct("from-ts", f"{PACKAGE}:index:{component}", inputs, opts)
        except ComponentInitError as err:
            return err

    return run_program(program, mocks=mocks)


def test_a_lab_is_built_from_camel_case_inputs() -> None:
    recorded = construct(
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
    assert not isinstance(recorded.result, Exception), recorded.result
    assert recorded.one("eks:index:Cluster").inputs["name"] == "ts-lab"
    assert recorded.one("aws:eks/nodeGroup:NodeGroup").inputs["scalingConfig"]["desiredSize"] == 3
    assert recorded.one("aws:eks/accessEntry:AccessEntry").inputs["principalArn"].endswith(":user/auditor")
    audit = next(r for r in recorded.of_type("kubernetes:helm.sh/v3:Release") if r.inputs["name"] == "falco-k8saudit")
    assert audit.inputs["values"]["podAnnotations"] == {"team": "sec"}
    assert recorded.of_type("docker-build:index:Image") == []  # "source" arrived as ForwarderBuild.SOURCE
    state = recorded.result.state
    assert {"clusterName", "kubeconfig", "forwarderRoleArn"} <= set(state)


def test_a_lab_reading_kinesis_is_built_from_camel_case_inputs() -> None:
    recorded = construct(
        "FalcoEksLab",
        {
            "cluster": {"clusterName": "ts-lab"},
            "auditSource": "kinesis",
            "kinesis": {"shardCount": 2.0},
            "falco": {"auditEventsPerSecond": 2500.0},
            "forwarderBuild": "source",
        },
    )
    assert not isinstance(recorded.result, Exception), recorded.result
    assert recorded.one("aws:kinesis/stream:Stream").inputs["shardCount"] == 2
    assert recorded.one("aws:cloudwatch/logSubscriptionFilter:LogSubscriptionFilter").inputs["logGroup"] == (
        "/aws/eks/ts-lab/cluster"
    )
    audit = next(r for r in recorded.of_type("kubernetes:helm.sh/v3:Release") if r.inputs["name"] == "falco-k8saudit")
    assert audit.inputs["values"]["controller"]["deployment"]["replicas"] == 3
    assert "auditStreamArn" in recorded.result.state


def test_a_bad_input_is_refused_by_its_schema_name() -> None:
    recorded = construct("FalcoEksLab", {"cluster": {"clusterName": "ts-lab", "nodeCount": 0.0}})
    assert isinstance(recorded.result, ComponentInitError)
    assert str(recorded.result).startswith("cluster.nodeCount: must be between 1 and 100")
    assert recorded.resources == []


def test_an_owned_helm_value_is_refused_by_its_path() -> None:
    recorded = construct(
        "FalcoDetection", {"clusterName": "prod", "falco": {"auditValues": {"falco": {"rule_matching": "first"}}}}
    )
    assert str(recorded.result).startswith("falco.auditValues.falco.rule_matching: falco.rule_matching is set by")
    assert recorded.resources == []


def test_an_existing_cluster_from_another_language_with_its_providers() -> None:
    def options() -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(
            providers={"aws": aws.Provider("ts-aws"), "kubernetes": k8s.Provider("ts-k8s", kubeconfig="{}")}
        )

    recorded = construct("FalcoDetection", {"clusterName": "prod"}, options, mocks=LabMocks(ExistingCluster("prod")))
    assert not isinstance(recorded.result, Exception), recorded.result
    assert isinstance(recorded.result.urn, pulumi.Output)
    k8s_ref = recorded.one("pulumi:providers:kubernetes").urn + "::"
    assert all(r.provider.startswith(k8s_ref) for r in recorded.resources if r.type.startswith("kubernetes:"))
    aws_ref = recorded.one("pulumi:providers:aws").urn + "::"
    assert all(i.provider.startswith(aws_ref) for i in recorded.invokes if i.token.startswith("aws:"))


def test_an_output_where_a_plain_value_is_needed_is_refused_by_name() -> None:
    def program() -> Exception | None:
        try:
            FalcoDetection("x", {"cluster_name": pulumi.Output.from_input("prod")})  # type: ignore[arg-type]
        except Exception as err:
            return err
        return None

    error = run_program(program).result
    assert str(error).startswith("clusterName: must be known when the program runs")


# --- the plugin ------------------------------------------------------------------------------------------


def test_the_plugin_manifest_runs_the_entry_point_with_python() -> None:
    manifest = yaml.safe_load((ROOT / "provider" / "PulumiPlugin.yaml").read_text())
    assert manifest["runtime"]["name"] == "python"
    assert (ROOT / "provider" / "__main__.py").is_file()
    # Its virtualenv gets the lab's own pinned dependencies.
    assert (ROOT / "provider" / "requirements.txt").read_text().split("\n")[1] == "-r ../requirements.txt"


def test_the_plugin_serves_the_same_schema_over_grpc(schema: dict[str, Any]) -> None:
    """Started as Pulumi starts it (`python <plugin dir> <engine address>`); it prints its port, then answers
    GetSchema. Nothing listens at the engine address: GetSchema does not need the engine."""
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "provider"), "127.0.0.1:1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT.parent,  # the plugin finds the components from its own location, not the working directory
    )
    try:
        assert process.stdout is not None
        port = process.stdout.readline().strip()
        assert port.isdigit(), process.stderr.read() if process.stderr else ""
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            answer = provider_pb2_grpc.ResourceProviderStub(channel).GetSchema(
                provider_pb2.GetSchemaRequest(version=0), timeout=60
            )
        served = json.loads(answer.schema)
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert served == schema


def test_an_unknown_input_is_refused_by_name() -> None:
    from components.args import from_inputs
    from components.falco import FalcoSettings

    with pytest.raises(Exception, match=r"^sidekickUI: is not an argument of FalcoSettings$"):
        from_inputs(FalcoSettings, {"sidekickUI": False})
