"""The component package: the components served to TypeScript, Go, .NET, Java and YAML programs.

provider/__main__.py (what Pulumi runs for `pulumi package add`, previews and deployments) calls `serve`. The
schema is Pulumi's own inference from the components' type annotations and docstrings
(pulumi.provider.experimental), finished here in three ways Pulumi's analyzer does not offer:

- a fixed namespace (NAMESPACE), so the SDK names do not depend on where the package is added from: without one,
  `pulumi package add` from a Git URL takes the Git organisation as the namespace (pulumi/pulumi
  pkg/cmd/pulumi/packages/packages.go `setSpecNamespace` fills it only when the schema has none), from a local
  path it stays empty;
- descriptions as Markdown prose: docstrings keep their source indentation in Python 3.11, which would turn
  every second paragraph into a code block; they are cleaned as `inspect.cleandoc` does;
- `secret: true` on the outputs that are secret when the component runs (SECRET_OUTPUTS);
- enum members named in PascalCase (`Source`, not the Python member's `SOURCE`), which codegen turns into
  `ForwarderBuildSource` in Go, `ForwarderBuild.Source` in .NET and TypeScript.

Construct checks every input against that schema before the component runs (components/package/schema_inputs.py), and
reports a bad setting, the component's own checks included, as an input error naming the property's path: the
engine prints it as `property cluster.nodeCount ... has a problem: ...`, with no traceback.
"""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import Mapping
from typing import Any

import pulumi
from pulumi.errors import InputPropertiesError
from pulumi.provider.experimental.component import ComponentProvider
from pulumi.provider.provider import ConstructResult
from pulumi.provider.server import ComponentInitError

from .. import COMPONENTS
from ..args import schema_path
from ..errors import ConfigError
from .schema_inputs import Problem, check_inputs

NAME = "falco-eks"
"""The package's name: the first part of every type token, `falco-eks:index:FalcoEksLab`."""

NAMESPACE = "falcolab"
"""The package's namespace: the npm scope (`@falcolab/falco-eks`), the Python SDK's prefix (`falcolab_falco_eks`),
the .NET root namespace (`Falcolab.FalcoEks`), the Go module's owner (`github.com/falcolab/pulumi-falco-eks`).
Not `falco-eks`: .NET would get `FalcoEks.FalcoEks`, where the inner namespace hides the outer."""

SECRET_OUTPUTS: dict[str, frozenset[str]] = {
    "FalcoEksLab": frozenset({"kubeconfig", "falcoUiPassword"}),
    "AuditedCluster": frozenset({"kubeconfig"}),
    "FalcoDetection": frozenset({"falcoUiPassword"}),
    "Falco": frozenset({"uiPassword"}),
}
"""Outputs each component returns as secrets, by schema name (tests check them against what the components do)."""


class InvalidInputsError(InputPropertiesError):
    """Bad inputs of one component; the provider host reports each with its property path (gRPC INVALID_ARGUMENT
    with InputPropertiesError details)."""

    def __init__(self, component: str, problems: list[Problem]) -> None:
        super().__init__(
            f"invalid arguments of {component}",
            [{"property_path": p.path, "reason": p.reason} for p in problems],
        )
        self.problems = problems

    def __str__(self) -> str:
        return "; ".join(str(problem) for problem in self.problems)


def _cleaned(description: str) -> str:
    return inspect.cleandoc(description)


def finish_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The analyzer's schema with prose descriptions and the secret outputs marked (in place, and returned)."""

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "description" and isinstance(value, str):
                    node[key] = _cleaned(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(schema)
    for typ in schema["types"].values():
        for member in typ.get("enum", []):
            member["name"] = "".join(word.capitalize() for word in member["name"].split("_"))
    for token, resource in schema["resources"].items():
        for name in SECRET_OUTPUTS.get(token.split(":")[-1], ()):
            resource["properties"][name]["secret"] = True
    return schema


class ComponentPackage(ComponentProvider):
    """Pulumi's component provider for the package's components, with the finished schema and strict inputs."""

    def __init__(self, version: str) -> None:
        super().__init__(list(COMPONENTS), NAME, NAMESPACE, version)
        self.schema_spec = finish_schema(json.loads(self.schema or "{}"))
        self.schema = json.dumps(self.schema_spec)

    def construct(
        self,
        name: str,
        resource_type: str,
        inputs: Mapping[str, Any],
        options: pulumi.ResourceOptions | None = None,
    ) -> ConstructResult:
        self.validate_resource_type(NAME, resource_type)
        component = resource_type.rsplit(":", 1)[-1]
        problems = check_inputs(self.schema_spec, resource_type, inputs)
        if problems:
            raise InvalidInputsError(component, problems)
        try:
            return super().construct(name, resource_type, dict(inputs), options)
        except ComponentInitError as err:
            if isinstance(err.inner, ConfigError):
                args_type = inspect.get_annotations(self._components[component].__init__, eval_str=True)["args"]
                path = schema_path(args_type, err.inner.setting)
                raise InvalidInputsError(component, [Problem(path, err.inner.message)]) from err
            raise


def serve(version: str) -> None:
    """Run the package's provider as Pulumi runs a plugin (`python <plugin dir> <engine address>`)."""
    from pulumi.provider.experimental import host
    from pulumi.provider.server import main

    if host.is_hosting:  # as component_provider_host: never start twice when the plugin's file is imported again
        return
    host.is_hosting = True
    main(ComponentPackage(version), sys.argv[1:])
