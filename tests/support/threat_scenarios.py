"""The recorded threat scenarios through the lab's rules: their verdict table, and the alerts the lab's Falco prints.

The recording (../shared/corpus/real-falco/threats/: the audit lines of a real kube-apiserver, which scenario each
line belongs to) stays outside the repository. What the project makes of it is committed in docs/data/:

- ``threat-verdicts.yaml``: per scenario, the alerts at Warning or above the rules must raise
  (tests/test_rules_coverage.py holds the rules to it; docs/detection.md shows it);
- ``threat-alerts.json``: per scenario, every rule at Notice or above that fires, how often, and the first alert as
  Falco prints it (``printed_alerts``; tests/test_docs.py recomputes it, docs/detection.md shows it).

Three ways to load the rules, as ``engine`` names them: ``lab`` (the lab's own rules file alone, no upstream file),
``lab+upstream`` (as the lab's audit Falco loads them: the pinned upstream k8saudit rules, which need
FALCO_PLUGINS_REPO, then the lab's files and the hostile list) and ``company`` (the same with
"Full K8s Administrative Access" off, FalcoDetection's default). Imports are relative, so docs_tools can use this
module as ``tests.support.threat_scenarios``.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml

import components.falco.k8saudit_upstream as upstream
from components.falco.rules import DETECTION_FILE_NAME, hostile_sources_file, source_match
from components.falco.upstream_changes import rules_files

from .audit_events import shared_corpus_file
from .falco_engine import Alert, FalcoEngine, Settings
from .falco_engine.plugins_repo import K8SAUDIT_RULES, k8saudit_tag, plugins_file

ROOT = Path(__file__).resolve().parents[2]
VERDICTS_FILE = ROOT / "docs" / "data" / "threat-verdicts.yaml"
ALERTS_FILE = ROOT / "docs" / "data" / "threat-alerts.json"
THREATS = "real-falco/threats/"
"""The recording's folder in the shared corpus."""

ADMIN_RULE = "Full K8s Administrative Access"
POD_IN_KUBE_NAMESPACE = "Pod Created in Kube Namespace"
WORKLOAD_IN_KUBE_NAMESPACE = "Workload Created in Kube Namespace"
ALERT_PRIORITIES = ("Emergency", "Alert", "Critical", "Error", "Warning")
"""The verdicts count these."""
PRINTED_PRIORITIES = (*ALERT_PRIORITIES, "Notice")
"""threat-alerts.json holds these: Informational records of every change ("K8s Deployment Created") are left out."""

Mode = Literal["lab", "lab+upstream", "company"]


@dataclass(frozen=True)
class Verdict:
    kind: Literal["attack", "benign"]
    what: str
    models: tuple[str, ...]
    """GuardDuty finding types the scenario models."""
    detected_by: tuple[str, ...]
    """The lab's rules written for the scenario's behaviour (every one fires, with and without upstream)."""
    lab: dict[str, int]
    """Alerts at Warning or above from the lab's own rules alone: rule -> count."""
    upstream: dict[str, int]
    """The upstream rules' alerts at Warning or above when both load (the lab's own are as in `lab`, but for
    pods in kube-system, which upstream's "Pod Created in Kube Namespace" reports instead)."""

    def expected(self, mode: Mode) -> dict[str, int]:
        """The alerts at Warning or above, rule -> count, with the rules loaded as `mode` says."""
        if mode == "lab":
            return dict(self.lab)
        expected = dict(self.lab)
        # Upstream's rule reports the pods in kube-system, the lab's the rest.
        if POD_IN_KUBE_NAMESPACE in self.upstream:
            expected[WORKLOAD_IN_KUBE_NAMESPACE] -= self.upstream[POD_IN_KUBE_NAMESPACE]
            expected = {rule: count for rule, count in expected.items() if count}
        expected.update(self.upstream)
        if mode == "company":
            expected.pop(ADMIN_RULE, None)
        return expected


@dataclass(frozen=True)
class VerdictTable:
    admins: tuple[str, ...]
    admin_access_alerts: bool
    allowed: tuple[str, ...]
    hostile: tuple[str, ...]
    verdicts: dict[str, Verdict]
    """In the recording's order."""
    benign_reasons: dict[str, dict[str, str]]
    """Every alert at Warning or above the benign activity raises, with its reason: scenario -> rule -> reason."""


@cache
def verdict_table(path: Path = VERDICTS_FILE) -> VerdictTable:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    config = doc["configuration"]
    verdicts = {
        name: Verdict(
            kind=entry["kind"],
            what=entry["what"],
            models=tuple(entry["models"]),
            detected_by=tuple(entry["detected_by"]),
            lab=dict(entry["lab"]),
            upstream=dict(entry["upstream"]),
        )
        for name, entry in doc["scenarios"].items()
    }
    return VerdictTable(
        admins=tuple(config["admin_identities"]),
        admin_access_alerts=bool(config["admin_access_alerts"]),
        allowed=tuple(config["allowed_identities"]),
        hostile=tuple(config["hostile_source_addresses"]),
        verdicts=verdicts,
        benign_reasons={scenario: dict(rules) for scenario, rules in doc["benign_reasons"].items()},
    )


def scenario_lines() -> list[tuple[str, str]]:
    """(scenario, audit line) for every line of the recording; skips the calling test without ../shared."""
    lines = shared_corpus_file(THREATS + "scenarios.jsonl").read_text(encoding="utf-8").splitlines()
    index = shared_corpus_file(THREATS + "scenario-index.jsonl").read_text(encoding="utf-8").splitlines()
    return [(json.loads(entry)["scenario"], line) for entry, line in zip(index, lines, strict=True)]


def engine(mode: Mode) -> FalcoEngine:
    """The evaluator with the rules loaded as `mode` says, the recording's falco.yaml and the table's configuration
    (skips the calling test without ../shared, and for the upstream file without FALCO_PLUGINS_REPO)."""
    table = verdict_table()
    settings = Settings.from_falco_yaml(shared_corpus_file("real-falco/shipped-falco.yaml").read_text("utf-8"))
    falco = FalcoEngine(settings)
    with_upstream = mode != "lab"
    if with_upstream:
        falco.load_rules(
            plugins_file(k8saudit_tag(upstream.VERSION), K8SAUDIT_RULES), "/etc/falco/k8s_audit_rules.yaml"
        )
    admin_access_alerts = table.admin_access_alerts and mode != "company"
    for name, text in rules_files(table.admins, table.allowed, admin_access_alerts).items():
        if with_upstream or name == DETECTION_FILE_NAME:
            falco.load_rules(text, f"/etc/falco/rules.d/{name}")
    falco.load_rules(
        hostile_sources_file(source_match(table.hostile, "hostile_source_addresses")),
        "/etc/falco/hostile-sources.d/hostile-sources.yaml",
    )
    falco.check_plugin_requirements()
    return falco


@cache
def alerts(mode: Mode) -> dict[str, list[tuple[dict[str, Any], Alert]]]:
    """Scenario -> (audit event, alert) for every alert at Notice or above, in the recording's order."""
    falco = engine(mode)
    found: dict[str, list[tuple[dict[str, Any], Alert]]] = defaultdict(list)
    for scenario, line in scenario_lines():
        for alert in falco.process(line):
            if alert.priority in PRINTED_PRIORITIES:
                found[scenario].append((json.loads(line), alert))
    return dict(found)


def counts(mode: Mode, scenario: str) -> dict[str, int]:
    """The alerts at Warning or above one scenario raises: rule -> count."""
    return dict(Counter(a.rule for _, a in alerts(mode).get(scenario, []) if a.priority in ALERT_PRIORITIES))


def printed_alerts() -> dict[str, Any]:
    """What threat-alerts.json holds: per scenario (the table's order), every rule at Notice or above that fires as
    the lab's audit Falco loads its rules, in the order of its first alert, with its priority, how many alerts it
    wrote, and the first of them as Falco prints it (the text of its JSON line's ``output``)."""
    found = alerts("lab+upstream")
    scenarios: dict[str, list[dict[str, Any]]] = {}
    for scenario in verdict_table().verdicts:
        rules: dict[str, dict[str, Any]] = {}
        for _, alert in found.get(scenario, []):
            if alert.rule in rules:
                rules[alert.rule]["count"] += 1
            else:
                rules[alert.rule] = {"rule": alert.rule, "priority": alert.priority, "count": 1, "first": alert.output}
        scenarios[scenario] = list(rules.values())
    return {
        "about": (
            "What the lab's audit Falco prints for each recorded threat scenario (the rules as the lab loads them, "
            "the configuration of docs/data/threat-verdicts.yaml): every rule at Notice or above that fires, how "
            "many alerts it wrote and the first of them. Computed by the rule evaluator from "
            "../shared/corpus/real-falco/threats/scenarios.jsonl (tests/support/threat_scenarios.py); "
            "rewrite with `python -m docs_tools threat-alerts`."
        ),
        "upstream_rules": f"k8saudit-rules {upstream.VERSION}",
        "scenarios": scenarios,
    }


def render_alerts(data: dict[str, Any]) -> str:
    """threat-alerts.json's text: one rule per line, so a change reads as a diff of lines."""
    lines = ["{"]
    lines.append(f'  "about": {json.dumps(data["about"])},')
    lines.append(f'  "upstream_rules": {json.dumps(data["upstream_rules"])},')
    lines.append('  "scenarios": {')
    names = list(data["scenarios"])
    for i, name in enumerate(names):
        rules = data["scenarios"][name]
        end = "," if i < len(names) - 1 else ""
        if not rules:
            lines.append(f"    {json.dumps(name)}: []{end}")
            continue
        lines.append(f"    {json.dumps(name)}: [")
        lines += [f"      {json.dumps(rule)}" + ("," if j < len(rules) - 1 else "") for j, rule in enumerate(rules)]
        lines.append(f"    ]{end}")
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"
