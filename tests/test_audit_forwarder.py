"""The AuditForwarder component under Pulumi mocks: IAM documents, RBAC, workload, network and image as data."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from functools import partial
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pytest
from pulumi_mocks import (
    ACCOUNT_ID,
    OIDC_ISSUER,
    OIDC_PROVIDER_ARN,
    REGION,
    Recorded,
    Registration,
    resolve,
    run_program,
    unwrap_secret,
)

from components.errors import ConfigError
from components.forwarding.audit_forwarder import DEFAULT_SOURCE_MODE_IMAGE, AuditForwarder, AuditForwarderArgs
from components.forwarding.workload import Resources

ROOT = Path(__file__).resolve().parents[1]
FORWARDER_DIR = ROOT / "forwarder"

LOG_GROUP = "/aws/eks/falco-lab/cluster"
LOG_GROUP_ARN = f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{LOG_GROUP}"
FALCO_URL = "http://falco-k8saudit-k8saudit-webhook-headless.falco.svc.cluster.local:9765/k8s-audit"
FALCO_LABELS = {"app.kubernetes.io/name": "falco", "app.kubernetes.io/instance": "falco-k8saudit"}
GIVEN_IMAGE = f"{ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/forwarder@sha256:{'cd' * 32}"
STREAM_ARN = f"arn:aws:kinesis:{REGION}:{ACCOUNT_ID}:stream/falco-audit-stream-0a1b2c3"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/1234abcd-12ab-34cd-56ef-1234567890ab"

COMPONENT = "falco-eks:index:AuditForwarder"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
IMAGE = "docker-build:index:Image"
REPO = "aws:ecr/repository:Repository"
CONFIGMAP = "kubernetes:core/v1:ConfigMap"
RBAC_ROLE = "kubernetes:rbac.authorization.k8s.io/v1:Role"
ROLE_BINDING = "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
LEASE = "kubernetes:coordination.k8s.io/v1:Lease"
POD_LABELS = {"app.kubernetes.io/name": "audit-forwarder", "app.kubernetes.io/instance": "audit-forwarder"}


def _args(**overrides: Any) -> AuditForwarderArgs:
    """Realistic inputs: a log group as Outputs, as the lab passes them."""
    log_group = aws.cloudwatch.LogGroup("audit-log", name=LOG_GROUP, retention_in_days=7)
    values: dict[str, Any] = {
        "log_group_name": log_group.name,
        "log_group_arn": log_group.arn,
        "oidc_provider_arn": pulumi.Output.from_input(OIDC_PROVIDER_ARN),
        "oidc_issuer": pulumi.Output.from_input(OIDC_ISSUER),
        "region": REGION,
        "falco_url": pulumi.Output.from_input(FALCO_URL),
        "falco_namespace": pulumi.Output.from_input("falco"),
        "falco_pod_labels": FALCO_LABELS,
    }
    values.update(overrides)
    return AuditForwarderArgs(**values)


def _cluster_provider() -> pulumi.ResourceOptions:
    """The caller's Kubernetes provider for the audited cluster, as resource options pass it."""
    return pulumi.ResourceOptions(provider=k8s.Provider("cluster", kubeconfig="{}"))


def _deploy(**overrides: Any) -> Recorded:
    return run_program(lambda: AuditForwarder("forwarder", _args(**overrides), opts=_cluster_provider()))


@pytest.fixture(scope="module")
def given() -> Recorded:
    """The component with an image given by the caller."""
    return _deploy(image=GIVEN_IMAGE)


@pytest.fixture(scope="module")
def built() -> Recorded:
    """The default: bundled forwarder/ built with Docker and pushed to ECR."""
    return _deploy()


@pytest.fixture(scope="module")
def kinesis() -> Recorded:
    """The Kinesis source: the stream a subscription filter fills, encrypted with the AWS-managed key."""
    return _deploy(image=GIVEN_IMAGE, kinesis_stream_arn=pulumi.Output.from_input(STREAM_ARN), falco_connections=4)


@pytest.fixture(scope="module")
def source() -> Recorded:
    """No Docker: the official Python image runs the bundled source from a ConfigMap."""
    return _deploy(build="source")


def _policy(recorded: Recorded, typ: str, key: str) -> dict[str, Any]:
    return json.loads(recorded.one(typ).inputs[key])


def _pod(recorded: Recorded) -> dict[str, Any]:
    return recorded.one(DEPLOYMENT).inputs["spec"]["template"]


def _container(recorded: Recorded, name: str = "forwarder") -> dict[str, Any]:
    containers = {c["name"]: c for c in _pod(recorded)["spec"]["containers"]}
    return containers[name]


def _env(container: dict[str, Any]) -> dict[str, Any]:
    """Each variable's value, or for one from the pod's own fields its field path."""
    return {e["name"]: e["value"] if "value" in e else e["valueFrom"] for e in container["env"]}


def _flags(container: dict[str, Any]) -> dict[str, str]:
    args = container["args"]
    assert len(args) % 2 == 0, args
    return dict(zip(args[0::2], args[1::2], strict=True))


def _netpol(recorded: Recorded, namespace: str) -> dict[str, Any]:
    """The forwarder's policy in `namespace` (Falco's own, around Falcosidekick, are the Falco component's)."""
    found = [
        r
        for r in recorded.of_type(NETPOL)
        if r.inputs["metadata"]["namespace"] == namespace
        and r.inputs["metadata"]["labels"].get("app.kubernetes.io/component") == "forwarder"
    ]
    assert len(found) == 1, [r.inputs["metadata"] for r in recorded.of_type(NETPOL)]
    return found[0].inputs["spec"]


# --- identity ---------------------------------------------------------------------------------


def test_trust_policy_lets_only_the_service_account_assume_the_role(given: Recorded) -> None:
    policy = _policy(given, ROLE, "assumeRolePolicy")
    assert policy["Version"] == "2012-10-17"
    (statement,) = policy["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Principal"] == {"Federated": OIDC_PROVIDER_ARN}
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Condition"] == {
        "StringEquals": {
            f"{OIDC_ISSUER}:sub": "system:serviceaccount:falco-forwarder:audit-forwarder",
            f"{OIDC_ISSUER}:aud": "sts.amazonaws.com",
        }
    }


def test_trust_policy_strips_the_issuer_scheme() -> None:
    recorded = _deploy(
        image=GIVEN_IMAGE, oidc_issuer=f"https://{OIDC_ISSUER}/", namespace="ns1", service_account_name="sa1"
    )
    condition = _policy(recorded, ROLE, "assumeRolePolicy")["Statement"][0]["Condition"]["StringEquals"]
    assert condition == {
        f"{OIDC_ISSUER}:sub": "system:serviceaccount:ns1:sa1",
        f"{OIDC_ISSUER}:aud": "sts.amazonaws.com",
    }


def _aws_calls_in_forwarder_source() -> dict[str, set[str]]:
    """IAM actions of every CloudWatch Logs and Kinesis API call in the forwarder's code, by service.

    A call is a method (`.filter_log_events(`) or a paginator (`get_paginator("list_shards")`) whose name is an
    operation of the service in botocore's own model: whatever the client variable is called."""
    import botocore.session

    session = botocore.session.get_session()
    operations: dict[str, dict[str, str]] = {}
    for service in ("logs", "kinesis"):
        model = session.get_service_model(service)
        operations[service] = {botocore.xform_name(op): op for op in model.operation_names}
    calls: dict[str, set[str]] = {"logs": set(), "kinesis": set()}
    for path in FORWARDER_DIR.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        names = set(re.findall(r"\.([a-z_]+)\(", text)) | set(re.findall(r"get_paginator\(\s*[\"']([a-z_]+)", text))
        for name in names:
            owners = [service for service in operations if name in operations[service]]
            assert len(owners) <= 1, f"{path.name}: {name} is an operation of {owners}; say which client calls it"
            for service in owners:
                calls[service].add(f"{service}:{operations[service][name]}")
    assert calls["logs"], "no CloudWatch Logs calls found in forwarder/: the pattern is out of date"
    return calls


def test_permission_policy_reads_only_the_audit_log_group(given: Recorded) -> None:
    role_policies = given.of_type(ROLE_POLICY)
    assert len(role_policies) == 1, "exactly one policy on the role"
    assert given.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment") == []
    assert "managedPolicyArns" not in given.one(ROLE).inputs
    policy = _policy(given, ROLE_POLICY, "policy")
    (statement,) = policy["Statement"]
    assert statement["Effect"] == "Allow"
    # Exactly the calls forwarder/sources/cloudwatch.py makes
    # (test_policies_grant_exactly_the_calls_the_forwarder_makes).
    assert statement["Action"] == ["logs:FilterLogEvents"]
    resources = statement["Resource"]
    assert sorted(resources) == sorted([LOG_GROUP_ARN, f"{LOG_GROUP_ARN}:*"])
    for resource in resources:
        assert resource != "*" and resource.startswith(f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{LOG_GROUP}")
    assert "NotAction" not in statement and "NotResource" not in statement


def test_with_kinesis_the_role_reads_only_the_stream(kinesis: Recorded) -> None:
    assert len(kinesis.of_type(ROLE_POLICY)) == 1, "exactly one policy on the role"
    policy = _policy(kinesis, ROLE_POLICY, "policy")
    (statement,) = policy["Statement"]  # the AWS-managed key needs no KMS grant
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == ["kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:ListShards"]
    assert statement["Resource"] == STREAM_ARN
    assert "Condition" not in statement and "NotAction" not in statement and "NotResource" not in statement
    # The Kinesis source makes no FilterLogEvents call: no CloudWatch Logs access at all.
    assert "logs:" not in json.dumps(policy)


def test_with_a_customer_key_the_role_may_decrypt_with_that_key_only() -> None:
    recorded = _deploy(image=GIVEN_IMAGE, kinesis_stream_arn=STREAM_ARN, kinesis_kms_key_arn=KEY_ARN)
    read, decrypt = _policy(recorded, ROLE_POLICY, "policy")["Statement"]
    assert read["Resource"] == STREAM_ARN
    assert decrypt == {"Sid": "DecryptAuditStream", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": KEY_ARN}


def test_policies_grant_exactly_the_calls_the_forwarder_makes() -> None:
    """The polling policy's actions are the forwarder's CloudWatch Logs calls, the Kinesis policy's its Kinesis
    calls (ListShards, GetShardIterator, GetRecords: the contract between the two)."""
    from components.forwarding.iam import LOG_READER_ACTIONS, STREAM_READER_ACTIONS

    calls = _aws_calls_in_forwarder_source()
    assert sorted(LOG_READER_ACTIONS) == sorted(calls["logs"])
    assert sorted(STREAM_READER_ACTIONS) == sorted(calls["kinesis"])


def test_permission_policy_accepts_the_describe_log_groups_arn_form() -> None:
    recorded = _deploy(image=GIVEN_IMAGE, log_group_arn=f"{LOG_GROUP_ARN}:*")
    resources = _policy(recorded, ROLE_POLICY, "policy")["Statement"][0]["Resource"]
    assert sorted(resources) == sorted([LOG_GROUP_ARN, f"{LOG_GROUP_ARN}:*"])


def test_policy_is_attached_to_the_forwarder_role(given: Recorded) -> None:
    role = given.one(ROLE)
    assert given.one(ROLE_POLICY).inputs["role"] == f"{role.name}-id"  # the mocked role's id


def test_service_account_carries_the_role_arn(given: Recorded) -> None:
    sa = given.one("kubernetes:core/v1:ServiceAccount").inputs["metadata"]
    role_arn = given.one(ROLE).outputs["arn"]
    assert sa["name"] == "audit-forwarder" and sa["namespace"] == "falco-forwarder"
    assert sa["annotations"]["eks.amazonaws.com/role-arn"] == role_arn
    assert role_arn.startswith(f"arn:aws:iam::{ACCOUNT_ID}:role/")
    assert resolve(given.result.role_arn) == role_arn


# --- namespace and RBAC -----------------------------------------------------------------------


def test_namespace_enforces_the_restricted_pod_security_standard(given: Recorded) -> None:
    meta = given.one("kubernetes:core/v1:Namespace").inputs["metadata"]
    assert meta["name"] == "falco-forwarder"
    for mode in ("enforce", "audit", "warn"):
        assert meta["labels"][f"pod-security.kubernetes.io/{mode}"] == "restricted"
    assert resolve(given.result.namespace) == "falco-forwarder"


def _checkpoint_objects(recorded: Recorded) -> list[Registration]:
    """The checkpoint's ConfigMaps (not the source-mode one) and the Lease, as registered."""
    return [r for r in recorded.resources if r.type == LEASE
            or (r.type == CONFIGMAP and r.inputs["metadata"].get("name", "").startswith("audit-forwarder-state"))]


def test_roles_grant_get_and_update_on_the_stacks_objects_and_the_0_3_ones_by_name_and_no_create(
        given: Recorded) -> None:
    from support.kube_api import forwarder_role_rules

    from forwarder.checkpoint.store import hashes_names

    checkpoint = given.one(RBAC_ROLE, "forwarder-checkpoint").inputs
    leader = given.one(RBAC_ROLE, "forwarder-leader").inputs
    assert checkpoint["metadata"]["namespace"] == leader["metadata"]["namespace"] == "falco-forwarder"
    # The Roles keep their 0.3 names: another name would replace them and their bindings on an upgrade.
    assert checkpoint["metadata"]["name"] == "audit-forwarder-checkpoint"
    assert leader["metadata"]["name"] == "audit-forwarder-leader"
    # Exactly what the Kubernetes API stand-in enforces in the forwarder's tests (support/kube_api.py): the
    # checkpoint's positions and the parts of its remembered hashes (the forwarder's names), the Lease; and what a
    # 0.3 forwarder created itself, which the forwarder reads on an upgrade and the 0.3 replicas write until the
    # rolling update stops them (tests/test_fwd_upgrade_rollout.py). Get and update only. No create: RBAC cannot
    # limit it by name, and the stack creates the objects.
    assert checkpoint["rules"] + leader["rules"] == forwarder_role_rules(
        "audit-forwarder-lease", "audit-forwarder-state", previous_checkpoint="audit-forwarder-checkpoint",
        previous_lease="audit-forwarder-leader")
    assert checkpoint["rules"][0]["resourceNames"] == ["audit-forwarder-state", *hashes_names("audit-forwarder-state")]
    assert checkpoint["rules"][1]["resourceNames"] == [
        "audit-forwarder-checkpoint", "audit-forwarder-checkpoint-hashes"]
    assert not [rule for role in (checkpoint, leader) for rule in role["rules"] if "create" in rule["verbs"]]


@pytest.mark.parametrize("settings", [
    {},  # the lab's
    {"deployment_name": "team-forwarder", "checkpoint_configmap_name": "team-checkpoint"},  # a 0.3 program's own
])
def test_no_object_the_stack_creates_has_the_name_of_one_a_0_3_forwarder_created_itself(
        settings: dict[str, str]) -> None:
    """On a 0.3 lab those objects exist, created by the 0.3 forwarder and not in Pulumi's state: a create of the same
    kind and name fails the upgrade's `pulumi up` with AlreadyExists (pulumi-kubernetes creates client-side since
    4.29). A 0.3 program keeps its settings, so with the same settings no name may be one of them; the forwarder takes
    over from exactly those (its flags name them)."""
    from support.release_0_3 import SELF_CREATED

    recorded = _deploy(image=GIVEN_IMAGE, **settings)
    deployment = settings.get("deployment_name", "audit-forwarder")
    checkpoint = settings.get("checkpoint_configmap_name", "audit-forwarder-checkpoint")
    created_by_0_3 = {(kind, name.format(checkpoint=checkpoint, deployment=deployment)) for kind, name in SELF_CREATED}
    ours = {(r.type.rsplit(":", 1)[-1], r.inputs["metadata"]["name"]) for r in recorded.resources
            if r.type.startswith("kubernetes:") and (r.inputs.get("metadata") or {}).get("name")}
    assert {kind for kind, _ in ours} >= {"ConfigMap", "Lease", "Role", "Deployment"}
    assert ours & created_by_0_3 == set()
    flags = _flags(_container(recorded))
    assert {("ConfigMap", flags["--migrate-from"].rsplit("/", 1)[1]), ("Lease", flags["--wait-for-lease"].split("/")[1])
            } == {(kind, name) for kind, name in created_by_0_3 if not name.endswith("-hashes")}


def test_the_stack_creates_the_checkpoint_and_the_lease_empty_and_leaves_their_contents_to_the_forwarder(
        given: Recorded) -> None:
    from forwarder.checkpoint.store import hashes_names

    objects = _checkpoint_objects(given)
    names = ["audit-forwarder-state", *hashes_names("audit-forwarder-state")]
    assert sorted((r.type, r.inputs["metadata"]["name"]) for r in objects) == sorted(
        [*((CONFIGMAP, n) for n in names), (LEASE, "audit-forwarder-lease")])
    component = given.one(COMPONENT).urn
    for r in objects:
        assert r.inputs["metadata"]["namespace"] == "falco-forwarder"
        assert r.inputs["metadata"]["labels"]["app.kubernetes.io/part-of"] == "falco-eks-lab"
        assert r.parent == component
        # `pulumi destroy` deletes them (with the namespace they are in).
        assert not r.protect and not r.retain_on_delete
    configmaps = [r for r in objects if r.type == CONFIGMAP]
    # No data: an empty ConfigMap is no checkpoint yet; what the forwarder writes, a later `pulumi up` keeps.
    assert all(not {"data", "binaryData", "immutable"} & set(r.inputs) for r in configmaps)
    assert all(r.ignore_changes == ["data", "binaryData"] for r in configmaps)
    (lease,) = [r for r in objects if r.type == LEASE]
    assert "spec" not in lease.inputs and lease.ignore_changes == ["spec"]  # free until a replica takes it


def test_the_forwarder_runs_on_the_objects_and_within_the_roles_the_component_renders(
        given: Recorded, tmp_path: Path) -> None:
    """The rendered Roles enforced by the Kubernetes API stand-in, holding the rendered objects: the forwarder's
    checkpoint and Lease work, and nothing it is not granted is asked for; a create is refused."""
    from support.kube_api import FakeKubeApi, Rbac

    from forwarder.checkpoint.codec import Positions
    from forwarder.checkpoint.store import CheckpointError, ConfigMapCheckpointStore
    from forwarder.clock import SystemClock
    from forwarder.kube import KubeApi
    from forwarder.metrics import Metrics
    from forwarder.replicas.lease import LeaseElector
    from forwarder.replicas.upgrade import PreviousLease, read_previous_checkpoint

    rules = [rule for role in given.of_type(RBAC_ROLE) for rule in role.inputs["rules"]]
    api = FakeKubeApi(None, rbac=Rbac.from_rules(rules))
    try:
        for r in _checkpoint_objects(given):
            kind = "Lease" if r.type == LEASE else "ConfigMap"
            api.put(api.leases if r.type == LEASE else api.objects, r.inputs["metadata"]["name"],
                    {"kind": kind, "metadata": r.inputs["metadata"]})
        flags = _flags(_container(given))
        namespace, name = flags["--checkpoint"].removeprefix("configmap:").split("/")
        lease_ns, lease_name = flags["--lease"].split("/")
        kube = KubeApi(api.url, token_path=str(tmp_path / "none"), ca_path=None)
        elector = LeaseElector(kube, lease_ns, lease_name, "audit-forwarder-0", duration_seconds=15,
                               clock=SystemClock(), metrics=Metrics())
        elector.step()
        assert elector.holding()
        # The first start looks for a 0.3 forwarder's objects (none: a fresh install), as the flags say.
        _, previous = flags["--migrate-from"].removeprefix("configmap:").split("/")
        previous_lease = flags["--wait-for-lease"].split("/")[1]
        assert PreviousLease(kube, lease_ns, previous_lease, clock=SystemClock(), duration_seconds=15).step() == 0
        store = ConfigMapCheckpointStore(namespace, name, api=kube, fence=elector.fence,
                                         previous=partial(read_previous_checkpoint, kube, namespace, previous))
        assert store.claim() is None
        store.save_positions(Positions(LOG_GROUP, "kube-apiserver-audit", {"head": 1}))
        assert api.denied == []
        assert ("GET", f"/api/v1/namespaces/{namespace}/configmaps/{previous}") in api.requests
        del api.objects[name]
        with pytest.raises(CheckpointError, match="may not create it"):
            ConfigMapCheckpointStore(namespace, name, api=kube).claim()
        assert [method for method, _ in api.denied] == ["POST"]
    finally:
        api.close()


@pytest.mark.parametrize("role", ["forwarder-checkpoint", "forwarder-leader"])
def test_role_binding_binds_the_role_to_the_service_account(given: Recorded, role: str) -> None:
    binding = given.one(ROLE_BINDING, role).inputs
    role_name = given.one(RBAC_ROLE, role).inputs["metadata"]["name"]
    assert binding["metadata"]["namespace"] == "falco-forwarder"
    assert binding["metadata"]["name"] == role_name
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role_name}
    subject = {"kind": "ServiceAccount", "name": "audit-forwarder", "namespace": "falco-forwarder"}
    assert binding["subjects"] == [subject]


def test_no_cluster_wide_rbac(given: Recorded) -> None:
    assert not [r for r in given.resources if r.type.endswith(("ClusterRole", "ClusterRoleBinding"))]


# --- workload ---------------------------------------------------------------------------------


def test_deployment_runs_two_replicas_spread_over_nodes_and_never_none(given: Recorded) -> None:
    spec = given.one(DEPLOYMENT).inputs["spec"]
    assert spec["replicas"] == 2
    # A new pod is up before an old one goes; the Lease keeps a second reader idle.
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    assert spec["selector"]["matchLabels"] == POD_LABELS
    assert POD_LABELS.items() <= spec["template"]["metadata"]["labels"].items()
    spread = spec["template"]["spec"]["topologySpreadConstraints"]
    assert [c["topologyKey"] for c in spread] == ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]
    for constraint in spread:
        # A preference: a one-node cluster still runs both replicas.
        assert constraint["whenUnsatisfiable"] == "ScheduleAnyway" and constraint["maxSkew"] == 1
        assert constraint["labelSelector"] == {"matchLabels": POD_LABELS}
        assert constraint["matchLabelKeys"] == ["pod-template-hash"]


def test_a_drain_takes_one_replica_at_a_time(given: Recorded) -> None:
    budget = given.one(PDB).inputs
    assert budget["metadata"]["namespace"] == "falco-forwarder"
    assert budget["spec"] == {
        "maxUnavailable": 1,
        "selector": {"matchLabels": POD_LABELS},
        "unhealthyPodEvictionPolicy": "AlwaysAllow",
    }


def test_a_single_replica_has_no_disruption_budget() -> None:
    recorded = _deploy(image=GIVEN_IMAGE, replicas=1)
    assert recorded.one(DEPLOYMENT).inputs["spec"]["replicas"] == 1
    assert recorded.of_type(PDB) == []
    assert _flags(_container(recorded))["--lease"] == "falco-forwarder/audit-forwarder-lease"


def test_each_replica_knows_its_pod_name(given: Recorded) -> None:
    assert _env(_container(given))["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}


def test_command_reads_the_log_group_and_posts_to_falco(given: Recorded) -> None:
    container = _container(given)
    assert container["command"] == ["python", "-m", "forwarder", "run"]
    assert container["image"] == GIVEN_IMAGE
    assert _flags(container) == {
        "--log-group": LOG_GROUP,
        "--region": REGION,
        "--falco-url": FALCO_URL,
        "--checkpoint": "configmap:falco-forwarder/audit-forwarder-state",
        "--metrics-port": "9090",
        "--checkpoint-interval": "10",
        "--checkpoint-hashes-interval": "60",
        "--start-at": "3600s",
        "--lease": "falco-forwarder/audit-forwarder-lease",
        "--falco-connections": "1",
        # What a 0.3 forwarder created itself, taken over on an upgrade (nothing there on a fresh install).
        "--migrate-from": "configmap:falco-forwarder/audit-forwarder-checkpoint",
        "--wait-for-lease": "falco-forwarder/audit-forwarder-leader",
    }


def test_with_kinesis_the_command_reads_the_stream(kinesis: Recorded) -> None:
    flags = _flags(_container(kinesis))
    assert flags["--source"] == f"kinesis:{STREAM_ARN}"
    # The Kinesis source keeps only this log group's audit streams: the group stays on the command line.
    assert flags["--log-group"] == LOG_GROUP and flags["--region"] == REGION
    assert flags["--lease"] == "falco-forwarder/audit-forwarder-lease"
    assert flags["--falco-connections"] == "4"


def _values_in(config: object) -> set[object]:
    """Every plain value in a parsed configuration, however it nests them (the contract fixes the command line,
    not the forwarder's field names)."""
    if isinstance(config, (str, int, float)):
        return {config}
    if isinstance(config, (list, tuple, set, frozenset)):
        return {value for item in config for value in _values_in(item)}
    if isinstance(config, dict):
        return {value for item in config.values() for value in _values_in(item)}
    if hasattr(config, "__dict__") or hasattr(config, "__slots__"):
        names = [f.name for f in dataclasses.fields(config)] if dataclasses.is_dataclass(config) else list(vars(config))
        return {value for name in names for value in _values_in(getattr(config, name))}
    return set()


def _parse_pod_command(recorded: Recorded) -> Any:
    """What the real forwarder's parser makes of the pod's command line and environment."""
    from forwarder.config import RunConfig, parse

    container = _container(recorded)
    assert container["command"][-1] == "run"
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    env["POD_NAME"] = "audit-forwarder-7d9f8c6b5-x2k4q"  # what the downward API gives the pod
    config = parse(["run", *container["args"]], env)
    assert isinstance(config, RunConfig)
    return config


def test_the_forwarder_accepts_the_deployment_command_line(given: Recorded) -> None:
    """The real forwarder's parser reads what the pod runs, with the pod's environment."""
    config = _parse_pod_command(given)
    assert config.log_group == LOG_GROUP and config.region == REGION and config.falco_url == FALCO_URL
    assert config.metrics_port == 9090
    assert config.checkpoint is not None
    assert (config.checkpoint.kind, config.checkpoint.namespace, config.checkpoint.name) == (
        "configmap",
        "falco-forwarder",
        "audit-forwarder-state",
    )
    assert (config.checkpoint_interval_seconds, config.checkpoint_hashes_interval_seconds) == (10.0, 60.0)
    assert config.start_at.resolve(10_000_000) == 10_000_000 - 3_600_000  # the first start reads back an hour
    values = _values_in(config)
    # --lease, --wait-for-lease and --migrate-from, whole or as namespace and name.
    for ref in ("falco-forwarder/audit-forwarder-lease", "falco-forwarder/audit-forwarder-leader"):
        assert ref in values or set(ref.split("/")) <= values
    assert "audit-forwarder-checkpoint" in values
    assert not any(isinstance(v, str) and v.startswith("kinesis") for v in values)  # the polling source


def test_the_forwarder_accepts_the_kinesis_command_line(kinesis: Recorded) -> None:
    config = _parse_pod_command(kinesis)
    assert config.log_group == LOG_GROUP and config.falco_url == FALCO_URL
    values = _values_in(config)
    # --source kinesis:<ARN>, kept whole or as the ARN.
    assert f"kinesis:{STREAM_ARN}" in values or STREAM_ARN in values
    assert 4 in values  # --falco-connections


def test_environment_has_region_and_no_credentials(given: Recorded) -> None:
    env = _env(_container(given))
    assert env["AWS_REGION"] == REGION and env["AWS_DEFAULT_REGION"] == REGION
    assert env["AWS_EC2_METADATA_DISABLED"] == "true"  # never the node's role
    assert env["HOME"] == "/tmp"
    for forbidden in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        assert forbidden not in env
    # Nothing from Secrets: the only variable not given by value is the pod's own name.
    assert {e["name"]: e["valueFrom"] for e in _container(given)["env"] if "valueFrom" in e} == {
        "POD_NAME": {"fieldRef": {"fieldPath": "metadata.name"}}
    }


def test_pod_and_container_security_contexts(given: Recorded) -> None:
    pod = _pod(given)["spec"]
    assert pod["serviceAccountName"] == "audit-forwarder"
    assert pod["automountServiceAccountToken"] is True
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "fsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert "hostNetwork" not in pod and "hostPID" not in pod
    sc = _container(given)["securityContext"]
    assert sc == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def test_tmp_is_a_writable_emptydir(given: Recorded) -> None:
    volumes = {v["name"]: v for v in _pod(given)["spec"]["volumes"]}
    assert "emptyDir" in volumes["tmp"]
    mounts = {m["mountPath"]: m for m in _container(given)["volumeMounts"]}
    assert mounts["/tmp"]["name"] == "tmp" and not mounts["/tmp"].get("readOnly", False)


def test_probes_and_metrics_port(given: Recorded) -> None:
    container = _container(given)
    assert container["ports"] == [{"name": "metrics", "containerPort": 9090, "protocol": "TCP"}]
    liveness, readiness = container["livenessProbe"], container["readinessProbe"]
    assert liveness["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert readiness["httpGet"] == {"path": "/readyz", "port": "metrics"}
    for probe in (liveness, readiness):
        assert probe["periodSeconds"] > 0 and probe["failureThreshold"] >= 1 and probe["timeoutSeconds"] >= 1


def test_prometheus_annotations(given: Recorded) -> None:
    annotations = _pod(given)["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "9090"
    assert annotations["prometheus.io/path"] == "/metrics"


def test_requests_and_limits(given: Recorded) -> None:
    resources = _container(given)["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"}
    assert set(resources["limits"]) == {"cpu", "memory"}
    assert resources == {
        "requests": {"cpu": "50m", "memory": "128Mi"},
        "limits": {"cpu": "500m", "memory": "384Mi"},
    }


def test_custom_ports_and_resources_flow_everywhere() -> None:
    recorded = _deploy(
        image=GIVEN_IMAGE, metrics_port=9102, falco_port=19765, resources=Resources("10m", "64Mi", "1", "1Gi")
    )
    container = _container(recorded)
    assert _flags(container)["--metrics-port"] == "9102"
    assert container["ports"][0]["containerPort"] == 9102
    assert _pod(recorded)["metadata"]["annotations"]["prometheus.io/port"] == "9102"
    assert container["resources"]["limits"] == {"cpu": "1", "memory": "1Gi"}
    assert _netpol(recorded, "falco-forwarder")["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 9102}]
    assert _netpol(recorded, "falco")["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 19765}]


def test_deployment_waits_for_its_permissions_and_its_objects(given: Recorded) -> None:
    deps = set(given.one(DEPLOYMENT).dependencies)
    assert given.one(ROLE_POLICY).urn in deps
    assert {binding.urn for binding in given.of_type(ROLE_BINDING)} <= deps
    assert len(given.of_type(ROLE_BINDING)) == 2
    # Created before the forwarder runs, deleted after it stopped.
    assert {r.urn for r in _checkpoint_objects(given)} <= deps


@pytest.mark.parametrize(("lookback", "flag"), [(0, "now"), (1800, "1800s"), (86_400, "86400s")])
def test_the_first_starts_lookback_reaches_the_forwarder(lookback: int, flag: str) -> None:
    recorded = _deploy(image=GIVEN_IMAGE, initial_lookback_seconds=lookback)
    assert _flags(_container(recorded))["--start-at"] == flag
    config = _parse_pod_command(recorded)
    assert config.start_at.resolve(100_000_000) == 100_000_000 - lookback * 1000


# --- network ----------------------------------------------------------------------------------


def test_only_the_forwarder_reaches_the_falco_webhook(given: Recorded) -> None:
    spec = _netpol(given, "falco")
    assert spec["podSelector"] == {"matchLabels": FALCO_LABELS}
    assert spec["policyTypes"] == ["Ingress"]
    (rule,) = spec["ingress"]
    # One peer with both selectors: the forwarder's pods in the forwarder's namespace, nothing else.
    assert rule["from"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "falco-forwarder"}},
            "podSelector": {"matchLabels": POD_LABELS},
        }
    ]
    assert rule["ports"] == [{"protocol": "TCP", "port": 9765}]


def test_forwarder_egress_only_dns_falco_and_https(given: Recorded) -> None:
    spec = _netpol(given, "falco-forwarder")
    assert spec["podSelector"] == {"matchLabels": POD_LABELS}
    assert sorted(spec["policyTypes"]) == ["Egress", "Ingress"]
    assert spec["ingress"] == [{"ports": [{"protocol": "TCP", "port": 9090}]}]
    dns, falco, https = spec["egress"]
    assert dns["to"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
    ]
    assert sorted((p["protocol"], p["port"]) for p in dns["ports"]) == [("TCP", 53), ("UDP", 53)]
    assert falco["to"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "falco"}},
            "podSelector": {"matchLabels": FALCO_LABELS},
        }
    ]
    assert falco["ports"] == [{"protocol": "TCP", "port": 9765}]
    assert https["ports"] == [{"protocol": "TCP", "port": 443}]
    assert sorted(peer["ipBlock"]["cidr"] for peer in https["to"]) == ["0.0.0.0/0", "::/0"]
    for rule in spec["egress"]:
        assert rule.get("ports"), "every egress rule is limited to its ports"


# --- image ------------------------------------------------------------------------------------


def test_given_image_builds_nothing(given: Recorded) -> None:
    assert given.of_type(IMAGE) == [] and given.of_type(REPO) == []
    assert [r for r in given.of_type(CONFIGMAP) if r not in _checkpoint_objects(given)] == []  # no source
    assert resolve(given.result.image) == GIVEN_IMAGE


def test_default_builds_the_bundled_forwarder_for_the_nodes(built: Recorded) -> None:
    image = built.one(IMAGE).inputs
    repo = built.one(REPO)
    assert image["platforms"] == ["linux/amd64"]
    # Relative to the program's working directory (portable state), and pointing at the bundled package.
    assert not Path(image["context"]["location"]).is_absolute()
    assert (Path.cwd() / image["context"]["location"]).resolve() == FORWARDER_DIR
    assert (Path.cwd() / image["dockerfile"]["location"]).resolve() == FORWARDER_DIR / "Dockerfile"
    assert (FORWARDER_DIR / "Dockerfile").is_file()
    assert image["push"] is True
    repo_url = repo.outputs["repositoryUrl"]
    (tag,) = image["tags"]
    assert tag.startswith(f"{repo_url}:") and tag.endswith("-amd64")
    registries, secret = unwrap_secret(image["registries"])
    assert secret, "the ECR token must reach the engine as a secret"
    (registry,) = registries
    assert registry == {"address": repo_url.split("/")[0], "username": "AWS", "password": "mock-token"}
    # The Deployment runs what was pushed, by digest.
    pushed_ref = built.one(IMAGE).outputs["ref"]
    assert "@sha256:" in pushed_ref
    assert _container(built)["image"] == pushed_ref
    assert resolve(built.result.image) == pushed_ref


def test_ecr_repository_goes_with_the_stack(built: Recorded) -> None:
    repo = built.one(REPO).inputs
    assert repo["forceDelete"] is True
    assert repo["imageScanningConfiguration"] == {"scanOnPush": True}
    # Tags may move; what runs is pinned by digest (test_default_builds_the_bundled_forwarder_for_the_nodes).
    assert repo["imageTagMutability"] == "MUTABLE"
    assert repo["encryptionConfigurations"] == [{"encryptionType": "AES256"}]
    lifecycle = json.loads(built.one("aws:ecr/lifecyclePolicy:LifecyclePolicy").inputs["policy"])
    assert lifecycle["rules"][0]["action"] == {"type": "expire"}


def test_arm64_nodes_get_an_arm64_image() -> None:
    recorded = _deploy(node_architecture="arm64")
    image = recorded.one(IMAGE).inputs
    assert image["platforms"] == ["linux/arm64"]
    assert image["tags"][0].endswith("-arm64")


def _bundled_files() -> dict[str, str]:
    files = {
        path.relative_to(FORWARDER_DIR).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(FORWARDER_DIR.rglob("*.py"))
        if "__pycache__" not in path.parts and "tests" not in path.relative_to(FORWARDER_DIR).parts
    }
    files["requirements.txt"] = (FORWARDER_DIR / "requirements.txt").read_text(encoding="utf-8")
    return files


def test_source_mode_ships_the_real_forwarder_source(source: Recorded) -> None:
    assert source.of_type(IMAGE) == [] and source.of_type(REPO) == []
    configmap = source.one(CONFIGMAP, "forwarder-source").inputs
    assert configmap["metadata"]["namespace"] == "falco-forwarder"
    assert configmap["immutable"] is True
    expected = _bundled_files()
    assert {"__main__.py", "cli.py", "requirements.txt"} <= expected.keys()
    volumes = {v["name"]: v for v in _pod(source)["spec"]["volumes"]}
    items = {item["key"]: item["path"] for item in volumes["source"]["configMap"]["items"]}
    shipped = {items[key]: text for key, text in configmap["data"].items()}
    assert shipped == expected
    shipped_in = source.one(CONFIGMAP, "forwarder-source").outputs["metadata"]["name"]
    assert volumes["source"]["configMap"]["name"] == shipped_in


def test_source_mode_pod_runs_the_forwarder_from_the_files_the_configmap_projects(
    source: Recorded, tmp_path: Path
) -> None:
    """The pod's tree, rebuilt here from the ConfigMap and the volume's items where the main container mounts them:
    `python -m forwarder` runs from it, and every module of the package imports from it alone."""
    import os
    import subprocess
    import sys

    data = source.one(CONFIGMAP, "forwarder-source").inputs["data"]
    volumes = {v["name"]: v for v in _pod(source)["spec"]["volumes"]}
    main = _container(source)
    pod_root = tmp_path / "pod"
    for mount in main["volumeMounts"]:
        config_map = volumes[mount["name"]].get("configMap")
        if config_map is None:
            continue
        for item in config_map["items"]:
            # Kubernetes' rules for a ConfigMap key and for an item's path.
            assert re.fullmatch(r"[-._a-zA-Z0-9]{1,253}", item["key"]), item
            assert not item["path"].startswith("/") and ".." not in item["path"].split("/"), item
            target = pod_root / mount["mountPath"].lstrip("/") / item["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(data[item["key"]], encoding="utf-8")
    package = pod_root / "opt" / "forwarder" / "forwarder"
    assert {p.relative_to(package).as_posix() for p in package.rglob("*") if p.is_file()} == set(_bundled_files())
    # PYTHONPATH as the pod has it, the source folder moved under pod_root; the pinned dependencies come from this
    # interpreter instead of /opt/deps. The working directory is not the repository, so only the pod's copy is found.
    python_path = ":".join(
        str(pod_root / entry.lstrip("/")) for entry in _env(main)["PYTHONPATH"].split(":") if entry != "/opt/deps"
    )
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "PYTHONPATH": python_path}
    assert main["command"][:3] == ["python", "-m", "forwarder"]
    ran = subprocess.run(
        [sys.executable, *main["command"][1:], "--help"], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("usage:") and "--log-group" in ran.stdout
    modules = sorted(
        ".".join(("forwarder", *p.relative_to(package).with_suffix("").parts)).removesuffix(".__init__")
        for p in package.rglob("*.py")
        if p.name != "__main__.py"
    )
    program = (
        "import importlib, json, sys; "
        "print(json.dumps({name: importlib.import_module(name).__file__ for name in sys.argv[1:]}))"
    )
    imported = subprocess.run(
        [sys.executable, "-c", program, *modules], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert imported.returncode == 0, imported.stderr
    files = json.loads(imported.stdout)
    assert len(files) > 30 and "forwarder.sources.cloudwatch" in files
    assert all(Path(file).is_relative_to(package) for file in files.values()), files


def test_source_mode_installs_pinned_requirements_in_an_init_container(source: Recorded) -> None:
    pod = _pod(source)["spec"]
    (init,) = pod["initContainers"]
    assert init["image"] == DEFAULT_SOURCE_MODE_IMAGE
    assert ":" in DEFAULT_SOURCE_MODE_IMAGE and not DEFAULT_SOURCE_MODE_IMAGE.endswith(":latest")
    command = init["command"]
    assert command[:4] == ["python", "-m", "pip", "install"]
    assert "--no-cache-dir" in command
    assert command[command.index("--target") + 1] == "/opt/deps"
    assert command[command.index("--requirement") + 1] == "/opt/forwarder/forwarder/requirements.txt"
    for line in (FORWARDER_DIR / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert "==" in line, f"forwarder requirement not pinned: {line}"
    # Hardened the same way as the main container.
    assert init["securityContext"] == _container(source)["securityContext"]
    assert init["resources"]["limits"] and init["resources"]["requests"]
    init_mounts = {m["mountPath"]: m for m in init["volumeMounts"]}
    assert not init_mounts["/opt/deps"].get("readOnly", False)
    main = _container(source)
    assert main["image"] == DEFAULT_SOURCE_MODE_IMAGE
    assert main["command"] == ["python", "-m", "forwarder", "run"]
    mounts = {m["mountPath"]: m for m in main["volumeMounts"]}
    assert mounts["/opt/deps"]["readOnly"] is True
    assert mounts["/opt/forwarder/forwarder"]["readOnly"] is True
    env = _env(main)
    assert env["PYTHONPATH"].split(":") == ["/opt/forwarder", "/opt/deps"]
    assert resolve(source.result.image) == DEFAULT_SOURCE_MODE_IMAGE


def test_source_mode_rolls_the_pod_when_the_source_changes(source: Recorded) -> None:
    annotations = _pod(source)["metadata"]["annotations"]
    digest = hashlib.sha256()
    for relative, text in sorted(_bundled_files().items()):
        digest.update(relative.encode() + b"\0" + text.encode() + b"\0")
    assert annotations["falco-eks.dev/forwarder-source-sha256"] == digest.hexdigest()


def test_source_mode_hash_follows_the_files(tmp_path: Path) -> None:
    package = tmp_path / "forwarder"
    package.mkdir()
    (package / "__main__.py").write_text("print('v1')\n")
    (package / "requirements.txt").write_text("boto3==1.43.11\n")

    def annotation() -> str:
        recorded = _deploy(build="source", source_dir=str(package))
        return _pod(recorded)["metadata"]["annotations"]["falco-eks.dev/forwarder-source-sha256"]

    first = annotation()
    assert annotation() == first
    (package / "__main__.py").write_text("print('v2')\n")
    assert annotation() != first


# --- wiring, outputs, parents -----------------------------------------------------------------


def test_falco_url_is_the_one_the_falco_component_exposes() -> None:
    from components.falco import Falco, FalcoSettings

    def build() -> tuple[Falco, AuditForwarder]:
        opts = _cluster_provider()
        falco = Falco("falco", FalcoSettings(), opts=opts)
        forwarder = AuditForwarder(
            "forwarder",
            _args(
                image=GIVEN_IMAGE,
                falco_url=falco.webhook_url,
                falco_namespace=falco.namespace,
                falco_pod_labels=falco.audit_pod_labels,
                falco_port=falco.webhook_port,
            ),
            opts=opts,
        )
        return falco, forwarder

    recorded = run_program(build)
    falco, _ = recorded.result
    assert _flags(_container(recorded))["--falco-url"] == resolve(falco.webhook_url)
    assert _netpol(recorded, resolve(falco.namespace))["podSelector"] == {"matchLabels": falco.audit_pod_labels}


def test_outputs_tell_how_to_read_every_replicas_logs_and_metrics(given: Recorded) -> None:
    selector = "app.kubernetes.io/name=audit-forwarder,app.kubernetes.io/instance=audit-forwarder"
    assert resolve(given.result.logs_command) == (
        f"kubectl -n falco-forwarder logs -l {selector} -c forwarder --prefix -f"
    )
    metrics = resolve(given.result.metrics_command)
    assert metrics.startswith(f"for pod in $(kubectl -n falco-forwarder get pods -l {selector} -o name); do ")
    assert 'kubectl -n falco-forwarder port-forward "$pod" 9090:9090' in metrics
    assert "curl -s http://127.0.0.1:9090/metrics" in metrics


@pytest.mark.parametrize("fixture", ["given", "built", "source", "kinesis"])
def test_every_child_hangs_under_the_component(fixture: str, request: pytest.FixtureRequest) -> None:
    recorded: Recorded = request.getfixturevalue(fixture)
    component = recorded.one(COMPONENT)
    outside = {"pulumi:providers:kubernetes", "aws:cloudwatch/logGroup:LogGroup", COMPONENT}
    children: list[Registration] = [r for r in recorded.resources if r.type not in outside]
    assert len(children) >= 9
    for child in children:
        assert component in recorded.parent_chain(child), f"{child.type} {child.name} is not under the component"


def test_kubernetes_children_use_the_cluster_provider(given: Recorded) -> None:
    provider = given.one("pulumi:providers:kubernetes")
    kube_objects = [r for r in given.resources if r.type.startswith("kubernetes:")]
    assert len(kube_objects) >= 7
    for reg in kube_objects:
        assert reg.provider.startswith(provider.urn + "::"), f"{reg.type} {reg.name} uses {reg.provider!r}"
        if reg.type != "kubernetes:core/v1:Namespace":
            assert reg.inputs["metadata"]["namespace"] in ("falco-forwarder", "falco")


# --- argument validation ----------------------------------------------------------------------

BAD_ARGS: list[tuple[str, dict[str, Any]]] = [
    ("falco_pod_labels", {"falco_pod_labels": {}}),
    ("falco_pod_labels", {"falco_pod_labels": {"app": "bad value"}}),
    ("falco_port", {"falco_port": 0}),
    ("metrics_port", {"metrics_port": 70000}),
    ("build", {"build": "podman"}),
    ("node_architecture", {"node_architecture": "x86_64"}),
    ("namespace", {"namespace": "Falco_Forwarder"}),
    ("service_account_name", {"service_account_name": ""}),
    ("checkpoint_configmap_name", {"checkpoint_configmap_name": "Bad Name"}),
    ("checkpoint_configmap_name", {"checkpoint_configmap_name": "c" * 247}),  # no room for 0.3's "-hashes"
    # The 0.3 checkpoint beside the stack's own: one name for both would fail the update of a 0.3 lab.
    ("checkpoint_configmap_name", {"checkpoint_configmap_name": "audit-forwarder-state"}),
    ("checkpoint_configmap_name", {"checkpoint_configmap_name": "audit-forwarder-state-hashes-3"}),
    ("checkpoint_configmap_name", {"deployment_name": "fwd", "checkpoint_configmap_name": "fwd-state"}),
    ("initial_lookback_seconds", {"initial_lookback_seconds": -1}),
    ("initial_lookback_seconds", {"initial_lookback_seconds": 86_401}),  # more than the sources keep
    ("initial_lookback_seconds", {"initial_lookback_seconds": 60.5}),
    ("checkpoint_interval_seconds", {"checkpoint_interval_seconds": -1}),
    ("checkpoint_hashes_interval_seconds", {"checkpoint_hashes_interval_seconds": "60"}),
    ("run_as_user", {"run_as_user": 0}),
    ("region", {"region": "Oregon"}),
    ("falco_url", {"falco_url": "falco:9765"}),
    ("log_group_arn", {"log_group_arn": "arn:aws:s3:::bucket"}),
    ("oidc_provider_arn", {"oidc_provider_arn": "oidc.eks.us-west-2.amazonaws.com/id/X"}),
    ("image", {"image": "   "}),
    ("resources.memory_limit", {"resources": Resources("50m", "128Mi", "500m", "lots")}),
    ("source_dir", {"source_dir": "/nonexistent/forwarder"}),
    ("falco_namespace", {"falco_namespace": "Falco"}),
    ("replicas", {"replicas": 0}),
    ("replicas", {"replicas": True}),
    ("falco_connections", {"falco_connections": 0}),
    ("falco_connections", {"falco_connections": "4"}),
    ("kinesis_stream_arn", {"kinesis_stream_arn": "arn:aws:kinesis:us-west-2:123456789012:falco-audit"}),
    ("kinesis_stream_arn", {"kinesis_stream_arn": LOG_GROUP_ARN}),
    ("kinesis_kms_key_arn", {"kinesis_kms_key_arn": KEY_ARN}),  # a key without a stream
    ("kinesis_kms_key_arn", {"kinesis_stream_arn": STREAM_ARN, "kinesis_kms_key_arn": "alias/audit"}),
]


def _plain_args(**overrides: Any) -> AuditForwarderArgs:
    """Plain strings everywhere (a company stack may pass them so): validated when the args are built."""
    values: dict[str, Any] = {
        "log_group_name": LOG_GROUP,
        "log_group_arn": LOG_GROUP_ARN,
        "oidc_provider_arn": OIDC_PROVIDER_ARN,
        "oidc_issuer": OIDC_ISSUER,
        "region": REGION,
        "falco_url": FALCO_URL,
        "falco_namespace": "falco",
        "falco_pod_labels": FALCO_LABELS,
        **overrides,
    }
    return AuditForwarderArgs(**values)


def test_good_plain_arguments_are_accepted() -> None:
    def build() -> AuditForwarderArgs:
        return _plain_args(node_architecture="arm64", build="source")

    args = run_program(build).result
    assert args.node_architecture == "arm64" and args.falco_port == 9765 and args.metrics_port == 9090


def test_bad_arguments_name_the_setting() -> None:
    def build() -> list[tuple[str, ConfigError | None]]:
        results: list[tuple[str, ConfigError | None]] = []
        for setting, overrides in BAD_ARGS:
            try:
                _plain_args(**overrides)
            except ConfigError as error:
                results.append((setting, error))
            else:
                results.append((setting, None))
        return results

    for setting, error in run_program(build).result:
        assert error is not None, f"{setting}: bad value accepted"
        assert error.setting == setting
        assert str(error).startswith(f"{setting}: ")


def test_source_dir_without_the_package_is_rejected_when_building(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("boto3==1.43.11\n")

    def build() -> ConfigError | None:
        try:
            AuditForwarder("forwarder", _args(build="source", source_dir=str(tmp_path)), opts=_cluster_provider())
        except ConfigError as error:
            return error
        return None

    error = run_program(build).result
    assert error is not None and error.setting == "source_dir"
