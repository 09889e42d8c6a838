"""The lab's own rules under the evaluator, as the rule tests load them (no upstream file needed).

Loads what the audit Falco loads after the upstream rules, minus the changes to upstream: the lab's own
rules file (components/falco/rules) and the hostile-sources file the Falco component puts in its ConfigMap,
with the settings of the lab: rule_matching all, every priority.
"""

from __future__ import annotations

from functools import cache

from support.falco_engine import Alert, FalcoEngine, Settings
from support.k8s_requests import Request

from components.falco.rules import detection_rules, hostile_sources_file, source_match
from components.falco.upstream_changes import admin_matchers

ADMIN_ROLE_ARN = "arn:aws:iam::111122223333:role/WorkshopAdmin"
HOSTILE_EXAMPLE = ("185.220.101.34", "198.51.100.0/24", "2001:db8:beef::/48")
"""A Tor exit address, a documentation range standing for a threat feed's, and an IPv6 range."""


@cache
def lab_engine(
    admins: tuple[str, ...] = (ADMIN_ROLE_ARN,),
    allowed: tuple[str, ...] = (),
    hostile: tuple[str, ...] = HOSTILE_EXAMPLE,
) -> FalcoEngine:
    engine = FalcoEngine(Settings(rule_matching="all", json_output=True))
    pairs = [(m.value, m.prefix) for m in admin_matchers(admins)]
    allowed_pairs = [(m.value, m.prefix) for m in admin_matchers(allowed, "allowed_identities")]
    engine.load_rules(detection_rules(pairs, allowed_pairs), "rules.d/falco-eks-lab-detection.yaml")
    engine.load_rules(
        hostile_sources_file(source_match(hostile, "hostile_source_addresses")),
        "hostile-sources.d/hostile-sources.yaml",
    )
    engine.check_plugin_requirements()
    return engine


def alerts(request: Request | str, stage: str = "ResponseComplete", engine: FalcoEngine | None = None) -> list[Alert]:
    line = request if isinstance(request, str) else request.line(stage)
    return (engine or lab_engine()).process(line)


def fired(request: Request | str, stage: str = "ResponseComplete", engine: FalcoEngine | None = None) -> set[str]:
    """The names of the rules that fire for one stage of `request`."""
    return {alert.rule for alert in alerts(request, stage, engine)}
