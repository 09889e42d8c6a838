"""Comparison operators on string fields, as libsinsp 0.25.4 applies them (filter_compare.cpp,
sinsp_filtercheck.cpp ``compare_rhs``, prefix_search.h).

- A field with no value makes every comparison false, before the operator is looked at: so
  ``f != x`` is false when ``f`` has no value, while ``not f = x`` is true.
- A list field takes only ``in`` (every element is one of the values; there is always at least one
  element, or the field has no value), ``intersects`` (some element is) and ``exists``.
- A single-value field with ``in``/``intersects`` tests membership; the other operators are C string
  functions on bytes: ``=``/``!=``/``<``/``<=``/``>``/``>=`` are ``strcmp`` (so ``"201" < "40"``),
  ``contains`` is ``strstr``, ``icontains`` is ``strcasestr`` (ASCII letters only: Falco keeps the C
  locale), ``startswith``/``endswith`` compare bytes, ``glob``/``iglob`` are glibc ``fnmatch`` with no
  flags (``*`` crosses ``/``, ``\\`` escapes, ``[!...]`` and ``[^...]`` negate; ``FNM_CASEFOLD`` for
  ``iglob``), and ``pmatch`` is a path-prefix match by ``/``-separated components whose
  search-path components may be globs.

Refused: ``regex`` (RE2 syntax is not Python's) and glob bracket forms ``[=c=]`` and ``[.c.]``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from .errors import UnsupportedError

Compare = Callable[[str], bool]

_UPPER: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

STRING_OPS: Final = frozenset(
    {"=", "==", "!=", "<", "<=", ">", ">=", "contains", "icontains", "startswith", "endswith", "glob",
     "iglob", "in", "intersects", "pmatch", "exists", "regex"}
)  # fmt: skip
"""What libsinsp's ``flt_is_comparable_string`` allows (``bcontains``/``bstartswith`` are for buffers)."""
LIST_FIELD_OPS: Final = frozenset({"in", "intersects", "exists"})


def ascii_lower(text: str) -> str:
    return text.translate(_UPPER)


def single_value(op: str, values: tuple[str, ...]) -> Compare:
    """The test of one extracted string against the constant value(s) of a check."""
    if op in ("in", "intersects"):
        members = frozenset(values)
        return members.__contains__
    if op == "pmatch":
        return PathPrefixSearch(values).match
    (value,) = values
    if op in ("=", "=="):
        return value.__eq__
    if op == "!=":
        return value.__ne__
    if op == "contains":
        return lambda s: value in s
    if op == "icontains":
        lowered = ascii_lower(value)
        return lambda s: lowered in ascii_lower(s)
    if op == "startswith":
        return lambda s: s.startswith(value)
    if op == "endswith":
        return lambda s: s.endswith(value)
    if op in ("glob", "iglob"):
        return glob_matcher(value, casefold=op == "iglob")
    encoded = value.encode("utf-8")
    if op == "<":
        return lambda s: s.encode("utf-8") < encoded
    if op == "<=":
        return lambda s: s.encode("utf-8") <= encoded
    if op == ">":
        return lambda s: s.encode("utf-8") > encoded
    if op == ">=":
        return lambda s: s.encode("utf-8") >= encoded
    raise UnsupportedError(f"operator '{op}' is not supported by the evaluator")


_CLASSES: Final = {
    "alnum": "0-9A-Za-z", "alpha": "A-Za-z", "blank": " \\t", "cntrl": "\\x00-\\x1f\\x7f", "digit": "0-9",
    "graph": "!-~", "lower": "a-z", "print": " -~", "punct": "!-/:-@\\[-`{-~", "space": " \\t\\n\\r\\f\\v",
    "upper": "A-Z", "xdigit": "0-9A-Fa-f",
}  # fmt: skip


def glob_regex(pattern: str, casefold: bool = False) -> re.Pattern[str] | None:
    """glibc ``fnmatch(pattern, s, casefold ? FNM_CASEFOLD : 0)`` in the C locale, as a regex over the
    string's UTF-8 bytes read as Latin-1 (so ``?`` is one byte); None when nothing can match."""
    p = pattern.encode("utf-8").decode("latin-1")
    out: list[str] = []
    i = 0
    while i < len(p):
        c = p[i]
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "\\":
            if i + 1 >= len(p):
                return None  # glibc: a pattern ending in a lone backslash matches nothing
            i += 1
            out.append(re.escape(p[i]))
        elif c == "[":
            bracket = _bracket(p, i)
            if bracket is None:
                out.append(re.escape("["))  # unterminated: an ordinary character
            else:
                regex, i = bracket
                out.append(regex)
                continue
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out), re.DOTALL | (re.IGNORECASE | re.ASCII if casefold else 0))


def _bracket(p: str, start: int) -> tuple[str, int] | None:
    """A bracket expression at ``p[start] == '['``: (regex, index after it), or None if unterminated."""
    i = start + 1
    negate = i < len(p) and p[i] in "!^"
    if negate:
        i += 1
    items: list[str] = []
    first = True
    while i < len(p):
        c = p[i]
        if c == "]" and not first:
            body = "".join(items)
            if not body:  # only reversed ranges: matches no character (or any, negated)
                return ("[\\x00-\\xff]" if negate else "(?!)"), i + 1
            return ("[^" if negate else "[") + body + "]", i + 1
        first = False
        if c == "[" and i + 1 < len(p) and p[i + 1] in ":=.":
            kind = p[i + 1]
            end = p.find(kind + "]", i + 2)
            if end < 0:
                items.append(re.escape("["))
                i += 1
                continue
            name = p[i + 2 : end]
            if kind != ":":
                raise UnsupportedError(f"glob bracket form '[{kind}{name}{kind}]' is not supported by the evaluator")
            if name not in _CLASSES:
                raise UnsupportedError(f"glob character class '[:{name}:]' is not supported by the evaluator")
            items.append(_CLASSES[name])
            i = end + 2
            continue
        if c == "\\":
            if i + 1 >= len(p):
                return None
            i += 1
            c = p[i]
        low = c
        if i + 2 < len(p) and p[i + 1] == "-" and p[i + 2] != "]":
            high = p[i + 2]
            i += 2
            if high == "\\" and i + 1 < len(p):
                i += 1
                high = p[i]
            if ord(low) <= ord(high):
                items.append(re.escape(low) + "-" + re.escape(high))
            i += 1
            continue
        items.append(re.escape(low))
        i += 1
    return None


def glob_matcher(pattern: str, casefold: bool = False) -> Compare:
    regex = glob_regex(pattern, casefold)
    if regex is None:
        return lambda s: False
    fullmatch = regex.fullmatch
    return lambda s: fullmatch(s.encode("utf-8").decode("latin-1")) is not None


def _components(path: str) -> list[str]:
    return ["root", *(part for part in path.split("/") if part)]


class PathPrefixSearch:
    """libsinsp ``path_prefix_map``: a trie of search-path components, plain ones looked up first,
    then glob ones (with libsinsp's quirk: each glob entry tried moves the path position on)."""

    def __init__(self, paths: tuple[str, ...]) -> None:
        self.dirs: dict[str, tuple[PathPrefixSearch | None, bool]] = {}
        self.globs: dict[str, tuple[PathPrefixSearch | None, bool]] = {}
        for path in paths:
            self._add(_components(path), 0)
        if paths:
            self._refuse_ambiguous_globs()

    def _refuse_ambiguous_globs(self) -> None:
        # libsinsp walks a level's glob entries in hash-map order and moves on a component per
        # matching entry, so with two of them the result depends on that order.
        if len(self.globs) > 1:
            globs = sorted(self.globs)
            raise UnsupportedError(f"pmatch with several glob search-path components at one level: {globs}")
        for subtree, _ in (*self.dirs.values(), *self.globs.values()):
            if subtree is not None:
                subtree._refuse_ambiguous_globs()

    def _add(self, components: list[str], at: int) -> None:
        component = components[at]
        table = self.globs if any(ch in component for ch in "?*[") else self.dirs
        last = at + 1 == len(components)
        existing = table.get(component)
        if existing is None:
            subtree = None
            if not last:
                subtree = PathPrefixSearch(())
                subtree._add(components, at + 1)
            table[component] = (subtree, last)
        elif last:
            table[component] = (None, True)  # a shorter search path replaces the longer ones
        elif existing[0] is not None:
            existing[0]._add(components, at + 1)

    def match(self, path: str) -> bool:
        return self._match(_components(path), 0)

    def _match(self, components: list[str], at: int) -> bool:
        entry = self.dirs.get(components[at])
        if entry is not None and self._check(entry, components, at + 1):
            return True
        for pattern, entry in self.globs.items():
            if glob_matcher(pattern)(components[at]):
                at += 1
                if self._check(entry, components, at):
                    return True
                if at >= len(components):
                    return False
        return False

    @staticmethod
    def _check(entry: tuple[PathPrefixSearch | None, bool], components: list[str], at: int) -> bool:
        subtree, terminal = entry
        if at == len(components):
            return subtree is None and terminal
        if subtree is None:
            return terminal
        return subtree._match(components, at)
