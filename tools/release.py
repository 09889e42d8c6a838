"""Release tooling: the URN manifest of a release, and what an upgrade from a recorded release would replace.

    python -m tools.release urns                     # releases/<version>/urns.json for this checkout
    python -m tools.release urns --source DIR        # ... for another checkout (an older commit's worktree)
    python -m tools.release check                    # what upgrading each recorded release to this code does

A manifest records, per scenario (tools/scenarios.py), the URN of every resource the scenario registers, in the
engine's form (the whole chain of parent types), and for stateful resources the inputs whose change makes the
provider replace them (STATEFUL_INPUTS). tests/test_upgrades.py fails when today's code would delete a recorded
URN (no resource of that URN, nor an alias naming it) or change one of those inputs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tools import scenarios
from tools.urns import chain_urns

ROOT = Path(__file__).resolve().parent.parent
RELEASES = ROOT / "releases"
MANIFEST = "urns.json"

STATEFUL_INPUTS: dict[str, tuple[str, ...]] = {
    # The cluster and its OIDC provider (a child of the remote eks.Cluster, named after it, invisible under mocks).
    "eks:index:Cluster": ("name", "createOidcProvider"),
    "aws:cloudwatch/logGroup:LogGroup": ("name",),
    "aws:eks/nodeGroup:NodeGroup": (
        "clusterName", "nodeGroupName", "nodeGroupNamePrefix", "capacityType", "instanceTypes", "subnetIds",
    ),
    "aws:ec2/launchTemplate:LaunchTemplate": ("name", "namePrefix"),
    "aws:iam/role:Role": ("name", "namePrefix", "path"),
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": ("url",),
    "aws:kinesis/stream:Stream": ("name",),
    "aws:ecr/repository:Repository": ("name",),
    # The cluster's network: a new VPC or subnet takes the cluster with it.
    "aws:ec2/vpc:Vpc": ("cidrBlock",),
    "aws:ec2/subnet:Subnet": ("cidrBlock", "availabilityZone", "vpcId"),
    "kubernetes:helm.sh/v3:Release": ("name", "namespace"),
    "kubernetes:core/v1:Namespace": ("metadata.name",),
    # The checkpoint ConfigMaps and the leader Lease hold the forwarder's position and its leader.
    "kubernetes:core/v1:ConfigMap": ("metadata.name", "metadata.namespace"),
    "kubernetes:coordination.k8s.io/v1:Lease": ("metadata.name", "metadata.namespace"),
    # A new password locks out whoever knows the UI's login.
    "random:index/randomPassword:RandomPassword": ("length", "special", "minLower", "minUpper", "minNumeric"),
}
"""Stateful resource types -> the inputs whose change replaces them (dotted paths into the inputs)."""


def version_of(source: Path) -> str:
    with (source / "pyproject.toml").open("rb") as project:
        return str(tomllib.load(project)["project"]["version"])


def pins_of(source: Path) -> dict[str, str]:
    """The exact pins of requirements.txt (the versions a release was built and tested against)."""
    pins: dict[str, str] = {}
    for line in (source / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[name.strip()] = version.strip()
    return pins


def commit_of(source: Path) -> str:
    answer = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True)
    return answer.stdout.strip() if answer.returncode == 0 else ""


def _at(inputs: Mapping[str, Any], path: str) -> Any:
    value: Any = inputs
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _plain(value: Any) -> Any:
    """Numbers cross the wire as floats: whole ones are written as integers."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def replace_inputs(typ: str, inputs: Mapping[str, Any]) -> dict[str, Any] | None:
    """The replace-triggering inputs of a stateful resource (None for other types)."""
    paths = STATEFUL_INPUTS.get(typ)
    if paths is None:
        return None
    return {path: _plain(_at(inputs, path)) for path in paths}


def records(built: scenarios.Built) -> list[dict[str, Any]]:
    """One entry per registration: engine URN, type, name, parent's engine URN, replace-triggering inputs."""
    recorded = built.recorded
    parents = {r.urn: r.parent or None for r in recorded.resources}
    types = {r.urn: (r.type, r.name) for r in recorded.resources}
    urns = chain_urns(scenarios.STACK, scenarios.PROJECT, parents, types)
    entries = []
    for reg in recorded.resources:
        entry: dict[str, Any] = {"urn": urns[reg.urn], "type": reg.type, "name": reg.name}
        entry["parent"] = urns.get(reg.parent, "")
        stateful = replace_inputs(reg.type, reg.inputs)
        if stateful is not None:
            entry["replaceInputs"] = stateful
        entries.append(entry)
    return entries


def manifest(source: Path) -> dict[str, Any]:
    """Build every scenario against the components in `source` and describe what each registers."""
    if source.resolve() != ROOT.resolve():
        # The components (and the stack program's own imports) come from that checkout.
        sys.path.insert(0, str(source.resolve()))
    result: dict[str, Any] = {
        "version": version_of(source),
        "commit": commit_of(source),
        "builtWith": pins_of(source),
        "stack": scenarios.STACK,
        "project": scenarios.PROJECT,
        "scenarios": {},
    }
    for scenario in scenarios.SCENARIOS:
        try:
            built = scenarios.build(scenario, source)
        except scenarios.MissingComponentError as missing:
            print(f"{scenario.name}: skipped, this release has no {missing}", file=sys.stderr)
            continue
        # Registration order varies from run to run (outputs resolve concurrently): kept sorted by URN.
        resources = sorted(records(built), key=lambda entry: entry["urn"])
        result["scenarios"][scenario.name] = {"about": scenario.about, "resources": resources}
    return result


def write_manifest(data: Mapping[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def load_manifests() -> list[dict[str, Any]]:
    """Every recorded release, oldest first."""
    found = [json.loads(path.read_text()) for path in RELEASES.glob(f"*/{MANIFEST}")]
    return sorted(found, key=lambda m: tuple(int(p) for p in m["version"].split(".")))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.release", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    urns = commands.add_parser("urns", help="write the URN manifest of a checkout's release")
    urns.add_argument("--source", type=Path, default=ROOT, help="the checkout to record (default: this one)")
    urns.add_argument("--out", type=Path, help="where to write it (default: releases/<its version>/urns.json)")
    commands.add_parser("check", help="what upgrading each recorded release to this checkout's code does")
    options = parser.parse_args(argv)

    if options.command == "urns":
        data = manifest(options.source)
        out = options.out or RELEASES / data["version"] / MANIFEST
        write_manifest(data, out)
        count = sum(len(s["resources"]) for s in data["scenarios"].values())
        print(f"{out}: {count} resources in {len(data['scenarios'])} scenarios of {data['version']}")
        return 0

    from tools.upgrade import upgrade_report

    problems = 0
    today: dict[str, Any] = {}
    for old in load_manifests():
        lines = upgrade_report(old, today)
        problems += len(lines)
        print(f"from {old['version']}: " + ("in place" if not lines else f"{len(lines)} problem(s)"))
        for line in lines:
            print(f"  {line}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
