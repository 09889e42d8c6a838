"""Errors the components raise for bad arguments.

One exception type for every invalid setting, so a stack (or a test) can tell a configuration
mistake from a failure while deploying, and so the message always starts with the setting's name.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A setting has a value the lab cannot use.

    ``str(error)`` is ``"<setting>: <message>"``; ``error.setting`` holds the setting's name
    (the args field, or the stack config key when raised while reading the stack's config).
    """

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"{setting}: {message}")
        self.setting = setting
        self.message = message
