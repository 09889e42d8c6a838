"""The lab's changes to the upstream rules (components/falco/upstream_changes.py) under the evaluator, without the
upstream file.

The upstream k8saudit rules may not be committed, so these tests load a stand-in written here, in
the project's own words, that defines exactly the upstream names the lab file overrides or uses,
with the meaning the lab relies on where it relies on one (the replay test checks the real pair
against a real Falco when the upstream file is available); the rules the lab only switches off or
tags stand in as rules that match nothing. A test fails when the lab file starts to use another
upstream name, so the stand-in cannot drift out of step silently. The lab's own rules file loads
between the two, as in Falco's rules.d.
"""

from __future__ import annotations

import json
from functools import cache

import pytest
from support.falco_engine import FalcoEngine, Settings

from components.falco.rules import DETECTION_FILE_NAME
from components.falco.upstream_changes import (
    ADMIN_RULE,
    DISALLOWED_USER_RULE,
    RULES_FILE_NAME,
    UPSTREAM_CHANGES,
    references,
    rules_files,
)

ADMINS = ("arn:aws:iam::111122223333:role/WorkshopAdmin", "arn:aws:iam::111122223333:user/alice")
ADMIN_SESSION = "arn:aws:sts::111122223333:assumed-role/WorkshopAdmin/session-1"

MEANINGFUL = """\
# A stand-in for the upstream k8saudit rules, written for these tests: the names the lab file needs.
- macro: k8s_audit_never_true
  condition: (ka.auditid = "")
- macro: kevt
  condition: (ka.stage in (ResponseComplete))
- macro: non_system_user
  condition: (not ka.user.name startswith "system:")
- list: full_admin_k8s_users
  items: [kubernetes-admin]
- macro: allowed_full_admin_users
  condition: (not k8s_audit_never_true)
- list: stand_in_allowed_users
  items: [kubernetes-admin]
- rule: Disallowed K8s User
  desc: a request by a user outside the allowed ones
  condition: kevt and non_system_user and not ka.user.name in (stand_in_allowed_users)
  output: user not allowed (user=%ka.user.name verb=%ka.verb)
  priority: WARNING
  source: k8s_audit
- rule: Full K8s Administrative Access
  desc: a request by an administrator
  condition: kevt and non_system_user and ka.user.name in (full_admin_k8s_users) and not allowed_full_admin_users
  output: full admin at work (user=%ka.user.name verb=%ka.verb uri=%ka.uri)
  priority: WARNING
  source: k8s_audit
- rule: Pod Created in Kube Namespace
  desc: a pod created in kube-system
  condition: kevt and ka.target.resource = pods and ka.verb = create and ka.target.namespace = kube-system
  output: pod in kube-system (user=%ka.user.name pod=%ka.target.name)
  priority: WARNING
  source: k8s_audit
"""
_MEANINGFUL_RULES = {ADMIN_RULE, DISALLOWED_USER_RULE, "Pod Created in Kube Namespace"}
# Rules the lab only switches off or tags: their conditions do not matter here, so they match nothing.
STAND_IN = MEANINGFUL + "".join(
    f"- rule: {change.rule}\n  desc: stand-in\n  condition: k8s_audit_never_true\n  output: stand-in\n"
    "  priority: WARNING\n  source: k8s_audit\n"
    for change in UPSTREAM_CHANGES
    if change.rule not in _MEANINGFUL_RULES
)


def request(user: str, stage: str = "ResponseComplete") -> str:
    return json.dumps(
        {
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": "Metadata",
            "auditID": "1f0c7a52-3c59-4d38-9b3c-0d5c3a1e2f40",
            "stage": stage,
            "requestURI": "/api/v1/namespaces/kube-system/configmaps/aws-auth",
            "verb": "get",
            "user": {"username": user, "groups": ["system:authenticated"]},
            "objectRef": {"resource": "configmaps", "namespace": "kube-system", "name": "aws-auth"},
            "responseStatus": {"metadata": {}, "code": 200},
            "stageTimestamp": "2026-12-07T04:02:09.273041Z",
        }
    )


@cache
def lab_engine(identities: tuple[str, ...] = ADMINS) -> FalcoEngine:
    engine = FalcoEngine(Settings(rule_matching="all", json_output=True))
    engine.load_rules(STAND_IN, "k8s_audit_rules.yaml")
    for name, text in rules_files(identities, admin_access_alerts=True).items():
        engine.load_rules(text, f"rules.d/{name}")
    engine.check_plugin_requirements()
    return engine


def fired(user: str, identities: tuple[str, ...] = ADMINS, stage: str = "ResponseComplete") -> list[str]:
    return [alert.rule for alert in lab_engine(identities).process(request(user, stage))]


def test_the_stand_in_defines_exactly_the_upstream_names_the_lab_file_relies_on() -> None:
    files = rules_files(ADMINS, admin_access_alerts=True)
    refs, lab = references(files[RULES_FILE_NAME]), references(files[DETECTION_FILE_NAME])
    needed = (refs.words - refs.defined["macro"] - refs.defined["list"]) | refs.overridden["rule"]
    needed |= refs.overridden["macro"] | refs.overridden["list"]
    needed -= set().union(*lab.defined.values())  # the lab's own names come from its own file
    stand_in = references(STAND_IN)
    defined = set().union(*stand_in.defined.values()) - {"stand_in_allowed_users"}
    assert defined == needed


def test_the_lab_files_load_on_the_stand_in_without_warnings() -> None:
    engine = lab_engine()
    assert engine.warnings == []
    enabled = [rule.name for rule in engine.rules if rule.enabled and rule.name in _MEANINGFUL_RULES]
    assert enabled == [DISALLOWED_USER_RULE, ADMIN_RULE, "Pod Created in Kube Namespace"]
    switched_off = {change.rule for change in UPSTREAM_CHANGES if not change.enabled}
    assert {rule.name for rule in engine.rules if not rule.enabled} == switched_off


@pytest.mark.parametrize(
    ("user", "rules"),
    [
        (ADMIN_SESSION, [ADMIN_RULE]),
        ("arn:aws:sts::111122223333:assumed-role/WorkshopAdmin/alice@example.com", [ADMIN_RULE]),
        ("arn:aws:iam::111122223333:user/alice", [ADMIN_RULE]),
        ("kubernetes-admin", [ADMIN_RULE]),  # upstream's own admin list still counts
        ("arn:aws:sts::111122223333:assumed-role/WorkshopAdminReadOnly/s", [DISALLOWED_USER_RULE]),
        ("arn:aws:sts::444455556666:assumed-role/WorkshopAdmin/s", [DISALLOWED_USER_RULE]),
        ("arn:aws:iam::111122223333:user/alice2", [DISALLOWED_USER_RULE]),
        ("eks:addon-manager", []),
        ("eks:some-future-component", []),
        ("system:node:ip-10-0-1-23.ec2.internal", []),
    ],
)
def test_which_identity_raises_which_lab_alert(user: str, rules: list[str]) -> None:
    assert fired(user) == rules


def test_only_completed_requests_count() -> None:
    assert fired(ADMIN_SESSION, stage="ResponseStarted") == []


def test_without_admin_identities_nobody_is_a_full_admin_but_the_upstream_names() -> None:
    assert fired(ADMIN_SESSION, identities=()) == [DISALLOWED_USER_RULE]
    assert fired("kubernetes-admin", identities=()) == [ADMIN_RULE]


def test_the_admin_alert_names_the_identity_as_eks_writes_it() -> None:
    (alert,) = lab_engine().process(request(ADMIN_SESSION))
    assert alert.output == (
        f"04:02:09.273041000: Warning full admin at work (user={ADMIN_SESSION} verb=get "
        "uri=/api/v1/namespaces/kube-system/configmaps/aws-auth)"
    )
    assert alert.output_fields is not None and alert.output_fields["ka.user.name"] == ADMIN_SESSION
