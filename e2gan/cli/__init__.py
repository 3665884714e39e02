"""The `e2gan` command line: one subcommand per step of the method, over the same functions the
studio calls.

Every subcommand takes `--json`, and then prints exactly one JSON object as its last stdout line
(paths, counts, metrics, timings) for scripts and benchmarks. Progress goes to stderr. A user
error (`E2GANError`: missing file, odd image, unknown concept, wrong base) is one line on stderr
and exit status 2, never a traceback.

Commands live by area in this package's modules (`concepts`, `data`, `training`, `judging`,
`models`, `overview`); each module registers its handlers with `@command` and adds its own
subparsers in `add_parsers`, so a new command touches one module.

Importing torch and the models costs seconds and about a gigabyte, so nothing here or in the
command modules imports them at module level: each command imports the engine inside its
function, after its checks that need no model (flags, numbers, files, model folders; see
`e2gan.checks`). `e2gan --help`, a mistyped flag, `--scale nan` or a missing dataset are then
answered in well under a second; tests/test_cli_fast_errors.py holds the line.
"""

from __future__ import annotations

import argparse
import errno
import json
import sys

# Imported in the method's order, which is the order the commands register in COMMANDS.
from e2gan.cli import concepts, data, training, judging, models, overview  # noqa: I001
from e2gan.cli.common import COMMANDS, command, download_progress
from e2gan.errors import E2GANError

__all__ = ["COMMANDS", "build_parser", "command", "main"]

# The order here is the order of the subcommands in `e2gan --help`: the method's steps in turn.
AREAS = (concepts, data, training, judging, models, overview)

# Flags that hold text (prompts and their phrasings), which is stored as UTF-8 in datasets and
# adapters. Paths are not here: a file name need not be UTF-8.
TEXT_OPTIONS = ("prompt", "concept", "instruction", "description", "negative_prompt",
                "source_caption")

# OSErrors the machine or the user's paths cause, not the program: a full disk, a read-only or
# unwritable place, a path that is a folder or missing. One line, like an E2GANError.
ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES,
                      errno.EPERM, errno.EISDIR, errno.ENOTDIR, errno.ENOENT, errno.ENAMETOOLONG}


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


def _check_text_options(args: argparse.Namespace) -> None:
    for name in TEXT_OPTIONS:
        value = getattr(args, name, None)
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:  # bytes that are not UTF-8 arrive as lone surrogates
                shown = value.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")
                raise E2GANError(f"--{name.replace('_', '-')} is not UTF-8 text: {shown}") from None


def _one_line(error: Exception) -> str:
    if isinstance(error, OSError) and error.strerror:
        return f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    return " ".join(str(error).split())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _check_text_options(args)
        from e2gan.hub.download import reporting_downloads  # tqdm: only once a command runs

        with reporting_downloads(download_progress(args)):  # weights a command fetches
            result = COMMANDS[args.command](args)
        if result is None:  # a non-main process of a sharded run: the main one reports
            return 0
    except (E2GANError, OSError) as error:
        if isinstance(error, OSError) and error.errno not in ENVIRONMENT_ERRNOS:
            raise
        message = _one_line(error)
        print(f"error: {message}", file=sys.stderr)
        if args.json:
            print(json.dumps({"error": message}))
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(result, default=str))
    elif args.command not in ("concepts", "rank-search"):
        print(json.dumps(result, indent=2, default=str))
    return 0
