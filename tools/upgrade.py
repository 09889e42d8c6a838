"""What `pulumi up` with today's code would do to the resources a recorded release created.

For each scenario of an old manifest, today's code builds the same scenario under mocks; its registrations
(engine URNs computed from the chain of parent types, the aliases each one declares) run against the old URNs
as the engine runs them (tools/urns.py). A problem is an old URN that nothing takes over (the engine deletes it
and creates its successor: a replacement), an alias the engine would refuse, or a stateful resource taken over
with another value of an input that replaces it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tools import scenarios
from tools.release import records
from tools.urns import Alias, Registered, plan_upgrade


def _registered(built: scenarios.Built) -> tuple[list[Registered], list[dict[str, Any]]]:
    """Today's registrations in the engine's form, with the manifest entries of the same resources."""
    entries = records(built)
    engine = {reg.urn: entry["urn"] for reg, entry in zip(built.recorded.resources, entries, strict=True)}
    registered = []
    for reg, entry in zip(built.recorded.resources, entries, strict=True):
        aliases = tuple(
            Alias(
                urn=a.urn,
                name=a.name,
                type=a.type,
                stack=a.stack,
                project=a.project,
                parent_urn=engine.get(a.parent_urn, a.parent_urn),
                no_parent=a.no_parent,
            )
            for a in reg.aliases
        )
        registered.append(Registered(type=reg.type, name=reg.name, parent=entry["parent"], aliases=aliases))
    return registered, entries


def scenario_problems(old: Mapping[str, Any], built: scenarios.Built) -> list[str]:
    """Problems upgrading one scenario of an old release to today's code."""
    registered, entries = _registered(built)
    old_resources = {entry["urn"]: entry for entry in old["resources"]}
    plan = plan_upgrade(scenarios.STACK, scenarios.PROJECT, old_resources, registered)
    problems = [f"replaced (no resource or alias takes it over): {urn}" for urn in plan.deleted]
    problems += [f"alias refused: {conflict}" for conflict in plan.conflicts]
    now = {entry["urn"]: entry for entry in entries}
    for old_urn, new_urn in plan.claimed.items():
        before = old_resources[old_urn].get("replaceInputs")
        after = now[new_urn].get("replaceInputs")
        if before is None:
            continue
        for path, value in before.items():
            if after is None or after.get(path) != value:
                changed = None if after is None else after.get(path)
                problems.append(f"replaced ({path} {value!r} -> {changed!r}): {new_urn}")
    return problems


def upgrade_report(old_manifest: Mapping[str, Any], today: dict[str, scenarios.Built] | None = None) -> list[str]:
    """Every problem upgrading the recorded release to today's code, scenario by scenario (`today`: scenarios
    built already, by name; the others are built here and added)."""
    today = {} if today is None else today
    lines = []
    for name, old in sorted(old_manifest["scenarios"].items()):
        scenario = next((s for s in scenarios.SCENARIOS if s.name == name), None)
        if scenario is None:
            lines.append(f"{name}: the scenario is gone, so nothing checks its upgrade")
            continue
        if name not in today:
            today[name] = scenarios.build(scenario)
        lines += [f"{name}: {problem}" for problem in scenario_problems(old, today[name])]
    return lines
