"""The lab's k8saudit rules: overrides checked against the pinned upstream names, and against real Falco alerts.

The recordings in ../shared/corpus/real-falco/ are a real Falco 0.44.1 with the upstream rules and
the lab's admin rule, fed the audit log of the lab's own examples (see their README). Tests that read
them skip when ../shared is absent.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.audit_events import shared_corpus_file
from support.falco_engine import FalcoEngine, Settings

import components.falco.k8saudit_upstream as upstream
from components.falco.rules import DETECTION_FILE_NAME, detection_rules
from components.falco.upstream_changes import (
    ADMIN_RULE,
    ALLOWED_USERS_MACRO,
    DISALLOWED_USER_RULE,
    IDENTITY_MACRO,
    LAB_RULE_CHANGES,
    RULES_FILE_NAME,
    UPSTREAM_CHANGES,
    admin_matcher,
    lab_rules,
    references,
    rules_files,
    unknown_references,
)
from workshop.alerts import parse_line

# The identities the recordings were made with: admin_access_rules([WorkshopAdmin role, user alice]).
RECORDED_ADMINS = ("arn:aws:iam::111122223333:role/WorkshopAdmin", "alice")
RECORDED_ADMIN_USER = "arn:aws:sts::111122223333:assumed-role/WorkshopAdmin/session-1"
OTHER_IAM_USER = "arn:aws:sts::111122223333:assumed-role/ContractorRole/bob@example.com"
EXAMPLE_RULES = {
    "pod-in-kube-system": "Pod Created in Kube Namespace",
    "configmap-aws-credentials": "Create/Modify Configmap With Private Credentials",
    "admin-access": ADMIN_RULE,
}


def _items(rules_text: str) -> dict[str, dict[str, Any]]:
    return {
        item.get("rule") or item.get("macro") or item["list"]: item
        for item in yaml.safe_load(rules_text)
        if "required_plugin_versions" not in item
    }


def _detection_items(identities: tuple[str, ...], allowed: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
    return _items(rules_files(identities, allowed)[DETECTION_FILE_NAME])


SWITCHED_OFF = frozenset(change.rule for change in UPSTREAM_CHANGES if not change.enabled)


# --- the generated file, as data ------------------------------------------------------------------


def test_full_admin_access_is_switched_on_for_every_session_of_the_admin_roles() -> None:
    items = _items(lab_rules())
    assert items["allowed_full_admin_users"] == {
        "macro": "allowed_full_admin_users",
        "condition": "(k8s_audit_never_true)",
        "override": {"condition": "replace"},
    }
    rule = items[ADMIN_RULE]
    assert rule["override"] == {"condition": "replace", "tags": "append"}
    # Upstream's condition with the lab's identities added to full_admin_k8s_users.
    assert rule["condition"] == (
        "kevt and non_system_user and (ka.user.name in (full_admin_k8s_users) or eks_lab_admin_identities)"
        " and not allowed_full_admin_users"
    )
    lab = _detection_items(("arn:aws:iam::123456789012:role/ops/Admin", "arn:aws:iam::123456789012:user/alice"))
    assert lab[IDENTITY_MACRO]["condition"] == (
        '(ka.user.name startswith "arn:aws:sts::123456789012:assumed-role/Admin/"'
        ' or ka.user.name = "arn:aws:iam::123456789012:user/alice")'
    )


def test_full_admin_access_stays_off_unless_asked_for() -> None:
    items = _items(lab_rules(admin_access_alerts=False))
    assert "allowed_full_admin_users" not in items and ADMIN_RULE not in items
    # The admins are still spared by "Disallowed K8s User".
    assert items[DISALLOWED_USER_RULE]["condition"] == f"and not {ALLOWED_USERS_MACRO}"


def test_disallowed_k8s_user_allows_the_admins_and_eks_users_by_appending_to_upstream() -> None:
    items = _items(lab_rules())
    # Appended, not replaced: upstream's own lists (allowed_k8s_users, eks_allowed_k8s_users) and
    # non_system_user (nodes, service accounts) still apply.
    assert items[DISALLOWED_USER_RULE] == {
        "rule": DISALLOWED_USER_RULE,
        "condition": f"and not {ALLOWED_USERS_MACRO}",
        "tags": ["T1078"],
        "override": {"condition": "append", "tags": "append"},
    }
    lab = _detection_items(RECORDED_ADMINS)
    assert lab[ALLOWED_USERS_MACRO]["condition"] == (
        f"(eks_lab_eks_user or {IDENTITY_MACRO} or eks_lab_allowed_identities)"
    )
    assert "override" not in lab[ALLOWED_USERS_MACRO] and "override" not in lab[IDENTITY_MACRO]


def test_rules_without_identities_match_no_user() -> None:
    items = _detection_items(())
    assert items[IDENTITY_MACRO]["condition"] == "eks_lab_never"
    assert items["eks_lab_allowed_identities"]["condition"] == "eks_lab_never"
    assert unknown_references(lab_rules()) == []


def test_admin_matcher_kinds() -> None:
    assert admin_matcher("arn:aws:iam::123456789012:user/ops/alice").condition() == (
        'ka.user.name = "arn:aws:iam::123456789012:user/ops/alice"'
    )
    assert admin_matcher("kubernetes-admin").prefix is False
    role = admin_matcher("arn:aws-cn:iam::123456789012:role/Admin")
    assert role.value == "arn:aws-cn:sts::123456789012:assumed-role/Admin/" and role.prefix


# --- overrides against the pinned upstream names --------------------------------------------------


@pytest.mark.parametrize(
    "identities",
    [(), RECORDED_ADMINS, ("arn:aws-us-gov:iam::123456789012:role/a/b/Admin", "arn:aws:iam::123456789012:user/x")],
)
def test_every_name_the_generated_rules_touch_exists_upstream_or_in_the_file(identities: tuple[str, ...]) -> None:
    files = rules_files(identities, admin_access_alerts=True)
    text = files[RULES_FILE_NAME]
    assert unknown_references(text, files[DETECTION_FILE_NAME]) == []
    refs = references(text)
    changed = {change.rule for change in (*UPSTREAM_CHANGES, *LAB_RULE_CHANGES)}
    assert refs.overridden == {
        "rule": frozenset({ADMIN_RULE, DISALLOWED_USER_RULE} | changed),
        "macro": frozenset({"allowed_full_admin_users"}),
        "list": frozenset(),
    }
    assert refs.defined == {"rule": frozenset(), "macro": frozenset(), "list": frozenset()}
    # What the file relies on upstream, so a rename of any of these is caught ...
    assert refs.words - refs.defined["macro"] - references(detection_rules()).defined["macro"] == {
        "kevt", "non_system_user", "full_admin_k8s_users", "allowed_full_admin_users", "k8s_audit_never_true",
    }  # fmt: skip
    # ... and what it uses of the lab's own file, which loads before it.
    assert refs.words - upstream.MACROS - upstream.LISTS == {
        IDENTITY_MACRO, ALLOWED_USERS_MACRO, "eks_lab_trusted_creator", "eks_lab_own_component",
        "eks_lab_controller", "eks_lab_pod_create",
    }  # fmt: skip
    assert refs.fields == {"ka.user.name"}
    # Only lab rules and upstream rules are overridden: nothing the lab's own file lacks.
    assert refs.overridden["rule"] - upstream.RULES == {change.rule for change in LAB_RULE_CHANGES}


@pytest.mark.parametrize(
    ("edit", "reported"),
    [
        (("non_system_user", "non_system_users"), "macro or list 'non_system_users'"),
        (("in (full_admin_k8s_users)", "in (admin_k8s_users)"), "macro or list 'admin_k8s_users'"),
        (("rule: Disallowed K8s User", "rule: Disallowed K8s Users"), "rule 'Disallowed K8s Users'"),
        (("macro: allowed_full_admin_users", "macro: allowed_full_admin_user"), "macro 'allowed_full_admin_user'"),
        (("ka.user.name in", "ka.username in"), "field 'ka.username'"),
        (
            ("- rule: Disallowed K8s User", "- macro: kevt\n  condition: ka.verb = get\n- rule: Disallowed K8s User"),
            "macro 'kevt' redefined without an override",
        ),
        (
            ("and not eks_lab_trusted_creator", "and not eks_lab_trusted_creators"),
            "macro or list 'eks_lab_trusted_creators'",
        ),
    ],
)
def test_an_override_that_no_longer_fits_upstream_is_reported(edit: tuple[str, str], reported: str) -> None:
    text = lab_rules().replace(*edit)
    assert reported in unknown_references(text)


def test_a_renamed_upstream_macro_stops_the_rules_before_any_pod_starts(monkeypatch) -> None:
    # As if the pinned upstream file had renamed non_system_user: generating the rules fails.
    monkeypatch.setattr(upstream, "MACROS", upstream.MACROS - {"non_system_user"})
    with pytest.raises(RuntimeError, match="non_system_user"):
        lab_rules()


def test_the_upstream_names_are_the_pinned_version_s_facts() -> None:
    # Spot checks of the pinned file: its rule, list and macro the lab depends on, and its size.
    assert upstream.VERSION == "0.16.1"
    assert (len(upstream.RULES), len(upstream.MACROS), len(upstream.LISTS)) == (48, 44, 18)
    assert {"allowed_k8s_users", "eks_allowed_k8s_users", "full_admin_k8s_users"} <= upstream.LISTS
    assert {"ka.user.name", "ka.req.configmap.obj", "ka.req.pod.containers.image"} <= upstream.FIELDS


# --- against the real Falco's alerts ---------------------------------------------------------------


@cache
def _recorded_alerts(matching: str) -> tuple[dict[str, Any], ...]:
    path = shared_corpus_file(f"real-falco/falco-0.44.1-alerts-rule_matching_{matching}.jsonl")
    return tuple(json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


@cache
def _probe(macro: str, identities: tuple[str, ...]) -> FalcoEngine:
    """The lab's own rules file and one rule that is just `macro`, under the evaluator."""
    engine = FalcoEngine(Settings(rule_matching="all"))
    engine.load_rules(rules_files(identities)[DETECTION_FILE_NAME], DETECTION_FILE_NAME)
    engine.load_rules(
        f"- rule: probe\n  desc: probe\n  condition: {macro}\n  output: probe\n  priority: WARNING\n"
        "  source: k8s_audit\n",
        "probe.yaml",
    )
    return engine


def _user_matches(macro: str, user: str, identities: tuple[str, ...]) -> bool:
    """Whether the lab's identity macro `macro` holds for a request by `user` (a name as the alerts show it)."""
    event = {
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": "0c9b7a52-3c59-4d38-9b3c-0d5c3a1e2f40",
        "stage": "ResponseComplete", "requestURI": "/api", "verb": "get", "user": {"username": user},
        "stageTimestamp": "2026-12-01T14:40:00.000000Z",
    }  # fmt: skip
    return bool(_probe(macro, identities).process(json.dumps(event)))


def _alerts_under_the_shipped_rules(identities: tuple[str, ...]) -> list[dict[str, Any]]:
    """The rule_matching_all recording as the lab's rules change it: the rules the lab switches off write
    nothing, and "Disallowed K8s User" only fires where upstream's condition held (the recorded alerts) and
    the appended `not` does not hold. (The lab's own rules add alerts, which these tests do not look for.)"""
    return [
        alert
        for alert in _recorded_alerts("all")
        if alert["rule"] not in SWITCHED_OFF
        and (
            alert["rule"] != DISALLOWED_USER_RULE
            or not _user_matches(ALLOWED_USERS_MACRO, alert["output_fields"]["ka.user.name"], identities)
        )
    ]


def test_every_recorded_rule_and_field_exists_in_the_pinned_upstream_rules() -> None:
    for matching in ("first", "all"):
        for alert in _recorded_alerts(matching):
            assert alert["rule"] in upstream.RULES, alert["rule"]
            assert alert["source"] == "k8s_audit"
            assert set(alert["output_fields"]) - {"evt.time"} <= upstream.FIELDS, alert["rule"]


def test_with_first_match_only_disallowed_user_fires_for_the_workshop_identity() -> None:
    # Why the lab ships rule_matching "all": under "first" none of the examples' rules shows.
    rules = {
        a["rule"] for a in _recorded_alerts("first") if a["output_fields"].get("ka.user.name") == RECORDED_ADMIN_USER
    }
    assert rules == {DISALLOWED_USER_RULE}
    promised = {a["rule"] for a in _recorded_alerts("all")} & set(EXAMPLE_RULES.values())
    assert promised == set(EXAMPLE_RULES.values())


def test_every_example_rule_fires_for_the_admin_and_disallowed_user_no_longer_does() -> None:
    shipped = _alerts_under_the_shipped_rules(RECORDED_ADMINS)
    by_admin = [a for a in shipped if a["output_fields"].get("ka.user.name") == RECORDED_ADMIN_USER]
    fired = {a["rule"] for a in by_admin}
    assert set(EXAMPLE_RULES.values()) <= fired
    assert DISALLOWED_USER_RULE not in fired
    recorded_disallowed = [a for a in _recorded_alerts("all") if a["rule"] == DISALLOWED_USER_RULE]
    switched_off = [a for a in _recorded_alerts("all") if a["rule"] in SWITCHED_OFF]
    assert len(recorded_disallowed) == 43
    assert len(_recorded_alerts("all")) - len(shipped) == 43 + len(switched_off)


def test_the_admin_macro_matches_exactly_the_users_the_real_falco_reported_as_full_admins() -> None:
    admin_alerts = [a for a in _recorded_alerts("all") if a["rule"] == ADMIN_RULE]
    assert len(admin_alerts) == 43
    for alert in admin_alerts:
        assert _user_matches(IDENTITY_MACRO, alert["output_fields"]["ka.user.name"], RECORDED_ADMINS)
    # The same requests were "Disallowed K8s User" upstream: one identity, both rules.
    disallowed = {a["output_fields"]["evt.time"] for a in _recorded_alerts("all") if a["rule"] == DISALLOWED_USER_RULE}
    assert {a["output_fields"]["evt.time"] for a in admin_alerts} == disallowed


def test_another_iam_identity_is_still_reported_and_eks_components_are_not() -> None:
    assert not _user_matches(ALLOWED_USERS_MACRO, OTHER_IAM_USER, RECORDED_ADMINS)
    # Another role of the same account, and a role whose name starts like the admin role's.
    for other in (
        "arn:aws:sts::111122223333:assumed-role/WorkshopAdminRO/x",
        "arn:aws:sts::444455556666:assumed-role/WorkshopAdmin/x",
    ):
        assert not _user_matches(ALLOWED_USERS_MACRO, other, RECORDED_ADMINS)
    for eks_user in ("eks:node-manager", "eks:coredns-autoscaler", "eks:kube-proxy-windows"):
        assert _user_matches(ALLOWED_USERS_MACRO, eks_user, RECORDED_ADMINS)
    # Under the shipped rules a recorded request by another IAM identity would still alert.
    recorded = next(a for a in _recorded_alerts("all") if a["rule"] == DISALLOWED_USER_RULE)
    assert not _user_matches(ALLOWED_USERS_MACRO, recorded["output_fields"]["ka.user.name"], ())


WORKSHOP_GUIDE = Path(__file__).resolve().parents[1] / "docs" / "workshop.md"
_SHOWN_ALERT = re.compile(r"^(\S+Z)  (\w+)\s+(.+?)  \[k8s_audit [^\]]+\]$")


def test_the_workshop_guide_shows_what_the_real_falco_printed_under_the_shipped_settings() -> None:
    shipped = [parse_line(json.dumps(alert)) for alert in _alerts_under_the_shipped_rules(RECORDED_ADMINS)]
    printed = {(a.time, a.priority, a.rule, a.message) for a in shipped if a is not None}
    lines = WORKSHOP_GUIDE.read_text(encoding="utf-8").splitlines()
    shown = [
        (*match.groups(), message.strip())
        for header, message in zip(lines, lines[1:], strict=False)
        if (match := _SHOWN_ALERT.match(header))
    ]
    for entry in shown:
        assert entry in printed, f"the workshop guide shows an alert the shipped settings would not print: {entry}"
    assert set(EXAMPLE_RULES.values()) <= {rule for _, _, rule, _ in shown}
    # "The recorded run printed 8 such lines for this example": the admin-access window's admin alerts.
    (count,) = re.findall(r"The recorded run printed (\d+) such lines", WORKSHOP_GUIDE.read_text(encoding="utf-8"))
    window = [
        a
        for a in shipped
        if a and a.rule == ADMIN_RULE and "2026-12-01T14:40:00.40" <= a.time <= "2026-12-01T14:40:02.3"
    ]
    assert int(count) == len(window)
