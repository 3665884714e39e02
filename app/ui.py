"""Glue shared by the studio's tabs: the session's workspace, user errors, progress lines.

Each browser session (and each gradio_client `Client`) holds its workspace id in a `gr.State`;
handlers create the workspace on first use and hand the id back, so API clients need no extra
call and two sessions never share a folder.
"""

from __future__ import annotations

import functools
import inspect
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import gradio as gr
from PIL import Image, UnidentifiedImageError

from e2gan.errors import E2GANError
from e2gan.files import read_image
from e2gan.hub.download import format_duration

from app.jobs import BOARD
from app.workspace import Workspace, prune_workspaces

HEAVY = "device"  # the concurrency_id every job that computes on the device shares


@dataclass
class Context:
    """What every tab needs: where workspaces live and which base model to fine-tune."""

    workspace_root: Path
    base_dir: Path

    def workspace(self, workspace_id: str | None) -> Workspace:
        """The session's workspace, created on first use."""
        if workspace_id:
            try:
                return Workspace.open(workspace_id, self.workspace_root)
            except E2GANError:  # removed by a clean-up, or a stale id from an old browser tab
                pass
        workspace = Workspace.create(self.workspace_root)
        # A new session: remove idle and surplus workspaces (never one with a running job).
        prune_workspaces(self.workspace_root,
                         busy={workspace.id} | {job.workspace_id for job in BOARD.running()})
        return workspace


LOG = logging.getLogger("e2gan.studio")


def page_error(message: str) -> gr.Error:
    """A user error for the page: its message in the page, one line in the server's log. Gradio
    prints a traceback for every `gr.Error` unless told not to; tracebacks are for bugs."""
    LOG.warning("user error: %s", message)
    return gr.Error(message, print_exception=False)


def user_errors(function: Callable) -> Callable:
    """Show an E2GANError as a Gradio error toast (for plain functions and generators alike)."""
    if inspect.isgeneratorfunction(function):
        @functools.wraps(function)
        def generator_wrapper(*args, **kwargs):
            try:
                yield from function(*args, **kwargs)
            except E2GANError as error:
                raise page_error(str(error)) from None
        return generator_wrapper

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except E2GANError as error:
            raise page_error(str(error)) from None
    return wrapper


class PhotoInput(gr.Image):
    """An image input that hands its handler the file's path (Gradio opens only the header) and
    answers a file that is not an image with a message naming it: a plain `gr.Image` fails in
    its preprocessing, before any handler runs, with an anonymous "Error". Decoding, and the
    pixel limit before it, are `picture`'s."""

    is_template = True  # drawn by the frontend's own Image component
    # No __init__ of its own: Gradio sends the frontend the props named in the constructor's
    # signature, so an `**kwargs` constructor leaves the page without them. Use `photo_input`.

    def preprocess(self, payload):
        try:
            return super().preprocess(payload)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
            name = getattr(payload, "orig_name", None) or "the image"
            raise page_error(f"cannot read image {name}: it is not an image file or it is "
                             f"damaged ({type(error).__name__})") from None


def photo_input(**options: Any) -> PhotoInput:
    """An image input giving its handler a path (see `PhotoInput`); decode it with `picture`."""
    return PhotoInput(type="filepath", image_mode=None, **options)


def picture(path: str | None) -> Image.Image:
    """The image a user handed a step, as RGB. The studio's image inputs give their file's path
    (`type="filepath"`, `image_mode=None`) so Gradio decodes nothing: the header is checked
    against the pixel limit here first (a 290 KB PNG can decode to 100 million pixels)."""
    if not path:
        raise E2GANError("upload or pick an image first")
    return read_image(path, Path(path).name)


def seconds_text(seconds: float | None) -> str:
    return "estimating…" if seconds is None else format_duration(seconds)


def progress_line(fraction: float, text: str) -> str:
    fraction = min(max(fraction, 0.0), 1.0)
    filled = int(round(fraction * 20))
    return f"`{'█' * filled}{'░' * (20 - filled)}` **{fraction * 100:.0f}%** · {text}"


def event_text(event: dict[str, Any]) -> str:
    """One readable line for a job's progress event."""
    return ", ".join(f"{key} {value}" for key, value in event.items() if key != "heartbeat")


def stop_job(workspace_id: str | None) -> str:
    """Stop whatever job runs in this session's workspace; waits until its data is consistent."""
    return BOARD.stop(workspace_id) if workspace_id else "nothing is running"
