"""Falco's rule language for the k8s_audit source, as typed Python values that render to rules YAML.

A condition is built from checks on fields and from macro and list references, never written as text,
so what cannot load in Falco cannot be generated:

- A field is named through the catalog of the pinned plugins (components/falco/fields.py): a field
  that does not exist, or an argument it does not take, fails when the rule is built.
- A list field (``ka.req.pod.containers.image`` ...) takes only ``in``, ``intersects`` and
  ``exists``, as libsinsp (filter_compare.cpp) allows; any other operator fails here, not at load.
- String values are quoted the way libsinsp's parser reads them (filter/parser.cpp): a value with a
  double quote goes in single quotes, and values that the parser cannot take back (a backslash, which
  it reads as an escape; control characters) are refused.
- Every ``and``/``or`` is parenthesised, so precedence never depends on the reader.

What a check does when its field has no value matters for every rule (libsinsp compares nothing and
answers false, before the operator is looked at): ``f = x`` and ``f startswith x`` are false, so are
they under ``not`` turned true. Rules here say ``exists`` where they mean it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from .. import fields as falco_fields
from . import guardduty

Priority = Literal["EMERGENCY", "ALERT", "CRITICAL", "ERROR", "WARNING", "NOTICE", "INFORMATIONAL", "DEBUG"]
PRIORITIES: Final[tuple[Priority, ...]] = (
    "EMERGENCY",
    "ALERT",
    "CRITICAL",
    "ERROR",
    "WARNING",
    "NOTICE",
    "INFORMATIONAL",
    "DEBUG",
)
"""Most severe first, spelled as Falco's rules schema lists them (rule_json_schema.h at 0.44.1)."""

LAB_PREFIX: Final = "eks_lab_"
"""Every macro and list the lab defines starts with it: no clash with upstream or a user's own names."""
SOURCE: Final = "k8s_audit"

_MITRE_TECHNIQUE = re.compile(r"^T\d{4}(\.\d{3})?$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_BARE_ITEM = re.compile(r"^[^()\"' \t\n\r\f\v=,\\]+$")


def quote(value: str) -> str:
    """``value`` as a Falco string literal that libsinsp's parser reads back unchanged."""
    if not isinstance(value, str):
        raise TypeError(f"a condition value must be a string, not {value!r}")
    if "\\" in value or any(ord(c) < 0x20 or c == "\x7f" for c in value):
        # The parser reads a backslash as an escape, and a string ending in one never closes.
        raise ValueError(f"value {value!r} holds a backslash or a control character, which a rule cannot quote")
    if '"' not in value:
        return f'"{value}"'
    if "'" not in value:
        return f"'{value}'"
    return '"' + value.replace('"', '\\"') + '"'


@dataclass(frozen=True)
class Expr:
    """A condition, or part of one, with what it refers to."""

    text: str
    macros: frozenset[str] = frozenset()
    lists: frozenset[str] = frozenset()
    fields: frozenset[str] = frozenset()
    """Field references as written (``jevt.value[/stage]``)."""
    op: Literal["and", "or", ""] = ""
    """The operator joining this expression's parts; "" for a single check, reference or ``not``."""

    def _parts(self, op: str) -> tuple[str, ...]:
        # Flattens (a and b) and c into one group; the text of a group of the same op sits inside parentheses.
        return (self.text[1:-1],) if self.op == op else (self.text,)

    def _join(self, op: Literal["and", "or"], other: Expr) -> Expr:
        if not isinstance(other, Expr):
            return NotImplemented
        return Expr(
            "(" + f" {op} ".join(self._parts(op) + other._parts(op)) + ")",
            self.macros | other.macros,
            self.lists | other.lists,
            self.fields | other.fields,
            op,
        )

    def __and__(self, other: Expr) -> Expr:
        return self._join("and", other)

    def __or__(self, other: Expr) -> Expr:
        return self._join("or", other)

    def __invert__(self) -> Expr:
        return Expr(f"not {self.text}", self.macros, self.lists, self.fields)


def all_of(*parts: Expr) -> Expr:
    """``a and b and ...``."""
    if not parts:
        raise ValueError("all_of needs at least one part")
    result = parts[0]
    for part in parts[1:]:
        result = result & part
    return result


def any_of(*parts: Expr) -> Expr:
    """``a or b or ...``."""
    if not parts:
        raise ValueError("any_of needs at least one part")
    result = parts[0]
    for part in parts[1:]:
        result = result | part
    return result


@dataclass(frozen=True)
class FalcoList:
    """A named list of values; lists are substituted into conditions as text before Falco parses them."""

    name: str
    items: tuple[str | FalcoList, ...]

    def __post_init__(self) -> None:
        check_name(self.name)
        for item in self.items:
            if isinstance(item, str) and not _BARE_ITEM.match(item):
                raise ValueError(f"list {self.name}: item {item!r} cannot stand unquoted in a condition")

    def item_texts(self) -> list[str]:
        return [item.name if isinstance(item, FalcoList) else item for item in self.items]

    @property
    def nested(self) -> tuple[FalcoList, ...]:
        return tuple(item for item in self.items if isinstance(item, FalcoList))


@dataclass(frozen=True)
class Macro:
    """A named condition. A macro sees only the macros defined before it; a rule sees them all."""

    name: str
    condition: Expr

    def __post_init__(self) -> None:
        check_name(self.name)

    @property
    def ref(self) -> Expr:
        return Expr(self.name, macros=frozenset({self.name}))


def check_name(name: str) -> None:
    if not _NAME.match(name) or not name.startswith(LAB_PREFIX):
        raise ValueError(f"{name!r}: the lab's macros and lists are lower_snake_case names starting with {LAB_PREFIX}")


_LIST_OPERATORS: Final = frozenset({"in", "intersects", "exists"})


@dataclass(frozen=True)
class Field:
    """A field of the pinned plugins, as a condition or an output writes it (``ka.uri.param[command]``)."""

    spec: falco_fields.FieldSpec
    ref: str

    def _check(self, op: str, values: str = "", lists: frozenset[str] = frozenset()) -> Expr:
        if self.spec.is_list and op not in _LIST_OPERATORS:
            raise ValueError(f"{self.ref} is a list field: it takes only in, intersects and exists, not {op}")
        text = f"{self.ref} {op}" + (f" {values}" if values else "")
        return Expr(text, lists=lists, fields=frozenset({self.ref}))

    def eq(self, value: str) -> Expr:
        return self._check("=", quote(value))

    def startswith(self, value: str) -> Expr:
        return self._check("startswith", quote(value))

    def endswith(self, value: str) -> Expr:
        return self._check("endswith", quote(value))

    def contains(self, value: str) -> Expr:
        return self._check("contains", quote(value))

    def glob(self, pattern: str) -> Expr:
        return self._check("glob", quote(pattern))

    def exists(self) -> Expr:
        return self._check("exists")

    def in_(self, values: Sequence[str] | FalcoList) -> Expr:
        """Equal to one of the values (a list field: every element is one of them)."""
        return self._set_check("in", values)

    def intersects(self, values: Sequence[str] | FalcoList) -> Expr:
        """A list field with at least one element among the values."""
        if not self.spec.is_list:
            raise ValueError(f"{self.ref} is not a list field: use in")
        return self._set_check("intersects", values)

    def _set_check(self, op: str, values: Sequence[str] | FalcoList) -> Expr:
        if isinstance(values, FalcoList):
            return self._check(op, f"({values.name})", frozenset({values.name}))
        if isinstance(values, str) or not values:
            raise ValueError(f"{self.ref} {op}: give a non-empty sequence of values or a FalcoList")
        return self._check(op, "(" + ", ".join(quote(v) for v in values) + ")")


def f(name: str, arg: str | None = None) -> Field:
    """The field ``name`` (with its argument): KeyError when the pinned plugins lack it, ValueError when
    the argument does not fit it."""
    spec = falco_fields.field(name)
    return Field(spec, spec.reference(arg))


def pointer(path: str) -> Field:
    """``jevt.value[<JSON pointer>]``: a value of the event by RFC 6901 pointer; an object or array as the
    compact JSON text fastjson writes for it, which ``contains`` can search."""
    if not path.startswith("/"):
        raise ValueError(f"JSON pointer {path!r} must start with '/'")
    return f("jevt.value", path)


@dataclass(frozen=True)
class Output:
    """``<summary> (label=%field label=%field ...)``; a label's value may join several fields with '/'."""

    summary: str
    fields: tuple[tuple[str, Field | tuple[Field, ...]], ...]

    def __post_init__(self) -> None:
        if "%" in self.summary or not self.summary.strip():
            raise ValueError(f"output summary {self.summary!r} must be text without '%'")
        for label, _ in self.fields:
            if not re.fullmatch(r"[a-z_]+", label):
                raise ValueError(f"output label {label!r} must be lower-case letters or '_'")

    def text(self) -> str:
        parts = []
        for label, value in self.fields:
            refs = value if isinstance(value, tuple) else (value,)
            parts.append(f"{label}=" + "/".join(f"%{ref.ref}" for ref in refs))
        return f"{self.summary} ({' '.join(parts)})"

    @property
    def refs(self) -> frozenset[str]:
        found: set[str] = set()
        for _, value in self.fields:
            found.update(ref.ref for ref in (value if isinstance(value, tuple) else (value,)))
        return frozenset(found)


@dataclass(frozen=True)
class Rule:
    """A rule of the lab, with what it answers: MITRE ATT&CK techniques and GuardDuty finding types."""

    name: str
    desc: str
    condition: Expr
    output: Output
    priority: Priority
    mitre: tuple[str, ...]
    guardduty: tuple[str, ...] = ()
    """GuardDuty EKS audit-log finding types the rule answers (guardduty.FINDING_TYPES); empty: none."""
    extra_tags: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.name or self.name != self.name.strip() or "\n" in self.name:
            raise ValueError(f"rule name {self.name!r} must be one line without surrounding blanks")
        if self.priority not in PRIORITIES:
            raise ValueError(f"rule {self.name!r}: priority {self.priority!r} is not one of {PRIORITIES}")
        if not self.mitre:
            raise ValueError(f"rule {self.name!r}: every lab rule names the MITRE ATT&CK techniques it detects")
        for technique in self.mitre:
            if not _MITRE_TECHNIQUE.match(technique):
                raise ValueError(f"rule {self.name!r}: {technique!r} is not a MITRE ATT&CK technique ID (T1234[.001])")
        for finding in self.guardduty:
            if finding not in guardduty.FINDING_TYPES:
                raise ValueError(f"rule {self.name!r}: {finding!r} is not a GuardDuty EKS audit-log finding type")

    @property
    def tags(self) -> list[str]:
        return ["k8s", "eks_lab", *self.mitre, *(guardduty.tag(t) for t in self.guardduty), *self.extra_tags]

    def item(self) -> dict[str, object]:
        return {
            "rule": self.name,
            "desc": self.desc,
            "condition": self.condition.text,
            "output": self.output.text(),
            "priority": self.priority,
            "source": SOURCE,
            "tags": self.tags,
        }
