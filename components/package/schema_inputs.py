"""Inputs from another language, checked against the package's schema before a component sees them.

Pulumi's provider host (pulumi.provider.experimental.ComponentProvider.map_inputs) reads only the properties the
schema declares: a misspelled one never reaches the component, which then runs with its default. It also turns an
object that arrives as a list into an empty object, and reports a bad enum value as a Python repr. So every input
a program sends is checked here first, at any depth: unknown properties (with the nearest valid name), values of
the wrong kind (a list where one value belongs, a string where a number does), enum values outside their list,
missing required properties, and other resources' outputs where the schema says the value must be known while
the program runs. Every problem names its full path in the schema's spelling (`cluster.nodeCount`,
`falco.auditValues`, `privateSubnetIds[1]`).

Values that only become known later (outputs of other resources, unknowns during a preview) are checked by the
component when they resolve, or not at all.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.output import Unknown

from ..args import unknown_setting

ANY = "pulumi.json#/Any"


@dataclass(frozen=True)
class Problem:
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def check_inputs(schema: Mapping[str, Any], token: str, inputs: Mapping[str, Any]) -> list[Problem]:
    """Every problem of `inputs` (camelCase, as the provider host receives them) for the resource `token`."""
    resource = schema["resources"][token]
    checker = _Checker(schema)
    checker.object(
        inputs, resource.get("inputProperties", {}), set(resource.get("requiredInputs", [])), "", token.split(":")[-1]
    )
    return checker.problems


def _opaque(value: Any) -> bool:
    """Known only later (another resource's output, an unknown of a preview) or a resource: nothing to check now."""
    return isinstance(value, (pulumi.Output, Unknown, pulumi.Resource))


def _shown(value: Any) -> str:
    """A value as a user wrote it (JSON), shortened."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return f"{'true' if value else 'false'}"
    if isinstance(value, (int, float)):
        return f"the number {_shown(value)}"
    if isinstance(value, str):
        return f"the string {_shown(value)}"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


class _Checker:
    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.schema = schema
        self.problems: list[Problem] = []

    def fail(self, path: str, reason: str) -> None:
        self.problems.append(Problem(path, reason))

    def type_of(self, ref: str) -> tuple[str, Mapping[str, Any]]:
        token = ref.removeprefix("#/types/")
        return token.split(":")[-1], self.schema["types"][token]

    def expected(self, prop: Mapping[str, Any]) -> str:
        """What a property takes, in words."""
        if "$ref" in prop:
            if prop["$ref"] == ANY:
                return "any value"
            name, typ = self.type_of(prop["$ref"])
            if "enum" in typ:
                return "one of " + ", ".join(_shown(member["value"]) for member in typ["enum"])
            return f"an object ({name})"
        kind = prop.get("type")
        if kind == "array":
            return f"a list of {self.plural(prop['items'])}"
        if kind == "object":
            return f"a map of {self.plural(prop.get('additionalProperties', {'$ref': ANY}))}"
        return {"string": "a string", "integer": "a whole number", "number": "a number", "boolean": "true or false"}[
            str(kind)
        ]

    def plural(self, prop: Mapping[str, Any]) -> str:
        if "$ref" in prop:
            if prop["$ref"] == ANY:
                return "any values"
            name, typ = self.type_of(prop["$ref"])
            return "values " + self.expected(prop) if "enum" in typ else f"{name} objects"
        kind = prop.get("type")
        if kind in ("array", "object"):
            return self.expected(prop).removeprefix("a ") + "s"
        return {"string": "strings", "integer": "whole numbers", "number": "numbers", "boolean": "true or false"}[
            str(kind)
        ]

    def value(self, value: Any, prop: Mapping[str, Any], path: str) -> None:
        if value is None:
            return
        if _opaque(value):
            if prop.get("plain") and isinstance(value, pulumi.Output):
                self.fail(
                    path,
                    "must be known when the program runs (a literal or a config value), not another resource's output",
                )
            return
        if "$ref" in prop:
            self.reference(value, prop, path)
            return
        kind = prop.get("type")
        if kind == "array":
            if not isinstance(value, (list, tuple)):
                self.fail(path, f"must be {self.expected(prop)}, got {_kind(value)}")
                return
            for index, item in enumerate(value):
                self.value(item, prop["items"], f"{path}[{index}]")
        elif kind == "object":
            if not isinstance(value, Mapping):
                self.fail(path, f"must be {self.expected(prop)}, got {_kind(value)}")
                return
            for key, item in value.items():
                self.value(item, prop.get("additionalProperties", {"$ref": ANY}), _join(path, str(key)))
        elif not self.scalar_fits(value, str(kind)):
            self.fail(path, f"must be {self.expected(prop)}, got {_kind(value)}")

    @staticmethod
    def scalar_fits(value: Any, kind: str) -> bool:
        if kind == "string":
            return isinstance(value, str)
        if kind == "boolean":
            return isinstance(value, bool)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        # Numbers cross the wire as floats: a whole number arrives as 3.0.
        return kind == "number" or float(value).is_integer()

    def reference(self, value: Any, prop: Mapping[str, Any], path: str) -> None:
        if prop["$ref"] == ANY:
            return
        name, typ = self.type_of(prop["$ref"])
        if "enum" in typ:
            allowed = [member["value"] for member in typ["enum"]]
            if value not in allowed or isinstance(value, bool):
                self.fail(path, f"{_shown(value)} is not allowed; use {self.expected(prop)}")
            return
        if not isinstance(value, Mapping):
            self.fail(path, f"must be {self.expected(prop)}, got {_kind(value)}")
            return
        self.object(value, typ.get("properties", {}), set(typ.get("required", [])), path, name)

    def object(
        self, value: Mapping[str, Any], properties: Mapping[str, Any], required: set[str], path: str, owner: str
    ) -> None:
        for key in value:
            if key in properties:
                continue
            # The nearest property, case slips (nodeCOUNT, SidekickUi) included, else what the type takes.
            takes = f"{owner} takes {', '.join(sorted(properties))}"
            self.fail(_join(path, str(key)), unknown_setting(str(key), properties, ignore_case=True, otherwise=takes))
        for name, prop in properties.items():
            if value.get(name) is None:
                if name in required:
                    self.fail(_join(path, name), "is required")
                continue
            self.value(value[name], prop, _join(path, name))
