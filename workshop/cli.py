"""Command line: `python -m workshop {list,trigger,alerts,cleanup,pipeline}`."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import TextIO

from . import pipeline
from .alerts import fetch_alerts, print_alerts, ui_command, validate_since
from .examples import AUDIT_DELAY_HINT, EXAMPLES, cleanup_everything
from .kubectl import (
    Kubectl,
    PortForwarder,
    Runner,
    WorkshopError,
    kubeconfig_file,
    subprocess_port_forward,
    subprocess_runner,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m workshop", description="Trigger the lab's Falco examples and read the alerts."
    )
    parser.add_argument("--kubeconfig", help="kubeconfig to use (default: the stack's `kubeconfig` output)")
    parser.add_argument("--stack", help="Pulumi stack to read the kubeconfig from (default: the selected stack)")
    parser.add_argument("--namespace", default="falco", help="namespace of the Falco releases (default: falco)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="list the examples and the rule each one triggers")
    trigger = commands.add_parser("trigger", help="create what an example rule detects, then clean it up")
    trigger.add_argument("example", choices=sorted(EXAMPLES))
    alerts = commands.add_parser("alerts", help="show Falco's alerts from both releases")
    alerts.add_argument("--since", default="10m", help="how far back to read the logs, e.g. 30s, 10m, 2h (default 10m)")
    alerts.add_argument("--rule", help="only alerts whose rule name contains this text")
    commands.add_parser("cleanup", help="remove anything the examples left behind")
    flow = commands.add_parser(
        "pipeline", help="the forwarder's delivered audit events next to Falco's evaluated ones, with the difference"
    )
    flow.add_argument("--audit-release", default=pipeline.AUDIT_RELEASE, help="Helm release of Falco's audit instance")
    flow.add_argument("--forwarder-namespace", default=pipeline.FORWARDER_NAMESPACE, help="namespace of the forwarder")
    flow.add_argument(
        "--forwarder-deployment", default=pipeline.FORWARDER_DEPLOYMENT, help="Deployment of the forwarder"
    )
    return parser


def _list(out: TextIO) -> None:
    for example in EXAMPLES.values():
        out.write(f"{example.name:<27} {example.rule}  ({example.source})\n    {example.summary}\n")


def main(
    argv: Sequence[str] | None = None,
    runner: Runner = subprocess_runner,
    out: TextIO | None = None,
    port_forwarder: PortForwarder = subprocess_port_forward,
) -> int:
    out = out or sys.stdout
    args = build_parser().parse_args(argv)
    if args.command == "list":
        _list(out)
        return 0
    try:
        if args.command == "alerts":
            validate_since(args.since)  # fail before reading any kubeconfig
        with kubeconfig_file(args.kubeconfig, args.stack, runner) as kubeconfig:
            kubectl = Kubectl(kubeconfig, runner, port_forwarder)
            if args.command == "trigger":
                example = EXAMPLES[args.example]
                example.run(kubectl, out)
                out.write(f'Triggered: expect the rule "{example.rule}" ({example.source}).\n')
                if example.source == "k8s_audit":
                    out.write(AUDIT_DELAY_HINT + "\n")
                out.write("See it with: python -m workshop alerts --since 10m\n")
            elif args.command == "alerts":
                alerts = fetch_alerts(kubectl, args.namespace, args.since)
                shown = print_alerts(alerts, out, args.rule)
                out.write(f"{shown} alert(s) in the last {args.since}.\n")
                command = ui_command(kubectl, args.namespace)
                if command:
                    out.write(
                        f"Falcosidekick UI: run `{command}` and open http://localhost:2802"
                        " (user admin, password: `pulumi stack output falcoUiPassword --show-secrets`).\n"
                    )
            elif args.command == "cleanup":
                cleanup_everything(kubectl, out)
            elif args.command == "pipeline":
                targets = pipeline.Targets(
                    falco_namespace=args.namespace,
                    audit_release=args.audit_release,
                    forwarder_namespace=args.forwarder_namespace,
                    forwarder_deployment=args.forwarder_deployment,
                )
                forwarder, falco = pipeline.read_pipeline(kubectl, targets, now=time.time())
                pipeline.print_report(forwarder, falco, out, targets)
    except WorkshopError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return exc.exit_code
    return 0
