"""An audit event as the plugins hold it: valyala/fastjson values, modelled where it changes a result.

Both plugins parse the event text with fastjson (k8saudit with fastjson 1.6.4 as forked by
geraldcombs, json with 1.6.10), each its own copy, kept for every field of the same event. What
fastjson does that shows in Falco's results (parser.go at v1.6.4, read for this model):

- A string is kept as written (escapes and all) until something reads it as a string (``Type()``,
  ``StringBytes``); then it is unescaped in place (``unescapeStringBestEffort``: unknown escapes and
  lone surrogates stay as written, a broken surrogate pair becomes U+FFFD).
- ``MarshalTo`` (how the plugins turn an object, array or number into a field's text) writes a string
  not read yet exactly as written (``\\u0026`` stays ``\\u0026``), and a read one re-quoted: as is
  when it has no quote, backslash or control character, else with Go's ``strconv.Quote``. So the
  text of ``ka.req.role.rules`` can depend on whether ``ka.req.role.rules.verbs`` was read first.
  Numbers are written as they came (``1.0`` stays ``1.0``).
- An object's ``Get`` compares keys as written while no lookup has missed; the first miss unescapes
  all its keys (which then marshal re-quoted too). Of duplicate keys, the first wins.
- An array is indexed by a key that Go's ``strconv.Atoi`` reads (``+1`` and ``007`` work).

The model keeps a version counter per parsed copy (``Tree``): it moves whenever a read changes what
a later ``MarshalTo`` writes, so callers may cache field values while it stands still.
"""

from __future__ import annotations

import json
import re
from typing import Final, Union

from .errors import EventRejectedError


class _Null:
    __slots__ = ()

    def __repr__(self) -> str:
        return "null"


NULL: Final = _Null()
"""JSON null (Python None means "no value" throughout the evaluator)."""


class Tree:
    """One parsed copy of an event (each plugin has its own). ``version`` moves on every read that
    changes how a value marshals."""

    __slots__ = ("version",)

    def __init__(self) -> None:
        self.version = 0


class JNumber:
    __slots__ = ("raw",)

    def __init__(self, raw: str) -> None:
        self.raw = raw


class JString:
    """A string written with at least one escape. Strings without a backslash are plain ``str``:
    their written and read forms are the same."""

    __slots__ = ("raw", "text", "tree")

    def __init__(self, raw: str, tree: Tree) -> None:
        self.raw = raw
        self.text: str | None = None
        self.tree = tree

    def read(self) -> str:
        if self.text is None:
            self.text = unescape(self.raw)
            self.tree.version += 1
        return self.text


class JObject:
    __slots__ = ("pairs", "first", "escaped_keys", "keys_read", "read_first", "tree")

    def __init__(self, tree: Tree) -> None:
        self.pairs: list[tuple[str, Value]] = []
        self.first: dict[str, Value] = {}
        self.escaped_keys = False
        self.keys_read = False
        self.read_first: dict[str, Value] | None = None
        self.tree = tree

    def _finish(self) -> None:
        first = self.first
        for key, value in self.pairs:
            if key not in first:
                first[key] = value
            if "\\" in key:
                self.escaped_keys = True

    def _read_keys(self) -> dict[str, Value]:
        if self.read_first is None:
            self.keys_read = True
            if self.escaped_keys:
                read: dict[str, Value] = {}
                for key, value in self.pairs:
                    read.setdefault(unescape(key), value)
                self.read_first = read
                self.tree.version += 1
            else:
                self.read_first = self.first
        return self.read_first

    def get(self, key: str) -> Value | None:
        """fastjson ``Object.Get``: the first value under ``key``, or None."""
        if not self.keys_read and "\\" not in key:
            found = self.first.get(key, _ABSENT)
            if found is not _ABSENT:
                return found  # type: ignore[return-value]
        return self._read_keys().get(key)

    def visit(self) -> list[tuple[str, Value]]:
        """fastjson ``Object.Visit``: every (key, value) in order, keys read."""
        self._read_keys()
        if not self.escaped_keys:
            return list(self.pairs)
        return [(unescape(key), value) for key, value in self.pairs]


_ABSENT: Final = object()

Value = Union[str, JString, JNumber, bool, _Null, JObject, list["Value"]]  # noqa: UP007 - recursive alias

OBJECT, ARRAY, STRING, NUMBER, TRUE, FALSE, NULL_TYPE = range(7)


def type_of(value: Value) -> int:
    """fastjson ``Value.Type()``, which reads a string as a side effect."""
    cls = value.__class__
    if cls is str:
        return STRING
    if cls is JString:
        value.read()  # type: ignore[union-attr]
        return STRING
    if cls is JObject:
        return OBJECT
    if cls is list:
        return ARRAY
    if cls is JNumber:
        return NUMBER
    if value is True:
        return TRUE
    if value is False:
        return FALSE
    return NULL_TYPE


_ATOI: Final = re.compile(r"[+-]?[0-9]+")


def get(value: Value | None, *keys: str) -> Value | None:
    """fastjson ``Value.Get(keys...)``: object keys, array indexes (Go ``strconv.Atoi``), else None."""
    for key in keys:
        if value is None:
            return None
        cls = value.__class__
        if cls is JObject:
            value = value.get(key)  # type: ignore[union-attr]
        elif cls is list:
            if not _ATOI.fullmatch(key):
                return None
            n = int(key)
            if n < 0 or n >= len(value) or n >= 2**63:  # type: ignore[arg-type]
                return None
            value = value[n]  # type: ignore[index]
        else:
            return None
    return value


def as_string(value: Value) -> str:
    """The plugins' ``jsonValueAsString``: a string's text, anything else marshalled."""
    cls = value.__class__
    if cls is str:
        return value  # type: ignore[return-value]
    if cls is JString:
        return value.read()  # type: ignore[union-attr]
    return marshal(value)


def marshal(value: Value) -> str:
    """fastjson ``MarshalTo``: compact JSON with strings as the model says."""
    out: list[str] = []
    _marshal(value, out)
    return "".join(out)


def _marshal(value: Value, out: list[str]) -> None:
    cls = value.__class__
    if cls is str:
        out.append('"')
        out.append(value)  # type: ignore[arg-type]
        out.append('"')
    elif cls is JString:
        text = value.text  # type: ignore[union-attr]
        out.append('"' + value.raw + '"' if text is None else escape_string(text))  # type: ignore[union-attr]
    elif cls is JObject:
        out.append("{")
        keys_read = value.keys_read  # type: ignore[union-attr]
        for i, (key, item) in enumerate(value.pairs):  # type: ignore[union-attr]
            if i:
                out.append(",")
            out.append(escape_string(unescape(key)) if keys_read and "\\" in key else '"' + key + '"')
            out.append(":")
            _marshal(item, out)
        out.append("}")
    elif cls is list:
        out.append("[")
        for i, item in enumerate(value):  # type: ignore[arg-type]
            if i:
                out.append(",")
            _marshal(item, out)
        out.append("]")
    elif cls is JNumber:
        out.append(value.raw)  # type: ignore[union-attr]
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    else:
        out.append("null")


def escape_string(text: str) -> str:
    """fastjson ``escapeString``: quoted as is unless it holds ``"``, ``\\`` or a control character,
    then Go's ``strconv.Quote``."""
    if '"' not in text and "\\" not in text and not _CONTROL.search(text):
        return '"' + text + '"'
    return go_quote(text)


_CONTROL: Final = re.compile(r"[\x00-\x1f]")
_GO_ESCAPES: Final = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def go_quote(text: str) -> str:
    """Go's ``strconv.Quote`` for valid UTF-8 text (IsPrint runes as they are, others escaped)."""
    out = ['"']
    for ch in text:
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif (" " <= ch <= "~") or (ch > "\x7f" and ch.isprintable()):
            out.append(ch)
        elif ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        else:
            code = ord(ch)
            if code < 0x20 or code == 0x7F:
                out.append(f"\\x{code:02x}")
            elif code < 0x10000:
                out.append(f"\\u{code:04x}")
            else:
                out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


_SIMPLE_UNESCAPES: Final = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_HEX4: Final = re.compile(r"[0-9a-fA-F]{4}")


def unescape(raw: str) -> str:
    """fastjson ``unescapeStringBestEffort``."""
    n = raw.find("\\")
    if n < 0:
        return raw
    out = [raw[:n]]
    s = raw[n + 1 :]
    while s:
        ch, s = s[0], s[1:]
        if ch in _SIMPLE_UNESCAPES:
            out.append(_SIMPLE_UNESCAPES[ch])
        elif ch == "u":
            xs = s[:4]
            if len(s) < 4 or not _HEX4.fullmatch(xs):
                out.append("\\u")
            else:
                x = int(xs, 16)
                s = s[4:]
                if not 0xD800 <= x < 0xE000:
                    out.append(chr(x))
                elif len(s) < 6 or s[0] != "\\" or s[1] != "u" or not _HEX4.fullmatch(s[2:6]):
                    out.append("\\u" + xs)
                else:
                    x1 = int(s[2:6], 16)
                    # Go's utf16.DecodeRune: a valid pair or U+FFFD.
                    if 0xD800 <= x < 0xDC00 and 0xDC00 <= x1 < 0xE000:
                        out.append(chr(0x10000 + ((x - 0xD800) << 10) + (x1 - 0xDC00)))
                    else:
                        out.append("\ufffd")
                    s = s[6:]
        else:
            out.append("\\" + ch)
        n = s.find("\\")
        if n < 0:
            out.append(s)
            break
        out.append(s[:n])
        s = s[n + 1 :]
    return "".join(out)


# Tokens of valid JSON text: a string as written, a structural character, or a bare scalar.
_TOKEN: Final = re.compile(r'[ \t\n\r]*(?:("[^"\\]*(?:\\.[^"\\]*)*")|([\[\]{},:])|([^ \t\n\r\[\]{},:"]+))', re.S)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


_STRICT: Final = json.JSONDecoder(parse_constant=_reject_constant)


def check_json(text: str) -> None:
    """EventRejectedError unless ``text`` is one valid JSON text (RFC 8259, as Go's json.Indent requires)."""
    try:
        _STRICT.decode(text)
    except (ValueError, RecursionError) as e:
        raise EventRejectedError(f"event is not valid JSON: {e}") from None


def tokens(text: str) -> list[tuple[str, str, str]]:
    """(string as written with its quotes, structural character, scalar) per token of valid JSON."""
    return _TOKEN.findall(text)


def parse(text: str, tree: Tree) -> Value:
    """The fastjson value of valid JSON ``text`` (call check_json first)."""
    stack: list[JObject | list[Value]] = []
    keys: list[str | None] = []
    expect_key = False
    root: Value | None = None
    for string, punct, scalar in _TOKEN.findall(text):
        value: Value
        if punct:
            if punct == "{":
                stack.append(JObject(tree))
                keys.append(None)
                expect_key = True
                continue
            if punct == "[":
                stack.append([])
                keys.append(None)
                expect_key = False
                continue
            if punct == ":":
                continue
            if punct == ",":
                expect_key = stack[-1].__class__ is JObject
                continue
            value = stack.pop()  # } or ]
            keys.pop()
            if value.__class__ is JObject:
                value._finish()  # type: ignore[union-attr]
            expect_key = False
        elif string:
            raw = string[1:-1]
            if expect_key:
                keys[-1] = raw
                expect_key = False
                continue
            value = JString(raw, tree) if "\\" in raw else raw
        elif scalar == "true":
            value = True
        elif scalar == "false":
            value = False
        elif scalar == "null":
            value = NULL
        else:
            value = JNumber(scalar)
        if not stack:
            root = value
        else:
            top = stack[-1]
            if top.__class__ is list:
                top.append(value)  # type: ignore[union-attr]
            else:
                top.pairs.append((keys[-1], value))  # type: ignore[union-attr,arg-type]
    assert root is not None, "parse() needs valid JSON"
    return root


def compact(text: str) -> str:
    """The text fastjson's MarshalTo gives a freshly parsed value: the event data Falco stores."""
    return "".join(s or p or x for s, p, x in _TOKEN.findall(text))


def go_indent(text: str) -> str:
    """Go's ``json.Indent(dst, compact, "", "  ")`` of valid JSON text (the json plugin's ``jevt.obj``)."""
    toks = [s or p or x for s, p, x in _TOKEN.findall(text)]
    out: list[str] = []
    depth = 0
    i = 0
    n = len(toks)
    while i < n:
        tok = toks[i]
        if tok in ("{", "["):
            close = "}" if tok == "{" else "]"
            if i + 1 < n and toks[i + 1] == close:
                out.append(tok + close)
                i += 2
                continue
            depth += 1
            out.append(tok + "\n" + "  " * depth)
        elif tok in ("}", "]"):
            depth -= 1
            out.append("\n" + "  " * depth + tok)
        elif tok == ",":
            out.append(",\n" + "  " * depth)
        elif tok == ":":
            out.append(": ")
        else:
            out.append(tok)
        i += 1
    return "".join(out)
