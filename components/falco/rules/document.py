"""A rules file from lists, macros and rules: checked as Falco's loader would take it, rendered as YAML.

Falco (falco userspace/engine rule_loader_*.cpp at 0.44.1) compiles a macro with the macros defined before it
and a rule with all of them; a list item naming another list is expanded one level, and only if that list is
defined earlier. render() refuses a file that breaks these, a name defined twice, and a rule named like one of
the upstream k8saudit rules (the lab's rules stand beside upstream's, they never replace one by accident).
Priorities are written in capitals and tags as strings, as Falco's rules schema (rule_json_schema.h) wants.
"""

from __future__ import annotations

from collections.abc import Sequence

import yaml

from .. import k8saudit_upstream as upstream
from .language import FalcoList, Macro, Rule

Item = FalcoList | Macro | Rule


def problems(items: Sequence[Item]) -> list[str]:
    """What Falco would refuse in a file of `items` (it stands alone: no macro or list comes from another file)."""
    found: list[str] = []
    macros: set[str] = set()
    lists: set[str] = set()
    defined_here: set[tuple[str, str]] = set()
    all_macros = macros | {i.name for i in items if isinstance(i, Macro)}
    all_lists = lists | {i.name for i in items if isinstance(i, FalcoList)}
    for item in items:
        kind = "list" if isinstance(item, FalcoList) else "macro" if isinstance(item, Macro) else "rule"
        if (kind, item.name) in defined_here:
            found.append(f"{kind} {item.name!r} is defined twice")
        defined_here.add((kind, item.name))
        if isinstance(item, FalcoList):
            for nested in item.nested:
                if nested.name not in lists:
                    found.append(f"list {item.name!r} names list {nested.name!r} before it is defined")
                elif nested.nested:
                    found.append(f"list {item.name!r} nests {nested.name!r}, which nests lists itself")
            lists.add(item.name)
        elif isinstance(item, Macro):
            found += [
                f"macro {item.name!r} uses macro {m!r} before it is defined"
                for m in sorted(item.condition.macros - macros)
            ]
            found += [
                f"macro {item.name!r} uses list {m!r} before it is defined"
                for m in sorted(item.condition.lists - lists)
            ]
            macros.add(item.name)
        else:
            found += [
                f"rule {item.name!r} uses undefined macro {m!r}" for m in sorted(item.condition.macros - all_macros)
            ]
            found += [f"rule {item.name!r} uses undefined list {m!r}" for m in sorted(item.condition.lists - all_lists)]
            if item.name in upstream.RULES:
                found.append(f"rule {item.name!r} has the name of an upstream k8saudit rule")
    return found


def item_dict(item: Item) -> dict[str, object]:
    if isinstance(item, FalcoList):
        return {"list": item.name, "items": item.item_texts()}
    if isinstance(item, Macro):
        return {"macro": item.name, "condition": item.condition.text}
    return item.item()


def dump(items: Sequence[dict[str, object]]) -> str:
    """YAML that yaml-cpp (Falco) and PyYAML read alike: block style, long conditions kept on one line."""
    return yaml.safe_dump(list(items), sort_keys=False, width=2**31, default_flow_style=False, allow_unicode=False)


def render(items: Sequence[Item], header: str, preamble: Sequence[dict[str, object]] = ()) -> str:
    """The rules file's text (`preamble`, e.g. required_plugin_versions, first); ValueError listing every problem
    (a programming error in the lab's rules)."""
    found = problems(items)
    if found:
        raise ValueError("the lab's rules would not load in Falco:\n- " + "\n- ".join(found))
    text = dump([*preamble, *(item_dict(i) for i in items)])
    return "".join(f"# {line}\n" for line in header.splitlines()) + text
