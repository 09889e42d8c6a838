"""The real forwarder CLI as a child process (`python -m forwarder ...`), with its metrics at hand."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.moto_server import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_cli(
    args: Sequence[str], env: Mapping[str, str], timeout: float = 60, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run `python -m forwarder ARGS` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "forwarder", *args],
        cwd=REPO_ROOT,
        env=dict(env),
        input=stdin,
        capture_output=True,
        timeout=timeout,
        check=False,
    )


class ForwarderProcess:
    """`python -m forwarder run ...` in the background; output goes to `log_path`."""

    def __init__(self, args: Sequence[str], env: Mapping[str, str], log_path: Path, metrics_port: int | None = None,
                 cwd: Path = REPO_ROOT):
        self.metrics_port = metrics_port or free_port()
        self.args = [*args, "--metrics-port", str(self.metrics_port)]
        self.env = dict(env)
        self.log_path = log_path
        self.cwd = cwd
        """Where ``python -m forwarder`` finds the package (another release's, checked out elsewhere)."""
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ForwarderProcess:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "forwarder", *self.args],
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def __enter__(self) -> ForwarderProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def terminate(self, timeout: float) -> int | None:
        """SIGTERM, then wait up to `timeout` seconds; the exit code, or None if it is still running."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        """SIGKILL (no chance to clean up) and reap."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    # --- metrics -----------------------------------------------------------------------------

    def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
        """All samples from /metrics, or None while the endpoint does not answer."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
                text = response.read().decode()
        except (urllib.error.URLError, ConnectionError, OSError):
            return None
        samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples named `name` whose labels include `labels` (0.0 if none)."""
        samples = self.scrape() or {}
        wanted = set(labels.items())
        return sum(
            value
            for (sample, sample_labels), value in samples.items()
            if sample == name and wanted <= set(sample_labels)
        )

    def wait_for_metric(self, name: str, at_least: float, timeout: float, **labels: str) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.metric(name, **labels) >= at_least:
                return True
            if not self.alive():
                return False
            time.sleep(0.1)
        return False

    def caught_up(self) -> bool:
        """Every read stage is within its period of where its age puts it (60 s at most, the final stage's):
        the start's one-time reads are over."""
        samples = self.scrape() or {}
        behind = [v for (name, _), v in samples.items() if name == "forwarder_read_stage_behind_seconds"]
        return bool(behind) and max(behind) <= 60

    def health(self, path: str = "/healthz") -> int | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}{path}", timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except (urllib.error.URLError, ConnectionError, OSError):
            return None

    def peak_rss_mib(self) -> float | None:
        """VmHWM of the process (Linux), in MiB."""
        try:
            with open(f"/proc/{self.pid}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None


def forwarder_env(base: Mapping[str, str]) -> dict[str, str]:
    """`base` plus what the child needs to import the package from the repository."""
    env = dict(base)
    env.setdefault("PYTHONPATH", str(REPO_ROOT))
    env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    if "PATH" not in env and "PATH" in os.environ:
        env["PATH"] = os.environ["PATH"]
    return env


@pytest.fixture
def started() -> Iterator[list[ForwarderProcess]]:
    """Forwarder processes a test started; killed (and resumed first, if paused) at the end. Import it where a test
    takes it as a parameter."""
    procs: list[ForwarderProcess] = []
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.alive():
                os.kill(proc.pid, signal.SIGCONT)
            proc.kill()


def wait_until(what: str, predicate: Callable[[], bool], *procs: ForwarderProcess, timeout: float = 60.0) -> None:
    """Poll ``predicate`` until it holds; after ``timeout`` seconds (generous: the suite may share 2 cores with
    others), fail saying ``what`` was awaited, with the last lines of each of ``procs``' output."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.log_path.name}\n{p.tail(30)}" for p in procs)
            raise AssertionError(f"timed out waiting until {what}\n{tails}")
        time.sleep(0.05)
