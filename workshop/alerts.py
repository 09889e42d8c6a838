"""Falco's alerts, read back from the pods of both releases.

Falco writes one alert per stdout line: JSON when `json_output` is on (the lab turns it on for
both releases), otherwise text of the form `<time>: <Priority> <message>`. Its own log messages
(`Thu Nov 26 14:00:00 2026: Loading rules ...`) match neither form and are skipped.
`kubectl logs --prefix` puts `[pod/<pod>/<container>] ` in front of each line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TextIO

from .kubectl import Kubectl, WorkshopError

INTERNAL_RULE_PREFIX = "Falco internal: "
"""Falco's own messages on its output (metrics snapshots, drop notices): not alerts."""
FALCO_POD_SELECTOR = "app.kubernetes.io/name=falco"
"""The chart's name label: both releases' Falco pods, no Falcosidekick pods."""
UI_SERVICE_SELECTOR = "app.kubernetes.io/name=falcosidekick,app.kubernetes.io/component=ui"
UI_PORT = 2802

PRIORITIES = ("Emergency", "Alert", "Critical", "Error", "Warning", "Notice", "Informational", "Info", "Debug")
_PREFIX = re.compile(r"^\[pod/(?P<pod>[^/\]]+)/(?P<container>[^\]]+)\] (?P<line>.*)$")
_TEXT_ALERT = re.compile(
    r"^(?P<time>\d{2}:\d{2}:\d{2}\.\d+|\d{4}-\d{2}-\d{2}T\S+): "
    rf"(?P<priority>{'|'.join(PRIORITIES)}) (?P<output>.+)$"
)
_SINCE = re.compile(r"^\d+[smh]$")


@dataclass(frozen=True)
class Alert:
    time: str
    priority: str
    rule: str | None
    """None for text lines: Falco's text format does not carry the rule name."""
    output: str
    source: str | None = None
    pod: str | None = None

    @property
    def message(self) -> str:
        """The output without the leading `<time>: <Priority> ` Falco puts in front of it."""
        match = _TEXT_ALERT.match(self.output)
        return match.group("output") if match else self.output


def parse_line(line: str) -> Alert | None:
    """The alert on one log line, or None when the line is not an alert."""
    line = line.rstrip("\n")
    pod = None
    prefixed = _PREFIX.match(line)
    if prefixed:
        pod, line = prefixed.group("pod"), prefixed.group("line")
    if line.startswith("{"):
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            return None
        if not isinstance(event, dict) or not {"rule", "priority", "output", "time"} <= event.keys():
            return None
        if str(event["rule"]).startswith(INTERNAL_RULE_PREFIX):
            return None
        return Alert(
            time=str(event["time"]),
            priority=str(event["priority"]),
            rule=str(event["rule"]),
            output=str(event["output"]),
            source=event.get("source"),
            pod=pod,
        )
    text = _TEXT_ALERT.match(line)
    if text:
        return Alert(text.group("time"), text.group("priority"), None, line, None, pod)
    return None


def parse_lines(lines: Iterable[str]) -> list[Alert]:
    alerts = [alert for alert in map(parse_line, lines) if alert is not None]
    return sorted(alerts, key=lambda a: a.time)


def validate_since(since: str) -> str:
    if not _SINCE.match(since):
        raise WorkshopError(f"--since {since!r}: use a duration like 30s, 10m or 2h")
    return since


def fetch_alerts(kubectl: Kubectl, namespace: str, since: str) -> list[Alert]:
    result = kubectl.run(
        "logs", "--namespace", namespace, "-l", FALCO_POD_SELECTOR, "-c", "falco",
        f"--since={validate_since(since)}", "--prefix", "--tail=-1", "--max-log-requests=50",
    )  # fmt: skip
    return parse_lines(result.stdout.splitlines())


def ui_command(kubectl: Kubectl, namespace: str) -> str | None:
    """The port-forward command for the Falcosidekick UI, if the lab installed it."""
    result = kubectl.run(
        "get", "services", "--namespace", namespace, "-l", UI_SERVICE_SELECTOR, "-o", "name", check=False
    )
    services = result.stdout.split() if result.returncode == 0 else []
    if not services:
        return None
    return f"kubectl -n {namespace} port-forward {services[0]} {UI_PORT}:{UI_PORT}"


def print_alerts(alerts: list[Alert], out: TextIO, rule_filter: str | None = None) -> int:
    shown = [a for a in alerts if not rule_filter or rule_filter.lower() in (a.rule or a.output).lower()]
    for alert in shown:
        where = " ".join(filter(None, (alert.source, alert.pod)))
        out.write(f"{alert.time}  {alert.priority:<8} {alert.rule or '(text output)'}  [{where}]\n")
        out.write(f"    {alert.message}\n")
    return len(shown)
