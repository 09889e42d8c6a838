"""The one error the commands raise: a message for the user and the exit code that goes with it."""

from __future__ import annotations

# Exit codes: a step failed (pulumi, AWS), bad input (a setting or variable), something to install first,
# interrupted with Ctrl-C (128 + SIGINT, as shells report it).
STEP_FAILED = 1
BAD_INPUT = 2
MISSING_PREREQUISITE = 3
INTERRUPTED = 130


class LabError(Exception):
    """Stops `make up` / `make down` with `message` (what went wrong and what to do) and `exit_code`."""

    def __init__(self, message: str, exit_code: int = STEP_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
