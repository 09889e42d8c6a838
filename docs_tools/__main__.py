"""`python -m docs_tools write|check|threat-alerts`: rewrite the generated tables, check tables and figures, or
recompute docs/data/threat-alerts.json from the recorded threat scenarios."""

from __future__ import annotations

import argparse
import sys

from .detection import write_threat_alerts
from .figures import check_pages
from .generated import ROOT, DocsError, stale_blocks


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(prog="python -m docs_tools", description=__doc__)
    cli.add_argument(
        "command",
        choices=("write", "check", "threat-alerts"),
        help="write: rewrite the tables generated from the code; check: report stale tables and figures that "
        "disagree with their source, writing nothing; threat-alerts: recompute what the lab's Falco prints for "
        "the recorded threat scenarios (needs ../shared and FALCO_PLUGINS_REPO), then run write",
    )
    args = cli.parse_args(argv)
    if args.command == "threat-alerts":
        try:
            path = write_threat_alerts(ROOT)
        except (DocsError, OSError) as err:
            print(f"docs_tools: error: {err}", file=sys.stderr)
            return 2
        print(f"rewrote {path.relative_to(ROOT)}")
        return 0
    try:
        stale = stale_blocks(write=args.command == "write")
        problems = [str(problem) for problem in check_pages()]
    except (DocsError, OSError, ValueError) as err:
        print(f"docs_tools: error: {err}", file=sys.stderr)
        return 2
    if args.command == "write":
        for name in stale:
            print(f"rewrote {name}")
    else:
        problems = [f"{name} is out of date: run 'make docs'" for name in stale] + problems
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
