"""The schema the component package serves follows the rules that make it read well from every language.

Each rule reads the whole served schema (components/package/__init__.py, built as the plugin builds it), so a field
added later is held to it too: descriptions in the schema's own camelCase names, "unset" rather than None, Python only
where the text is about Python (the forwarder's Python image), prose paragraphs (no indented blocks), no Python
constant or source file named, no dataclass repr as a description; secret outputs marked secret; object type
names that collide with nothing Pulumi's code generators make; lists a caller may take from another resource
accepting a whole output.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sdk_names import camel, go_names_of_resource, go_names_of_type

from components.package import NAME, SECRET_OUTPUTS, ComponentPackage

ROOT = Path(__file__).resolve().parents[1]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]

KNOWN_WHILE_RUNNING: dict[str, str] = {
    "AuditedClusterSettings.extraLogTypes": "checked against the log types EKS has",
    "AuditedClusterSettings.apiPublicAccessCidrs": "checked as CIDR ranges before anything is created",
    "AuditedClusterSettings.apiPrivateAccessCidrs": "one security group rule per range",
    "AuditedClusterSettings.clusterAdminArns": "one EKS access entry per ARN, and checked for repeats",
    "AuditedClusterSettings.clusterViewerArns": "one EKS access entry per ARN, and checked for repeats",
    "FalcoSettings.adminIdentities": "written into Falco's rules while the program runs",
    "FalcoSettings.allowedIdentities": "checked and written into Falco's rules while the program runs",
    "FalcoSettings.hostileSourceAddresses": "checked as addresses and CIDRs before anything is created, and written "
    "into the hostile list's rules file",
}
"""Lists that must be known while the program runs (`plain` in the schema), with why; every other list accepts a
whole output of another resource. The component resources' own inputs repeat their args types' lists."""


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return ComponentPackage(VERSION).schema_spec


def descriptions(schema: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, text) of every description in the schema."""
    for token, resource in schema["resources"].items():
        name = token.split(":")[-1]
        yield name, resource.get("description", "")
        for kind in ("inputProperties", "properties"):
            for prop, spec in resource.get(kind, {}).items():
                yield f"{name}.{prop}", spec.get("description", "")
    for token, typ in schema["types"].items():
        name = token.split(":")[-1]
        yield name, typ.get("description", "")
        for prop, spec in typ.get("properties", {}).items():
            yield f"{name}.{prop}", spec.get("description", "")
        for member in typ.get("enum", []):
            yield f"{name}.{member['value']}", member.get("description", "")


def property_names(schema: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    for resource in schema["resources"].values():
        names |= set(resource.get("inputProperties", {})) | set(resource.get("properties", {}))
    for typ in schema["types"].values():
        names |= set(typ.get("properties", {}))
    return names


def violations(schema: dict[str, Any], pattern: str, allowed: Any = None) -> list[str]:
    found = []
    for where, text in descriptions(schema):
        for match in re.finditer(pattern, text):
            if allowed is None or not allowed(match):
                found.append(f"{where}: {match[0]!r} in {text!r}")
    return found


def test_every_description_is_there(schema: dict[str, Any]) -> None:
    assert [where for where, text in descriptions(schema) if not text.strip()] == []


def test_descriptions_name_settings_in_the_schemas_camel_case(schema: dict[str, Any]) -> None:
    names = property_names(schema)
    snake = r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b"
    # A snake_case word whose camelCase form is a property is a Python field name (Helm keys such as
    # rule_matching are Falco's own spelling and stay).
    assert violations(schema, snake, allowed=lambda m: camel(m[0].replace("_", "-")) not in names) == []


def test_descriptions_say_unset_not_none(schema: dict[str, Any]) -> None:
    assert violations(schema, r"\bNone\b") == []


def test_python_is_named_only_for_the_forwarders_python_image(schema: dict[str, Any]) -> None:
    assert violations(schema, r"\bPython\b(?! image)") == []


def test_descriptions_name_no_python_constant_or_source_file(schema: dict[str, Any]) -> None:
    assert violations(schema, r"\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b") == []
    assert violations(schema, r"\b[\w/]+\.py\b|\bcomponents/") == []


def test_paragraphs_render_as_prose(schema: dict[str, Any]) -> None:
    """A line that starts with four spaces after a blank line is a Markdown code block; none starts indented."""
    indented = [where for where, text in descriptions(schema) for line in text.splitlines() if line[:1].isspace()]
    assert indented == []


def test_no_description_is_a_dataclass_repr(schema: dict[str, Any]) -> None:
    assert violations(schema, r"^[A-Z]\w*\(\w+: \w+") == []


def test_secret_outputs_are_secret_in_the_schema(schema: dict[str, Any]) -> None:
    marked = {
        token.split(":")[-1]: frozenset(name for name, spec in resource["properties"].items() if spec.get("secret"))
        for token, resource in schema["resources"].items()
    }
    assert {component: names for component, names in marked.items() if names} == SECRET_OUTPUTS
    lab = schema["resources"][f"{NAME}:index:FalcoEksLab"]["properties"]
    assert lab["kubeconfig"]["secret"] is True and lab["falcoUiPassword"]["secret"] is True


def test_no_object_type_takes_a_name_codegen_makes_for_a_resource(schema: dict[str, Any]) -> None:
    """Go renames an object type whose names collide with a resource's (`FalcoArgsType`); TypeScript, Python and
    .NET name input types `<type>Args`, so a type named `<resource>Args` would read as the resource's own."""
    resources = [token.split(":")[-1] for token in schema["resources"]] + ["Provider"]
    reserved = {name for resource in resources for name in go_names_of_resource(resource)}
    collisions = []
    for token in schema["types"]:
        name = token.split(":")[-1]
        taken = set(go_names_of_type(name)) & reserved
        if taken or f"{name}Args" in reserved or name in resources:
            collisions.append(f"{name}: {sorted(taken) or name + 'Args'}")
    assert collisions == []


def test_the_renamed_settings_types_are_in_the_schema(schema: dict[str, Any]) -> None:
    types = {token.split(":")[-1] for token in schema["types"]}
    assert {"FalcoSettings", "AuditedClusterSettings"} <= types
    assert not {"FalcoArgs", "AuditedClusterArgs"} & types


def _lists(schema: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for token, resource in schema["resources"].items():
        for prop, spec in resource.get("inputProperties", {}).items():
            yield f"{token.split(':')[-1]}.{prop}", spec
    for token, typ in schema["types"].items():
        for prop, spec in typ.get("properties", {}).items():
            yield f"{token.split(':')[-1]}.{prop}", spec


def test_lists_from_other_resources_take_a_whole_output(schema: dict[str, Any]) -> None:
    """Every list input accepts a whole output list (an awsx Vpc's privateSubnetIds), unless it must be known while
    the program runs for a stated reason."""
    plain_lists = {where for where, spec in _lists(schema) if spec.get("type") == "array" and spec.get("plain")}
    # The component resources' inputs are their args types' fields again: compare by field.
    fields = {where.split(".", 1)[1] for where in plain_lists}
    allowed = {where.split(".", 1)[1] for where in KNOWN_WHILE_RUNNING}
    assert fields <= allowed, sorted(fields - allowed)
    for where, spec in _lists(schema):
        if where.endswith(("privateSubnetIds", "publicSubnetIds")):
            assert spec.get("plain") is None and spec["items"].get("plain") is None, where


def test_enum_members_are_named_in_pascal_case(schema: dict[str, Any]) -> None:
    """Codegen builds `ForwarderBuildSource` (Go) and `ForwarderBuild.Source` (.NET, TypeScript) from these."""
    names = [m["name"] for t in schema["types"].values() for m in t.get("enum", [])]
    assert names and [n for n in names if not re.fullmatch(r"(?:[A-Z][a-z0-9]*)+", n) or n.isupper()] == []
    members = schema["types"][f"{NAME}:index:ForwarderBuild"]["enum"]
    assert {m["name"]: m["value"] for m in members} == {"Docker": "docker", "Source": "source"}
