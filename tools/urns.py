"""URNs and aliases as the Pulumi engine computes them, to tell which resources an upgrade would replace.

A resource's URN is `urn:pulumi:<stack>::<project>::<qualified type>::<name>`, where the qualified type is the
parent's qualified type (every ancestor's type, joined by `$`) followed by the resource's own type; the root stack
does not count. When `pulumi up` meets a URN its state does not hold, it looks for an old resource under the
resource's aliases; an old URN that nothing claims is deleted, and the resource under its new URN is created:
a replacement.

Followed here, from pulumi/pulumi v3.259.0 (the engine; the Python SDK 3.272.0 sends alias specs and leaves
this to it):
- `Deployment.generateURN` (pkg/resource/deploy/deployment.go) and `urn.New` (sdk/go/common/resource/urn/urn.go);
- `CreateURN` (sdk/go/common/resource/alias.go): an alias spec's URN, under its parent's URN;
- `stepGenerator.collapseAliasToUrn`, `inheritedChildAlias`, `generateAliases` and `getOldResource`
  (pkg/resource/deploy/step_generator.go): empty spec fields mean the resource's own name, type and parent; a
  parent that matched its old resource through an alias makes every child try the same place under that old
  URN (with the parent's old name in place of its new one at the start of the child's name); the URN itself is
  tried first, then each alias in order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

ROOT_STACK_TYPE = "pulumi:pulumi:Stack"


def new_urn(stack: str, project: str, parent_type: str, typ: str, name: str) -> str:
    """`urn.New`: the parent's qualified type, `$`, the type; the root stack's type is never a prefix."""
    qualified = f"{parent_type}${typ}" if parent_type and parent_type != ROOT_STACK_TYPE else typ
    return f"urn:pulumi:{stack}::{project}::{qualified}::{name}"


def qualified_type(urn: str) -> str:
    """The URN's type part: every ancestor's type and its own, joined by `$`."""
    return urn.split("::", 3)[2]


def urn_name(urn: str) -> str:
    return urn.split("::", 3)[3]


def urn_type(urn: str) -> str:
    """The resource's own type (the last part of the qualified type)."""
    return qualified_type(urn).rsplit("$", 1)[-1]


def create_urn(name: str, typ: str, parent: str, project: str, stack: str) -> str:
    """`CreateURN`: under `parent` (everything up to its last `::`, then `$`), or at the top without one."""
    if not parent:
        return f"urn:pulumi:{stack}::{project}::{typ}::{name}"
    return f"{parent[: parent.rindex('::')]}${typ}::{name}"


@dataclass(frozen=True)
class Alias:
    """An alias as a RegisterResource request carries it: a whole URN, or a spec (empty fields: the resource's)."""

    urn: str = ""
    name: str = ""
    type: str = ""
    stack: str = ""
    project: str = ""
    parent_urn: str = ""
    no_parent: bool = False


@dataclass(frozen=True)
class Registered:
    """One RegisterResource request, with its parent's URN in the engine's form."""

    type: str
    name: str
    parent: str
    aliases: tuple[Alias, ...] = ()


@dataclass
class UpgradePlan:
    """What `pulumi up` of the new program would do with the old state's URNs."""

    claimed: dict[str, str] = field(default_factory=dict)
    """Old URN -> the new URN that takes it over (itself, or through an alias)."""
    deleted: list[str] = field(default_factory=list)
    """Old URNs nothing claims: `pulumi up` deletes them (and creates their successors anew)."""
    conflicts: list[str] = field(default_factory=list)
    """Aliases the engine refuses (an old URN claimed twice)."""


class Engine:
    """The step generator's alias bookkeeping for one deployment of `stack` in `project`."""

    def __init__(self, stack: str, project: str, olds: Iterable[str]) -> None:
        self.stack = stack
        self.project = project
        self.olds = set(olds)
        self.aliased: dict[str, str] = {}  # new URN -> the old URN it matched through an alias
        self.claims: dict[str, str] = {}  # old URN -> new URN
        self.seen: set[str] = set()
        self.conflicts: list[str] = []

    def urn(self, reg: Registered) -> str:
        parent_type = qualified_type(reg.parent) if reg.parent else ""
        return new_urn(self.stack, self.project, parent_type, reg.type, reg.name)

    def collapse(self, reg: Registered, alias: Alias) -> str:
        """`collapseAliasToUrn`."""
        if alias.urn:
            return alias.urn
        parent = alias.parent_urn or reg.parent
        if alias.parent_urn and alias.parent_urn in self.aliased:
            parent = self.aliased[alias.parent_urn]
        if alias.no_parent or (parent and qualified_type(parent) == ROOT_STACK_TYPE):
            parent = ""
        return create_urn(
            alias.name or reg.name,
            alias.type or reg.type,
            parent,
            alias.project or self.project,
            alias.stack or self.stack,
        )

    def inherited(self, child_type: str, child_name: str, parent_name: str, parent_alias: str) -> str:
        """`inheritedChildAlias`: the child's place under its parent's old URN."""
        name = child_name
        if child_name.startswith(parent_name):
            name = urn_name(parent_alias) + child_name[len(parent_name) :]
        return new_urn(self.stack, self.project, qualified_type(parent_alias), child_type, name)

    def aliases(self, reg: Registered) -> list[str]:
        """`generateAliases`: the resource's own aliases, then those its parent's old URN implies."""
        result: list[str] = []
        for alias in reg.aliases:
            result.append(self.collapse(reg, alias))
        if reg.parent and reg.parent in self.aliased:
            parent_alias = self.aliased[reg.parent]
            parent_name = urn_name(reg.parent)
            result.append(self.inherited(reg.type, reg.name, parent_name, parent_alias))
            for alias in reg.aliases:
                own = self.collapse(reg, alias)
                result.append(self.inherited(urn_type(own), urn_name(own), parent_name, parent_alias))
        return list(dict.fromkeys(result))

    def register(self, reg: Registered) -> str:
        """`getOldResource`: the URN first, then each alias; the first old URN found is taken over."""
        urn = self.urn(reg)
        for candidate in [urn, *self.aliases(reg)]:
            if candidate not in self.olds:
                continue
            if candidate != urn:
                if candidate in self.seen or candidate in self.claims:
                    self.conflicts.append(f"{urn} claims {candidate}, which is taken already")
                    break
                self.aliased[urn] = candidate
            self.claims[candidate] = urn
            break
        self.seen.add(urn)
        return urn


def plan_upgrade(
    stack: str, project: str, olds: Iterable[str], registrations: Iterable[Registered]
) -> UpgradePlan:
    """Run the new program's registrations (parents before children, as programs register them) against the old
    state's URNs."""
    old_urns = list(olds)
    engine = Engine(stack, project, old_urns)
    plan = UpgradePlan()
    for reg in registrations:
        engine.register(reg)
    plan.claimed = dict(engine.claims)
    plan.deleted = [urn for urn in old_urns if urn not in engine.claims]
    plan.conflicts = engine.conflicts
    return plan


def chain_urns(
    stack: str, project: str, parents: Mapping[str, str | None], types: Mapping[str, tuple[str, str]]
) -> dict[str, str]:
    """Engine URNs for resources known by any key: `parents` maps a key to its parent's key (None at the top),
    `types` a key to (type, name). Computed from the chain of parent types, whatever form the keys have."""
    result: dict[str, str] = {}

    def qualified(key: str) -> str:
        typ, _ = types[key]
        parent = parents.get(key)
        if parent is None or parent not in types or types[parent][0] == ROOT_STACK_TYPE:
            return typ
        return f"{qualified(parent)}${typ}"

    for key, (_typ, name) in types.items():
        if types[key][0] == ROOT_STACK_TYPE:
            continue
        result[key] = f"urn:pulumi:{stack}::{project}::{qualified(key)}::{name}"
    return result
