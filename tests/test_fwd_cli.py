"""forwarder.cli and forwarder.replay: exit codes, one-line errors, env vars, --help, the `run`
wiring (signals, metrics server, pipeline call) and `replay` end to end against a local receiver."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import types
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from support.audit_events import generated_lines, shared_corpus_file
from support.falco_receiver import FalcoReceiver

import forwarder
from forwarder import cli, replay
from forwarder.clock import SystemClock
from forwarder.config import ReplayConfig, RunConfig
from forwarder.delivery.sender import FalcoClient
from forwarder.metrics import Health, Metrics

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
URL = "http://127.0.0.1:9/k8s-audit"


def corpus_file(name: str) -> Path:
    """A shared corpus file; the test skips when shared/ is not beside the repository."""
    return shared_corpus_file(name)


def event_line(audit_id: str, pad: int = 100) -> str:
    return json.dumps(
        {"kind": "Event", "auditID": audit_id, "stageTimestamp": "2024-05-01T12:00:00.5Z", "pad": "x" * pad},
        separators=(",", ":"),
    )


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FORWARDER_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


@pytest.fixture(autouse=True)
def restore_process_state() -> Any:
    """cli.main installs signal handlers and JSON logging on the root logger: undo both after each test."""
    import logging

    signal_handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    root = logging.getLogger()
    root_handlers, root_level = list(root.handlers), root.level
    forwarder_level = logging.getLogger("forwarder").level
    yield
    for signum, previous in signal_handlers.items():
        signal.signal(signum, previous)
    for handler in list(root.handlers):
        if handler not in root_handlers:
            root.removeHandler(handler)
    for handler in root_handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(root_level)
    logging.getLogger("forwarder").setLevel(forwarder_level)


# --- bad options --------------------------------------------------------------------------------


def test_bad_option_prints_one_line_naming_it_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["run", "--log-group", "g", "--falco-url", URL, "--poll-interval", "abc"], {})
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err == "forwarder: error: --poll-interval: must be a number > 0, got 'abc'\n"
    assert captured.out == ""


def test_bad_environment_value_names_option_and_variable(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["run", "--log-group", "g"], {"FORWARDER_FALCO_URL": "falco:9765"})
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("forwarder: error: --falco-url (from FORWARDER_FALCO_URL): ")
    assert err.count("\n") == 1


def test_missing_required_option_names_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "--cluster-name", "lab"], {}) == 2
    assert "--falco-url" in capsys.readouterr().err


def test_options_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_run(config: RunConfig, **kwargs: Any) -> int:
        seen["config"] = config
        return 0

    install_fake_pipeline(monkeypatch, fake_run)
    env = {
        "FORWARDER_CLUSTER_NAME": "lab",
        "FORWARDER_FALCO_URL": URL,
        "FORWARDER_METRICS_PORT": "0",
        "FORWARDER_START_AT": "2h",
    }
    assert cli.main(["run"], env) == 0
    assert seen["config"].log_group == "/aws/eks/lab/cluster"
    assert seen["config"].start_at.seconds_ago == 7200


def test_help_lists_every_option_with_its_environment_variable(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "--help"], {}) == 0
    out = capsys.readouterr().out
    assert "FORWARDER_CLUSTER_NAME" in out and "FORWARDER_FALCO_URL" in out and "FORWARDER_METRICS_PORT" in out
    assert cli.main(["replay", "--help"], {}) == 0
    out = capsys.readouterr().out
    assert "FORWARDER_FALCO_URL" in out and "FORWARDER_MAX_BATCH_BYTES" in out


def test_python_dash_m_forwarder_exits_2_on_a_bad_option() -> None:
    result = subprocess.run(
        [PYTHON, "-m", "forwarder", "run", "--cluster-name", "lab", "--falco-url", URL, "--checkpoint", "s3:x"],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "forwarder: error: --checkpoint: must be file:PATH or configmap:NAMESPACE/NAME, got 's3:x'"
    ]
    assert result.stdout == ""


def no_aws_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The child's environment with no AWS setting at all: no AWS_* variable, and empty AWS config files."""
    empty = tmp_path / "aws-config"
    empty.write_text("")
    env = {k: v for k, v in child_env().items() if not k.startswith("AWS_")}
    env.update(HOME=str(tmp_path), AWS_CONFIG_FILE=str(empty), AWS_SHARED_CREDENTIALS_FILE=str(empty), **extra)
    return env


def run_without_region(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "forwarder", "run", "--cluster-name", "lab", "--falco-url", URL, "--metrics-port", "0"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=60,
    )


def test_without_a_region_the_real_cli_exits_2_with_one_line_naming_what_to_set(tmp_path: Path) -> None:
    result = run_without_region(no_aws_env(tmp_path))
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.splitlines() == [
        "forwarder: error: --region: no AWS Region: give --region REGION (or set FORWARDER_REGION or AWS_REGION), "
        "or set a region in the AWS profile"
    ]
    assert "Traceback" not in result.stdout


@pytest.mark.parametrize(("extra", "names"), [
    ({"AWS_REGION": "mars-1"}, "AWS_REGION: must be an AWS Region"),
    ({"AWS_PROFILE": "nobody"}, "AWS_PROFILE: The config profile (nobody) could not be found"),
])
def test_a_bad_aws_region_or_profile_in_the_environment_is_one_line_naming_it(
        tmp_path: Path, extra: dict[str, str], names: str) -> None:
    result = run_without_region(no_aws_env(tmp_path, **extra))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"forwarder: error: {names}"), lines


def test_aws_region_is_read_as_the_aws_cli_reads_it_which_boto3_does_not() -> None:
    from forwarder.config import parse

    base = ["run", "--cluster-name", "lab", "--falco-url", URL]
    config = parse(base, {"AWS_REGION": "eu-west-1"})
    assert isinstance(config, RunConfig) and config.region == "eu-west-1"
    # A flag wins, and so does the Region of a Kinesis stream's ARN.
    config = parse([*base, "--region", "us-east-2"], {"AWS_REGION": "eu-west-1"})
    assert isinstance(config, RunConfig) and config.region == "us-east-2"
    arn = "arn:aws:kinesis:ap-south-1:123456789012:stream/audit"
    config = parse([*base, "--source", f"kinesis:{arn}"], {"AWS_REGION": "eu-west-1"})
    assert isinstance(config, RunConfig) and config.region == "ap-south-1"
    # Unset: left to boto3's chain (AWS_DEFAULT_REGION, the profile).
    config = parse(base, {})
    assert isinstance(config, RunConfig) and config.region is None


# --- run: wiring around the pipeline -------------------------------------------------------------


def install_fake_pipeline(monkeypatch: pytest.MonkeyPatch, run: Any) -> None:
    """Stand in for forwarder.pipeline (written by the reading side), whether or not it is imported."""
    fake = types.ModuleType("forwarder.pipeline")
    fake.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "forwarder.pipeline", fake)
    monkeypatch.setattr(forwarder, "pipeline", fake, raising=False)


def test_run_serves_metrics_while_the_pipeline_runs_and_returns_its_code(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_run(config: RunConfig, *, metrics: Metrics, health: Health, stop: threading.Event) -> int:
        metrics.events_read_total.inc(7)
        health.set_ready(True)
        base = f"http://127.0.0.1:{config.metrics_port}"
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:  # noqa: S310
            seen["metrics"] = response.read().decode()
        with urllib.request.urlopen(f"{base}/readyz", timeout=5) as response:  # noqa: S310
            seen["ready"] = response.status
        seen["stop"] = stop
        return 0

    install_fake_pipeline(monkeypatch, fake_run)
    port = free_port()
    code = cli.main(["run", "--cluster-name", "lab", "--falco-url", URL, "--metrics-port", str(port)], {})
    assert code == 0
    assert "forwarder_events_read_total 7.0" in seen["metrics"]
    assert seen["ready"] == 200
    assert isinstance(seen["stop"], threading.Event) and not seen["stop"].is_set()
    # The server is shut down afterwards: the port is free again.
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)  # noqa: S310


def test_pipeline_failure_is_logged_and_its_exit_code_kept(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class NoAwsAccessError(Exception):
        exit_code = 3

    def fake_run(config: RunConfig, **kwargs: Any) -> int:
        raise NoAwsAccessError("AccessDenied on logs:FilterLogEvents")

    install_fake_pipeline(monkeypatch, fake_run)
    assert cli.main(["run", "--log-group", "g", "--falco-url", URL, "--metrics-port", "0"], {}) == 3
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    failure = [entry for entry in lines if entry["msg"] == "forwarder failed"]
    assert failure and failure[0]["level"] == "ERROR" and "AccessDenied" in failure[0]["error"]


def test_busy_metrics_port_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    install_fake_pipeline(monkeypatch, lambda config, **kwargs: 0)
    with socket.socket() as blocker:
        blocker.bind(("0.0.0.0", 0))  # noqa: S104 (same address the server binds)
        blocker.listen()
        port = blocker.getsockname()[1]
        code = cli.main(["run", "--log-group", "g", "--falco-url", URL, "--metrics-port", str(port)], {})
    assert code == 2
    assert "--metrics-port" in capsys.readouterr().err


FAKE_PIPELINE_MAIN = textwrap.dedent(
    """
    import sys, types
    def run(config, *, metrics, health, stop):
        print("PIPELINE STARTED", flush=True)
        while not stop.wait(0.05):
            health.beat()
        print("PIPELINE STOPPED", flush=True)
        return 0
    fake = types.ModuleType("forwarder.pipeline")
    fake.run = run
    sys.modules["forwarder.pipeline"] = fake
    from forwarder.cli import main
    sys.exit(main())
    """
)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_sets_stop_and_the_process_exits_0(signum: int) -> None:
    process = subprocess.Popen(
        [PYTHON, "-c", FAKE_PIPELINE_MAIN, "run", "--cluster-name", "lab", "--falco-url", URL, "--metrics-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        for line in process.stdout:
            lines.append(line)
            if "PIPELINE STARTED" in line:
                break
        process.send_signal(signum)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    lines.extend(out.splitlines())
    assert any("PIPELINE STOPPED" in line for line in lines)
    logs = [json.loads(line) for line in lines if line.startswith("{")]
    assert logs, "expected JSON log lines on stdout"
    assert all({"ts", "level", "logger", "msg"} <= entry.keys() for entry in logs)
    assert any(entry["msg"] == "stopping" and entry["signal"] == signal.Signals(signum).name for entry in logs)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- replay ----------------------------------------------------------------------------------------


def test_replay_of_generated_events_end_to_end(tmp_path: Path) -> None:
    lines = generated_lines()
    path = tmp_path / "generated.jsonl"
    # One event per line, as a replayed file holds them (the pretty-printed one is left out).
    lines = [line for line in lines if "\n" not in line.text]
    path.write_text("".join(line.text + "\n" for line in lines), encoding="utf-8")
    valid = [line for line in lines if line.valid]
    with FalcoReceiver() as receiver:
        result = subprocess.run(
            [PYTHON, "-m", "forwarder", "replay", str(path), "--falco-url", receiver.url],
            capture_output=True,
            text=True,
            env=child_env(),
            cwd=ROOT,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert receiver.accepted_ids == [line.audit_id for line in valid]
        assert receiver.violations == []
    summary = json.loads(result.stdout)
    assert summary["lines"] == len(lines)
    assert summary["valid"] == summary["acknowledged"] == len(valid)
    assert sum(summary["skipped_by_reason"].values()) == len(lines) - len(valid)
    skipped = [json.loads(line) for line in result.stderr.splitlines() if '"skipping line"' in line]
    assert {entry["line"] for entry in skipped} == {n for n, line in enumerate(lines, start=1) if not line.valid}


def test_replay_of_the_shared_corpus_end_to_end() -> None:
    files = [
        corpus_file("falco_k8s_audit_trace_files.jsonl"),
        corpus_file("sysdig_aks_audit_log_samples.jsonl"),
        corpus_file("panther_k8s_audit_rule_tests.jsonl"),
    ]
    expected_ids = [
        json.loads(line)["auditID"] for f in files[:2] for line in f.read_text().splitlines() if line.strip()
    ]
    with FalcoReceiver() as receiver:
        result = subprocess.run(
            [PYTHON, "-m", "forwarder", "replay", *map(str, files), "--falco-url", receiver.url],
            capture_output=True,
            text=True,
            env=child_env(),
            cwd=ROOT,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert receiver.accepted_ids == expected_ids
        assert receiver.violations == []
    summary = json.loads(result.stdout)
    assert summary["lines"] == 51 + 24 + 31
    assert summary["valid"] == summary["acknowledged"] == 75
    assert summary["skipped_by_reason"] == {"bad_stage_timestamp": 31}
    assert summary["ok"] is True
    # Each skipped line is logged once, as JSON on stderr, with file and line number.
    skipped = [json.loads(line) for line in result.stderr.splitlines() if '"skipping line"' in line]
    assert len(skipped) == 31
    assert {entry["line"] for entry in skipped} == set(range(1, 32))


def test_replay_reads_stdin_and_takes_the_url_from_the_environment() -> None:
    lines = [event_line(f"stdin-{i}") for i in range(10)] + ["", "garbage", event_line("x")[:40] + "[Truncated...]"]
    with FalcoReceiver() as receiver:
        result = subprocess.run(
            [PYTHON, "-m", "forwarder", "replay", "-"],
            input="\n".join(lines) + "\n",
            capture_output=True,
            text=True,
            env=child_env(FORWARDER_FALCO_URL=receiver.url),
            cwd=ROOT,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert receiver.accepted_ids == [f"stdin-{i}" for i in range(10)]
    summary = json.loads(result.stdout)
    assert summary["lines"] == 12
    assert summary["skipped_by_reason"] == {"not_json": 1, "truncated": 1}


def test_replay_splits_into_batches_within_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(event_line(f"b-{i}", pad=900) for i in range(100)) + "\n")
    with FalcoReceiver(max_batch_bytes=20_000) as receiver:
        config = ReplayConfig(files=[str(path)], falco_url=receiver.url, max_batch_bytes=20_000, max_event_bytes=5_000)
        out = io.StringIO()
        assert replay.run(config, threading.Event(), out=out) == 0
        assert receiver.accepted_ids == [f"b-{i}" for i in range(100)]
        assert receiver.violations == []
        assert all(r.body_bytes <= 20_000 for r in receiver.requests)
    summary = json.loads(out.getvalue())
    assert summary["batches"] == len(receiver.requests) > 1


def test_replay_exits_1_when_falco_refuses_an_event(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    # Falco configured with a smaller batch limit than this event: it answers 400 for it.
    path.write_text("\n".join([event_line("small-1"), event_line("huge", pad=30_000), event_line("small-2")]) + "\n")
    with FalcoReceiver(max_batch_bytes=10_000) as receiver:
        config = ReplayConfig(files=[str(path)], falco_url=receiver.url)
        out = io.StringIO()
        assert replay.run(config, threading.Event(), out=out) == 1
        assert receiver.accepted_ids == ["small-1", "small-2"]
    summary = json.loads(out.getvalue())
    assert (summary["valid"], summary["acknowledged"], summary["rejected"], summary["ok"]) == (3, 2, 1, False)


def test_replay_interrupted_while_falco_is_down_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(event_line("a") + "\n")
    stop = threading.Event()

    class StopOnFirstWait(SystemClock):
        def wait(self, seconds: float, event: threading.Event) -> bool:
            stop.set()
            return True

    with FalcoReceiver() as receiver:
        receiver.fail(503)
        client = FalcoClient(receiver.url, Metrics(), clock=StopOnFirstWait())
        out = io.StringIO()
        code = replay.run(ReplayConfig(files=[str(path)], falco_url=receiver.url), stop, client=client, out=out)
    assert code == 1
    summary = json.loads(out.getvalue())
    assert summary["interrupted"] is True and summary["acknowledged"] == 0


def test_replay_of_a_missing_file_is_an_error_naming_it(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    assert cli.main(["replay", str(missing), "--falco-url", URL], {}) == 2
    err = capsys.readouterr().err
    assert err.startswith("forwarder: error: FILE: cannot read ") and "nope.jsonl" in err
