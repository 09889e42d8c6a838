"""A rule's output format, parsed and rendered as libsinsp's ``sinsp_evt_formatter`` does (eventformatter.cpp).

Parsing: text up to a ``%`` is copied; ``%`` may be followed by a width (``%20ka.verb`` pads or cuts
to 20 bytes), then a field. The field token is the longest prefix of the rest that parses and
compiles as a field: ``%ka.user.namex`` is ``ka.user.name`` followed by the text ``x``.

Rendering (Falco always prefixes the format with ``*``, so a missing value never drops the alert):
a field with no value prints ``<NA>``; a list prints ``(a,b)``, cut to 1023 bytes (libsinsp copies
it into a 1024-byte buffer; a multi-byte character cut in half becomes U+FFFD in Falco's JSON
line); a string prints as it is. In JSON ``output_fields`` a missing value is ``null``, a list an
array, and the ``evt.time`` family the event time in nanoseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from .condition import parse_field_token
from .errors import ConditionSyntaxError
from .event import AuditEvent
from .fields import FieldError, FieldRef, resolve

NOT_AVAILABLE: Final = "<NA>"
LIST_TEXT_BYTES: Final = 1023


class FormatError(Exception):
    """libsinsp refuses the format (Falco reports the rule's output as invalid)."""


@dataclass(frozen=True)
class FieldToken:
    ref: FieldRef
    width: int


Token = str | FieldToken


@dataclass(frozen=True)
class OutputFormat:
    tokens: tuple[Token, ...]
    require_all: bool

    @property
    def fields(self) -> tuple[FieldRef, ...]:
        return tuple(t.ref for t in self.tokens if isinstance(t, FieldToken))

    def text(self, event: AuditEvent) -> str:
        """The format with every field's value (OF_NORMAL)."""
        out: list[str] = []
        for token in self.tokens:
            if isinstance(token, str):
                out.append(token)
                continue
            value = value_text(token.ref, event)
            if token.width:
                data = value.encode("utf-8")[: token.width].ljust(token.width, b" ")
                value = data.decode("utf-8", errors="replace")
            out.append(value)
        return "".join(out)

    def json_fields(self, event: AuditEvent) -> dict[str, object]:
        """The fields' values as Falco's JSON formatter gives them (OF_JSON)."""
        return {ref.key: value_json(ref, event) for ref in self.fields}


def value_text(ref: FieldRef, event: AuditEvent) -> str:
    value = ref.extract(event)
    if value is None:
        return NOT_AVAILABLE
    if isinstance(value, list):
        data = ("(" + ",".join(value) + ")").encode("utf-8")
        return data[:LIST_TEXT_BYTES].decode("utf-8", errors="replace")
    return str(value)


def value_json(ref: FieldRef, event: AuditEvent) -> object:
    if ref.json_ts:
        return event.ts
    value = ref.extract(event)
    return list(value) if isinstance(value, list) else value


def parse_format(fmt: str) -> OutputFormat:
    """FormatError with libsinsp's message if the format does not parse; UnsupportedError for what the
    evaluator does not model (field transformers, unsupported ``evt.*`` fields)."""
    if not fmt:
        raise FormatError("empty formatting token")
    require_all = not fmt.startswith("*")
    if not require_all:
        fmt = fmt[1:]
    tokens: list[Token] = []
    last = 0
    j = 0
    n = len(fmt)
    while j < n:
        if fmt[j] == "%":
            if last != j:
                tokens.append(fmt[last:j])
            if j == n - 1:
                raise FormatError("invalid formatting syntax: formatting cannot end with a %")
            width = 0
            if fmt[j + 1].isascii() and fmt[j + 1].isdigit():
                k = j + 1
                while k < n and fmt[k].isascii() and fmt[k].isdigit():
                    k += 1
                width = int(fmt[j + 1 : k])
                if k == n:
                    raise FormatError("invalid formatting syntax: formatting cannot end with a number")
                j = k - 1
            size = n - (j + 1)
            while True:
                try:
                    field, arg, consumed = parse_field_token(fmt[j + 1 : j + 1 + size])
                    ref = resolve(field, arg)
                    size = consumed
                    break
                except (ConditionSyntaxError, FieldError) as e:
                    size -= 1
                    if size <= 0:
                        raise FormatError(f"unknown filter: {e}") from None
            j += size
            tokens.append(FieldToken(ref, width))
            last = j + 1
        j += 1
    if last < n:
        tokens.append(fmt[last:])
    return OutputFormat(tuple(tokens), require_all)

