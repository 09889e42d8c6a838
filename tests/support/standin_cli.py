"""Stand-in `pulumi`, `aws` and `docker` executables for testing `make up` / `make down` without them.

`StandIns(folder)` writes three small scripts into `folder`. Each one appends its argument list to
calls.jsonl and answers from state.json, which it also updates the way the real CLI would (a stack
selected with --create exists afterwards, `destroy` empties it, `stack rm` removes it and refuses a stack
that still has resources). A test says what must fail: `fail` holds command prefixes such as
"pulumi destroy" or "aws sts get-caller-identity"; such a call prints an error and exits 1, changing nothing.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOG_GROUP_TYPE = "aws:cloudwatch/logGroup:LogGroup"

_SCRIPT = """#!{python}
import sys
sys.path.insert(0, {support!r})
import standin_cli
sys.exit(standin_cli.serve({program!r}, {folder!r}, sys.argv[1:]))
"""


def _option(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv and argv.index(name) + 1 < len(argv) else None


def _pulumi(argv: list[str], state: dict[str, Any]) -> tuple[int, str, str]:
    stacks: dict[str, Any] = state.setdefault("stacks", {})
    stack_name = _option(argv, "--stack")
    stack = stacks.get(stack_name or "")
    words = [a for a in argv if not a.startswith("-")]
    if argv[:2] == ["whoami", "--verbose"]:
        if not state.get("backend"):
            return 255, "", "error: PULUMI_ACCESS_TOKEN must be set for login during non-interactive CLI sessions\n"
        return 0, f"User: tester\nOrganizations: \nBackend URL: {state['backend']}\n", ""
    if words[:1] == ["login"]:
        state["backend"] = words[1]
        return 0, f"Logged in to {words[1]}\n", ""
    if words[:2] == ["stack", "select"]:
        name = words[2]
        if name not in stacks:
            if "--create" not in argv:
                return 255, "", f"error: no stack named '{name}' found\n"
            stacks[name] = {"config": {}, "outputs": {}, "resources": []}
        return 0, "", ""
    if stack is None and stack_name is not None:
        return 255, "", f"error: no stack named '{stack_name}' found\n"
    if words[:2] == ["config", "get"]:
        value = stack["config"].get(words[2])
        if value is None:
            return 255, "", f"error: configuration key '{words[2]}' not found for stack '{stack_name}'\n"
        return 0, f"{value}\n", ""
    if words[:2] == ["config", "set"]:
        stack["config"][words[2]] = words[3]
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
        if stacks[name]["resources"]:
            return 255, "", f"error: '{name}' still has resources; removal rejected\n"
        del stacks[name]
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
        entry = {"argv": [program, *argv], "passphrase_file": os.environ.get("PULUMI_CONFIG_PASSPHRASE_FILE")}
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

    def passphrase_files(self) -> set[str | None]:
        entries = [json.loads(line) for line in (self.folder / "calls.jsonl").read_text().splitlines()]
        return {e["passphrase_file"] for e in entries if e["argv"][0] == "pulumi"}
