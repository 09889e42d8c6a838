"""The commands, step by step. Each step can be run again: an interrupted command is simply repeated.

`up`, `config` and `stack` open the stack the same way (open_stack: backend, passphrase, stack), so values set
before the first `make up` land where `make up` then finds them.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .config_values import plan_change
from .errors import INTERRUPTED, STEP_FAILED, LabError
from .log_groups import LogGroups, Owner, Wait, clear_leftover_before_up, remove_after_destroy
from .prereqs import check_prerequisites
from .process import Runner
from .stack import (
    BACKEND_URL,
    Project,
    Pulumi,
    Say,
    StackSettings,
    config_hint,
    export_lines,
    log_group_name,
    own_env,
    select_backend,
    select_passphrase,
    stack_arg,
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
    """Runs pulumi and aws; its environment gains PULUMI_BACKEND_URL and the passphrase as the command goes."""
    project: Project
    log_groups: LogGroupsFactory
    say: Say
    environ: Mapping[str, str] = field(default_factory=dict)
    """The user's own environment, as the command started: what their own pulumi commands have."""


def open_stack(ctx: Context, stack: str, create: bool) -> Pulumi | None:
    """Choose the backend and the secrets passphrase, select the stack (created if `create`); None if absent.

    A passphrase is generated only for a stack created here: one that exists (made by hand, or by another
    clone) keeps the passphrase it was made with, which the user must then give."""
    pulumi = Pulumi(ctx.runner, stack)
    backend = select_backend(pulumi, ctx.project, ctx.say)
    if pulumi.select(create=False):
        select_passphrase(ctx.runner, backend, ctx.project, stack, create=False, say=ctx.say)
    elif create:
        select_passphrase(ctx.runner, backend, ctx.project, stack, create=True, say=ctx.say)
        pulumi.select(create=True)
    else:
        ctx.say(f"No stack {stack} in {backend}.")
        return None
    ctx.say(f"Stack: {stack}")
    return pulumi


def up(ctx: Context, options: Options) -> None:
    stack, say = options.stack, ctx.say
    settings = StackSettings.read(ctx.project, stack)
    identity = check_prerequisites(ctx.runner, "up", stack, settings.needs_docker)
    say(f"Prerequisites found; AWS identity: {identity}")

    pulumi = open_stack(ctx, stack, create=True)
    assert pulumi is not None  # created
    region = stack_region(pulumi, set_if_missing=True, say=say)
    cluster = settings.cluster_name
    derived = " (from project and stack; set clusterName to choose another)" if settings.cluster_name_is_derived else ""
    say(f"Region: {region}; cluster: {cluster}{derived}")
    running = pulumi.outputs().get("clusterName")
    if running and running != cluster:
        # E.g. a stack brought up when the default name was not yet derived from the stack.
        say(
            f"WARNING: this stack's cluster is {running}, but its settings now name {cluster}: 'pulumi up' would "
            f"replace the cluster and everything on it. To keep it: {config_hint(stack, 'clusterName', running)}, "
            "then run make up again (or answer 'no' to the preview now)."
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
        f"what it created so far stays in the stack. Fix the cause and run 'make up{stack_arg(stack)}' again, "
        f"or 'make down{stack_arg(stack)}' to remove it.",
        stack,
    )
    say("The lab is up. Next steps:")
    print(next_steps(settings, region, own_env(ctx.project, stack, ctx.environ)), flush=True)


def down(ctx: Context, options: Options) -> None:
    stack, say = options.stack, ctx.say
    settings = StackSettings.read(ctx.project, stack)
    check_prerequisites(ctx.runner, "down", stack, needs_docker=False)

    pulumi = open_stack(ctx, stack, create=False)
    if pulumi is None:
        say("Nothing to destroy.")
        return
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
        f"Fix the cause and run 'make down{stack_arg(stack)}' again.",
        stack,
    )
    remove_after_destroy(groups, group, cluster, Owner(ctx.project.name, stack), options.wait, say)
    # Only now: `stack rm` refuses a stack that still has resources, and a kept stack lets `make down` finish.
    pulumi.remove()
    say(f"Stack {stack} destroyed and removed; Pulumi.{stack}.yaml keeps its settings for the next 'make up'.")


def set_config(ctx: Context, stack: str, key: str | None, value: str | None) -> None:
    """Set one setting of `stack`, opened as `make up` opens it; the value checked before anything is made."""
    change = plan_change(ctx.project, StackSettings.read(ctx.project, stack), key, value, ctx.environ)
    check_prerequisites(ctx.runner, "config", stack, needs_docker=False, needs_aws=False)
    pulumi = open_stack(ctx, stack, create=True)
    assert pulumi is not None  # created
    for step in change.steps:
        if step.value is None:
            pulumi.config_remove(step.key, step.path)
        else:
            pulumi.config_set(step.key, step.value, step.path)
    ctx.say(f"Set {change.key} = {change.value} in stack {stack} ({ctx.project.stack_file(stack).name}).")
    for warning in change.warnings:
        ctx.say(f"WARNING: {warning}")
    ctx.say(f"'make up{stack_arg(stack)}' applies it.")


def prepare_stack(ctx: Context, stack: str) -> None:
    """Make the stack as `make up` would, for the user's own `pulumi config set`; say what their shell needs."""
    check_prerequisites(ctx.runner, "stack", stack, needs_docker=False, needs_aws=False)
    open_stack(ctx, stack, create=True)
    ctx.say(
        f"Stack {stack} is ready for its settings: '{config_hint(stack, 'forwarderBuild', 'source')}' checks each "
        "one; your own pulumi config set works too."
    )
    print(own_commands(ctx.project, stack, ctx.environ, ctx.runner.env.get(BACKEND_URL, "")), flush=True)


def own_commands(project: Project, stack: str, environ: Mapping[str, str], backend: str) -> str:
    """How the user's own pulumi commands reach the stack: the exports they need in their shell, if any."""
    needed = own_env(project, stack, environ)
    example = f"pulumi config set <key> <value> --stack {stack}"
    if not needed:
        return f"Your own pulumi commands reach it as they are (in {backend}), e.g.: {example}"
    exports = "\n".join(f"  {line}" for line in export_lines(needed))
    return (
        f"For your own pulumi commands on this stack, in your shell:\n{exports}\n"
        f"('eval \"$(make -s env{stack_arg(stack)})\"' does that), then e.g.: {example}"
    )


def _check_step(verb: str, outcome: tuple[int, bool], after_failure: str, stack: str) -> None:
    """Stop after `pulumi <verb>` unless it succeeded; both ways the command can simply be run again."""
    code, interrupted = outcome
    command = "up" if verb == "up" else "down"
    if interrupted:
        raise LabError(
            f"interrupted: 'pulumi {verb}' stopped cleanly; run 'make {command}{stack_arg(stack)}' again to go on",
            INTERRUPTED,
        )
    if code != 0:
        raise LabError(f"'pulumi {verb}' failed (exit code {code}): {after_failure}", STEP_FAILED)


def next_steps(settings: StackSettings, region: str, needed_env: Mapping[str, str]) -> str:
    """What to do once the lab is up; `needed_env`: what the user's own pulumi commands need (own_env)."""
    stack, cluster = settings.stack, settings.cluster_name
    on = f"--stack {shlex.quote(stack)}"
    lines = [f"  {line}   # for your pulumi commands" for line in export_lines(needed_env)]
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
            "  make config KEY='apiPublicAccessCidrs[0]' "
            f'VALUE="$(curl -fsS https://checkip.amazonaws.com)/32"{stack_arg(stack)}',
            f"  make up{stack_arg(stack)}",
            "More ranges go in 'apiPublicAccessCidrs[1]' and so on; a private-only endpoint: docs/settings.md.",
        ]
    lines += ["", f"Tear it down with: make down{stack_arg(stack)}"]
    return "\n".join(lines)
