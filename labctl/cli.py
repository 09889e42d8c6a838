"""`python -m labctl up|down --stack NAME`: what `make up` / `make down` run.

Settings from the environment (make passes its command-line variables on):
  PULUMI_FLAGS                 extra arguments for pulumi up / destroy, split as a shell would
                               (`make up PULUMI_FLAGS='--yes --message "two words"'`)
  LOG_GROUP_QUIET_SECONDS      how long the log group must stay gone after `destroy` (default 300)
  LOG_GROUP_MAX_WAIT_SECONDS   the most `make down` waits for that (default 1200)
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import boto3
from botocore.config import Config

from .commands import Context, Options, down, up
from .errors import BAD_INPUT, INTERRUPTED, LabError
from .log_groups import DEFAULT_MAX_WAIT_SECONDS, DEFAULT_QUIET_SECONDS, LogGroups, Wait
from .process import Runner
from .stack import Project, check_stack_name

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def aws_log_groups(region: str, profile: str | None) -> LogGroups:
    """Real clients, credentials from the standard chain (whatever the user has now), the stack's region."""
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
    cli.add_argument("command", choices=("up", "down"))
    cli.add_argument("--stack", default="dev", help="Pulumi stack (default: dev)")
    cli.add_argument(
        "--project-dir", type=Path, default=PROJECT_ROOT, help="folder of Pulumi.yaml (default: %(default)s)"
    )
    return cli


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ
    args = parser().parse_args(argv)
    try:
        options = options_from(args, environ)
        project = Project.load(args.project_dir.resolve())
        context = Context(Runner(environ, project.root), project, aws_log_groups, say)
        (up if args.command == "up" else down)(context, options)
    except LabError as err:
        print(f"error: {err.message}", file=sys.stderr, flush=True)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"\ninterrupted: run 'make {args.command}' again to go on", file=sys.stderr, flush=True)
        return INTERRUPTED
    return 0
