"""The tables of docs/detection.md, written from the rules and the committed results of the recorded scenarios.

- ``lab-rules``: every rule of the lab's own rules file (components/falco/rules), theme by theme: name, priority, what
  it reports, its MITRE ATT&CK techniques and GuardDuty finding types (the rule's tags).
- ``upstream-changes``: the upstream k8saudit rules the lab switches off, and those it keeps with a change, with the
  reason the code gives for each (components/falco/upstream_changes.py UPSTREAM_CHANGES).
- ``guardduty-coverage``: every GuardDuty EKS audit-log finding type the rules name
  (components/falco/rules/guardduty.py), the rules tagged with it, the recorded scenarios that model it, and what is
  covered and what is not (docs/data/guardduty-coverage.yaml, which must name every type exactly once).
- ``threat-verdicts``: the verdict table of the recorded scenarios (docs/data/threat-verdicts.yaml, which
  tests/test_rules_coverage.py holds the rules to).
- ``threat-alerts``: for each scenario, what the lab's Falco prints (docs/data/threat-alerts.json, computed from the
  recording by the rule evaluator; ``python -m docs_tools threat-alerts`` rewrites it where the recording is).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from .generated import DocsError, cell

COVERAGE_FILE = Path("docs/data/guardduty-coverage.yaml")
VERDICTS_FILE = Path("docs/data/threat-verdicts.yaml")
ALERTS_FILE = Path("docs/data/threat-alerts.json")

THEME_TITLES = {
    "workloads": "Workloads",
    "rbac": "Roles and bindings",
    "identity": "Identities and credentials",
    "access": "Access to pods, secrets and the API",
    "exposure": "Exposure",
    "sources": "Source addresses",
}
"""A heading for each module of components/falco/rules, in the order Falco loads them."""

ADMIN_RULE = "Full K8s Administrative Access"


def _priority(priority: str) -> str:
    """As Falco prints it: WARNING -> Warning."""
    return priority.capitalize()


def finding_types(types: Iterable[str]) -> str:
    """GuardDuty finding types for a table cell, one per line; the tactic variants of one type on one line
    (``{Discovery, Impact}:Kubernetes/SuccessfulAnonymousAccess``), each after a bullet when there are several. Plain
    text with line-break opportunities after ``:``, ``/``, ``.`` and ``!``: a name is too long for a narrow column."""
    tactics: dict[str, list[str]] = {}
    for finding in types:
        tactic, _, kind = finding.partition(":")
        tactics.setdefault(kind, []).append(tactic)
    lines = []
    for kind, names in tactics.items():
        prefix = names[0] if len(names) == 1 else "{" + ", ".join(names) + "}"
        lines.append(re.sub(r"([:/.!])", r"\1<wbr>", cell(f"{prefix}:{kind}")))
    return "<br>".join(f"•&nbsp;{line}" for line in lines) if len(lines) > 1 else "".join(lines)


# --- the lab's rules ----------------------------------------------------------------------------------------


def lab_rules_table(themes: Iterable[Any]) -> str:
    """One table per theme module: rule, priority, what it reports, MITRE ATT&CK, GuardDuty."""
    out: list[str] = []
    for theme in themes:
        key = theme.__name__.rpartition(".")[2]
        if key not in THEME_TITLES:
            raise DocsError(f"components/falco/rules/{key}.py has no heading: add it to THEME_TITLES in docs_tools")
        header = "| Rule | Priority | What it reports | MITRE ATT&CK | GuardDuty finding types |"
        out += [f"### {THEME_TITLES[key]}", "", header, "|---|---|---|---|---|"]
        for rule in theme.RULES:
            cells = (cell(rule.name), _priority(rule.priority), cell(rule.desc), ", ".join(rule.mitre))
            out.append("| " + " | ".join((*cells, finding_types(rule.guardduty) or "none")) + " |")
        out.append("")
    return "\n".join(out)


def lab_rules_from(root: Path) -> str:
    del root  # the components package on sys.path is the one in this repository
    from components.falco.rules import THEMES

    return lab_rules_table(THEMES)


# --- the upstream rules the lab changes ---------------------------------------------------------------------


def upstream_changes_table(changes: Iterable[Any]) -> str:
    """The upstream rules switched off, then those kept with a change, each with the code's reason."""
    changes = list(changes)
    off = [c for c in changes if not c.enabled]
    kept = [c for c in changes if c.enabled]
    out = ["| Switched off | Why, and what replaces it |", "|---|---|"]
    out += [f"| {cell(c.rule)} | {cell(c.why)} |" for c in off]
    out += ["", "| Kept | What the lab changes | Tags added |", "|---|---|---|"]
    for change in kept:
        tags = change.tags or ()
        mitre = ", ".join(t for t in tags if not t.startswith("guardduty:"))
        guardduty = finding_types(t.removeprefix("guardduty:") for t in tags if t.startswith("guardduty:"))
        added = "<br>".join(part for part in (mitre, guardduty) if part)
        out.append(f"| {cell(change.rule)} | {cell(change.why)} | {added} |")
    return "\n".join(out) + "\n"


def upstream_changes_from(root: Path) -> str:
    del root
    from components.falco.upstream_changes import UPSTREAM_CHANGES

    return upstream_changes_table(UPSTREAM_CHANGES)


# --- GuardDuty's finding types ------------------------------------------------------------------------------


def _load_yaml(root: Path, path: Path) -> Any:
    try:
        return yaml.safe_load((root / path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise DocsError(f"{path}: {err}") from err


def coverage_table(
    entries: list[Mapping[str, Any]],
    all_types: Iterable[str],
    tagged: Mapping[str, list[str]],
    modelled_by: Mapping[str, list[str]],
) -> str:
    """A row per entry of guardduty-coverage.yaml: its finding types, the rules tagged with them (`tagged`: type ->
    rule names), what is covered (and the recorded scenarios that model it, `modelled_by`), what is not."""
    known = set(all_types)
    seen: list[str] = []
    header = "| GuardDuty finding type | Lab rules | Covered | Not covered, and what a baseline adds |"
    out = [header, "|---|---|---|---|"]
    for entry in entries:
        types = list(entry.get("types") or ())
        for missing in ("types", "covered", "not_covered"):
            if not entry.get(missing):
                raise DocsError(f"{COVERAGE_FILE}: an entry ({types or entry}) has no {missing!r}")
        unknown = [t for t in types if t not in known]
        if unknown:
            raise DocsError(f"{COVERAGE_FILE}: {unknown} are not finding types the rules know (guardduty.py)")
        seen += types
        rules = [cell(rule) for rule in dict.fromkeys(rule for t in types for rule in tagged.get(t, ()))]
        scenarios = list(dict.fromkeys(s for t in types for s in modelled_by.get(t, ())))
        covered = cell(entry["covered"]) + (f" (recorded: {', '.join(scenarios)})" if scenarios else "")
        listed = "<br>".join(f"•&nbsp;{rule}" for rule in rules) if len(rules) > 1 else "".join(rules) or "none"
        out.append(f"| {finding_types(types)} | {listed} | {covered} | {cell(entry['not_covered'])} |")
    twice = sorted({t for t in seen if seen.count(t) > 1})
    left_out = sorted(known - set(seen))
    if twice or left_out:
        raise DocsError(f"{COVERAGE_FILE}: every finding type once: named twice {twice}, missing {left_out}")
    return "\n".join(out) + "\n"


def coverage_from(root: Path) -> str:
    from components.falco.rules import RULES
    from components.falco.rules.guardduty import FINDING_TYPES
    from components.falco.upstream_changes import UPSTREAM_CHANGES

    entries = _load_yaml(root, COVERAGE_FILE)
    if not isinstance(entries, list):
        raise DocsError(f"{COVERAGE_FILE}: not a list of entries")
    tagged: dict[str, list[str]] = {}
    for rule in RULES:
        for finding in rule.guardduty:
            tagged.setdefault(finding, []).append(rule.name)
    for change in UPSTREAM_CHANGES:  # upstream rules the lab keeps and tags
        for tag in change.tags:
            if tag.startswith("guardduty:") and change.enabled:
                tagged.setdefault(tag.removeprefix("guardduty:"), []).append(change.rule)
    modelled_by: dict[str, list[str]] = {}
    for name, scenario in _verdicts(root)["scenarios"].items():
        for finding in scenario["models"]:
            modelled_by.setdefault(finding, []).append(name)
    return coverage_table(entries, FINDING_TYPES, tagged, modelled_by)


# --- the recorded scenarios ---------------------------------------------------------------------------------


def _verdicts(root: Path) -> dict[str, Any]:
    doc = _load_yaml(root, VERDICTS_FILE)
    if not isinstance(doc, dict) or not isinstance(doc.get("scenarios"), dict):
        raise DocsError(f"{VERDICTS_FILE}: no `scenarios:` mapping")
    return doc


def _expected(scenario: Mapping[str, Any]) -> dict[str, int]:
    """The alerts at Warning or above as the lab's audit Falco loads its rules (tests/support/threat_scenarios.py
    Verdict.expected, "lab+upstream")."""
    from tests.support.threat_scenarios import Verdict

    verdict = Verdict(
        kind=scenario["kind"],
        what=scenario["what"],
        models=tuple(scenario["models"]),
        detected_by=tuple(scenario["detected_by"]),
        lab=dict(scenario["lab"]),
        upstream=dict(scenario["upstream"]),
    )
    return verdict.expected("lab+upstream")


def _alert_counts(found: Mapping[str, int], detected_by: Iterable[str]) -> str:
    """``Rule ×3``, the rules written for the behaviour in bold, the most frequent first."""
    written = set(detected_by)
    parts = []
    for rule, count in sorted(found.items(), key=lambda item: (item[0] not in written, -item[1], item[0])):
        name = f"**{cell(rule)}**" if rule in written else cell(rule)
        parts.append(f"{name} ×{count}")
    return "<br>".join(parts) or "none"


def verdicts_table(doc: Mapping[str, Any]) -> str:
    """The attacks, then the benign activity: what each does, the rules written for it, what the lab's Falco raises."""
    scenarios = doc["scenarios"]
    out: list[str] = []
    for kind, title in (("attack", "Attacks"), ("benign", "Benign activity")):
        out += [
            f"**{title}**",
            "",
            "| Scenario | What it does | Alerts at Warning or above (the rules written for it in bold) |",
            "|---|---|---|",
        ]
        for name, scenario in scenarios.items():
            if scenario["kind"] != kind:
                continue
            found = _expected(scenario)
            out.append(f"| {cell(name)} | {cell(scenario['what'])} | {_alert_counts(found, scenario['detected_by'])} |")
        out.append("")
    return "\n".join(out)


def verdicts_from(root: Path) -> str:
    return verdicts_table(_verdicts(root))


def alerts_blocks(data: Mapping[str, Any], verdicts: Mapping[str, Any]) -> str:
    """A collapsible block per scenario, the attacks first: each rule that fires, how often, and its first alert as
    Falco prints it."""
    scenarios = data.get("scenarios")
    if not isinstance(scenarios, dict) or list(scenarios) != list(verdicts["scenarios"]):
        raise DocsError(
            f"{ALERTS_FILE} does not list the scenarios of {VERDICTS_FILE}: run python -m docs_tools threat-alerts "
            "where the recording is"
        )
    out: list[str] = []
    for kind, title in (("attack", "Attacks"), ("benign", "Benign activity")):
        out += [f"**{title}**", ""]
        for name, rules in scenarios.items():
            scenario = verdicts["scenarios"][name]
            if scenario["kind"] != kind:
                continue
            total = sum(rule["count"] for rule in rules)
            summary = f"{name}: {total} alert{'s' if total != 1 else ''}" if rules else f"{name}: nothing"
            what = scenario["what"]
            out += [f'??? example "{summary}"', "", f"    {what[0].upper()}{what[1:]}.", ""]
            if not rules:
                continue
            out.append("    ```text")
            for rule in rules:
                times = "once" if rule["count"] == 1 else f"{rule['count']} times, the first"
                out.append(f"    # {rule['rule']} ({rule['priority']}): {times}")
                out.append(f"    {rule['first']}")
            out += ["    ```", ""]
    return "\n".join(out)


def alerts_from(root: Path) -> str:
    try:
        data = json.loads((root / ALERTS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DocsError(f"{ALERTS_FILE}: {err}") from err
    return alerts_blocks(data, _verdicts(root))


def write_threat_alerts(root: Path) -> Path:
    """Recompute docs/data/threat-alerts.json from the recording (../shared) with the rule evaluator; needs the
    upstream rules file through FALCO_PLUGINS_REPO."""
    import pytest

    from tests.support import threat_scenarios

    try:
        data = threat_scenarios.printed_alerts()
    except pytest.skip.Exception as skipped:
        raise DocsError(f"cannot compute the threat alerts: {skipped.msg}") from None
    path = root / ALERTS_FILE
    path.write_text(threat_scenarios.render_alerts(data), encoding="utf-8")
    return path

