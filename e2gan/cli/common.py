"""What every command module shares: the command registry and the stderr progress printers.

Kept apart from `e2gan/cli/__init__.py` so the command modules can import it while the package
itself imports them (to register their commands and parsers).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Callable

COMMANDS: dict[str, Callable[[argparse.Namespace], dict[str, Any] | None]] = {}


def command(name: str):
    """Register a handler as `e2gan NAME`; it returns the JSON object the command prints."""
    def decorator(function):
        COMMANDS[name] = function
        return function
    return decorator


def progress(args: argparse.Namespace, label: str) -> Callable[[Any], None]:
    """A progress callback that prints "done/total" to stderr (silent with --quiet), for the pair
    maker's `PairsProgress` and rank search's round records (a dict)."""
    def report(event: Any) -> None:
        done, total = ((event.get("done"), event.get("total")) if isinstance(event, dict)
                       else (event.done, event.total))
        if not args.quiet and done is not None:
            print(f"[{label}] {done}/{total}", file=sys.stderr, flush=True)
    return report


def download_progress(args: argparse.Namespace) -> Callable[[Any], None]:
    """A weights download's progress on stderr: one line redrawn in place on a terminal, else a
    line every 5 s (a log); the first and last lines always. Silent with --quiet."""
    terminal = sys.stderr.isatty()
    every = 0.5 if terminal else 5.0
    last = [float("-inf")]

    def report(progress: Any) -> None:
        now = time.monotonic()
        if args.quiet or (not progress.finished and now - last[0] < every):
            return
        last[0] = now
        line = f"[download] {progress.describe()}"
        if terminal:  # \r and erase-to-end redraw the line; the last one ends it
            print(f"\r{line}\033[K", end="\n" if progress.finished else "", file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)
    return report


def training_progress(args: argparse.Namespace, label: str) -> Callable[[Any], None]:
    """A trainer's event callback that prints to stderr (silent with --quiet)."""
    from e2gan.training.events import CheckpointSaved, RunEnded, StepsLogged

    def report(event: Any) -> None:
        if args.quiet:
            return
        if isinstance(event, StepsLogged):
            losses = " ".join(f"{k}={v:.3f}" for k, v in event.losses.items())
            eta = f" eta {event.eta_seconds:.0f}s" if event.eta_seconds is not None else ""
            print(f"[{label}] step {event.step}/{event.total_steps} {losses} "
                  f"lr {event.learning_rate:.2e} {event.images_per_second:.1f} img/s{eta}",
                  file=sys.stderr, flush=True)
        elif isinstance(event, CheckpointSaved):
            print(f"[{label}] state saved at step {event.step}", file=sys.stderr, flush=True)
        elif isinstance(event, RunEnded):
            print(f"[{label}] ended at step {event.step} ({event.reason.value}, "
                  f"{event.seconds:.0f}s)", file=sys.stderr, flush=True)
    return report


def log_lines(args: argparse.Namespace) -> Callable[[str], None] | None:
    """A line logger to stderr for the long runs (demo, bench); None with --quiet."""
    if args.quiet:
        return None
    return lambda line: print(line, file=sys.stderr, flush=True)
