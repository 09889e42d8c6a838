"""The Pulumi side of `make up` / `make down`: project, stack settings, backend, passphrase, the CLI itself."""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from components.stack_config import default_cluster_name

from .errors import BAD_INPUT, STEP_FAILED, LabError
from .process import Result, Runner

Say = Callable[[str], None]

# Pulumi stack names: letters, digits, '-', '_', '.' (at most 100); an org/project/ prefix is the backend's.
_STACK_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


def check_stack_name(stack: str) -> str:
    if not _STACK_NAME.match(stack):
        raise LabError(
            f"STACK={stack!r} is not a Pulumi stack name: use letters, digits, '-', '_' or '.', e.g. STACK=qa",
            BAD_INPUT,
        )
    return stack


@dataclass(frozen=True)
class Project:
    """The Pulumi project folder (where Pulumi.yaml is) and the local state `make up` keeps there."""

    root: Path
    name: str

    @classmethod
    def load(cls, root: Path) -> Project:
        try:
            name = (yaml.safe_load((root / "Pulumi.yaml").read_text()) or {})["name"]
        except (OSError, KeyError, TypeError, yaml.YAMLError) as err:
            raise LabError(f"no Pulumi project in {root} (Pulumi.yaml with a name): {err}", BAD_INPUT) from err
        return cls(root=root, name=str(name))

    @property
    def state_dir(self) -> Path:
        """The local file backend and the generated passphrases (git-ignored)."""
        return self.root / ".pulumi-state"

    def passphrase_file(self, stack: str) -> Path:
        return self.state_dir / f"passphrase-{stack}"

    def stack_file(self, stack: str) -> Path:
        return self.root / f"Pulumi.{stack}.yaml"


@dataclass(frozen=True)
class StackSettings:
    """The stack's settings as Pulumi.<stack>.yaml holds them, read without the Pulumi CLI, so the checks
    can use them before any login. Unset keys give the same defaults Pulumi.yaml declares."""

    project: str
    stack: str
    values: Mapping[str, Any]

    @classmethod
    def read(cls, project: Project, stack: str) -> StackSettings:
        path = project.stack_file(stack)
        if not path.exists():
            return cls(project.name, stack, {})
        try:
            config = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
        except (OSError, AttributeError, yaml.YAMLError) as err:
            raise LabError(f"{path.name} cannot be read ({err}): fix or remove it", BAD_INPUT) from err
        if not isinstance(config, dict):
            raise LabError(f"{path.name}: 'config' is not a mapping of settings", BAD_INPUT)
        return cls(project.name, stack, config)

    def _get(self, key: str) -> Any:
        value = self.values.get(key if ":" in key else f"{self.project}:{key}")
        return None if isinstance(value, dict) else value  # {"secure": ...}: not one of the keys read here

    def text(self, key: str, default: str = "") -> str:
        value = self._get(key)
        return default if value is None else str(value)

    def flag(self, key: str, default: bool = False) -> bool:
        value = self._get(key)
        if isinstance(value, bool):
            return value
        return default if value is None else str(value).strip().lower() == "true"

    def strings(self, key: str, default: Sequence[str] = ()) -> list[str]:
        value = self._get(key)
        if isinstance(value, str):  # `pulumi config set key '["a"]'` stores the JSON text
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                return [value]
        if not isinstance(value, list):
            return list(default)
        return [str(item) for item in value]

    @property
    def cluster_name_is_derived(self) -> bool:
        return not self.text("clusterName")

    @property
    def cluster_name(self) -> str:
        """The cluster the stack makes: clusterName, else <project>-<stack> (as the program derives it)."""
        return self.text("clusterName") or default_cluster_name(self.project, self.stack)

    @property
    def needs_docker(self) -> bool:
        return not self.text("forwarderImage") and self.text("forwarderBuild", "docker") == "docker"


def log_group_name(cluster_name: str) -> str:
    """The group EKS writes the control-plane logs to (and recreates after the cluster is gone)."""
    return f"/aws/eks/{cluster_name}/cluster"


class Pulumi:
    """The Pulumi CLI for one stack."""

    def __init__(self, runner: Runner, stack: str) -> None:
        self.runner = runner
        self.stack = stack

    def _run(self, *args: str) -> Result:
        return self.runner.capture(["pulumi", *args])

    def _checked(self, *args: str) -> str:
        result = self._run(*args)
        if not result.ok:
            raise LabError(f"`pulumi {' '.join(args)}` failed: {result.reason()}", STEP_FAILED)
        return result.stdout

    def backend_url(self) -> str | None:
        """The backend the user is logged in to, or None. Never starts an interactive login."""
        result = self._run("whoami", "--verbose")
        for line in result.stdout.splitlines() if result.ok else []:
            if line.startswith("Backend URL:"):
                return line.split(":", 1)[1].strip() or None
        return None

    def login(self, url: str) -> None:
        self._checked("login", url)

    def select(self, create: bool) -> bool:
        """Select the stack (creating it if `create`); False if it does not exist."""
        if create:
            self._checked("stack", "select", "--create", self.stack)
            return True
        return self._run("stack", "select", self.stack).ok

    def config_get(self, key: str) -> str | None:
        result = self._run("config", "get", key, "--stack", self.stack)
        if not result.ok:  # unset (or unreadable): the caller decides what that means
            return None
        return result.stdout.strip() or None

    def config_set(self, key: str, value: str) -> None:
        self._checked("config", "set", key, value, "--stack", self.stack)

    def outputs(self) -> dict[str, Any]:
        """The stack's outputs (secrets masked); empty when it has none or they cannot be read."""
        result = self._run("stack", "output", "--json", "--stack", self.stack)
        try:
            outputs = json.loads(result.stdout) if result.ok else {}
        except json.JSONDecodeError:
            return {}
        return outputs if isinstance(outputs, dict) else {}

    def resource_ids(self, resource_type: str) -> set[str]:
        """IDs of the resources of `resource_type` the stack's state holds."""
        state = json.loads(self._checked("stack", "export", "--stack", self.stack) or "{}")
        resources = (state.get("deployment") or {}).get("resources") or []
        return {str(r.get("id")) for r in resources if r.get("type") == resource_type and r.get("id")}

    def up(self, flags: Sequence[str]) -> tuple[int, bool]:
        return self.runner.interactive(["pulumi", "up", "--stack", self.stack, *flags])

    def destroy(self, flags: Sequence[str]) -> tuple[int, bool]:
        return self.runner.interactive(["pulumi", "destroy", "--stack", self.stack, *flags])

    def remove(self) -> None:
        # --preserve-config: Pulumi.<stack>.yaml keeps the user's settings for the next `make up`.
        self._checked("stack", "rm", self.stack, "--yes", "--preserve-config")


def select_backend(pulumi: Pulumi, project: Project, say: Say) -> str:
    """The backend in use; without one, log in to a file backend in the project (no account needed)."""
    backend = pulumi.runner.env.get("PULUMI_BACKEND_URL") or pulumi.backend_url()
    if not backend:
        project.state_dir.mkdir(parents=True, exist_ok=True)
        backend = f"file://{project.state_dir}"
        say(f"Not logged in to a Pulumi backend: using the local file backend {backend}")
        pulumi.login(backend)
    say(f"Pulumi backend: {backend}")
    return backend


def select_passphrase(runner: Runner, backend: str, project: Project, stack: str, create: bool, say: Say) -> None:
    """Stacks in a file backend encrypt their secrets (kubeconfig, UI password) with a passphrase.

    The caller's PULUMI_CONFIG_PASSPHRASE(_FILE) if set; otherwise the stack's generated one in the
    git-ignored state folder, generated only by `up` (`down` with a new one could not decrypt anything)."""
    if not backend.startswith("file://"):
        return
    if runner.env.get("PULUMI_CONFIG_PASSPHRASE") or runner.env.get("PULUMI_CONFIG_PASSPHRASE_FILE"):
        say("Secrets passphrase: from PULUMI_CONFIG_PASSPHRASE(_FILE)")
        return
    path = project.passphrase_file(stack)
    if path.exists():
        say(f"Secrets passphrase: {path}")
    elif not create:
        raise LabError(
            f"no secrets passphrase for stack {stack}: set PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE) "
            "to the one it was created with",
            BAD_INPUT,
        )
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(32) + "\n")
        say(f"Generated a secrets passphrase for stack {stack} in {path} (git-ignored).")
        say("Keep it: without it the stack's secrets cannot be read, nor the stack destroyed by Pulumi.")
    runner.env["PULUMI_CONFIG_PASSPHRASE_FILE"] = str(path)


def stack_region(pulumi: Pulumi, set_if_missing: bool, say: Say) -> str:
    """aws:region of the stack; `up` sets it from the AWS environment when the stack has none."""
    region = pulumi.config_get("aws:region")
    if region:
        return region
    env = pulumi.runner.env
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if not region:
        answer = pulumi.runner.capture(["aws", "configure", "get", "region"])
        region = answer.stdout.strip() if answer.ok else ""
    if not region:
        raise LabError(
            f"no AWS region: run 'pulumi config set aws:region us-west-2 --stack {pulumi.stack}' "
            "(or export AWS_REGION) and try again",
            BAD_INPUT,
        )
    if set_if_missing:
        pulumi.config_set("aws:region", region)
        say(f"Set aws:region to {region} (from your AWS environment)")
    return region
