"""A small, strict reader for the TypeScript examples (no Node.js is needed to test them).

The examples are written in a constrained style that this reader accepts in full and nothing else: namespace
imports, `const` and `export const` declarations whose value is a literal (string, number, boolean, array, object
with identifier or string keys), a dotted reference (`lab.kubeconfig`, `deployer`), or `new a.B(...)` with such
arguments; `//` and `/* */` comments. Anything else (template strings, calls, arrow functions, spreads,
type annotations) is a ParseError naming the line, so an example cannot drift into code the test cannot check.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

_TOKEN = re.compile(
    r"""(?P<space>\s+)
      | (?P<comment>//[^\n]*|/\*.*?\*/)
      | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<name>[A-Za-z_$][A-Za-z0-9_$]*)
      | (?P<punct>[{}\[\](),:;.=*])""",
    re.VERBOSE | re.DOTALL,
)


class ParseError(ValueError):
    pass


@dataclass(frozen=True)
class Ref:
    """A dotted reference: a variable, or a property of one (`lab.kubeconfig`)."""

    parts: tuple[str, ...]

    def __str__(self) -> str:
        return ".".join(self.parts)


@dataclass
class New:
    """`new <callee>(<args>)`."""

    callee: Ref
    args: list[Any]
    line: int


@dataclass
class Program:
    imports: dict[str, str] = field(default_factory=dict)
    """Namespace import name -> module."""
    consts: dict[str, Any] = field(default_factory=dict)
    """Every const, exported or not, by name."""
    exports: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Token:
    kind: str
    text: str
    line: int


def _tokens(source: str) -> list[_Token]:
    tokens = []
    position, line = 0, 1
    while position < len(source):
        match = _TOKEN.match(source, position)
        if match is None:
            raise ParseError(f"line {line}: {source[position:position + 20]!r} is outside the examples' style")
        kind = match.lastgroup or ""
        if kind not in ("space", "comment"):
            tokens.append(_Token(kind, match[0], line))
        line += match[0].count("\n")
        position = match.end()
    return tokens


def _string(text: str) -> str:
    """A string literal's value (JSON escapes; single quotes as double)."""
    if text.startswith("'"):
        text = '"' + text[1:-1].replace("\\'", "'").replace('"', '\\"') + '"'
    return str(json.loads(text))


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.index = 0

    def peek(self, text: str | None = None) -> bool:
        if self.index >= len(self.tokens):
            return False
        return text is None or self.tokens[self.index].text == text

    def take(self, text: str | None = None, kind: str | None = None) -> _Token:
        if self.index >= len(self.tokens):
            raise ParseError(f"unexpected end, expected {text or kind}")
        token = self.tokens[self.index]
        if (text is not None and token.text != text) or (kind is not None and token.kind != kind):
            raise ParseError(f"line {token.line}: expected {text or kind}, found {token.text!r}")
        self.index += 1
        return token

    def program(self) -> Program:
        program = Program()
        while self.peek():
            if self.peek("import"):
                self.take("import")
                self.take("*")
                self.take("as")
                name = self.take(kind="name").text
                self.take("from")
                program.imports[name] = _string(self.take(kind="string").text)
            else:
                exported = self.peek("export")
                if exported:
                    self.take("export")
                self.take("const")
                name = self.take(kind="name").text
                self.take("=")
                value = self.expression()
                program.consts[name] = value
                if exported:
                    program.exports[name] = value
            self.take(";")
        return program

    def expression(self) -> Any:
        if self.peek("new"):
            line = self.take("new").line
            callee = self.reference()
            self.take("(")
            args = self.sequence(")", self.expression)
            return New(callee, args, line)
        return self.value()

    def sequence(self, end: str, item: Any) -> list[Any]:
        items = []
        while not self.peek(end):
            items.append(item())
            if not self.peek(end):
                self.take(",")
        self.take(end)
        return items

    def reference(self) -> Ref:
        parts = [self.take(kind="name").text]
        while self.peek("."):
            self.take(".")
            parts.append(self.take(kind="name").text)
        return Ref(tuple(parts))

    def value(self) -> Any:
        if self.index >= len(self.tokens):
            raise ParseError("unexpected end, expected a value")
        token = self.tokens[self.index]
        if token.kind == "string":
            self.index += 1
            return _string(token.text)
        if token.kind == "number":
            self.index += 1
            return float(token.text) if "." in token.text else int(token.text)
        if token.text in ("true", "false"):
            self.index += 1
            return token.text == "true"
        if token.text == "[":
            self.index += 1
            return self.sequence("]", self.value)
        if token.text == "{":
            self.index += 1
            result: dict[str, Any] = {}
            while not self.peek("}"):
                key = self.take()
                if key.kind not in ("name", "string"):
                    raise ParseError(f"line {key.line}: {key.text!r} is not a property name")
                name = key.text if key.kind == "name" else _string(key.text)
                if name in result:
                    raise ParseError(f"line {key.line}: {name} is given twice")
                self.take(":")
                result[name] = self.value()
                if not self.peek("}"):
                    self.take(",")
            self.take("}")
            return result
        if token.kind == "name":
            return self.reference()
        raise ParseError(f"line {token.line}: {token.text!r} is outside the examples' style")


def parse(source: str) -> Program:
    """The imports, consts and exports of a TypeScript example; ParseError for anything outside the style."""
    return _Parser(_tokens(source)).program()
