"""`python -m workshop pipeline`: what the forwarder delivered next to what Falco evaluated.

Falco's webhook answers 200 before it parses a request, so the forwarder's
`forwarder_events_delivered_total` cannot see events Falco then dropped (a parse failure, an
overload, a restart of the audit pod). Falco's own count of evaluated audit events closes the gap.

Where each number comes from (both pods are reached with `kubectl port-forward`, as for the UI; the
forwarder's replica is the one holding its Lease, the other waits on standby):

- the forwarder: its Prometheus /metrics (`forwarder_events_delivered_total`, and when present
  `forwarder_events_delivered_created` (when its count started) and
  `forwarder_last_delivery_timestamp_seconds`), and its /deliveries: when each request of the last
  minutes was acknowledged, with the delivered total after it (forwarder/metrics.py DeliveryHistory);
- Falco's audit instance: its Prometheus /metrics (alerts per source, dropped outputs). Falco 0.44
  exports no per-source event counter for plugin sources there (falcosecurity/falco#3584), so the
  evaluated count is read from the newest "Falco internal: metrics snapshot" of the k8s_audit
  source in the pod's log (`falco.num_evts`, at most once a minute; components/falco/__init__.py).

How a snapshot counts (seen on a real Falco 0.44.1, shared/corpus/real-falco/, and in Falco's
process_events.cpp and stats_writer.cpp): its timer ticks every interval, and the snapshot is written
when the next event is taken up, with the events evaluated before that one. After a quiet spell that
event is the first of a request the forwarder has already seen acknowledged, so the count stops right
before that whole request: delivered minus evaluated is never 0 then. A snapshot carries no rate while
the one before it counted 0 (after a start or reload), so nothing here uses the rate.

Instead the count is placed among the forwarder's requests at the snapshot's moment. Falco acknowledges
a request before it evaluates it, then evaluates the requests in order, so without a loss its count lies
between where a slow Falco would be (one that starts each request FALCO_START_SECONDS after acknowledging
it and evaluates FALCO_MIN_EVENTS_PER_SECOND) and everything delivered by then (CLOCK_SKEW_SECONDS allowed
between the two pods' clocks). Below that range, events were lost. Right on the boundary before a request
acknowledged at the snapshot's moment, nothing was lost: that is the request whose arrival made Falco
write the snapshot. Elsewhere in the range Falco was in the middle of a request: no loss shows, but one
smaller than the range could hide there, which a later snapshot tells.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TextIO

from .kubectl import Kubectl, WorkshopError

# Defaults of components/falco/__init__.py (FalcoArgs, the chart) and components/forwarding/audit_forwarder.py.
FALCO_NAMESPACE = "falco"
AUDIT_RELEASE = "falco-k8saudit"
FALCO_METRICS_PORT = 8765
FORWARDER_NAMESPACE = "falco-forwarder"
FORWARDER_DEPLOYMENT = "audit-forwarder"
FORWARDER_METRICS_PORT = 9090
LEASE_SUFFIX = "-lease"
"""The forwarder replicas' Lease is `<deployment>-lease`; its holderIdentity is the active pod's name."""

FALCO_MIN_EVENTS_PER_SECOND = 1000.0
"""The slowest a healthy audit Falco evaluates: one CPU does 1,380-1,700 audit events/s with the shipped
settings (shared/corpus/real-falco/README), and the lab sizes a replica for 1,100/s."""
FALCO_START_SECONDS = 0.25
"""From the acknowledgement of a request to its first evaluated event: Falco reads and parses the body."""
CLOCK_SKEW_SECONDS = 0.5
"""How far the forwarder's clock and Falco's may differ (both nodes keep NTP time, within milliseconds)."""

AUDIT_SOURCE = "k8s_audit"
SNAPSHOT_RULE = "Falco internal: metrics snapshot"
LOG_WINDOW = "3m"
"""How far back the audit pod's log is searched for a snapshot (Falco writes one per minute)."""
HTTP_TIMEOUT_SECONDS = 10.0

DELIVERED = "forwarder_events_delivered_total"
DELIVERED_CREATED = "forwarder_events_delivered_created"
LAST_DELIVERY = "forwarder_last_delivery_timestamp_seconds"
ACTIVE = "forwarder_active"
FALCO_ADDRESSES = "forwarder_falco_addresses"
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

    @property
    def falco_logs_command(self) -> str:
        return f"kubectl -n {self.falco_namespace} logs deploy/{self.audit_deployment} -c falco"


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
class Deliveries:
    """The forwarder's recent acknowledgements, as its GET /deliveries serves them."""

    since: float
    """Every acknowledgement after this unix time is in `acknowledged`."""
    delivered_at_since: int
    acknowledged: tuple[tuple[float, int], ...]
    """(unix time of the acknowledgement, delivered total after it), oldest first."""

    def requests(self) -> list[tuple[float, int, int]]:
        """(acknowledged at, delivered total before it, its events) of each request."""
        found, before = [], self.delivered_at_since
        for at, after in self.acknowledged:
            found.append((at, before, after - before))
            before = after
        return found

    def count_at(self, when: float) -> int | None:
        """The forwarder's delivered total at `when`; None before `since` (not known)."""
        if when < self.since:
            return None
        total = self.delivered_at_since
        for at, after in self.acknowledged:
            if at > when:
                break
            total = after
        return total

    def slow_falco_count(self, when: float, start_seconds: float, events_per_second: float) -> int | None:
        """What a Falco had evaluated by `when` that starts each request `start_seconds` after its acknowledgement
        (or when done with the one before) and evaluates `events_per_second`; None before `since`."""
        if when < self.since:
            return None
        free, count = self.since, self.delivered_at_since
        for at, before, events in self.requests():
            start = max(at + start_seconds, free)
            if start >= when:
                return before
            free = start + events / events_per_second
            if free > when:
                return before + int((when - start) * events_per_second)
            count = before + events
        return count

    def request_after(self, total: int) -> tuple[float, int] | None:
        """(acknowledged at, events) of the request that came right after the count was `total`, if one did."""
        for at, before, events in self.requests():
            if before == total:
                return at, events
        return None


@dataclass(frozen=True)
class ForwarderReading:
    delivered: int
    counting_since: float | None
    """Unix time the counter started (the forwarder process's start), when exported."""
    last_delivery: float | None
    read_at: float
    """Unix time of the reading, by the forwarder's clock (its HTTP Date header) when it sent one."""
    deliveries: Deliveries | None = None
    """Its recent requests (GET /deliveries); None from a forwarder without that endpoint."""
    falco_addresses: int | None = None
    """How many Falco pods it spreads its requests over (forwarder_falco_addresses)."""


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


def _http_get(port: int, path: str, missing_ok: bool = False) -> tuple[str, float | None]:
    """The body and the server's Date; with `missing_ok`, a 404 gives an empty body."""
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_SECONDS) as response:  # noqa: S310 (fixed http URL)
            body = response.read().decode("utf-8", errors="replace")
            date = response.headers.get("Date")
    except urllib.error.HTTPError as exc:
        if missing_ok and exc.code == 404:
            return "", None
        raise WorkshopError(f"GET {url} through kubectl port-forward failed: {exc}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise WorkshopError(f"GET {url} through kubectl port-forward failed: {exc}") from exc
    try:
        served_at = parsedate_to_datetime(date).timestamp() if date else None
    except (TypeError, ValueError):
        served_at = None
    return body, served_at


def parse_deliveries(text: str) -> Deliveries | None:
    """The forwarder's /deliveries JSON; None for an empty body (a forwarder without it)."""
    if not text.strip():
        return None
    try:
        document = json.loads(text)
        acknowledged = tuple((float(at), int(total)) for at, total in document["acknowledged"])
        return Deliveries(float(document["since"]), int(document["delivered_at_since"]), acknowledged)
    except (ValueError, KeyError, TypeError) as exc:
        raise WorkshopError(f"the forwarder's /deliveries is not what it serves: {exc}") from exc


def forwarder_reading(
    text: str, served_at: float | None, now: float, deliveries: Deliveries | None = None
) -> ForwarderReading:
    samples = parse_prometheus(text)
    delivered = _total(samples, DELIVERED)
    if delivered is None:
        raise WorkshopError(f"the forwarder's /metrics has no {DELIVERED}: is that the audit forwarder?")
    if _total(samples, ACTIVE) == 0:
        raise WorkshopError(
            "the forwarder replica reached is on standby (forwarder_active 0): the Lease changed hands just now; "
            "run it again"
        )
    addresses = _total(samples, FALCO_ADDRESSES)
    return ForwarderReading(
        delivered=int(delivered),
        counting_since=_total(samples, DELIVERED_CREATED),
        last_delivery=_total(samples, LAST_DELIVERY) or None,
        read_at=served_at if served_at is not None else now,
        deliveries=deliveries,
        falco_addresses=int(addresses) if addresses else None,
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


def active_forwarder(kubectl: Kubectl, targets: Targets) -> str:
    """The forwarder pod that holds the Lease (`pod/<name>`); the Deployment when there is no Lease (one replica)."""
    holder = kubectl.run(
        "get", "lease", f"{targets.forwarder_deployment}{LEASE_SUFFIX}", "--namespace", targets.forwarder_namespace,
        "-o", "jsonpath={.spec.holderIdentity}", check=False,
    )  # fmt: skip
    name = holder.stdout.strip() if holder.returncode == 0 else ""
    return f"pod/{name}" if name else f"deploy/{targets.forwarder_deployment}"


def read_pipeline(kubectl: Kubectl, targets: Targets, now: float) -> tuple[ForwarderReading, FalcoReading]:
    with kubectl.port_forward(
        targets.forwarder_namespace, active_forwarder(kubectl, targets), FORWARDER_METRICS_PORT
    ) as port:
        deliveries = parse_deliveries(_http_get(port, "/deliveries", missing_ok=True)[0])
        forwarder = forwarder_reading(*_http_get(port, "/metrics"), now=now, deliveries=deliveries)
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
    at_snapshot: tuple[int, int] | None
    """Where Falco's count can be without a loss: from a slow Falco's count at the snapshot's moment to all the
    forwarder had delivered by then (see the module docstring); None when not known."""
    triggered_by: tuple[float, int] | None
    """(acknowledged at, events) of the request whose arrival made Falco write the snapshot, when its count
    stops right before one acknowledged at that moment."""
    lost: int | None
    """Events the numbers show lost (at least); 0: none shown; None: they cannot tell."""
    verdict: str

    @property
    def difference(self) -> int:
        return self.delivered - self.evaluated


def compare(forwarder: ForwarderReading, falco: FalcoReading, targets: Targets | None = None) -> Comparison:
    """What the two counts say (see the module docstring for how a snapshot counts)."""
    snapshot, deliveries = falco.snapshot, forwarder.deliveries
    age = max(0.0, forwarder.read_at - snapshot.time)
    evaluated = snapshot.evaluated

    def result(verdict: str, lost: int | None, window: tuple[int, int] | None = None,
               trigger: tuple[float, int] | None = None) -> Comparison:
        return Comparison(forwarder.delivered, evaluated, age, window, trigger, lost, verdict)

    if (
        snapshot.counting_since is not None
        and forwarder.counting_since is not None
        and snapshot.counting_since > forwarder.counting_since
    ):
        return result(
            f"Falco (re)started at {_clock(snapshot.counting_since)}, after the forwarder's count began: it did not "
            "count what it received before, so the difference is no measure of loss.",
            None,
        )
    if forwarder.falco_addresses is not None and forwarder.falco_addresses > 1:
        return result(
            f"The forwarder spreads its requests over {forwarder.falco_addresses} Falco audit pods and this is one "
            "pod's count: no measure of loss (each pod's snapshot counts only its share).",
            None,
        )
    if deliveries is None:
        return result(
            "This forwarder does not say when it delivered what (no /deliveries: an older image), so the difference, "
            "which holds the request that made Falco write its snapshot and all delivered after it, is no measure "
            "of loss.",
            None,
        )
    low = deliveries.slow_falco_count(snapshot.time, FALCO_START_SECONDS, FALCO_MIN_EVENTS_PER_SECOND)
    high = deliveries.count_at(snapshot.time + CLOCK_SKEW_SECONDS)
    if low is None or high is None:
        return result(
            f"The forwarder's record of its requests starts at {_clock(deliveries.since)}, after Falco's snapshot "
            "(it restarted since, or the snapshot is older than its record): run it again after Falco's next "
            "snapshot (one a minute while audit events arrive).",
            None,
        )
    window = (low, high)
    if evaluated < low:
        logs = (targets or Targets()).falco_logs_command
        return result(
            f"Falco dropped at least {low - evaluated:,} events: its snapshot counted {evaluated:,}, where even a "
            f"Falco evaluating {FALCO_MIN_EVENTS_PER_SECOND:,.0f} events/s would have counted {low:,} of what the "
            "forwarder had delivered (or it is that slow: overloaded). A request it could not parse, an overload, "
            f"or a restart: its own log lines, those that are not JSON alerts, say which: {logs}",
            low - evaluated,
            window,
        )
    if evaluated > high:
        return result(
            "Falco counted more than this forwarder had delivered by its snapshot: events from another replica "
            "(a Lease takeover) or from before this forwarder restarted. Compare again after Falco's next snapshot.",
            None,
            window,
        )
    since = forwarder.delivered - evaluated
    trigger = deliveries.request_after(evaluated)
    if trigger is not None and trigger[0] <= snapshot.time + CLOCK_SKEW_SECONDS:
        at, events = trigger
        return result(
            f"Nothing lost: Falco counted every event the forwarder delivered before its request of {_clock(at, 3)} "
            f"({events:,} events), the one whose arrival made Falco write the snapshot, which never counts that "
            f"request; the {since:,} delivered from it on are in Falco's next snapshot.",
            0,
            window,
            trigger,
        )
    return result(
        f"No loss shows: Falco wrote its snapshot in the middle of a request, and its count lies within what the "
        f"forwarder had delivered at that moment ({low:,} to {high:,}); a loss smaller than {high - evaluated:,} "
        "events would not show here, a later snapshot can tell.",
        0,
        window,
    )


def _clock(unix: float, decimals: int = 0) -> str:
    moment = datetime.fromtimestamp(unix, UTC)
    if not decimals:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[: 20 + decimals] + "Z"


def _row(label: str, value: int | str, note: str) -> str:
    shown = f"{value:,}" if isinstance(value, int) else value
    return f"  {label:<30}{shown:>15}   {note}\n"


def print_report(
    forwarder: ForwarderReading, falco: FalcoReading, out: TextIO, targets: Targets | None = None
) -> Comparison:
    result = compare(forwarder, falco, targets)
    snapshot = falco.snapshot
    since = f"counting since {_clock(forwarder.counting_since)}" if forwarder.counting_since else "since its start"
    last = f", last request {_clock(forwarder.last_delivery)}" if forwarder.last_delivery else ""
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
    if result.at_snapshot is not None:
        low, high = result.at_snapshot
        shown = f"{low:,}" if low == high else f"{low:,}-{high:,}"
        out.write(_row("expected at the snapshot", shown, "Falco's count without a loss (the forwarder's requests)"))
    if result.triggered_by is not None:
        at, events = result.triggered_by
        out.write(_row("the snapshot's request", events, f"acknowledged at {_clock(at, 3)}: not in the count"))
    out.write(_row(f"alerts from {AUDIT_SOURCE} rules", falco.alerts, "since Falco's start (Prometheus)"))
    if falco.output_drops is not None:
        out.write(_row("alerts Falco dropped", falco.output_drops, "its outputs queue was full"))
    out.write(result.verdict + "\n")
    return result
