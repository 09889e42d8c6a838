"""The Falco component under Pulumi mocks: both releases' chart, values and wiring asserted as data."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from pulumi_mocks import Recorded, is_secret, resolve, run_falco, run_program, unwrap_secret

from components.alerts.outputs import (
    AlertOutputs,
    ChatAlerts,
    LogGroupAlerts,
    SecurityLakeAlerts,
    SnsAlerts,
    WebhookAlerts,
)
from components.alerts.sidekick_config import output_config_values
from components.alerts.sidekick_upstream import VERSION as SIDEKICK_VERSION
from components.errors import ConfigError
from components.falco import (
    CHART_RELEASES,
    DEFAULT_CHART_REPOSITORY,
    DEFAULT_CHART_VERSION,
    OWNED_VALUES,
    PINNED_ARTIFACTS,
    Falco,
    FalcoNames,
    FalcoSettings,
    chart_fullname,
    chart_release,
    image_values,
    release_values,
)
from components.falco.helm_values import check_overrides, deep_merge
from components.falco.rules import DETECTION_FILE_NAME
from components.falco.upstream_changes import RULES_FILE_NAME, rules_files

RELEASE = "kubernetes:helm.sh/v3:Release"
ADMIN_ROLE = "arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_AdministratorAccess_0a1b2c"
ADMIN_SESSION = "arn:aws:sts::123456789012:assumed-role/Deployer/botocore-session-1700000000"
NAMES = FalcoNames("falco", "falco", "falco-k8saudit")


def _deploy(**overrides: Any) -> Recorded:
    return run_falco(admin_identities=(ADMIN_ROLE, ADMIN_SESSION), **overrides)


def _values(recorded: Recorded, name: str) -> dict[str, Any]:
    values, _ = unwrap_secret(recorded.one(RELEASE, name).inputs["values"])
    return values


def _walk(node: Any, path: str = ""):
    """Every (path, mapping) in a values tree."""
    if isinstance(node, dict):
        yield path, node
        for key, child in node.items():
            yield from _walk(child, f"{path}.{key}")
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from _walk(child, f"{path}[{index}]")


@pytest.fixture(scope="module")
def lab() -> Recorded:
    return _deploy()


def test_both_releases_pin_chart_version_repository_and_namespace(lab: Recorded) -> None:
    releases = {r.name: r for r in lab.of_type(RELEASE)}
    assert set(releases) == {"falco-syscall", "falco-audit"}
    for release in releases.values():
        assert release.inputs["chart"] == "falco"
        assert release.inputs["version"] == DEFAULT_CHART_VERSION == "9.1.0"
        assert release.inputs["repositoryOpts"] == {"repo": DEFAULT_CHART_REPOSITORY}
        assert release.inputs["namespace"] == "falco"
    assert releases["falco-syscall"].inputs["name"] == "falco"
    assert releases["falco-audit"].inputs["name"] == "falco-k8saudit"


def test_namespace_is_owned_and_allows_the_privileged_daemonset(lab: Recorded) -> None:
    ns = lab.one("kubernetes:core/v1:Namespace")
    assert ns.inputs["metadata"]["name"] == "falco"
    assert ns.inputs["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"


def test_syscall_release_is_a_modern_ebpf_daemonset_on_every_node(lab: Recorded) -> None:
    values = _values(lab, "falco-syscall")
    assert values["controller"]["kind"] == "daemonset"
    assert values["driver"] == {"enabled": True, "kind": "modern_ebpf"}
    assert values["tolerations"] == [{"operator": "Exists"}]
    assert values["falcoctl"]["config"]["artifact"]["install"]["refs"] == ["falco-rules:5.1.0"]
    assert values["falco"]["rules_files"][0] == "/etc/falco/falco_rules.yaml"
    assert values["resources"] == {
        "requests": {"cpu": "100m", "memory": "512Mi"},
        "limits": {"cpu": "1000m", "memory": "1024Mi"},
    }
    assert "services" not in values and "customRules" not in values


def test_audit_release_is_a_driverless_deployment_with_the_k8saudit_plugin(lab: Recorded) -> None:
    values = _values(lab, "falco-audit")
    assert values["controller"] == {"kind": "deployment", "deployment": {"replicas": 1}}  # the default load
    assert values["driver"] == {"enabled": False}
    assert values["collectors"] == {"enabled": False}
    falco = values["falco"]
    plugins = {p["name"]: p for p in falco["plugins"]}
    assert plugins["k8saudit"]["library_path"] == "libk8saudit.so"
    assert plugins["k8saudit"]["open_params"] == "http://:9765/k8s-audit"
    assert plugins["json"]["library_path"] == "libjson.so"
    assert falco["load_plugins"] == ["k8saudit", "json"]
    # Upstream's rules, the lab's (customRules), then the hostile source addresses' folder.
    assert falco["rules_files"] == [
        "/etc/falco/k8s_audit_rules.yaml", "/etc/falco/rules.d", "/etc/falco/hostile-sources.d",
    ]  # fmt: skip
    artifact = values["falcoctl"]["config"]["artifact"]
    assert artifact["install"]["refs"] == ["k8saudit-rules:0.16.1", "k8saudit:0.16.1"]


def test_the_webhook_service_is_headless_so_its_name_resolves_to_every_audit_pod(lab: Recorded) -> None:
    # The chart copies the entry, but name and selector, into the Service's spec and selects the release's pods.
    assert _values(lab, "falco-audit")["services"] == [
        {
            "name": "k8saudit-webhook-headless",
            "type": "ClusterIP",
            "clusterIP": "None",
            "ports": [{"name": "webhook", "port": 9765, "targetPort": 9765, "protocol": "TCP"}],
        }
    ]


@pytest.mark.parametrize(
    ("events_per_second", "replicas"),
    [(1, 1), (100, 1), (1000, 1), (1100, 1), (1101, 2), (2300, 3), (10_000, 10), (110_000, 100)],
)
def test_audit_replicas_follow_the_expected_load(events_per_second: int, replicas: int) -> None:
    # 1,100 events/s per replica: what Falco 0.44.1 evaluated under a 1-CPU quota, its request.
    assert FalcoSettings(audit_events_per_second=events_per_second).audit_replica_count == replicas
    values = release_values(FalcoSettings(audit_events_per_second=events_per_second), NAMES, {})[1]
    assert values["controller"]["deployment"]["replicas"] == replicas


def test_an_explicit_replica_count_wins_over_the_load() -> None:
    assert FalcoSettings(audit_events_per_second=100, audit_replicas=2).audit_replica_count == 2
    recorded = _deploy(audit_events_per_second=5000)
    assert _values(recorded, "falco-audit")["controller"]["deployment"]["replicas"] == 5
    assert recorded.result.audit_replicas == 5
    assert _values(recorded, "falco-syscall")["controller"] == {"kind": "daemonset"}  # the syscall release as is


def test_audit_replicas_prefer_different_nodes(lab: Recorded) -> None:
    anti_affinity = _values(lab, "falco-audit")["affinity"]["podAntiAffinity"]
    (term,) = anti_affinity["preferredDuringSchedulingIgnoredDuringExecution"]
    # Preferred, never required: a one-node cluster still runs every replica.
    assert term["podAffinityTerm"] == {
        "labelSelector": {"matchLabels": NAMES.audit_pod_labels},
        "topologyKey": "kubernetes.io/hostname",
    }
    assert NAMES.audit_pod_labels == {"app.kubernetes.io/name": "falco", "app.kubernetes.io/instance": "falco-k8saudit"}


def test_both_releases_report_every_matching_rule(lab: Recorded) -> None:
    # rule_matching "first" (the default) lets "Disallowed K8s User" hide every later audit rule.
    for name in ("falco-syscall", "falco-audit"):
        assert _values(lab, name)["falco"]["rule_matching"] == "all"


def test_k8saudit_plugin_runs_synchronously_with_the_forwarders_size_limits(lab: Recorded) -> None:
    from forwarder.config import DEFAULT_MAX_BATCH_BYTES, DEFAULT_MAX_EVENT_BYTES

    plugins = {p["name"]: p for p in _values(lab, "falco-audit")["falco"]["plugins"]}
    init_config = plugins["k8saudit"]["init_config"]
    # Keys of plugins/k8saudit/pkg/k8saudit/config.go; numbers arrive as floats over the wire.
    assert set(init_config) == {"useAsync", "maxEventSize", "webhookMaxBatchSize"}
    assert init_config["useAsync"] is False
    assert int(init_config["maxEventSize"]) == DEFAULT_MAX_EVENT_BYTES == 262144
    assert int(init_config["webhookMaxBatchSize"]) == DEFAULT_MAX_BATCH_BYTES == 12582912


def test_audit_falco_is_sized_for_a_thousand_events_per_second(lab: Recorded) -> None:
    # 1,300 events/s measured under a 1-CPU quota: a whole CPU requested covers ~1,000/s with headroom.
    resources = _values(lab, "falco-audit")["resources"]
    assert resources == {
        "requests": {"cpu": "1000m", "memory": "512Mi"},
        "limits": {"cpu": "1500m", "memory": "1024Mi"},
    }


def test_both_releases_serve_prometheus_metrics_and_only_the_audit_one_logs_snapshots(lab: Recorded) -> None:
    syscall, audit = _values(lab, "falco-syscall")["metrics"], _values(lab, "falco-audit")["metrics"]
    for metrics in (syscall, audit):
        assert metrics["enabled"] is True and metrics["rulesCountersEnabled"] is True
        assert metrics["service"] == {"create": True, "type": "ClusterIP"}
    # The evaluated-event count per source is only in the snapshot, not in Prometheus (falco#3584).
    assert audit["outputRule"] is True and audit["interval"] == "1m"
    assert syscall["outputRule"] is False


def test_falcoctl_installs_exact_artifacts_and_follows_nothing(lab: Recorded) -> None:
    for name in ("falco-syscall", "falco-audit"):
        falcoctl = _values(lab, name)["falcoctl"]
        assert falcoctl["artifact"]["install"]["enabled"] is True
        assert falcoctl["artifact"]["follow"]["enabled"] is False
        for ref in falcoctl["config"]["artifact"]["install"]["refs"]:
            assert ref.count(".") == 2, f"{name}: {ref} is not an exact version"


def test_every_pinned_artifact_is_within_the_floating_ref_its_chart_uses() -> None:
    for floating, exact in PINNED_ARTIFACTS.items():
        artifact, tag = floating.split(":")
        assert exact.startswith(f"{artifact}:{tag}."), (floating, exact)
    for release in CHART_RELEASES.values():
        assert set(release.syscall_refs) | set(release.audit_refs) <= set(PINNED_ARTIFACTS)


def test_artifacts_follow_the_chart_version() -> None:
    recorded = _deploy(chart_version="9.0.0")
    for name in ("falco-syscall", "falco-audit"):
        assert recorded.one(RELEASE, name).inputs["version"] == "9.0.0"
    artifact = _values(recorded, "falco-audit")["falcoctl"]["config"]["artifact"]
    expected = [PINNED_ARTIFACTS[ref] for ref in chart_release("9.0.0").audit_refs]
    assert artifact["install"]["refs"] == expected


def test_unknown_chart_version_is_refused_naming_the_setting_and_the_known_versions() -> None:
    with pytest.raises(ConfigError) as caught:
        chart_release("8.0.5", "chart_version")
    assert caught.value.setting == "chart_version"
    assert "'8.0.5'" in str(caught.value)
    assert "known: 9.1.0, 9.0.0" in str(caught.value)


def test_the_lab_refuses_an_unknown_chart_version_by_its_stack_setting() -> None:
    import pulumi

    from components.stack_config import read_lab_args

    def read() -> None:
        with pytest.raises(ConfigError) as caught:
            read_lab_args(pulumi.Config(), pulumi.Config("aws"), environ={})
        assert caught.value.setting == "falcoChartVersion"
        assert str(caught.value).startswith("falcoChartVersion: '9.2.0' is not a falco chart version the lab knows")
        assert "(known: 9.1.0, 9.0.0)" in str(caught.value)

    run_program(read, config={"aws:region": "us-west-2", "falco-eks-lab:falcoChartVersion": "9.2.0"})


def test_webhook_url_is_the_service_the_values_produce(lab: Recorded) -> None:
    falco: Falco = lab.result
    release = lab.one(RELEASE, "falco-audit")
    values = _values(lab, "falco-audit")
    service = values["services"][0]
    port = int(service["ports"][0]["port"])  # numbers arrive as floats over the wire
    path = "/" + values["falco"]["plugins"][0]["open_params"].split("/", 3)[3]
    fullname = chart_fullname(release.inputs["name"])
    expected = f"http://{fullname}-{service['name']}.{release.inputs['namespace']}.svc.cluster.local:{port}{path}"
    assert resolve(falco.webhook_url) == expected
    assert expected == "http://falco-k8saudit-k8saudit-webhook-headless.falco.svc.cluster.local:9765/k8s-audit"
    assert falco.webhook_port == port == 9765
    assert resolve(falco.namespace) == "falco"


def test_chart_fullname_follows_the_chart_helper() -> None:
    assert chart_fullname("falco-k8saudit") == "falco-k8saudit"
    assert chart_fullname("audit") == "audit-falco"
    assert chart_fullname("falco", "falcosidekick") == "falco-falcosidekick"
    assert len(chart_fullname("a" * 70)) == 63


def test_audit_pod_labels_are_the_chart_selector_labels_of_the_audit_release(lab: Recorded) -> None:
    falco: Falco = lab.result
    assert falco.audit_pod_labels == {"app.kubernetes.io/name": "falco", "app.kubernetes.io/instance": "falco-k8saudit"}
    syscall_instance = lab.one(RELEASE, "falco-syscall").inputs["name"]
    assert falco.audit_pod_labels["app.kubernetes.io/instance"] != syscall_instance


def test_audit_release_loads_the_lab_rules_for_the_admin_identities(lab: Recorded) -> None:
    values = _values(lab, "falco-audit")
    # A company's FalcoSettings: no admin-access alerts unless asked for.
    assert values["customRules"] == rules_files((ADMIN_ROLE, ADMIN_SESSION), (), admin_access_alerts=False)
    assert sorted(values["customRules"]) == [DETECTION_FILE_NAME, RULES_FILE_NAME]  # rules.d loads them by name
    identities = next(
        item["condition"] for item in yaml.safe_load(values["customRules"][DETECTION_FILE_NAME])
        if item.get("macro") == "eks_lab_admin_identities"
    )  # fmt: skip
    # The role's path is dropped (assumed-role ARNs carry no path) and any session matches.
    sso_role = "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_AdministratorAccess_0a1b2c/"
    assert f'startswith "{sso_role}"' in identities
    assert "botocore-session" not in identities


def test_sidekick_ui_is_installed_once_and_fed_by_both_releases(lab: Recorded) -> None:
    syscall, audit = _values(lab, "falco-syscall"), _values(lab, "falco-audit")
    sidekick = syscall["falcosidekick"]
    assert sidekick["enabled"] is True and sidekick["webui"]["enabled"] is True
    assert audit["falcosidekick"] == {"enabled": False}
    url = "http://falco-falcosidekick.falco.svc.cluster.local:2801"
    for values in (syscall, audit):
        assert values["falco"]["json_output"] is True
        assert values["falco"]["http_output"] == {"enabled": True, "url": url}
    assert sidekick["service"] == {"type": "ClusterIP", "port": 2801}
    assert sidekick["webui"]["redis"]["storageEnabled"] is False
    assert sidekick["webui"]["disableauth"] is False
    falco: Falco = lab.result
    assert resolve(falco.ui_command) == "kubectl -n falco port-forward service/falco-falcosidekick-ui 2802:2802"


def test_ui_login_is_a_kubernetes_secret_and_the_release_values_stay_readable(lab: Recorded) -> None:
    falco: Falco = lab.result
    password = lab.one("random:index/randomPassword:RandomPassword")
    assert password.inputs["length"] >= 24 and password.inputs["special"] is False
    assert is_secret(falco.ui_password)
    generated = resolve(falco.ui_password)
    assert generated == "mock-generated-password-0123456789"
    login = lab.one("kubernetes:core/v1:Secret")
    assert login.inputs["metadata"]["name"] == "falco-falcosidekick-ui-login"
    assert login.inputs["metadata"]["namespace"] == "falco"
    # The key the UI reads (falcosidekick chart templates/secrets-ui.yaml), marked secret.
    string_data, data_secret = unwrap_secret(login.inputs["stringData"])
    assert data_secret and string_data == {"FALCOSIDEKICK_UI_USER": f"admin:{generated}"}
    for name in ("falco-syscall", "falco-audit"):
        values, secret = unwrap_secret(lab.one(RELEASE, name).inputs["values"])
        assert not secret, f"{name}: values must stay readable in previews"
        assert generated not in json.dumps(values)
    webui = _values(lab, "falco-syscall")["falcosidekick"]["webui"]
    assert webui["existingSecret"] == "falco-falcosidekick-ui-login"
    # Empty: the chart's own UI Secret then holds no login, not even its admin:admin default.
    assert webui["user"] == ""
    syscall = lab.one(RELEASE, "falco-syscall")
    assert login.urn in syscall.dependencies


def test_no_load_balancer_and_no_persistence_anywhere(lab: Recorded) -> None:
    checked = 0
    for name in ("falco-syscall", "falco-audit"):
        for path, node in _walk(_values(lab, name)):
            assert node.get("type") != "LoadBalancer", f"{name}{path} asks for a LoadBalancer"
            assert node.get("type") != "NodePort", f"{name}{path} opens a NodePort"
            assert node.get("storageEnabled") is not True, f"{name}{path} enables storage"
            assert not (isinstance(node.get("persistence"), dict) and node["persistence"].get("enabled")), path
            assert node.get("enabled") is not True or not path.endswith("ingress"), f"{name}{path} enables an ingress"
            checked += 1
    assert checked > 50


def test_every_falco_pod_container_has_requests_and_limits(lab: Recorded) -> None:
    syscall, audit = _values(lab, "falco-syscall"), _values(lab, "falco-audit")
    sidekick = syscall["falcosidekick"]
    containers = {
        "syscall falco": syscall["resources"],
        "audit falco": audit["resources"],
        "syscall falcoctl install": syscall["falcoctl"]["artifact"]["install"]["resources"],
        "syscall falcoctl follow": syscall["falcoctl"]["artifact"]["follow"]["resources"],
        "audit falcoctl install": audit["falcoctl"]["artifact"]["install"]["resources"],
        "audit falcoctl follow": audit["falcoctl"]["artifact"]["follow"]["resources"],
        "sidekick": sidekick["resources"],
        "webui": sidekick["webui"]["resources"],
        "webui wait-redis": sidekick["webui"]["initContainer"]["resources"],
        "redis": sidekick["webui"]["redis"]["resources"],
    }
    for container, resources in containers.items():
        for kind in ("requests", "limits"):
            assert set(resources[kind]) == {"cpu", "memory"}, f"{container} lacks {kind}"


def test_sidekick_off_installs_no_sidekick_and_no_password() -> None:
    recorded = _deploy(sidekick_ui=False)
    falco: Falco = recorded.result
    assert recorded.of_type("random:index/randomPassword:RandomPassword") == []
    assert recorded.of_type("kubernetes:core/v1:Secret") == []
    assert falco.ui_password is None and falco.ui_command is None
    for name in ("falco-syscall", "falco-audit"):
        values = _values(recorded, name)
        assert values["falcosidekick"] == {"enabled": False}
        assert "http_output" not in values["falco"]
        assert values["falco"]["json_output"] is True
        _, secret = unwrap_secret(recorded.one(RELEASE, name).inputs["values"])
        assert not secret


def test_every_child_reaches_the_component_and_uses_the_cluster_provider(lab: Recorded) -> None:
    component = lab.one("falco-eks:index:Falco")
    provider = lab.one("pulumi:providers:kubernetes")
    children = [r for r in lab.resources if r.type not in ("falco-eks:index:Falco", "pulumi:providers:kubernetes")]
    assert len(children) == 9  # namespace, password, UI login Secret, hostile list, 2 releases, 3 NetworkPolicies
    for child in children:
        assert component in lab.parent_chain(child), child.name
        if child.type.startswith("kubernetes:"):
            assert child.provider.startswith(provider.urn + "::"), child.name


def test_custom_release_names_move_the_webhook_url_and_labels() -> None:
    recorded = _deploy(audit_release_name="audit", namespace="security")
    falco: Falco = recorded.result
    url = "http://audit-falco-k8saudit-webhook-headless.security.svc.cluster.local:9765/k8s-audit"
    assert resolve(falco.webhook_url) == url
    assert falco.audit_pod_labels["app.kubernetes.io/instance"] == "audit"


@pytest.mark.parametrize(
    ("overrides", "setting"),
    [
        ({"namespace": "Falco_NS"}, "namespace"),
        ({"chart_version": "latest"}, "chart_version"),
        ({"chart_version": "8.0.5"}, "chart_version"),
        ({"chart_repository": "http://falcosecurity.github.io/charts"}, "chart_repository"),
        ({"admin_identities": ("arn:aws:iam::123456789012:group/admins",)}, "admin_identities"),
        ({"admin_identities": ("system:masters",)}, "admin_identities"),
        ({"admin_identities": ('evil" or true',)}, "admin_identities"),
        ({"admin_identities": "kubernetes-admin"}, "admin_identities"),
        ({"audit_release_name": "falco"}, "audit_release_name"),
        ({"syscall_release_name": "Falco"}, "syscall_release_name"),
        ({"ui_username": "ad:min"}, "ui_username"),
        ({"release_timeout_seconds": 5}, "release_timeout_seconds"),
        ({"audit_events_per_second": 0}, "audit_events_per_second"),
        ({"audit_events_per_second": 110_001}, "audit_events_per_second"),
        ({"audit_events_per_second": 1000.5}, "audit_events_per_second"),
        ({"audit_replicas": 0}, "audit_replicas"),
        ({"audit_replicas": 101}, "audit_replicas"),
    ],
)
def test_bad_args_name_the_field(overrides: dict[str, Any], setting: str) -> None:
    def build() -> None:
        with pytest.raises(ConfigError) as caught:
            FalcoSettings(**overrides)
        assert caught.value.setting == setting
        assert str(caught.value).startswith(f"{setting}: ")

    run_program(build)


def test_only_the_syscall_falco_container_keeps_privilege(lab: Recorded) -> None:
    syscall, audit = _values(lab, "falco-syscall"), _values(lab, "falco-audit")
    # The chart makes the modern_ebpf container privileged unless containerSecurityContext is set; keep that.
    assert "containerSecurityContext" not in syscall
    unprivileged = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    sidekick = syscall["falcosidekick"]
    for context in (
        audit["containerSecurityContext"],
        syscall["falcoctl"]["artifact"]["install"]["securityContext"],
        syscall["falcoctl"]["artifact"]["follow"]["securityContext"],
        audit["falcoctl"]["artifact"]["install"]["securityContext"],
        audit["falcoctl"]["artifact"]["follow"]["securityContext"],
        sidekick["securityContext"],
        sidekick["webui"]["securityContext"],
        sidekick["webui"]["initContainer"]["securityContext"],
    ):
        assert context == unprivileged
    assert sidekick["podSecurityContext"]["runAsNonRoot"] is True
    assert audit["falco"]["plugins_hostinfo"] is False


def test_the_audit_falco_runs_as_falcoctls_non_root_user(lab: Recorded) -> None:
    """What the `restricted` Pod Security profile asks beyond the unprivileged containers: runAsNonRoot. The pod
    context covers falcoctl's init container and Falco alike; 65532 is falcoctl's own image user, so the files it
    installs into the shared emptyDirs are Falco's too."""
    audit, syscall = _values(lab, "falco-audit"), _values(lab, "falco-syscall")
    assert audit["podSecurityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "fsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    # No container overrides the user back to root, and the audit pod mounts nothing from the host.
    for context in (audit["containerSecurityContext"], audit["falcoctl"]["artifact"]["install"]["securityContext"]):
        assert "runAsUser" not in context and "runAsNonRoot" not in context
    assert audit["driver"] == {"enabled": False} and audit["collectors"] == {"enabled": False}
    # The syscall DaemonSet loads the eBPF driver: it stays as the chart makes it.
    assert "runAsNonRoot" not in syscall["podSecurityContext"]


# --- extra values, owned paths, mirrors ------------------------------------------------------------------


def _merged(**args: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    falco = FalcoSettings(**args)
    names = FalcoNames(falco.namespace, falco.syscall_release_name, falco.audit_release_name)
    config = output_config_values(falco.alert_outputs, ROLE_ARN, "us-west-2", "123456789012")
    return release_values(falco, names, rules_files(falco.admin_identities), config)


ROLE_ARN = "arn:aws:iam::123456789012:role/sidekick"
EVERY_OUTPUT = AlertOutputs(
    sns=SnsAlerts(topic="arn:aws:sns:us-west-2:123456789012:alerts"),
    cloud_watch_logs=LogGroupAlerts(log_group="/falco/alerts"),
    security_lake=SecurityLakeAlerts(location="s3://aws-security-data-lake-us-west-2-abc/ext/falco/"),
    slack=ChatAlerts(secret_name="falco-chat", secret_key="slack"),
    teams=ChatAlerts(secret_name="falco-chat", secret_key="teams"),
    webhook=WebhookAlerts(secret_name="falco-webhook", headers_secret_key="headers"),
)


def test_deep_merge_merges_mappings_and_replaces_everything_else() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}, "d": "x"}
    extra = {"a": {"c": [3], "e": {"f": None}}, "g": True}
    assert deep_merge(base, extra) == {"a": {"b": 1, "c": [3], "e": {"f": None}}, "d": "x", "g": True}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": "x"}  # neither input changes


def test_extra_values_are_merged_over_the_components_own_per_release() -> None:
    syscall, audit = _merged(
        syscall_values={"nodeSelector": {"kubernetes.io/os": "linux"}, "resources": {"limits": {"memory": "2Gi"}}},
        audit_values={"podAnnotations": {"team": "security"}, "falco": {"priority": "warning"}},
    )
    assert syscall["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert syscall["resources"] == {"requests": {"cpu": "100m", "memory": "512Mi"}, "limits": {"cpu": "1000m",
                                                                                             "memory": "2Gi"}}
    assert "podAnnotations" not in syscall and "nodeSelector" not in audit
    assert audit["podAnnotations"] == {"team": "security"}
    # Merged beside the component's own falco.* settings, which stay.
    assert audit["falco"]["priority"] == "warning"
    assert audit["falco"]["rule_matching"] == "all" and audit["falco"]["load_plugins"] == ["k8saudit", "json"]


def test_the_merged_values_reach_the_releases() -> None:
    recorded = _deploy(audit_values={"podPriorityClassName": "system-cluster-critical"})
    assert _values(recorded, "falco-audit")["podPriorityClassName"] == "system-cluster-critical"
    assert "podPriorityClassName" not in _values(recorded, "falco-syscall")


@pytest.mark.parametrize(
    ("extra", "path", "owned"),
    [
        ({"falco": {"rule_matching": "first"}}, "falco.rule_matching", "falco.rule_matching"),
        ({"driver": {"kind": "kmod"}}, "driver.kind", "driver.kind"),
        ({"metrics": {"interval": "5m"}}, "metrics.interval", "metrics"),  # below an owned path
        ({"falcoctl": {"config": {"artifact": {"install": {"refs": ["x:1"]}}}}},
         "falcoctl.config.artifact.install.refs", "falcoctl.config.artifact"),
        ({"falcosidekick": {"webui": {"user": "admin:admin"}}}, "falcosidekick.webui.user",
         "falcosidekick.webui.user"),
        ({"falcosidekick": {"webui": {"service": {"type": "LoadBalancer"}}}}, "falcosidekick.webui.service.type",
         "falcosidekick.webui.service"),
        ({"controller": "deployment"}, "controller", "controller.kind"),  # replaces the mapping above it
        ({"services": []}, "services", "services"),
        ({"containerSecurityContext": {"privileged": True}}, "containerSecurityContext.privileged",
         "containerSecurityContext"),
        ({"fullnameOverride": "x"}, "fullnameOverride", "fullnameOverride"),
    ],
)
@pytest.mark.parametrize("setting", ["syscall_values", "audit_values"])
def test_an_override_of_an_owned_path_is_refused_naming_it(
    extra: dict[str, Any], path: str, owned: str, setting: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        FalcoSettings(**{setting: extra})
    assert caught.value.setting == f"{setting}.{path}"
    assert f"{owned} is set by the component and cannot be overridden: {OWNED_VALUES[owned]}" in str(caught.value)


def test_owned_paths_not_touched_by_neighbours() -> None:
    # Siblings and look-alike prefixes are the caller's.
    check_overrides("v", {"falco": {"rules_file_extra": 1}, "driver": {"modernEbpf": {"bufSizePreset": 6}}},
                    OWNED_VALUES)
    check_overrides("v", {"falcosidekick": {"webui": {"replicaCount": 2}}, "metricsExtra": True}, OWNED_VALUES)


def test_extra_values_must_be_a_mapping_with_string_keys() -> None:
    with pytest.raises(ConfigError, match="^audit_values: must be a mapping"):
        FalcoSettings(audit_values=["x"])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="^syscall_values: Helm value keys are strings"):
        FalcoSettings(syscall_values={"a": {1: "x"}})


def test_every_owned_path_that_the_component_sets_is_in_its_values() -> None:
    """OWNED_VALUES names real keys: each one the component sets is there in one release or the other."""
    syscall, audit = _merged(alert_outputs=EVERY_OUTPUT, sidekick_role_arn=ROLE_ARN)

    def has(values: dict[str, Any], path: str) -> bool:
        node: Any = values
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return True

    unset = {"nameOverride", "fullnameOverride", "falcosidekick.nameOverride", "falcosidekick.fullnameOverride",
             "falco.webserver", "falcosidekick.webui.ingress.enabled"}
    # Owned to stay empty: URLs and the env Secret come from the caller's Secret (extraEnv), never from values.
    unset |= {f"falcosidekick.config.{path}" for path in (
        "slack.webhookurl", "teams.webhookurl", "webhook.address", "webhook.customHeaders", "existingSecret")}
    for path in OWNED_VALUES:
        if path not in unset:
            assert has(syscall, path) or has(audit, path), path


def test_an_image_mirror_sets_every_images_registry_and_nothing_else() -> None:
    syscall, audit = _merged(image_registry="123456789012.dkr.ecr.eu-west-1.amazonaws.com/docker-hub")
    mirror = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/docker-hub"
    sidekick = syscall["falcosidekick"]
    for image in (syscall["image"], syscall["falcoctl"]["image"], audit["image"], audit["falcoctl"]["image"],
                  sidekick["webui"]["image"], sidekick["webui"]["initContainer"]["image"],
                  sidekick["webui"]["redis"]["image"]):
        assert image == {"registry": mirror}  # repositories and tags stay the chart's
    # Falcosidekick's tag is the component's (see test_alert_outputs.py), its repository the chart's.
    assert sidekick["image"] == {"registry": mirror, "tag": SIDEKICK_VERSION}
    assert audit["falcosidekick"] == {"enabled": False}
    # Merged into the component's own subchart values, not over them.
    assert sidekick["webui"]["existingSecret"] == "falco-falcosidekick-ui-login"
    assert image_values(None, True) == {}


def test_an_extra_value_can_still_point_one_image_elsewhere() -> None:
    syscall, _ = _merged(
        image_registry="mirror.example.com/hub",
        syscall_values={"image": {"registry": "falco.example.com", "repository": "sec/falco"}},
    )
    assert syscall["image"] == {"registry": "falco.example.com", "repository": "sec/falco"}
    assert syscall["falcoctl"]["image"] == {"registry": "mirror.example.com/hub"}


def test_the_chart_comes_from_an_oci_mirror_without_repository_options() -> None:
    recorded = _deploy(chart_repository="oci://123456789012.dkr.ecr.eu-west-1.amazonaws.com/charts/")
    for release in recorded.of_type(RELEASE):
        assert release.inputs["chart"] == "oci://123456789012.dkr.ecr.eu-west-1.amazonaws.com/charts/falco"
        assert release.inputs["version"] == DEFAULT_CHART_VERSION
        assert "repositoryOpts" not in release.inputs


def test_the_chart_comes_from_an_https_mirror_by_name() -> None:
    recorded = _deploy(chart_repository="https://nexus.example.com/repository/helm")
    for release in recorded.of_type(RELEASE):
        assert release.inputs["chart"] == "falco"
        assert release.inputs["repositoryOpts"] == {"repo": "https://nexus.example.com/repository/helm"}


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("chart_repository", "oci://"),
        ("chart_repository", "oci://Registry.example.com/charts"),
        ("chart_repository", "ftp://charts.example.com"),
        ("image_registry", "https://registry.example.com"),
        ("image_registry", "registry.example.com/"),
        ("image_registry", "Registry.example.com"),
        ("image_registry", ""),
    ],
)
def test_mirrors_are_checked(setting: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        FalcoSettings(**{setting: value})
    assert caught.value.setting == setting
