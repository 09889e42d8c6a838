"""A resolved condition (no macro left) compiled into a predicate of an event, as libsinsp's
``sinsp_filter_compiler`` builds it: ``and``/``or`` short-circuit left to right, each check extracts
its field and compares (operators.py), and a check whose field has no value is false.

Compile errors are libsinsp's (FieldError, with its message): an unknown field, a wrong argument,
an operator the field's type does not take (``'=' operator not supported list filters``).
"""

from __future__ import annotations

from collections.abc import Callable

from . import operators
from .condition import And, Check, Identifier, Node, Not, Or
from .errors import UnsupportedError
from .event import AuditEvent
from .fields import FieldError, FieldRef, resolve

Predicate = Callable[[AuditEvent], bool]


def compile_filter(node: Node) -> Predicate:
    """A predicate for ``node``; FieldError or UnsupportedError when it cannot be compiled."""
    if isinstance(node, And):
        parts = [compile_filter(child) for child in node.children]
        return lambda event: all(part(event) for part in parts)
    if isinstance(node, Or):
        parts = [compile_filter(child) for child in node.children]
        return lambda event: any(part(event) for part in parts)
    if isinstance(node, Not):
        inner = compile_filter(node.child)
        return lambda event: not inner(event)
    if isinstance(node, Identifier):
        raise FieldError(f"filter error: unexpected identifier '{node.name}'")
    return compile_check(node)


def compile_check(check: Check) -> Predicate:
    ref = resolve(check.field, check.arg)
    if ref.type != "string":
        raise UnsupportedError(f"field {ref.key} ({ref.type}) in a condition is not supported by the evaluator")
    op = "=" if check.op == "==" else check.op
    if op != "exists":
        if ref.is_list and op not in operators.LIST_FIELD_OPS:
            raise FieldError(f"filter error: '{op}' operator not supported list filters")
        if op not in operators.STRING_OPS:
            raise FieldError(f"filter error: '{op}' operator not supported for string filters")
        if op == "regex":
            raise UnsupportedError("operator 'regex' is not supported by the evaluator (RE2 syntax)")
    return _predicate(ref, op, check.values or ())


def _predicate(ref: FieldRef, op: str, values: tuple[str, ...]) -> Predicate:
    extract = ref.extract
    if op == "exists":
        return lambda event: extract(event) is not None
    if ref.is_list:
        members = frozenset(values)
        if op == "in":
            return lambda event: (v := extract(event)) is not None and all(x in members for x in v)  # type: ignore[union-attr]
        return lambda event: (v := extract(event)) is not None and any(x in members for x in v)  # type: ignore[union-attr]
    compare = operators.single_value(op, values)
    return lambda event: (v := extract(event)) is not None and compare(v)  # type: ignore[arg-type]
