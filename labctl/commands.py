"""The two commands, step by step. Each step can be run again: an interrupted command is simply repeated."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import INTERRUPTED, STEP_FAILED, LabError
from .log_groups import LogGroups, Owner, Wait, clear_leftover_before_up, remove_after_destroy
from .prereqs import check_prerequisites
from .process import Runner
from .stack import (
    Project,
    Pulumi,
    Say,
    StackSettings,
    log_group_name,
    select_backend,
    select_passphrase,
    stack_region,
)

LOG_GROUP_TYPE = "aws:cloudwatch/logGroup:LogGroup"
OPEN_TO_ALL = "0.0.0.0/0"

# (region, profile or None) -> the CloudWatch Logs and EKS calls for that account and region.
LogGroupsFactory = Callable[[str, str | None], LogGroups]


@dataclass(frozen=True)
class Options:
    stack: str
    pulumi_flags: tuple[str, ...] = ()
    """Extra arguments for `pulumi up` / `pulumi destroy` (PULUMI_FLAGS, split like a shell would)."""
    wait: Wait = field(default_factory=Wait)


@dataclass(frozen=True)
class Context:
    runner: Runner
    project: Project
    log_groups: LogGroupsFactory
    say: Say


def up(ctx: Context, options: Options) -> None:
    stack, say = options.stack, ctx.say
    settings = StackSettings.read(ctx.project, stack)
    identity = check_prerequisites(ctx.runner, "up", stack, settings.needs_docker)
    say(f"Prerequisites found; AWS identity: {identity}")

    pulumi = Pulumi(ctx.runner, stack)
    backend = select_backend(pulumi, ctx.project, say)
    select_passphrase(ctx.runner, backend, ctx.project, stack, create=True, say=say)
    pulumi.select(create=True)
    say(f"Stack: {stack}")
    region = stack_region(pulumi, set_if_missing=True, say=say)
    cluster = settings.cluster_name
    derived = " (from project and stack; set clusterName to choose another)" if settings.cluster_name_is_derived else ""
    say(f"Region: {region}; cluster: {cluster}{derived}")
    running = pulumi.outputs().get("clusterName")
    if running and running != cluster:
        # E.g. a stack brought up when the default name was not yet derived from the stack.
        say(
            f"WARNING: this stack's cluster is {running}, but its settings now name {cluster}: 'pulumi up' would "
            f"replace the cluster and everything on it. To keep it: pulumi config set clusterName {running} "
            f"--stack {stack}, then run make up again (or answer 'no' to the preview now)."
        )

    group = log_group_name(cluster)
    clear_leftover_before_up(
        ctx.log_groups(region, settings.text("aws:profile") or None),
        group,
        cluster,
        Owner(ctx.project.name, stack),
        managed=group in pulumi.resource_ids(LOG_GROUP_TYPE),
        name_is_derived=settings.cluster_name_is_derived,
        say=say,
    )

    _check_step(
        "up",
        pulumi.up(options.pulumi_flags),
        f"what it created so far stays in the stack. Fix the cause and run 'make up{_stack_arg(stack)}' again, "
        f"or 'make down{_stack_arg(stack)}' to remove it.",
        stack,
    )
    say("The lab is up. Next steps:")
    print(next_steps(ctx.runner, settings, region), flush=True)


def down(ctx: Context, options: Options) -> None:
    stack, say = options.stack, ctx.say
    settings = StackSettings.read(ctx.project, stack)
    check_prerequisites(ctx.runner, "down", stack, needs_docker=False)

    pulumi = Pulumi(ctx.runner, stack)
    backend = select_backend(pulumi, ctx.project, say)
    if not pulumi.select(create=False):
        say(f"No stack {stack} in {backend}: nothing to destroy.")
        return
    select_passphrase(ctx.runner, backend, ctx.project, stack, create=False, say=say)
    region = stack_region(pulumi, set_if_missing=False, say=say)
    # The names the stack really used (its outputs), else what its settings give (an `up` that stopped early).
    outputs = pulumi.outputs()
    cluster = str(outputs.get("clusterName") or settings.cluster_name)
    group = str(outputs.get("auditLogGroupName") or log_group_name(cluster))
    groups = ctx.log_groups(region, settings.text("aws:profile") or None)

    _check_step(
        "destroy",
        pulumi.destroy(options.pulumi_flags),
        "the stack keeps what is left and was not removed. "
        f"Fix the cause and run 'make down{_stack_arg(stack)}' again.",
        stack,
    )
    remove_after_destroy(groups, group, cluster, Owner(ctx.project.name, stack), options.wait, say)
    # Only now: `stack rm` refuses a stack that still has resources, and a kept stack lets `make down` finish.
    pulumi.remove()
    say(f"Stack {stack} destroyed and removed; Pulumi.{stack}.yaml keeps its settings for the next 'make up'.")


def _check_step(verb: str, outcome: tuple[int, bool], after_failure: str, stack: str) -> None:
    """Stop after `pulumi <verb>` unless it succeeded; both ways the command can simply be run again."""
    code, interrupted = outcome
    command = "up" if verb == "up" else "down"
    if interrupted:
        raise LabError(
            f"interrupted: 'pulumi {verb}' stopped cleanly; run 'make {command}{_stack_arg(stack)}' again to go on",
            INTERRUPTED,
        )
    if code != 0:
        raise LabError(f"'pulumi {verb}' failed (exit code {code}): {after_failure}", STEP_FAILED)


def _stack_arg(stack: str) -> str:
    return "" if stack == "dev" else f" STACK={stack}"


def next_steps(runner: Runner, settings: StackSettings, region: str) -> str:
    stack, cluster = settings.stack, settings.cluster_name
    on = f"--stack {shlex.quote(stack)}"
    lines = []
    passphrase = runner.env.get("PULUMI_CONFIG_PASSPHRASE_FILE")
    if passphrase:
        lines.append(f"  export PULUMI_CONFIG_PASSPHRASE_FILE={shlex.quote(passphrase)}   # for your pulumi commands")
    lines += [
        f"  aws eks update-kubeconfig --region {region} --name {cluster}",
        "  kubectl get pods -A",
        f"  pulumi stack output {on}          # the Falco UI command, the forwarder's logs and metrics commands",
        f"  pulumi stack output falcoUiPassword --show-secrets {on}",
    ]
    if not settings.flag("apiPrivateOnly") and OPEN_TO_ALL in settings.strings("apiPublicAccessCidrs", [OPEN_TO_ALL]):
        lines += [
            "",
            f"The cluster's API endpoint accepts connections from any address (apiPublicAccessCidrs: {OPEN_TO_ALL});",
            "each request still needs AWS credentials the cluster admits. To admit only your own address (and",
            "everyone behind the same one, e.g. a workshop's network):",
            "  pulumi config set --path 'apiPublicAccessCidrs[0]' "
            f'"$(curl -fsS https://checkip.amazonaws.com)/32" {on}',
            f"  make up{_stack_arg(stack)}",
            "More ranges go in 'apiPublicAccessCidrs[1]' and so on; the README's Settings has a private-only endpoint.",
        ]
    lines += ["", f"Tear it down with: make down{_stack_arg(stack)}"]
    return "\n".join(lines)
