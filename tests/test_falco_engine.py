"""The evaluator's semantics on small rules files and events the tests write themselves.

Each expectation comes from the Falco, libsinsp or plugin source the evaluator's module names (the
replay test checks the whole against real Falco recordings); these tests pin the edges one by one
and always run.
"""

from __future__ import annotations

import json
import textwrap
from typing import Any

import pytest
from support.falco_engine import (
    AuditEvent,
    EventRejectedError,
    FalcoEngine,
    RulesLoadError,
    Settings,
    UnsupportedError,
)

TS = "2026-12-07T04:02:30.561795Z"
TS_NS = 1796616150561795000


def audit_event(**changes: Any) -> dict[str, Any]:
    """A pod create by alice; ``changes`` set top-level keys (None deletes one)."""
    event: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "RequestResponse",
        "auditID": "5eb6d9cf-2348-46f7-bf85-ff0bf32e210c",
        "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/app/pods?fieldManager=kubectl-create",
        "verb": "create",
        "user": {"username": "alice", "groups": ["dev", "system:authenticated"]},
        "sourceIPs": ["203.0.113.7"],
        "userAgent": "kubectl/v1.34.5",
        "objectRef": {"resource": "pods", "namespace": "app", "name": "web", "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 201},
        "requestObject": {
            "kind": "Pod",
            "spec": {
                "containers": [
                    {"name": "app", "image": "nginx:1.27", "securityContext": {"privileged": True}},
                    {"name": "side", "image": "busybox@sha256:abc"},
                ],
                "volumes": [{"name": "host", "hostPath": {"path": "/etc", "type": ""}}],
            },
        },
        "responseObject": {"metadata": {"name": "web"}},
        "requestReceivedTimestamp": "2026-12-07T04:02:30.123456Z",
        "stageTimestamp": TS,
        "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""},
    }
    for key, value in changes.items():
        if value is None:
            event.pop(key, None)
        else:
            event[key] = value
    return event


def text(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


def rules_file(*items: str) -> str:
    return "\n".join(textwrap.dedent(item).strip("\n") for item in items) + "\n"


def rule(name: str, condition: str, output: str = "fired", priority: str = "WARNING", extra: str = "") -> str:
    # JSON strings are YAML double-quoted scalars: the texts reach the loader unchanged.
    body = (
        f"- rule: {name}\n  desc: test rule\n  condition: {json.dumps(condition)}\n  output: {json.dumps(output)}\n"
        f"  priority: {priority}\n  source: k8s_audit\n"
    )
    return body + textwrap.indent(textwrap.dedent(extra).strip("\n"), "  ") + ("\n" if extra else "")


def engine(*items: str, settings: Settings | None = None) -> FalcoEngine:
    falco = FalcoEngine(settings or Settings(rule_matching="all", json_output=True))
    falco.load_rules(rules_file(*items), "rules.yaml")
    return falco


def fires(condition: str, event: dict[str, Any] | str | None = None, *items: str) -> bool:
    falco = engine(*items, rule("R", condition))
    payload = text(audit_event()) if event is None else event if isinstance(event, str) else text(event)
    return [a.rule for a in falco.process(payload)] == ["R"]


def output_of(output: str, event: dict[str, Any] | None = None) -> tuple[str, dict[str, Any] | None]:
    falco = engine(rule("R", "ka.verb exists", output=output))
    (alert,) = falco.process(text(event or audit_event()))
    return alert.message, alert.output_fields


# --- operators on single-value fields ------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("ka.user.name = alice", True),
        ("ka.user.name == alice", True),
        ('ka.user.name = "alice"', True),
        ("ka.user.name=alice", True),
        ("ka.user.name != alice", False),
        ("ka.user.name != bob", True),
        ("ka.user.name in (bob, alice)", True),
        ("ka.user.name intersects (bob, alice)", True),
        ("ka.user.name in (bob)", False),
        ("ka.user.name contains lic", True),
        ("ka.user.name icontains LIC", True),
        ("ka.user.name startswith al", True),
        ("ka.user.name endswith ice", True),
        ("ka.user.name endswith Ice", False),
        ("ka.user.name glob 'a*e'", True),
        ("ka.user.name glob 'a?ice'", True),
        ("ka.user.name glob '[!b]lice'", True),
        ("ka.user.name glob '[^a]lice'", False),
        ("ka.user.name glob '[[:lower:]]li[a-d]e'", True),
        ("ka.user.name glob '[z-a]lice'", False),  # a reversed range matches nothing
        ("ka.user.name glob alice\\", False),  # a trailing backslash: fnmatch matches nothing
        ("ka.user.name iglob 'ALI*'", True),
        ("ka.user.name glob 'ALI*'", False),
        ("ka.uri glob '/api/*'", True),  # no FNM_PATHNAME: * crosses /
        ("ka.uri pmatch (/api/v1)", True),
        ("ka.uri pmatch (/api/v)", False),  # whole path components only
        ("ka.target.namespace pmatch (/ap*)", True),  # a glob component matches the component
        ("ka.user.name exists", True),
    ],
)
def test_string_operators(condition: str, expected: bool) -> None:
    assert fires(condition) is expected


def test_order_operators_take_numbers_and_compare_them_as_strings() -> None:
    # ka.response.code is a string field: strcmp("201", "40") < 0 and strcmp("201", "3") < 0.
    assert fires("ka.response.code < 40")
    assert fires("ka.response.code < 3")
    assert not fires("ka.response.code >= 40")
    assert fires("ka.response.code <= 201")
    assert fires("ka.response.code > 2")
    assert fires("ka.response.code startswith 2")
    with pytest.raises(RulesLoadError, match="expected a number value"):
        engine(rule("R", "ka.user.name < bob"))


def test_quoted_values_keep_spaces_and_escapes() -> None:
    event = audit_event(annotations={"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": 'a "b"'})
    assert fires("""ka.auth.reason = 'a "b"'""", event)
    assert fires(r'ka.auth.reason = "a \"b\""', event)
    with pytest.raises(RulesLoadError, match="invalid"):
        engine(rule("R", r"""ka.auth.reason = 'a \"b'"""))  # \" only inside "-quoted strings


# --- values that are not there --------------------------------------------------------------------


def test_a_field_without_value_fails_every_comparison_but_not_its_negation() -> None:
    event = audit_event()  # objectRef has no subresource
    assert not fires("ka.target.subresource = exec", event)
    assert not fires("ka.target.subresource != exec", event)  # != is false too: no value to compare
    assert fires("not ka.target.subresource = exec", event)
    assert not fires("ka.target.subresource exists", event)
    assert fires("not ka.target.subresource exists", event)
    assert not fires("ka.target.subresource in (exec, attach)", event)
    assert not fires("ka.target.subresource startswith ''", event)


def test_a_json_null_is_a_value_written_null() -> None:
    event = audit_event(objectRef={"resource": "pods", "subresource": None})
    assert '"subresource":null' in text(event)
    assert fires("ka.target.subresource = null", event)
    assert fires("ka.target.subresource exists", event)


def test_ka_fields_have_no_value_without_an_audit_id_but_jevt_fields_do() -> None:
    event = audit_event(auditID=None)
    assert not fires("ka.user.name = alice", event)
    assert fires("jevt.value[/user/username] = alice", event)


# --- list fields ----------------------------------------------------------------------------------


def test_in_on_a_list_field_needs_every_element_intersects_any() -> None:
    assert fires("ka.user.groups in (dev, system:authenticated, ops)")
    assert not fires("ka.user.groups in (dev)")
    assert fires("ka.user.groups intersects (dev, ops)")
    assert not fires("ka.user.groups intersects (ops)")
    assert fires("ka.req.pod.containers.image.repository in (nginx, busybox)")  # tag and digest cut off


def test_a_list_field_with_no_element_has_no_value() -> None:
    event = audit_event(user={"username": "alice", "groups": []})
    assert not fires("ka.user.groups in (dev)", event)  # not vacuously true
    assert not fires("ka.user.groups exists", event)
    assert fires("not ka.user.groups intersects (dev)", event)


def test_list_fields_refuse_scalar_operators_like_falco() -> None:
    with pytest.raises(RulesLoadError, match="'=' operator not supported list filters"):
        engine(rule("R", "ka.user.groups = dev"))
    with pytest.raises(RulesLoadError, match="'contains' operator not supported list filters"):
        engine(rule("R", "ka.req.pod.containers.image[0] contains nginx"))  # indexed, still a list


def test_an_index_picks_an_element_of_every_array_on_the_path() -> None:
    rules = [
        {"verbs": ["get", "list"], "resources": ["pods"]},
        {"verbs": ["delete"], "resources": ["secrets"]},
    ]
    event = audit_event(requestObject={"kind": "ClusterRole", "rules": rules})
    # [1] is the second rule, all of its verbs, not the second verb.
    assert fires("ka.req.role.rules.verbs[1] in (delete)", event)
    assert fires("ka.req.role.rules.verbs intersects (delete)", event)
    assert fires("ka.req.role.rules.verbs[0] in (get, list)", event)
    assert not fires("ka.req.role.rules.verbs[2] exists", event)


def test_containers_missing_a_key_make_some_fields_vanish_and_others_skip_them() -> None:
    spec = {"containers": [{"name": "a", "image": "x"}, {"name": "b", "securityContext": {"privileged": True}}]}
    event = audit_event(requestObject={"kind": "Pod", "spec": spec})
    assert not fires("ka.req.pod.containers.image exists", event)  # one container has no image
    assert fires("ka.req.pod.containers.privileged in (true)", event)  # the other one is skipped
    assert fires("ka.req.container.privileged = true", event)


def test_fields_whose_extraction_reads_other_paths_than_their_names_say() -> None:
    # components.falco.fields.CAVEATS, from extract.go at the pinned tag.
    assert not fires("ka.sourceips exists")  # requestObject.rules[].sourceIPs, never the event's
    assert fires("jevt.value[/sourceIPs/0] = 203.0.113.7")
    spec = {"securityContext": {"runAsUser": 1000}, "containers": [{"name": "a", "image": "x"}]}
    event = audit_event(requestObject={"kind": "Pod", "spec": spec})
    assert fires("ka.req.pod.containers.eff_run_as_user in (0)", event)
    assert fires("ka.req.pod.run_as_user = 1000", event)
    assert fires("ka.req.binding.subject.has_name[anything] = true")


# --- JSON pointer and keyed fields ----------------------------------------------------------------


def test_json_pointer_fields() -> None:
    assert fires("jevt.value[/requestObject/spec/containers/1/name] = side")
    assert fires("jevt.value[/objectRef/resource] = pods")
    assert fires("jevt.value[/responseStatus/code] = 201")  # numbers as written
    assert fires("jevt.value[/requestObject/spec/containers/0/securityContext/privileged] = true")
    assert fires("jevt.value[/annotations/authorization.k8s.io~1decision] = allow")  # ~1 is /
    assert not fires("jevt.value[/requestObject/spec/containers/5/name] exists")
    assert fires("jevt.value[/stage] in (ResponseComplete)")
    assert fires("jevt.rawtime = 1796616150561795000")


def test_a_json_pointer_to_an_object_or_array_gives_its_compact_json() -> None:
    message, fields = output_of("v=%jevt.value[/requestObject/spec/volumes]")
    assert message == 'v=[{"name":"host","hostPath":{"path":"/etc","type":""}}]'
    assert fields is not None
    assert fields["jevt.value[/requestObject/spec/volumes]"] == '[{"name":"host","hostPath":{"path":"/etc","type":""}}]'


def test_uri_parameters() -> None:
    exec_uri = "/api/v1/namespaces/app/pods/web/exec?command=sh&command=-c&container=app&stdin=true"
    event = audit_event(requestURI=exec_uri)
    assert fires("ka.uri.param[command] = sh", event)  # the first value
    assert fires("ka.uri.param[container] = app", event)
    assert not fires("ka.uri.param[tty] exists", event)
    # Go's url.ParseQuery (1.17+) reports a raw ';' as an error: the plugin then has no value at all.
    assert not fires("ka.uri.param[command] exists", audit_event(requestURI=exec_uri + ";id"))
    assert fires("ka.uri.param[command] = 'a b'", audit_event(requestURI="/x?command=a+b"))


def test_field_arguments_are_checked_like_libsinsp() -> None:
    with pytest.raises(RulesLoadError, match="requires an argument"):
        engine(rule("R", "ka.uri.param exists"))
    with pytest.raises(RulesLoadError, match="does not allow nor require an argument"):
        engine(rule("R", "ka.user.name[0] exists"))
    with pytest.raises(RulesLoadError, match="invalid index"):
        engine(rule("R", "ka.req.pod.containers.image[01] exists"))
    with pytest.raises(RulesLoadError, match="nonexistent field ka.user.namex"):
        engine(rule("R", "ka.user.namex exists"))


# --- strings as fastjson keeps them -------------------------------------------------------------


def test_objects_marshal_strings_as_written_until_something_reads_them() -> None:
    raw = text(audit_event()).replace('"requestObject":{', '"requestObject":{"data":{"url":"a\\u0026b"},', 1)
    raw = raw.replace('"objectRef":{"resource":"pods"', '"objectRef":{"resource":"configmaps"', 1)
    assert fires('ka.req.configmap.obj contains "\\\\u0026"', raw)  # the escape as written
    assert not fires("ka.req.configmap.obj contains &", raw)
    assert fires("jevt.value[/requestObject/data/url] = a&b", raw)  # read as a string: unescaped


def test_a_string_read_before_a_marshal_is_written_back_requoted() -> None:
    role = {"kind": "Role", "rules": [{"verbs": ["get"], "resources": ["pods"]}]}
    raw = text(audit_event(requestObject=role)).replace('["get"]', '["g\\u0065t"]', 1)
    plain = engine(rule("R", "ka.verb exists", output="%ka.req.role.rules"))
    (alert,) = plain.process(raw)
    assert alert.message == '({"verbs":["g\\u0065t"],"resources":["pods"]})'
    # The condition reads the verbs first, so the output sees them unescaped and re-quoted.
    reading = engine(rule("R", "ka.req.role.rules.verbs intersects (get)", output="%ka.req.role.rules"))
    (alert,) = reading.process(raw)
    assert alert.message == '({"verbs":["get"],"resources":["pods"]})'


def test_strings_are_cut_at_a_nul_as_c_strings() -> None:
    raw = text(audit_event()).replace('"username":"alice"', '"username":"ali\\u0000ce"', 1)
    assert fires("ka.user.name = ali", raw)


# --- macros and lists -----------------------------------------------------------------------------


def test_macros_nest_and_negate() -> None:
    items = (
        "- macro: is_alice\n  condition: ka.user.name = alice\n",
        "- macro: creates_as_alice\n  condition: (is_alice and ka.verb = create)\n",
    )
    assert fires("creates_as_alice and not is_bob", None, *items, "- macro: is_bob\n  condition: ka.user.name = bob\n")
    assert not fires("not creates_as_alice", None, *items)


def test_a_macro_sees_only_macros_defined_before_it() -> None:
    with pytest.raises(RulesLoadError, match="Undefined macro 'later'"):
        engine(
            "- macro: early\n  condition: later\n",
            "- macro: later\n  condition: ka.verb = create\n",
            rule("R", "early"),
        )


def test_macro_loops_and_unknown_macros_are_load_errors() -> None:
    with pytest.raises(RulesLoadError, match="Undefined macro 'nothing'"):
        engine(rule("R", "nothing"))
    # Resolving a: b, then a again (not on the path yet), then b, which is: the loop is named at b.
    with pytest.raises(RulesLoadError, match="reference loop in macro 'b'"):
        engine(
            "- macro: a\n  condition: ka.verb = get\n",
            "- macro: b\n  condition: a\n",
            "- macro: a\n  condition: b\n  override:\n    condition: replace\n",
            rule("R", "a"),
        )


def test_lists_nest_and_are_substituted_into_the_condition_text() -> None:
    items = (
        "- list: admins\n  items: [bob]\n",
        "- list: people\n  items: [admins, alice, 'carol smith']\n",
    )
    assert fires("ka.user.name in (people)", None, *items)
    assert fires("ka.user.name in (admins, alice)", None, *items)
    falco = engine(*items, rule("R", "ka.user.name in (people)"))
    assert falco.rules[0].condition == 'ka.user.name in ( bob, alice, "carol smith" )'


def test_a_list_is_expanded_only_one_level_and_only_from_lists_before_it() -> None:
    items = (
        "- list: inner\n  items: [alice]\n",
        "- list: middle\n  items: [inner]\n",
        "- list: outer\n  items: [middle, later]\n",
        "- list: later\n  items: [zed]\n",
    )
    falco = engine(*items, rule("R", "ka.user.name in (outer)"))
    # outer keeps the name 'inner' from middle's items; the text substitution, list by list in
    # definition order, then replaces 'later' (after outer) but not 'inner' (before it).
    assert falco.rules[0].condition == "ka.user.name in ( inner, zed )"
    assert not falco.process(text(audit_event()))


def test_an_empty_list_leaves_an_empty_parenthesis() -> None:
    assert not fires("ka.user.name in (nobody)", None, "- list: nobody\n  items: []\n")
    assert fires("not ka.user.name in (nobody)", None, "- list: nobody\n  items: []\n")


# --- overrides, append, exceptions, enabled --------------------------------------------------------


BASE = rule("R", "ka.verb = create", output="base out", priority="NOTICE", extra="tags: [k8s]")


def test_override_append_and_replace() -> None:
    falco = engine(
        BASE,
        """
        - rule: R
          condition: and ka.user.name = alice
          output: (appended)
          tags: [extra]
          override:
            condition: append
            output: append
            tags: append
        - rule: R
          priority: ERROR
          desc: replaced
          override:
            priority: replace
            desc: replace
        """,
    )
    (alert,) = falco.process(text(audit_event()))
    assert (alert.priority, alert.message, alert.tags) == ("Error", "base out (appended)", ("extra", "k8s"))
    assert not falco.process(text(audit_event(user={"username": "bob"})))


def test_override_replace_of_condition_output_and_tags() -> None:
    falco = engine(
        BASE,
        """
        - rule: R
          condition: ka.verb = delete
          output: replaced %ka.verb
          tags: [new]
          override: {condition: replace, output: replace, tags: replace}
        """,
    )
    assert not falco.process(text(audit_event()))
    (alert,) = falco.process(text(audit_event(verb="delete")))
    assert (alert.message, alert.tags) == ("replaced delete", ("new",))


def test_the_older_append_true_form() -> None:
    falco = engine(BASE, "- rule: R\n  condition: and ka.user.name = bob\n  append: true\n")
    assert not falco.process(text(audit_event()))
    assert any("deprecated" in w for w in falco.warnings)


def test_enabled_false_and_its_override() -> None:
    disabled = engine(rule("R", "ka.verb = create", extra="enabled: false"))
    assert disabled.process(text(audit_event())) == []
    enabled = engine(
        rule("R", "ka.verb = create", extra="enabled: false"),
        "- rule: R\n  enabled: true\n  override:\n    enabled: replace\n",
    )
    assert [a.rule for a in enabled.process(text(audit_event()))] == ["R"]
    standalone = engine(BASE, "- rule: R\n  enabled: false\n")
    assert standalone.process(text(audit_event())) == []


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("- rule: R\n  condition: x\n  override:\n    condition: append\n  append: true\n", "cannot be used together"),
        (
            "- rule: R\n  condition: and ka.verb = get\n  output: o\n  override:\n    condition: append\n",
            "Unexpected key 'output'",
        ),
        ("- rule: Q\n  condition: and ka.verb = get\n  override:\n    condition: append\n", "no rule by that name"),
        ("- rule: R\n  priority: BAD\n  override:\n    priority: replace\n", "Invalid priority"),
        ("- rule: R\n  priority: ERROR\n  override:\n    priority: append\n", "cannot be appended to"),
        ("- list: l\n  items: [a]\n  override:\n    items: prepend\n", "Invalid override operation"),
    ],
)  # fmt: skip
def test_override_mistakes_are_load_errors(item: str, message: str) -> None:
    with pytest.raises(RulesLoadError, match=message):
        engine(BASE, item)


def test_exceptions_single_and_multi_field() -> None:
    exceptions = """
    exceptions:
      - name: trusted_users
        fields: ka.user.name
        values: [bob, alice]
      - name: ns_and_images
        fields: [ka.target.namespace, ka.req.pod.containers.image.repository]
        comps: [=, intersects]
        values:
          - [kube-system, [nginx]]
    """
    falco = engine(rule("R", "ka.verb = create", extra=exceptions))
    assert falco.rules[0].condition == (
        "(ka.verb = create) and not (ka.user.name in (bob, alice)) and not "
        "(( ka.target.namespace = kube-system and  ka.req.pod.containers.image.repository intersects (nginx)))"
    )
    assert falco.process(text(audit_event())) == []  # alice is excepted
    assert falco.process(text(audit_event(user={"username": "carol"})))
    kube = audit_event(user={"username": "carol"}, objectRef={"resource": "pods", "namespace": "kube-system"})
    assert falco.process(text(kube)) == []


def test_exception_values_appended_by_override() -> None:
    falco = engine(
        rule("R", "ka.verb = create", extra="exceptions:\n- name: users\n  fields: ka.user.name\n  values: [bob]"),
        "- rule: R\n  exceptions:\n    - name: users\n      values: [alice]\n  override:\n    exceptions: append\n",
    )
    assert falco.process(text(audit_event())) == []


def test_exceptions_replaced_by_override_need_their_comps_spelled_out() -> None:
    base = rule("R", "ka.verb = create", extra="exceptions:\n- name: users\n  fields: ka.user.name\n  values: [alice]")
    replacement = "- rule: R\n  exceptions:\n    - name: verbs\n      fields: ka.verb\n{comps}      values: [delete]\n"
    replacement += "  override:\n    exceptions: replace\n"
    falco = engine(base, replacement.format(comps="      comps: in\n"))
    assert falco.rules[0].condition == "(ka.verb = create) and not (ka.verb in (delete))"
    assert [a.rule for a in falco.process(text(audit_event()))] == ["R"]
    # Falco's collector fills in default comps on define and append, not on replace (selective_replace):
    # the exception then reads "(ka.verb  (delete))" and the condition does not compile.
    with pytest.raises(RulesLoadError, match="expected a valid check operator"):
        engine(base, replacement.format(comps=""))


def test_an_exception_on_an_unknown_field_is_a_load_error() -> None:
    with pytest.raises(RulesLoadError, match="'ka.nope' is not a supported filter field"):
        engine(rule("R", "ka.verb = create", extra="exceptions:\n  - name: x\n    fields: ka.nope\n    values: [a]"))


# --- rule matching and priority -------------------------------------------------------------------


def test_rule_matching_first_stops_at_the_first_rule_in_file_order() -> None:
    items = (rule("A", "ka.verb = create"), rule("B", "ka.user.name = alice"), rule("C", "ka.verb = get"))
    first = engine(*items, settings=Settings(rule_matching="first"))
    assert [a.rule for a in first.process(text(audit_event()))] == ["A"]
    every = engine(*items, settings=Settings(rule_matching="all"))
    assert [a.rule for a in every.process(text(audit_event()))] == ["A", "B"]


def test_a_redefined_rule_keeps_its_first_position() -> None:
    items = (rule("A", "ka.verb = create"), rule("B", "ka.verb = create"), rule("A", "ka.user.name = alice"))
    first = engine(*items, settings=Settings(rule_matching="first"))
    assert [a.rule for a in first.process(text(audit_event()))] == ["A"]


def test_rules_below_the_minimum_priority_do_not_run() -> None:
    items = (rule("Info", "ka.verb exists", priority="INFO"), rule("Crit", "ka.verb exists", priority="CRITICAL"))
    falco = engine(*items, settings=Settings(rule_matching="all", priority="warning"))
    assert [(a.rule, a.priority) for a in falco.process(text(audit_event()))] == [("Crit", "Critical")]
    falco = engine(*items, settings=Settings(rule_matching="all", priority="informational"))
    assert [a.priority for a in falco.process(text(audit_event()))] == ["Informational", "Critical"]


# --- rules file items -----------------------------------------------------------------------------


def test_required_engine_and_plugin_versions() -> None:
    engine("- required_engine_version: 15\n", "- required_engine_version: 0.62.0\n")
    with pytest.raises(RulesLoadError, match="Rules require engine version 0.63.0"):
        engine("- required_engine_version: 63\n")
    falco = engine(
        "- required_plugin_versions:\n  - name: k8saudit\n    version: 0.7.0\n"
        "    alternatives:\n      - name: k8saudit-eks\n        version: 0.4.0\n  - name: json\n    version: 0.7.0\n"
    )
    falco.check_plugin_requirements()
    too_new = engine("- required_plugin_versions:\n  - name: json\n    version: 0.8.0\n")
    with pytest.raises(RulesLoadError, match="not compatible with required plugin version '0.8.0'"):
        too_new.check_plugin_requirements()
    other = engine("- required_plugin_versions:\n  - name: cloudtrail\n    version: 0.1.0\n")
    with pytest.raises(RulesLoadError, match="must load one of: cloudtrail"):
        other.check_plugin_requirements()


def test_a_file_compiles_with_what_is_loaded_so_far() -> None:
    falco = FalcoEngine(Settings())
    with pytest.raises(RulesLoadError, match="Undefined macro 'defined_later'"):
        falco.load_rules(rules_file(rule("R", "defined_later")), "first.yaml")


def test_rules_of_an_unknown_source_are_skipped_with_a_warning() -> None:
    falco = engine(rule("R", "ka.verb exists").replace("source: k8s_audit", "source: aws_cloudtrail"))
    assert falco.rules == []
    assert any("Unknown source aws_cloudtrail" in w for w in falco.warnings)


def test_skip_if_unknown_filter() -> None:
    falco = engine(rule("R", "ka.nosuch exists", extra="skip-if-unknown-filter: true"))
    assert falco.rules == []


# --- output -----------------------------------------------------------------------------------------


def test_output_text_and_fields() -> None:
    output = "user=%ka.user.name sub=%ka.target.subresource groups=%ka.user.groups"
    falco = engine(rule("R", "ka.verb exists", output=output))
    (alert,) = falco.process(text(audit_event()))
    assert alert.output == "04:02:30.561795000: Warning user=alice sub=<NA> groups=(dev,system:authenticated)"
    assert alert.time == TS.replace("Z", "000Z") and alert.ts == TS_NS
    assert alert.output_fields == {
        "evt.time": TS_NS,
        "ka.user.name": "alice",
        "ka.target.subresource": None,
        "ka.user.groups": ["dev", "system:authenticated"],
    }
    assert alert.to_json(Settings(json_output=True), "vm") == {
        "hostname": "vm",
        "output": alert.output,
        "output_fields": alert.output_fields,
        "priority": "Warning",
        "rule": "R",
        "source": "k8s_audit",
        "time": "2026-12-07T04:02:30.561795000Z",
        "tags": [],
    }


def test_output_field_tokens_take_the_longest_field_that_exists() -> None:
    message, fields = output_of("%ka.user.namex/%ka.target.name. %5ka.verb| %ka.uri.param[fieldManager]")
    assert message == "alicex/web. creat| kubectl-create"
    assert fields is not None and set(fields) == {
        "evt.time", "ka.user.name", "ka.target.name", "ka.verb", "ka.uri.param[fieldManager]",
    }  # fmt: skip


def test_a_list_is_cut_to_1023_bytes_in_the_text_but_not_in_the_fields() -> None:
    groups = [f"group-{i:04d}" for i in range(200)]
    message, fields = output_of("%ka.user.groups", audit_event(user={"username": "a", "groups": groups}))
    assert len(message.encode()) == 1023 and message.startswith("(group-0000,")
    assert fields is not None and fields["ka.user.groups"] == groups


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("ends with %", "formatting cannot end with a %"),
        ("%ka.nope", "unknown filter"),
        ("%3", "cannot end with a number"),
    ],
)
def test_invalid_outputs_are_load_errors(output: str, message: str) -> None:
    with pytest.raises(RulesLoadError, match=message):
        engine(rule("R", "ka.verb exists", output=output))


# --- events the plugin drops ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ("not json", "not valid JSON"),
        (text(audit_event(stageTimestamp=None)), "stageTimestamp"),
        (text(audit_event(stageTimestamp="2026-12-07 04:02:30Z")), "RFC3339Nano"),
        (text(audit_event(stageTimestamp="2026-02-30T04:02:30Z")), "day out of range"),
        ('{"stageTimestamp":"2026-12-07T04:02:30Z","x":"' + "a" * 262_200 + '"}', "maxEventSize"),
        ("[" * 299 + "]" * 299, "deeper"),
    ],
)
def test_events_the_plugin_drops_are_rejected(payload: str, reason: str) -> None:
    with pytest.raises(EventRejectedError, match=reason):
        AuditEvent(payload)


def test_the_event_time_is_the_stage_timestamp_with_its_offset() -> None:
    assert AuditEvent(text(audit_event(stageTimestamp="2026-12-07T06:02:30.5617951239+02:00"))).ts == (
        TS_NS + 123  # digits beyond the ninth are dropped
    )


# --- what the evaluator refuses ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "named"),
    [
        ("tolower(ka.user.name) = alice", "field transformer 'tolower"),
        ("ka.user.name = val(ka.impuser.name)", "field transformer 'val"),
        ("ka.user.name startswith oneof (a, b)", "operator modifier 'startswith oneof'"),
        ("ka.user.name regex 'a.*'", "operator 'regex'"),
        ("evt.rawtime > 0", "evt.rawtime"),
        ("evt.num exists", "evt.num"),
        ("ka.user.name glob '[[:alpha:][=a=]]*'", "'[=a=]'"),
    ],
)
def test_constructs_the_evaluator_does_not_model_are_refused_by_name(condition: str, named: str) -> None:
    with pytest.raises(UnsupportedError, match=named.replace("(", r"\(").replace("[", r"\[")):
        falco = engine(rule("R", condition))
        falco.process(text(audit_event()))


def test_a_rule_of_the_syscall_source_is_refused() -> None:
    with pytest.raises(UnsupportedError, match="source 'syscall'"):
        engine(rule("R", "ka.verb exists").replace("  source: k8s_audit\n", ""))


def test_buffer_operators_are_falco_errors_on_string_fields() -> None:
    with pytest.raises(RulesLoadError, match="'bcontains' operator not supported for string filters"):
        engine(rule("R", "ka.user.name bcontains 616c"))


def test_duplicate_yaml_keys_are_refused() -> None:
    with pytest.raises(UnsupportedError, match="duplicate key 'condition'"):
        engine("- macro: m\n  condition: ka.verb = get\n  condition: ka.verb = list\n")
