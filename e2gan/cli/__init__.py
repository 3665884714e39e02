"""The `e2gan` command line: one subcommand per step of the method, over the same functions the
studio calls.

Every subcommand takes `--json`, and then prints exactly one JSON object as its last stdout line
(paths, counts, metrics, timings) for scripts and benchmarks. Progress goes to stderr. A user
error (`E2GANError`: missing file, odd image, unknown concept, wrong base) is one line on stderr
and exit status 2, never a traceback.

Commands live by area in this package's modules (`concepts`, `data`, `training`, `judging`,
`models`, `overview`); each module registers its handlers with `@command` and adds its own
subparsers in `add_parsers`, so a new command touches one module.
"""

from __future__ import annotations

import argparse
import json
import sys

# Imported in the method's order, which is the order the commands register in COMMANDS.
from e2gan.cli import concepts, data, training, judging, models, overview  # noqa: I001
from e2gan.cli.common import COMMANDS, command
from e2gan.errors import E2GANError

__all__ = ["COMMANDS", "build_parser", "command", "main"]

# The order here is the order of the subcommands in `e2gan --help`: the method's steps in turn.
AREAS = (concepts, data, training, judging, models, overview)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="e2gan", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
        p.add_argument("--quiet", action="store_true", help="no progress on stderr")
        return p

    for area in AREAS:
        area.add_parsers(add)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = COMMANDS[args.command](args)
        if result is None:  # a non-main process of a sharded run: the main one reports
            return 0
    except E2GANError as error:
        print(f"error: {error}", file=sys.stderr)
        if args.json:
            print(json.dumps({"error": str(error)}))
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(result, default=str))
    elif args.command not in ("concepts", "rank-search"):
        print(json.dumps(result, indent=2, default=str))
    return 0
