"""Component arguments that Python callers and other languages fill in alike.

Every component takes one frozen dataclass of arguments, checked when it is built (errors name the field).
The component package (provider/) serves the same classes to TypeScript, Go or YAML programs; two things
make that work:

- `schema_args`: Pulumi's schema analyzer (pulumi.provider.experimental) reads each class's annotations,
  and there only ``Optional[...]`` marks a property a caller may leave out. A field with a default may be
  left out, so the decorator marks it Optional in the annotations the analyzer reads. Type checkers and
  the dataclass itself still see the declared type and default.
- `from_inputs`: the provider host hands a component its arguments as a dict (snake_case keys, nested
  types as dicts, values that depend on other resources as Outputs). It builds the dataclass from it, so
  the same checks run, and names the schema's (camelCase) property in every error.

Also the enumerations the arguments use: the schema has enums, not Literal types.
"""

import dataclasses
import difflib
import inspect
import types
import typing
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any, Optional, TypeVar, Union

import pulumi

from .errors import ConfigError

A = TypeVar("A")


class Architecture(StrEnum):
    """CPU architecture of a cluster's nodes."""

    AMD64 = "amd64"
    """x86-64 (Intel, AMD)."""
    ARM64 = "arm64"
    """64-bit ARM (AWS Graviton)."""


class ForwarderBuild(StrEnum):
    """How the forwarder's image comes about when no ready image is given."""

    DOCKER = "docker"
    """Built from the bundled forwarder's Dockerfile where `pulumi up` runs (needs a Docker engine), pushed to a
    stack-owned ECR repository."""
    SOURCE = "source"
    """No build: the official Python image runs the bundled source from a ConfigMap."""


class AuditSource(StrEnum):
    """Where the forwarder reads the cluster's audit log."""

    POLL = "poll"
    """FilterLogEvents on the log group: nothing more in AWS, but one account follows about 1,000 events/s at best
    (that call's quota, 5 per second per account and Region, cannot be raised)."""
    KINESIS = "kinesis"
    """A subscription filter pushes the log group into a Kinesis Data Stream the component creates, and the
    forwarder reads the stream: no FilterLogEvents calls, far more events per second."""


def check_whole_number(setting: str, value: object, lowest: int, highest: int, none_means: str = "") -> None:
    """Refuse anything but a whole number from `lowest` to `highest` (bools too); `none_means` says what None
    would do, for settings that take it."""
    if isinstance(value, bool) or not isinstance(value, int) or not lowest <= value <= highest:
        also = f" (or none for {none_means})" if none_means else ""
        raise ConfigError(setting, f"must be a whole number from {lowest} to {highest}{also}, got {value!r}")


def _is_optional(hint: Any) -> bool:
    return typing.get_origin(hint) in (Union, types.UnionType) and type(None) in typing.get_args(hint)


def schema_args(cls: type[A]) -> type[A]:
    """Class decorator for an args dataclass: fields with a default become Optional for the schema."""
    declared = inspect.get_annotations(cls, eval_str=True)
    schema: dict[str, Any] = {}
    for item in dataclasses.fields(cls):  # type: ignore[arg-type]
        hint = declared[item.name]
        has_default = item.default is not dataclasses.MISSING or item.default_factory is not dataclasses.MISSING
        schema[item.name] = Optional[hint] if has_default and not _is_optional(hint) else hint  # noqa: UP045
    cls.__declared_types__ = declared  # type: ignore[attr-defined]
    cls.__annotations__ = schema
    return cls


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def _declared(cls: type) -> dict[str, Any]:
    return getattr(cls, "__declared_types__", None) or inspect.get_annotations(cls, eval_str=True)


def schema_path(cls: type, path: str) -> str:
    """A setting's path in the schema's spelling: its fields camelCase (`resources.cpu_limit` ->
    `resources.cpuLimit`), anything below a field that is data kept as is (`audit_values.falco.rule_matching` ->
    `auditValues.falco.rule_matching`)."""
    parts = path.split(".")
    current: type | None = cls
    for index, part in enumerate(parts):
        declared = _declared(current) if current is not None else {}
        if part not in declared:
            break
        parts[index] = _camel(part)
        current = _dataclass_in(declared[part])
    return ".".join(parts)


def _dataclass_in(hint: Any) -> type | None:
    """The dataclass a field holds (through Optional), or None."""
    for candidate in (hint, *typing.get_args(hint)):
        if isinstance(candidate, type) and dataclasses.is_dataclass(candidate):
            return candidate
    return None


def _takes_outputs(hint: Any) -> bool:
    """Whether a field's type lets a caller pass an Output for the whole value (pulumi.Input[...], Output[...])."""
    members = typing.get_args(hint) if typing.get_origin(hint) in (Union, types.UnionType) else (hint,)
    # pulumi.Input[T] is Union[T, Awaitable[T], "Output[T]"]: the Output member is a forward reference.
    return any(typing.get_origin(m) is pulumi.Output or isinstance(m, typing.ForwardRef) for m in members)


def unknown_setting(key: str, known: Iterable[str], *, ignore_case: bool = False, otherwise: str = "") -> str:
    """Why `key` is refused, with the nearest known name in the caller's spelling (camelCase or snake_case).

    `ignore_case`: a name that differs only in case (nodeCOUNT, SidekickUi) is a near miss too. `otherwise`: the
    hint when no name is near (e.g. the names there are)."""
    camel = "_" not in key and key != key.lower()
    names = {(_camel(name) if camel else name): name for name in known}
    close = difflib.get_close_matches(key, list(names), n=1, cutoff=0.6)
    if not close and ignore_case:
        close = [name for name in names if name.lower() == key.lower()]
    if close:
        return f"unknown setting; did you mean {close[0]}?"
    return f"unknown setting; {otherwise}" if otherwise else "unknown setting"


def from_inputs(cls: type[A], value: A | Mapping[str, Any]) -> A:
    """`value` as a `cls`: as is when it already is one, else built from the dict the provider host passes.

    Raises ConfigError naming the property in the schema's spelling (e.g. `cluster.nodeCount`)."""
    if isinstance(value, cls):
        return value
    try:
        return _build(cls, value)
    except ConfigError as err:
        raise ConfigError(schema_path(cls, err.setting), err.message) from err


def _build(cls: type[A], value: object) -> A:
    if not isinstance(value, Mapping):
        raise ConfigError(cls.__name__, f"must be an object of {cls.__name__}'s fields, got {type(value).__name__}")
    declared = _declared(cls)
    unknown = sorted(set(value) - set(declared))
    if unknown:
        raise ConfigError(unknown[0], unknown_setting(unknown[0], declared))
    fields: dict[str, Any] = {}
    for name, item in value.items():
        hint = declared[name]
        nested = _dataclass_in(hint)
        if nested is not None and isinstance(item, Mapping):
            try:
                item = _build(nested, item)
            except ConfigError as err:
                raise ConfigError(f"{name}.{err.setting}", err.message) from err
        elif isinstance(item, pulumi.Output) and not _takes_outputs(hint):
            raise ConfigError(
                name, "must be known when the program runs (a literal or a config value), not another resource's output"
            )
        elif isinstance(item, float) and item.is_integer() and int in (hint, *typing.get_args(hint)):
            # Numbers cross the wire as floats, and the host (pulumi 3.272) hands integers on as sent.
            item = int(item)
        fields[name] = item
    return cls(**fields)
