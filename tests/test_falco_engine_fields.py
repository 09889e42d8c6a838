"""The field catalog (components/falco/fields.py): the pinned plugins' facts, and what the evaluator extracts."""

from __future__ import annotations

import re

import pytest
from support.falco_engine import FalcoEngine, Settings
from support.falco_engine.fields import resolve
from support.falco_engine.plugins_repo import JSON_PLUGIN_GO, K8SAUDIT_FIELDS_GO, json_tag, k8saudit_tag, plugins_file

import components.falco.k8saudit_upstream as upstream
from components.falco import fields as falco_fields

_ENTRY = re.compile(r"\{\s*(Type:.*?)\n\t\t\},", re.S)


def _declared(go_source: str) -> dict[str, tuple[str, bool, str, bool]]:
    """name -> (type, list field, argument kind, argument required) as a plugin's Go source declares them."""
    declared = {}
    for entry in _ENTRY.findall(go_source):
        name = re.search(r'Name:\s*"([\w.]+)"', entry)
        kind = re.search(r'Type:\s*"(\w+)"', entry)
        assert name and kind, entry
        index = re.search(r"IsIndex:\s*true", entry) is not None
        key = re.search(r"IsKey:\s*true", entry) is not None
        arg = "index" if index else "key" if key else "none"
        declared[name[1]] = (
            kind[1],
            re.search(r"IsList:\s*true", entry) is not None,
            arg,
            re.search(r"IsRequired:\s*true", entry) is not None,
        )
    return declared


def _catalog(fields: tuple[falco_fields.FieldSpec, ...]) -> dict[str, tuple[str, bool, str, bool]]:
    return {f.name: (f.type, f.is_list, f.arg, f.arg_required) for f in fields}


@pytest.mark.parametrize("version", ["0.15.0", falco_fields.K8SAUDIT_VERSION])
def test_the_k8saudit_fields_are_those_the_plugin_declares(version: str) -> None:
    declared = _declared(plugins_file(k8saudit_tag(version), K8SAUDIT_FIELDS_GO))
    assert declared == _catalog(falco_fields.K8SAUDIT_FIELDS)
    assert list(declared) == [f.name for f in falco_fields.K8SAUDIT_FIELDS]


def test_the_json_fields_are_those_the_plugin_declares() -> None:
    source = plugins_file(json_tag(falco_fields.JSON_VERSION), JSON_PLUGIN_GO)
    assert f'PluginVersion     = "{falco_fields.JSON_VERSION}"' in source
    assert _declared(source) == _catalog(falco_fields.JSON_FIELDS)


def test_the_catalog_and_the_upstream_names_agree() -> None:
    assert falco_fields.K8SAUDIT_VERSION == upstream.VERSION
    assert {f.name for f in falco_fields.K8SAUDIT_FIELDS} == upstream.FIELDS
    assert len(falco_fields.BY_NAME) == len(falco_fields.FIELDS) == 77
    assert set(falco_fields.CAVEATS) <= set(falco_fields.BY_NAME)


@pytest.mark.parametrize("spec", falco_fields.FIELDS, ids=lambda f: f.name)
def test_every_catalog_field_resolves_and_extracts_in_the_evaluator(spec: falco_fields.FieldSpec) -> None:
    arg = {"key": "/kind" if spec.plugin == "json" else "x", "index": "0", "none": None}[spec.arg]
    reference = spec.reference(arg) if spec.arg_required else spec.reference()
    ref = resolve(spec.name, arg if spec.arg_required else None)
    assert (ref.name, ref.is_list, ref.provider) == (spec.name, spec.is_list, spec.plugin)
    engine = FalcoEngine(Settings(rule_matching="all"))
    engine.load_rules(
        f"- rule: R\n  desc: d\n  condition: {reference} exists\n  output: '%{reference}'\n"
        "  priority: INFO\n  source: k8s_audit\n",
        "rules.yaml",
    )
    event = (
        '{"kind":"Event","auditID":"a","stage":"ResponseComplete","requestURI":"/x?x=1","verb":"get",'
        '"stageTimestamp":"2026-12-07T04:02:09Z"}'
    )
    engine.process(event)  # no refusal: the evaluator extracts every catalog field


@pytest.mark.parametrize(
    ("name", "arg", "error"),
    [
        ("ka.uri.param", None, "requires an argument"),
        ("ka.user.name", "x", "takes no argument"),
        ("ka.req.pod.containers.image", "01", "decimal index"),
        ("jevt.value", "/a b", "cannot be written"),
        ("jevt.value", "/a]", "cannot be written"),
    ],
)
def test_a_field_reference_that_falco_would_refuse_cannot_be_written(name: str, arg: str | None, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        falco_fields.field(name).reference(arg)


def test_a_field_the_plugins_lack_is_named() -> None:
    assert falco_fields.field("ka.uri.param").reference("command") == "ka.uri.param[command]"
    with pytest.raises(KeyError, match="'ka.user.email' is not a field of the pinned k8saudit 0.16.1"):
        falco_fields.field("ka.user.email")
