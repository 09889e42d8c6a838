"""Rules files read, collected and compiled as Falco 0.44.1's engine does (falco userspace/engine:
rule_loader_reader.cpp, rule_loader_collector.cpp, rule_loader_compiler.cpp, filter_macro_resolver.cpp).

Files load in order into one collection; after each file everything collected so far is compiled
again, so a file that only works together with a later one fails as it does in Falco. What Falco's
loader does that matters for results:

- Redefining a list, macro or rule keeps its first position (rule order decides ``rule_matching:
  first``); ``append``/``override: append`` add to it (a condition after a space, list items at
  the end, tags into a set); ``override: replace`` swaps the value. Rule overrides may append
  condition, output, desc, tags, exceptions and replace those plus priority, enabled and the rest.
- Lists are substituted into condition *text* before parsing: every occurrence of a list's name
  between blanks, ``(``, ``)``, ``,``, ``=`` or the ends, in list definition order, becomes its items
  (an item with a space gets quotes). A list item naming an earlier list is expanded one level.
- A macro sees only macros defined before its last definition; a rule sees all of them.
- Exceptions become text too: ``(<condition>) and not ((f1 = v1 and f2 in (a, b)) or ...)``.
- A rule of an unknown source is skipped with a warning; the ``syscall`` source (a rule without
  ``source``) is known to Falco but refused here as UnsupportedError.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final

import yaml

from . import condition as cond
from .compiler import Predicate, compile_filter
from .errors import ConditionSyntaxError, RulesLoadError, UnsupportedError
from .fields import FieldError, resolve
from .output import FormatError, OutputFormat, parse_format

ENGINE_VERSION: Final = (0, 62, 0)
"""falco userspace/engine/falco_engine_version.h at 0.44.1."""
SOURCE: Final = "k8s_audit"
SYSCALL_SOURCE: Final = "syscall"
PRIORITIES: Final = ("Emergency", "Alert", "Critical", "Error", "Warning", "Notice", "Informational", "Debug")

_IDENTIFIER: Final = re.compile(r"[a-zA-Z]+[a-zA-Z0-9_]*")
_BARE_STR: Final = re.compile(r"[^()\"' \t\n\r\f\v=,]+")
_SPACE: Final = " \t\n\v\f\r"
# compile errors that `skip-if-unknown-filter: true` turns into a warning (rule_loader_compiler.cpp)
_UNKNOWN_FIELD_ERRORS: Final = (
    "nonexistent field", "invalid formatting token", "unknown event type", "unknown filter:",
)  # fmt: skip


def parse_priority(text: str) -> int | None:
    """falco_common::parse_priority: a name in any case, or ``info``; the index (0 most severe)."""
    lowered = text.lower()
    for i, name in enumerate(PRIORITIES):
        if lowered == name.lower() or (i == 6 and lowered == "info"):
            return i
    return None


# --- YAML as yaml-cpp hands it to the reader: scalars as text, null distinct -----------------------


class _Loader(yaml.SafeLoader):
    pass


def _as_text(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    return str(loader.construct_scalar(node))  # type: ignore[arg-type]


def _mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[str, Any]:
    mapping: dict[str, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        key = "null" if key is None else str(key)
        if key in mapping:
            line = key_node.start_mark.line + 1
            raise UnsupportedError(f"duplicate key {key!r} in a rules file mapping (line {line})")
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


for _tag in ("bool", "int", "float", "timestamp", "binary", "value"):
    _Loader.add_constructor(f"tag:yaml.org,2002:{_tag}", _as_text)
_Loader.add_constructor("tag:yaml.org,2002:map", _mapping)


def _yaml_bool(text: str) -> bool | None:
    """yaml-cpp ``convert<bool>``: y/n, yes/no, true/false, on/off in lower, UPPER or Capitalized case."""
    flexible = text.islower() or text.isupper() or (text[:1].isupper() and text[1:].islower())
    if not flexible:
        return None
    lowered = text.lower()
    if lowered in ("y", "yes", "true", "on"):
        return True
    if lowered in ("n", "no", "false", "off"):
        return False
    return None


def _yaml_uint(text: str) -> int | None:
    """yaml-cpp ``convert<uint32_t>`` (base from the prefix, like a C++ stream without ``dec``)."""
    m = re.fullmatch(r"(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)[ \t\n\v\f\r]*", text)
    if m is None:
        return None
    token = m[1]
    value = int(token, 16) if token[:2].lower() == "0x" else int(token, 8) if token.startswith("0") else int(token)
    return value if value < 2**32 else None


def _version(text: str) -> tuple[int, int, int] | None:
    """sinsp_version: three unsigned numbers ``%u.%u.%u`` at the start of the text."""
    m = re.match(r"(\d+)\.(\d+)\.(\d+)", text)
    return None if m is None else (int(m[1]), int(m[2]), int(m[3]))


def _compatible(have: tuple[int, int, int], need: tuple[int, int, int]) -> bool:
    return have[0] == need[0] and have >= need


# --- collected definitions ---------------------------------------------------------------------------


@dataclass
class _Entry:
    """rule_exception_info::entry: one scalar, or a list of entries."""

    is_list: bool = False
    item: str = ""
    items: list[_Entry] = field(default_factory=list)

    def is_valid(self) -> bool:
        return bool(self.items) if self.is_list else bool(self.item)


@dataclass
class _Exception:
    name: str
    fields: _Entry
    comps: _Entry
    values: list[_Entry]


@dataclass
class _ListInfo:
    name: str
    items: list[str]
    index: int = 0
    visibility: int = 0


@dataclass
class _MacroInfo:
    name: str
    cond: str
    index: int = 0
    visibility: int = 0


@dataclass
class _RuleInfo:
    name: str
    cond: str = ""
    output: str = ""
    desc: str = ""
    priority: int = 7
    source: str = SYSCALL_SOURCE
    tags: set[str] = field(default_factory=set)
    exceptions: list[_Exception] = field(default_factory=list)
    enabled: bool = True
    skip_if_unknown_filter: bool = False
    unknown_source: bool = False
    index: int = 0
    visibility: int = 0


@dataclass
class _RuleUpdate:
    name: str
    source: str = ""
    cond: str | None = None
    output: str | None = None
    desc: str | None = None
    tags: set[str] | None = None
    exceptions: list[_Exception] | None = None
    priority: int | None = None
    enabled: bool | None = None
    skip_if_unknown_filter: bool | None = None
    other: bool = False
    """capture, capture_duration or warn_evttypes: no effect on alerts."""

    def has_any_value(self) -> bool:
        return self.other or any(
            v is not None
            for v in (self.cond, self.output, self.desc, self.tags, self.exceptions, self.priority, self.enabled,
                      self.skip_if_unknown_filter)
        )  # fmt: skip


@dataclass(frozen=True)
class CompiledRule:
    """A rule as the engine runs it."""

    name: str
    priority: int
    """0 (Emergency) to 7 (Debug)."""
    source: str
    tags: tuple[str, ...]
    """Sorted, as Falco's set writes them."""
    output: OutputFormat
    predicate: Predicate
    enabled: bool
    condition: str
    """The condition text as Falco compiled it (exceptions added, lists substituted)."""


class _LoadFailureError(Exception):
    """A load error before the file/item context is added."""


def _fail(message: str) -> _LoadFailureError:
    return _LoadFailureError(message)


class RulesCollection:
    """Falco's rule collector and compiler for the ``k8s_audit`` source."""

    def __init__(self) -> None:
        self.lists: dict[str, _ListInfo] = {}
        self.macros: dict[str, _MacroInfo] = {}
        self.rules: dict[str, _RuleInfo] = {}
        self.plugin_requirements: list[list[tuple[str, str]]] = []
        self.warnings: list[str] = []
        self.compiled: list[CompiledRule] = []
        self._index = 0

    # --- reading ---------------------------------------------------------------------------------

    def load(self, text: str, name: str) -> None:
        """Read one rules file and compile everything collected; RulesLoadError as Falco reports it."""
        try:
            documents = list(yaml.load_all(text, Loader=_Loader))  # noqa: S506 - a SafeLoader subclass
        except yaml.YAMLError as e:
            raise RulesLoadError(f"{name}: YAML parse error: {e}") from None
        for document in documents:
            if document is None:
                continue
            if not isinstance(document, list):
                message = "Rules content is not yaml array of objects" if isinstance(document, dict) else (
                    "Rules content is not yaml"
                )
                raise RulesLoadError(f"{name}: {message}")
            for item in document:
                if item is None:
                    continue
                try:
                    self._read_item(item, name)
                except _LoadFailureError as e:
                    raise RulesLoadError(f"{name}: {_describe(item)}: {e}") from None
        self._compile(name)

    def _warn(self, where: str, message: str) -> None:
        self.warnings.append(f"{where}: {message}")

    def _read_item(self, item: Any, file: str) -> None:
        if not isinstance(item, dict):
            raise _fail("Unexpected element type. Each element should be a yaml associative array.")
        where = f"{file}: {_describe(item)}"
        if "required_engine_version" in item:
            self._read_engine_version(item)
            self._unknown_keys(item, {"required_engine_version"}, where)
        elif "required_plugin_versions" in item:
            self._read_plugin_versions(item["required_plugin_versions"])
            self._unknown_keys(item, {"required_plugin_versions"}, where)
        elif "list" in item:
            self._read_list(item, where)
        elif "macro" in item:
            self._read_macro(item, where)
        elif "rule" in item:
            self._read_rule(item, where)
        else:
            self._warn(where, "Unknown top level item")

    def _unknown_keys(self, item: dict[str, Any], expected: set[str], where: str) -> None:
        for key in item:
            if key not in expected:
                self._warn(where, f"Unknown key '{key}'. The key will be ignored.")

    def _read_engine_version(self, item: dict[str, Any]) -> None:
        text = _decode(item, "required_engine_version")
        minor = _yaml_uint(text)
        version = (ENGINE_VERSION[0], minor, ENGINE_VERSION[2]) if minor is not None else _version(text)
        if version is None:
            raise _fail(f"Unable to parse engine version '{text}' as a semver string. Expected \"x.y.z\" format.")
        if not _compatible(ENGINE_VERSION, version):
            need, have = ".".join(map(str, version)), ".".join(map(str, ENGINE_VERSION))
            raise _fail(f"Rules require engine version {need}, but engine version is {have}")

    def _read_plugin_versions(self, value: Any) -> None:
        if not isinstance(value, list):
            raise _fail("Value of required_plugin_versions must be a sequence")
        for plugin in value:
            if not isinstance(plugin, dict):
                raise _fail("Plugin version must be a mapping")
            alternatives = [(_decode(plugin, "name"), _decode(plugin, "version"))]
            more = plugin.get("alternatives")
            if "alternatives" in plugin:
                if not isinstance(more, list):
                    raise _fail("Value of plugin version alternatives must be a sequence")
                for alternative in more:
                    if not isinstance(alternative, dict):
                        raise _fail("Plugin version alternative must be a mapping")
                    alternatives.append((_decode(alternative, "name"), _decode(alternative, "version")))
            seen: set[str] = set()
            for req_name, req_version in alternatives:
                if _version(req_version) is None:
                    raise _fail(f"Invalid required version '{req_version}' for plugin '{req_name}'")
                if req_name in seen:
                    raise _fail(f"Defined multiple alternative version requirements for plugin '{req_name}'")
                seen.add(req_name)
            self.plugin_requirements.append(alternatives)

    def _overrides(
        self, item: dict[str, Any], appendable: set[str], replaceable: set[str]
    ) -> tuple[set[str], set[str]]:
        value = item.get("override")
        append: set[str] = set()
        replace: set[str] = set()
        if not isinstance(value, dict):
            if isinstance(value, list):
                raise _fail("'override' must be a mapping")
            return append, replace  # yaml-cpp iterates a scalar as empty
        for key, operation in value.items():
            operation = "null" if operation is None else operation
            if not isinstance(operation, str):
                raise _fail(f"Invalid override operation for key '{key}'")
            if operation == "append":
                if key not in appendable:
                    raise _fail(f"Key '{key}' cannot be appended to, use 'replace' instead")
                append.add(key)
            elif operation == "replace":
                if key not in replaceable:
                    raise _fail(f"Key '{key}' cannot be replaced")
                replace.add(key)
            else:
                allowed = ("append " if key in appendable else "") + ("replace " if key in replaceable else "")
                raise _fail(
                    f"Invalid override operation for key '{key}': '{operation}'. Allowed values are: {allowed}"
                )
        return append, replace

    def _append_flag(self, item: dict[str, Any], where: str) -> bool:
        flag = _decode_bool(item, "append", optional=True)
        if flag:
            self._warn(
                where,
                "'append' key is deprecated. Add an 'append' entry (e.g. 'condition: append') under 'override' "
                "instead.",
            )
        return bool(flag)

    def _read_list(self, item: dict[str, Any], where: str) -> None:
        name = _decode(item, "list")
        if not _BARE_STR.fullmatch(name):
            self._warn(where, "List has an invalid name.")
        items = _decode_items(item)
        appended = self._append_flag(item, where)
        append, replace = self._overrides(item, {"items"}, {"items"})
        if appended and (append or replace):
            raise _fail(_ERROR_OVERRIDE_APPEND)
        if appended or "items" in append:
            prev = self.lists.get(name)
            if prev is None:
                raise _fail(
                    "List uses 'append' or 'override.items: append' but no list by that name already exists"
                )
            prev.items.extend(items)
            prev.visibility = self._next()
        else:
            self._define(self.lists, _ListInfo(name, items))
        self._unknown_keys(item, {"list", "items", "append", "override"}, where)

    def _read_macro(self, item: dict[str, Any], where: str) -> None:
        name = _decode(item, "macro")
        if not _IDENTIFIER.fullmatch(name):
            self._warn(where, "Macro has an invalid name.")
        condition = _decode(item, "condition")
        appended = self._append_flag(item, where)
        append, replace = self._overrides(item, {"condition"}, {"condition"})
        if appended and (append or replace):
            raise _fail(_ERROR_OVERRIDE_APPEND)
        if appended or "condition" in append:
            prev = self.macros.get(name)
            if prev is None:
                raise _fail(
                    "Macro uses 'append' or 'override.condition: append' but no macro by that name already exists"
                )
            prev.cond += " " + condition
            prev.visibility = self._next()
        else:
            self._define(self.macros, _MacroInfo(name, condition))
        self._unknown_keys(item, {"macro", "condition", "append", "override"}, where)

    def _read_rule(self, item: dict[str, Any], where: str) -> None:
        name = _decode(item, "rule")
        source = _decode(item, "source", optional=True, can_be_empty=True) or ""
        appended = self._append_flag(item, where)
        appendable = {"condition", "output", "desc", "tags", "exceptions"}
        replaceable = {
            "condition", "output", "desc", "priority", "capture", "capture_duration", "tags", "exceptions",
            "enabled", "warn_evttypes", "skip-if-unknown-filter",
        }  # fmt: skip
        append, replace = self._overrides(item, appendable, replaceable)
        if appended and (append or replace):
            raise _fail(_ERROR_OVERRIDE_APPEND)
        if append or replace:
            expected = {k for k in appendable | replaceable if k in item}
            for keys, mode in ((append, "append"), (replace, "replace")):
                if not keys:
                    continue
                update = _RuleUpdate(name)
                for key in sorted(keys):
                    if key not in expected:
                        raise _fail(f"An {mode} override for '{key}' was specified but '{key}' is not defined")
                    expected.discard(key)
                    self._read_update_key(item, key, mode, update, source)
                if mode == "append":
                    self._append_rule(update)
                else:
                    self._replace_rule(update)
            for key in sorted(expected):
                raise _fail(f"Unexpected key '{key}': no corresponding entry under 'override' is defined.")
        elif appended:
            update = _RuleUpdate(name, source=source)
            if "condition" in item:
                update.cond = _decode(item, "condition")
            if "exceptions" in item:
                update.exceptions = _read_exceptions(item, append=True, warn=lambda m: self._warn(where, m))
            self._append_rule(update)
        elif not any(k in item for k in ("condition", "output", "desc", "priority")):
            enabled = _decode_bool(item, "enabled")
            self._warn(where, "The standalone 'enabled' key usage is deprecated.")
            prev = self.rules.get(name)
            if prev is None:
                raise _fail("Rule has 'enabled' key but no rule by that name already exists")
            prev.enabled = bool(enabled)
        else:
            rule = _RuleInfo(name)
            rule.cond = _decode(item, "condition")
            rule.output = _decode(item, "output").strip(_SPACE)
            rule.desc = _decode(item, "desc")
            priority = parse_priority(_decode(item, "priority"))
            if priority is None:
                raise _fail("Invalid priority")
            rule.priority = priority
            rule.source = _decode(item, "source", optional=True) or SYSCALL_SOURCE
            rule.enabled = _decode_bool(item, "enabled", optional=True) is not False
            for key in ("capture", "warn_evttypes"):
                _decode_bool(item, key, optional=True)
            if "capture_duration" in item and _yaml_uint(_decode(item, "capture_duration")) is None:
                raise _fail("Can't decode YAML scalar value")
            rule.skip_if_unknown_filter = bool(_decode_bool(item, "skip-if-unknown-filter", optional=True))
            rule.tags = _decode_tags(item) or set()
            rule.exceptions = _read_exceptions(item, append=False, warn=lambda m: self._warn(where, m))
            self._define_rule(rule, where)
        self._unknown_keys(
            item,
            {"rule", "condition", "output", "desc", "priority", "source", "enabled", "capture", "capture_duration",
             "warn_evttypes", "skip-if-unknown-filter", "tags", "exceptions", "override", "append"},
            where,
        )  # fmt: skip

    def _read_update_key(self, item: dict[str, Any], key: str, mode: str, update: _RuleUpdate, source: str) -> None:
        if key == "condition":
            update.source = source
            update.cond = _decode(item, "condition")
        elif key == "exceptions":
            update.exceptions = _read_exceptions(item, append=mode == "append", warn=lambda m: None)
        elif key == "output":
            update.output = _decode(item, "output")
        elif key == "desc":
            update.desc = _decode(item, "desc")
        elif key == "tags":
            update.tags = _decode_tags(item)
        elif key == "priority":
            update.priority = parse_priority(_decode(item, "priority"))
            if update.priority is None:
                raise _fail("Invalid priority")
        elif key == "enabled":
            update.enabled = _decode_bool(item, "enabled")
        elif key == "skip-if-unknown-filter":
            update.skip_if_unknown_filter = _decode_bool(item, "skip-if-unknown-filter")
        elif key == "capture_duration":
            if _yaml_uint(_decode(item, key)) is None:
                raise _fail("Can't decode YAML scalar value")
            update.other = True
        else:  # capture, warn_evttypes
            _decode_bool(item, key)
            update.other = True

    def _next(self) -> int:
        index = self._index
        self._index += 1
        return index

    def _define(self, table: dict[str, Any], info: Any) -> None:
        index = self._next()
        prev = table.get(info.name)
        info.index = prev.index if prev is not None else index
        info.visibility = index
        table[info.name] = info

    def _prev_rule(self, name: str, source: str) -> _RuleInfo | None:
        prev = self.rules.get(name)
        if prev is not None and prev.source and source and prev.source != source:
            raise _fail("Rule has been re-defined with a different source")
        return prev

    def _define_rule(self, rule: _RuleInfo, where: str) -> None:
        self._prev_rule(rule.name, rule.source)
        if rule.source not in (SOURCE, SYSCALL_SOURCE):
            rule.unknown_source = True
            self._warn(where, f"Unknown source {rule.source}, skipping")
        for ex in rule.exceptions:
            if not ex.fields.is_valid():
                raise _fail("Rule exception item must have fields property with a list of fields")
            self._validate_exception(rule, ex)
        self._define(self.rules, rule)

    def _validate_exception(self, rule: _RuleInfo, ex: _Exception) -> None:
        check_fields = rule.source == SOURCE and not rule.unknown_source
        if ex.fields.is_list:
            if not ex.comps.is_valid():
                ex.comps = _Entry(is_list=True, items=[_Entry(item="=") for _ in ex.fields.items])
            if len(ex.fields.items) != len(ex.comps.items):
                raise _fail("Fields and comps lists must have equal length")
            for comp in ex.comps.items:
                comp.item = comp.item.strip(" \t\r\n")
                if comp.item not in cond.OPERATORS:
                    raise _fail(f"'{comp.item}' is not a supported comparison operator")
            if check_fields:
                for entry in ex.fields.items:
                    _check_lhs_field(entry.item)
        else:
            if not ex.comps.is_valid():
                ex.comps = _Entry(item="in")
            if ex.comps.is_list:
                raise _fail("Fields and comps must both be strings")
            ex.comps.item = ex.comps.item.strip(" \t\r\n")
            if ex.comps.item not in ("in", "pmatch", "intersects"):
                raise _fail(
                    "When fields is a single value, comps must be one of (in, pmatch, intersects) "
                    "or a modifier operator (e.g. startswith oneof)"
                )
            if check_fields:
                _check_lhs_field(ex.fields.item)

    def _append_rule(self, update: _RuleUpdate) -> None:
        prev = self._prev_rule(update.name, update.source)
        if prev is None:
            raise _fail("Rule uses 'append' or 'override.<key>: append' but no rule by that name already exists")
        if not update.has_any_value():
            raise _fail("Appended rule must have exceptions or condition property")
        if update.cond:
            prev.cond += " " + update.cond
        if update.output:
            prev.output += " " + update.output
        if update.desc:
            prev.desc += " " + update.desc
        if update.tags is not None:
            prev.tags |= update.tags
        for ex in update.exceptions or []:
            existing = next((e for e in prev.exceptions if e.name == ex.name), None)
            if existing is None:
                if not ex.fields.is_valid():
                    raise _fail("Rule exception must have fields property with a list of fields")
                if not ex.values:
                    raise _fail("Rule exception must have values property with a list of values")
                self._validate_exception(prev, ex)
                prev.exceptions.append(ex)
            else:
                if ex.fields.is_valid():
                    raise _fail("Can not append exception fields to existing exception, only values")
                if ex.comps.is_valid():
                    raise _fail("Can not append exception comps to existing exception, only values")
                existing.values.extend(ex.values)
        prev.visibility = self._next()

    def _replace_rule(self, update: _RuleUpdate) -> None:
        prev = self._prev_rule(update.name, update.source)
        if prev is None:
            raise _fail("An 'override.<key>: replace' to a rule was requested but no rule by that name already exists")
        if not update.has_any_value():
            raise _fail("The rule must have at least one field that can be replaced")
        replaced = ("cond", "output", "desc", "tags", "exceptions", "priority", "enabled", "skip_if_unknown_filter")
        for attribute in replaced:
            value = getattr(update, attribute)
            if value is not None:
                setattr(prev, attribute, value)
        prev.visibility = self._next()

    # --- compiling -----------------------------------------------------------------------------

    def _compile(self, file: str) -> None:
        lists = self._compile_lists()
        macros = self._compile_macros(lists, file)
        compiled: list[CompiledRule] = []
        for rule in self.rules.values():
            if rule.unknown_source:
                continue
            where = f"{file}: rule '{rule.name}'"
            if rule.source == SYSCALL_SOURCE:
                raise UnsupportedError(f"{where}: source 'syscall' (no 'source: k8s_audit') is not supported")
            try:
                condition = _exceptions_condition(rule, rule.cond) if rule.exceptions else rule.cond
            except _LoadFailureError as e:
                raise RulesLoadError(f"{where}: exceptions: {e}") from None
            text = rule.output
            if "%container.info" in text:
                self._warn(where, "%container.info is deprecated and no more useful")
                text = text.replace("%container.info", "")
            try:
                if not text:
                    raise FormatError("empty formatting token")
                output = parse_format(text if text.startswith("*") else "*" + text)
            except FormatError as e:
                if rule.skip_if_unknown_filter and any(s in str(e) for s in _UNKNOWN_FIELD_ERRORS):
                    self._warn(where, str(e))
                    continue
                raise RulesLoadError(f"{where}: output: {e}") from None
            except UnsupportedError as e:
                raise UnsupportedError(f"{where}: output: {e}") from None
            try:
                parsed, condition = _parse_condition(condition, lists)
                node = self._resolve(parsed, macros, set(macros))
                predicate = compile_filter(node)
            except _LoadFailureError as e:
                raise RulesLoadError(f"{where}: condition: {e}") from None
            except FieldError as e:
                if rule.skip_if_unknown_filter and any(s in str(e) for s in _UNKNOWN_FIELD_ERRORS):
                    self._warn(where, str(e))
                    continue
                raise RulesLoadError(f"{where}: condition: {e}") from None
            except UnsupportedError as e:
                raise UnsupportedError(f"{where}: {e}") from None
            compiled.append(
                CompiledRule(rule.name, rule.priority, rule.source, tuple(sorted(rule.tags)), output, predicate,
                             rule.enabled, condition)
            )  # fmt: skip
        self.compiled = compiled

    def _compile_lists(self) -> list[tuple[str, list[str]]]:
        compiled = []
        for info in self.lists.values():
            items: list[str] = []
            for item in info.items:
                ref = self.lists.get(item)
                if ref is not None and ref.index < info.visibility:
                    items.extend(ref.items)
                else:
                    items.append(item)
            compiled.append((info.name, items))
        return compiled

    def _compile_macros(self, lists: list[tuple[str, list[str]]], file: str) -> dict[str, cond.Node]:
        parsed: dict[str, cond.Node] = {}
        for info in self.macros.values():
            try:
                parsed[info.name] = _parse_condition(info.cond, lists)[0]
            except _LoadFailureError as e:
                raise RulesLoadError(f"{file}: macro '{info.name}': condition: {e}") from None
        for info in self.macros.values():
            visible = {m.name for m in self.macros.values() if m.index < info.visibility}
            try:
                parsed[info.name] = self._resolve(parsed[info.name], parsed, visible)
            except _LoadFailureError as e:
                raise RulesLoadError(f"{file}: macro '{info.name}': condition: {e}") from None
        return parsed

    @staticmethod
    def _resolve(node: cond.Node, macros: dict[str, cond.Node], visible: set[str]) -> cond.Node:
        """filter_macro_resolver: identifiers replaced by (resolved copies of) visible macros."""
        errors: list[str] = []
        unknown: list[str] = []

        def visit(n: cond.Node, path: tuple[str, ...]) -> cond.Node:
            if isinstance(n, cond.And):
                return cond.And(tuple(visit(c, path) for c in n.children))
            if isinstance(n, cond.Or):
                return cond.Or(tuple(visit(c, path) for c in n.children))
            if isinstance(n, cond.Not):
                return cond.Not(visit(n.child, path))
            if isinstance(n, cond.Identifier):
                if n.name in visible:
                    if n.name in path:
                        errors.append(f"reference loop in macro '{n.name}'")
                        unknown.append(n.name)
                        return n
                    return visit(macros[n.name], (*path, n.name))
                unknown.append(n.name)
                return n
            return n

        try:
            resolved = visit(node, ())
        except RecursionError:
            raise UnsupportedError("macros nest too deeply for the evaluator") from None
        if errors:
            raise _fail(errors[0])
        if unknown:
            raise _fail(f"Undefined macro '{unknown[0]}' used in filter.")
        return resolved

    def check_plugin_requirements(self, plugins: dict[str, str]) -> None:
        """RulesLoadError as Falco reports an unmet ``required_plugin_versions`` after loading all files."""
        for alternatives in self.plugin_requirements:
            error = ""
            satisfied = False
            for req_name, req_version in alternatives:
                if req_name in plugins:
                    have = _version(plugins[req_name])
                    need = _version(req_version)
                    if have is None or need is None or not _compatible(have, need):
                        error = (
                            f"Plugin '{req_name}' version '{plugins[req_name]}' is not compatible with required "
                            f"plugin version '{req_version}'"
                        )
                    else:
                        satisfied = True
                    break
            if not satisfied:
                raise RulesLoadError(
                    error
                    or "Plugin requirement not satisfied, must load one of: "
                    + ", ".join(f"{n} (>= {v})" for n, v in alternatives)
                )


_ERROR_OVERRIDE_APPEND: Final = (
    "Keys 'override' and 'append: true' cannot be used together. Add an 'append' entry (e.g. "
    "'condition: append') under 'override' instead."
)


def _describe(item: Any) -> str:
    if isinstance(item, dict):
        for kind in ("rule", "macro", "list"):
            if kind in item:
                return f"{kind} '{item[kind]}'"
        for kind in ("required_engine_version", "required_plugin_versions"):
            if kind in item:
                return kind
    return "item"


def _decode(item: dict[str, Any], key: str, optional: bool = False, can_be_empty: bool = False) -> str:
    """rule_loader_reader ``decode_val``: a non-empty scalar (or "" when optional and absent)."""
    if key not in item:
        if optional:
            return ""
        raise _fail(f"Item has no mapping for key '{key}'")
    value = item[key]
    if value is None:
        if can_be_empty:
            return ""
        raise _fail(f"Mapping for key '{key}' is empty")
    if not isinstance(value, str):
        raise _fail(f"Value for '{key}' is not a scalar value")
    if not value:
        if can_be_empty:
            return ""
        raise _fail(f"Value for '{key}' must be non-empty")
    return value


def _decode_bool(item: dict[str, Any], key: str, optional: bool = False) -> bool | None:
    text = _decode(item, key, optional)
    if not text and optional:
        return None
    value = _yaml_bool(text)
    if value is None:
        raise _fail(f"Value for '{key}': Can't decode YAML scalar value")
    return value


def _decode_items(item: dict[str, Any]) -> list[str]:
    if "items" not in item:
        raise _fail("Item has no mapping for key 'items'")
    value = item["items"]
    if not isinstance(value, list):
        raise _fail("Value for 'items' is not a sequence")
    for v in value:
        if not isinstance(v, str):
            raise _fail("sequence value is not scalar")
    return list(value)


def _decode_tags(item: dict[str, Any]) -> set[str] | None:
    if "tags" not in item:
        return None
    value = item["tags"]
    if not isinstance(value, list):
        raise _fail("Value for 'tags' is not a sequence")
    for v in value:
        if not isinstance(v, str):
            raise _fail("sequence value is not scalar")
    return set(value)


def _entry(value: Any, what: str) -> _Entry:
    """decode_exception_info_entry of a defined YAML value: a non-empty scalar, a sequence of entries,
    or (null, mapping) an empty entry that is not valid."""
    if isinstance(value, str):
        if not value:
            raise _fail(f"Value for '{what}' must be non-empty")
        return _Entry(item=value)
    if isinstance(value, list):
        return _Entry(is_list=True, items=[_entry(v, what) for v in value])
    return _Entry()


def _read_exceptions(item: dict[str, Any], append: bool, warn: Any) -> list[_Exception]:
    value = item.get("exceptions")
    if value is None:
        return []
    if not isinstance(value, list):
        raise _fail("Rule exceptions must be a sequence")
    exceptions: list[_Exception] = []
    for ex in value:
        if not isinstance(ex, dict):
            raise _fail("Rule exception must be a mapping")
        name = _decode(ex, "name")
        if any(e.name == name for e in exceptions):
            warn(f"Multiple definitions of exception '{name}' in the same rule")
        if "fields" in ex:
            fields = _entry(ex["fields"], "fields")
        elif append:
            fields = _Entry()
        else:
            raise _fail("Item has no mapping for key 'fields'")
        comps = _entry(ex["comps"], "comps") if "comps" in ex else _Entry()
        values: list[_Entry] = []
        if "values" in ex:
            if not isinstance(ex["values"], list):
                raise _fail("Rule exception values must be a sequence")
            values = [_entry(v, "values") for v in ex["values"]]
        elif append:
            warn("Overriding/appending exception with no values")
        exceptions.append(_Exception(name, fields, comps, values))
    return exceptions


def _check_lhs_field(name: str) -> None:
    """falco_source::is_valid_lhs_field: the text names a field (argument included)."""
    if "(" in name:
        raise UnsupportedError(f"exception field {name!r} with a transformer is not supported by the evaluator")
    m = re.fullmatch(r"([^\[]+)(?:\[(.*)\])?", name, re.S)
    try:
        if m is None:
            raise FieldError(name)
        resolve(m[1], m[2])
    except FieldError:
        raise _fail(f"'{name}' is not a supported filter field") from None


def _quote_item(item: str) -> str:
    if " " in item and not item.startswith(("'", '"')):
        return '"' + item + '"'
    return item


def _exceptions_condition(rule: _RuleInfo, condition: str) -> str:
    """build_rule_exception_infos: the condition text with ``and not (...)`` per exception."""
    condition = "(" + condition + ")"
    for ex in rule.exceptions:
        if not ex.fields.is_list:
            icond = ""
            for value in ex.values:
                if value.is_list:
                    raise _fail("Expected values array to contain a list of strings")
                icond += ("(" + ex.fields.item + " " + ex.comps.item + " (") if not icond else ", "
                icond += _quote_item(value.item)
            icond += "))" if icond else ""
        else:
            icond = "("
            for values in ex.values:
                if len(ex.fields.items) != len(values.items):
                    raise _fail("Fields and values lists must have equal length")
                icond += "" if icond == "(" else " or "
                icond += "("
                for k, fld in enumerate(ex.fields.items):
                    icond += "" if k == 0 else " and "
                    comp = ex.comps.items[k].item
                    value = values.items[k]
                    if value.is_list:
                        text = "(" + ", ".join(_quote_item(v.item) for v in value.items) + ")"
                    elif comp in cond.LIST_VALUE_OPS:
                        text = value.item if value.item.startswith("(") else "(" + value.item + ")"
                    else:
                        text = _quote_item(value.item)
                    icond += " " + fld.item + " " + comp + " " + text
                icond += ")"
            icond += ")"
            if icond == "()":
                icond = ""
        if icond:
            condition += " and not " + icond
    return condition


def _resolve_list(condition: str, name: str, items: list[str]) -> str:
    """resolve_list: textual substitution of one list's name by its items."""
    blanks = " \t\n\r"
    delims = blanks + "(),="
    start = condition.find(name)
    while start != -1:
        end = start + len(name)
        if (start == 0 or condition[start - 1] in delims) and (end >= len(condition) or condition[end] in delims):
            while start > 0 and condition[start - 1] in blanks:
                start -= 1
            while end < len(condition) and condition[end] in blanks:
                end += 1
            sub = ", ".join(_quote_item(v) for v in items)
            if not sub:
                if start > 0 and condition[start - 1] == ",":
                    start -= 1
                elif end < len(condition) and condition[end] == ",":
                    end += 1
            new = (condition[:start] + " " if start > 0 else "") + sub + " " + condition[end:]
            condition = new
            start += len(sub) + 1
        start = condition.find(name, start + 1)
    return condition


def _parse_condition(condition: str, lists: list[tuple[str, list[str]]]) -> tuple[cond.Node, str]:
    """The AST of a condition after list substitution, and the substituted text."""
    for name, items in lists:
        condition = _resolve_list(condition, name, items)
    try:
        return cond.parse(condition), condition
    except ConditionSyntaxError as e:
        raise _fail(f"{e} (at {e.position} in: {condition})") from None
