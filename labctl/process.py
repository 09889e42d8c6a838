"""Running the `pulumi`, `aws` and `docker` CLIs as argument lists (never a shell), in one environment."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Result:
    """What a captured command did."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def reason(self) -> str:
        """The command's own error text on one line (stderr, else stdout), for messages."""
        text = (self.stderr.strip() or self.stdout.strip() or f"exit code {self.returncode}").splitlines()
        return " ".join(line.strip() for line in text if line.strip())


class Runner:
    """Runs commands in `cwd` with exactly `environ` (PATH included: it also decides which program runs)."""

    def __init__(self, environ: Mapping[str, str], cwd: Path) -> None:
        self.env = dict(environ)
        self.cwd = cwd

    def which(self, program: str) -> str | None:
        """Where `program` is on this environment's PATH, or None."""
        return shutil.which(program, path=self.env.get("PATH", ""))

    def capture(self, argv: Sequence[str]) -> Result:
        """Run quietly and collect the output. No terminal on stdin: nothing can stop to ask a question."""
        try:
            done = subprocess.run(
                list(argv),
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                check=False,
            )
        except OSError as err:  # not found, not executable
            return Result(127, "", f"{argv[0]}: {err.strerror or err}")
        return Result(done.returncode, done.stdout, done.stderr)

    def interactive(self, argv: Sequence[str]) -> tuple[int, bool]:
        """Run attached to the terminal (pulumi's preview and its question); (exit code, interrupted).

        Ctrl-C reaches the child too (same process group); pulumi then cancels cleanly, which takes a while.
        subprocess.run would kill it outright and leave its operations pending in the state, so wait for it.
        """
        try:
            child = subprocess.Popen(list(argv), env=self.env, cwd=self.cwd)  # noqa: S603 - argument list
        except OSError:  # vanished since the prerequisite check
            return 127, False
        interrupted = False
        while True:
            try:
                return child.wait(), interrupted
            except KeyboardInterrupt:
                interrupted = True
