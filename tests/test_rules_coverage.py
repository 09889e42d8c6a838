"""Coverage: the recorded threat scenarios through the lab's rules, against the verdict table the docs show.

../shared/corpus/real-falco/threats/ holds the audit lines of 31 attacks (modelled on GuardDuty's EKS audit-log
finding types and behaviours it has no type for) and 8 benign activities from a real kube-apiserver 1.36, and which
scenario each line belongs to. They go through the evaluator (proven on the real Falco's recordings of the same lines)
as the lab's audit Falco loads its rules (the pinned upstream file, FALCO_PLUGINS_REPO, then the lab's files and the
hostile list), as a company cluster does (the same, "Full K8s Administrative Access" off), and with the lab's own
rules alone (no upstream file). For each scenario the alerts at Warning or above must be exactly those of the verdict
table, docs/data/threat-verdicts.yaml (tests/support/threat_scenarios.py reads it; docs/detection.md shows it); every
attack must raise the rule written for its behaviour, naming the caller, the object and its namespace; every benign
alert must have its reason there.

The configuration is the table's: the WorkshopAdmin role and ``alice`` as admins (the lab turns
"Full K8s Administrative Access" on), the CI/CD and developer roles allowed, and a hostile list holding the Tor
exit address and the documentation range the attacker's second address stands in for.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

import pytest
from support.audit_events import shared_corpus_file
from support.falco_engine import Alert, FalcoEngine, Settings
from support.falco_engine.plugins_repo import K8SAUDIT_RULES, k8saudit_tag, plugins_file
from support.threat_scenarios import (
    ADMIN_RULE,
    ALERT_PRIORITIES,
    THREATS,
    alerts,
    counts,
    scenario_lines,
    verdict_table,
)

import components.falco.k8saudit_upstream as upstream
from components.falco.rules import RULES, hostile_sources_file, source_match
from components.falco.rules.guardduty import FINDING_TYPES
from components.falco.upstream_changes import rules_files

LAB_RULES = frozenset(rule.name for rule in RULES)
TABLE = verdict_table()
VERDICTS = TABLE.verdicts
BENIGN_REASONS = TABLE.benign_reasons


def _alerts(mode: Any) -> dict[str, list[tuple[dict[str, Any], Alert]]]:
    """Scenario -> (event, alert) for every alert at Warning or above."""
    return {
        scenario: [(event, alert) for event, alert in found if alert.priority in ALERT_PRIORITIES]
        for scenario, found in alerts(mode).items()
    }


def test_the_table_covers_every_recorded_scenario_and_every_attack_has_its_rule() -> None:
    assert {scenario for scenario, _ in scenario_lines()} == set(VERDICTS)
    attacks = [s for s, v in VERDICTS.items() if v.kind == "attack"]
    # 39 numbered scenarios: 31 attacks and 8 benign activities, besides the API server's own background.
    assert len(attacks) == 31 and len([s for s in VERDICTS if s.startswith("benign-")]) == 8
    for scenario in attacks:
        verdict = VERDICTS[scenario]
        assert verdict.detected_by and set(verdict.detected_by) <= set(verdict.lab) <= LAB_RULES, scenario
    for verdict in VERDICTS.values():
        assert set(verdict.models) <= FINDING_TYPES and (verdict.kind == "attack" or not verdict.models)


def test_the_table_names_the_finding_types_each_scenario_models_as_the_recording_lists_them() -> None:
    listing = shared_corpus_file(THREATS + "scenarios.md").read_text(encoding="utf-8")
    # | # | scenario | kind | window (UTC) | audit lines | GuardDuty type(s) |
    rows = re.findall(r"^\| \d+ \| ([a-z0-9-]+) \| \w+ \| [^|]+ \| \d+ \| ([^|]+) \|$", listing, re.MULTILINE)
    assert len(rows) == 39
    for scenario, types in rows:
        listed = () if types.strip() == "—" else tuple(t.strip() for t in types.split(","))
        assert VERDICTS[scenario].models == listed, scenario


@pytest.mark.parametrize("scenario", list(VERDICTS))
def test_the_labs_own_rules_alone_raise_exactly_the_tables_alerts(scenario: str) -> None:
    assert counts("lab", scenario) == VERDICTS[scenario].expected("lab")


@pytest.mark.parametrize("scenario", list(VERDICTS))
def test_with_the_upstream_rules_the_audit_falco_raises_exactly_the_tables_alerts(scenario: str) -> None:
    assert counts("lab+upstream", scenario) == VERDICTS[scenario].expected("lab+upstream")
    # A company cluster (FalcoDetection's default): no admin-access alerts, the rest alike.
    assert counts("company", scenario) == VERDICTS[scenario].expected("company")
    assert ADMIN_RULE not in VERDICTS[scenario].expected("company")


def test_every_benign_alert_has_its_documented_reason() -> None:
    for mode in ("lab", "lab+upstream"):
        for scenario, verdict in VERDICTS.items():
            if verdict.kind == "benign":
                assert set(counts(mode, scenario)) <= set(BENIGN_REASONS.get(scenario, {})), (mode, scenario)


def test_every_lab_alert_names_the_caller_the_object_and_its_namespace() -> None:
    checked = 0
    for found in _alerts("lab").values():
        for event, alert in found:
            assert alert.rule in LAB_RULES
            assert f"user={event['user']['username']} " in alert.output, alert.output
            ref = event.get("objectRef", {})
            if "namespace" in ref:
                assert f"ns={ref['namespace']}" in alert.output, alert.output
            if "name" in ref:
                assert ref["name"] in alert.output, alert.output
            checked += 1
    assert checked == sum(sum(v.lab.values()) for v in VERDICTS.values())


def test_workload_alerts_name_the_person_who_created_the_workload_not_its_controller() -> None:
    # The DaemonSet and CronJob in kube-system, the privileged Deployment: reported at their own creation, by their
    # creator; a real controller's pods for them (with ownerReferences) would raise nothing more.
    for scenario, creator in [
        ("persistence-kube-system-workloads", "arn:aws:sts::111122223333:assumed-role/DevRole/dev-1"),
        ("privileged-container", "arn:aws:sts::111122223333:assumed-role/DevRole/dev-1"),
        ("workload-deployed-by-sa", "system:serviceaccount:default:default"),
    ]:
        users = {event["user"]["username"] for event, _ in _alerts("lab")[scenario]}
        assert users == {creator}, scenario


# --- the workshop's own recording ------------------------------------------------------------------------------

WORKSHOP_ADMINS = ("arn:aws:iam::111122223333:role/WorkshopAdmin", "arn:aws:iam::123456789012:user/alice")
"""The admin identities of the shipped-settings recording (its shipped-lab-rules.yaml)."""
PROMISED = ("Pod Created in Kube Namespace", "Create/Modify Configmap With Private Credentials", ADMIN_RULE)


def _workshop(audit: str, alerts: str) -> tuple[Counter[tuple[str, ...]], Counter[tuple[str, ...]]]:
    """(what the lab's Falco writes now, what the real Falco wrote with the lab's earlier rules) for a recording."""
    engine = FalcoEngine(
        Settings.from_falco_yaml(shared_corpus_file("real-falco/shipped-falco.yaml").read_text("utf-8"))
    )
    engine.load_rules(plugins_file(k8saudit_tag(upstream.VERSION), K8SAUDIT_RULES), "/etc/falco/k8s_audit_rules.yaml")
    for name, text in rules_files(WORKSHOP_ADMINS, (), admin_access_alerts=True).items():
        engine.load_rules(text, f"/etc/falco/rules.d/{name}")
    engine.load_rules(hostile_sources_file(source_match((), "x")), "/etc/falco/hostile-sources.d/h.yaml")
    lines = shared_corpus_file(f"real-falco/{audit}").read_text(encoding="utf-8").splitlines()
    now = Counter((a.rule, a.priority, a.time, a.output) for a in engine.process_lines(lines))
    written = [json.loads(x) for x in shared_corpus_file(f"real-falco/{alerts}").read_text("utf-8").splitlines() if x]
    then = Counter((a["rule"], a["priority"], a["time"], a["output"]) for a in written if a["source"] == "k8s_audit")
    return now, then


def test_the_workshops_promised_alerts_are_still_exactly_what_the_real_falco_wrote() -> None:
    from components.falco.upstream_changes import UPSTREAM_CHANGES

    switched_off = {change.rule for change in UPSTREAM_CHANGES if not change.enabled}
    now, then = _workshop("kube-apiserver-1.36-workshop-audit.jsonl", "falco-0.44.1-alerts-shipped-settings.jsonl")
    promised = Counter({key: n for key, n in then.items() if key[0] in PROMISED})
    assert sum(promised.values()) == 1 + 2 + 43
    assert promised <= now
    # What no longer shows: the rules the lab switches off, and the API server's bootstrap of its default roles.
    for rule, _, _, output in (then - now).elements():
        assert rule in switched_off or (
            rule == "System ClusterRole Modified/Deleted" and "user=system:apiserver " in output
        )
    # What the lab adds on this recording: the recording harness (not an admin) creating and deleting aws-auth.
    added = now - then
    assert {(rule, priority) for rule, priority, _, _ in added} == {
        ("aws-auth ConfigMap Changed by a Non-Admin", "Critical")
    }
    assert all("user=system:lab-setup " in output for *_, output in added)


def test_other_identities_are_still_reported_and_eks_own_components_spared() -> None:
    from components.falco.upstream_changes import UPSTREAM_CHANGES

    switched_off = {change.rule for change in UPSTREAM_CHANGES if not change.enabled}
    now, then = _workshop(
        "workshop-audit-other-identities.jsonl", "falco-0.44.1-alerts-other-identities-shipped-settings.jsonl"
    )
    disallowed = {key for key in then if key[0] == "Disallowed K8s User"}
    assert disallowed and disallowed <= set(now)
    for rule, _, _, output in (then - now).elements():
        # EKS's own eks: components (client certificates, not IAM) creating a pod in kube-system are now spared.
        spared = rule == "Pod Created in Kube Namespace" and "user=eks:" in output
        assert rule in switched_off or spared, output
