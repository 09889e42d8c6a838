"""examples/: every program uses the names Pulumi generates for the package, and only what its schema allows.

The SDK names come from the served schema by the rules of Pulumi's code generators (tests/sdk_names.py). The
TypeScript programs are read by a strict reader of their constrained style (tests/typescript_literals.py, since
no Node.js is guaranteed where the tests run), the YAML programs as YAML; the arguments of each component are
checked with the same check the plugin runs on every construct (components/package/schema_inputs.py), references to
other resources standing for outputs. Go and C# are checked for their names: import path or namespace,
constructors, Args types, fields, outputs. The Python programs run under Pulumi's mocks, with the package's
`falco_eks.components` being the repository's components/ (pyproject.toml's package-dir).
"""

from __future__ import annotations

import json
import re
import runpy
import sys
import tomllib
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from pulumi_mocks import ExistingCluster, LabMocks, run_program
from sdk_names import dotnet_property, go_title, names_of, nodejs_import_name, py_name, yaml_types
from typescript_literals import New, Ref, parse

import components
from components.package import NAME, ComponentPackage
from components.package.schema_inputs import check_inputs

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
SCHEMA = ComponentPackage(VERSION).schema_spec
NAMES = names_of(SCHEMA)
PACKAGE_SOURCE = f"github.com/<org>/falco-eks-lab.git/provider@v{VERSION}"

LANGUAGES = ("python", "typescript", "yaml")
KINDS = ("new-lab", "existing-cluster")


def token(component: str) -> str:
    return f"{NAME}:index:{component}"


def inputs_of(component: str) -> dict[str, Any]:
    return SCHEMA["resources"][token(component)]["inputProperties"]


def outputs_of(component: str) -> dict[str, Any]:
    return SCHEMA["resources"][token(component)]["properties"]


def later() -> pulumi.Output[Any]:
    """What a reference to another resource's output stands for in a checked program."""
    return pulumi.Output.from_input("known later")


def test_every_language_has_a_new_lab_and_an_existing_cluster() -> None:
    for language in LANGUAGES:
        for kind in KINDS:
            assert (EXAMPLES / f"{language}-{kind}" / "Pulumi.yaml").is_file(), f"{language}-{kind}"
    assert (EXAMPLES / "go-existing-cluster" / "main.go").is_file()
    assert (EXAMPLES / "dotnet-existing-cluster" / "Program.cs").is_file()


# --- the SDK names -------------------------------------------------------------------------------------------


def test_the_names_do_not_depend_on_where_the_package_is_added_from() -> None:
    """With its own namespace, `setSpecNamespace` leaves the schema's namespace alone for any Git organisation."""
    for source in ("", "git://github.com/acme/falco-eks-lab.git/provider", "git://gitlab.example.com/Sec/x/provider"):
        assert names_of(SCHEMA, source) == NAMES
    # Without one, an organisation's add would have named the SDK after it.
    bare = {**SCHEMA, "namespace": ""}
    assert names_of(bare, "git://github.com/Acme/falco-eks-lab.git/provider").nodejs == "@acme/falco-eks"
    assert names_of(bare).nodejs == "@pulumi/falco-eks"


def test_the_generated_names_of_the_package() -> None:
    assert (NAMES.name, NAMES.namespace) == ("falco-eks", "falcolab")
    assert NAMES.folder == "sdks/falcolab-falco-eks"
    assert (NAMES.nodejs, NAMES.nodejs_import) == ("@falcolab/falco-eks", "falcoEks") == (
        NAMES.nodejs, nodejs_import_name(NAME)
    )
    assert (NAMES.python, NAMES.python_alias) == ("falcolab_falco_eks", "falco_eks")
    assert NAMES.go_module == "github.com/falcolab/pulumi-falco-eks/sdk/go"
    assert (NAMES.go_import, NAMES.go_package) == ("github.com/falcolab/pulumi-falco-eks/sdk/go/falcoeks", "falcoeks")
    assert NAMES.dotnet == "Falcolab.FalcoEks"
    assert py_name("falcoUiPassword") == "falco_ui_password" and py_name("oidcProviderArn") == "oidc_provider_arn"
    assert go_title("falcoUiPassword") == "FalcoUiPassword" and dotnet_property("kubeconfig") == "Kubeconfig"


def test_the_readme_of_the_examples_shows_the_generated_names() -> None:
    readme = (EXAMPLES / "README.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in readme.splitlines() if line.startswith("| ")}
    assert f"`{NAMES.nodejs}`" in rows["TypeScript"] and f"`{NAMES.folder}`".replace("`", "") in rows["TypeScript"]
    assert f'import * as {NAMES.nodejs_import} from "{NAMES.nodejs}"' in rows["TypeScript"]
    assert f"`{NAMES.python}`" in rows["Python"] and f"import {NAMES.python} as {NAMES.python_alias}" in rows["Python"]
    assert f"`{NAMES.go_module}`" in rows["Go"] and f'import "{NAMES.go_import}"' in rows["Go"]
    assert f"{NAMES.go_package}.NewFalcoEksLab" in rows["Go"]
    assert f"`{NAMES.dotnet}`" in rows[".NET"] and f"new {NAMES.dotnet}.FalcoEksLab" in rows[".NET"]
    assert all(f"`{t}`" in rows["YAML"] for t in yaml_types(token("FalcoEksLab")))
    for object_type in NAMES.object_types:
        assert f"`{object_type}Args`" in readme, object_type
    assert f"`falco-eks-lab.git/provider@v{VERSION}`" in readme or f"provider@v{VERSION}" in readme


# --- TypeScript --------------------------------------------------------------------------------------------


def _ts_value(value: Any, consts: dict[str, Any]) -> Any:
    """A parsed literal as the plugin would receive it; references to resources become outputs."""
    if isinstance(value, Ref):
        if len(value.parts) == 1 and value.parts[0] in consts and not isinstance(consts[value.parts[0]], (New, Ref)):
            return _ts_value(consts[value.parts[0]], consts)
        return later()
    if isinstance(value, dict):
        return {key: _ts_value(item, consts) for key, item in value.items()}
    if isinstance(value, list):
        return [_ts_value(item, consts) for item in value]
    return value


@pytest.mark.parametrize("kind", KINDS)
def test_typescript_examples_match_the_schema(kind: str) -> None:
    folder = EXAMPLES / f"typescript-{kind}"
    program = parse((folder / "index.ts").read_text())
    assert program.imports[NAMES.nodejs_import] == NAMES.nodejs
    package = json.loads((folder / "package.json").read_text())
    assert package["dependencies"][NAMES.nodejs] == f"file:{NAMES.folder}"
    assert set(program.imports.values()) <= set(package["dependencies"])
    project = yaml.safe_load((folder / "Pulumi.yaml").read_text())
    assert project["runtime"]["name"] == "nodejs" and project["packages"] == {NAME: PACKAGE_SOURCE}
    assert json.loads((folder / "tsconfig.json").read_text())["files"] == ["index.ts"]

    built: dict[str, str] = {}
    for name, value in program.consts.items():
        if not (isinstance(value, New) and value.callee.parts[0] == NAMES.nodejs_import):
            continue
        component = value.callee.parts[1]
        assert component in NAMES.components, f"line {value.line}: no component {component}"
        args = _ts_value(value.args[1], program.consts)
        problems = check_inputs(SCHEMA, token(component), args)
        assert problems == [], f"line {value.line}: " + "; ".join(map(str, problems))
        built[name] = component
    assert built, "no component is built"
    for name, value in program.exports.items():
        assert isinstance(value, Ref) and value.parts[0] in built, name
        assert value.parts[1] in outputs_of(built[value.parts[0]]), f"{name}: {value}"


def test_the_typescript_reader_refuses_what_it_cannot_check() -> None:
    from typescript_literals import ParseError

    for source in (
        "const x = `template`;",
        "const x = f(1);",
        "const x = { ...other };",
        "const x: string = 'a';",
        "const x = { a: 1, a: 2 };",
    ):
        with pytest.raises(ParseError):
            parse(source)


def test_a_misspelled_property_in_a_typescript_example_would_be_caught() -> None:
    program = parse('import * as falcoEks from "@falcolab/falco-eks";\n'
                    'const lab = new falcoEks.FalcoEksLab("lab", { cluster: { clusterName: "x", nodeCont: 3 } });')
    lab = program.consts["lab"]
    assert [str(p) for p in check_inputs(SCHEMA, token("FalcoEksLab"), _ts_value(lab.args[1], {}))] == [
        "cluster.nodeCont: unknown setting; did you mean nodeCount?"
    ]


def test_a_resource_output_where_a_known_value_is_needed_would_be_caught() -> None:
    program = parse('const detection = new falcoEks.FalcoDetection("f", { clusterName: cluster.name });')
    args = _ts_value(program.consts["detection"].args[1], program.consts)
    assert [p.path for p in check_inputs(SCHEMA, token("FalcoDetection"), args)] == ["clusterName"]


# --- YAML --------------------------------------------------------------------------------------------------

_INTERPOLATION = re.compile(r"^\$\{([^}]+)\}$")


def _yaml_value(value: Any, variables: dict[str, Any]) -> Any:
    if isinstance(value, str) and (match := _INTERPOLATION.match(value)):
        name = match[1]
        known = variables.get(name)
        return known if isinstance(known, (str, int, float, bool)) and not _INTERPOLATION.match(str(known)) else later()
    if isinstance(value, dict):
        return {key: _yaml_value(item, variables) for key, item in value.items()}
    if isinstance(value, list):
        return [_yaml_value(item, variables) for item in value]
    return value


@pytest.mark.parametrize("kind", KINDS)
def test_yaml_examples_match_the_schema(kind: str) -> None:
    project = yaml.safe_load((EXAMPLES / f"yaml-{kind}" / "Pulumi.yaml").read_text())
    assert project["runtime"] == "yaml" and project["packages"] == {NAME: PACKAGE_SOURCE}
    tokens = {t: component for component in NAMES.components for t in yaml_types(token(component))}
    variables = project.get("variables", {})
    built = {}
    for name, spec in project["resources"].items():
        if not spec["type"].startswith(f"{NAME}:"):
            continue
        assert spec["type"] in tokens, f"{name}: {spec['type']}"
        component = tokens[spec["type"]]
        problems = check_inputs(SCHEMA, token(component), _yaml_value(spec.get("properties", {}), variables))
        assert problems == [], f"{name}: " + "; ".join(map(str, problems))
        built[name] = component
    assert built
    for name, value in project["outputs"].items():
        match = _INTERPOLATION.match(value)
        assert match, name
        resource, _, output = match[1].partition(".")
        assert output in outputs_of(built[resource]), f"{name}: {value}"


# --- Python ------------------------------------------------------------------------------------------------


@pytest.fixture
def installed_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """`falco_eks.components` as the installed package has it: the repository's components/."""
    import falco_eks

    monkeypatch.setitem(sys.modules, "falco_eks.components", components)
    monkeypatch.setattr(falco_eks, "components", components, raising=False)


@pytest.mark.parametrize(
    ("kind", "component", "mocks"),
    [
        ("new-lab", "FalcoEksLab", LabMocks),
        ("existing-cluster", "FalcoDetection", lambda: LabMocks(ExistingCluster("prod-eu"))),
    ],
)
def test_python_examples_run_under_mocks(
    installed_package: None, monkeypatch: pytest.MonkeyPatch, kind: str, component: str, mocks: Any
) -> None:
    folder = EXAMPLES / f"python-{kind}"
    project = yaml.safe_load((folder / "Pulumi.yaml").read_text())
    assert project["runtime"]["name"] == "python"
    requirements = (folder / "requirements.txt").read_text()
    assert f"falco-eks @ git+https://github.com/<org>/falco-eks-lab@v{VERSION}" in requirements

    exported: dict[str, Any] = {}
    monkeypatch.setattr(pulumi, "export", lambda name, value: exported.__setitem__(name, value))
    recorded = run_program(lambda: runpy.run_path(str(folder / "__main__.py"), run_name="__main__"), mocks=mocks())
    assert len(recorded.of_type(token(component))) == 1
    assert recorded.resources and not isinstance(recorded.result, Exception)
    assert set(exported) <= set(outputs_of(component)), sorted(set(exported) - set(outputs_of(component)))


def test_the_python_examples_import_only_what_the_package_exports() -> None:
    for kind in KINDS:
        source = (EXAMPLES / f"python-{kind}" / "__main__.py").read_text()
        for names in re.findall(r"from falco_eks\.components import ([\w, ]+)", source):
            for name in (n.strip() for n in names.split(",")):
                assert name in components.__all__, name


# --- Go and C#: the names -----------------------------------------------------------------------------------


def _blocks(source: str, opener: str) -> list[tuple[str, str]]:
    """(type name, body) of each `<opener><Type>{ ... }` literal, braces balanced."""
    found = []
    for match in re.finditer(re.escape(opener) + r"(\w+)\s*\{", source):
        depth, start = 1, match.end()
        index = start
        while depth:
            depth += {"{": 1, "}": -1}.get(source[index], 0)
            index += 1
        found.append((match[1], source[start : index - 1]))
    return found


def _top_level_fields(body: str, separator: str) -> list[str]:
    """Field names at the first level of a struct or object initializer body."""
    fields, depth = [], 0
    for line in body.splitlines():
        stripped = line.strip()
        if depth == 0 and (match := re.match(rf"^(\w+)\s*{re.escape(separator)}", stripped)):
            fields.append(match[1])
        depth += line.count("{") - line.count("}")
    return fields


def _fields_of(type_name: str) -> dict[str, Any]:
    if type_name.endswith("Args") and type_name[: -len("Args")] in NAMES.components:
        return inputs_of(type_name[: -len("Args")])
    assert type_name.endswith("Args") and type_name[: -len("Args")] in NAMES.object_types, type_name
    return SCHEMA["types"][token(type_name[: -len("Args")])]["properties"]


def test_the_go_example_uses_the_generated_names() -> None:
    folder = EXAMPLES / "go-existing-cluster"
    source = (folder / "main.go").read_text()
    assert f'"{NAMES.go_import}"' in source
    project = yaml.safe_load((folder / "Pulumi.yaml").read_text())
    assert project["runtime"] == "go" and project["packages"] == {NAME: PACKAGE_SOURCE}
    assert f"replace {NAMES.go_module} => ./{NAMES.folder}" in (folder / "Pulumi.yaml").read_text()
    package = NAMES.go_package
    constructed = re.findall(rf"(\w+), err := {package}\.New(\w+)\(ctx, \"[\w-]+\", &{package}\.(\w+)Args\{{", source)
    assert constructed
    for _variable, component, args in constructed:
        assert component == args and component in NAMES.components
    blocks = _blocks(source, f"&{package}.")
    assert blocks
    for type_name, body in blocks:
        allowed = {go_title(name): spec for name, spec in _fields_of(type_name).items()}
        for field_name in _top_level_fields(body, ":"):
            assert field_name in allowed, f"{type_name}.{field_name}"
            value = re.search(rf"\b{field_name}:\s*([^\n]+)", body)
            assert value is not None
            _check_go_value(type_name, field_name, allowed[field_name], value[1].strip())
    outputs = {go_title(name) for name in outputs_of(constructed[0][1])}
    for field_name in re.findall(rf"{constructed[0][0]}\.(\w+)", source):
        assert field_name in outputs, field_name


def _check_go_value(type_name: str, field_name: str, spec: dict[str, Any], value: str) -> None:
    """Plain properties are Go values (pointers when optional), the others pulumi inputs (`pulumi.String`)."""
    where = f"{type_name}.{field_name} = {value}"
    kind = spec.get("type")
    if kind == "string":
        expected = (r'^"' if field_name in _required(type_name) else r"^pulumi\.StringRef\(") if spec.get(
            "plain"
        ) else r"^pulumi\.String\("
    elif kind == "integer":
        expected = r"^pulumi\.IntRef\(" if spec.get("plain") else r"^pulumi\.Int\("
    elif kind == "array":
        expected = r"^\[\]string\{" if spec.get("plain") else r"^pulumi\.StringArray\{"
    else:
        expected = rf"^&{NAMES.go_package}\.\w+Args\{{"
    assert re.match(expected, value), where


def _required(type_name: str) -> set[str]:
    base = type_name[: -len("Args")]
    if base in NAMES.components:
        names = SCHEMA["resources"][token(base)].get("requiredInputs", [])
    else:
        names = SCHEMA["types"][token(base)].get("required", [])
    return {go_title(name) for name in names}


def test_the_csharp_example_uses_the_generated_names() -> None:
    folder = EXAMPLES / "dotnet-existing-cluster"
    source = (folder / "Program.cs").read_text()
    alias = re.search(rf"using (\w+) = {re.escape(NAMES.dotnet)};", source)
    assert alias, f"using <alias> = {NAMES.dotnet};"
    prefix = alias[1]
    project = yaml.safe_load((folder / "Pulumi.yaml").read_text())
    assert project["runtime"] == "dotnet" and project["packages"] == {NAME: PACKAGE_SOURCE}
    constructed = re.findall(rf"var (\w+) = new {prefix}\.(\w+)\(\"[\w-]+\", new {prefix}\.(\w+)Args", source)
    assert constructed and all(c == a and c in NAMES.components for _v, c, a in constructed)
    blocks = _blocks(source, f"new {prefix}.") + _blocks(source, f"new {prefix}.Inputs.")
    for type_name, body in blocks:
        if type_name.startswith("Inputs"):
            continue
        allowed = {dotnet_property(name) for name in _fields_of(type_name)}
        for field_name in _top_level_fields(body, "="):
            assert field_name in allowed, f"{type_name}.{field_name}"
    for enum, member in re.findall(rf"{prefix}\.(\w+)\.(\w+)\b", source):
        if enum in NAMES.enums:
            members = [m["name"] for m in SCHEMA["types"][token(enum)]["enum"]]
            assert member in members, f"{enum}.{member}"
    outputs = {dotnet_property(name) for name in outputs_of(constructed[0][1])}
    for field_name in re.findall(rf"{constructed[0][0]}\.(\w+)", source):
        assert field_name in outputs, field_name
