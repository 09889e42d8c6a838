"""What the evaluator raises: Falco's own refusals, and what the evaluator itself does not model.

``RulesLoadError`` is an error a real Falco 0.44.1 reports too (it would not start).
``UnsupportedError`` means the evaluator cannot say what Falco would do (a construct, field or input
it does not model): it is raised instead of guessing, and its message names the construct.
``EventRejectedError`` is an event the k8saudit plugin drops before any rule sees it (Falco only
logs it).
"""

from __future__ import annotations


class FalcoEngineError(Exception):
    """Base class of everything the evaluator raises on purpose."""


class RulesLoadError(FalcoEngineError):
    """A rules file Falco refuses to load; the message names the file and the item."""


class UnsupportedError(FalcoEngineError):
    """Something the evaluator does not model; the message names it. Never a guess."""


class EventRejectedError(FalcoEngineError):
    """An audit event the k8saudit plugin drops (not JSON, no usable stageTimestamp, too large or deep)."""


class ConditionSyntaxError(FalcoEngineError):
    """libsinsp's filter parser refuses a condition (or an output's field token); ``position`` is 0-based."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.position = position
