"""The lab's generated rules files are files Falco 0.44.1 loads: schema, load order, with and without upstream.

What the chart puts in rules.d (components/falco/upstream_changes.rules_files) and what the Falco component puts in the
hostile-sources ConfigMap load in the evaluator, which refuses what Falco refuses, and conform to Falco's rules
schema (support.falco_rules_schema). With ``FALCO_PLUGINS_REPO`` set, the same files load after the pinned
upstream file as the audit Falco loads them; without it, the lab's own file loads alone (it needs nothing else).
"""

from __future__ import annotations

import json

import pytest
import yaml
from support.falco_engine import FalcoEngine, Settings
from support.falco_engine.plugins_repo import K8SAUDIT_RULES, k8saudit_tag, plugins_file
from support.falco_rules_schema import schema_warnings
from support.k8s_requests import DEVELOPER, container, create, pod_spec, workload
from support.lab_engine import HOSTILE_EXAMPLE, alerts

import components.falco.k8saudit_upstream as upstream
from components.falco import AUDIT_RULES_FILES, HOSTILE_SOURCES_DIR
from components.falco.rules import DETECTION_FILE_NAME, RULES, hostile_sources_file, source_match
from components.falco.upstream_changes import RULES_FILE_NAME, UPSTREAM_CHANGES, rules_files

ADMINS = ("arn:aws:iam::111122223333:role/WorkshopAdmin", "alice")
ALLOWED = ("arn:aws:iam::111122223333:role/CICDDeployRole", "arn:aws:iam::111122223333:user/dev")

GENERATED = {
    "lab, admin alerts on": rules_files(ADMINS, ALLOWED, admin_access_alerts=True),
    "company, no identities": rules_files(),
}
HOSTILE_FILES = {
    "empty": hostile_sources_file(source_match((), "hostile_source_addresses")),
    "example": hostile_sources_file(source_match(HOSTILE_EXAMPLE, "hostile_source_addresses")),
}


def _all_files() -> list[tuple[str, str]]:
    files = [(f"{case}: {name}", text) for case, made in GENERATED.items() for name, text in made.items()]
    return files + [(f"hostile {case}", text) for case, text in HOSTILE_FILES.items()]


@pytest.mark.parametrize(("name", "text"), _all_files(), ids=[n for n, _ in _all_files()])
def test_every_generated_file_conforms_to_falcos_rules_schema(name: str, text: str) -> None:
    assert schema_warnings(text) == []


@pytest.mark.parametrize(
    ("edit", "warning"),
    [
        (("priority: WARNING", "priority: Warning"), "priority 'Warning'"),
        (("  source: k8s_audit", "  source: k8s_audit\n  sources: [k8s_audit]"), "key 'sources'"),
        (("override:\n    condition: append", "override:\n    condition: merge"), "neither append nor replace"),
        (("enabled: false", "enabled: maybe"), "enabled is not a boolean"),
    ],
)
def test_the_schema_checks_catch_what_falco_would_warn_about(edit: tuple[str, str], warning: str) -> None:
    files = GENERATED["lab, admin alerts on"]
    text = files[DETECTION_FILE_NAME] + files[RULES_FILE_NAME].split("\n", 1)[1]
    assert edit[0] in text
    assert any(warning in w for w in schema_warnings(text.replace(*edit, 1)))


def test_rules_d_loads_the_labs_own_rules_before_its_changes_to_upstream() -> None:
    # Falco reads a rules folder's files in name order (configuration.cpp read_rules_file_directory).
    assert list(GENERATED["company, no identities"]) == sorted(GENERATED["company, no identities"])
    assert list(GENERATED["company, no identities"]) == [DETECTION_FILE_NAME, RULES_FILE_NAME]
    # ... and the hostile list's folder comes last, after the macros and lists it replaces.
    assert AUDIT_RULES_FILES[-1] == HOSTILE_SOURCES_DIR


def _load(engine: FalcoEngine, files: dict[str, str], hostile: str) -> None:
    for name, text in files.items():
        engine.load_rules(text, f"/etc/falco/rules.d/{name}")
    engine.load_rules(hostile, f"{HOSTILE_SOURCES_DIR}/hostile-sources.yaml")
    engine.check_plugin_requirements()


def test_the_labs_own_rules_load_alone_without_warnings() -> None:
    for hostile in HOSTILE_FILES.values():
        engine = FalcoEngine(Settings(rule_matching="all"))
        _load(engine, {DETECTION_FILE_NAME: GENERATED["lab, admin alerts on"][DETECTION_FILE_NAME]}, hostile)
        assert engine.warnings == []
        assert [rule.name for rule in engine.rules] == [rule.name for rule in RULES]
        assert {rule.source for rule in engine.rules} == {"k8s_audit"}
        assert all(rule.enabled for rule in engine.rules)


def test_the_changes_to_upstream_do_not_load_without_upstream() -> None:
    # They override upstream's rules: alone they are refused, which is why the lab's own rules are a file apart.
    engine = FalcoEngine(Settings(rule_matching="all"))
    with pytest.raises(Exception, match="no rule by that name|undefined"):
        _load(engine, GENERATED["lab, admin alerts on"], HOSTILE_FILES["empty"])


@pytest.mark.parametrize("case", list(GENERATED))
def test_all_files_load_after_the_pinned_upstream_rules_as_the_audit_falco_loads_them(case: str) -> None:
    engine = FalcoEngine(Settings(rule_matching="all"))
    engine.load_rules(plugins_file(k8saudit_tag(upstream.VERSION), K8SAUDIT_RULES), "/etc/falco/k8s_audit_rules.yaml")
    _load(engine, GENERATED[case], HOSTILE_FILES["example"])
    assert engine.warnings == []
    names = [rule.name for rule in engine.rules]
    assert len(names) == len(set(names)) == len(upstream.RULES) + len(RULES)
    switched_off = {change.rule for change in UPSTREAM_CHANGES if not change.enabled}
    assert {rule.name for rule in engine.rules if not rule.enabled} == switched_off


def test_the_upstream_file_conforms_to_the_schema_checks_as_falco_loaded_it_without_warnings() -> None:
    # The real Falco printed no schema warning for it (../shared/corpus/real-falco/README.md): a check of the checks.
    assert schema_warnings(plugins_file(k8saudit_tag(upstream.VERSION), K8SAUDIT_RULES)) == []


def test_an_alert_carries_its_mitre_and_guardduty_tags_in_falcos_json_line() -> None:
    pod = workload("pods", "debug-tools", "app", pod_spec([container("tools", privileged=True)]))
    (alert,) = alerts(create(DEVELOPER, "pods", "app", "debug-tools", pod))
    line = alert.to_json(Settings(rule_matching="all", json_output=True))
    assert line["rule"] == "Privileged Container Deployed" and line["priority"] == "Warning"
    assert "T1611" in line["tags"]
    assert "guardduty:PrivilegeEscalation:Kubernetes/PrivilegedContainer" in line["tags"]
    assert json.loads(json.dumps(line))["tags"] == sorted(line["tags"])  # Falco writes its set sorted
    assert yaml.safe_load(GENERATED["company, no identities"][DETECTION_FILE_NAME])  # plain YAML


def test_the_files_are_the_same_text_in_every_run_so_a_preview_shows_no_change() -> None:
    # Python salts str hashes per process: a set iterated while generating would reorder the conditions, change the
    # Helm values and roll the audit pods on every `pulumi up`.
    import subprocess
    import sys
    from pathlib import Path

    program = (
        "from components.falco.upstream_changes import rules_files; "
        "from components.falco.rules import hostile_sources_file, source_match; "
        "files = rules_files(('alice',), ('bob',), True); "
        "print(''.join(files.values()) + hostile_sources_file(source_match(('10.0.0.0/20', '192.0.2.1'), 'x')))"
    )
    root = Path(__file__).resolve().parents[1]
    texts = {
        subprocess.run(
            [sys.executable, "-c", program], cwd=root, capture_output=True, text=True, check=True,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
        ).stdout
        for seed in ("1", "2", "3")
    }  # fmt: skip
    assert len(texts) == 1
