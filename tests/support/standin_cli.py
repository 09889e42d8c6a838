"""Stand-in `pulumi`, `aws` and `docker` executables for testing the lab's commands without them.

`StandIns(folder)` writes three small scripts into `folder`. Each one appends its argument list (and the
PULUMI_BACKEND_URL and passphrase file it was run with) to calls.jsonl and answers from state.json, which it
also updates the way the real CLI would: a stack selected with --create exists afterwards, `destroy` empties
it, `stack rm` removes it and refuses a stack that still has resources. As the real CLI does:

- the backend of a call is PULUMI_BACKEND_URL, else the stored login (`backend`, set by `pulumi login`);
  with neither, every command but `whoami` fails as a non-interactive CLI without a login does. The stacks
  live in one backend (`stacks_backend`, the first one used): a call to another one does not see them;
- a stack made in a file:// backend remembers its secrets passphrase; a later call without it, or with
  another one, fails as the real CLI does ("incorrect passphrase");
- `config set` / `config rm` (with --path for `name[0]`, `name.field`) also write the project's
  Pulumi.<stack>.yaml in the working directory, keys namespaced with the project's name.

A test says what must fail: `fail` holds command prefixes such as "pulumi destroy" or
"aws sts get-caller-identity"; such a call prints an error and exits 1, changing nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

LOG_GROUP_TYPE = "aws:cloudwatch/logGroup:LogGroup"

_SCRIPT = """#!{python}
import sys
sys.path.insert(0, {support!r})
import standin_cli
sys.exit(standin_cli.serve({program!r}, {folder!r}, sys.argv[1:]))
"""


_VALUE_OPTIONS = {"--stack", "-s", "--message", "-m", "--config-file", "--cwd", "-C", "--color"}
_SEGMENT = re.compile(r"\[(\d+)\]|\.([A-Za-z_][A-Za-z0-9_-]*)")
NO_LOGIN = "error: PULUMI_ACCESS_TOKEN must be set for login during non-interactive CLI sessions\n"


def _parse(argv: list[str]) -> tuple[list[str], dict[str, str], set[str]]:
    """(positional arguments, options with values, flags), as the real CLI's option parser splits them."""
    words: list[str] = []
    options: dict[str, str] = {}
    flags: set[str] = set()
    rest = iter(argv)
    for arg in rest:
        if arg == "--":
            words.extend(rest)
        elif arg in _VALUE_OPTIONS:
            options[arg] = next(rest, "")
        elif arg.startswith("-"):
            flags.add(arg.split("=", 1)[0])
        else:
            words.append(arg)
    return words, options, flags


def _passphrase() -> str | None:
    if os.environ.get("PULUMI_CONFIG_PASSPHRASE"):
        return os.environ["PULUMI_CONFIG_PASSPHRASE"]
    path = os.environ.get("PULUMI_CONFIG_PASSPHRASE_FILE")
    if path:
        try:
            return Path(path).read_text().rstrip("\n")
        except OSError:
            return None
    return None


def _fingerprint(passphrase: str) -> str:
    return hashlib.sha256(passphrase.encode()).hexdigest()[:16]


def _project_name() -> str:
    try:
        return str((yaml.safe_load(Path("Pulumi.yaml").read_text()) or {})["name"])
    except (OSError, KeyError, TypeError):
        return "project"


def _full_key(key: str) -> str:
    return key if ":" in key.split("[", 1)[0].split(".", 1)[0] else f"{_project_name()}:{key}"


def _path(key: str) -> tuple[str, list[int | str]]:
    name = re.split(r"[\[.]", key.split(":", 1)[-1], maxsplit=1)[0]
    head = key[: key.index(name) + len(name)]
    return head, [int(i) if i else f for i, f in _SEGMENT.findall(key[len(head):])]


def _typed(value: str) -> Any:
    # `--path` stores true/false and whole numbers typed, as the real CLI does.
    if value in ("true", "false"):
        return value == "true"
    return int(value) if re.fullmatch(r"-?\d+", value) else value


def _put(container: Any, segments: list[int | str], value: Any) -> Any:
    if not segments:
        return value
    head, rest = segments[0], segments[1:]
    if isinstance(head, int):
        items = list(container) if isinstance(container, list) else []
        if head > len(items):
            raise IndexError(head)
        if head == len(items):
            items.append(None)
        items[head] = _put(items[head], rest, value)
        return items
    fields = dict(container) if isinstance(container, dict) else {}
    fields[head] = _put(fields.get(head), rest, value)
    return fields


def _stack_file(stack: str) -> Path:
    return Path(f"Pulumi.{stack}.yaml")


def _write_config(stack: str, key: str, value: Any, path: bool, remove: bool) -> None:
    """What `pulumi config set/rm` does to Pulumi.<stack>.yaml."""
    file = _stack_file(stack)
    document = (yaml.safe_load(file.read_text()) if file.exists() else None) or {}
    config = document.setdefault("config", {}) or {}
    document["config"] = config
    if path:
        head, segments = _path(key)
        full = _full_key(head)
        if remove:
            config.pop(full, None)
        else:
            config[full] = _put(config.get(full), segments, _typed(value))
    elif remove:
        config.pop(_full_key(key), None)
    else:
        config[_full_key(key)] = value
    file.write_text(yaml.safe_dump(document, sort_keys=False))


def _pulumi(argv: list[str], state: dict[str, Any]) -> tuple[int, str, str]:
    words, options, flags = _parse(argv)
    backend = os.environ.get("PULUMI_BACKEND_URL") or state.get("backend")
    if words[:1] == ["whoami"]:
        if not backend:
            return 255, "", NO_LOGIN
        return 0, f"User: tester\nOrganizations: \nBackend URL: {backend}\n", ""
    if words[:1] == ["login"]:
        state["backend"] = words[1]
        return 0, f"Logged in to {words[1]}\n", ""
    if not backend:
        return 255, "", NO_LOGIN
    if state.get("stacks_backend") and state["stacks_backend"] != backend:
        if words[:2] == ["stack", "select"] and "--create" in flags:
            return 2, "", f"stand-in pulumi: stacks in a second backend ({backend}) are not emulated\n"
        visible: dict[str, Any] = {}
    else:
        visible = state.setdefault("stacks", {})
    stack_name = options.get("--stack") or options.get("-s")
    stack = visible.get(stack_name or "")
    if words[:2] == ["stack", "select"]:
        name = words[2]
        if name not in visible:
            if "--create" not in flags:
                return 255, "", f"error: no stack named '{name}' found\n"
            fresh: dict[str, Any] = {"config": {}, "outputs": {}, "resources": []}
            if backend.startswith("file://"):
                passphrase = _passphrase()
                if passphrase is None:
                    return 255, "", "error: passphrase must be set with PULUMI_CONFIG_PASSPHRASE or " \
                        "PULUMI_CONFIG_PASSPHRASE_FILE environment variables\n"
                fresh["passphrase"] = _fingerprint(passphrase)
            visible[name] = fresh
            state["stacks_backend"] = backend
        return 0, "", ""
    if stack is None and stack_name is not None:
        return 255, "", f"error: no stack named '{stack_name}' found\n"
    if stack is not None and stack.get("passphrase"):
        passphrase = _passphrase()
        if passphrase is None or _fingerprint(passphrase) != stack["passphrase"]:
            return 255, "", "error: incorrect passphrase, set PULUMI_CONFIG_PASSPHRASE to the correct passphrase\n"
    if words[:2] == ["config", "get"]:
        value = stack["config"].get(_full_key(words[2]), stack["config"].get(words[2]))
        if value is None:
            return 255, "", f"error: configuration key '{words[2]}' not found for stack '{stack_name}'\n"
        return 0, f"{value}\n", ""
    if words[:2] in (["config", "set"], ["config", "rm"]):
        remove, key = words[1] == "rm", words[2]
        try:
            _write_config(stack_name or "", key, None if remove else words[3], "--path" in flags, remove)
        except IndexError:
            return 255, "", f"error: invalid config key path {key}: index out of range\n"
        if remove:
            stack["config"].pop(_full_key(key), None)
        elif "--path" not in flags:
            stack["config"][_full_key(key)] = words[3]
        return 0, "", ""
    if words[:2] == ["stack", "output"]:
        return 0, json.dumps(stack["outputs"]), ""
    if words[:2] == ["stack", "export"]:
        return 0, json.dumps({"version": 3, "deployment": {"resources": stack["resources"]}}), ""
    if words[:1] == ["up"]:
        stack["resources"] = state.get("resources_after_up", [])
        stack["outputs"] = state.get("outputs_after_up", {})
        return 0, "Update complete (stand-in)\n", ""
    if words[:1] == ["destroy"]:
        stack["resources"], stack["outputs"] = [], {}
        return 0, "Destroy complete (stand-in)\n", ""
    if words[:2] == ["stack", "rm"]:
        name = words[2]
        if visible[name]["resources"]:
            return 255, "", f"error: '{name}' still has resources; removal rejected\n"
        del visible[name]
        return 0, f"Stack '{name}' has been removed!\n", ""
    return 2, "", f"stand-in pulumi: unexpected arguments {argv}\n"


def _aws(argv: list[str], state: dict[str, Any]) -> tuple[int, str, str]:
    if argv[:2] == ["sts", "get-caller-identity"]:
        return 0, state.get("identity", "arn:aws:iam::123456789012:user/tester") + "\n", ""
    if argv[:3] == ["configure", "get", "region"]:
        region = state.get("aws_configured_region")
        return (0, f"{region}\n", "") if region else (1, "", "")
    return 2, "", f"stand-in aws: unexpected arguments {argv}\n"


def _docker(argv: list[str], state: dict[str, Any]) -> tuple[int, str, str]:
    return (0, "Server: stand-in\n", "") if argv[:1] == ["info"] else (2, "", f"unexpected {argv}\n")


def serve(program: str, folder: str, argv: list[str]) -> int:
    """What one stand-in run does: log, maybe fail on command, answer, save the state."""
    base = Path(folder)
    with open(base / "calls.jsonl", "a") as log:
        entry = {
            "argv": [program, *argv],
            "passphrase_file": os.environ.get("PULUMI_CONFIG_PASSPHRASE_FILE"),
            "backend_url": os.environ.get("PULUMI_BACKEND_URL"),
        }
        log.write(json.dumps(entry) + "\n")
    state = json.loads((base / "state.json").read_text())
    command = " ".join([program, *argv])
    if any(command.startswith(prefix) for prefix in state.get("fail", [])):
        sys.stderr.write(f"error: stand-in {program} fails on command: {command}\n")
        return 1
    code, out, err = {"pulumi": _pulumi, "aws": _aws, "docker": _docker}[program](argv, state)
    (base / "state.json").write_text(json.dumps(state))
    sys.stdout.write(out)
    sys.stderr.write(err)
    return code


@dataclass
class StandIns:
    """The stand-in executables in `folder`, and what they were asked."""

    folder: Path

    def install(self, programs: tuple[str, ...] = ("pulumi", "aws", "docker"), **state: Any) -> StandIns:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "state.json").write_text(json.dumps(state))
        (self.folder / "calls.jsonl").write_text("")
        for program in programs:
            script = self.folder / program
            script.write_text(
                _SCRIPT.format(
                    python=sys.executable, support=str(Path(__file__).parent), program=program, folder=str(self.folder)
                )
            )
            script.chmod(0o755)
        return self

    @property
    def state(self) -> dict[str, Any]:
        return json.loads((self.folder / "state.json").read_text())

    def calls(self, program: str | None = None) -> list[list[str]]:
        entries = [json.loads(line) for line in (self.folder / "calls.jsonl").read_text().splitlines()]
        return [e["argv"] for e in entries if program is None or e["argv"][0] == program]

    def entries(self, program: str = "pulumi") -> list[dict[str, Any]]:
        """Every call of `program`: argv, and the PULUMI_BACKEND_URL and passphrase file it ran with."""
        entries = [json.loads(line) for line in (self.folder / "calls.jsonl").read_text().splitlines()]
        return [e for e in entries if e["argv"][0] == program]

    def passphrase_files(self) -> set[str | None]:
        return {e["passphrase_file"] for e in self.entries("pulumi")}
