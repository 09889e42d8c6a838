"""Pieces of NetworkPolicy specs that the forwarder's and Falcosidekick's policies share."""

from collections.abc import Iterable, Mapping

import pulumi
import pulumi_kubernetes as k8s


def labels_selector(labels: Mapping[str, str]) -> k8s.meta.v1.LabelSelectorArgs:
    return k8s.meta.v1.LabelSelectorArgs(match_labels=dict(labels))


def namespace_selector(namespace: pulumi.Input[str]) -> k8s.meta.v1.LabelSelectorArgs:
    # kubernetes.io/metadata.name is set by the API server on every namespace (Kubernetes >= 1.22).
    return k8s.meta.v1.LabelSelectorArgs(match_labels={"kubernetes.io/metadata.name": namespace})


def tcp_port(port: int) -> k8s.networking.v1.NetworkPolicyPortArgs:
    return k8s.networking.v1.NetworkPolicyPortArgs(protocol="TCP", port=port)


def dns_egress() -> k8s.networking.v1.NetworkPolicyEgressRuleArgs:
    """Egress to the cluster's DNS (kube-dns pods in kube-system), UDP and TCP 53."""
    return k8s.networking.v1.NetworkPolicyEgressRuleArgs(
        to=[
            k8s.networking.v1.NetworkPolicyPeerArgs(
                namespace_selector=namespace_selector("kube-system"),
                pod_selector=labels_selector({"k8s-app": "kube-dns"}),
            )
        ],
        ports=[k8s.networking.v1.NetworkPolicyPortArgs(protocol="UDP", port=53), tcp_port(53)],
    )


def anywhere_egress(ports: Iterable[int]) -> k8s.networking.v1.NetworkPolicyEgressRuleArgs:
    """Egress to any IPv4 or IPv6 address on these TCP ports (NetworkPolicy cannot allow by host name)."""
    return k8s.networking.v1.NetworkPolicyEgressRuleArgs(
        to=[
            k8s.networking.v1.NetworkPolicyPeerArgs(ip_block=k8s.networking.v1.IPBlockArgs(cidr="0.0.0.0/0")),
            k8s.networking.v1.NetworkPolicyPeerArgs(ip_block=k8s.networking.v1.IPBlockArgs(cidr="::/0")),
        ],
        ports=[tcp_port(port) for port in sorted(set(ports))],
    )
