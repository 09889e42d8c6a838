"""The Pulumi side of the lab's commands: project, stack settings, backend, passphrase, the CLI itself.

The backend is chosen per command, never with `pulumi login` (which would change the backend of every other
Pulumi project on the machine): every pulumi command labctl runs carries PULUMI_BACKEND_URL, which the Pulumi
CLI puts before both Pulumi.yaml's `backend.url` and the stored login (pulumi/pulumi pkg/workspace/creds.go).
Without a backend of the user's own, the stacks live in this clone (`.pulumi-state/`, git-ignored), and a
mark there keeps every later command on it, whatever the user logs in to afterwards.

Kept light (PyYAML and the standard library): `labctl env` runs before every workshop command.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import BAD_INPUT, STEP_FAILED, LabError
from .process import Result, Runner

Say = Callable[[str], None]

# Pulumi stack names: letters, digits, '-', '_', '.' (at most 100); an org/project/ prefix is the backend's.
_STACK_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


BACKEND_URL = "PULUMI_BACKEND_URL"
PASSPHRASE = "PULUMI_CONFIG_PASSPHRASE"  # noqa: S105 - the variable's name, not a password
PASSPHRASE_FILE = "PULUMI_CONFIG_PASSPHRASE_FILE"  # noqa: S105 - the variable's name


def check_stack_name(stack: str) -> str:
    if not _STACK_NAME.match(stack):
        raise LabError(
            f"STACK={stack!r} is not a Pulumi stack name: use letters, digits, '-', '_' or '.', e.g. STACK=qa",
            BAD_INPUT,
        )
    return stack


def stack_arg(stack: str) -> str:
    """What a make command needs to name `stack` (nothing for the default, dev)."""
    return "" if stack == "dev" else f" STACK={stack}"


def config_hint(stack: str, key: str, value: str, quote: bool = True) -> str:
    """The `make config` command that sets `key` to `value` (`quote=False` keeps a placeholder such as <name>)."""
    shown_key, shown_value = (shlex.quote(key), shlex.quote(value)) if quote else (key, value)
    return f"make config KEY={shown_key} VALUE={shown_value}{stack_arg(stack)}"


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

    @property
    def local_backend_url(self) -> str:
        return f"file://{self.state_dir}"

    @property
    def local_backend_mark(self) -> Path:
        """Present once a command put this clone's stacks in its own backend: they stay there."""
        return self.state_dir / "local-backend"

    def uses_local_backend(self) -> bool:
        return self.local_backend_mark.is_file()

    def mark_local_backend(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if not self.local_backend_mark.exists():
            self.local_backend_mark.write_text(
                "This clone's Pulumi stacks live in this folder (the backend "
                f"{self.local_backend_url}): the lab's commands pass it to pulumi as PULUMI_BACKEND_URL.\n"
                "To keep the stacks elsewhere, run 'make down' first, then remove this file and log in "
                "(or set PULUMI_BACKEND_URL) before the next 'make up'.\n"
            )

    def passphrase_file(self, stack: str) -> Path:
        return self.state_dir / f"passphrase-{stack}"

    def settings_schema(self) -> dict[str, Mapping[str, Any]]:
        """Pulumi.yaml's `config` block: each setting's type, items, default (empty when it declares none)."""
        try:
            document = yaml.safe_load((self.root / "Pulumi.yaml").read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise LabError(f"Pulumi.yaml cannot be read: {err}", BAD_INPUT) from err
        config = document.get("config") if isinstance(document, dict) else None
        return {str(k): v for k, v in (config or {}).items() if isinstance(v, dict)}

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
        from components.stack_config import default_cluster_name  # heavy (pulumi): only where needed

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

    def config_set(self, key: str, value: str, path: bool = False) -> None:
        # `--` ends the options: a value may start with '-'.
        self._checked("config", "set", *(["--path"] if path else []), "--stack", self.stack, "--", key, value)

    def config_remove(self, key: str, path: bool = False) -> None:
        self._checked("config", "rm", *(["--path"] if path else []), "--stack", self.stack, "--", key)

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
    """The backend of this clone's stacks, set as PULUMI_BACKEND_URL for every later pulumi command.

    In this order: PULUMI_BACKEND_URL as the user set it; this clone's own backend once a command made it;
    the backend the user is logged in to; else this clone's own backend, made now (no account needed).
    Never `pulumi login`: that would move every other Pulumi project on the machine too."""
    env = pulumi.runner.env
    local = project.local_backend_url
    backend, whose = env.get(BACKEND_URL), "from PULUMI_BACKEND_URL"
    if not backend and project.uses_local_backend():
        backend, whose = local, "this clone's own"
    if not backend:
        backend, whose = pulumi.backend_url(), "your Pulumi login"
        if backend and backend.rstrip("/") == local:
            # An earlier version ran `pulumi login` here: keep the stacks where they are, without the login.
            project.mark_local_backend()
            say(
                f"Your Pulumi login points at this clone's backend ({backend}, from an earlier 'make up'); the lab "
                "no longer needs it. 'pulumi logout' if other projects should not use it."
            )
    if not backend:
        project.mark_local_backend()
        backend, whose = local, "this clone's own"
        say(f"No Pulumi login: the stacks live in this clone, {project.state_dir} (git-ignored)")
    env[BACKEND_URL] = backend
    say(f"Pulumi backend: {backend} ({whose})")
    return backend


def own_env(project: Project, stack: str, environ: Mapping[str, str]) -> dict[str, str]:
    """What the user's own pulumi commands for `stack` need on top of `environ`, as the lab's commands use it.

    Reads files only (no pulumi call): the mark of this clone's backend and the stack's generated passphrase.
    Nothing for what `environ` already sets, nor for a backend the user's login provides."""
    needed: dict[str, str] = {}
    if not environ.get(BACKEND_URL) and project.uses_local_backend():
        needed[BACKEND_URL] = project.local_backend_url
    passphrase = project.passphrase_file(stack)
    if not (environ.get(PASSPHRASE) or environ.get(PASSPHRASE_FILE)) and passphrase.is_file():
        needed[PASSPHRASE_FILE] = str(passphrase)
    return needed


def export_lines(needed: Mapping[str, str]) -> list[str]:
    """`export NAME=value` for each variable, quoted for a POSIX shell."""
    return [f"export {name}={shlex.quote(value)}" for name, value in needed.items()]


def select_passphrase(runner: Runner, backend: str, project: Project, stack: str, create: bool, say: Say) -> None:
    """Stacks in a file backend encrypt their secrets (kubeconfig, UI password) with a passphrase.

    The caller's PULUMI_CONFIG_PASSPHRASE(_FILE) if set; otherwise the stack's generated one in the
    git-ignored state folder, generated only by `up` (`down` with a new one could not decrypt anything)."""
    if not backend.startswith("file://"):
        return
    if runner.env.get(PASSPHRASE) or runner.env.get(PASSPHRASE_FILE):
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
    runner.env[PASSPHRASE_FILE] = str(path)


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
            f"no AWS region: run '{config_hint(pulumi.stack, 'aws:region', 'us-west-2')}' "
            "(or export AWS_REGION) and try again",
            BAD_INPUT,
        )
    if set_if_missing:
        pulumi.config_set("aws:region", region)
        say(f"Set aws:region to {region} (from your AWS environment)")
    return region
