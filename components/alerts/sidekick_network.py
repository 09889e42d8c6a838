"""NetworkPolicies around Falcosidekick, its UI and the UI's Redis, in Falco's namespace.

Falcosidekick accepts any alert POSTed to port 2801 without authentication and forwards it to every output: a pod
that reached it could page a team through SNS or flood a chat. So:
  - Falcosidekick (pods of the syscall release's subchart, component "core") takes traffic on 2801 only from Falco's
    pods of both releases; the UI (component "ui") on 2802 only from Falcosidekick; Redis ("ui-redis") on 6379 only
    from the UI. `kubectl port-forward` enters the pod's network namespace and needs no rule; the kubelet's probes
    come from the node's own address, which the VPC CNI network policy agent (and Calico, Cilium) allow.
  - Falcosidekick may open connections to DNS (kube-dns), its UI, and TCP 443 anywhere (and the generic webhook's
    port, when it is not 443): AWS's public endpoints, STS for IRSA and the chat webhooks all answer on 443.
    Kubernetes NetworkPolicy cannot allow by host name, so "anywhere on 443" is as narrow as it gets without an
    egress proxy or a CNI with DNS policies; it still keeps Falcosidekick away from every in-cluster service
    (the k8saudit webhook on 9765, the nodes' IMDS on 80) except over 443.

Labels and ports are the falcosidekick chart's (0.12.1: templates/_helpers.tpl selector labels plus
`app.kubernetes.io/component`, containerPort 2801 and 2802, Redis service port 6379).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi_kubernetes as k8s

from ..network_policy import anywhere_egress, dns_egress, labels_selector, tcp_port

SIDEKICK_CHART = "falcosidekick"
SIDEKICK_PORT = 2801
UI_PORT = 2802
REDIS_PORT = 6379
HTTPS_PORT = 443
FALCO_CHART = "falco"


def sidekick_pod_labels(release: str, component: str) -> dict[str, str]:
    """The chart's labels of one part ("core", "ui", "ui-redis") of the subchart in `release`."""
    return {
        "app.kubernetes.io/name": SIDEKICK_CHART,
        "app.kubernetes.io/instance": release,
        "app.kubernetes.io/component": component,
    }


@dataclass(frozen=True)
class Policy:
    """One NetworkPolicy: its name (suffix of the resource name too) and spec."""

    name: str
    spec: k8s.networking.v1.NetworkPolicySpecArgs


def sidekick_network_policies(
    release: str, falco_releases: Sequence[str], ui: bool, egress_ports: Sequence[int] = (HTTPS_PORT,)
) -> list[Policy]:
    """The policies for Falcosidekick installed by `release` and fed by `falco_releases`; the UI's and Redis's
    with `ui`. `egress_ports`: the TCP ports Falcosidekick may reach anywhere (443, and a webhook's own)."""
    core = sidekick_pod_labels(release, "core")
    ui_labels = sidekick_pod_labels(release, "ui")
    falco_pods = k8s.meta.v1.LabelSelectorArgs(
        match_expressions=[
            k8s.meta.v1.LabelSelectorRequirementArgs(key="app.kubernetes.io/name", operator="In", values=[FALCO_CHART]),
            k8s.meta.v1.LabelSelectorRequirementArgs(
                key="app.kubernetes.io/instance", operator="In", values=sorted(falco_releases)
            ),
        ]
    )
    egress = [dns_egress(), anywhere_egress(egress_ports)]
    if ui:
        egress.append(
            k8s.networking.v1.NetworkPolicyEgressRuleArgs(
                to=[k8s.networking.v1.NetworkPolicyPeerArgs(pod_selector=labels_selector(ui_labels))],
                ports=[tcp_port(UI_PORT)],
            )
        )
    policies = [
        Policy(
            f"{release}-{SIDEKICK_CHART}",
            k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=labels_selector(core),
                policy_types=["Ingress", "Egress"],
                ingress=[
                    k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                        # No namespace selector: Falco's pods in this namespace only.
                        from_=[k8s.networking.v1.NetworkPolicyPeerArgs(pod_selector=falco_pods)],
                        ports=[tcp_port(SIDEKICK_PORT)],
                    )
                ],
                egress=egress,
            ),
        )
    ]
    if ui:
        policies += [
            Policy(
                f"{release}-{SIDEKICK_CHART}-ui",
                k8s.networking.v1.NetworkPolicySpecArgs(
                    pod_selector=labels_selector(ui_labels),
                    policy_types=["Ingress"],
                    ingress=[
                        k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                            from_=[k8s.networking.v1.NetworkPolicyPeerArgs(pod_selector=labels_selector(core))],
                            ports=[tcp_port(UI_PORT)],
                        )
                    ],
                ),
            ),
            Policy(
                f"{release}-{SIDEKICK_CHART}-ui-redis",
                k8s.networking.v1.NetworkPolicySpecArgs(
                    pod_selector=labels_selector(sidekick_pod_labels(release, "ui-redis")),
                    policy_types=["Ingress"],
                    ingress=[
                        k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                            from_=[k8s.networking.v1.NetworkPolicyPeerArgs(pod_selector=labels_selector(ui_labels))],
                            ports=[tcp_port(REDIS_PORT)],
                        )
                    ],
                ),
            ),
        ]
    return policies
