"""`python -m docs_tools write|check`: rewrite the generated tables, or check tables and figures."""

from __future__ import annotations

import argparse
import sys

from .figures import check_pages
from .generated import DocsError, stale_blocks


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(prog="python -m docs_tools", description=__doc__)
    cli.add_argument(
        "command",
        choices=("write", "check"),
        help="write: rewrite the tables generated from the code; check: report stale tables and figures that "
        "disagree with their source, writing nothing",
    )
    args = cli.parse_args(argv)
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
