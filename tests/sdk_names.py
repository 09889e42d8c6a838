"""The names Pulumi's code generators give the component package in each language, derived from its schema.

Each function follows one function of Pulumi's own code, named in its docstring (pulumi/pulumi at v3.259.0,
pulumi/pulumi-dotnet at v3.112.1, pulumi/pulumi-yaml at its stored revision), so that the examples and the
documentation can be checked against what `pulumi package add` really generates.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


def set_spec_namespace(namespace: str, plugin_download_url: str) -> str:
    """`setSpecNamespace` (pkg/cmd/pulumi/packages/packages.go): a package added from a Git URL takes the Git
    organisation as its namespace, but only when its schema names none."""
    if namespace:
        return namespace
    found = re.search(r"git://[^/]+/([^/]+)/", plugin_download_url)
    return found[1].lower() if found else ""


def _unhyphenate(text: str) -> str:
    """`cgstrings.Unhyphenate`: every letter after a hyphen upper-cased, the hyphens dropped."""
    head, *rest = text.split("-")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def camel(text: str) -> str:
    """`cgstrings.Camel`: unhyphenated, leading capitals lowered."""
    text = _unhyphenate(text)
    for index, char in enumerate(text):
        if char.islower():
            return text[:index].lower() + text[index:]
    return text.lower()


def uppercase_first(text: str) -> str:
    """`cgstrings.UppercaseFirst`."""
    return text[:1].upper() + text[1:]


def sdk_folder(namespace: str, name: str) -> str:
    """`InstallPackage` (pkg/cmd/pulumi/packages/packages.go): where `pulumi package add` writes the SDK."""
    return f"sdks/{namespace}-{name}" if namespace else f"sdks/{name}"


# --- Node.js ------------------------------------------------------------------------------------------------


def nodejs_package(namespace: str, name: str) -> str:
    """`getNodeJSPkgName` (sdk/nodejs/cmd/pulumi-language-nodejs/main.go): `@<namespace>/<name>`, or
    `@pulumi/<name>` without a namespace."""
    return f"@{namespace}/{name}" if namespace else f"@pulumi/{name}"


def nodejs_import_name(name: str) -> str:
    """The identifier the Node.js language host's `Link` suggests: `cgstrings.Camel(name)`."""
    return camel(name)


# --- Python -------------------------------------------------------------------------------------------------


def python_package(namespace: str, name: str) -> str:
    """`PyPack` (pkg/codegen/python/gen.go): the SDK's distribution and module name."""
    prefix = namespace.replace("-", "_") if namespace else "pulumi"
    return f"{prefix}_{name.replace('-', '_')}"


def python_import_alias(name: str) -> str:
    """The alias the Python language host's `Link` suggests (`import <package> as <alias>`)."""
    return name.replace("-", "_")


def py_name(name: str) -> str:
    """`PyName` (pkg/codegen/python/python.go), the camelCase-to-snake_case state machine, for identifier names."""
    result: list[str] = []
    current = ""
    state = "first"
    for char in name:
        if state == "first":
            state = "upper" if char.isupper() else "lower"
            current += char.lower()
        elif state == "upper":
            if char.isupper():
                state = "acronym"
                current += char.lower()
            else:
                state = "lower"
                current += char
        elif state == "acronym":
            if char.isupper():
                current += char.lower()
            elif char.isdigit() or char == "s":
                state = "lower"
                current += char
            else:
                result.append(current[:-1])
                current = current[-1] + char
                state = "lower"
        else:
            if char.isupper():
                result.append(current)
                current = char.lower()
                state = "upper"
            else:
                current += char
    if current:
        result.append(current)
    return "_".join(part for part in result if part)


# --- Go -----------------------------------------------------------------------------------------------------


def go_module(namespace: str, name: str, version: str) -> str:
    """`ExtractModulePath` (pkg/codegen/go/gen.go) for an SDK that `pulumi package add` generates (SupportPack)."""
    major = int(version.split(".")[0])
    root = f"github.com/{namespace}/pulumi-{name}" if namespace else f"example.com/pulumi-{name}"
    return f"{root}/sdk/go" + (f"/v{major}" if major > 1 else "")


def go_package(name: str) -> str:
    """`goPackage`: the package name, hyphens dropped."""
    return name.replace("-", "")


def go_import(namespace: str, name: str, version: str) -> str:
    """`ExtractImportBasePath` (pkg/codegen/go/gen.go)."""
    return f"{go_module(namespace, name, version)}/{go_package(name)}"


def go_title(name: str) -> str:
    """`Title` (pkg/codegen/go/gen.go): field names of Go structs."""
    return _unhyphenate(uppercase_first(name))


def go_names_of_resource(name: str) -> list[str]:
    """What a component resource reserves in its Go package (`generatePackageContextMap`, pkg/codegen/go/gen.go:
    `getNames` of `scanResource`, components have no State or Get)."""
    return [name, f"{name}Input", f"{name}Output", f"{name}Args", f"{camel(name)}Args", f"New{name}"]


def go_names_of_type(name: str) -> list[str]:
    """What an object type or enum would take in Go (`getNames` of `scanType`); on a collision Go appends `Type`
    (objects) or `Enum` (enums) to all of them."""
    return [name, f"{name}Input", f"{name}Output"]


# --- .NET ---------------------------------------------------------------------------------------------------


def dotnet_namespace_name(name: str) -> str:
    """`namespaceName` (pulumi-language-dotnet/codegen/gen.go): each part upper-cased first, hyphens dropped."""
    return ".".join("".join(uppercase_first(word) for word in part.split("-")) for part in name.split("/"))


def dotnet_root_namespace(namespace: str) -> str:
    """`normalizePackageInfo` (pulumi-language-dotnet/codegen/importer.go): the package's namespace becomes the
    root namespace; without one it is `Pulumi` (`GetRootNamespace`)."""
    return dotnet_namespace_name(namespace) if namespace else "Pulumi"


def dotnet_namespace(namespace: str, name: str) -> str:
    """`tokenToNamespace` for the index module: `<root>.<package>`."""
    return f"{dotnet_root_namespace(namespace)}.{dotnet_namespace_name(name)}"


def dotnet_property(name: str) -> str:
    """`propertyName` (pulumi-language-dotnet/codegen/gen.go): `UppercaseFirst(Unhyphenate(name))`."""
    return uppercase_first(_unhyphenate(name))


# --- YAML ---------------------------------------------------------------------------------------------------


def yaml_types(token: str) -> set[str]:
    """The type tokens a Pulumi YAML program may write (`resourcePackage.ResolveResource`,
    pulumi/pulumi-yaml pkg/pulumiyaml/packages.go): the token, or `pkg:Type` for one in the index module."""
    package, module, name = token.split(":")
    return {token, f"{package}:{name}"} if module == "index" else {token}


# --- everything, from the served schema ---------------------------------------------------------------------


@dataclass(frozen=True)
class SdkNames:
    name: str
    namespace: str
    version: str
    components: tuple[str, ...]
    object_types: tuple[str, ...]
    enums: tuple[str, ...]

    @property
    def folder(self) -> str:
        return sdk_folder(self.namespace, self.name)

    @property
    def nodejs(self) -> str:
        return nodejs_package(self.namespace, self.name)

    @property
    def nodejs_import(self) -> str:
        return nodejs_import_name(self.name)

    @property
    def python(self) -> str:
        return python_package(self.namespace, self.name)

    @property
    def python_alias(self) -> str:
        return python_import_alias(self.name)

    @property
    def go_module(self) -> str:
        return go_module(self.namespace, self.name, self.version)

    @property
    def go_import(self) -> str:
        return go_import(self.namespace, self.name, self.version)

    @property
    def go_package(self) -> str:
        return go_package(self.name)

    @property
    def dotnet(self) -> str:
        return dotnet_namespace(self.namespace, self.name)


def names_of(schema: Mapping[str, Any], plugin_download_url: str = "") -> SdkNames:
    """The SDK names of the served schema, as added from `plugin_download_url` (a Git URL, or a local path: "")."""
    types = schema.get("types", {})
    return SdkNames(
        name=schema["name"],
        namespace=set_spec_namespace(schema.get("namespace", ""), plugin_download_url),
        version=schema["version"],
        components=tuple(token.split(":")[-1] for token in schema["resources"]),
        object_types=tuple(token.split(":")[-1] for token, t in types.items() if "enum" not in t),
        enums=tuple(token.split(":")[-1] for token, t in types.items() if "enum" in t),
    )
