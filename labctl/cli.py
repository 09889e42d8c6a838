"""`python -m labctl up|down|config|stack|env --stack NAME`: what `make up`, `make down`, `make config`,
`make stack` and `make env` run.

  up       check what is needed, open the stack, set its region, clear a leftover log group, pulumi up
  down     pulumi destroy, wait until EKS stops recreating the log group, remove the stack
  config   set one setting, before or after the first `up`: config KEY VALUE (or KEY and VALUE from the
           environment, as make passes them). The stack is opened as `up` opens it (same backend,
           passphrase and stack), so nothing has to be logged in to first.
             KEY: a Pulumi.yaml setting (forwarderBuild) or an AWS provider key (aws:region); with a
                  path, one item of a list (extraLogTypes[0]) or object (aws:assumeRoles[0].roleArn),
                  as `pulumi config set --path` reads it
             VALUE: of the setting's type; a whole list as JSON: '["api","scheduler"]'
  stack    open (create) the stack as `up` does, and print what your own pulumi commands need
  env      print that only, as shell exports (`eval "$(make -s env)"`); --assignments prints
           NAME=value pairs for a command's prefix. Makes nothing, runs no pulumi.

Settings from the environment (make passes its command-line variables on):
  PULUMI_FLAGS                 extra arguments for pulumi up / destroy, split as a shell would
                               (`make up PULUMI_FLAGS='--yes --message "two words"'`)
  LOG_GROUP_QUIET_SECONDS      how long the log group must stay gone after `destroy` (default 300)
  LOG_GROUP_MAX_WAIT_SECONDS   the most `make down` waits for that (default 1200)
  KEY, VALUE                   the setting `make config` sets

Exit codes: 0 done, 1 a step failed, 2 bad input (named), 3 something to install first, 130 interrupted.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import BAD_INPUT, INTERRUPTED, LabError
from .stack import Project, check_stack_name, export_lines, own_env

if TYPE_CHECKING:
    from .commands import Options
    from .log_groups import LogGroups

PROJECT_ROOT = Path(__file__).resolve().parent.parent
COMMANDS = ("up", "down", "config", "stack", "env")


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def aws_log_groups(region: str, profile: str | None) -> LogGroups:
    """Real clients, credentials from the standard chain (whatever the user has now), the stack's region."""
    import boto3  # imported here: `labctl env` runs before every workshop command and stays light
    from botocore.config import Config

    from .log_groups import LogGroups

    session = boto3.Session(region_name=region, profile_name=profile)
    config = Config(retries={"mode": "standard", "max_attempts": 5})
    return LogGroups(session.client("logs", config=config), session.client("eks", config=config))


def _seconds(environ: Mapping[str, str], variable: str, default: float) -> float:
    text = environ.get(variable, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise LabError(f"{variable}={text!r} must be a number of seconds, 0 or more", BAD_INPUT)
    return value


def options_from(args: argparse.Namespace, environ: Mapping[str, str]) -> Options:
    from .commands import Options
    from .log_groups import DEFAULT_MAX_WAIT_SECONDS, DEFAULT_QUIET_SECONDS, Wait

    try:
        flags = tuple(shlex.split(environ.get("PULUMI_FLAGS", "")))
    except ValueError as err:  # an unclosed quote
        raise LabError(f"PULUMI_FLAGS cannot be split into arguments ({err}): check its quotes", BAD_INPUT) from err
    quiet = _seconds(environ, "LOG_GROUP_QUIET_SECONDS", DEFAULT_QUIET_SECONDS)
    most = _seconds(environ, "LOG_GROUP_MAX_WAIT_SECONDS", max(DEFAULT_MAX_WAIT_SECONDS, quiet))
    if most < quiet:
        raise LabError(
            f"LOG_GROUP_MAX_WAIT_SECONDS ({most:g}) is shorter than LOG_GROUP_QUIET_SECONDS ({quiet:g}): "
            "the wait could never succeed",
            BAD_INPUT,
        )
    return Options(stack=check_stack_name(args.stack), pulumi_flags=flags, wait=Wait(quiet, most))


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(prog="labctl", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    cli.add_argument("command", choices=COMMANDS)
    cli.add_argument("key", nargs="?", help="config: the setting (default: $KEY)")
    cli.add_argument("value", nargs="?", help="config: its value (default: $VALUE)")
    cli.add_argument("--stack", default="dev", help="Pulumi stack (default: dev)")
    cli.add_argument(
        "--project-dir", type=Path, default=PROJECT_ROOT, help="folder of Pulumi.yaml (default: %(default)s)"
    )
    cli.add_argument(
        "--assignments", action="store_true", help="env: NAME=value pairs on one line instead of exports"
    )
    return cli


def print_env(project: Project, stack: str, environ: Mapping[str, str], assignments: bool) -> None:
    needed = own_env(project, stack, environ)
    if assignments:
        print(" ".join(f"{name}={shlex.quote(value)}" for name, value in needed.items()), flush=True)
    else:
        print("".join(f"{line}\n" for line in export_lines(needed)), end="", flush=True)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ
    args = parser().parse_intermixed_args(argv)  # `config --stack qa KEY VALUE` as well as `config KEY VALUE`
    try:
        if args.command not in ("config",) and (args.key is not None or args.value is not None):
            raise LabError(f"'{args.command}' takes no KEY or VALUE (they are for 'config')", BAD_INPUT)
        stack = check_stack_name(args.stack)
        project = Project.load(args.project_dir.resolve())
        if args.command == "env":
            print_env(project, stack, environ, args.assignments)
            return 0
        run(args, stack, project, environ)
    except LabError as err:
        print(f"error: {err.message}", file=sys.stderr, flush=True)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"\ninterrupted: run 'make {args.command}' again to go on", file=sys.stderr, flush=True)
        return INTERRUPTED
    return 0


def run(args: argparse.Namespace, stack: str, project: Project, environ: Mapping[str, str]) -> None:
    from .commands import Context, down, prepare_stack, set_config, up
    from .process import Runner

    options = options_from(args, environ) if args.command in ("up", "down") else None
    context = Context(Runner(environ, project.root), project, aws_log_groups, say, dict(environ))
    if args.command == "config":
        key = args.key if args.key is not None else environ.get("KEY")
        value = args.value if args.value is not None else environ.get("VALUE")
        set_config(context, stack, key, value)
    elif args.command == "stack":
        prepare_stack(context, stack)
    elif options is not None:
        (up if args.command == "up" else down)(context, options)
