"""Concept commands: choose the shared base's training concepts by clustering (`select-concepts`,
E2GAN Sec. 4.2.1)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Callable

from e2gan.cli.common import command


@command("select-concepts")
def cmd_select_concepts(args: argparse.Namespace) -> dict[str, Any]:
    from e2gan.curation.concept_selection import select_concepts, square_photos
    from e2gan.data.sources import open_source
    from e2gan.files import atomic_write_json

    started = time.perf_counter()
    hold_out = [name for value in args.hold_out for name in value.split(",")]
    source = open_source(args.source, count=args.count, size=args.size, seed=args.seed)
    photos = square_photos((image for _, image in source), args.size)
    selection = select_concepts(photos, args.k, hold_out=hold_out, seed=args.seed,
                                embedder=args.embedder)
    if selection.embedder_note and not args.quiet:
        print(f"embedder: {selection.embedder_note}", file=sys.stderr)
    result = selection.to_json()
    if args.out:
        atomic_write_json(args.out, result)
    if not args.json and not args.quiet:
        for cluster in selection.clusters:
            others = ", ".join(member for member in cluster.members if member != cluster.chosen)
            print(f"{cluster.chosen}" + (f"  (also: {others})" if others else ""), file=sys.stderr)
    return {**result, "source": source.description, "out": args.out,
            "seconds": round(time.perf_counter() - started, 2)}


def add_parsers(add: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """This area's subcommands and flags; `add` makes a subparser with --json and --quiet."""
    p = add("select-concepts", "choose the base model's training concepts by clustering their edits")
    p.add_argument("--k", type=int, default=24, help="how many concepts to choose (clusters)")
    p.add_argument("--hold-out", action="append", default=[],
                   help="concept(s) to keep out of the base, repeatable or comma-separated "
                        "(winter is always held out)")
    p.add_argument("--source", default="builtin", help="'builtin', a folder or a .zip of photos")
    p.add_argument("--count", type=int, default=24, help="photos each concept edits")
    p.add_argument("--size", type=int, default=128, help="side the photos are edited at")
    p.add_argument("--embedder", default=None,
                   help="builtin or clip (default: clip where its weights are on this machine, "
                        "else builtin)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="also write the selection as JSON to this file")
