"""The engine: rules files loaded in order, audit events evaluated, alerts as Falco 0.44.1 writes them.

Per event (falco userspace/engine/falco_engine.cpp ``process_event``, evttype_index_ruleset.cpp):
the enabled rules run in rule order; ``rule_matching: first`` stops at the first match, ``all``
keeps every match. A rule runs when it is enabled and its priority is at least the configured
minimum (``priority: notice`` leaves out Informational and Debug rules). Every matching rule's
output is then formatted (falco userspace/engine/formats.cpp ``format_event``): the text is
``<evt.time>: <Priority> <output>``, the JSON line adds ``time`` (the event time, ISO 8601 UTC),
``rule``, ``priority``, ``source``, ``tags`` (sorted), ``output_fields`` (the output's fields plus
``evt.time`` in nanoseconds).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import yaml

from components.falco import fields as falco_fields

from .errors import UnsupportedError
from .event import DEFAULT_MAX_EVENT_SIZE, AuditEvent
from .fields import iso8601_utc
from .loader import PRIORITIES, SOURCE, CompiledRule, RulesCollection, parse_priority
from .output import parse_format

PINNED_PLUGINS: Final = {
    falco_fields.K8SAUDIT_PLUGIN: falco_fields.K8SAUDIT_VERSION,
    falco_fields.JSON_PLUGIN: falco_fields.JSON_VERSION,
}
"""The plugins (name -> version) whose field extraction the evaluator reproduces."""
K8SAUDIT_VERSIONS_WITH_SAME_FIELDS: Final = frozenset({"0.15.0", "0.16.0", falco_fields.K8SAUDIT_VERSION})
"""k8saudit versions whose fields.go and extract.go give the same values as the pinned one."""


@dataclass(frozen=True)
class Settings:
    """The parts of falco.yaml that change which alerts Falco writes and how."""

    rule_matching: Literal["first", "all"] = "first"
    priority: str = "debug"
    """The minimum priority of the rules that run."""
    json_output: bool = False
    json_include_output_property: bool = True
    json_include_tags_property: bool = True
    json_include_message_property: bool = False
    json_include_output_fields_property: bool = True
    time_format_iso_8601: bool = False
    max_event_size: int = DEFAULT_MAX_EVENT_SIZE
    """The k8saudit plugin's ``maxEventSize`` (its init_config)."""

    def __post_init__(self) -> None:
        if self.rule_matching not in ("first", "all"):
            raise ValueError(f"rule_matching: {self.rule_matching!r} is not first or all")
        if parse_priority(self.priority) is None:
            raise ValueError(f"priority: {self.priority!r} is not a Falco priority")
        if self.max_event_size <= 0:
            raise ValueError(f"max_event_size: {self.max_event_size} is not positive")

    @property
    def min_priority(self) -> int:
        value = parse_priority(self.priority)
        assert value is not None
        return value

    @classmethod
    def from_falco_yaml(cls, text: str) -> Settings:
        """The settings of a falco.yaml; UnsupportedError for settings that change alerts in ways the
        evaluator does not model (rule selection, extra output formats or fields)."""
        config = yaml.safe_load(text) or {}
        if config.get("rules"):
            raise UnsupportedError("falco.yaml 'rules' (enabling or disabling rules by name or tag) is not supported")
        for entry in config.get("append_output") or []:
            unsupported = sorted(set(entry) & {"extra_output", "extra_fields"})
            if unsupported:
                raise UnsupportedError(f"falco.yaml append_output {unsupported} is not supported")
            # suggested_output: the pinned k8saudit and json plugins mark no field as suggested
            # (no addOutput property in fields.go / json.go), so it adds nothing.
        plugins = set(config.get("load_plugins") or [])
        if not set(PINNED_PLUGINS) <= plugins:
            raise UnsupportedError(f"falco.yaml load_plugins {sorted(plugins)} does not load both k8saudit and json")
        max_event_size = DEFAULT_MAX_EVENT_SIZE
        for plugin in config.get("plugins") or []:
            if plugin.get("name") == falco_fields.K8SAUDIT_PLUGIN:
                init = plugin.get("init_config") or {}
                if isinstance(init, str):
                    init = json.loads(init) if init.strip() else {}
                max_event_size = int(init.get("maxEventSize", DEFAULT_MAX_EVENT_SIZE))
        defaults = cls()
        return cls(
            rule_matching=str(config.get("rule_matching", defaults.rule_matching)).lower(),  # type: ignore[arg-type]
            priority=str(config.get("priority", defaults.priority)),
            json_output=bool(config.get("json_output", defaults.json_output)),
            json_include_output_property=bool(
                config.get("json_include_output_property", defaults.json_include_output_property)
            ),
            json_include_tags_property=bool(
                config.get("json_include_tags_property", defaults.json_include_tags_property)
            ),
            json_include_message_property=bool(
                config.get("json_include_message_property", defaults.json_include_message_property)
            ),
            json_include_output_fields_property=bool(
                config.get("json_include_output_fields_property", defaults.json_include_output_fields_property)
            ),
            time_format_iso_8601=bool(config.get("time_format_iso_8601", defaults.time_format_iso_8601)),
            max_event_size=max_event_size,
        )


@dataclass(frozen=True)
class Alert:
    """One alert as Falco writes it."""

    rule: str
    priority: str
    """As Falco writes it: ``Warning``, ``Informational`` ..."""
    source: str
    time: str
    """The event time, ``YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ``."""
    ts: int
    """The event time in nanoseconds since the epoch."""
    output: str
    message: str
    """The rule's output alone, without the time and priority."""
    output_fields: dict[str, Any] | None
    """None unless JSON output with output fields is configured."""
    tags: tuple[str, ...] = field(default=())

    def to_json(self, settings: Settings, hostname: str = "") -> dict[str, Any]:
        """The alert as Falco's JSON output line (``json_output: true``) holds it."""
        line: dict[str, Any] = {"hostname": hostname}
        if settings.json_include_output_property:
            line["output"] = self.output
        if settings.json_include_message_property:
            line["message"] = self.message
        if settings.json_include_output_fields_property:
            line["output_fields"] = self.output_fields
        line.update(priority=self.priority, rule=self.rule, source=self.source, time=self.time)
        if settings.json_include_tags_property:
            line["tags"] = list(self.tags)
        return line


class FalcoEngine:
    """Falco 0.44.1 for the ``k8s_audit`` source with the k8saudit and json plugins.

    Load rules files with ``load_rules`` in the order Falco's ``rules_files`` gives them, call
    ``check_plugin_requirements`` once all are loaded (Falco does that at start), then ``process``
    one audit event at a time.
    """

    def __init__(self, settings: Settings | None = None, plugins: dict[str, str] | None = None) -> None:
        self.settings = settings or Settings()
        self.plugins = dict(PINNED_PLUGINS if plugins is None else plugins)
        if self.plugins.get(falco_fields.JSON_PLUGIN) != falco_fields.JSON_VERSION or (
            self.plugins.get(falco_fields.K8SAUDIT_PLUGIN) not in K8SAUDIT_VERSIONS_WITH_SAME_FIELDS
        ):
            raise UnsupportedError(f"plugins {self.plugins}: the evaluator reproduces k8saudit "
                              f"{sorted(K8SAUDIT_VERSIONS_WITH_SAME_FIELDS)} and json {falco_fields.JSON_VERSION} only")
        self._rules = RulesCollection()
        prefix = "*%evt.time.iso8601: " if self.settings.time_format_iso_8601 else "*%evt.time: "
        self._prefixes = {i: parse_format(prefix + name) for i, name in enumerate(PRIORITIES)}

    def load_rules(self, text: str, name: str) -> None:
        """Load one rules file (RulesLoadError where Falco refuses it, UnsupportedError where the evaluator does)."""
        self._rules.load(text, name)

    def load_rules_files(self, paths: Iterable[str | Path]) -> None:
        """Load files in order, then check the plugin requirements, as Falco does at start."""
        for path in paths:
            self.load_rules(Path(path).read_text(encoding="utf-8"), str(path))
        self.check_plugin_requirements()

    def check_plugin_requirements(self) -> None:
        self._rules.check_plugin_requirements(self.plugins)

    @property
    def rules(self) -> list[CompiledRule]:
        """Every compiled rule of the k8s_audit source, in Falco's order."""
        return list(self._rules.compiled)

    @property
    def warnings(self) -> list[str]:
        """Load warnings Falco would print (unknown keys, deprecated forms, skipped rules)."""
        return list(self._rules.warnings)

    def running_rules(self) -> list[CompiledRule]:
        """The rules that run on events: enabled, and at least the minimum priority."""
        minimum = self.settings.min_priority
        return [r for r in self._rules.compiled if r.enabled and r.priority <= minimum and r.source == SOURCE]

    def process(self, event: str | bytes | AuditEvent) -> list[Alert]:
        """The alerts Falco writes for one audit event (EventRejectedError if the plugin drops it)."""
        if not isinstance(event, AuditEvent):
            event = AuditEvent(event, self.settings.max_event_size)
        first = self.settings.rule_matching == "first"
        matched: list[CompiledRule] = []
        for rule in self.running_rules():
            if rule.predicate(event):
                matched.append(rule)
                if first:
                    break
        return [self._alert(rule, event) for rule in matched]

    def process_lines(self, lines: Iterable[str]) -> list[Alert]:
        """Every alert for a sequence of audit log lines (blank lines skipped), in order."""
        alerts: list[Alert] = []
        for line in lines:
            if line.strip():
                alerts.extend(self.process(line))
        return alerts

    def _alert(self, rule: CompiledRule, event: AuditEvent) -> Alert:
        level = PRIORITIES[rule.priority]
        prefix_format = self._prefixes[rule.priority]
        message = rule.output.text(event)
        output = prefix_format.text(event) + " " + message
        fields: dict[str, Any] | None = None
        if self.settings.json_output and self.settings.json_include_output_fields_property:
            fields = rule.output.json_fields(event)
            fields.update(prefix_format.json_fields(event))
        return Alert(rule.name, level, rule.source, iso8601_utc(event.ts), event.ts, output, message, fields, rule.tags)
