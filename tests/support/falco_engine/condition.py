"""Falco's condition language: the grammar of libsinsp 0.25.4's filter parser (filter/parser.cpp),
rule for rule, into a small AST.

What the grammar allows that one might not expect, all kept here: ``and``/``or`` are matched as a
prefix (``orx`` is ``or`` followed by garbage, an error); ``not`` needs a blank or ``(`` after it;
operators spelled as words need a blank after them, symbols do not (``a.b=c``); a bare value runs
until a blank, quote, parenthesis, ``=`` or ``,``; a quoted string ends at the first unescaped
matching quote and knows only the escapes ``\\b \\f \\n \\r \\t \\\\ \\/`` and the other quote (``\\ ``
gives a backslash); a list operator also takes a bare identifier instead of a parenthesised list.

Refused as UnsupportedError (never guessed): field transformers (``tolower(...)``, ``val(...)`` ...) and
the list modifiers ``oneof``/``anyof``/``allof``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from .errors import ConditionSyntaxError, UnsupportedError


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    child: Node


@dataclass(frozen=True)
class Identifier:
    """A macro reference (resolved before compiling)."""

    name: str
    position: int


@dataclass(frozen=True)
class Check:
    """``field op values``; ``values`` is None for ``exists``."""

    field: str
    arg: str | None
    op: str
    values: tuple[str, ...] | None
    position: int


Node = And | Or | Not | Identifier | Check

UNARY_OPS: Final = ("exists",)
NUM_OPS: Final = ("<=", "<", ">=", ">")
# A trailing space: the operator needs a blank after it.
STR_OPS: Final = (
    "==", "=", "!=", "glob ", "iglob ", "contains ", "icontains ", "bcontains ", "startswith ",
    "bstartswith ", "endswith ", "regex ",
)  # fmt: skip
STR_MODIFIERS: Final = ("oneof ", "anyof ", "allof ")
LIST_OPS: Final = ("intersects", "in", "pmatch")
TRANSFORMERS: Final = ("tolower(", "toupper(", "b64(", "basename(", "len(", "join(", "concat(", "getopt(")
OPERATORS: Final = tuple(op.strip() for op in UNARY_OPS + NUM_OPS + STR_OPS + LIST_OPS)
LIST_VALUE_OPS: Final = frozenset(LIST_OPS)

_SPACE: Final = " \t\n\r\f\v"  # POSIX [:space:]
_NOT_BLANK: Final = re.compile(r"not[ \t\n\r\f\v]+")
_IDENTIFIER: Final = re.compile(r"[a-zA-Z]+[a-zA-Z0-9_]*")
_FIELD_NAME: Final = re.compile(r"[a-zA-Z]+[a-zA-Z0-9_]*(?:\.[a-zA-Z]+[a-zA-Z0-9_]*)+")
_FIELD_ARG_BARE: Final = re.compile(r"[^\]\[\"' \t\n\r\f\v]+")
_HEX_NUM: Final = re.compile(r"0[xX][0-9a-fA-F]+")
_NUM: Final = re.compile(r"[+\-]?[0-9]+\.?[0-9]*(?:[eE][+\-][0-9]+)?")
_BARE_STR: Final = re.compile(r"[^()\"' \t\n\r\f\v=,]+")
_ESCAPES: Final = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", " ": "\\", "\\": "\\", "/": "/"}


def unescape_quoted(token: str) -> str:
    """libsinsp ``unescape_str`` of a quoted token (quotes included)."""
    out = []
    escaped = False
    for ch in token[1:-1]:
        if not escaped:
            if ch == "\\":
                escaped = True
            else:
                out.append(ch)
            continue
        escaped = False
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch in "\"'":
            if token[0] != ch:
                other = "'-quoted" if token[0] == "'" else '"-quoted'
                raise ValueError(f"invalid \\{ch} escape in {other} string")
            out.append(ch)
        else:
            raise ValueError(f"unsupported string escape sequence: \\{ch}")
    return "".join(out)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.last = ""

    # --- lexing -------------------------------------------------------------------------------

    def error(self, message: str) -> ConditionSyntaxError:
        return ConditionSyntaxError(message, self.pos)

    def blank(self) -> bool:
        start = self.pos
        text = self.text
        while self.pos < len(text) and text[self.pos] in " \t\b\r\n":
            self.pos += 1
        return self.pos > start

    def word(self, literal: str) -> bool:
        if self.text.startswith(literal, self.pos):
            self.pos += len(literal)
            self.last = literal
            return True
        return False

    def regex(self, pattern: re.Pattern[str]) -> bool:
        m = pattern.match(self.text, self.pos)
        if m is None:
            return False
        self.pos = m.end()
        self.last = m.group()
        return True

    def operator(self, ops: tuple[str, ...]) -> bool:
        for op in ops:
            if not op.endswith(" "):
                if self.word(op):
                    return True
                continue
            saved = (self.pos, self.last)
            if self.word(op.strip()):
                if self.blank():
                    return True
                self.pos, self.last = saved
        return False

    def quoted(self) -> bool:
        text = self.text
        if self.pos >= len(text) or text[self.pos] not in "'\"":
            return False
        delimiter = text[self.pos]
        prev = "\\"
        i = self.pos
        while i < len(text) and text[i] != "\0":
            ch = text[i]
            if ch == delimiter and prev != "\\":
                token = text[self.pos : i + 1]
                try:
                    self.last = unescape_quoted(token)
                except ValueError as e:
                    raise self.error(str(e)) from None
                self.pos = i + 1
                return True
            prev = ch
            i += 1
        return False

    def transformer_follows(self) -> str | None:
        for name in TRANSFORMERS + ("val(",):
            if self.text.startswith(name, self.pos):
                return name[:-1]
        return None

    # --- grammar ------------------------------------------------------------------------------

    def parse(self) -> Node:
        if not self.text:
            raise self.error("filter input string is empty")
        node = self.parse_or()
        if self.pos != len(self.text):
            raise self.error(f"unexpected token after '{self.last}', expecting 'or', 'and'")
        return node

    def parse_or(self) -> Node:
        children = []
        self.blank()
        children.append(self.parse_and())
        self.blank()
        while self.word("or"):
            if not self.blank():
                if not self.word("("):
                    raise self.error("expected blank or '(' after 'or'")
                children.append(self.parse_embedded())
            else:
                children.append(self.parse_and())
            self.blank()
        return Or(tuple(children)) if len(children) > 1 else children[0]

    def parse_and(self) -> Node:
        children = []
        self.blank()
        children.append(self.parse_not())
        self.blank()
        while self.word("and"):
            if not self.blank():
                if not self.word("("):
                    raise self.error("expected blank or '(' after 'and'")
                children.append(self.parse_embedded())
            else:
                children.append(self.parse_not())
            self.blank()
        return And(tuple(children)) if len(children) > 1 else children[0]

    def parse_not(self) -> Node:
        negate = False
        self.blank()
        while self.regex(_NOT_BLANK):
            negate = not negate
        if self.word("not("):
            negate = not negate
            child = self.parse_embedded()
        else:
            child = self.parse_check()
        return Not(child) if negate else child

    def parse_embedded(self) -> Node:
        self.blank()
        child = self.parse_or()
        self.blank()
        if not self.word(")"):
            raise self.error("expected a ')' token")
        return child

    def parse_check(self) -> Node:
        self.blank()
        position = self.pos
        if self.word("("):
            return self.parse_embedded()
        if self.regex(_FIELD_NAME):
            field = self.last
            return self.parse_condition(field, self.field_arg(), position)
        transformer = self.transformer_follows()
        if transformer is not None and transformer != "val":
            raise UnsupportedError(f"field transformer '{transformer}(...)' is not supported by the evaluator")
        if self.regex(_IDENTIFIER):
            return Identifier(self.last, position)
        raise self.error("expected a '(' token, a field check, or an identifier")

    def field_arg(self) -> str | None:
        if not self.word("["):
            return None
        if not self.quoted() and not self.regex(_FIELD_ARG_BARE):
            raise self.error("expected a valid field argument: a quoted string or a bare string")
        arg = self.last
        if not self.word("]"):
            raise self.error("expected a ']' token")
        return arg

    def parse_condition(self, field: str, arg: str | None, position: int) -> Check:
        self.blank()
        if self.operator(UNARY_OPS):
            return Check(field, arg, self.last.strip(), None, position)
        self.blank()
        if self.operator(NUM_OPS):
            op = self.last
            self.no_transformer()
            if not (self.regex(_HEX_NUM) or self.regex(_NUM)):
                raise self.error("expected a number value or a field with a valid transformer")
            return Check(field, arg, op, (self.last,), position)
        if self.operator(STR_OPS):
            op = self.last.strip()
            had_blank = op[0].isalpha() or self.blank()
            saved = (self.pos, self.last)
            if had_blank and self.operator(STR_MODIFIERS) and self.list_follows() and not self.bool_keyword_follows():
                modifier = f"{op} {self.last.strip()}"
                raise UnsupportedError(f"operator modifier '{modifier}' is not supported by the evaluator")
            self.pos, self.last = saved
            return Check(field, arg, op, (self.str_value(transformers=True),), position)
        if self.operator(LIST_OPS):
            op = self.last
            self.blank()
            values = self.list_expr()
            if values is None:
                self.no_transformer()
                if not self.regex(_IDENTIFIER):
                    raise self.error("expected a list, an identifier, or a field with a valid transformer")
                values = (self.last,)
            return Check(field, arg, op, values, position)
        raise self.error(
            "expected a valid check operator: one of " + ", ".join(f"'{op}'" for op in OPERATORS)
        )

    def no_transformer(self) -> None:
        self.blank()
        transformer = self.transformer_follows()
        if transformer is not None:
            raise UnsupportedError(f"field transformer '{transformer}(...)' is not supported by the evaluator")

    def str_value(self, transformers: bool) -> str:
        if transformers:
            self.no_transformer()
        self.blank()
        if self.quoted() or self.regex(_BARE_STR):
            return self.last
        raise self.error("expected a string value")

    def list_expr(self) -> tuple[str, ...] | None:
        if not self.word("("):
            return None
        values: list[str] = []
        self.blank()
        try:
            first = self.str_value(transformers=False)
        except ConditionSyntaxError:
            first = None
        if first is not None:
            values.append(first)
            self.blank()
            while self.word(","):
                values.append(self.str_value(transformers=False))
                self.blank()
        if not self.word(")"):
            raise self.error("expected a ')' token")
        return tuple(values)

    def list_follows(self) -> bool:
        if self.text.startswith("(", self.pos):
            return True
        return _IDENTIFIER.match(self.text, self.pos) is not None

    def bool_keyword_follows(self) -> bool:
        rest = self.text[self.pos :]
        for keyword in ("and", "or", "not"):
            after = rest[len(keyword) : len(keyword) + 1]
            if rest.startswith(keyword) and not (after.isascii() and after.isalnum()):
                return True
        return False


def parse(text: str) -> Node:
    """The AST of a condition; ConditionSyntaxError with libsinsp's message where it refuses it."""
    try:
        return _Parser(text).parse()
    except RecursionError:
        raise UnsupportedError("condition nests too deeply for the evaluator") from None


def parse_field_token(text: str) -> tuple[str, str | None, int]:
    """libsinsp ``parse_field_or_transformer`` at the start of ``text`` (an output's ``%`` token):
    (field, argument, characters consumed)."""
    parser = _Parser(text)
    if parser.regex(_FIELD_NAME):
        field = parser.last
        return field, parser.field_arg(), parser.pos
    transformer = parser.transformer_follows()
    if transformer is not None and transformer != "val":
        raise UnsupportedError(f"field transformer '{transformer}(...)' in an output is not supported by the evaluator")
    raise parser.error(f"unexpected token after '{parser.last}")
