"""forwarder.delivery.jsontext: nesting levels as valyala/fastjson counts them, found by scanning text, and
the compact form. Checked against a count over the parsed value (the receiver's, written apart)."""

from __future__ import annotations

import json
import random

import pytest
from support.falco_receiver import json_levels

from forwarder.delivery.jsontext import FASTJSON_MAX_DEPTH, compact, deeper_than, value_levels


@pytest.mark.parametrize(
    ("text", "levels"),
    [
        ("0", 1),
        ('"x"', 1),
        ("{}", 1),  # an empty container is a value without members
        ("[]", 1),
        ("[0]", 2),  # the scalar inside counts a level
        ("[[]]", 2),
        ("[[0]]", 3),
        ('{"a":{}}', 2),
        ('{"a":{"b":null}}', 3),
        ('[{},[[]],{"a":[1]}]', 4),
        (' { "a" : [ ] , "b" : [ 1 , { } ] } ', 3),
        ('{\n  "a": [\n    {\n    }\n  ]\n}', 3),
    ],
)
def test_every_value_counts_a_level_and_the_top_level_value_is_level_1(text: str, levels: int) -> None:
    assert value_levels(text) == levels == json_levels(json.loads(text))


@pytest.mark.parametrize(
    "text",
    [
        '{"a":"[[[[{{{{"}',
        '{"[[[[":"]]]]"}',
        '{"a":"\\"[[[["}',  # an escaped quote does not end the string
        '{"a":"\\\\","b":"[[[["}',  # an escaped backslash does: the quote after it closes
        '{"a":"\\\\\\"[[[["}',  # backslash, then escaped quote: still inside
        '{"a":"\\u005b\\u005b"}',
        '["]]]]]]", "{{{{", "\\\\\\\\"]',
    ],
)
def test_brackets_inside_strings_do_not_count(text: str) -> None:
    assert value_levels(text) == json_levels(json.loads(text))
    assert value_levels(text) <= 2


def _random_document(rng: random.Random, depth: int) -> object:
    kind = rng.randrange(7 if depth < 12 else 3)
    if kind == 0:
        return rng.choice(['a"b', "[[", "}{", "\\", '\\"]', "x\\\\", "é😀", "\u2028", ""])
    if kind == 1:
        return rng.choice([0, -1.5, 10**30, True, None])
    if kind == 2:
        return rng.choice([[], {}])
    if kind in (3, 4):
        return [_random_document(rng, depth + 1) for _ in range(rng.randrange(1, 4))]
    keys = [rng.choice(["k", "[", '"', "}"]) + str(i) for i in range(rng.randrange(1, 4))]
    return {key: _random_document(rng, depth + 1) for key in keys}


def test_levels_match_a_count_over_the_parsed_value_on_random_documents() -> None:
    rng = random.Random(20261201)
    for _ in range(1500):
        document = _random_document(rng, 0)
        text = json.dumps(document, indent=rng.choice([None, 1, "\t"]), ensure_ascii=rng.random() < 0.5)
        assert value_levels(text) == json_levels(document), text


@pytest.mark.parametrize("levels", [FASTJSON_MAX_DEPTH - 1, FASTJSON_MAX_DEPTH, FASTJSON_MAX_DEPTH + 1])
@pytest.mark.parametrize(
    ("opening", "closing", "leaf", "per_level"),
    [
        ("[", "]", "1", 1),
        ('{"a":', "}", "1", 1),
        ("[", "]", "[]", 1),  # the empty innermost array is the leaf
        ('{"a":[', "]}", '"s"', 2),
    ],
)
def test_deeper_than_is_exact_around_the_limit(
    levels: int, opening: str, closing: str, leaf: str, per_level: int
) -> None:
    containers = (levels - 1) // per_level
    text = opening * containers + leaf + closing * containers
    actual = value_levels(text)
    assert actual == json_levels(json.loads(text))
    assert actual in (levels, levels - 1)  # a two-level step cannot hit every count
    assert deeper_than(text, FASTJSON_MAX_DEPTH) is (actual > FASTJSON_MAX_DEPTH)


def test_a_text_with_few_brackets_is_answered_without_the_full_scan() -> None:
    text = json.dumps({"a": [{"b": [1, 2, 3]}] * 50})  # 150 brackets: below any limit of 151 or more
    assert not deeper_than(text, 151)
    assert deeper_than(text, 3) and not deeper_than(text, 5)


def test_input_far_deeper_than_python_recursion_is_measured() -> None:
    depth = 200_000
    assert value_levels("[" * depth + "]" * depth) == depth
    assert value_levels('{"a":' * depth + "0" + "}" * depth) == depth + 1
    assert deeper_than("[" * depth, FASTJSON_MAX_DEPTH)  # unbalanced garbage still reads as deep


@pytest.mark.parametrize(
    "document",
    [
        {"a": "two  spaces", "b": [1, 2, {"c": None}], "d": "tab\tand\nnewline escaped"},
        {"quote": 'say "hi" \\ ok', "unicode": "é😀", "empty": {}, "list": []},
    ],
)
def test_compact_drops_only_whitespace_between_tokens(document: object) -> None:
    for indent in (None, 2, "\t"):
        assert compact(json.dumps(document, indent=indent)) == json.dumps(document, separators=(",", ":"))


def test_compact_keeps_numbers_and_escapes_as_written() -> None:
    text = '{ "big" : 123456789012345678901234567890 , "huge" : 1e400 , "esc" : "\\u00e9\\/\\ud800" }'
    assert compact(text) == '{"big":123456789012345678901234567890,"huge":1e400,"esc":"\\u00e9\\/\\ud800"}'
