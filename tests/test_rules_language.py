"""The typed rule builder (components/falco/rules/language.py, document.py): what cannot load in Falco cannot be
built."""

from __future__ import annotations

import pytest
import yaml
from support.falco_engine import FalcoEngine, RulesLoadError, Settings

from components.falco import fields as falco_fields
from components.falco.rules import RULES, detection_rules, guardduty
from components.falco.rules.document import problems, render
from components.falco.rules.language import (
    Expr,
    FalcoList,
    Macro,
    Output,
    Rule,
    all_of,
    any_of,
    f,
    pointer,
    quote,
)

USER = f("ka.user.name")


def _rule(name: str = "Probe Rule", condition: Expr | None = None, **kw: object) -> Rule:
    values: dict[str, object] = {
        "name": name,
        "desc": "a probe",
        "condition": condition or USER.eq("alice"),
        "output": Output("probe", (("user", USER),)),
        "priority": "WARNING",
        "mitre": ("T1078",),
    }
    values.update(kw)
    return Rule(**values)  # type: ignore[arg-type]


def test_a_field_the_pinned_plugins_lack_cannot_be_named() -> None:
    with pytest.raises(KeyError, match="ka.user.nam"):
        f("ka.user.nam")
    with pytest.raises(ValueError, match="takes no argument"):
        f("ka.verb", "x")
    with pytest.raises(ValueError, match="requires an argument"):
        f("ka.uri.param")
    with pytest.raises(ValueError, match="decimal index"):
        f("ka.req.pod.containers.image", "first")
    with pytest.raises(ValueError, match="must start with '/'"):
        pointer("requestObject/spec")


@pytest.mark.parametrize("operator", ["eq", "startswith", "endswith", "contains", "glob"])
def test_a_list_field_takes_only_in_intersects_and_exists(operator: str) -> None:
    images = f("ka.req.pod.containers.image", "0")  # indexed, still a list (libsinsp filter_compare.cpp)
    with pytest.raises(ValueError, match="list field"):
        getattr(images, operator)("nginx")
    assert images.in_(["nginx"]).text == 'ka.req.pod.containers.image[0] in ("nginx")'
    assert images.intersects(["nginx"]).text == 'ka.req.pod.containers.image[0] intersects ("nginx")'
    assert images.exists().text == "ka.req.pod.containers.image[0] exists"
    with pytest.raises(ValueError, match="not a list field"):
        USER.intersects(["alice"])


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("kube-system", '"kube-system"'),
        ('"controller":true', "'\"controller\":true'"),
        ("it's", '"it\'s"'),
        ('"it\'s"', '"\\"it\'s\\""'),
    ],
)
def test_values_are_quoted_as_libsinsp_reads_them_back(value: str, written: str) -> None:
    assert quote(value) == written
    # The evaluator's parser is libsinsp's: the check it builds compares with exactly the value.
    engine = FalcoEngine(Settings(rule_matching="all"))
    engine.load_rules(yaml.safe_dump([{**_rule(condition=USER.eq(value)).item(), "output": "probe"}]), "probe.yaml")
    (rule,) = engine.rules
    assert rule.condition == f"ka.user.name = {written}"


@pytest.mark.parametrize("value", ["a\\b", "ends\\", "line\nbreak", "nul\x00"])
def test_values_libsinsp_cannot_read_back_are_refused(value: str) -> None:
    with pytest.raises(ValueError):
        quote(value)


def test_and_or_not_are_parenthesised_and_flattened() -> None:
    a, b, c = USER.eq("a"), USER.eq("b"), USER.eq("c")
    assert (a & b & c).text == '(ka.user.name = "a" and ka.user.name = "b" and ka.user.name = "c")'
    assert ((a | b) & c).text == '((ka.user.name = "a" or ka.user.name = "b") and ka.user.name = "c")'
    assert (~(a | b)).text == 'not (ka.user.name = "a" or ka.user.name = "b")'
    assert all_of(a).text == a.text and any_of(a, b).text == (a | b).text
    assert (a & Macro("eks_lab_x", b).ref).macros == {"eks_lab_x"}


def test_names_are_the_labs_own() -> None:
    with pytest.raises(ValueError, match="eks_lab_"):
        Macro("kevt", USER.eq("a"))
    with pytest.raises(ValueError, match="eks_lab_"):
        FalcoList("allowed_k8s_users", ("a",))
    with pytest.raises(ValueError, match="unquoted"):
        FalcoList("eks_lab_items", ("two words",))


def test_a_rule_names_its_mitre_techniques_and_real_guardduty_types() -> None:
    with pytest.raises(ValueError, match="MITRE"):
        _rule(mitre=())
    with pytest.raises(ValueError, match="not a MITRE ATT&CK technique"):
        _rule(mitre=("TA0004",))
    with pytest.raises(ValueError, match="not a GuardDuty"):
        _rule(guardduty=("PrivilegeEscalation:Kubernetes/PrivilegedContainers",))
    with pytest.raises(ValueError, match="priority"):
        _rule(priority="Warning")
    tagged = _rule(guardduty=("Policy:Kubernetes/ExposedDashboard",), mitre=("T1133",))
    assert tagged.tags == ["k8s", "eks_lab", "T1133", "guardduty:Policy:Kubernetes/ExposedDashboard"]


def test_every_lab_rule_is_tagged_and_every_guardduty_type_modelled_is_answered() -> None:
    for rule in RULES:
        assert rule.mitre, rule.name
        assert all(tag == tag.strip() and tag for tag in rule.tags)
    answered = {t for rule in RULES for t in rule.guardduty}
    assert set(guardduty.MODELLED) <= answered
    assert len(guardduty.MODELLED) == 24


def test_a_macro_only_sees_what_is_defined_before_it() -> None:
    first = Macro("eks_lab_first", USER.eq("a"))
    second = Macro("eks_lab_second", first.ref)
    assert problems([first, second]) == []
    assert problems([second, first]) == ["macro 'eks_lab_second' uses macro 'eks_lab_first' before it is defined"]
    # A rule sees every macro of the collection.
    assert problems([_rule(condition=first.ref), first]) == []


def test_lists_are_defined_before_use_and_nest_one_level() -> None:
    inner = FalcoList("eks_lab_inner", ("a",))
    outer = FalcoList("eks_lab_outer", (inner,))
    outermost = FalcoList("eks_lab_outermost", (outer,))
    assert problems([inner, outer]) == []
    assert problems([outer, inner]) == ["list 'eks_lab_outer' names list 'eks_lab_inner' before it is defined"]
    assert problems([inner, outer, outermost]) == [
        "list 'eks_lab_outermost' nests 'eks_lab_outer', which nests lists itself"
    ]
    uses = Macro("eks_lab_uses", USER.in_(inner))
    assert problems([uses, inner]) == ["macro 'eks_lab_uses' uses list 'eks_lab_inner' before it is defined"]


def test_twice_defined_names_undefined_references_and_upstream_rule_names_are_refused() -> None:
    macro = Macro("eks_lab_m", USER.eq("a"))
    assert problems([macro, macro]) == ["macro 'eks_lab_m' is defined twice"]
    assert problems([_rule(condition=Expr("eks_lab_nowhere", macros=frozenset({"eks_lab_nowhere"})))]) == [
        "rule 'Probe Rule' uses undefined macro 'eks_lab_nowhere'"
    ]
    assert problems([_rule(name="Create Privileged Pod")]) == [
        "rule 'Create Privileged Pod' has the name of an upstream k8saudit rule"
    ]
    with pytest.raises(ValueError, match="would not load in Falco"):
        render([macro, macro], "header")


def test_the_rendered_file_is_what_falco_loads_and_refuses_what_it_refuses() -> None:
    engine = FalcoEngine(Settings(rule_matching="all"))
    text = render(
        [Macro("eks_lab_m", USER.eq("a")), _rule(condition=Expr("eks_lab_m", macros=frozenset({"eks_lab_m"})))], "h"
    )
    engine.load_rules(text, "probe.yaml")
    assert [r.name for r in engine.rules] == ["Probe Rule"] and engine.warnings == []
    # The same condition written by hand with a list-field operator the builder refuses: Falco refuses it too.
    broken = text.replace('ka.user.name = "a"', 'ka.req.pod.containers.image[0] = "a"')
    with pytest.raises(RulesLoadError):
        FalcoEngine(Settings()).load_rules(broken, "broken.yaml")


def test_the_generated_file_uses_no_field_whose_extraction_misleads() -> None:
    # falco_fields.CAVEATS: ka.sourceips reads a path real events lack, eff_run_as_* read fields Kubernetes
    # never writes, has_name is always true. The lab's rules read sourceIPs through jevt.value instead.
    text = detection_rules()
    for name in falco_fields.CAVEATS:
        assert f"{name} " not in text and f"{name}[" not in text and f"%{name}" not in text, name
