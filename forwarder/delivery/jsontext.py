"""Cheap facts about raw JSON text, found without parsing it: nesting depth and compact form.

Falco's k8saudit webhook parses each request body whole with valyala/fastjson, whose parser
(parser.go: ``MaxDepth = 300``; ``parseValue`` adds one to ``depth`` for every value before it
looks at its type and refuses ``depth > MaxDepth``) counts a level for every value, scalars
included: the top-level value is level 1, the members of an object or array one level below
it. So the levels of a text are those of its deepest value; ``{}`` and ``[]`` are values with no
members, like ``0``. One event too deep fails the whole request, after the 200 has gone out.

The depth is found by a few linear passes in C (``str``/``bytes`` methods) over the text,
never by recursion, which would itself fail on deep input; the forwarder checks every event.
"""

from __future__ import annotations

import re
from itertools import accumulate
from typing import Final

FASTJSON_MAX_DEPTH: Final = 300
"""valyala/fastjson parser.go ``MaxDepth``: the deepest level Falco's webhook parses."""

_NOT_BRACKETS: Final = bytes(c for c in range(256) if c not in b"{}[]")
_TO_PARENS: Final = bytes.maketrans(b"{[}]", b"(())")
_PAREN_RUNS: Final = re.compile(rb"\(+|\)+")
# A JSON string as the parser reads it: a quote after an odd number of backslashes does not
# end it. Group 1 keeps a string as it is; whitespace outside strings matches without it.
_STRING_OR_WHITESPACE: Final = re.compile(r'("[^"\\]*(?:\\.[^"\\]*)*")|[ \t\n\r]+', re.DOTALL)


def _outside_strings(text: str) -> bytes:
    """``text`` with every string (keys too) replaced by ``0``, so brackets inside strings no
    longer count and each string is one leaf value."""
    if "\\" in text:
        # Drop escaped backslashes, then escaped quotes: every quote left delimits a string.
        text = text.replace("\\\\", "").replace('\\"', "")
    return "0".join(text.split('"')[::2]).encode("utf-8", "surrogatepass")


def _height(parens: bytes) -> int:
    """How deep the containers in ``parens`` (``(`` and ``)`` only) nest."""
    height = 0
    # A typical event's containers are mostly leaves: strip a few rounds of innermost pairs
    # (each round lowers the height by exactly one) before walking what is left, run by run.
    for _ in range(3):
        if not parens:
            return height
        parens = parens.replace(b"()", b"")
        height += 1
    steps = (len(run) if run[0] == 0x28 else -len(run) for run in _PAREN_RUNS.findall(parens))
    return height + max(0, max(accumulate(steps), default=0))


def value_levels(text: str) -> int:
    """The level of the deepest value in ``text`` when it is the top-level value (level 1).

    Exact for valid JSON, as fastjson counts; for invalid text a number the parser may refuse
    anyway. ``value_levels('{"a":[1]}') == 3``; ``value_levels('{"a":[]}') == 2``.
    """
    # An empty object or array is a leaf at its own level, like a scalar; every bracket left
    # opens a container with at least one member one level further in.
    leaves = _outside_strings(text).translate(None, b" \t\n\r").replace(b"{}", b"0").replace(b"[]", b"0")
    return 1 + _height(leaves.translate(_TO_PARENS, _NOT_BRACKETS))


def deeper_than(text: str, levels: int) -> bool:
    """``value_levels(text) > levels``, in a few microseconds for a typical audit event.

    A container holds members only below its opening bracket, so a text with no more than
    ``levels - 1`` opening brackets (those inside strings counted too) cannot go deeper.
    """
    if text.count("{") + text.count("[") < levels:
        return False
    return value_levels(text) > levels


def compact(text: str) -> str:
    """``text`` without the whitespace between tokens: the form fastjson's ``MarshalTo`` gives a
    parsed value (strings, escapes and numbers stay exactly as written). For valid JSON only."""
    return _STRING_OR_WHITESPACE.sub(r"\1", text)
