"""kubectl (and pulumi) as argument lists through one injectable runner; never a shell."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import queue
import re
import selectors
import struct
import subprocess
import tempfile
import termios
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import IO, Any, Protocol

TTY_TIMEOUT_SECONDS = 120.0
"""Longest a command run under a pseudo-terminal may take before it is killed."""
PORT_FORWARD_TIMEOUT_SECONDS = 30.0
"""Longest `kubectl port-forward` may take to say which local port it listens on."""


class WorkshopError(Exception):
    """A step failed; the message says what to do. Exit code 1 (2 for usage errors)."""

    exit_code = 1


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str = ""
    stderr: str = ""


class Runner(Protocol):
    def __call__(self, argv: Sequence[str], *, stdin: str | None = None, tty: bool = False) -> Result:
        """Run argv and capture its output. `stdin` is fed as text; `tty` runs it under a pseudo-terminal."""
        ...


def subprocess_runner(argv: Sequence[str], *, stdin: str | None = None, tty: bool = False) -> Result:
    """The real runner: no shell, output captured."""
    try:
        if tty:
            return run_in_pseudo_terminal(argv)
        captured = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise WorkshopError(f"{argv[0]} is not installed or not on PATH") from exc
    return Result(captured.returncode, captured.stdout, captured.stderr)


def run_in_pseudo_terminal(argv: Sequence[str], timeout_seconds: float = TTY_TIMEOUT_SECONDS) -> Result:
    """Run argv with a new pseudo-terminal as stdin, stdout and stderr; return what it wrote there.

    The command sees a terminal whether or not the user has one (make, CI, an IDE), as `kubectl
    exec -t` needs to ask the container for a TTY. Nothing is ever written to it: the command must
    end by itself. Works on Linux and macOS (Python's pty module).
    """
    controller, terminal = pty.openpty()
    # 80x24: kubectl passes the terminal size to the container; a fresh pty has 0x0.
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    try:
        process = subprocess.Popen(
            list(argv), stdin=terminal, stdout=terminal, stderr=terminal, start_new_session=True
        )  # fmt: skip
    except BaseException:
        os.close(controller)
        raise
    finally:
        os.close(terminal)
    output = bytearray()
    deadline = time.monotonic() + timeout_seconds
    # selectors, not select.select: select() cannot watch a descriptor numbered 1024 or above.
    watcher = selectors.DefaultSelector()
    watcher.register(controller, selectors.EVENT_READ)
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WorkshopError(f"{argv[0]} did not finish within {timeout_seconds:.0f}s under a terminal")
            readable = watcher.select(min(remaining, 0.5))
            if not readable:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # Linux: EIO once the command closed its side
                chunk = b""
            if not chunk:
                break
            output += chunk
        code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        watcher.close()
        os.close(controller)
    return Result(code, output.decode("utf-8", errors="replace").replace("\r\n", "\n"))


_FORWARDING = re.compile(r"^Forwarding from 127\.0\.0\.1:(\d+) -> \d+")


@contextmanager
def subprocess_port_forward(
    argv: Sequence[str], timeout_seconds: float = PORT_FORWARD_TIMEOUT_SECONDS
) -> Iterator[int]:
    """Run a `kubectl port-forward` that picks its own local port; yield that port, stop it afterwards."""
    try:
        process = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    except FileNotFoundError as exc:
        raise WorkshopError(f"{argv[0]} is not installed or not on PATH") from exc
    lines: queue.Queue[str | None] = queue.Queue()
    errors: list[str] = []
    readers = [
        threading.Thread(target=_pump, args=(process.stdout, lines.put), daemon=True),
        threading.Thread(target=_pump, args=(process.stderr, errors.append), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        yield _local_port(lines, timeout_seconds, process, errors)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for reader in readers:
            reader.join(timeout=5)


def _pump(stream: IO[str] | None, sink: Callable[[Any], None]) -> None:
    if stream is not None:
        for line in stream:
            sink(line)
    sink(None)


def _local_port(lines: queue.Queue[str | None], timeout_seconds: float, process: Any, errors: list[str]) -> int:
    deadline = time.monotonic() + timeout_seconds
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            break
        if line is None:  # kubectl ended without forwarding
            process.wait()
            detail = "".join(e for e in errors if e).strip() or f"exit code {process.returncode}"
            raise WorkshopError(f"kubectl port-forward failed: {detail}")
        match = _FORWARDING.match(line)
        if match:
            return int(match.group(1))
    raise WorkshopError(f"kubectl port-forward did not start listening within {timeout_seconds:.0f}s")


PortForwarder = Callable[[Sequence[str]], AbstractContextManager[int]]


class Kubectl:
    """kubectl bound to one kubeconfig file."""

    def __init__(
        self,
        kubeconfig: str,
        runner: Runner = subprocess_runner,
        port_forwarder: PortForwarder = subprocess_port_forward,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.runner = runner
        self.port_forwarder = port_forwarder

    def argv(self, *args: str) -> list[str]:
        return ["kubectl", "--kubeconfig", self.kubeconfig, *args]

    def run(self, *args: str, stdin: str | None = None, check: bool = True) -> Result:
        result = self.runner(self.argv(*args), stdin=stdin)
        if check and result.returncode != 0:
            detail = (result.stderr or result.stdout).strip()
            raise WorkshopError(f"kubectl {' '.join(args)} failed: {detail}")
        return result

    def in_terminal(self, *args: str) -> Result:
        """Run under a pseudo-terminal (see run_in_pseudo_terminal); the output comes back as stdout."""
        return self.runner(self.argv(*args), tty=True)

    def port_forward(self, namespace: str, target: str, remote_port: int) -> AbstractContextManager[int]:
        """Forward a free local port on 127.0.0.1 to `remote_port` of `target` (e.g. deploy/x); yields the port."""
        return self.port_forwarder(
            self.argv("--namespace", namespace, "port-forward", "--address", "127.0.0.1", target, f":{remote_port}")
        )

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
            f" ({result.stderr.strip() or 'empty output'}); run from the project folder after `make up`"
            " (`make trigger`, `make alerts`, `make pipeline` pass the stack's backend and passphrase on; run"
            " directly, first `eval \"$(make -s env)\"`), or pass --kubeconfig PATH"
        )
    fd, path = tempfile.mkstemp(prefix="falco-lab-kubeconfig-", suffix=".json")  # created 0600
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(result.stdout)
        yield path
    finally:
        os.unlink(path)
