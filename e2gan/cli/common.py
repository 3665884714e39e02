"""What every command module shares: the command registry and the stderr progress printers.

Kept apart from `e2gan/cli/__init__.py` so the command modules can import it while the package
itself imports them (to register their commands and parsers).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable

COMMANDS: dict[str, Callable[[argparse.Namespace], dict[str, Any] | None]] = {}


def command(name: str):
    """Register a handler as `e2gan NAME`; it returns the JSON object the command prints."""
    def decorator(function):
        COMMANDS[name] = function
        return function
    return decorator


def progress(args: argparse.Namespace, label: str) -> Callable[[dict[str, Any]], None]:
    """A training or generation progress callback that prints to stderr (silent with --quiet)."""
    def report(event: dict[str, Any]) -> None:
        if args.quiet:
            return
        if "step" in event:
            losses = " ".join(f"{k}={v:.3f}" for k, v in event["losses"].items())
            print(f"[{label}] step {event['step']}/{event['total_steps']} {losses} "
                  f"{event['images_per_second']:.1f} img/s eta {event['eta_seconds']:.0f}s",
                  file=sys.stderr, flush=True)
        elif "done" in event:
            print(f"[{label}] {event['done']}/{event['total']} pairs", file=sys.stderr, flush=True)
    return report


def log_lines(args: argparse.Namespace) -> Callable[[str], None] | None:
    """A line logger to stderr for the long runs (demo, bench); None with --quiet."""
    if args.quiet:
        return None
    return lambda line: print(line, file=sys.stderr, flush=True)
