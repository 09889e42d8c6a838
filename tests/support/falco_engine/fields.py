"""Fields of the ``k8s_audit`` source: resolving a name as libsinsp does, and extracting its value.

Names resolve against three providers in Falco's order: libsinsp's generic ``evt.*`` fields, then
the k8saudit and json plugins (the catalog in components/falco/fields.py). As in libsinsp 0.25.4
(``filter_check_list::new_filter_check_from_fldname``, ``plugin_filtercheck.cpp``), a provider claims
the longest of its names that starts the text; the claim must then cover the whole text, argument
included, or the field does not exist. The argument is cut at the first ``]``, the whole text at the
first space.

Of the ``evt.*`` fields the evaluator knows the time and source ones (Falco's output prefix uses
``evt.time``), as they appear for a plugin event: times are the event's ``stageTimestamp`` and are
written in UTC (Falco formats in the local time zone; the recordings ran in UTC). Other ``evt.*``
fields are refused.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from components.falco import fields as falco_fields
from components.falco.fields import FieldSpec

from . import jsonvalue as jv
from . import k8saudit
from .errors import UnsupportedError
from .event import AuditEvent

Extracted = k8saudit.Extracted

# libsinsp's generic event fields (sinsp_filtercheck_gen_event.cpp): name -> (type, supported).
_EVENT_FIELDS: Final[dict[str, str]] = {
    "evt.num": "uint64",
    "evt.time": "string",
    "evt.time.s": "string",
    "evt.time.iso8601": "string",
    "evt.datetime": "string",
    "evt.datetime.s": "string",
    "evt.rawtime": "abstime",
    "evt.rawtime.s": "abstime",
    "evt.rawtime.ns": "abstime",
    "evt.reltime": "reltime",
    "evt.reltime.s": "reltime",
    "evt.reltime.ns": "reltime",
    "evt.pluginname": "string",
    "evt.plugininfo": "string",
    "evt.source": "string",
    "evt.is_async": "bool",
    "evt.asynctype": "string",
    "evt.hostname": "string",
}
SUPPORTED_EVENT_FIELDS: Final = frozenset(
    {"evt.time", "evt.time.s", "evt.time.iso8601", "evt.datetime", "evt.datetime.s", "evt.rawtime", "evt.source"}
)
"""The ``evt.*`` fields the evaluator extracts; the others are refused by name."""


class FieldError(Exception):
    """libsinsp refuses the field (Falco reports it as a rule error); the message is libsinsp's."""


@dataclass(frozen=True)
class FieldRef:
    """A resolved field, ready to extract."""

    name: str
    """The field's own name, without argument."""
    arg: str | None
    key: str
    """How Falco names it in ``output_fields``: ``name[arg]`` with the argument re-escaped."""
    provider: str
    """``evt``, ``k8saudit`` or ``json``."""
    type: str
    """``string`` for every plugin field; ``abstime`` for the raw ``evt`` times."""
    is_list: bool
    extract: Callable[[AuditEvent], Extracted | int]
    """The value on an event: None (no value), a string, a non-empty list, or an int (abstime)."""
    json_ts: bool = False
    """In Falco's JSON ``output_fields`` the value is the event time in nanoseconds (``evt.time`` & co)."""


def escape_arg(value: str) -> str:
    """libsinsp's ``escape_str`` (filter/escaping.cpp), used when an argument is written back."""
    out = []
    quote = False
    for ch in value:
        if ch in "\b\f\n\r\t":
            out.append({"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch])
            quote = True
        elif ch in " ='":
            out.append(ch)
            quote = True
        elif ch == "\\":
            out.append("\\\\")
            quote = True
        elif ch == '"':
            out.append('\\"')
            quote = True
        else:
            out.append(ch)
    text = "".join(out)
    return '"' + text + '"' if quote else text


def output_key(name: str, arg: str | None) -> str:
    """libsinsp ``ast::as_string`` of a field expression: its key in ``output_fields``."""
    if arg is None:
        return name
    return name + ('[""]' if arg == "" else "[" + escape_arg(arg) + "]")


def _longest_prefix(text: str, names: list[str]) -> str | None:
    best = None
    for name in names:
        if text.startswith(name) and (best is None or len(name) > len(best)):
            best = name
    return best


_K8SAUDIT_NAMES: Final = [f.name for f in falco_fields.K8SAUDIT_FIELDS]
_JSON_NAMES: Final = [f.name for f in falco_fields.JSON_FIELDS]
_EVENT_NAMES: Final = list(_EVENT_FIELDS)


def resolve(name: str, arg: str | None) -> FieldRef:
    """The field ``name[arg]`` of the k8s_audit source; FieldError with libsinsp's message if it does
    not exist or its argument is wrong, UnsupportedError if the evaluator does not extract it."""
    text = name if arg is None else f"{name}[{arg}]"
    found = _longest_prefix(text, _EVENT_NAMES)
    if found is not None:
        if found != text:
            raise FieldError(f"filter_check called with nonexistent field {text}")
        if found not in SUPPORTED_EVENT_FIELDS:
            raise UnsupportedError(f"field {found} is not supported by the evaluator")
        return _event_field(found)
    for names in (_K8SAUDIT_NAMES, _JSON_NAMES):
        found = _longest_prefix(text, names)
        if found is None:
            continue
        parsed = _plugin_field(text, falco_fields.BY_NAME[found])
        if parsed is None:
            continue  # the name is followed by something other than '[': another provider may match
        return parsed
    raise FieldError(f"filter_check called with nonexistent field {text}")


def _plugin_field(text: str, spec: FieldSpec) -> FieldRef | None:
    """``sinsp_filter_check_plugin::parse_field_name`` followed by the exact-length check."""
    value = text.split(" ", 1)[0].strip(" \t\n\v\f\r")
    arg: str | None = None
    consumed = len(spec.name)
    arg_pos = value.find("[")
    if arg_pos >= 0:
        if arg_pos != len(spec.name):
            return None
        if arg_pos + 1 >= len(value):
            raise FieldError(f"filter '{value}': {spec.name} terminates with incomplete argument brackets")
        rest = value[arg_pos + 1 :]
        end = rest.find("]")
        if end < 0:
            raise FieldError(f"filter '{value}': {spec.name} has unbalanced argument brackets")
        arg = rest[:end]
        if spec.arg == "none":
            raise FieldError(
                f"filter '{value}': {spec.name} does not allow nor require an argument but one is provided: {arg}"
            )
        if spec.arg == "index" and not falco_fields.is_index(arg):
            raise FieldError(f"filter {value} {spec.name} has an invalid index argument: {arg}")
        consumed = arg_pos + end + 2
    elif spec.arg_required:
        raise FieldError(f"filter '{value}': {spec.name} requires an argument but none provided")
    if consumed != len(text):
        raise FieldError(f"filter_check called with nonexistent field {text}")
    key = output_key(spec.name, arg)
    if spec.plugin == falco_fields.K8SAUDIT_PLUGIN:
        if spec.name == "ka.req.volume.hostpath" and not arg:
            raise UnsupportedError("ka.req.volume.hostpath with an empty argument makes the k8saudit plugin panic")
        index = int(arg) if spec.arg == "index" and arg is not None else k8saudit.NO_INDEX
        function = k8saudit.extractor(spec.name, arg, index)
        return FieldRef(
            spec.name, arg, key, spec.plugin, spec.type, spec.is_list,
            _cached(AuditEvent.k8saudit, lambda root: k8saudit.extract(function, root), key),
        )  # fmt: skip
    return FieldRef(spec.name, arg, key, spec.plugin, spec.type, spec.is_list, _json_extractor(spec.name, arg, key))


def _cached(
    copy: Callable[[AuditEvent], tuple[jv.Tree, jv.Value]], function: Callable[[jv.Value], Extracted], key: str
) -> Callable[[AuditEvent], Extracted]:
    """``function`` of a plugin's parsed copy, read once per event and field (``key``) while the
    copy's version stands (a read that changes how later values marshal moves it; see jsonvalue)."""

    def extract(event: AuditEvent) -> Extracted:
        tree, root = copy(event)
        cached = event.cache.get(key)
        if cached is not None and cached[0] == tree.version:
            return cached[1]  # type: ignore[return-value]
        result = function(root)
        event.cache[key] = (tree.version, result)
        return result

    return extract


def _json_extractor(name: str, arg: str | None, key: str) -> Callable[[AuditEvent], Extracted]:
    """plugins/json/pkg/json/json.go at v0.7.4."""
    field = name.split(".", 1)[1]
    if field == "rawtime":
        return lambda event: str(event.ts)
    if field == "obj":
        return lambda event: jv.go_indent(event.data).split("\0", 1)[0]
    pointer = arg or ""

    def value(root: jv.Value) -> Extracted:
        if not pointer:
            return jv.marshal(root).split("\0", 1)[0]
        found: jv.Value | None = root
        for part in (pointer[1:] if pointer.startswith("/") else pointer).split("/"):
            found = jv.get(found, part.replace("~1", "/").replace("~0", "~"))
            if found is None:
                return None
        text = jv.as_string(found) if jv.type_of(found) == jv.STRING else jv.marshal(found)  # type: ignore[arg-type]
        return text.split("\0", 1)[0]

    return _cached(AuditEvent.json, value, key)


def _event_field(name: str) -> FieldRef:
    extract: Callable[[AuditEvent], Extracted | int]
    if name == "evt.rawtime":
        return FieldRef(name, None, name, "evt", "abstime", False, lambda event: event.ts, json_ts=True)
    if name == "evt.source":
        extract = lambda event: "k8s_audit"  # noqa: E731
    elif name == "evt.time.iso8601":
        extract = lambda event: iso8601_with_offset(event.ts)  # noqa: E731
    else:
        with_date = name.startswith("evt.datetime")
        with_ns = not name.endswith(".s")
        extract = lambda event: time_string(event.ts, with_date, with_ns)  # noqa: E731
    return FieldRef(name, None, name, "evt", "string", False, extract, json_ts=name != "evt.source")


def time_string(ts: int, date: bool = False, ns: bool = True) -> str:
    """libsinsp ``ts_to_string`` in UTC: ``HH:MM:SS.nnnnnnnnn``, optionally after ``YYYY-MM-DD ``."""
    seconds, nanos = divmod(ts, 1_000_000_000)
    tm = time.gmtime(seconds)
    text = f"{tm.tm_year:04d}-{tm.tm_mon:02d}-{tm.tm_mday:02d} " if date else ""
    text += f"{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d}"
    return text + f".{nanos:09d}" if ns else text


def iso8601_with_offset(ts: int) -> str:
    """libsinsp ``ts_to_iso_8601``: ``YYYY-MM-DDTHH:MM:SS.nnnnnnnnn+0000``."""
    seconds, nanos = divmod(ts, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}+0000"


def iso8601_utc(ts: int) -> str:
    """The ``time`` of Falco's JSON output: ``YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ``."""
    seconds, nanos = divmod(ts, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"
