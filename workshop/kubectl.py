"""kubectl (and pulumi) as argument lists through one injectable runner; never a shell."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol


class WorkshopError(Exception):
    """A step failed; the message says what to do. Exit code 1 (2 for usage errors)."""

    exit_code = 1


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str = ""
    stderr: str = ""


class Runner(Protocol):
    def __call__(self, argv: Sequence[str], *, stdin: str | None = None, interactive: bool = False) -> Result:
        """Run argv. `stdin` is fed as text; `interactive` hands the user's terminal to the command."""
        ...


def subprocess_runner(argv: Sequence[str], *, stdin: str | None = None, interactive: bool = False) -> Result:
    """The real runner: no shell, output captured unless the command is interactive."""
    try:
        if interactive:
            completed = subprocess.run(list(argv), check=False)
            return Result(completed.returncode)
        captured = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise WorkshopError(f"{argv[0]} is not installed or not on PATH") from exc
    return Result(captured.returncode, captured.stdout, captured.stderr)


class Kubectl:
    """kubectl bound to one kubeconfig file."""

    def __init__(self, kubeconfig: str, runner: Runner = subprocess_runner) -> None:
        self.kubeconfig = kubeconfig
        self.runner = runner

    def argv(self, *args: str) -> list[str]:
        return ["kubectl", "--kubeconfig", self.kubeconfig, *args]

    def run(self, *args: str, stdin: str | None = None, check: bool = True) -> Result:
        result = self.runner(self.argv(*args), stdin=stdin)
        if check and result.returncode != 0:
            detail = (result.stderr or result.stdout).strip()
            raise WorkshopError(f"kubectl {' '.join(args)} failed: {detail}")
        return result

    def interactive(self, *args: str) -> int:
        return self.runner(self.argv(*args), interactive=True).returncode

    def create(self, manifest: dict[str, Any]) -> None:
        self.run("create", "-f", "-", stdin=json.dumps(manifest))

    def apply(self, manifest: dict[str, Any]) -> None:
        self.run("apply", "-f", "-", stdin=json.dumps(manifest))


@contextmanager
def kubeconfig_file(explicit: str | None, stack: str | None, runner: Runner = subprocess_runner) -> Iterator[str]:
    """The kubeconfig to use: `explicit` as given, else the stack's output in a private temp file.

    The stack's kubeconfig is a secret output; it is written with mode 0600 and removed afterwards.
    """
    if explicit:
        if not os.path.isfile(explicit):
            raise WorkshopError(f"--kubeconfig {explicit}: no such file")
        yield explicit
        return
    argv = ["pulumi", "stack", "output", "kubeconfig", "--show-secrets"]
    if stack:
        argv += ["--stack", stack]
    result = runner(argv)
    if result.returncode != 0 or not result.stdout.strip():
        raise WorkshopError(
            "could not read the stack's kubeconfig with `pulumi stack output kubeconfig --show-secrets`"
            f" ({result.stderr.strip() or 'empty output'}); run from the project folder after `pulumi up`,"
            " or pass --kubeconfig PATH"
        )
    fd, path = tempfile.mkstemp(prefix="falco-lab-kubeconfig-", suffix=".json")  # created 0600
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(result.stdout)
        yield path
    finally:
        os.unlink(path)
