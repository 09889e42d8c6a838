"""Exposure: dashboards published through a LoadBalancer or NodePort Service, and admission webhooks.

A dashboard is recognised by its Service: the Service's JSON text (name, namespace, labels, selector,
ports) naming the Kubernetes dashboard or Kubeflow's central dashboard. A Service only reaches pods its
selector picks, so the selector of a published dashboard names it, whatever the Service is called.
An internal load balancer (the annotations AWS's controllers read) publishes nothing outside the VPC and
raises nothing. The AWS Load Balancer Controller makes internal load balancers unless told
``internet-facing``; the in-tree controller makes internet-facing ones unless told ``internal``.
"""

from __future__ import annotations

from typing import Final

from . import common as c
from .language import Expr, FalcoList, Macro, Output, Rule, all_of, any_of, f, pointer

_ANNOTATIONS = "/requestObject/metadata/annotations"
PUBLISHED_SERVICE = Macro(
    "eks_lab_published_service",
    all_of(
        c.COMPLETED.ref,
        c.RESOURCE.eq("services"),
        ~c.SUBRESOURCE.exists(),
        c.WRITE.ref,
        c.SUCCEEDED.ref,
        ~c.DRY_RUN.ref,
        f("ka.req.service.type").in_(["LoadBalancer", "NodePort"]),
        ~pointer(f"{_ANNOTATIONS}/service.beta.kubernetes.io~1aws-load-balancer-scheme").eq("internal"),
        ~pointer(f"{_ANNOTATIONS}/service.beta.kubernetes.io~1aws-load-balancer-internal").eq("true"),
    ),
)
SERVICE_OUTPUT = (
    ("user", c.USER),
    ("service", c.NAME),
    ("ns", c.NAMESPACE),
    ("type", f("ka.req.service.type")),
    ("ports", f("ka.req.service.ports")),
    ("selector", pointer("/requestObject/spec/selector")),
)


def _service_mentions(*names: str) -> Expr:
    return any_of(*(pointer("/requestObject").contains(name) for name in names))


DASHBOARD = Rule(
    name="Kubernetes Dashboard Exposed",
    desc="A LoadBalancer or NodePort Service (not an internal load balancer) publishing the Kubernetes dashboard.",
    condition=PUBLISHED_SERVICE.ref & _service_mentions("kubernetes-dashboard", "kubernetesui"),
    output=Output("Kubernetes dashboard exposed", SERVICE_OUTPUT),
    priority="WARNING",
    mitre=("T1133",),
    guardduty=("Policy:Kubernetes/ExposedDashboard",),
)

KUBEFLOW = Rule(
    name="Kubeflow Dashboard Exposed",
    desc="A LoadBalancer or NodePort Service (not an internal load balancer) publishing Kubeflow's central dashboard.",
    condition=PUBLISHED_SERVICE.ref & _service_mentions("centraldashboard", "kubeflow-dashboard"),
    output=Output("Kubeflow dashboard exposed", SERVICE_OUTPUT),
    priority="WARNING",
    mitre=("T1133",),
    guardduty=("Policy:Kubernetes/KubeflowDashboardExposed",),
)

WEBHOOK = Rule(
    name="Admission Webhook Configuration Changed",
    desc="A mutating or validating admission webhook was registered, changed or removed by someone other than "
    "EKS's own components: a mutating webhook sees and can rewrite every object it matches (a sidecar in every "
    "pod), removing a validating one switches a policy off.",
    condition=all_of(
        c.COMPLETED.ref,
        c.RESOURCE.in_(["mutatingwebhookconfigurations", "validatingwebhookconfigurations"]),
        c.CHANGE.ref,
        c.SUCCEEDED.ref,
        ~c.DRY_RUN.ref,
        ~c.OWN_COMPONENT.ref,
    ),
    output=Output(
        "Admission webhook configuration changed",
        (
            ("user", c.USER),
            ("verb", c.VERB),
            ("resource", c.RESOURCE),
            ("name", c.NAME),
            ("url", pointer("/requestObject/webhooks/0/clientConfig/url")),
            ("service_ref", pointer("/requestObject/webhooks/0/clientConfig/service/name")),
            ("resp", c.CODE),
        ),
    ),
    priority="WARNING",
    mitre=("T1546", "T1562.001"),
)

DEFINITIONS: Final[tuple[FalcoList | Macro, ...]] = (PUBLISHED_SERVICE,)
RULES: Final = (DASHBOARD, KUBEFLOW, WEBHOOK)
