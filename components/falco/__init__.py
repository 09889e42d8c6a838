"""Falco on the lab cluster: syscall detection on every node and an audit instance for the k8saudit webhook.

Two releases of the pinned `falco` chart (falcosecurity/charts), as the chart README recommends
for plugins that receive events: a DaemonSet with the modern eBPF driver for syscalls, and a
Deployment with the driver off that serves the k8saudit webhook on a headless Service. The chart
README's "one active replica" is about plugins that must not see an event twice; the audit rules
judge each event alone, so the audit Deployment runs as many replicas as the configured load needs
(AUDIT_EVENTS_PER_REPLICA), and the forwarder spreads its batches over the pod addresses the
headless Service resolves to. Falcosidekick, installed once (as a subchart of the syscall release) and fed by both
releases, when its web UI or any alert output (components/alerts/outputs.py) is on; the UI is reached with
`kubectl port-forward`, never a LoadBalancer. NetworkPolicies let only Falco's pods reach Falcosidekick, only
Falcosidekick reach its UI and only the UI reach Redis; Falcosidekick itself may reach DNS, its UI and HTTPS
(AWS endpoints, chat webhooks) and nothing else (components/alerts/sidekick_network.py).
Both releases alert on every matching rule, serve Prometheus metrics, and install exact rules
and plugin versions for the chart version (CHART_RELEASES, PINNED_ARTIFACTS).

Every chart value set here was checked against the chart sources (charts/falco 9.0.0 and 9.1.0 and
their falcosidekick 0.12.x dependency): `values.yaml`, `values-k8saudit.yaml`,
`templates/_helpers.tpl` (fullname, selector labels, sidekick URL, metrics), `templates/services.yaml`,
`templates/pod-template.tpl`, and falcosidekick's `templates/secrets-ui.yaml` and `deployment-ui.yaml`.

The audit release loads the upstream k8saudit rules, the lab's (`customRules`: its own rules and its changes to
upstream's, components/falco/upstream_changes.py) and, last, the hostile source addresses from a ConfigMap of their
own, mounted as a folder. A new list changes that ConfigMap only, not the release: with the Kubernetes provider's
defaults Pulumi replaces it (deletes, then creates it under the same name; in place with `enableConfigMapMutable`),
the kubelet writes the new content into each audit pod's folder at its next sync of the volume (about a minute, plus
its ConfigMap cache: up to about two; a not-yet-recreated ConfigMap leaves the old content in place), swapping a symlink
in that folder; Falco (`watch_config_files`) sees the folder change through inotify, checks the new rules in a dry
run and restarts its engine in the same process (its pod stays up). During that restart the k8saudit webhook
closes and reopens: the forwarder's requests meet a refused connection and are retried, and request bodies the
webhook had already acknowledged but not yet parsed are lost. A list that does not load is not taken: Falco keeps
the rules it runs and writes "Falco internal: hot restart failure".

Callers add Helm values per release (`syscall_values`, `audit_values`), deep-merged over the component's;
the paths in OWNED_VALUES stay the component's. The chart and the images can come from a mirror.
The Kubernetes children use the provider the caller passes in the resource options (inherited through
``parent=self``).

Beside this module: fields.py (the fields a ``k8s_audit`` rule may use), k8saudit_upstream.py (what the pinned
upstream rules define), upstream_changes.py (the lab's changes to them), rules/ (the lab's own rules), helm_values.py
(a caller's values merged) and mirror.py (a company's mirror).
"""

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from ..alerts.destinations import look_up_place
from ..alerts.outputs import CREATE, AlertOutputs, AwsPlace, check_places
from ..alerts.sidekick_config import output_config_values
from ..alerts.sidekick_network import HTTPS_PORT, SIDEKICK_PORT, UI_PORT, sidekick_network_policies
from ..alerts.sidekick_upstream import VERSION as SIDEKICK_VERSION
from ..args import check_whole_number, from_inputs, schema_args
from ..cluster import check_role_arn
from ..errors import ConfigError
from ..names import is_dns_label
from ..renamed import renamed
from . import k8saudit_upstream
from .helm_values import check_overrides, deep_merge
from .mirror import check_chart_source, check_registry, is_oci
from .rules import hostile_sources_file, source_match
from .upstream_changes import admin_matchers, rules_files

CHART = "falco"
DEFAULT_CHART_VERSION = "9.1.0"
"""Newest chart in falcosecurity/charts when this was written (Falco 0.44.1, falcosidekick chart 0.12.x)."""
DEFAULT_CHART_REPOSITORY = "https://falcosecurity.github.io/charts"

WEBHOOK_PORT = 9765
WEBHOOK_PATH = "/k8s-audit"
WEBHOOK_SERVICE_ENTRY = "k8saudit-webhook-headless"
"""Name of the chart `services[]` entry; the chart names the Service `<fullname>-<entry>`. Not the earlier
ClusterIP entry's name ("k8saudit-webhook"): a Service's clusterIP cannot change, so an upgrade replaces the old
Service with this one instead of failing on it."""

AUDIT_EVENTS_PER_REPLICA = 1100
"""Audit events per second one audit replica evaluates, for sizing: a real Falco 0.44.1 with the lab's rules and
settings (useAsync off) evaluated 1,380-1,702 real workshop audit events/s under a 1-CPU quota, 2,666/s under 1.5 CPU
and 2,103-2,439/s on 2 CPUs (shared/corpus/real-falco/README.md, docs/data/recordings.yaml); this is a sizing choice
below the 1-CPU range. Each replica requests 1 CPU (AUDIT_FALCO_RESOURCES); its 1.5-CPU limit is headroom to catch
up after a backlog, not planned load."""
DEFAULT_AUDIT_EVENTS_PER_SECOND = 1000
"""The design load when nothing else is said: about what one account can poll (FilterLogEvents' quota)."""
MAX_AUDIT_REPLICAS = 100

METRICS_PORT = 8765
"""Falco's webserver: /healthz and, with metrics on, Prometheus /metrics."""
METRICS_SNAPSHOT_INTERVAL = "1m"
"""How often the audit instance logs its "Falco internal: metrics snapshot" (evaluated events per source)."""
HOSTILE_SOURCES_DIR = "/etc/falco/hostile-sources.d"
"""Where the audit pods mount the ConfigMap holding the hostile source addresses (as a rules file)."""
HOSTILE_SOURCES_FILE = "hostile-sources.yaml"
AUDIT_RULES_FILES = ("/etc/falco/k8s_audit_rules.yaml", "/etc/falco/rules.d", HOSTILE_SOURCES_DIR)
"""Upstream's rules, the lab's (customRules: its own rules, then its changes to upstream's), the hostile list."""
RULE_MATCHING = "all"
"""Both releases: every rule that matches an event alerts, so a generic rule never hides a specific one."""

# The k8saudit plugin's init_config (plugins/k8saudit/pkg/k8saudit/config.go at the pinned version).
K8SAUDIT_MAX_EVENT_BYTES = 262144
"""maxEventSize, the plugin's default; larger events are dropped. The forwarder skips them first."""
K8SAUDIT_MAX_BATCH_BYTES = 12 * 1024 * 1024
"""webhookMaxBatchSize, the plugin's default; larger requests get 400. The forwarder's batches stay below."""


@dataclass(frozen=True)
class ChartRelease:
    """What one version of the `falco` chart runs, as its Chart.yaml, values.yaml and values-k8saudit.yaml say."""

    falco_version: str
    """Falco's version (the chart's appVersion)."""
    syscall_refs: tuple[str, ...]
    """falcoctl refs of the chart's syscall rules (values.yaml), as floating tags."""
    audit_refs: tuple[str, ...]
    """falcoctl refs of the chart's k8saudit example (values-k8saudit.yaml), as floating tags."""


# Chart versions whose values the lab's settings were checked against (falcosecurity/charts tags
# falco-<version>). All of them fetch the same floating artifacts; the lab pins them below.
_SYSCALL_REFS = ("falco-rules:5",)
_AUDIT_REFS = ("k8saudit-rules:0.16", "k8saudit:0.16")
CHART_RELEASES: dict[str, ChartRelease] = {
    "9.1.0": ChartRelease("0.44.1", _SYSCALL_REFS, _AUDIT_REFS),
    "9.0.0": ChartRelease("0.44.0", _SYSCALL_REFS, _AUDIT_REFS),
}

PINNED_ARTIFACTS: dict[str, str] = {
    # falco_rules.yaml 5.1.0 (falcosecurity/rules tag falco-rules-5.1.0): the terminal-shell example's
    # rule was checked there; it needs Falco engine 0.57 (Falco 0.42) or newer.
    "falco-rules:5": "falco-rules:5.1.0",
    # The upstream file the lab's overrides were written against (k8saudit_upstream).
    "k8saudit-rules:0.16": f"k8saudit-rules:{k8saudit_upstream.VERSION}",
    "k8saudit:0.16": f"k8saudit:{k8saudit_upstream.VERSION}",
}
"""Each floating ref a chart uses -> the exact artifact the lab installs instead.

falcoctl follows a floating tag at run time: a newer rules file with a renamed macro would make the
audit Falco fail to load the lab's overrides, and a new rules file restarts Falco's event loop
(its counters start again). The lab therefore installs exact versions at pod start and follows
nothing; a newer rules version comes with a new chart version and a reviewed override."""


def chart_release(version: str, setting: str = "chart_version") -> ChartRelease:
    """The known chart release `version`, or a ConfigError naming `setting` and listing what is known."""
    release = CHART_RELEASES.get(version) if isinstance(version, str) else None
    if release is None:
        known = ", ".join(sorted(CHART_RELEASES, key=lambda v: tuple(int(p) for p in v.split(".")), reverse=True))
        raise ConfigError(
            setting,
            f"{version!r} is not a falco chart version the lab knows (known: {known}); the lab pins its "
            "falcoctl artifacts and rule overrides per chart version, so pick one of those",
        )
    return release


def pinned_refs(refs: tuple[str, ...]) -> tuple[str, ...]:
    """The exact artifacts for a chart's floating refs."""
    return tuple(PINNED_ARTIFACTS[ref] for ref in refs)


Resources = dict[str, dict[str, str]]


def _resources(cpu_request: str, memory_request: str, cpu_limit: str, memory_limit: str) -> Resources:
    return {
        "requests": {"cpu": cpu_request, "memory": memory_request},
        "limits": {"cpu": cpu_limit, "memory": memory_limit},
    }


# Sized for the lab's small nodes (2 x t3.large: 2 vCPU, 8 GiB); every container gets requests and limits.
SYSCALL_FALCO_RESOURCES = _resources("100m", "512Mi", "1000m", "1024Mi")
# One audit replica is sized for AUDIT_EVENTS_PER_REPLICA, what Falco 0.44.1 with useAsync off evaluated
# under a 1-CPU quota: request a whole CPU so the scheduler reserves it, allow 1.5 to catch up after a backlog.
AUDIT_FALCO_RESOURCES = _resources("1000m", "512Mi", "1500m", "1024Mi")
FALCOCTL_RESOURCES = _resources("10m", "32Mi", "200m", "256Mi")
SIDEKICK_RESOURCES = _resources("10m", "32Mi", "200m", "128Mi")
UI_RESOURCES = _resources("10m", "32Mi", "200m", "256Mi")
UI_WAIT_REDIS_RESOURCES = _resources("10m", "16Mi", "100m", "64Mi")
REDIS_RESOURCES = _resources("50m", "128Mi", "500m", "512Mi")

UI_USER_SECRET_KEY = "FALCOSIDEKICK_UI_USER"  # noqa: S105 (a key name)
"""The key the Falcosidekick UI reads its "<login>:<password>" from (chart templates/secrets-ui.yaml)."""

_LOGIN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

# Hardening for containers that need no privilege: falcoctl, Falcosidekick and its UI.
_UNPRIVILEGED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
}
_RUNTIME_DEFAULT_SECCOMP = {"seccompProfile": {"type": "RuntimeDefault"}}
AUDIT_POD_USER = 65532
"""The audit pods' user, group and fsGroup: falcoctl's image user (cgr.dev/chainguard/static's "nonroot", home
/home/nonroot, where falcoctl keeps its index cache), so falcoctl runs as it always did, and Falco reads what
falcoctl wrote into the shared emptyDirs as the same user. Falco with plugins only opens no driver: it reads its
config, rules and plugins and listens on 9765 and 8765, which needs no root."""


def chart_fullname(release_name: str, chart_name: str = CHART) -> str:
    """The chart's `<chart>.fullname` helper: the release name if it contains the chart name, else both."""
    full = release_name if chart_name in release_name else f"{release_name}-{chart_name}"
    return full[:63].rstrip("-")


_WHY_NAMES = "the webhook Service's name, the UI's and Falcosidekick's URLs and the pod labels the forwarder \
and its NetworkPolicies use derive from the chart's names"
_WHY_SECURITY = "hardened security contexts (no privilege escalation, all capabilities dropped, RuntimeDefault seccomp)"
_WHY_ARTIFACTS = "falcoctl installs the exact rules and plugin versions the lab's rules were checked against, \
and follows nothing"
_WHY_UI = "the UI's login comes from a generated password, never the chart's admin:admin"
_WHY_CLUSTER_IP = "ClusterIP only (reached with kubectl port-forward): nothing exposed, nothing that blocks destroy"
_WHY_OUTPUTS = "alert_outputs wires Falcosidekick's outputs and IRSA role; chat and webhook URLs come from a \
Kubernetes Secret, never from Helm values"
_WHY_SIDEKICK_IMAGE = f"Falcosidekick {SIDEKICK_VERSION}: the 2.32.0 the chart ships sends its AWS calls unsigned \
(no credentials provider), so no AWS output would work"

OWNED_VALUES: dict[str, str] = {
    "nameOverride": _WHY_NAMES,
    "fullnameOverride": _WHY_NAMES,
    "controller.kind": "the syscall release is a DaemonSet on every node, the audit release a Deployment",
    "controller.deployment.replicas": "the audit replicas follow audit_events_per_second (or audit_replicas)",
    "driver.enabled": "modern eBPF in the syscall release, no driver in the audit release",
    "driver.kind": "modern eBPF in the syscall release, no driver in the audit release",
    "collectors.enabled": "container metadata for syscalls; the audit instance mounts nothing from the host",
    "tolerations": "the syscall DaemonSet runs on every node, tainted or not, so none escapes detection",
    "services": "the headless webhook Service whose pod addresses the forwarder spreads its batches over",
    "customRules": "the lab's audit rules (admin identities, overrides of the upstream k8saudit rules)",
    "falco.rules_files": "the rules each release loads, in order",
    "falco.rule_matching": "'all': a generic rule never hides a specific one",
    "falco.plugins": "the k8saudit webhook (port, path, event and batch limits the forwarder keeps to)",
    "falco.load_plugins": "the k8saudit webhook (port, path, event and batch limits the forwarder keeps to)",
    "falco.plugins_hostinfo": "the audit instance needs no host information",
    "falco.json_output": "alerts are JSON lines (the workshop and Falcosidekick read them)",
    "falco.json_include_output_property": "alerts are JSON lines (the workshop and Falcosidekick read them)",
    "falco.http_output": "both releases send alerts to the one Falcosidekick",
    "falco.webserver": "health checks and Prometheus metrics on port 8765",
    "falco.watch_config_files": "a new hostile source list reaches Falco by a reload of its rules, without a restart",
    "metrics": "Prometheus metrics and the audit instance's event-count snapshots",
    "falcoctl.artifact.install.enabled": _WHY_ARTIFACTS,
    "falcoctl.artifact.follow.enabled": _WHY_ARTIFACTS,
    "falcoctl.config.artifact": _WHY_ARTIFACTS,
    "podSecurityContext": _WHY_SECURITY,
    "containerSecurityContext": _WHY_SECURITY,
    "falcoctl.artifact.install.securityContext": _WHY_SECURITY,
    "falcoctl.artifact.follow.securityContext": _WHY_SECURITY,
    "falcosidekick.enabled": "Falcosidekick is installed once, with the syscall release, when sidekick_ui or an alert \
output is on",
    "falcosidekick.nameOverride": _WHY_NAMES,
    "falcosidekick.fullnameOverride": _WHY_NAMES,
    "falcosidekick.fullfqdn": "both releases reach Falcosidekick by its full DNS name",
    "falcosidekick.service": _WHY_CLUSTER_IP,
    "falcosidekick.podSecurityContext": _WHY_SECURITY,
    "falcosidekick.securityContext": _WHY_SECURITY,
    "falcosidekick.webui.enabled": "the UI is installed when sidekick_ui is on",
    "falcosidekick.image.tag": _WHY_SIDEKICK_IMAGE,
    "falcosidekick.config.aws": _WHY_OUTPUTS,
    "falcosidekick.config.slack.webhookurl": _WHY_OUTPUTS,
    "falcosidekick.config.slack.minimumpriority": _WHY_OUTPUTS,
    "falcosidekick.config.teams.webhookurl": _WHY_OUTPUTS,
    "falcosidekick.config.teams.minimumpriority": _WHY_OUTPUTS,
    "falcosidekick.config.webhook.address": _WHY_OUTPUTS,
    "falcosidekick.config.webhook.customHeaders": _WHY_OUTPUTS,
    "falcosidekick.config.webhook.minimumpriority": _WHY_OUTPUTS,
    "falcosidekick.config.extraEnv": _WHY_OUTPUTS,
    "falcosidekick.config.existingSecret": _WHY_OUTPUTS,
    "falcosidekick.webui.user": _WHY_UI,
    "falcosidekick.webui.existingSecret": _WHY_UI,
    "falcosidekick.webui.disableauth": _WHY_UI,
    "falcosidekick.webui.service": _WHY_CLUSTER_IP,
    "falcosidekick.webui.ingress": _WHY_CLUSTER_IP,
    "falcosidekick.webui.podSecurityContext": _WHY_SECURITY,
    "falcosidekick.webui.securityContext": _WHY_SECURITY,
    "falcosidekick.webui.initContainer.securityContext": _WHY_SECURITY,
    "falcosidekick.webui.redis.storageEnabled": "no PersistentVolumeClaim: nothing outlives pulumi destroy",
}
"""Helm value paths the component sets itself, with why; `syscall_values` and `audit_values` may not touch them
(set them, set anything below them, or replace a mapping above them)."""


@schema_args
@dataclass(frozen=True)
class FalcoSettings:
    """Settings of Falco (the `falco` of FalcoEksLab and FalcoDetection): chart, image mirror, Falcosidekick UI,
    admin identities, extra Helm values, sizing. Falco's Kubernetes objects go through the Kubernetes provider of
    the resource options (`provider` or `providers`), or a parent's."""

    namespace: str = "falco"
    """Namespace the component creates and owns; both releases and Falcosidekick live there."""

    chart_version: str = DEFAULT_CHART_VERSION
    """Pinned version of the `falco` chart: one the component knows (it pins the falcoctl artifacts and its rule
    overrides per chart version); another is refused with the list of known ones."""

    chart_repository: str = DEFAULT_CHART_REPOSITORY
    """Where the chart comes from: a Helm repository (https://) or an OCI registry path (oci://host/path, holding
    the chart as oci://host/path/falco), e.g. a company mirror. Charts with the same version must be identical."""

    image_registry: str | None = None
    """Registry mirror for every image (Falco, falcoctl, Falcosidekick, its UI and Redis), e.g.
    123456789012.dkr.ecr.eu-west-1.amazonaws.com/docker-hub; images keep their Docker Hub path under it
    (falcosecurity/falco). Unset pulls from Docker Hub."""

    sidekick_ui: bool = True
    """Install Falcosidekick's web UI (ClusterIP, reached by port-forward). Falcosidekick itself, fed by both
    releases, is installed when the UI or any alert output is on."""

    alert_outputs: AlertOutputs = field(default_factory=AlertOutputs)
    """Where Falcosidekick sends alerts besides its UI: SNS, CloudWatch Logs, Security Lake, Slack, Teams, a
    webhook; all off by default. Falco itself creates nothing in AWS: give existing destinations and
    `sidekickRoleArn`, or use FalcoDetection, which can create the topic and log group and makes the role."""

    sidekick_role_arn: pulumi.Input[str] | None = None
    """IAM role Falcosidekick runs as (IRSA), required with an AWS output: it must trust the ServiceAccount
    <namespace>/<syscallReleaseName>-falcosidekick (e.g. falco/falco-falcosidekick) and allow the calls of the
    enabled outputs. FalcoDetection makes it; unset otherwise."""

    admin_identities: Sequence[str] = ()
    """Identities for "Full K8s Administrative Access": IAM role/assumed-role/user ARNs or Kubernetes user
    names. A role matches every session of it."""

    admin_access_alerts: bool = False
    """Raise "Full K8s Administrative Access" for every request by one of `adminIdentities`: the workshop shows it
    (the lab turns it on), a company cluster would drown in it. Off, `adminIdentities` are only spared by
    "Disallowed K8s User" and trusted to change kube-system/aws-auth and to port-forward."""

    allowed_identities: Sequence[str] = ()
    """Identities "Disallowed K8s User" does not report besides `adminIdentities`, e.g. CI/CD roles and developers:
    IAM role, assumed-role or user ARNs or Kubernetes user names; a role matches every session of it."""

    hostile_source_addresses: Sequence[str] = ()
    """IPv4 and IPv6 addresses and CIDRs (Tor exits, a threat feed) whose API requests raise "Request From Hostile
    Source Address". They sit in a ConfigMap of their own that Falco reloads within about two minutes of a
    change, without a new Helm release or a pod restart."""

    syscall_values: Mapping[str, Any] = field(default_factory=dict)
    """Extra Helm values for the syscall release, deep-merged over the component's (e.g. nodeSelector,
    resources, imagePullSecrets). Paths the component sets itself are refused, each with its reason."""

    audit_values: Mapping[str, Any] = field(default_factory=dict)
    """Extra Helm values for the audit release, deep-merged over the component's. Paths the component sets itself
    are refused, each with its reason."""

    syscall_release_name: str = "falco"
    """Helm release of the syscall DaemonSet (also carries Falcosidekick when it is installed)."""

    audit_release_name: str = "falco-k8saudit"
    """Helm release of the audit Deployment serving the k8saudit webhook."""

    audit_events_per_second: int = DEFAULT_AUDIT_EVENTS_PER_SECOND
    """Audit events per second the cluster writes at its busiest: the audit release runs ceil(this / 1,100)
    replicas of one CPU each. 1,100 is a sizing choice, below what one replica evaluated under a 1-CPU quota on a
    real Falco, which leaves headroom to catch up after a backlog. Above about 1,000, set `auditSource` to
    `kinesis`: polling cannot follow more."""

    audit_replicas: int | None = None
    """Replicas of the audit release, e.g. 2 for a spare at low load; unset: sized from `auditEventsPerSecond`."""

    ui_username: str = "admin"
    """Login of the Falcosidekick UI; its password is generated by the stack."""

    release_timeout_seconds: int = 600
    """How long Helm waits for each release's pods to become ready."""

    def __post_init__(self) -> None:
        if not is_dns_label(self.namespace):
            raise ConfigError("namespace", f"{self.namespace!r} is not a valid Kubernetes namespace name")
        chart_release(self.chart_version, "chart_version")  # raises ConfigError naming the field
        check_chart_source("chart_repository", self.chart_repository)
        if self.image_registry is not None:
            check_registry("image_registry", self.image_registry)
        if not isinstance(self.sidekick_ui, bool):
            raise ConfigError("sidekick_ui", f"must be true or false, got {self.sidekick_ui!r}")
        if not isinstance(self.alert_outputs, AlertOutputs):
            raise ConfigError("alert_outputs", "must be an AlertOutputs")
        if isinstance(self.sidekick_role_arn, str):
            check_role_arn("sidekick_role_arn", self.sidekick_role_arn)
        if isinstance(self.admin_identities, str) or not isinstance(self.admin_identities, Sequence):
            raise ConfigError("admin_identities", "must be a list of identities, not one string")
        object.__setattr__(self, "admin_identities", tuple(self.admin_identities))
        admin_matchers(self.admin_identities, "admin_identities")  # raises ConfigError naming the field
        if not isinstance(self.admin_access_alerts, bool):
            raise ConfigError("admin_access_alerts", f"must be true or false, got {self.admin_access_alerts!r}")
        for setting in ("allowed_identities", "hostile_source_addresses"):
            value = getattr(self, setting)
            if isinstance(value, str) or not isinstance(value, Sequence):
                raise ConfigError(setting, "must be a list, not one string")
            object.__setattr__(self, setting, tuple(value))
        admin_matchers(self.allowed_identities, "allowed_identities")
        source_match(self.hostile_source_addresses, "hostile_source_addresses")
        for setting in ("syscall_values", "audit_values"):
            check_overrides(setting, getattr(self, setting), OWNED_VALUES)
        for setting in ("syscall_release_name", "audit_release_name"):
            value = getattr(self, setting)
            # Helm release names: DNS labels of at most 53 characters.
            if not is_dns_label(value, most=53):
                raise ConfigError(setting, f"{value!r} is not a valid Helm release name (DNS label, at most 53 chars)")
        if self.syscall_release_name == self.audit_release_name:
            raise ConfigError("audit_release_name", "must differ from syscall_release_name")
        if not isinstance(self.ui_username, str) or not _LOGIN.match(self.ui_username):
            raise ConfigError("ui_username", f"{self.ui_username!r} must be 1-64 letters, digits, '.', '_' or '-'")
        most = AUDIT_EVENTS_PER_REPLICA * MAX_AUDIT_REPLICAS
        check_whole_number("audit_events_per_second", self.audit_events_per_second, 1, most)
        if self.audit_replicas is not None:
            check_whole_number(
                "audit_replicas", self.audit_replicas, 1, MAX_AUDIT_REPLICAS, none_means="sizing by load"
            )
        timeout = self.release_timeout_seconds
        if isinstance(timeout, bool) or not isinstance(timeout, int) or not 60 <= timeout <= 3600:
            raise ConfigError("release_timeout_seconds", "must be between 60 and 3600")

    @property
    def sidekick(self) -> bool:
        """Whether Falcosidekick is installed: for its UI, or for an alert output."""
        return self.sidekick_ui or self.alert_outputs.enabled

    @property
    def names(self) -> "FalcoNames":
        """The Kubernetes names the chart will produce for these settings."""
        return FalcoNames(self.namespace, self.syscall_release_name, self.audit_release_name)

    @property
    def audit_replica_count(self) -> int:
        """Replicas of the audit release: audit_replicas, else enough for audit_events_per_second."""
        if self.audit_replicas is not None:
            return self.audit_replicas
        return -(-self.audit_events_per_second // AUDIT_EVENTS_PER_REPLICA)  # ceil

    @property
    def chart(self) -> str:
        """The Release's `chart`: the chart's name in a Helm repository, its full reference in an OCI registry."""
        return f"{self.chart_repository.rstrip('/')}/{CHART}" if is_oci(self.chart_repository) else CHART

    @property
    def repository_opts(self) -> k8s.helm.v3.RepositoryOptsArgs | None:
        """The Release's `repository_opts`: the Helm repository; none for OCI (the chart reference says it all)."""
        return None if is_oci(self.chart_repository) else k8s.helm.v3.RepositoryOptsArgs(repo=self.chart_repository)


@dataclass(frozen=True)
class FalcoNames:
    """Kubernetes names the chart will produce, computed the way its helpers compute them."""

    namespace: str
    syscall_release: str
    audit_release: str

    @property
    def audit_fullname(self) -> str:
        return chart_fullname(self.audit_release)

    @property
    def webhook_service(self) -> str:
        # templates/services.yaml: name: {{ include "falco.fullname" $dot }}-{{ $service.name }}
        return f"{self.audit_fullname}-{WEBHOOK_SERVICE_ENTRY}"

    @property
    def webhook_url(self) -> str:
        return f"http://{self.webhook_service}.{self.namespace}.svc.cluster.local:{WEBHOOK_PORT}{WEBHOOK_PATH}"

    @property
    def audit_pod_labels(self) -> dict[str, str]:
        # _helpers.tpl falco.selectorLabels: name (chart name, no nameOverride) and instance (release name).
        return {"app.kubernetes.io/name": CHART, "app.kubernetes.io/instance": self.audit_release}

    @property
    def hostile_sources_configmap(self) -> str:
        return f"{self.audit_fullname}-hostile-sources"

    @property
    def sidekick_fullname(self) -> str:
        # The subchart's fullname helper, applied to the release that carries it.
        return chart_fullname(self.syscall_release, "falcosidekick")

    @property
    def sidekick_url(self) -> str:
        return f"http://{self.sidekick_fullname}.{self.namespace}.svc.cluster.local:{SIDEKICK_PORT}"

    @property
    def ui_service(self) -> str:
        return f"{self.sidekick_fullname}-ui"

    @property
    def ui_command(self) -> str:
        return f"kubectl -n {self.namespace} port-forward service/{self.ui_service} {UI_PORT}:{UI_PORT}"

    @property
    def ui_login_secret(self) -> str:
        # Not "<sidekick>-ui": the chart creates that Secret itself.
        return f"{self.sidekick_fullname}-ui-login"


def _falcoctl_values(chart_refs: tuple[str, ...]) -> dict[str, Any]:
    """Install the exact artifacts at pod start and follow nothing (see PINNED_ARTIFACTS)."""
    refs = list(pinned_refs(chart_refs))
    container = {"resources": FALCOCTL_RESOURCES, "securityContext": _UNPRIVILEGED_CONTAINER}
    return {
        "artifact": {
            "install": {"enabled": True, **container},
            "follow": {"enabled": False, **container},
        },
        "config": {"artifact": {"install": {"refs": refs}, "follow": {"refs": refs}}},
    }


def _metrics_values(snapshots: bool) -> dict[str, Any]:
    """The chart's `metrics` block: Falco's Prometheus /metrics on the webserver (port 8765), ClusterIP only.

    Falco 0.44's Prometheus output has no per-source event counter for plugin sources (falcosecurity/
    falco#3584): the count of evaluated audit events is only in the metrics snapshot, which
    `snapshots` writes to Falco's output (its log, and Falcosidekick) every METRICS_SNAPSHOT_INTERVAL.
    """
    values: dict[str, Any] = {
        "enabled": True,
        "outputRule": snapshots,
        "rulesCountersEnabled": True,
        "service": {"create": True, "type": "ClusterIP"},
    }
    if snapshots:
        values["interval"] = METRICS_SNAPSHOT_INTERVAL
    return values


def _falco_config(names: FalcoNames, sidekick: bool, rules_files: list[str]) -> dict[str, Any]:
    """`falco.*` settings shared by both releases: rule matching, JSON alert lines, HTTP to Falcosidekick."""
    values: dict[str, Any] = {
        "rules_files": rules_files,
        "rule_matching": RULE_MATCHING,
        "json_output": True,
        "json_include_output_property": True,
    }
    if sidekick:
        # The chart only wires the release that enables the subchart; both point at the one Service.
        values["http_output"] = {"enabled": True, "url": names.sidekick_url}
    return values


def k8saudit_init_config() -> dict[str, Any]:
    """The k8saudit plugin's init_config (keys of plugins/k8saudit/pkg/k8saudit/config.go)."""
    return {
        # The plugin's async extraction (default on) busy-waits between Falco and the Go side: on
        # 2 CPUs a real Falco 0.44.1 then evaluated 1.4-2.6 audit events/s, with it off 2,103-2,439/s.
        # The audit pod runs under a CPU limit on small nodes, where that spin would starve it.
        "useAsync": False,
        # The plugin's own defaults, stated so they stay equal to the forwarder's --max-event-bytes
        # and --max-batch-bytes: the forwarder skips what Falco would drop after answering 200.
        "maxEventSize": K8SAUDIT_MAX_EVENT_BYTES,
        "webhookMaxBatchSize": K8SAUDIT_MAX_BATCH_BYTES,
    }


def sidekick_values(
    names: FalcoNames, ui: bool = True, config: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The `falcosidekick` subchart values: one replica each, ClusterIP only, Redis without a PVC; the UI only with
    `ui`, the alert outputs' `config` (components/alerts/sidekick_config.py) when given.

    The UI's login comes from the Secret `names.ui_login_secret` (webui.existingSecret); `user` is
    empty so the chart's own UI Secret carries no login at all (its default is admin:admin).
    """
    pod_security = {"runAsNonRoot": True, "runAsUser": 1234, "fsGroup": 1234, **_RUNTIME_DEFAULT_SECCOMP}
    values: dict[str, Any] = {
        "enabled": True,
        "fullfqdn": True,
        "replicaCount": 1,
        "image": {"tag": SIDEKICK_VERSION},
        "podSecurityContext": pod_security,
        "securityContext": _UNPRIVILEGED_CONTAINER,
        "resources": SIDEKICK_RESOURCES,
        "service": {"type": "ClusterIP", "port": SIDEKICK_PORT},
        "webui": {"enabled": False},
    }
    if config:
        values["config"] = dict(config)
    if not ui:
        return values
    values["webui"] = {
        "enabled": True,
        "replicaCount": 1,
        "user": "",
        "existingSecret": names.ui_login_secret,
        "disableauth": False,
        "podSecurityContext": pod_security,
        "securityContext": _UNPRIVILEGED_CONTAINER,
        "resources": UI_RESOURCES,
        "initContainer": {"resources": UI_WAIT_REDIS_RESOURCES, "securityContext": _UNPRIVILEGED_CONTAINER},
        "service": {"type": "ClusterIP", "port": UI_PORT, "targetPort": UI_PORT},
        "ingress": {"enabled": False},
        "redis": {
            "enabled": True,
            # No PVC: nothing (no EBS volume) outlives `pulumi destroy`; alerts are lab-lived.
            "storageEnabled": False,
            "service": {"type": "ClusterIP"},
            "resources": REDIS_RESOURCES,
        },
    }
    return values


def syscall_values(names: FalcoNames, release: ChartRelease, sidekick: Mapping[str, Any] | None) -> dict[str, Any]:
    """Values of the syscall release: modern eBPF DaemonSet on every node, default syscall rules, and the
    `sidekick` subchart values (sidekick_values) when Falcosidekick is installed."""
    return {
        "controller": {"kind": "daemonset"},
        "driver": {"enabled": True, "kind": "modern_ebpf"},
        "collectors": {"enabled": True},
        # Tolerate every taint so no node escapes syscall detection.
        "tolerations": [{"operator": "Exists"}],
        "podSecurityContext": _RUNTIME_DEFAULT_SECCOMP,
        "resources": SYSCALL_FALCO_RESOURCES,
        "falcoctl": _falcoctl_values(release.syscall_refs),
        "metrics": _metrics_values(snapshots=False),
        "falco": _falco_config(
            names,
            sidekick is not None,
            ["/etc/falco/falco_rules.yaml", "/etc/falco/falco_rules.local.yaml", "/etc/falco/rules.d"],
        ),
        "falcosidekick": dict(sidekick) if sidekick is not None else {"enabled": False},
    }


def audit_values(
    names: FalcoNames, release: ChartRelease, custom_rules: Mapping[str, str], sidekick: bool, replicas: int = 1
) -> dict[str, Any]:
    """Values of the audit release: `replicas` without driver or collectors, k8saudit + json plugins, a headless
    webhook Service."""
    return {
        "controller": {"kind": "deployment", "deployment": {"replicas": replicas}},
        # Replicas on different nodes where there are several, so one node's loss leaves the others evaluating;
        # preferred only, so a one-node cluster still runs them all.
        "affinity": {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "podAffinityTerm": {
                            "labelSelector": {"matchLabels": names.audit_pod_labels},
                            "topologyKey": "kubernetes.io/hostname",
                        },
                    }
                ]
            }
        },
        "driver": {"enabled": False},
        "collectors": {"enabled": False},
        # Not root (the Falco image's user) and no capability: enough for the `restricted` Pod Security profile.
        "podSecurityContext": {
            "runAsNonRoot": True,
            "runAsUser": AUDIT_POD_USER,
            "runAsGroup": AUDIT_POD_USER,
            "fsGroup": AUDIT_POD_USER,
            **_RUNTIME_DEFAULT_SECCOMP,
        },
        "containerSecurityContext": _UNPRIVILEGED_CONTAINER,
        "resources": AUDIT_FALCO_RESOURCES,
        "falcoctl": _falcoctl_values(release.audit_refs),
        "metrics": _metrics_values(snapshots=True),
        # Headless: the Service's DNS name resolves to every ready audit pod's address, so the forwarder's
        # connections reach all replicas. A ClusterIP would hand each keep-alive connection to one pod for its life.
        # The chart copies every key of the entry but `name` and `selector` into the Service's spec
        # (templates/services.yaml, charts 9.0.0 and 9.1.0) and selects the release's pods (falco.selectorLabels).
        "services": [
            {
                "name": WEBHOOK_SERVICE_ENTRY,
                "type": "ClusterIP",
                "clusterIP": "None",
                "ports": [{"name": "webhook", "port": WEBHOOK_PORT, "targetPort": WEBHOOK_PORT, "protocol": "TCP"}],
            }
        ],
        "customRules": dict(custom_rules),
        "falco": {
            **_falco_config(names, sidekick, list(AUDIT_RULES_FILES)),
            # Falco watches the folders of its rules files (inotify) and reloads when one changes: the hostile
            # list's ConfigMap folder changes when the kubelet swaps in a new version of it.
            "watch_config_files": True,
            "plugins": [
                {
                    "name": "k8saudit",
                    "library_path": "libk8saudit.so",
                    "init_config": k8saudit_init_config(),
                    "open_params": f"http://:{WEBHOOK_PORT}{WEBHOOK_PATH}",
                },
                {"name": "json", "library_path": "libjson.so", "init_config": ""},
            ],
            "load_plugins": ["k8saudit", "json"],
            # k8saudit needs no host information; without it the chart mounts no host /proc.
            "plugins_hostinfo": False,
        },
        "falcosidekick": {"enabled": False},
    }


def image_values(registry: str | None, sidekick: bool, ui: bool = True) -> dict[str, Any]:
    """Every image's registry set to the mirror (the repositories keep their Docker Hub paths), or nothing.

    The keys are the chart's (falco 9.x values.yaml `image`, `falcoctl.image`; falcosidekick 0.12.x
    `image`, `webui.image`, `webui.initContainer.image`, `webui.redis.image`). With the modern eBPF driver
    the chart runs no driver-loader image."""
    if registry is None:
        return {}
    at = {"registry": registry}
    values: dict[str, Any] = {"image": at, "falcoctl": {"image": at}}
    if sidekick:
        values["falcosidekick"] = {"image": at}
        if ui:
            values["falcosidekick"]["webui"] = {"image": at, "initContainer": {"image": at}, "redis": {"image": at}}
    return values


def with_hostile_sources_mount(values: dict[str, Any], names: FalcoNames) -> dict[str, Any]:
    """`values` with the hostile source addresses' ConfigMap mounted as a folder of the audit pods (not a subPath,
    which the kubelet never updates), read-only, next to any mounts the caller's audit_values add."""
    mounts = dict(values.get("mounts") or {})
    volume = {"name": "hostile-sources", "configMap": {"name": names.hostile_sources_configmap}}
    mount = {"name": "hostile-sources", "mountPath": HOSTILE_SOURCES_DIR, "readOnly": True}
    mounts["volumes"] = [*(mounts.get("volumes") or []), volume]
    mounts["volumeMounts"] = [*(mounts.get("volumeMounts") or []), mount]
    return {**values, "mounts": mounts}


def release_values(
    args: FalcoSettings,
    names: FalcoNames,
    rules: Mapping[str, str],
    sidekick_config: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(syscall, audit) values: the component's, the image mirror's, then the caller's extra values on top; the
    audit pods also mount the hostile source addresses (beside any mounts the caller adds). `sidekick_config` is
    Falcosidekick's `config` for the alert outputs (components/alerts/sidekick_config.py)."""
    release = chart_release(args.chart_version)
    sidekick = sidekick_values(names, args.sidekick_ui, sidekick_config) if args.sidekick else None
    mirror = image_values(args.image_registry, args.sidekick, args.sidekick_ui)
    syscall = deep_merge(deep_merge(syscall_values(names, release, sidekick), mirror), args.syscall_values)
    audit = deep_merge(
        deep_merge(
            audit_values(names, release, rules, args.sidekick, args.audit_replica_count),
            image_values(args.image_registry, False),
        ),
        args.audit_values,
    )
    return syscall, with_hostile_sources_mount(audit, names)


def alert_config(args: FalcoSettings, opts: pulumi.InvokeOptions) -> dict[str, Any]:
    """Falcosidekick's `config` for `args.alert_outputs`, after checking them: Falco creates no destination and no
    role, and AWS destinations must be in the AWS provider's account and Region (asked with plain invokes)."""
    outputs = args.alert_outputs
    place: AwsPlace | None = None
    if outputs.uses_aws:
        if outputs.creates:
            raise ConfigError(
                "alert_outputs",
                f"Falco creates nothing in AWS: name an existing topic and log group instead of {CREATE!r}, or use "
                "FalcoDetection, which creates them",
            )
        if args.sidekick_role_arn is None:
            raise ConfigError(
                "sidekick_role_arn",
                "is required with an AWS alert output: the IAM role Falcosidekick runs as (FalcoDetection makes one)",
            )
        place = look_up_place(opts)
        check_places(outputs, place)
    return output_config_values(
        outputs,
        args.sidekick_role_arn,
        place.region if place is not None else None,
        place.account_id if place is not None else None,
    )


def _release_args(
    args: FalcoSettings, release_name: str, namespace: pulumi.Input[str], values: pulumi.Input[Mapping[str, Any]]
) -> k8s.helm.v3.ReleaseArgs:
    """The two releases differ only in their name and values: same chart, source, namespace and timeout."""
    return k8s.helm.v3.ReleaseArgs(
        name=release_name,
        chart=args.chart,
        version=args.chart_version,
        repository_opts=args.repository_opts,
        namespace=namespace,
        values=values,
        timeout=args.release_timeout_seconds,
        # A failed install leaves nothing behind that would block the next `pulumi up` under the same name.
        cleanup_on_fail=True,
    )


class Falco(pulumi.ComponentResource):
    """Falco's syscall and audit instances (and Falcosidekick, for its UI or alert outputs) in one namespace."""

    namespace: pulumi.Output[str]
    """Namespace holding both releases."""
    webhook_url: pulumi.Output[str]
    """In-cluster URL of the k8saudit webhook: http://<service>.<namespace>.svc.cluster.local:9765/k8s-audit."""
    webhook_port: int
    """Port of the webhook Service (and of the audit pods)."""
    audit_pod_labels: dict[str, str]
    """Labels that select only the audit instance's pods, as the chart sets them."""
    audit_replicas: int
    """Replicas of the audit instance (the forwarder opens connections to all of them)."""
    ui_password: pulumi.Output[str] | None
    """Generated password of the Falcosidekick UI (secret); unset when `sidekickUi` is off."""
    ui_username: str | None
    """Login of the Falcosidekick UI; unset when `sidekickUi` is off."""
    ui_command: pulumi.Output[str] | None
    """kubectl port-forward command that opens the UI on http://localhost:2802; unset when `sidekickUi` is off."""

    def __init__(self, name: str, args: FalcoSettings, opts: pulumi.ResourceOptions | None = None) -> None:
        args = from_inputs(FalcoSettings, args)
        super().__init__("falco-eks:index:Falco", name, None, opts)
        names = args.names
        # Checked before the first child: a refusal leaves nothing behind.
        sidekick_config = alert_config(args, pulumi.InvokeOptions(parent=self)) if args.sidekick else None
        rules = rules_files(args.admin_identities, args.allowed_identities, args.admin_access_alerts)
        syscall_release_values, audit_release_values = release_values(args, names, rules, sidekick_config)
        k8s_opts = pulumi.ResourceOptions(parent=self)

        ns = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=args.namespace,
                labels={
                    # The syscall DaemonSet is privileged and mounts host paths: nothing less fits.
                    "pod-security.kubernetes.io/enforce": "privileged",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                    "app.kubernetes.io/part-of": "falco-eks-lab",
                },
            ),
            opts=k8s_opts,
        )
        namespace: pulumi.Output[str] = ns.metadata.apply(lambda m: (m.name if m else None) or args.namespace)

        self.ui_password = None
        self.ui_username = None
        self.ui_command = None
        syscall_depends_on: list[pulumi.Resource] = []
        if args.sidekick_ui:
            password = random.RandomPassword(
                f"{name}-ui-password",
                length=32,
                special=False,  # the UI reads "<login>:<password>"; keep the separator unambiguous
                min_lower=1,
                min_upper=1,
                min_numeric=1,
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.ui_password = pulumi.Output.secret(password.result)
            self.ui_username = args.ui_username
            # The login lives in a Secret, so the release's values stay readable in every preview.
            login = k8s.core.v1.Secret(
                f"{name}-ui-login",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=names.ui_login_secret,
                    namespace=namespace,
                    labels={"app.kubernetes.io/part-of": "falco-eks-lab"},
                ),
                type="Opaque",
                string_data={
                    UI_USER_SECRET_KEY: pulumi.Output.secret(
                        pulumi.Output.concat(args.ui_username, ":", password.result)  # type: ignore[arg-type]
                    )
                },
                opts=k8s_opts,
            )
            syscall_depends_on.append(login)
            self.ui_command = namespace.apply(
                lambda n: FalcoNames(n, names.syscall_release, names.audit_release).ui_command
            )

        syscall = k8s.helm.v3.Release(
            f"{name}-syscall",
            _release_args(args, args.syscall_release_name, namespace, syscall_release_values),
            # The UI pod reads its login from the Secret at start.
            opts=pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(depends_on=syscall_depends_on)),
        )
        # Its own ConfigMap, outside the release's values: a new list changes this object only, and the audit pods'
        # Falco reloads it (watch_config_files) once the kubelet has swapped the new version into their folder.
        self.hostile_sources = k8s.core.v1.ConfigMap(
            f"{name}-hostile-sources",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=names.hostile_sources_configmap,
                namespace=namespace,
                labels={"app.kubernetes.io/part-of": "falco-eks-lab"},
            ),
            data={
                HOSTILE_SOURCES_FILE: hostile_sources_file(
                    source_match(args.hostile_source_addresses, "hostile_source_addresses")
                )
            },
            opts=k8s_opts,
        )
        audit = k8s.helm.v3.Release(
            f"{name}-audit",
            _release_args(args, args.audit_release_name, namespace, audit_release_values),
            # The pods mount the ConfigMap (not optional: a pod waits for it rather than start without the list).
            opts=pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(depends_on=[self.hostile_sources])),
        )

        if args.sidekick:
            webhook = args.alert_outputs.webhook
            for policy in sidekick_network_policies(
                args.syscall_release_name,
                (args.syscall_release_name, args.audit_release_name),
                ui=args.sidekick_ui,
                egress_ports=(HTTPS_PORT, webhook.port) if webhook is not None else (HTTPS_PORT,),
            ):
                k8s.networking.v1.NetworkPolicy(
                    f"{name}-{policy.name}",
                    metadata=k8s.meta.v1.ObjectMetaArgs(
                        name=policy.name, namespace=namespace, labels={"app.kubernetes.io/part-of": "falco-eks-lab"}
                    ),
                    spec=policy.spec,
                    opts=k8s_opts,
                )

        self.releases = [syscall, audit]
        """Both Helm releases; depend on them before sending events."""
        self.namespace = namespace
        self.webhook_port = WEBHOOK_PORT
        self.audit_pod_labels = names.audit_pod_labels
        self.audit_replicas = args.audit_replica_count
        # Derived from the namespace output so consumers also wait for the namespace to exist.
        self.webhook_url = namespace.apply(
            lambda n: FalcoNames(n, names.syscall_release, names.audit_release).webhook_url
        )

        outputs: dict[str, Any] = {
            "namespace": self.namespace,
            "webhook_url": self.webhook_url,
            "webhook_port": self.webhook_port,
            "audit_pod_labels": self.audit_pod_labels,
            "audit_replicas": self.audit_replicas,
        }
        if self.ui_password is not None:
            outputs.update(ui_password=self.ui_password, ui_command=self.ui_command, ui_username=self.ui_username)
        self.register_outputs(outputs)


def __getattr__(name: str) -> Any:
    # Old names of renamed classes (components/renamed.py).
    return renamed(__name__, name)
