"""forwarder.config: flags, environment variables, defaults and one-line errors naming the option."""

from __future__ import annotations

import pytest

from forwarder.config import (
    EVENT_LIST_OVERHEAD,
    CheckpointSpec,
    ConfigError,
    ReplayConfig,
    RunConfig,
    StartAt,
    parse,
    parse_duration,
    parse_rfc3339_ms,
)

URL = "http://falco-k8saudit-k8saudit-webhook.falco:9765/k8s-audit"
BASE = ["run", "--log-group", "/aws/eks/lab/cluster", "--falco-url", URL]


def run_config(*extra: str, env: dict[str, str] | None = None) -> RunConfig:
    config = parse([*BASE, *extra], env or {})
    assert isinstance(config, RunConfig)
    return config


def error_of(argv: list[str], env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(argv, env or {})
    return info.value


def test_defaults_match_the_contract() -> None:
    config = run_config()
    assert config == RunConfig(log_group="/aws/eks/lab/cluster", falco_url=URL)
    assert config.region is None
    assert config.stream_prefix == "kube-apiserver-audit"
    assert config.checkpoint is None
    assert config.start_at == StartAt(kind="ago", seconds_ago=3600)  # the first start reads back an hour
    assert config.poll_interval_seconds == 2.0
    assert config.max_lateness_seconds == 600.0
    assert config.max_requests_per_second == 3.0
    assert config.metrics_port == 9090
    assert config.max_batch_bytes == 12_582_912
    assert config.max_event_bytes == 262_144
    assert config.request_timeout_seconds == 10.0
    assert config.max_inflight_bytes == 64 * 1024 * 1024
    assert config.shutdown_grace_seconds == 8.0
    assert config.checkpoint_interval_seconds == 10.0
    assert config.checkpoint_hashes_interval_seconds == 60.0


def test_cluster_name_means_the_eks_log_group() -> None:
    config = parse(["run", "--cluster-name", "falco-lab", "--falco-url", URL], {})
    assert isinstance(config, RunConfig)
    assert config.log_group == "/aws/eks/falco-lab/cluster"


def test_every_option_from_flags() -> None:
    config = run_config(
        "--region", "eu-central-1",
        "--stream-prefix", "kube-apiserver-audit-",
        "--checkpoint", "file:/var/lib/forwarder/cp.json",
        "--start-at", "30m",
        "--poll-interval", "0.5",
        "--max-lateness", "900",
        "--max-requests-per-second", "1.5",
        "--metrics-port", "0",
        "--max-batch-bytes", "1048576",
        "--max-event-bytes", "65536",
        "--request-timeout", "3",
        "--max-inflight-bytes", "2097152",
        "--shutdown-grace", "5",
        "--checkpoint-interval", "0",
        "--checkpoint-hashes-interval", "300",
        "--log-level", "debug",
    )
    assert config.region == "eu-central-1"
    assert config.stream_prefix == "kube-apiserver-audit-"
    assert config.checkpoint == CheckpointSpec(kind="file", path="/var/lib/forwarder/cp.json")
    assert config.start_at == StartAt(kind="ago", seconds_ago=1800.0)
    assert config.poll_interval_seconds == 0.5
    assert config.max_lateness_seconds == 900.0
    assert config.max_requests_per_second == 1.5
    assert config.metrics_port == 0
    assert config.max_batch_bytes == 1_048_576
    assert config.max_event_bytes == 65_536
    assert config.request_timeout_seconds == 3.0
    assert config.max_inflight_bytes == 2_097_152
    assert config.shutdown_grace_seconds == 5.0
    assert (config.checkpoint_interval_seconds, config.checkpoint_hashes_interval_seconds) == (0.0, 300.0)
    assert config.log_level == "DEBUG"


def test_every_option_from_the_environment() -> None:
    env = {
        "FORWARDER_CLUSTER_NAME": "prod",
        "FORWARDER_FALCO_URL": "https://falco:9765/k8s-audit",
        "FORWARDER_REGION": "us-east-1",
        "FORWARDER_STREAM_PREFIX": "audit",
        "FORWARDER_CHECKPOINT": "configmap:falco/forwarder-checkpoint",
        "FORWARDER_START_AT": "2024-05-01T12:00:00Z",
        "FORWARDER_POLL_INTERVAL": "5",
        "FORWARDER_MAX_LATENESS": "60",
        "FORWARDER_MAX_REQUESTS_PER_SECOND": "2",
        "FORWARDER_METRICS_PORT": "9100",
        "FORWARDER_MAX_BATCH_BYTES": "500000",
        "FORWARDER_MAX_EVENT_BYTES": "100000",
        "FORWARDER_REQUEST_TIMEOUT": "4",
        "FORWARDER_MAX_INFLIGHT_BYTES": "600000",
        "FORWARDER_SHUTDOWN_GRACE": "3",
        "FORWARDER_CHECKPOINT_INTERVAL": "30",
        "FORWARDER_CHECKPOINT_HASHES_INTERVAL": "120",
        "FORWARDER_LOG_LEVEL": "WARNING",
    }
    config = parse(["run"], env)
    assert config == RunConfig(
        log_group="/aws/eks/prod/cluster",
        falco_url="https://falco:9765/k8s-audit",
        region="us-east-1",
        stream_prefix="audit",
        checkpoint=CheckpointSpec(kind="configmap", namespace="falco", name="forwarder-checkpoint"),
        start_at=StartAt(kind="time", epoch_ms=1_714_564_800_000),
        poll_interval_seconds=5.0,
        max_lateness_seconds=60.0,
        max_requests_per_second=2.0,
        metrics_port=9100,
        max_batch_bytes=500_000,
        max_event_bytes=100_000,
        request_timeout_seconds=4.0,
        max_inflight_bytes=600_000,
        shutdown_grace_seconds=3.0,
        checkpoint_interval_seconds=30.0,
        checkpoint_hashes_interval_seconds=120.0,
        log_level="WARNING",
    )


def test_flags_win_over_environment() -> None:
    config = run_config("--poll-interval", "7", env={"FORWARDER_POLL_INTERVAL": "3", "FORWARDER_FALCO_URL": "x"})
    assert config.poll_interval_seconds == 7.0
    assert config.falco_url == URL


def test_a_flag_for_one_of_cluster_and_log_group_overrides_the_other_from_env() -> None:
    config = parse(["run", "--cluster-name", "a", "--falco-url", URL], {"FORWARDER_LOG_GROUP": "/other"})
    assert isinstance(config, RunConfig)
    assert config.log_group == "/aws/eks/a/cluster"


def test_empty_environment_values_count_as_unset() -> None:
    assert run_config(env={"FORWARDER_CHECKPOINT": "", "FORWARDER_REGION": ""}).checkpoint is None


def test_replay_files_and_options() -> None:
    config = parse(["replay", "a.jsonl", "-", "--falco-url", URL, "--max-batch-bytes", "300000"], {})
    assert config == ReplayConfig(files=["a.jsonl", "-"], falco_url=URL, max_batch_bytes=300_000)


def test_replay_takes_the_url_from_the_environment() -> None:
    config = parse(["replay", "-"], {"FORWARDER_FALCO_URL": URL})
    assert isinstance(config, ReplayConfig)
    assert config.falco_url == URL


@pytest.mark.parametrize(
    ("argv", "option", "fragment"),
    [
        (["run", "--log-group", "g", "--falco-url", "ftp://falco/x"], "--falco-url", "http:// or https://"),
        (["run", "--log-group", "g", "--falco-url", "falco:9765"], "--falco-url", "http:// or https://"),
        (["run", "--log-group", "g", "--falco-url", "http:///k8s-audit"], "--falco-url", "host"),
        (["run", "--log-group", "g", "--falco-url", "http://f:99999/x"], "--falco-url", "not a valid URL"),
        (["run", "--log-group", "g"], "--falco-url", "required"),
        (["run", "--falco-url", URL], "--cluster-name/--log-group", "required"),
        (
            ["run", "--cluster-name", "c", "--log-group", "g", "--falco-url", URL],
            "--cluster-name/--log-group",
            "only one",
        ),
        (["run", "--cluster-name", "bad name!", "--falco-url", URL], "--cluster-name", "EKS cluster name"),
        (["run", "--log-group", "bad group*", "--falco-url", URL], "--log-group", "log group name"),
        ([*BASE, "--region", "Mars"], "--region", "AWS Region"),
        ([*BASE, "--stream-prefix", "a*"], "--stream-prefix", "without ':' or '*'"),
        ([*BASE, "--poll-interval", "abc"], "--poll-interval", "must be a number > 0, got 'abc'"),
        ([*BASE, "--poll-interval", "0"], "--poll-interval", "> 0"),
        ([*BASE, "--poll-interval", "-1"], "--poll-interval", "> 0"),
        ([*BASE, "--poll-interval", "nan"], "--poll-interval", "> 0"),
        ([*BASE, "--max-lateness", "inf"], "--max-lateness", "> 0"),
        ([*BASE, "--max-requests-per-second", "0"], "--max-requests-per-second", "> 0"),
        ([*BASE, "--request-timeout", "-3"], "--request-timeout", "> 0"),
        ([*BASE, "--request-timeout", "51"], "--request-timeout", "<= 50"),
        ([*BASE, "--checkpoint-interval", "-1"], "--checkpoint-interval", "from 0 to 3600"),
        ([*BASE, "--checkpoint-hashes-interval", "2h"], "--checkpoint-hashes-interval", "seconds from 0"),
        ([*BASE, "--shutdown-grace", "0"], "--shutdown-grace", "> 0"),
        ([*BASE, "--metrics-port", "70000"], "--metrics-port", "between 0 and 65535"),
        ([*BASE, "--metrics-port", "-1"], "--metrics-port", "between 0 and 65535"),
        ([*BASE, "--metrics-port", "90.5"], "--metrics-port", "whole number"),
        ([*BASE, "--max-event-bytes", "0"], "--max-event-bytes", ">= 1"),
        ([*BASE, "--max-batch-bytes", "1000"], "--max-batch-bytes", "--max-event-bytes"),
        ([*BASE, "--max-batch-bytes", "12MiB"], "--max-batch-bytes", "whole number"),
        ([*BASE, "--max-inflight-bytes", "1000"], "--max-inflight-bytes", "--max-batch-bytes"),
        ([*BASE, "--checkpoint", "s3:bucket/key"], "--checkpoint", "file:PATH or configmap:NAMESPACE/NAME"),
        ([*BASE, "--checkpoint", "file:"], "--checkpoint", "needs a path"),
        ([*BASE, "--checkpoint", "configmap:falco"], "--checkpoint", "NAMESPACE/NAME"),
        ([*BASE, "--checkpoint", "configmap:Falco/cp"], "--checkpoint", "namespace"),
        ([*BASE, "--checkpoint", "configmap:falco/CP_1"], "--checkpoint", "configmap name"),
        ([*BASE, "--start-at", "yesterday"], "--start-at", "duration"),
        ([*BASE, "--start-at", "30x"], "--start-at", "duration"),
        ([*BASE, "--start-at", "2024-05-01T12:00:00"], "--start-at", "RFC3339"),
        ([*BASE, "--start-at", "2024-02-30T12:00:00Z"], "--start-at", "RFC3339"),
        ([*BASE, "--log-level", "chatty"], "--log-level", "one of"),
        ([*BASE, "--no-such-option", "1"], "--no-such-option", "unrecognized"),
        ([*BASE, "--poll-interval"], "--poll-interval", "expected one argument"),
        (["replay", "--falco-url", URL], "FILE", "required"),
        (["replay", "x.jsonl"], "--falco-url", "required"),
        (["frobnicate"], "command", "invalid choice"),
        ([], "command", "'run' or 'replay'"),
    ],
)
def test_bad_options_raise_one_line_naming_the_option(argv: list[str], option: str, fragment: str) -> None:
    error = error_of(argv)
    assert error.option == option
    assert fragment in error.message
    text = str(error)
    assert text.startswith(f"{option}: ")
    assert "\n" not in text


def test_error_from_the_environment_names_the_variable() -> None:
    error = error_of(BASE, {"FORWARDER_POLL_INTERVAL": "soon"})
    assert str(error) == "--poll-interval (from FORWARDER_POLL_INTERVAL): must be a number > 0, got 'soon'"


def test_smallest_batch_size_holds_one_largest_event() -> None:
    assert run_config("--max-event-bytes", "1000", "--max-batch-bytes", str(1000 + EVENT_LIST_OVERHEAD))
    with pytest.raises(ConfigError):
        run_config("--max-event-bytes", "1000", "--max-batch-bytes", str(1000 + EVENT_LIST_OVERHEAD - 1))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90.0), ("30m", 1800.0), ("2h", 7200.0), ("1d", 86400.0), ("1h30m", 5400.0), ("1.5h", 5400.0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert run_config("--start-at", text).start_at == StartAt(kind="ago", seconds_ago=seconds)


@pytest.mark.parametrize(
    ("text", "epoch_ms"),
    [
        ("2024-05-01T12:00:00Z", 1_714_564_800_000),
        ("2024-05-01T12:00:00.123456Z", 1_714_564_800_123),
        ("2024-05-01T14:00:00+02:00", 1_714_564_800_000),
        ("2024-05-01T07:30:00.5-04:30", 1_714_564_800_500),
        ("2024-02-29T00:00:00Z", 1_709_164_800_000),
    ],
)
def test_rfc3339_times(text: str, epoch_ms: int) -> None:
    assert parse_rfc3339_ms(text) == epoch_ms


def test_start_at_resolves_against_now() -> None:
    now_ms = 1_700_000_000_000
    assert StartAt(kind="now").resolve(now_ms) == now_ms
    assert StartAt(kind="ago", seconds_ago=1800).resolve(now_ms) == now_ms - 1_800_000
    assert StartAt(kind="time", epoch_ms=123).resolve(now_ms) == 123
    assert run_config("--start-at", "NOW").start_at.resolve(now_ms) == now_ms


def test_help_names_every_environment_variable(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parse(["run", "--help"], {})
    assert info.value.code == 0
    out = capsys.readouterr().out
    for name in (
        "CLUSTER_NAME", "LOG_GROUP", "FALCO_URL", "REGION", "STREAM_PREFIX", "CHECKPOINT", "START_AT",
        "POLL_INTERVAL", "MAX_LATENESS", "MAX_REQUESTS_PER_SECOND", "METRICS_PORT", "MAX_BATCH_BYTES",
        "MAX_EVENT_BYTES", "REQUEST_TIMEOUT", "MAX_INFLIGHT_BYTES", "SHUTDOWN_GRACE", "LOG_LEVEL",
    ):
        assert f"FORWARDER_{name}" in out
