"""Upgrades never replace: every URN a recorded release created is taken over by today's code.

releases/<version>/urns.json records, per scenario (tools/scenarios.py), the engine URNs of what a release
registered and the inputs of its stateful resources whose change makes the provider replace them. Today's code
builds the same scenarios under mocks; their registrations run against the old URNs as the engine runs them
(tools/urns.py, after pulumi/pulumi's step generator). A recorded URN that nothing takes over, through its URN or
an alias, would be deleted and created anew by `pulumi up`; so would a stateful resource whose name, namespace or
other replace-triggering input changed. Each is a failure here, not in a user's `pulumi up`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pulumi_mocks import engine_urn, run_program

from tools import release, scenarios
from tools.upgrade import scenario_problems, upgrade_report
from tools.urns import Alias, Registered, chain_urns, create_urn, plan_upgrade

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = release.load_manifests()
CURRENT = release.version_of(ROOT)
STACK, PROJECT = scenarios.STACK, scenarios.PROJECT


@pytest.fixture(scope="module")
def today() -> dict[str, scenarios.Built]:
    """Today's scenarios, built once for every recorded release."""
    return {scenario.name: scenarios.build(scenario) for scenario in scenarios.SCENARIOS}


# --- the recorded releases ---------------------------------------------------------------------------------


def test_every_release_before_this_one_is_recorded() -> None:
    versions = [m["version"] for m in MANIFESTS]
    assert {"0.2.0", "0.3.0"} <= set(versions)
    assert all(tuple(map(int, v.split("."))) <= tuple(map(int, CURRENT.split("."))) for v in versions)
    for manifest in MANIFESTS:
        assert len(manifest["commit"]) == 40, manifest["version"]
        assert manifest["builtWith"]["pulumi"], manifest["version"]  # the pins it was built and tested with
        assert (manifest["stack"], manifest["project"]) == (STACK, PROJECT)


def test_the_changelog_has_this_version_and_every_recorded_release() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    headings = [line.split()[1] for line in changelog.splitlines() if line.startswith("## ")]
    assert headings[0] == CURRENT
    assert {m["version"] for m in MANIFESTS} <= set(headings)
    current = changelog.split(f"## {CURRENT}", 1)[1].split("\n## ", 1)[0]
    for section in ("### What changed", "### What an upgrade does", "### What a user must do"):
        assert section in current, section
    pins = release.pins_of(ROOT)
    assert f"pulumi {pins['pulumi']}" in " ".join(current.split())  # the versions it was built against


@pytest.mark.parametrize(
    ("version", "scenario"),
    [(m["version"], name) for m in MANIFESTS for name in sorted(m["scenarios"])],
)
def test_upgrading_a_recorded_release_replaces_nothing(
    version: str, scenario: str, today: dict[str, scenarios.Built]
) -> None:
    old = next(m for m in MANIFESTS if m["version"] == version)
    problems = upgrade_report({"scenarios": {scenario: old["scenarios"][scenario]}}, today)
    assert problems == [], "\n".join(problems)


def test_the_lab_of_0_2_is_taken_over_through_aliases(today: dict[str, scenarios.Built]) -> None:
    """0.3 moved Falco and the forwarder under FalcoDetection: their 19 URNs of 0.2 are claimed by aliases."""
    old = next(m for m in MANIFESTS if m["version"] == "0.2.0")["scenarios"]["lab-stack"]
    old_urns = {entry["urn"] for entry in old["resources"]}
    now = {entry["urn"] for entry in release.records(today["lab-stack"])}
    moved = old_urns - now
    assert len(moved) == 19
    assert all("FalcoEksLab$falco-eks:index:Falco" in urn or "FalcoEksLab$falco-eks:index:AuditForwarder" in urn
               for urn in moved)
    assert scenario_problems(old, today["lab-stack"]) == []


# --- the check can fail ------------------------------------------------------------------------------------


def _lab_manifest(today: dict[str, scenarios.Built]) -> dict[str, Any]:
    return {"resources": release.records(today["lab-stack"])}


def test_a_resource_that_moved_without_an_alias_is_reported(today: dict[str, scenarios.Built]) -> None:
    old = _lab_manifest(today)
    helm = next(e for e in old["resources"] if e["type"] == "kubernetes:helm.sh/v3:Release")
    # As if the release had lived directly under the lab before.
    moved = "urn:pulumi:test::falco-eks-lab::falco-eks:index:FalcoEksLab$kubernetes:helm.sh/v3:Release::" + helm["name"]
    helm["urn"] = moved
    assert scenario_problems(old, today["lab-stack"]) == [f"replaced (no resource or alias takes it over): {moved}"]


def test_a_renamed_resource_is_reported(today: dict[str, scenarios.Built]) -> None:
    old = _lab_manifest(today)
    group = next(e for e in old["resources"] if e["type"] == "aws:cloudwatch/logGroup:LogGroup")
    group["urn"] = group["urn"].replace("control-plane-logs", "logs")
    expected = f"replaced (no resource or alias takes it over): {group['urn']}"
    assert scenario_problems(old, today["lab-stack"]) == [expected]


def test_a_changed_replace_trigger_of_a_stateful_resource_is_reported(today: dict[str, scenarios.Built]) -> None:
    old = _lab_manifest(today)
    for entry in old["resources"]:
        if entry["type"] == "kubernetes:helm.sh/v3:Release" and entry["replaceInputs"]["name"] == "falco":
            entry["replaceInputs"]["namespace"] = "security"
            urn = entry["urn"]
    assert scenario_problems(old, today["lab-stack"]) == [f"replaced (namespace 'security' -> 'falco'): {urn}"]


def test_every_stateful_resource_of_the_lab_records_its_replace_triggers(today: dict[str, scenarios.Built]) -> None:
    entries = release.records(today["lab-stack"])
    stateful = {e["type"] for e in entries if "replaceInputs" in e}
    assert {
        "eks:index:Cluster",
        "aws:cloudwatch/logGroup:LogGroup",
        "aws:eks/nodeGroup:NodeGroup",
        "aws:ec2/launchTemplate:LaunchTemplate",
        "aws:iam/role:Role",
        "kubernetes:helm.sh/v3:Release",
        "kubernetes:core/v1:Namespace",
    } <= stateful
    cluster = next(e for e in entries if e["type"] == "eks:index:Cluster")
    assert cluster["replaceInputs"] == {"name": scenarios.LAB_CLUSTER, "createOidcProvider": True}
    releases = {e["replaceInputs"]["name"]: e["replaceInputs"]["namespace"] for e in entries
                if e["type"] == "kubernetes:helm.sh/v3:Release"}
    assert releases == {"falco": "falco", "falco-k8saudit": "falco"}


def test_the_kinesis_stream_records_its_replace_triggers(today: dict[str, scenarios.Built]) -> None:
    entries = release.records(today["falco-detection-kinesis"])
    assert [e["replaceInputs"] for e in entries if e["type"] == "aws:kinesis/stream:Stream"] == [{"name": None}]


# --- URNs and aliases as the engine forms them --------------------------------------------------------------


def test_mock_urns_carry_the_whole_chain_of_parent_types(today: dict[str, scenarios.Built]) -> None:
    """Computed from the parent chain alone, each URN is the one the mocks gave (the engine's form)."""
    resources = today["lab-stack"].recorded.resources
    parents = {r.urn: r.parent for r in resources}
    urns = chain_urns(STACK, PROJECT, parents, {r.urn: (r.type, r.name) for r in resources})
    assert all(urns[r.urn] == r.urn for r in resources)
    release_urn = next(r.urn for r in resources if r.name == "falco-eks-lab-falco-syscall")
    assert release_urn == (
        "urn:pulumi:test::falco-eks-lab::falco-eks:index:FalcoEksLab$falco-eks:index:FalcoDetection"
        "$falco-eks:index:Falco$kubernetes:helm.sh/v3:Release::falco-eks-lab-falco-syscall"
    )


def test_the_mocks_form_urns_as_the_engine() -> None:
    stack_urn = "urn:pulumi:test::p::pulumi:pulumi:Stack::p-test"
    top = engine_urn("test", "p", stack_urn, "a:index:A", "a")
    assert top == "urn:pulumi:test::p::a:index:A::a"
    child = engine_urn("test", "p", top, "b:index:B", "b")
    assert engine_urn("test", "p", child, "c:index:C", "c") == "urn:pulumi:test::p::a:index:A$b:index:B$c:index:C::c"


def test_an_alias_urn_is_formed_under_its_parent_as_create_urn_does() -> None:
    parent = "urn:pulumi:s::p::a:index:A$b:index:B::b"
    assert create_urn("x", "c:index:C", parent, "p", "s") == "urn:pulumi:s::p::a:index:A$b:index:B$c:index:C::x"
    assert create_urn("x", "c:index:C", "", "p", "s") == "urn:pulumi:s::p::c:index:C::x"


def test_children_follow_a_parent_that_was_found_through_an_alias() -> None:
    """A parent matched through an alias makes its children try the same place under its old URN, with the
    parent's old name at the start of theirs (inheritedChildAlias)."""
    old = [
        "urn:pulumi:s::p::lab:index:Lab::lab",
        "urn:pulumi:s::p::lab:index:Lab$lab:index:Falco::old-falco",
        "urn:pulumi:s::p::lab:index:Lab$lab:index:Falco$k8s:index:Release::old-falco-syscall",
    ]
    lab = "urn:pulumi:s::p::lab:index:Lab::lab"
    detection = "urn:pulumi:s::p::lab:index:Lab$lab:index:Detection::lab"
    falco = "urn:pulumi:s::p::lab:index:Lab$lab:index:Detection$lab:index:Falco::new-falco"
    plan = plan_upgrade(
        "s",
        "p",
        old,
        [
            Registered("lab:index:Lab", "lab", ""),
            Registered("lab:index:Detection", "lab", lab),
            Registered("lab:index:Falco", "new-falco", detection, (Alias(name="old-falco", parent_urn=lab),)),
            Registered("k8s:index:Release", "new-falco-syscall", falco),
        ],
    )
    assert plan.deleted == []
    assert plan.claimed[old[2]] == f"{falco[: falco.rindex('::')]}$k8s:index:Release::new-falco-syscall"


def test_without_the_alias_the_moved_subtree_is_replaced() -> None:
    old = ["urn:pulumi:s::p::lab:index:Lab::lab", "urn:pulumi:s::p::lab:index:Lab$lab:index:Falco::falco"]
    lab = "urn:pulumi:s::p::lab:index:Lab::lab"
    plan = plan_upgrade(
        "s",
        "p",
        old,
        [
            Registered("lab:index:Lab", "lab", ""),
            Registered("lab:index:Detection", "lab", lab),
            Registered("lab:index:Falco", "falco", "urn:pulumi:s::p::lab:index:Lab$lab:index:Detection::lab"),
        ],
    )
    assert plan.deleted == [old[1]]


def test_one_old_urn_cannot_be_claimed_twice() -> None:
    old = ["urn:pulumi:s::p::t:index:T::a"]
    plan = plan_upgrade(
        "s",
        "p",
        old,
        [Registered("t:index:T", "b", "", (Alias(name="a"),)), Registered("t:index:T", "c", "", (Alias(name="a"),))],
    )
    assert plan.claimed == {old[0]: "urn:pulumi:s::p::t:index:T::b"} and len(plan.conflicts) == 1


# --- the manifest command ---------------------------------------------------------------------------------


def test_one_command_writes_this_releases_manifest(tmp_path: Path) -> None:
    out = tmp_path / "urns.json"
    assert release.main(["urns", "--out", str(out)]) == 0
    written = json.loads(out.read_text())
    assert written["version"] == CURRENT
    assert set(written["scenarios"]) == {s.name for s in scenarios.SCENARIOS}
    assert written["builtWith"] == release.pins_of(ROOT)
    lab = written["scenarios"]["lab-stack"]["resources"]
    assert [e["urn"] for e in lab] == sorted(e["urn"] for e in lab)
    # Every entry's parent is another entry of the scenario (or the stack).
    urns = {e["urn"] for e in lab}
    assert all(e["parent"] in urns or e["parent"] == "" for e in lab)


def test_a_scenario_whose_component_a_release_lacks_is_skipped() -> None:
    def missing(_source: Path) -> None:
        scenarios._component("NoSuchComponent")

    with pytest.raises(scenarios.MissingComponentError):
        scenarios.build(scenarios.Scenario("x", "", missing))
    assert run_program(lambda: None).resources == []
