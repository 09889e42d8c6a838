"""What `make config` accepts: a key the lab reads, a value of that key's type, and the lab's own checks.

Keys: the settings Pulumi.yaml declares (`forwarderBuild`, also written `falco-eks-lab:forwarderBuild`) and
the AWS provider's (`aws:region`, `aws:profile`, ...: the keys the installed pulumi_aws reads). A key with a
path sets one item, as `pulumi config set --path` reads it (`extraLogTypes[0]`, `aws:assumeRoles[0].roleArn`);
a JSON list (`["api","scheduler"]`) replaces a whole list setting, one `--path` item at a time: a list stored
as text would fail Pulumi.yaml's type check at `pulumi up`.

Then the stack's settings with the new value go through components/stack_config.py (read_lab_args and the
calendar check of kubernetesVersion), the checks the program makes before it creates anything. An error about
the key being set refuses the value; an error about another key, which the new value may cause (auditSource
back to poll while kinesisShardCount is set), is a warning, as that key may be the next the user changes;
an error the settings had already is a warning too.
"""

from __future__ import annotations

import contextvars
import difflib
import importlib.util
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import BAD_INPUT, LabError
from .stack import Project, StackSettings, config_hint

AWS = "aws"
EXAMPLE = "make config KEY=forwarderBuild VALUE=source"

_KEY = re.compile(
    r"^(?:(?P<namespace>[A-Za-z0-9_.-]+):)?(?P<name>[A-Za-z][A-Za-z0-9_-]*)"
    r"(?P<path>(?:\[\d+\]|\.[A-Za-z_][A-Za-z0-9_-]*)*)$"
)
_SEGMENT = re.compile(r"\[(\d+)\]|\.([A-Za-z_][A-Za-z0-9_-]*)")
_INTEGER = re.compile(r"^-?\d+$")
# How the program's messages say to change a setting; `make config` says it its own way.
_PULUMI_CONFIG_SET = re.compile(r"`pulumi config set (\S+) (\S+)`")
# How the provider SDK's config/vars.py reads each key: `__config__.get_bool('insecure')`.
_PROVIDER_READ = re.compile(r"__config__\.get(?:_(bool|int|float))?\('([A-Za-z0-9]+)'\)")
_SCALAR_TYPES = {"bool": "boolean", "int": "integer", "float": "number"}
# Where the region does not matter to a check: the program's own region check needs one.
_ANY_REGION = "us-east-1"


@dataclass(frozen=True)
class Step:
    """One `pulumi config` command: set `key` to `value`, or remove `key`."""

    key: str
    value: str | None
    """None: remove the key."""
    path: bool = False


@dataclass(frozen=True)
class Change:
    """What `make config` will do, checked."""

    key: str
    """The full key, `<namespace>:<name>` plus the path if any."""
    value: str
    steps: tuple[Step, ...]
    warnings: tuple[str, ...] = ()


def plan_change(
    project: Project, settings: StackSettings, key: str | None, value: str | None, environ: Mapping[str, str]
) -> Change:
    """Check `key` and `value` against Pulumi.yaml and the lab's own checks; the commands that set it.

    Raises LabError (BAD_INPUT, one line naming the key) for an unknown key or a value the lab refuses."""
    if not key:
        raise LabError(f"KEY is not set: name the setting and its value, e.g. {EXAMPLE}", BAD_INPUT)
    match = _KEY.match(key)
    if not match:
        raise LabError(
            f"KEY={key!r} is not a setting name such as forwarderBuild, aws:region or 'extraLogTypes[0]'", BAD_INPUT
        )
    if value is None:
        raise LabError(f"VALUE is not set: make config KEY={key} VALUE=... (VALUE= sets an empty text)", BAD_INPUT)
    namespace, name = match["namespace"] or project.name, match["name"]
    segments = [int(index) if index else str(field) for index, field in _SEGMENT.findall(match["path"])]
    base = f"{namespace}:{name}"
    shown = f"{base}{match['path']}"
    if namespace == project.name:
        steps, new = _project_steps(project, settings, name, segments, value)
    elif namespace == AWS:
        steps, new = _aws_steps(settings, name, segments, value)
    else:
        raise LabError(
            f"KEY={key!r}: the lab reads no '{namespace}:' settings, only those in Pulumi.yaml (e.g. forwarderBuild) "
            "and the AWS provider's (e.g. aws:region)",
            BAD_INPUT,
        )
    warnings = _check_with_the_program(project, settings, base, new, environ)
    return Change(shown, value, tuple(steps), warnings)


def _unknown(key: str, known: list[str], where: str) -> LabError:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return LabError(f"unknown setting KEY={key!r}{hint}: {where}", BAD_INPUT)


def _project_steps(
    project: Project, settings: StackSettings, name: str, segments: list[int | str], value: str
) -> tuple[list[Step], Any]:
    schema = project.settings_schema()
    if name not in schema:
        raise _unknown(name, sorted(schema), "the settings are those of Pulumi.yaml's config, e.g. forwarderBuild")
    declared = schema[name]
    kind = str(declared.get("type", "string"))
    base = f"{project.name}:{name}"
    if kind != "array":
        if segments:
            raise LabError(f"{name} is a {kind}, not a list: no path after it (KEY={name})", BAD_INPUT)
        scalar = _scalar(name, kind, value)
        return [Step(name, scalar)], scalar
    current = _structured(settings.values.get(base), declared.get("default", []))
    if segments:
        if len(segments) != 1 or not isinstance(segments[0], int):
            raise LabError(f"{name} is a list of texts: its items are {name}[0], {name}[1], ...", BAD_INPUT)
        index = segments[0]
        if not isinstance(current, list) or index > len(current):
            count = len(current) if isinstance(current, list) else 0
            raise LabError(
                f"{name}[{index}]: the list holds {count} item(s) now, so the next one is {name}[{count}]", BAD_INPUT
            )
        _check_list_item(name, value)
        items = list(current)
        items[index:index + 1] = [value]
        return [Step(f"{name}[{index}]", value, path=True)], items
    items = _json_list(name, value)
    if not items and declared.get("default") != []:
        raise LabError(
            f"{name}: an empty list cannot be stored (without the setting, its default "
            f"{json.dumps(declared.get('default'))} applies)",
            BAD_INPUT,
        )
    return _list_steps(name, base in settings.values, items), items


def _aws_steps(settings: StackSettings, name: str, segments: list[int | str], value: str) -> tuple[list[Step], Any]:
    known = aws_provider_keys()
    if known is not None and name not in known:
        raise _unknown(f"aws:{name}", [f"aws:{k}" for k in sorted(known)], "not a key of the AWS provider")
    kind = (known or {}).get(name, "string")
    key, base = f"aws:{name}", f"aws:{name}"
    if kind != "string":
        if segments:
            raise LabError(f"{key} is a {kind}: no path after it", BAD_INPUT)
        scalar = _scalar(key, kind, value)
        return [Step(key, scalar)], scalar
    if segments:
        # Objects such as aws:assumeRoles are set one field at a time; Pulumi types the leaf as it reads it.
        path = "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in segments)
        current = _structured(settings.values.get(base), None)
        return [Step(f"{key}{path}", value, path=True)], _set_path(current, segments, _path_leaf(value), key)
    if value.startswith("{"):
        raise LabError(f"{key}: set an object one field at a time, e.g. KEY='aws:assumeRoles[0].roleArn'", BAD_INPUT)
    if value.startswith("["):
        items = _json_list(key, value)
        return _list_steps(key, base in settings.values, items), items
    return [Step(key, value)], value


def _scalar(key: str, kind: str, value: str) -> str:
    if kind == "integer":
        if not _INTEGER.match(value.strip()):
            raise LabError(f"{key}: VALUE={value!r} is not a whole number", BAD_INPUT)
        return str(int(value))
    if kind == "number":
        try:
            float(value)
        except ValueError:
            raise LabError(f"{key}: VALUE={value!r} is not a number", BAD_INPUT) from None
        return value.strip()
    if kind == "boolean":
        if value.strip().lower() not in ("true", "false"):
            raise LabError(f"{key}: VALUE={value!r} must be true or false", BAD_INPUT)
        return value.strip().lower()
    return value


def _json_list(key: str, value: str) -> list[str]:
    try:
        items = json.loads(value)
    except json.JSONDecodeError:
        items = None
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise LabError(
            f"{key} is a list: VALUE='[\"a\", \"b\"]' (JSON) sets all of it, KEY='{key}[0]' VALUE=a one item; "
            f"got VALUE={value!r}",
            BAD_INPUT,
        )
    for item in items:
        _check_list_item(key, item)
    return items


def _check_list_item(key: str, item: str) -> None:
    # `pulumi config set --path` stores true, false and whole numbers as such, and the list holds texts.
    if item in ("true", "false") or _INTEGER.match(item):
        kind = "number" if _INTEGER.match(item) else "boolean"
        raise LabError(f"{key}: the item {item!r} would be stored as a {kind}, not as the text a list holds", BAD_INPUT)


def _list_steps(key: str, present: bool, items: list[str]) -> list[Step]:
    steps = [Step(key, None)] if present else []
    return steps + [Step(f"{key}[{index}]", item, path=True) for index, item in enumerate(items)]


def _path_leaf(value: str) -> Any:
    """The value as `pulumi config set --path` stores it: true/false and whole numbers typed, the rest text."""
    if value in ("true", "false"):
        return value == "true"
    return int(value) if _INTEGER.match(value) else value


def _structured(stored: Any, default: Any) -> Any:
    """A setting as the stack file holds it (YAML structure, or JSON text), else `default`."""
    if stored is None:
        return default
    if isinstance(stored, str) and stored[:1] in ("[", "{"):
        try:
            return json.loads(stored)
        except json.JSONDecodeError:
            return stored
    return stored


def _set_path(current: Any, segments: list[int | str], leaf: Any, key: str) -> Any:
    """`current` with the value at `segments` replaced, as `pulumi config set --path` would."""
    if not segments:
        return leaf
    head, rest = segments[0], segments[1:]
    if isinstance(head, int):
        items = list(current) if isinstance(current, list) else []
        if head > len(items):
            raise LabError(f"{key}: index {head} is past the end of the list ({len(items)} items)", BAD_INPUT)
        if head == len(items):
            items.append(None)
        items[head] = _set_path(items[head], rest, leaf, key)
        return items
    fields = dict(current) if isinstance(current, dict) else {}
    fields[head] = _set_path(fields.get(head), rest, leaf, key)
    return fields


def aws_provider_keys() -> dict[str, str] | None:
    """The AWS provider's config keys and their types, as the installed pulumi_aws reads them; None if absent."""
    spec = importlib.util.find_spec("pulumi_aws")
    if spec is None or not spec.submodule_search_locations:
        return None
    source = Path(next(iter(spec.submodule_search_locations))) / "config" / "vars.py"
    try:
        text = source.read_text()
    except OSError:
        return None
    return {name: _SCALAR_TYPES.get(kind, "string") for kind, name in _PROVIDER_READ.findall(text)} or None


def _program_text(value: Any) -> str:
    """A setting as the Pulumi program reads it: structures as JSON, booleans as true/false."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def _check_with_the_program(
    project: Project, settings: StackSettings, base: str, new: Any, environ: Mapping[str, str]
) -> tuple[str, ...]:
    """Run the program's own checks on the settings with the new value; refuse what they refuse about `base`."""
    before = {
        key: _program_text(value)
        for key, value in settings.values.items()
        if not (isinstance(value, dict) and "secure" in value)  # a secret: not readable here, its default stands in
    }
    after = {**before, base: _program_text(new)}
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or _ANY_REGION
    problem = _program_check(project.name, settings.stack, after, {"AWS_REGION": region})
    if problem is None:
        return ()
    setting, message = problem
    message = _PULUMI_CONFIG_SET.sub(lambda m: config_hint(settings.stack, m[1], m[2], quote=False), message)
    if _program_check(project.name, settings.stack, before, {"AWS_REGION": region}) == problem:
        return (f"the stack's settings already have a problem 'make up' will stop at: {setting}: {message}",)
    named = setting if ":" in setting else f"{project.name}:{setting}"
    if named == base:
        raise LabError(f"{setting}: {message}", BAD_INPUT)
    return (f"with this value, 'make up' will stop at {setting}: {message}",)


def _program_check(
    project: str, stack: str, config: dict[str, str], environ: dict[str, str]
) -> tuple[str, str] | None:
    """(setting, message) of the first error the program's stack_config finds in `config`, or None."""
    import pulumi  # heavy: only `make config` needs the program's checks

    from components.errors import ConfigError
    from components.stack_config import check_kubernetes_version, read_lab_args

    def check() -> tuple[str, str] | None:
        pulumi.runtime.set_all_config(config)  # a context variable: this copied context only
        try:
            args = read_lab_args(pulumi.Config(project), pulumi.Config(AWS), environ, project=project, stack=stack)
            check_kubernetes_version(args, offered=None)
        except ConfigError as err:
            return err.setting, err.message
        return None

    return contextvars.copy_context().run(check)
