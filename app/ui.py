"""Glue shared by the studio's tabs: the session's workspace, user errors, progress lines.

Each browser session (and each gradio_client `Client`) holds its workspace id in a `gr.State`;
handlers create the workspace on first use and hand the id back, so API clients need no extra
call and two sessions never share a folder. A workspace is made for a visitor (`visitor_of`),
whose own count is bounded (`app.workspace.prune_workspaces`).

Every user error reaches the page through `page_error`, which names files by their base name and
shortens long tokens: a message never shows a server folder or echoes a 5,000-character input.
"""

from __future__ import annotations

import functools
import inspect
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Callable

import gradio as gr
from gradio.context import LocalContext
from PIL import Image, UnidentifiedImageError

from e2gan.errors import E2GANError
from e2gan.files import read_image
from e2gan.hub.download import format_duration

from app.jobs import BOARD
from app.settings import SETTINGS
from app.workspace import Workspace, WorkspaceGone, prune_workspaces, short_id

HEAVY = "device"  # the concurrency_id every job that computes on the device shares
PRUNE_SECONDS = 60.0  # besides at each new workspace, the clean-up runs at most this often


def _header(request: Any, name: str) -> str:
    headers = getattr(request, "headers", None) or {}
    try:
        return (headers.get(name) or "").strip()
    except AttributeError:  # a request rebuilt from a dict
        return (dict(headers).get(name) or "").strip()


def visitor_of(request: Any) -> str | None:
    """Who is asking, for the per-visitor bound on workspaces: the signed-in user (Hugging Face
    OAuth on a Space, or the studio's own login), else the client's address. On a Space every
    connection comes from its proxy, which names the client in X-Forwarded-For; the whole chain
    is the key, so a client that writes its own header becomes a visitor of its own, never
    another one. Elsewhere the header is the client's to write and is ignored."""
    if request is None:
        return None
    raw = getattr(request, "request", None)
    scope = getattr(raw, "scope", None)
    session = scope.get("session") if isinstance(scope, dict) else None
    profile = ((session or {}).get("oauth_info") or {}).get("userinfo") or {}
    user = profile.get("preferred_username") or getattr(request, "username", None)
    if user:
        return f"user:{user}"
    forwarded = _header(request, "x-forwarded-for") if SETTINGS.on_space else ""
    if forwarded:
        return f"address:{forwarded}"
    client = getattr(request, "client", None)
    host = getattr(client, "host", None)
    return f"address:{host}" if host else None


def current_visitor() -> str | None:
    """The visitor of the request being handled (Gradio keeps it for the handler), or None."""
    return visitor_of(LocalContext.request.get(None))


@dataclass
class Context:
    """What every tab needs: where workspaces live and which base model to fine-tune."""

    workspace_root: Path
    base_dir: Path
    _pruned_at: float = field(default=0.0, init=False, repr=False, compare=False)

    def workspace(self, workspace_id: str | None, visitor: str | None = None) -> Workspace:
        """The session's workspace, created on first use for `visitor` (by default the visitor
        of the request being handled). An id that names no workspace any more is an error that
        says what became of it, never silently a new, empty workspace."""
        if not workspace_id:
            return self.new_workspace(visitor)
        try:
            workspace = Workspace.open(workspace_id, self.workspace_root)
        except WorkspaceGone as gone:
            raise E2GANError(f"{gone}. Reload the page to work in a new workspace") from None
        self._prune_now_and_then(workspace.id)
        return workspace

    def new_workspace(self, visitor: str | None = None) -> Workspace:
        visitor = visitor or current_visitor()
        workspace = Workspace.create(self.workspace_root, visitor)
        self.prune(workspace.id, visitor)
        return workspace

    def page_workspace(self, wanted: str | None,
                       visitor: str | None = None) -> tuple[Workspace, str]:
        """The workspace a page opens, with a notice for the page: the one its address names,
        else a new one; when the address names one that is gone (removed, expired, mistyped),
        the notice says so and what became of it."""
        if not wanted:
            return self.new_workspace(visitor), ""
        try:
            workspace = Workspace.open(wanted, self.workspace_root)
        except E2GANError as error:  # gone, or not an id at all
            return (self.new_workspace(visitor),
                    f"**The workspace this address names is not here:** "
                    f"{plain_message(str(error))}. This page works in a new, empty workspace.")
        self._prune_now_and_then(workspace.id)
        return workspace, ""

    def prune(self, own_id: str, visitor: str | None = None) -> list[str]:
        """The clean-up (`prune_workspaces`), sparing `own_id` and every workspace with a
        running job."""
        self._pruned_at = time.monotonic()
        return prune_workspaces(self.workspace_root, visitor=visitor,
                                busy={own_id} | {job.workspace_id for job in BOARD.running()})

    def _prune_now_and_then(self, own_id: str) -> None:
        """The disk fills while sessions work, not only when one starts: the bound is kept
        at most once a minute from any request."""
        if time.monotonic() - self._pruned_at > PRUNE_SECONDS:
            self.prune(own_id)


LOG = logging.getLogger("e2gan.studio")


# A web address is left whole; a quoted path ('...' or "...", as PIL and reprs write them) may
# hold spaces; a bare absolute path (POSIX or Windows) runs to the next space or delimiter.
_ADDRESS = r"[A-Za-z][\w+.-]*://[^\s'\"`<>()]+"
_QUOTED_PATH = r"(?P<quote>['\"`])(?P<quoted>(?:/|[A-Za-z]:\\)[^'\"`\n]*)(?P=quote)"
_BARE_PATH = (r"(?<![\w.~/\\-])(?:/[^\s/'\"`,;:()<>\[\]]+(?:/[^\s/'\"`,;:()<>\[\]]*)*"
              r"|[A-Za-z]:\\[^\s'\"`,;()<>\[\]]*)")
_PATHS = re.compile(f"(?P<address>{_ADDRESS})|{_QUOTED_PATH}|(?P<bare>{_BARE_PATH})")
_LONG_TOKEN = re.compile(r"[^\s'\"`()<>\[\],;]{65,}")  # far longer than any name or number


def _base_name(path: str) -> str:
    pure = PureWindowsPath(path) if re.match(r"[A-Za-z]:\\", path) else PurePosixPath(path)
    return pure.name or "(a folder)"


def plain_message(message: str) -> str:
    """A message as the page shows it: every file named by its base name (an upload's
    `/tmp/gradio/...` copy, a workspace's folder and the studio's own folders are the server's
    business), and any token longer than 64 characters shortened (`short_id`)."""
    def name_only(match: re.Match) -> str:
        if match.group("address"):
            return match.group("address")
        if match.group("quoted") is not None:
            quote = match.group("quote")
            return f"{quote}{_base_name(match.group('quoted'))}{quote}"
        return _base_name(match.group("bare"))

    named = _PATHS.sub(name_only, message)
    return _LONG_TOKEN.sub(lambda match: (match.group(0) if "://" in match.group(0)
                                          else short_id(match.group(0))), named)


def page_error(message: str) -> gr.Error:
    """A user error for the page: its message in the page (`plain_message`: no server folder,
    no long echo), one line in the server's log, whole. Gradio prints a traceback for every
    `gr.Error` unless told not to; tracebacks are for bugs."""
    LOG.warning("user error: %s", message)
    return gr.Error(plain_message(message), print_exception=False)


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


def stop_job(workspace_id: str | None) -> str:
    """Stop whatever job runs in this session's workspace; waits until its data is consistent."""
    return BOARD.stop(workspace_id) if workspace_id else "nothing is running"
