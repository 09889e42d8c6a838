"""`python -m workshop pipeline`: what the forwarder delivered next to what Falco evaluated.

Falco's webhook answers 200 before it parses a request, so the forwarder's
`forwarder_events_delivered_total` cannot see events Falco then dropped (a parse failure, an
overload, a restart of the audit pod). Falco's own count of evaluated audit events closes the gap.

Where each number comes from (both pods are reached with `kubectl port-forward`, as for the UI):

- the forwarder: its Prometheus /metrics (`forwarder_events_delivered_total`, and when present
  `forwarder_events_delivered_created` (when its count started) and
  `forwarder_last_delivery_timestamp_seconds`);
- Falco's audit instance: its Prometheus /metrics (alerts per source, dropped outputs). Falco 0.44
  exports no per-source event counter for plugin sources there (falcosecurity/falco#3584), so the
  evaluated count is read from the newest "Falco internal: metrics snapshot" of the k8s_audit
  source in the pod's log (`falco.num_evts`, written every minute; components/falco.py).

The snapshot is up to a minute old while the forwarder's counter is current, so the difference
includes what was delivered after the snapshot; the report estimates that from Falco's rate.
"""

from __future__ import annotations

import json
import math
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TextIO

from .kubectl import Kubectl, WorkshopError

# Defaults of components/falco.py (FalcoArgs, the chart) and components/audit_forwarder.py.
FALCO_NAMESPACE = "falco"
AUDIT_RELEASE = "falco-k8saudit"
FALCO_METRICS_PORT = 8765
FORWARDER_NAMESPACE = "falco-forwarder"
FORWARDER_DEPLOYMENT = "audit-forwarder"
FORWARDER_METRICS_PORT = 9090

AUDIT_SOURCE = "k8s_audit"
SNAPSHOT_RULE = "Falco internal: metrics snapshot"
LOG_WINDOW = "3m"
"""How far back the audit pod's log is searched for a snapshot (Falco writes one per minute)."""
HTTP_TIMEOUT_SECONDS = 10.0

DELIVERED = "forwarder_events_delivered_total"
DELIVERED_CREATED = "forwarder_events_delivered_created"
LAST_DELIVERY = "forwarder_last_delivery_timestamp_seconds"
FALCO_VERSION = "falcosecurity_falco_version_info"
FALCO_MATCHES = "falcosecurity_falco_rules_matches_total"
FALCO_OUTPUT_DROPS = "falcosecurity_falco_outputs_queue_num_drops_total"


@dataclass(frozen=True)
class Targets:
    """Where the two pods are."""

    falco_namespace: str = FALCO_NAMESPACE
    audit_release: str = AUDIT_RELEASE
    forwarder_namespace: str = FORWARDER_NAMESPACE
    forwarder_deployment: str = FORWARDER_DEPLOYMENT

    @property
    def audit_deployment(self) -> str:
        # The chart's fullname: the release name when it contains "falco" (components.falco.chart_fullname).
        name = self.audit_release if "falco" in self.audit_release else f"{self.audit_release}-falco"
        return name[:63].rstrip("-")


Sample = tuple[str, dict[str, str], float]

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(?:,|$)')


def parse_prometheus(text: str) -> list[Sample]:
    """(name, labels, value) of every sample in Prometheus text exposition format; comments skipped."""
    samples: list[Sample] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if not match:
            raise WorkshopError(f"unreadable metrics line {number}: {line[:120]}")
        name, label_text, value = match.groups()
        labels: dict[str, str] = {}
        position = 0
        while label_text and position < len(label_text):
            label = _LABEL.match(label_text, position)
            if not label:
                raise WorkshopError(f"unreadable labels on metrics line {number}: {line[:120]}")
            labels[label.group(1)] = label.group(2).replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
            position = label.end()
        try:
            samples.append((name, labels, float(value)))
        except ValueError as exc:
            raise WorkshopError(f"unreadable value on metrics line {number}: {line[:120]}") from exc
    return samples


def _total(samples: list[Sample], name: str, **labels: str) -> float | None:
    values = [v for n, lbl, v in samples if n == name and all(lbl.get(k) == want for k, want in labels.items())]
    return sum(values) if values else None


@dataclass(frozen=True)
class ForwarderReading:
    delivered: int
    counting_since: float | None
    """Unix time the counter started (the forwarder process's start), when exported."""
    last_delivery: float | None
    read_at: float
    """Unix time of the reading, by the forwarder's clock (its HTTP Date header) when it sent one."""


@dataclass(frozen=True)
class Snapshot:
    """Falco's newest metrics snapshot of the k8s_audit source."""

    evaluated: int
    time: float
    counting_since: float | None
    """Unix time of Falco's last start or reload: its event count starts there."""
    rate_per_second: float | None


@dataclass(frozen=True)
class FalcoReading:
    snapshot: Snapshot
    alerts: int
    """Alerts raised by k8s_audit rules since Falco's start (Prometheus)."""
    output_drops: int | None


def _http_get(port: int, path: str) -> tuple[str, float | None]:
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_SECONDS) as response:  # noqa: S310 (fixed http URL)
            body = response.read().decode("utf-8", errors="replace")
            date = response.headers.get("Date")
    except (urllib.error.URLError, OSError) as exc:
        raise WorkshopError(f"GET {url} through kubectl port-forward failed: {exc}") from exc
    try:
        served_at = parsedate_to_datetime(date).timestamp() if date else None
    except (TypeError, ValueError):
        served_at = None
    return body, served_at


def forwarder_reading(text: str, served_at: float | None, now: float) -> ForwarderReading:
    samples = parse_prometheus(text)
    delivered = _total(samples, DELIVERED)
    if delivered is None:
        raise WorkshopError(f"the forwarder's /metrics has no {DELIVERED}: is that the audit forwarder?")
    return ForwarderReading(
        delivered=int(delivered),
        counting_since=_total(samples, DELIVERED_CREATED),
        last_delivery=_total(samples, LAST_DELIVERY) or None,
        read_at=served_at if served_at is not None else now,
    )


def newest_snapshot(log_text: str) -> Snapshot | None:
    """The newest k8s_audit metrics snapshot among Falco's JSON output lines."""
    newest: Snapshot | None = None
    for line in log_text.splitlines():
        line = line.strip()
        if not line.startswith("{") or SNAPSHOT_RULE not in line:
            continue
        try:
            message = json.loads(line)
            fields = message["output_fields"]
            if message.get("rule") != SNAPSHOT_RULE or fields.get("evt.source") != AUDIT_SOURCE:
                continue
            reload_ns = fields.get("falco.reload_ts")
            rate = fields.get("falco.evts_rate_sec")
            snapshot = Snapshot(
                evaluated=int(fields["falco.num_evts"]),
                time=int(fields["evt.time"]) / 1e9,
                counting_since=int(reload_ns) / 1e9 if reload_ns else None,
                rate_per_second=float(rate) if rate is not None else None,
            )
        except (ValueError, KeyError, TypeError):
            continue
        if newest is None or snapshot.time >= newest.time:
            newest = snapshot
    return newest


def falco_reading(metrics_text: str, log_text: str) -> FalcoReading:
    snapshot = newest_snapshot(log_text)
    if snapshot is None:
        raise WorkshopError(
            f'no "{SNAPSHOT_RULE}" of the {AUDIT_SOURCE} source in the audit pod\'s log of the last {LOG_WINDOW}: '
            "Falco writes one a minute once audit events arrive. Is the forwarder delivering "
            "(`kubectl -n falco-forwarder logs deploy/audit-forwarder`)? Try again in a minute."
        )
    samples = parse_prometheus(metrics_text)
    if _total(samples, FALCO_VERSION) is None:
        raise WorkshopError(f"the audit pod's /metrics has no {FALCO_VERSION}: is Falco's metrics setting on?")
    drops = _total(samples, FALCO_OUTPUT_DROPS)
    return FalcoReading(
        snapshot=snapshot,
        # Falco lists only rules that matched at least once.
        alerts=int(_total(samples, FALCO_MATCHES, source=AUDIT_SOURCE) or 0),
        output_drops=int(drops) if drops is not None else None,
    )


def read_pipeline(kubectl: Kubectl, targets: Targets, now: float) -> tuple[ForwarderReading, FalcoReading]:
    with kubectl.port_forward(
        targets.forwarder_namespace, f"deploy/{targets.forwarder_deployment}", FORWARDER_METRICS_PORT
    ) as port:
        forwarder = forwarder_reading(*_http_get(port, "/metrics"), now=now)
    with kubectl.port_forward(
        targets.falco_namespace, f"deploy/{targets.audit_deployment}", FALCO_METRICS_PORT
    ) as port:
        falco_metrics, _ = _http_get(port, "/metrics")
    logs = kubectl.run(
        "logs", "--namespace", targets.falco_namespace, f"deploy/{targets.audit_deployment}", "-c", "falco",
        f"--since={LOG_WINDOW}",
    )  # fmt: skip
    return forwarder, falco_reading(falco_metrics, logs.stdout)


@dataclass(frozen=True)
class Comparison:
    delivered: int
    evaluated: int
    snapshot_age_seconds: float
    expected_after_snapshot: int | None
    """Events Falco would have received after its snapshot at its recent rate (None: rate unknown)."""
    verdict: str

    @property
    def difference(self) -> int:
        return self.delivered - self.evaluated


def compare(forwarder: ForwarderReading, falco: FalcoReading) -> Comparison:
    snapshot = falco.snapshot
    age = max(0.0, forwarder.read_at - snapshot.time)
    expected = math.ceil(snapshot.rate_per_second * age) if snapshot.rate_per_second is not None else None
    difference = forwarder.delivered - snapshot.evaluated
    if (
        snapshot.counting_since is not None
        and forwarder.counting_since is not None
        and snapshot.counting_since > forwarder.counting_since
    ):
        verdict = (
            f"Falco (re)started at {_clock(snapshot.counting_since)}, after the forwarder's count began: it did not "
            "count what it received before, so the difference is no measure of loss."
        )
    elif difference < 0:
        verdict = (
            "Falco counted more than this forwarder delivered: the forwarder restarted after Falco started "
            "(its counter began again), so compare the next runs' changes instead."
        )
    elif forwarder.last_delivery is not None and forwarder.last_delivery < snapshot.time and difference == 0:
        verdict = "Nothing was delivered after Falco's snapshot and the counts agree: Falco evaluated every event."
    elif expected is not None and difference <= 2 * expected + 10:
        verdict = (
            "The difference is about what arrived after Falco's snapshot: nothing lost. "
            "Run it again after the next snapshot to see it settle."
        )
    else:
        verdict = (
            "Falco evaluated fewer events than the forwarder delivered, more than arrived after its snapshot: it "
            "dropped some (a request it could not parse, an overload, or a restart). Its own log lines, those "
            "that are not JSON alerts, say which: kubectl -n falco logs deploy/falco-k8saudit -c falco"
        )
    return Comparison(forwarder.delivered, snapshot.evaluated, age, expected, verdict)


def _clock(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _row(label: str, number: int, note: str) -> str:
    return f"  {label:<30}{number:>12,}   {note}\n"


def print_report(forwarder: ForwarderReading, falco: FalcoReading, out: TextIO) -> Comparison:
    result = compare(forwarder, falco)
    snapshot = falco.snapshot
    since = f"counting since {_clock(forwarder.counting_since)}" if forwarder.counting_since else "since its start"
    last = f", last delivery {_clock(forwarder.last_delivery)}" if forwarder.last_delivery else ""
    falco_since = f", counting since {_clock(snapshot.counting_since)}" if snapshot.counting_since else ""
    out.write(f"Audit events, forwarder -> Falco ({AUDIT_SOURCE}), read at {_clock(forwarder.read_at)}\n")
    out.write(_row("delivered by the forwarder", result.delivered, since + last))
    out.write(
        _row(
            "evaluated by Falco",
            result.evaluated,
            f"at its snapshot of {_clock(snapshot.time)} ({result.snapshot_age_seconds:.0f} s before){falco_since}",
        )
    )
    out.write(_row("difference", result.difference, "delivered - evaluated"))
    if result.expected_after_snapshot is not None and snapshot.rate_per_second is not None:
        note = f"about: Falco's rate {snapshot.rate_per_second:g}/s x {result.snapshot_age_seconds:.0f} s"
        out.write(_row("arrived after the snapshot", result.expected_after_snapshot, note))
    out.write(_row(f"alerts from {AUDIT_SOURCE} rules", falco.alerts, "since Falco's start (Prometheus)"))
    if falco.output_drops is not None:
        out.write(_row("alerts Falco dropped", falco.output_drops, "its outputs queue was full"))
    out.write(result.verdict + "\n")
    return result
