"""Helm values a caller adds to a release the component builds: deep-merged, never over what the component owns.

Merging follows Helm's own rule for values files: a mapping merges into a mapping key by key; anything else (a
scalar, a list, null) replaces what was there. An override is refused when it would set, or replace a mapping
holding, a path the component owns, and the error names that path.
"""

from collections.abc import Iterator, Mapping
from typing import Any

from ..errors import ConfigError


def deep_merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """`extra` over `base`, as Helm layers values files; neither argument is changed."""
    merged = dict(base)
    for key, value in extra.items():
        below = merged.get(key)
        if isinstance(value, Mapping) and isinstance(below, Mapping):
            merged[key] = deep_merge(below, value)
        else:
            merged[key] = _copy(value)
    return merged


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_copy(v) for v in value]
    return value


def set_paths(values: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """The dotted path of every value an override sets (replaces). A mapping sets only its leaves, since it
    merges; an empty mapping sets nothing."""
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from set_paths(value, f"{path}.")
        else:
            yield path


def check_overrides(setting: str, extra: Mapping[str, Any], owned: Mapping[str, str]) -> None:
    """Refuse `extra` if it touches a path in `owned` (path -> why the component sets it).

    Touching means: setting the owned path or anything below it, or replacing (with a non-mapping) a value
    above it, which would drop it."""
    if not isinstance(extra, Mapping):
        raise ConfigError(setting, f"must be a mapping of Helm values, got {type(extra).__name__}")
    for key in _all_keys(extra):
        if not isinstance(key, str):
            raise ConfigError(setting, f"Helm value keys are strings, got {key!r}")
    for path in set_paths(extra):
        for owned_path, why in owned.items():
            if path == owned_path or path.startswith(f"{owned_path}.") or owned_path.startswith(f"{path}."):
                raise ConfigError(
                    f"{setting}.{path}",
                    f"{owned_path} is set by the component and cannot be overridden: {why}",
                )


def _all_keys(values: Mapping[Any, Any]) -> Iterator[Any]:
    for key, value in values.items():
        yield key
        if isinstance(value, Mapping):
            yield from _all_keys(value)
