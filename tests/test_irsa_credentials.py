"""IRSA as the pod does it, against moto: the real forwarder gets its credentials from a web identity
token file and the role ARN the AuditForwarder component puts on its ServiceAccount, then reads the
audit log group with them.

What moto checks and what it does not: moto answers sts:AssumeRoleWithWebIdentity for any token and does
not evaluate trust or permission policies (the component's documents are asserted as data in
test_audit_forwarder.py). This test proves the other half: with no static keys at all, boto3's default
chain in the real `python -m forwarder run` calls STS with the component's role ARN and the token file, and
every CloudWatch Logs call it then makes is signed with the assumed role's temporary key and is one the
role's policy allows.
"""

# ruff: noqa: F811 - pytest fixtures imported from support.moto_server are parameters here by design

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pytest
from pulumi_mocks import OIDC_ISSUER, OIDC_PROVIDER_ARN, REGION, run_program
from support.audit_events import make_event, new_stream_name
from support.aws_fault_proxy import AwsFaultProxy
from support.falco_receiver import FalcoReceiver
from support.forwarder_process import ForwarderProcess, forwarder_env
from support.moto_server import (  # noqa: F401 - pytest fixtures
    FAKE_ACCESS_KEY_ID,
    MotoServer,
    create_log_group,
    create_log_stream,
    moto,
    moto_server,
    now_ms,
    put_events,
)

from components.forwarding.audit_forwarder import AuditForwarder, AuditForwarderArgs

LOG_GROUP = "/aws/eks/falco-lab/cluster"
FALCO_LABELS = {"app.kubernetes.io/name": "falco", "app.kubernetes.io/instance": "falco-k8saudit"}
DELIVERY_TIMEOUT = 90.0  # bounded wait; a pass usually takes a few seconds
STS_OPERATION = "AssumeRoleWithWebIdentity"


@dataclass(frozen=True)
class PodSetup:
    """What the component hands the pod, read from its mocked registrations."""

    role_arn: str  # the ServiceAccount's eks.amazonaws.com/role-arn annotation
    trust_policy: str
    permission_policy: str
    flags: dict[str, str]
    aws_env: dict[str, str]  # the AWS_* variables of the forwarder container
    subject: str


@pytest.fixture(scope="module")
def pod_setup() -> PodSetup:
    def build() -> AuditForwarder:
        log_group = aws.cloudwatch.LogGroup("audit-log", name=LOG_GROUP, retention_in_days=7)
        args = AuditForwarderArgs(
            log_group_name=log_group.name,
            log_group_arn=log_group.arn,
            oidc_provider_arn=OIDC_PROVIDER_ARN,
            oidc_issuer=OIDC_ISSUER,
            region=REGION,
            falco_url=pulumi.Output.from_input("http://falco-k8saudit-k8saudit-webhook.falco.svc:9765/k8s-audit"),
            falco_namespace="falco",
            falco_pod_labels=FALCO_LABELS,
            image="registry.example/forwarder:test",
        )
        return AuditForwarder(
            "forwarder", args, opts=pulumi.ResourceOptions(provider=k8s.Provider("cluster", kubeconfig="{}"))
        )

    recorded = run_program(build)
    sa = recorded.one("kubernetes:core/v1:ServiceAccount").inputs["metadata"]
    (container,) = recorded.one("kubernetes:apps/v1:Deployment").inputs["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    return PodSetup(
        role_arn=sa["annotations"]["eks.amazonaws.com/role-arn"],
        trust_policy=recorded.one("aws:iam/role:Role").inputs["assumeRolePolicy"],
        permission_policy=recorded.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"],
        flags=dict(zip(args[0::2], args[1::2], strict=True)),
        aws_env={e["name"]: e["value"] for e in container["env"] if e["name"].startswith("AWS_")},
        subject=f"system:serviceaccount:{sa['namespace']}:{sa['name']}",
    )


def _b64url(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def write_projected_token(path: Path, subject: str) -> Path:
    """A token shaped like the one EKS projects into the pod (moto does not verify its signature)."""
    now = int(time.time())
    claims = {
        "iss": f"https://{OIDC_ISSUER}",
        "sub": subject,
        "aud": ["sts.amazonaws.com"],
        "iat": now,
        "exp": now + 86400,
    }
    path.write_text(f"{_b64url({'alg': 'RS256', 'kid': 'test'})}.{_b64url(claims)}.c2lnbmF0dXJl")
    return path


def _create_role_like_the_stack(moto: MotoServer, setup: PodSetup) -> dict[str, Any]:
    iam = moto.client("iam")
    provider = iam.create_open_id_connect_provider(
        Url=f"https://{OIDC_ISSUER}", ClientIDList=["sts.amazonaws.com"], ThumbprintList=["9" * 40]
    )
    role_name = setup.role_arn.split(":role/", 1)[1]
    role = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=setup.trust_policy)["Role"]
    iam.put_role_policy(RoleName=role_name, PolicyName="read-audit-log", PolicyDocument=setup.permission_policy)
    return {"provider_arn": provider["OpenIDConnectProviderArn"], "role_arn": role["Arn"]}


def _assumed_role_keys(role_arn: str) -> set[str]:
    """Access key ids moto issued for `role_arn` (the server runs in this process: its backends are at hand)."""
    from moto.sts.models import sts_backends

    keys: set[str] = set()
    for _account, partitions in sts_backends.items():
        for backend in partitions.values():
            keys.update(r.access_key_id for r in backend.assumed_roles if r.role_arn == role_arn)
    return keys


@pytest.fixture
def receiver() -> Iterator[FalcoReceiver]:
    with FalcoReceiver(keep_events=True) as r:
        yield r


def test_stack_iam_matches_what_aws_names(moto: MotoServer, pod_setup: PodSetup) -> None:
    """The ARNs the component writes are the ones the service itself reports for the same objects."""
    created = _create_role_like_the_stack(moto, pod_setup)
    assert created["role_arn"] == pod_setup.role_arn
    trust = json.loads(pod_setup.trust_policy)
    assert trust["Statement"][0]["Principal"]["Federated"] == created["provider_arn"]
    assert trust["Statement"][0]["Condition"]["StringEquals"][f"{OIDC_ISSUER}:sub"] == pod_setup.subject
    logs = moto.client("logs")
    create_log_group(logs, LOG_GROUP)
    (group,) = logs.describe_log_groups(logGroupNamePrefix=LOG_GROUP)["logGroups"]
    resources = json.loads(pod_setup.permission_policy)["Statement"][0]["Resource"]
    # DescribeLogGroups reports both forms: `arn` ends in ":*", `logGroupArn` does not. The policy names both.
    assert group["arn"] in resources and group["logGroupArn"] in resources


def test_forwarder_reads_with_web_identity_credentials(
    tmp_path: Path, moto: MotoServer, pod_setup: PodSetup, receiver: FalcoReceiver
) -> None:
    _create_role_like_the_stack(moto, pod_setup)
    admin_logs = moto.client("logs")
    stream = new_stream_name()
    create_log_group(admin_logs, pod_setup.flags["--log-group"])
    create_log_stream(admin_logs, pod_setup.flags["--log-group"], stream)
    base = now_ms() - 30_000
    events = [make_event(base + i, size=800) for i in range(5)]
    lines = [(base + i, line) for i, (_, line) in enumerate(events)]
    put_events(admin_logs, pod_setup.flags["--log-group"], stream, lines)
    token = write_projected_token(tmp_path / "token", pod_setup.subject)

    with AwsFaultProxy(moto.endpoint_url) as proxy:
        # As the EKS pod identity webhook does: role ARN + token file, no keys; plus the container's AWS_* env.
        env = forwarder_env(moto.env(static_keys=False, endpoint_url=proxy.endpoint_url))
        env.update(pod_setup.aws_env)
        env["AWS_ROLE_ARN"] = pod_setup.role_arn
        env["AWS_WEB_IDENTITY_TOKEN_FILE"] = str(token)
        for static in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
            assert static not in env
        args = [
            "run",
            "--log-group", pod_setup.flags["--log-group"],
            "--region", pod_setup.flags["--region"],
            "--falco-url", receiver.url,
            # The pod keeps its checkpoint in a ConfigMap; there is no Kubernetes API here.
            "--checkpoint", f"file:{tmp_path / 'checkpoint.json'}",
            "--start-at", "10m",
            "--poll-interval", "0.2",
        ]  # fmt: skip
        with ForwarderProcess(args, env, tmp_path / "forwarder.log") as fwd:
            ids = {audit_id for audit_id, _ in events}
            delivered = receiver.wait_for(lambda r: ids <= r.unique_ids or not fwd.alive(), DELIVERY_TIMEOUT)
            assert delivered and ids <= receiver.unique_ids, f"events not delivered; forwarder log:\n{fwd.tail()}"
            assert fwd.terminate(timeout=30) == 0, fwd.tail()
        calls = proxy.calls()

    sts_calls = [c for c in calls if c.operation == STS_OPERATION]
    assert sts_calls, f"no {STS_OPERATION} call: {[c.operation for c in calls]}"
    assert all(c.status == 200 and c.access_key_id is None for c in sts_calls)  # the token is the credential
    issued = _assumed_role_keys(pod_setup.role_arn)
    assert issued, "moto issued no credentials for the component's role ARN"

    logs_calls = [c for c in calls if c.operation != STS_OPERATION]
    assert any(c.operation == "FilterLogEvents" and c.status == 200 for c in logs_calls)
    for call in logs_calls:
        assert call.access_key_id in issued, f"{call.operation} signed with {call.access_key_id!r}, not the role's key"
        assert call.access_key_id != FAKE_ACCESS_KEY_ID
    # Every CloudWatch call the real forwarder made is one the role's policy allows.
    actions = json.loads(pod_setup.permission_policy)["Statement"][0]["Action"]
    allowed = {action.removeprefix("logs:") for action in actions}
    assert {c.operation for c in logs_calls} <= allowed
