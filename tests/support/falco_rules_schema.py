"""The checks of Falco 0.44.1's rules-file schema, re-stated here (read in falco userspace/engine/
rule_json_schema.h and yaml_helper.h at 0.44.1, not copied).

Falco validates every rules file against a JSON schema with valijson, on the YAML as yaml-cpp reads it and with
weak types (``kWeakTypes``): a scalar passes as a string whatever it looks like, and as a boolean or an integer
when it reads as one. A failure is a warning in Falco's load result, not an error, so a rules file can load and
still be off-schema; the tests hold the lab's files to the schema anyway. What the schema asks:

- the file is a sequence of mappings; a mapping holds only the keys below (``additionalProperties: false``);
- ``enabled``, ``append``, ``capture``, ``warn_evttypes``, ``skip-if-unknown-filter`` are booleans,
  ``capture_duration`` an integer, ``priority`` one of EMERGENCY, ALERT, CRITICAL, ERROR, WARNING, NOTICE, INFO,
  INFORMATIONAL, DEBUG (exactly so: the comparison is on the text);
- ``items`` and ``tags`` are sequences of scalars; ``exceptions`` a sequence of mappings with a ``name`` and
  only ``fields``, ``comps``, ``values`` besides; ``override`` a mapping of at least one of the overridable keys
  to ``append`` or ``replace``; ``required_plugin_versions`` a sequence of ``{name, version, alternatives}``
  with name and version required.
"""

from __future__ import annotations

from typing import Any, Final

import yaml

_STRING_KEYS: Final = ("required_engine_version", "macro", "condition", "list", "rule", "desc", "output", "source")
_BOOLEAN_KEYS: Final = ("enabled", "append", "capture", "warn_evttypes", "skip-if-unknown-filter")
KEYS: Final = frozenset(
    (*_STRING_KEYS, *_BOOLEAN_KEYS, "required_plugin_versions", "items", "priority", "capture_duration",
     "exceptions", "override", "tags")
)  # fmt: skip
PRIORITIES: Final = frozenset(
    {"EMERGENCY", "ALERT", "CRITICAL", "ERROR", "WARNING", "NOTICE", "INFO", "INFORMATIONAL", "DEBUG"}
)
OVERRIDABLE: Final = frozenset(
    {"items", "desc", "condition", "output", "priority", "enabled", "exceptions", "capture", "capture_duration",
     "tags", "warn_evttypes", "skip-if-unknown-filter"}
)  # fmt: skip


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _weak_bool(value: Any) -> bool:
    return isinstance(value, bool) or (isinstance(value, str) and value in ("true", "false"))


def _weak_int(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, str) and value.lstrip("-").isdigit()


def schema_warnings(text: str) -> list[str]:
    """Where a rules file leaves Falco's schema; empty when it conforms."""
    document = yaml.safe_load(text)
    if not isinstance(document, list):
        return ["the file is not a sequence"]
    found: list[str] = []
    for index, item in enumerate(document):
        where = f"item {index}"
        if not isinstance(item, dict):
            found.append(f"{where}: not a mapping")
            continue
        for key, value in item.items():
            if key not in KEYS:
                found.append(f"{where}: key {key!r} is not in the schema")
            elif key in _STRING_KEYS and not _scalar(value):
                found.append(f"{where}: {key} is not a string")
            elif key in _BOOLEAN_KEYS and not _weak_bool(value):
                found.append(f"{where}: {key} is not a boolean")
            elif key == "capture_duration" and not _weak_int(value):
                found.append(f"{where}: capture_duration is not an integer")
            elif key == "priority" and value not in PRIORITIES:
                found.append(f"{where}: priority {value!r} is not one of {sorted(PRIORITIES)}")
            elif key in ("items", "tags") and not (isinstance(value, list) and all(_scalar(v) for v in value)):
                found.append(f"{where}: {key} is not a sequence of scalars")
            elif key == "exceptions":
                found += _exceptions(where, value)
            elif key == "override":
                found += _override(where, value)
            elif key == "required_plugin_versions":
                found += _plugins(where, value)
    return found


def _exceptions(where: str, value: Any) -> list[str]:
    if not isinstance(value, list):
        return [f"{where}: exceptions is not a sequence"]
    found = []
    for exception in value:
        if not isinstance(exception, dict) or "name" not in exception:
            found.append(f"{where}: an exception is not a mapping with a name")
        elif set(exception) - {"name", "fields", "comps", "values"}:
            found.append(f"{where}: an exception has keys outside name, fields, comps, values")
    return found


def _override(where: str, value: Any) -> list[str]:
    if not isinstance(value, dict) or not value:
        return [f"{where}: override is not a mapping with at least one key"]
    found = []
    for key, operation in value.items():
        if key not in OVERRIDABLE:
            found.append(f"{where}: override key {key!r} is not in the schema")
        elif operation not in ("append", "replace"):
            found.append(f"{where}: override {key}: {operation!r} is neither append nor replace")
    return found


def _plugins(where: str, value: Any) -> list[str]:
    if not isinstance(value, list):
        return [f"{where}: required_plugin_versions is not a sequence"]
    found = []
    for plugin in value:
        entries = [plugin, *(plugin.get("alternatives") or [] if isinstance(plugin, dict) else [])]
        for entry in entries:
            if not isinstance(entry, dict) or not {"name", "version"} <= set(entry):
                found.append(f"{where}: a plugin requirement lacks name or version")
            elif set(entry) - {"name", "version", "alternatives"}:
                found.append(f"{where}: a plugin requirement has keys outside name, version, alternatives")
    return found
