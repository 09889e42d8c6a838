"""What the lab's commands need on the machine, checked before anything else and reported all at once."""

from __future__ import annotations

from .errors import MISSING_PREREQUISITE, LabError
from .process import Runner
from .stack import config_hint

PULUMI = "Pulumi CLI: install it with 'curl -fsSL https://get.pulumi.com | sh' or 'brew install pulumi/tap/pulumi' \
(https://www.pulumi.com/docs/install/)"
AWS_CLI = "AWS CLI v2: https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html \
(the cluster's kubeconfig runs 'aws eks get-token')"


def check_prerequisites(runner: Runner, command: str, stack: str, needs_docker: bool, needs_aws: bool = True) -> str:
    """Raise naming everything that is missing; return the AWS identity (ARN) the commands will act as.

    `needs_aws=False` (make config, make stack: the stack's settings only) checks the Pulumi CLI alone."""
    missing: list[str] = []
    identity = ""
    if runner.which("pulumi") is None:
        missing.append(PULUMI)
    if needs_aws and runner.which("aws") is None:
        missing.append(AWS_CLI)
    elif needs_aws:
        answer = runner.capture(["aws", "sts", "get-caller-identity", "--output", "text", "--query", "Arn"])
        if answer.ok:
            identity = answer.stdout.strip()
        else:
            missing.append(
                f"AWS credentials: 'aws sts get-caller-identity' failed: {answer.reason()} -- run 'aws configure' "
                "or 'aws sso login', or set AWS_PROFILE"
            )
    # Docker only builds the forwarder image: not needed with forwarderImage or forwarderBuild=source.
    if needs_docker:
        switch = f"run '{config_hint(stack, 'forwarderBuild', 'source')}' to run the forwarder without an image"
        if runner.which("docker") is None:
            missing.append(f"Docker (builds the forwarder image): install Docker, or {switch}")
        elif not runner.capture(["docker", "info"]).ok:
            missing.append(f"a running Docker engine (builds the forwarder image): start Docker, or {switch}")
    if missing:
        lines = "\n".join(f"  - {item}" for item in missing)
        raise LabError(f"missing for 'make {command}':\n{lines}", MISSING_PREREQUISITE)
    return identity
