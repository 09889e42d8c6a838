"""Representative configurations of each public component, built under Pulumi mocks, for the URN manifests.

Each scenario builds one thing at the top of a stack, the way a user has it: the lab stack program as
`make up` runs it, and each component a company stack may use alone. A release's manifest records what every
scenario registers (releases/<version>/urns.json); tests/test_upgrades.py builds the same scenarios with
today's code and checks that an upgrade takes every recorded resource over.

The scenarios also run against the code of an older release (`python -m tools.release urns --source <checkout>`):
arguments a release did not have yet are left out, and up to 0.2 Falco and AuditForwarder took their
Kubernetes provider as an argument instead of a resource option. A scenario whose component a release lacks
is skipped for it.
"""

from __future__ import annotations

import dataclasses
import runpy
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
# The mocks come from this checkout even when the components come from an older one (imported before it).
import pulumi_mocks  # noqa: E402

STACK = pulumi_mocks.STACK
PROJECT = pulumi_mocks.PROJECT
REGION = pulumi_mocks.REGION
ACCOUNT_ID = pulumi_mocks.ACCOUNT_ID

LAB_CLUSTER = "workshop"
COMPANY_CLUSTER = "prod"
ADMIN_ARN = f"arn:aws:iam::{ACCOUNT_ID}:role/PlatformAdmin"
LOG_GROUP = f"/aws/eks/{COMPANY_CLUSTER}/cluster"
LOG_GROUP_ARN = f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{LOG_GROUP}"
FALCO_URL = "http://falco-k8saudit-k8saudit-webhook-headless.falco.svc.cluster.local:9765/k8s-audit"
FALCO_LABELS = {"app.kubernetes.io/name": "falco", "app.kubernetes.io/instance": "falco-k8saudit"}


@dataclass(frozen=True)
class Scenario:
    name: str
    about: str
    build: Callable[[Path], Any]
    """Builds it from the components under the given checkout (its stack program, for the lab)."""
    mocks: Callable[[], pulumi_mocks.LabMocks] = pulumi_mocks.LabMocks
    config: tuple[tuple[str, str], ...] = ()


class MissingComponentError(Exception):
    """The release lacks what the scenario builds."""


def _args(cls: type, **values: Any) -> Any:
    """`cls(**values)`, leaving out what this release's class has no field for (it did not have the setting)."""
    fields = {f.name for f in dataclasses.fields(cls)}
    return cls(**{key: value for key, value in values.items() if key in fields})


def _takes_provider(cls: type) -> bool:
    return "provider" in {f.name for f in dataclasses.fields(cls)}


def _component(name: str) -> Any:
    import components

    found = getattr(components, name, None)
    if found is None:
        raise MissingComponentError(f"components.{name}")
    return found


def _kubernetes(name: str) -> Any:
    import pulumi_kubernetes as k8s

    return k8s.Provider(name, kubeconfig="{}")


def _lab_stack(source: Path) -> None:
    import pulumi

    pulumi.export = lambda _name, _value: None  # type: ignore[assignment] # outputs are not recorded
    runpy.run_path(str(source / "__main__.py"), run_name="__main__")


def _audited_cluster(_source: Path) -> Any:
    cls, args = _component("AuditedCluster"), _cluster_args_class()
    return cls(COMPANY_CLUSTER, _args(args, cluster_name=COMPANY_CLUSTER, cluster_admin_arns=(ADMIN_ARN,)))


def _cluster_args_class() -> type:
    import components

    for name in ("AuditedClusterSettings", "AuditedClusterArgs"):
        if hasattr(components, name):
            return getattr(components, name)  # type: ignore[no-any-return]
    raise MissingComponentError("the args of AuditedCluster")


def _falco_args_class() -> type:
    import components

    for name in ("FalcoSettings", "FalcoArgs"):
        if hasattr(components, name):
            return getattr(components, name)  # type: ignore[no-any-return]
    raise MissingComponentError("the args of Falco")


def _falco(_source: Path) -> Any:
    import pulumi

    cls, args_cls = _component("Falco"), _falco_args_class()
    provider = _kubernetes("cluster")
    if _takes_provider(args_cls):
        return cls("falco", _args(args_cls, provider=provider))
    return cls("falco", _args(args_cls), opts=pulumi.ResourceOptions(provider=provider))


def _audit_forwarder(_source: Path) -> Any:
    import pulumi

    cls, args_cls = _component("AuditForwarder"), _component("AuditForwarderArgs")
    provider = _kubernetes("cluster")
    values = {
        "log_group_name": LOG_GROUP,
        "log_group_arn": LOG_GROUP_ARN,
        "oidc_provider_arn": pulumi_mocks.OIDC_PROVIDER_ARN,
        "oidc_issuer": pulumi_mocks.OIDC_ISSUER,
        "region": REGION,
        "falco_url": FALCO_URL,
        "falco_namespace": "falco",
        "falco_pod_labels": FALCO_LABELS,
        "build": "source",
    }
    if _takes_provider(args_cls):
        return cls("forwarder", _args(args_cls, provider=provider, **values))
    return cls("forwarder", _args(args_cls, **values), opts=pulumi.ResourceOptions(provider=provider))


def _detection(audit_source: str) -> Callable[[Path], Any]:
    def build(_source: Path) -> Any:
        cls, args_cls = _component("FalcoDetection"), _component("FalcoDetectionArgs")
        if audit_source != "poll":
            _component("AuditStream")
        return cls(
            "falco",
            _args(args_cls, cluster_name=COMPANY_CLUSTER, forwarder_build="source", audit_source=audit_source),
        )

    return build


def _lab_vpc(_source: Path) -> Any:
    return _component("LabVpc")("net", _args(_component("LabVpcArgs"), cluster_name=COMPANY_CLUSTER))


def _existing_cluster() -> pulumi_mocks.LabMocks:
    return pulumi_mocks.LabMocks(pulumi_mocks.ExistingCluster(COMPANY_CLUSTER))


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "lab-stack",
        f"The lab stack program (__main__.py) with its default settings, clusterName {LAB_CLUSTER}: what `make up` "
        "creates.",
        _lab_stack,
        config=(("aws:region", REGION), (f"{PROJECT}:clusterName", LAB_CLUSTER)),
    ),
    Scenario(
        "audited-cluster",
        f"AuditedCluster {COMPANY_CLUSTER} with its own VPC and one cluster admin.",
        _audited_cluster,
    ),
    Scenario(
        "falco-detection",
        f"FalcoDetection on the existing cluster {COMPANY_CLUSTER}, polling, forwarder from source.",
        _detection("poll"),
        mocks=_existing_cluster,
    ),
    Scenario(
        "falco-detection-kinesis",
        f"FalcoDetection on the existing cluster {COMPANY_CLUSTER}, reading a Kinesis stream, forwarder from source.",
        _detection("kinesis"),
        mocks=_existing_cluster,
    ),
    Scenario("falco", "Falco alone with its default settings, on a given Kubernetes provider.", _falco),
    Scenario(
        "audit-forwarder",
        "AuditForwarder alone, polling a given log group, from source, on a given Kubernetes provider.",
        _audit_forwarder,
    ),
    Scenario("lab-vpc", f"LabVpc for the cluster {COMPANY_CLUSTER}.", _lab_vpc),
)


@dataclass
class Built:
    scenario: Scenario
    recorded: pulumi_mocks.Recorded


def build(scenario: Scenario, source: Path = ROOT) -> Built:
    """Run the scenario under mocks; raises MissingComponentError when the release lacks its component, and what the
    program raised otherwise."""
    unavailable: list[MissingComponentError] = []

    def program() -> Any:
        try:
            return scenario.build(source)
        except MissingComponentError as missing:
            unavailable.append(missing)
            return None

    recorded = pulumi_mocks.run_program(program, config=dict(scenario.config), mocks=scenario.mocks())
    if unavailable:
        raise unavailable[0]
    if isinstance(recorded.result, Exception):
        raise recorded.result
    return Built(scenario, recorded)
