"""Tables in docs/ written from the code: the stack settings (Pulumi.yaml's `config:`), the
forwarder's flags (its argument parser), the Helm values the Falco component owns, the names the
component package's SDKs get in each language (from the schema it serves), and the detection page's
rules, coverage and scenario results (docs_tools/detection.py).

Each table sits between two marker comments in its page, e.g.

    <!-- generated:settings begin (make docs rewrites this table from Pulumi.yaml) -->
    ...
    <!-- generated:settings end -->

Only the text between the markers is rewritten; the prose around it stays hand-written.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


class DocsError(Exception):
    """A page or a source the generator cannot work with; the message says which and why."""


def cell(text: str) -> str:
    """Plain text as one Markdown table cell: nothing in it becomes markup, a tag or a column break."""
    text = " ".join(str(text).split())
    text = text.replace("\\", "\\\\")
    for char in "`*_[]|":
        text = text.replace(char, "\\" + char)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code(text: str) -> str:
    """A value in backticks (a longer fence when the value holds one), safe inside a table cell."""
    text = str(text).replace("|", "\\|")
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


# --- the stack settings -------------------------------------------------------------------------------------


def _type_name(spec: Mapping[str, Any]) -> str:
    kind = str(spec.get("type", "string"))
    items = spec.get("items")
    if kind == "array" and isinstance(items, Mapping) and items.get("type"):
        kind = f"array of {items['type']}"
    if spec.get("secret"):
        kind += ", secret"
    return kind


def _default(spec: Mapping[str, Any]) -> str:
    if "default" not in spec:
        return "required"
    value = spec["default"]
    if isinstance(value, str):
        return code(value) if value else '`""` (empty)'
    return code(json.dumps(value))


def settings_table(pulumi_yaml: Mapping[str, Any]) -> str:
    """Every key of Pulumi.yaml's `config:`, in the file's order: key, type, default, description."""
    config = pulumi_yaml.get("config")
    if not isinstance(config, Mapping) or not config:
        raise DocsError("Pulumi.yaml has no `config:` mapping of settings")
    rows = ["| Key | Type | Default | Description |", "|---|---|---|---|"]
    for key, spec in config.items():
        if not isinstance(spec, Mapping):  # the short form `key: value` declares only a default
            spec = {"type": type(spec).__name__ if spec is not None else "string", "default": spec}
        description = cell(spec.get("description", "")) or "(no description in Pulumi.yaml)"
        rows.append(f"| {code(key)} | {cell(_type_name(spec))} | {_default(spec)} | {description} |")
    return "\n".join(rows) + "\n"


def settings_from(root: Path) -> str:
    path = root / "Pulumi.yaml"
    try:
        project = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise DocsError(f"{path}: {err}") from err
    if not isinstance(project, Mapping):
        raise DocsError(f"{path}: not a mapping")
    return settings_table(project)


# --- the forwarder's flags ----------------------------------------------------------------------------------

# The forwarder's help texts end in "[env FORWARDER_X]" or "[env FORWARDER_X, default Y]".
_ENV_AND_DEFAULT = re.compile(r"\s*\[env (?P<env>[A-Z0-9_]+)(?:, default (?P<default>[^\]]*))?\]\s*$")


def _subcommand(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:  # argparse keeps its subcommands in a private list; there is no public one
        if isinstance(action, argparse._SubParsersAction) and name in action.choices:
            return action.choices[name]
    raise DocsError(f"the forwarder's parser has no {name!r} command")


def flags_table(parser: argparse.ArgumentParser, command: str = "run") -> str:
    """Every option of `forwarder <command>`: flag and environment variable, default, what it does."""
    rows = ["| Flag and environment variable | Default | What it does |", "|---|---|---|"]
    for action in _subcommand(parser, command)._actions:
        if not action.option_strings or isinstance(action, argparse._HelpAction):
            continue
        flag = " ".join(action.option_strings)
        if action.metavar:
            flag += f" {action.metavar}"
        text = action.help or ""
        found = _ENV_AND_DEFAULT.search(text)
        env = default = ""
        if found:
            env, default = found["env"], found["default"] or ""
            text = text[: found.start()]
        names = code(flag) + (f"<br>{code(env)}" if env else "")
        rows.append(f"| {names} | {code(default) if default else ''} | {cell(text)} |")
    return "\n".join(rows) + "\n"


def forwarder_flags_from(root: Path) -> str:
    del root  # the forwarder package on sys.path is the one in this repository
    from forwarder.config import build_parser

    return flags_table(build_parser())


# --- the Helm values the Falco component owns ---------------------------------------------------------------


def owned_values_table(owned: Mapping[str, str]) -> str:
    """Every Helm value path the Falco component sets itself (callers' extra values may not), with why."""
    rows = ["| Helm value path | Why the component owns it |", "|---|---|"]
    rows += [f"| {code(path)} | {cell(why)} |" for path, why in owned.items()]
    return "\n".join(rows) + "\n"


def owned_values_from(root: Path) -> str:
    del root  # the components package on sys.path is the one in this repository
    from components.falco import OWNED_VALUES

    return owned_values_table(OWNED_VALUES)


# --- the component package: its SDK names and types -------------------------------------------------------

SDK_EXAMPLE_COMPONENT = "FalcoDetection"
SDK_EXAMPLE_SETTINGS = "FalcoSettings"
SDK_EXAMPLE_ENUM = ("ForwarderBuild", "source")
"""The component, settings type and enum value the SDK names table shows."""


def _first_sentence(text: str) -> str:
    found = re.match(r"(.*?\.)(?:\s|$)", " ".join(text.split()))
    return (found[1] if found else text).replace("`", "")


def sdk_names_table(schema: Mapping[str, Any]) -> str:
    """What `pulumi package add` generates in each language, named by the rules of Pulumi's code generators
    (tests/sdk_names.py, which the examples' tests check against the same schema), then every schema type."""
    from tests.sdk_names import names_of, yaml_types

    names = names_of(schema)
    types = {token.split(":")[-1]: spec for token, spec in schema.get("types", {}).items()}
    component, settings = SDK_EXAMPLE_COMPONENT, SDK_EXAMPLE_SETTINGS
    enum, value = SDK_EXAMPLE_ENUM
    if f"{schema['name']}:index:{component}" not in schema["resources"] or settings not in types:
        raise DocsError(f"the schema has no {component} or {settings}: change SDK_EXAMPLE_* in docs_tools")
    members = {m["value"]: m["name"] for m in types.get(enum, {}).get("enum", [])}
    if value not in members:
        raise DocsError(f"the schema's {enum} has no value {value!r}: change SDK_EXAMPLE_ENUM in docs_tools")
    member, quoted = members[value], json.dumps(value)
    ts, py, go, dotnet = names.nodejs_import, names.python_alias, names.go_package, names.dotnet
    short, full = sorted(yaml_types(f"{schema['name']}:index:{component}"), key=len)
    folder = f" in {code(names.folder)}"
    # One tab per language, labelled as the examples' tabs are, so that choosing one chooses both.
    languages: list[tuple[str, list[tuple[str, str]]]] = [
        ("TypeScript", [
            ("SDK", f"npm package {code(names.nodejs)}{folder}"),
            ("Import", code(f'import * as {ts} from "{names.nodejs}";')),
            ("A component", code(f"new {ts}.{component}(...)")),
            ("A settings type", code(f"{ts}.types.input.{settings}Args")),
            ("An enum value", f"{code(f'{ts}.{enum}.{member}')} or {code(quoted)}"),
        ]),
        ("Python", [
            ("SDK", f"package {code(names.python)}{folder} (a Python program can also use the components "
                    "themselves, see [Python](#python))"),
            ("Import", code(f"import {names.python} as {py}")),
            ("A component", code(f"{py}.{component}(...)")),
            ("A settings type", code(f"{py}.{settings}Args")),
            ("An enum value", code(quoted)),
        ]),
        ("YAML", [
            ("A component", f"{code(f'type: {short}')} (or {code(full)})"),
            ("A settings type", "a mapping"),
            ("An enum value", code(value)),
        ]),
        ("Go", [
            ("SDK", f"module {code(names.go_module)}{folder}"),
            ("Import", code(f'import "{names.go_import}"')),
            ("A component", code(f"{go}.New{component}(...)")),
            ("A settings type", code(f"{go}.{settings}Args")),
            ("An enum value", code(f"{go}.{enum}{member}")),
        ]),
        ("C#", [
            ("SDK", f"namespace {code(dotnet)}{folder}"),
            ("A component", code(f"new {dotnet}.{component}(...)")),
            ("A settings type", code(f"{dotnet}.Inputs.{settings}Args")),
            ("An enum value", code(f"{dotnet}.{enum}.{member}")),
        ]),
    ]
    rows: list[str] = []
    for language, facts in languages:
        rows += [f'=== "{language}"', "", f"    | | In {language} |", "    |---|---|"]
        rows += [f"    | {aspect} | {name} |" for aspect, name in facts]
        rows.append("")
    rows += ["| Schema type | In the SDKs | What it is |", "|---|---|---|"]
    for name, spec in types.items():
        if "enum" in spec:
            listed = ", ".join(f"{code(m['name'])} ({code(json.dumps(m['value']))})" for m in spec["enum"])
            generated = f"enum {code(name)}: {listed}"
        else:
            generated = code(f"{name}Args")
        rows.append(f"| {code(name)} | {generated} | {cell(_first_sentence(spec.get('description', '')))} |")
    return "\n".join(rows) + "\n"


def sdk_names_from(root: Path) -> str:
    from components.package import ComponentPackage
    from tools.release import version_of

    return sdk_names_table(ComponentPackage(version_of(root)).schema_spec)


# --- the blocks and their pages -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    name: str
    page: str
    """Path under docs/."""
    source: str
    """What the table is written from, for the marker comment and the messages."""
    render: Callable[[Path], str]

    def begin(self) -> str:
        return f"<!-- generated:{self.name} begin (make docs rewrites this table from {self.source}) -->"

    def end(self) -> str:
        return f"<!-- generated:{self.name} end -->"


def _detection(name: str) -> Callable[[Path], str]:
    """A renderer of docs_tools/detection.py (imported when called: it imports this module)."""

    def render(root: Path) -> str:
        from . import detection

        return str(getattr(detection, name)(root))

    return render


BLOCKS = (
    Block("settings", "settings.md", "Pulumi.yaml", settings_from),
    Block("forwarder-flags", "forwarder.md", "forwarder/config.py", forwarder_flags_from),
    Block("owned-values", "reuse.md", "components/falco/__init__.py OWNED_VALUES", owned_values_from),
    Block("sdk-names", "reuse.md", "the schema components/package/__init__.py serves", sdk_names_from),
    Block("lab-rules", "detection.md", "components/falco/rules", _detection("lab_rules_from")),
    Block(
        "upstream-changes",
        "detection.md",
        "components/falco/upstream_changes.py UPSTREAM_CHANGES",
        _detection("upstream_changes_from"),
    ),
    Block(
        "guardduty-coverage",
        "detection.md",
        "the rules' GuardDuty tags and docs/data/guardduty-coverage.yaml",
        _detection("coverage_from"),
    ),
    Block("threat-verdicts", "detection.md", "docs/data/threat-verdicts.yaml", _detection("verdicts_from")),
    Block("threat-alerts", "detection.md", "docs/data/threat-alerts.json", _detection("alerts_from")),
)


def replace_block(text: str, block: Block, content: str) -> str:
    """`text` with the content between the block's markers replaced; each marker must appear exactly once."""
    begin = re.compile(rf"^<!-- generated:{re.escape(block.name)} begin\b.*-->$", re.MULTILINE)
    end = re.compile(rf"^<!-- generated:{re.escape(block.name)} end -->$", re.MULTILINE)
    starts, ends = list(begin.finditer(text)), list(end.finditer(text))
    if len(starts) != 1 or len(ends) != 1 or ends[0].start() < starts[0].end():
        raise DocsError(
            f"docs/{block.page}: needs exactly one {block.begin()!r} line followed by one {block.end()!r} line"
        )
    return text[: starts[0].start()] + block.begin() + "\n\n" + content + "\n" + text[ends[0].start() :]


def stale_blocks(root: Path = ROOT, write: bool = False) -> list[str]:
    """The blocks whose page differs from what their source generates (rewritten when `write`)."""
    stale = []
    for block in BLOCKS:
        path = root / "docs" / block.page
        text = path.read_text(encoding="utf-8")
        wanted = replace_block(text, block, block.render(root))
        if wanted != text:
            stale.append(f"docs/{block.page} ({block.name}, from {block.source})")
            if write:
                path.write_text(wanted, encoding="utf-8")
    return stale
