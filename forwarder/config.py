"""Command-line and environment configuration, validated once at start.

Every option can also come from an environment variable ``FORWARDER_<OPTION>`` (named in
``--help``); a flag wins over its variable. Any bad value raises :class:`ConfigError`
naming the option, so the CLI can print one line and exit 2 before doing anything else.
"""

from __future__ import annotations

import argparse
import calendar
import math
import re
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, NoReturn
from urllib.parse import urlsplit

ENV_PREFIX = "FORWARDER_"

DEFAULT_STREAM_PREFIX = "kube-apiserver-audit"
# The k8saudit webhook's own defaults (webhookMaxBatchSize, maxEventSize).
DEFAULT_MAX_BATCH_BYTES = 12 * 1024 * 1024
DEFAULT_MAX_EVENT_BYTES = 256 * 1024
DEFAULT_MAX_INFLIGHT_BYTES = 64 * 1024 * 1024
# Bytes an EventList adds around its items: the envelope, plus a comma per item after the first.
EVENT_LIST_PREFIX = b'{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":['
EVENT_LIST_SUFFIX = b"]}"
EVENT_LIST_OVERHEAD = len(EVENT_LIST_PREFIX) + len(EVENT_LIST_SUFFIX)

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# A request may block a thread this long; liveness (metrics.liveness_window_seconds) must still see a hang
# within 2 minutes.
MAX_REQUEST_TIMEOUT_SECONDS = 50


class ConfigError(Exception):
    """A bad option. ``str()`` is one line that names it, e.g.
    ``--poll-interval: must be a number > 0, got 'abc'``."""

    exit_code = 2

    def __init__(self, option: str, message: str) -> None:
        super().__init__(option, message)
        self.option = option
        self.message = message

    def __str__(self) -> str:
        return f"{self.option}: {self.message}"


@dataclass(frozen=True)
class CheckpointSpec:
    """Where the checkpoint lives: ``file:PATH`` or ``configmap:NAMESPACE/NAME``."""

    kind: Literal["file", "configmap"]
    path: str | None = None
    namespace: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class SourceSpec:
    """Where the audit log is read: ``cloudwatch`` (FilterLogEvents) or ``kinesis:<stream ARN>`` (a subscription)."""

    kind: Literal["cloudwatch", "kinesis"] = "cloudwatch"
    stream_arn: str | None = None
    """For ``kinesis``: the Kinesis Data Stream the log group's subscription filter writes to."""

    @property
    def region(self) -> str | None:
        """The Region of the stream (from its ARN)."""
        return None if self.stream_arn is None else self.stream_arn.split(":")[3]


@dataclass(frozen=True)
class LeaseSpec:
    """The ``coordination.k8s.io/v1`` Lease that picks the one active replica: NAMESPACE/NAME."""

    namespace: str
    name: str


# The first start (no checkpoint yet) reads back this far: the audit log written while the lab came up (the
# cluster, its nodes and Falco come before the forwarder, 10 to 25 minutes; Helm may wait 10 more), or before the
# forwarder was added to a running cluster. The source bounds it: CloudWatch holds what its retention keeps, and
# Kinesis starts a shard at its oldest record when the time is older (GetShardIterator, AT_TIMESTAMP).
DEFAULT_LOOKBACK_SECONDS = 3600


@dataclass(frozen=True)
class StartAt:
    """Where to start reading when there is no checkpoint yet."""

    kind: Literal["now", "ago", "time"] = "ago"
    seconds_ago: float = DEFAULT_LOOKBACK_SECONDS
    """For ``ago``: how far before the start of the process."""
    epoch_ms: int = 0
    """For ``time``: an absolute instant, in milliseconds since the epoch."""

    def resolve(self, now_ms: int) -> int:
        """The start instant in epoch milliseconds, given the current time."""
        if self.kind == "now":
            return now_ms
        if self.kind == "ago":
            return now_ms - int(self.seconds_ago * 1000)
        return self.epoch_ms


@dataclass(frozen=True)
class RunConfig:
    """Settings of ``forwarder run``."""

    log_group: str
    """CloudWatch log group holding the audit log (``/aws/eks/<cluster>/cluster``)."""
    falco_url: str
    """The k8saudit webhook, e.g. ``http://falco-k8saudit-webhook:9765/k8s-audit``."""
    region: str | None = None
    """AWS Region; ``None`` leaves it to boto3's chain (AWS_DEFAULT_REGION, the profile's region)."""
    stream_prefix: str = DEFAULT_STREAM_PREFIX
    checkpoint: CheckpointSpec | None = None
    start_at: StartAt = field(default_factory=StartAt)
    poll_interval_seconds: float = 2.0
    max_lateness_seconds: float = 600.0
    max_requests_per_second: float = 3.0
    """Hard cap on CloudWatch API calls per second, all operations together."""
    metrics_port: int = 9090
    """Port of /metrics, /healthz and /readyz; 0 disables the server."""
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    request_timeout_seconds: float = 10.0
    max_inflight_bytes: int = DEFAULT_MAX_INFLIGHT_BYTES
    """Backpressure: reading pauses while this many bytes wait for delivery."""
    shutdown_grace_seconds: float = 8.0
    checkpoint_interval_seconds: float = 10.0
    """Positions are saved at most this often (when something material changed); 0: after every batch."""
    checkpoint_hashes_interval_seconds: float = 60.0
    """Remembered hashes (against duplicates after a restart) are saved at most this often; 0: with the positions."""
    log_level: str = "INFO"
    source: SourceSpec = field(default_factory=SourceSpec)
    lease: LeaseSpec | None = None
    """Run as one of several replicas: only the holder of this Lease reads, delivers and writes the checkpoint."""
    lease_duration_seconds: float = 15.0
    """A standby takes over at most this long after the holder stopped renewing."""
    lease_identity: str | None = None
    """This replica's name in the Lease (with ``lease``): POD_NAME, else the host name."""
    falco_connections: int = 1
    """Deliveries in flight at once, each on its own keep-alive connection, spread over the webhook's addresses."""
    kube_api_url: str | None = None
    """The Kubernetes API for the ConfigMap checkpoint and the Lease; None: in-cluster (service account)."""
    migrate_from: CheckpointSpec | None = None
    """The checkpoint of the forwarder before an upgrade (release 0.3: ConfigMap NAME and NAME-hashes), carried over
    into ``checkpoint`` on a first start (replicas/upgrade.py); only read."""
    wait_for_lease: LeaseSpec | None = None
    """The Lease of the replicas before an upgrade: this replica takes its own Lease (without one: starts) only once
    that one is free for good (replicas/upgrade.py); only read."""


@dataclass(frozen=True)
class ReplayConfig:
    """Settings of ``forwarder replay``."""

    files: list[str]
    """JSON-lines files; ``-`` is standard input."""
    falco_url: str
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    request_timeout_seconds: float = 10.0
    log_level: str = "INFO"


# --- option table ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Option:
    flag: str
    metavar: str
    help: str
    default: str | None = None

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.dest.upper()


_FALCO_URL = _Option("--falco-url", "URL", "Falco k8saudit webhook URL (http or https), required")
_MAX_BATCH = _Option(
    "--max-batch-bytes", "BYTES", "largest request body sent to Falco (Falco's webhookMaxBatchSize)",
    str(DEFAULT_MAX_BATCH_BYTES),
)
_MAX_EVENT = _Option(
    "--max-event-bytes", "BYTES", "larger events are skipped (Falco's maxEventSize)", str(DEFAULT_MAX_EVENT_BYTES)
)
_TIMEOUT = _Option(
    "--request-timeout", "SECONDS",
    f"timeout of one HTTP request (Falco, CloudWatch, Kubernetes), at most {MAX_REQUEST_TIMEOUT_SECONDS}", "10",
)
_LOG_LEVEL = _Option("--log-level", "LEVEL", "one of " + ", ".join(LOG_LEVELS), "INFO")
MAX_FALCO_CONNECTIONS = 256  # the AuditForwarder component allows as many (2 per audit Falco, up to 100 of them)
DEFAULT_LEASE_DURATION_SECONDS = 15.0

_RUN_OPTIONS: tuple[_Option, ...] = (
    _Option("--cluster-name", "NAME", "EKS cluster; reads log group /aws/eks/NAME/cluster (or give --log-group)"),
    _Option("--log-group", "NAME", "CloudWatch log group to read (or give --cluster-name)"),
    _FALCO_URL,
    _Option("--source", "SPEC",
            "cloudwatch (poll the log group with FilterLogEvents) or kinesis:STREAM_ARN (read the log group's "
            "subscription records from that Kinesis Data Stream)", "cloudwatch"),
    _Option("--region", "REGION", "AWS Region (default: the stream ARN's, else AWS_REGION, else boto3's chain: "
            "AWS_DEFAULT_REGION, the profile's region)"),
    _Option("--stream-prefix", "PREFIX", "read every log stream whose name starts with this", DEFAULT_STREAM_PREFIX),
    _Option("--checkpoint", "SPEC", "file:PATH or configmap:NAMESPACE/NAME (default: no checkpoint)"),
    _Option("--start-at", "WHEN", "where the first start (no checkpoint yet) reads from: now, a duration ago (30m, 2h, "
            "90s), or an RFC3339 time; the source keeps what it keeps (CloudWatch: the log group's retention; Kinesis: "
            "the stream's, from its oldest record)", f"{DEFAULT_LOOKBACK_SECONDS // 60}m"),
    _Option("--poll-interval", "SECONDS", "pause between polls once caught up", "2"),
    _Option("--max-lateness", "SECONDS", "events arriving up to this long after their timestamp are delivered", "600"),
    _Option("--max-requests-per-second", "RATE", "hard cap on CloudWatch API calls per second", "3"),
    _Option("--metrics-port", "PORT", "port of /metrics, /healthz, /readyz; 0 disables", "9090"),
    _MAX_BATCH,
    _MAX_EVENT,
    _TIMEOUT,
    _Option("--max-inflight-bytes", "BYTES", "reading pauses while this many bytes await delivery",
            str(DEFAULT_MAX_INFLIGHT_BYTES)),
    _Option("--shutdown-grace", "SECONDS", "on SIGTERM, time allowed to deliver what is in flight", "8"),
    _Option("--checkpoint-interval", "SECONDS",
            "save the checkpoint's positions at most this often, when something changed (0: after every batch)", "10"),
    _Option("--checkpoint-hashes-interval", "SECONDS",
            "save the remembered hashes (fewer duplicates after a crash) at most this often (0: with the positions)",
            "60"),
    _Option("--falco-connections", "N",
            "deliveries in flight at once, each on its own keep-alive connection, spread over every address the "
            f"--falco-url host resolves to (1 to {MAX_FALCO_CONNECTIONS})", "1"),
    _Option("--lease", "NAMESPACE/NAME",
            "run as one of several replicas: only the holder of this coordination.k8s.io Lease (the stack creates it; "
            "created here if missing, where allowed) reads, delivers and writes the checkpoint; needs --checkpoint "
            "configmap:... (default: one replica)"),
    _Option("--lease-duration", "SECONDS", "a standby takes over at most this long after the holder stops renewing",
            f"{DEFAULT_LEASE_DURATION_SECONDS:g}"),
    _Option("--lease-identity", "ID", "this replica's name in the Lease (default: POD_NAME, else the host name)"),
    _Option("--migrate-from", "SPEC",
            "on the first start (--checkpoint holds no checkpoint yet), carry over the checkpoint a forwarder of "
            "release 0.3 kept: configmap:NAMESPACE/NAME (its ConfigMaps NAME and NAME-hashes, only read; missing: "
            "nothing to carry over); needs --checkpoint configmap:... (default: none)"),
    _Option("--wait-for-lease", "NAMESPACE/NAME",
            "before taking --lease (or, without it, before reading), wait until this Lease of the replicas before an "
            "upgrade (release 0.3) is free for good: released or expired, then left alone for half its duration (only "
            "read; missing: nothing to wait for) (default: none)"),
    _Option("--kube-api-url", "URL",
            "Kubernetes API for the ConfigMap checkpoint and the Lease, e.g. http://127.0.0.1:8001 with kubectl "
            "proxy (default: in-cluster, with the pod's service account)"),
    _LOG_LEVEL,
)
_REPLAY_OPTIONS: tuple[_Option, ...] = (_FALCO_URL, _MAX_BATCH, _MAX_EVENT, _TIMEOUT, _LOG_LEVEL)


class _Parser(argparse.ArgumentParser):
    """argparse that raises ConfigError instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("argument {run,replay}") or message.startswith("the following arguments are required"):
            option = "command" if "{run,replay}" in message else "FILE"
        else:
            match = re.search(r"(--[a-z0-9-]+)", message)
            option = match.group(1) if match else "command"
        # argparse repeats the option's name ("argument --x: expected one argument"): say it once.
        message = re.sub(r"^argument [^:]+: ", "", message)
        raise ConfigError(option, message)


def _add_options(parser: argparse.ArgumentParser, options: Sequence[_Option]) -> None:
    for opt in options:
        default = f", default {opt.default}" if opt.default is not None else ""
        parser.add_argument(
            opt.flag, dest=opt.dest, metavar=opt.metavar, default=None, help=f"{opt.help} [env {opt.env}{default}]"
        )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="forwarder",
        description="Forward EKS Kubernetes audit events from CloudWatch Logs to Falco's k8saudit webhook.",
        epilog="Every option can also be set from an environment variable FORWARDER_<OPTION> "
        "(e.g. FORWARDER_FALCO_URL); 'forwarder run --help' and 'forwarder replay --help' name each one.",
        allow_abbrev=False,
    )
    commands = parser.add_subparsers(dest="command", metavar="{run,replay}", parser_class=_Parser)
    run = commands.add_parser(
        "run", help="follow the audit log in CloudWatch and deliver it to Falco", allow_abbrev=False,
        description="Follow the audit log in CloudWatch Logs and deliver it to Falco. Every option can also be set "
        "from the environment variable shown with it; a flag wins over its variable. AWS endpoint, Region and "
        "credentials come from boto3's standard chain (AWS_ENDPOINT_URL, AWS_ROLE_ARN + "
        "AWS_WEB_IDENTITY_TOKEN_FILE, ...).",
    )
    _add_options(run, _RUN_OPTIONS)
    replay = commands.add_parser(
        "replay", help="send JSON lines of audit events from files to Falco", allow_abbrev=False,
        description="Send audit events (one JSON object per line) from files to Falco; '-' reads standard input. "
        "Prints a one-line JSON summary on stdout (logs go to stderr); exits 0 when every valid line was "
        "acknowledged, 1 otherwise.",
    )
    replay.add_argument("files", nargs="+", metavar="FILE", help="JSON-lines file, or - for standard input")
    _add_options(replay, _REPLAY_OPTIONS)
    return parser


# --- value checks -----------------------------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?[smhd])+")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)
# CloudWatch Logs names (API reference: CreateLogGroup, CreateLogStream).
_LOG_GROUP = re.compile(r"[.\-_/#A-Za-z0-9]{1,512}")
# EKS CreateCluster: name.
_CLUSTER_NAME = re.compile(r"[0-9A-Za-z][A-Za-z0-9\-_]{0,99}")
_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-\d{1,2}")
# Kinesis Data Streams ARN (CreateStream: names of 1-128 of a-z A-Z 0-9 _ . -).
_STREAM_ARN = re.compile(
    r"arn:aws(?:-[a-z]+)*:kinesis:([a-z]{2}(?:-[a-z]+)+-\d{1,2}):\d{12}:stream/[A-Za-z0-9_.\-]{1,128}")
# Kubernetes: namespaces are DNS-1123 labels, ConfigMap names DNS-1123 subdomains.
_DNS1123_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?")


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``90s``, ``30m``, ``2h``, ``1d`` or ``1h30m``; ValueError otherwise."""
    if not _DURATION.fullmatch(text):
        raise ValueError(text)
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))


def parse_rfc3339_ms(text: str) -> int:
    """Epoch milliseconds of an RFC3339 timestamp with a zone (``Z`` or ``+hh:mm``); ValueError otherwise."""
    m = _RFC3339.fullmatch(text)
    if not m:
        raise ValueError(text)
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]):
        raise ValueError(text)
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError(text)
    offset = 0
    if m.group(9):
        off_h, off_m = int(m.group(10)), int(m.group(11))
        if off_h > 23 or off_m > 59:
            raise ValueError(text)
        offset = (off_h * 60 + off_m) * 60 * (1 if m.group(9) == "+" else -1)
    frac_ms = int((m.group(7) or "0")[:3].ljust(3, "0"))
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)) - offset
    return seconds * 1000 + frac_ms


class _Values:
    """Raw option values after merging flags over environment; remembers where each came from."""

    def __init__(self, namespace: argparse.Namespace, options: Sequence[_Option], environ: Mapping[str, str]) -> None:
        self._raw: dict[str, str | None] = {}
        self._source: dict[str, str] = {}
        self._options = {opt.dest: opt for opt in options}
        self._flagged: set[str] = set()
        for opt in options:
            flag_value = getattr(namespace, opt.dest)
            if flag_value is not None:
                self._raw[opt.dest], self._source[opt.dest] = flag_value, opt.flag
                self._flagged.add(opt.dest)
            elif environ.get(opt.env, "") != "":
                self._raw[opt.dest], self._source[opt.dest] = environ[opt.env], f"{opt.flag} (from {opt.env})"
            else:
                self._raw[opt.dest], self._source[opt.dest] = opt.default, opt.flag

    def raw(self, dest: str) -> str | None:
        return self._raw[dest]

    def from_flag(self, dest: str) -> bool:
        return dest in self._flagged

    def fail(self, dest: str, message: str) -> NoReturn:
        raise ConfigError(self._source[dest], message)

    def required(self, dest: str) -> str:
        value = self._raw[dest]
        if value is None or value.strip() == "":
            opt = self._options[dest]
            raise ConfigError(opt.flag, f"is required (or set {opt.env})")
        return value.strip()

    def number(self, dest: str, *, minimum_exclusive: float = 0.0, maximum: float | None = None) -> float:
        text = self.required(dest)
        bounds = f"> {minimum_exclusive:g}" + ("" if maximum is None else f" and <= {maximum:g}")
        try:
            value = float(text)
        except ValueError:
            self.fail(dest, f"must be a number {bounds}, got {text!r}")
        if not math.isfinite(value) or value <= minimum_exclusive or (maximum is not None and value > maximum):
            self.fail(dest, f"must be a number {bounds}, got {text!r}")
        return value

    def seconds(self, dest: str, *, maximum: float) -> float:
        """A number of seconds from 0 to ``maximum``."""
        text = self.required(dest)
        try:
            value = float(text)
        except ValueError:
            self.fail(dest, f"must be a number of seconds from 0 to {maximum:g}, got {text!r}")
        if not math.isfinite(value) or not 0 <= value <= maximum:
            self.fail(dest, f"must be a number of seconds from 0 to {maximum:g}, got {text!r}")
        return value

    def integer(self, dest: str, *, minimum: int, maximum: int | None = None) -> int:
        text = self.required(dest)
        bounds = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        try:
            value = int(text)
        except ValueError:
            self.fail(dest, f"must be a whole number {bounds}, got {text!r}")
        if value < minimum or (maximum is not None and value > maximum):
            self.fail(dest, f"must be a whole number {bounds}, got {text!r}")
        return value

    def checked(self, dest: str, convert: Callable[[str], object], message: str) -> object:
        text = self.required(dest)
        try:
            return convert(text)
        except ValueError:
            self.fail(dest, f"{message}, got {text!r}")


def _falco_url(values: _Values) -> str:
    url = values.required("falco_url")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError when out of range or not a number
    except ValueError:
        values.fail("falco_url", f"is not a valid URL, got {url!r}")
    if parts.scheme not in ("http", "https"):
        values.fail("falco_url", f"must start with http:// or https://, got {url!r}")
    if not parts.hostname:
        values.fail("falco_url", f"must name a host, got {url!r}")
    if port == 0:
        values.fail("falco_url", f"port must be between 1 and 65535, got {url!r}")
    return url


def _sizes(values: _Values) -> tuple[int, int]:
    max_event = values.integer("max_event_bytes", minimum=1)
    max_batch = values.integer("max_batch_bytes", minimum=1)
    # A batch must hold at least one event of the largest allowed size, envelope included.
    if max_batch < max_event + EVENT_LIST_OVERHEAD:
        values.fail(
            "max_batch_bytes",
            f"must be at least --max-event-bytes + {EVENT_LIST_OVERHEAD} (the EventList envelope), "
            f"i.e. >= {max_event + EVENT_LIST_OVERHEAD}, got {max_batch}",
        )
    return max_batch, max_event


def _log_level(values: _Values) -> str:
    level = values.required("log_level").upper()
    if level not in LOG_LEVELS:
        values.fail("log_level", f"must be one of {', '.join(LOG_LEVELS)}, got {values.raw('log_level')!r}")
    return level


def _log_group(values: _Values) -> str:
    cluster, group = values.raw("cluster_name"), values.raw("log_group")
    # A flag for one of the pair overrides an environment value for the other.
    cluster_flag, group_flag = values.from_flag("cluster_name"), values.from_flag("log_group")
    if cluster_flag != group_flag:
        cluster, group = (cluster, None) if cluster_flag else (None, group)
    if cluster and group:
        raise ConfigError("--cluster-name/--log-group", "give only one of them")
    if not cluster and not group:
        raise ConfigError(
            "--cluster-name/--log-group",
            "one of them is required (or set FORWARDER_CLUSTER_NAME / FORWARDER_LOG_GROUP)",
        )
    if cluster:
        if not _CLUSTER_NAME.fullmatch(cluster):
            values.fail(
                "cluster_name",
                f"must be an EKS cluster name (1-100 letters, digits, '-' or '_', starting with a letter or digit), "
                f"got {cluster!r}",
            )
        return f"/aws/eks/{cluster}/cluster"
    assert group is not None
    if not _LOG_GROUP.fullmatch(group):
        values.fail("log_group", f"must be a log group name (1-512 of A-Z a-z 0-9 . - _ / #), got {group!r}")
    return group


def _checkpoint(values: _Values) -> CheckpointSpec | None:
    text = values.raw("checkpoint")
    if text is None or text.strip() == "":
        return None
    kind, sep, rest = text.strip().partition(":")
    if not sep or kind not in ("file", "configmap"):
        values.fail("checkpoint", f"must be file:PATH or configmap:NAMESPACE/NAME, got {text!r}")
    if kind == "file":
        if not rest:
            values.fail("checkpoint", f"file: needs a path, e.g. file:/var/lib/forwarder/checkpoint.json, got {text!r}")
        return CheckpointSpec(kind="file", path=rest)
    namespace, name = _object_ref(values, "checkpoint", rest, "configmap", text)
    return CheckpointSpec(kind="configmap", namespace=namespace, name=name)


def _source(values: _Values) -> SourceSpec:
    text = values.required("source")
    if text == "cloudwatch":
        return SourceSpec()
    kind, sep, arn = text.partition(":")
    if kind != "kinesis" or not sep:
        values.fail("source", f"must be cloudwatch or kinesis:STREAM_ARN, got {text!r}")
    if not _STREAM_ARN.fullmatch(arn):
        values.fail("source", "kinesis: needs a Kinesis stream ARN such as "
                              f"arn:aws:kinesis:us-west-2:123456789012:stream/NAME, got {text!r}")
    return SourceSpec(kind="kinesis", stream_arn=arn)


def _object_ref(values: _Values, dest: str, ref: str, kind: str, text: str) -> tuple[str, str]:
    """NAMESPACE/NAME of a Kubernetes object (a namespace is a DNS-1123 label, a name a subdomain); ``text`` is
    what the option said, for the message."""
    namespace, slash, name = ref.partition("/")
    if not slash or not _DNS1123_LABEL.fullmatch(namespace):
        values.fail(dest, f"{kind}: needs NAMESPACE/NAME with a valid namespace, got {text!r}")
    if not _DNS1123_SUBDOMAIN.fullmatch(name):
        values.fail(dest, f"{kind} name must be lower-case letters, digits, '-' or '.' (<= 253 characters), "
                          f"got {text!r}")
    return namespace, name


def _lease(values: _Values, checkpoint: CheckpointSpec | None, environ: Mapping[str, str]
           ) -> tuple[LeaseSpec | None, float, str | None]:
    text = values.raw("lease")
    duration = values.number("lease_duration", maximum=3600)
    if text is None or not text.strip():
        return None, duration, None
    namespace, name = _object_ref(values, "lease", text.strip(), "Lease", text)
    if checkpoint is None or checkpoint.kind != "configmap":
        values.fail("lease", "needs --checkpoint configmap:NAMESPACE/NAME (the replicas share the checkpoint, and "
                             "the Lease fences it)")
    if duration < 1:
        values.fail("lease_duration", f"must be at least 1 second, got {values.raw('lease_duration')!r}")
    identity = values.raw("lease_identity") or environ.get("POD_NAME") or socket.gethostname()
    identity = identity.strip()
    if not identity or len(identity) > 253:
        values.fail("lease_identity", f"must be 1-253 characters, got {identity!r}")
    return LeaseSpec(namespace, name), duration, identity


def _is_own_configmap(name: str, checkpoint: CheckpointSpec) -> bool:
    """``name`` is one of the ConfigMaps of ``checkpoint``: NAME, or NAME-hashes-<part> (checkpoint/store.py)."""
    own = checkpoint.name or ""
    return name == own or re.fullmatch(re.escape(own) + r"-hashes-\d+", name) is not None


def _migrate_from(values: _Values, checkpoint: CheckpointSpec | None) -> CheckpointSpec | None:
    text = values.raw("migrate_from")
    if text is None or not text.strip():
        return None
    kind, sep, rest = text.strip().partition(":")
    if not sep or kind != "configmap":
        values.fail("migrate_from", f"must be configmap:NAMESPACE/NAME (release 0.3's checkpoint), got {text!r}")
    namespace, name = _object_ref(values, "migrate_from", rest, "configmap", text)
    if checkpoint is None or checkpoint.kind != "configmap":
        values.fail("migrate_from", "needs --checkpoint configmap:NAMESPACE/NAME (the checkpoint it is carried into)")
    if namespace == checkpoint.namespace and (
            _is_own_configmap(name, checkpoint) or _is_own_configmap(name + "-hashes", checkpoint)):
        values.fail("migrate_from", f"names ConfigMaps of --checkpoint itself ({name} and {name}-hashes must be "
                                    f"neither {checkpoint.name} nor {checkpoint.name}-hashes-<part>), got {text!r}")
    return CheckpointSpec(kind="configmap", namespace=namespace, name=name)


def _wait_for_lease(values: _Values, lease: LeaseSpec | None) -> LeaseSpec | None:
    text = values.raw("wait_for_lease")
    if text is None or not text.strip():
        return None
    namespace, name = _object_ref(values, "wait_for_lease", text.strip(), "Lease", text)
    if lease == LeaseSpec(namespace, name):
        values.fail("wait_for_lease", f"is --lease itself; give the Lease of the replicas before the upgrade, got "
                                      f"{text!r}")
    return LeaseSpec(namespace, name)


def _kube_api_url(values: _Values) -> str | None:
    url = values.raw("kube_api_url")
    if url is None or not url.strip():
        return None
    url = url.strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError when out of range)
    except ValueError:
        values.fail("kube_api_url", f"is not a valid URL, got {url!r}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        values.fail("kube_api_url", f"must be an http:// or https:// URL with a host, got {url!r}")
    return url


def _start_at(values: _Values) -> StartAt:
    text = values.required("start_at")
    if text.lower() == "now":
        return StartAt(kind="now", seconds_ago=0.0)
    if _DURATION.fullmatch(text):
        return StartAt(kind="ago", seconds_ago=parse_duration(text))
    try:
        return StartAt(kind="time", epoch_ms=parse_rfc3339_ms(text))
    except ValueError:
        values.fail(
            "start_at",
            f"must be 'now', a duration ago such as 30m, 2h or 90s, or an RFC3339 time such as "
            f"2024-05-01T12:00:00Z, got {text!r}",
        )


def _aws_region(environ: Mapping[str, str]) -> str | None:
    """AWS_REGION, which the AWS CLI and the other SDKs read and boto3 does not (boto/boto3#3620); None when unset
    (boto3's chain then: AWS_DEFAULT_REGION, the profile's region)."""
    region = environ.get("AWS_REGION", "").strip()
    if not region:
        return None
    if not _REGION.fullmatch(region):
        raise ConfigError("AWS_REGION", f"must be an AWS Region such as us-west-2, got {region!r}")
    return region


def _run_config(values: _Values, environ: Mapping[str, str]) -> RunConfig:
    log_group = _log_group(values)
    falco_url = _falco_url(values)
    source = _source(values)
    region = values.raw("region")
    if region is not None and region.strip():
        region = region.strip()
        if not _REGION.fullmatch(region):
            values.fail("region", f"must be an AWS Region such as us-west-2, got {region!r}")
        if source.region is not None and region != source.region:
            values.fail("region", f"is {region} but the Kinesis stream is in {source.region} (leave --region out)")
    else:
        region = source.region or _aws_region(environ)
    prefix = values.required("stream_prefix")
    if len(prefix) > 512 or ":" in prefix or "*" in prefix:
        values.fail("stream_prefix", f"must be 1-512 characters without ':' or '*', got {prefix!r}")
    max_batch, max_event = _sizes(values)
    max_inflight = values.integer("max_inflight_bytes", minimum=1)
    if max_inflight < max_batch:
        values.fail("max_inflight_bytes", f"must be >= --max-batch-bytes ({max_batch}), got {max_inflight}")
    checkpoint = _checkpoint(values)
    lease, lease_duration, lease_identity = _lease(values, checkpoint, environ)
    return RunConfig(
        log_group=log_group,
        falco_url=falco_url,
        region=region,
        stream_prefix=prefix,
        checkpoint=checkpoint,
        start_at=_start_at(values),
        poll_interval_seconds=values.number("poll_interval"),
        max_lateness_seconds=values.number("max_lateness"),
        max_requests_per_second=values.number("max_requests_per_second"),
        metrics_port=values.integer("metrics_port", minimum=0, maximum=65535),
        max_batch_bytes=max_batch,
        max_event_bytes=max_event,
        request_timeout_seconds=values.number("request_timeout", maximum=MAX_REQUEST_TIMEOUT_SECONDS),
        max_inflight_bytes=max_inflight,
        shutdown_grace_seconds=values.number("shutdown_grace"),
        checkpoint_interval_seconds=values.seconds("checkpoint_interval", maximum=3600),
        checkpoint_hashes_interval_seconds=values.seconds("checkpoint_hashes_interval", maximum=3600),
        log_level=_log_level(values),
        source=source,
        lease=lease,
        lease_duration_seconds=lease_duration,
        lease_identity=lease_identity,
        falco_connections=values.integer("falco_connections", minimum=1, maximum=MAX_FALCO_CONNECTIONS),
        kube_api_url=_kube_api_url(values),
        migrate_from=_migrate_from(values, checkpoint),
        wait_for_lease=_wait_for_lease(values, lease),
    )


def _replay_config(files: list[str], values: _Values) -> ReplayConfig:
    max_batch, max_event = _sizes(values)
    return ReplayConfig(
        files=list(files),
        falco_url=_falco_url(values),
        max_batch_bytes=max_batch,
        max_event_bytes=max_event,
        request_timeout_seconds=values.number("request_timeout", maximum=MAX_REQUEST_TIMEOUT_SECONDS),
        log_level=_log_level(values),
    )


def parse(argv: Sequence[str], environ: Mapping[str, str]) -> RunConfig | ReplayConfig:
    """Build the configuration from ``argv`` (without the program name) and ``environ``.

    Raises ConfigError naming the option for anything invalid. ``--help`` prints help and
    raises SystemExit(0), as argparse does.
    """
    namespace = build_parser().parse_args(list(argv))
    if namespace.command == "run":
        return _run_config(_Values(namespace, _RUN_OPTIONS, environ), environ)
    if namespace.command == "replay":
        return _replay_config(namespace.files, _Values(namespace, _REPLAY_OPTIONS, environ))
    raise ConfigError("command", "expected 'run' or 'replay' (see --help)")
