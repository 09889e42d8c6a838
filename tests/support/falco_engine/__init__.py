"""An evaluator of Falco's rule language for the ``k8s_audit`` source, for tests that cannot run Falco.

It loads rules files as Falco 0.44.1 (engine 0.62.0, libsinsp 0.25.4) does, with the k8saudit
0.16.1 (same fields as 0.15.0) and json 0.7.4 plugins, and returns for each audit event the alerts
Falco writes: rule, priority, time, output text, output fields and tags. It is faithful where the
replay test proves it (tests/test_falco_engine_replay.py: every recording of a real Falco under
../shared/corpus/real-falco/, alert for alert) and by construction elsewhere: each module says which
Falco, libsinsp or plugin source it follows. What it does not model it refuses with ``UnsupportedError``
naming the construct; it never guesses.

Use from a test::

    from support.falco_engine import FalcoEngine, Settings

    engine = FalcoEngine(Settings(rule_matching="all", json_output=True))
    engine.load_rules(upstream_rules_text, "k8s_audit_rules.yaml")
    engine.load_rules(lab_rules_text, "falco-eks-lab-rules.yaml")
    engine.check_plugin_requirements()
    alerts = engine.process(audit_event_json_line)   # [Alert(rule=..., priority=..., output=...)]

Modules, in the order data flows: ``event`` (what the webhook keeps of an event), ``jsonvalue``
(fastjson, as the plugins parse it), ``k8saudit`` and ``fields`` (field extraction),
``condition`` (the filter grammar), ``operators`` and ``compiler`` (checks), ``loader`` (rules
files: lists, macros, overrides, exceptions), ``output`` (formats), ``engine`` (rule matching and
alerts). The field catalog is components/falco/fields.py.
"""

from .engine import PINNED_PLUGINS, Alert, FalcoEngine, Settings
from .errors import ConditionSyntaxError, EventRejectedError, FalcoEngineError, RulesLoadError, UnsupportedError
from .event import AuditEvent

__all__ = [
    "PINNED_PLUGINS",
    "Alert",
    "AuditEvent",
    "ConditionSyntaxError",
    "EventRejectedError",
    "FalcoEngine",
    "FalcoEngineError",
    "RulesLoadError",
    "Settings",
    "UnsupportedError",
]
