"""The Live tab's work: a webcam's frames through a concept, one frame per call.

A frame's call must be cheap: the model is a cached pipeline (`app.compare.cached_pipeline`, the
one Compare and the video edit use), so no frame loads weights; a Hub adapter is looked up once
per process (`hub_adapter`); the pipeline's lock is held while the strength is switched, the frame
edited and the strength put back, as `app.compare.apply_adapter` does. The edit itself is
`EditPipeline`'s (which adds a concept's grain), so what is shown is what export and Compare show.

The short side frames are edited at starts at the visitor's setting and comes down by steps when
edits take longer than `FRAME_BUDGET_SECONDS` (a loaded CPU, a large setting), and goes back up
when they are quick again. Frames per second are counted from the calls that reach the server, so
they include the browser's capture, the upload and the image shown.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw

from e2gan.checks import check_adapter_scale, check_edit_size
from e2gan.errors import E2GANError
from e2gan.files import to_rgb
from e2gan.hub.adapters import hub_reference, resolve_adapter
from e2gan.inference.pipeline import EditPipeline

from app.compare import adapter_files, adapter_pipeline, cached_pipeline
from app.video import edit_size
from app.workspace import Workspace

BASE_PREFIX = "base model · "  # a choice naming one of the base's own concepts
LAYOUTS = ("side by side", "before / after", "edited only")
DEFAULT_SIZE = 256
MIN_LIVE_SIZE = 64  # adapting never goes below this short side
SIZE_STEP = 16  # sizes move in steps the generator pads little for
# An edit longer than this (smoothed) lowers the size; one under half of it raises it again.
FRAME_BUDGET_SECONDS = 0.15
SMOOTHING = 0.5  # weight of the newest frame in the smoothed edit time
FPS_WINDOW = 12  # frames the rate is counted over
WARM_UP_FRAMES = 2  # a stream's first edits (caches, allocations) do not change its size


@dataclass
class LiveModel:
    """What one choice edits with: a cached pipeline, its lock, the adapter to switch on (None:
    the bare base) and the prompt."""

    pipeline: EditPipeline
    lock: threading.Lock
    adapter: str | None
    prompt: str
    label: str


@dataclass
class LiveState:
    """One page's stream: the size it edits at now, and what its rate is counted from."""

    size: int = DEFAULT_SIZE
    wanted: int = DEFAULT_SIZE
    smoothed_seconds: float | None = None
    arrivals: deque = field(default_factory=lambda: deque(maxlen=FPS_WINDOW))
    frames: int = 0
    note: str = ""
    error: str = ""  # the last error told, so a stream tells each one once

    def frames_per_second(self) -> float | None:
        if len(self.arrivals) < 2 or self.arrivals[-1] <= self.arrivals[0]:
            return None
        return (len(self.arrivals) - 1) / (self.arrivals[-1] - self.arrivals[0])


_hub_files: dict[str, Path] = {}
_hub_lock = threading.Lock()


def hub_adapter(reference: str) -> Path:
    """The file of a Hub adapter id, looked up (and downloaded) once per process: a frame must
    never wait on the network."""
    with _hub_lock:
        if reference in _hub_files:
            return _hub_files[reference]
    path = resolve_adapter(reference)
    if not path.is_file():
        raise E2GANError(f"no adapter file for {reference} on the Hub")
    with _hub_lock:
        _hub_files[reference] = path
    return path


def live_choices(workspace: Workspace | None, base_dir: Path) -> list[str]:
    """The workspace's adapters, then the base's own concepts (a Hub id is typed)."""
    names = list(adapter_files(workspace)) if workspace is not None else []
    pipeline, _ = cached_pipeline(Path(base_dir))
    return names + [BASE_PREFIX + concept for concept in pipeline.prompts_known()]


def live_model(workspace: Workspace, choice: str | None, base_dir: Path) -> LiveModel:
    """The model a choice names: a concept of the workspace (by default its current one), one of
    the base's own concepts, or a Hub adapter id (`user/name`)."""
    choice = (choice or "").strip()
    files = adapter_files(workspace)
    if not choice:
        current = workspace.current_name()
        if current not in files:
            raise E2GANError("no adapter yet: fine-tune a concept first (4 · Fine-tune), or pick "
                             "the base model or type a Hub adapter id (user/name)")
        choice = current
    if choice.startswith(BASE_PREFIX):
        concept = choice[len(BASE_PREFIX):]
        pipeline, lock = cached_pipeline(Path(base_dir))
        if concept not in pipeline.prompts_known():
            raise E2GANError(f"the base model has no concept {concept!r}")
        return LiveModel(pipeline, lock, None, concept, f"base model ({concept})")
    if choice in files:
        path, label = files[choice], choice
    elif hub_reference(choice) is not None:
        path, label = hub_adapter(choice), choice
    else:
        raise E2GANError(f"no adapter {choice!r} in this workspace (one on the Hub: user/name)")
    pipeline, lock = adapter_pipeline(path, base_dir)
    name = next(iter(pipeline.adapters))
    return LiveModel(pipeline, lock, name, pipeline.adapters[name].prompt, label)


def edit_frame(model: LiveModel, frame: Image.Image, strength: float, size: int
               ) -> tuple[Image.Image, float]:
    """(edited frame, seconds) at short side `size`, the adapter at `strength` for this frame
    only (the cached pipeline is shared with Compare and the video edit)."""
    with model.lock:
        if model.adapter is None:
            model.pipeline.use_adapter(None)
        else:
            model.pipeline.use_adapter(model.adapter, strength)
        try:
            started = time.perf_counter()
            edited = model.pipeline([frame], model.prompt, size=size)[0]
            return edited, time.perf_counter() - started
        finally:
            if model.adapter is not None:
                model.pipeline.use_adapter(model.adapter, 1.0)


def compose(source: Image.Image, edited: Image.Image, layout: str, split: float = 0.5
            ) -> Image.Image:
    """What the page shows: source | edited, a before/after split at `split` of the width (the
    source left of the line), or the edit alone."""
    if layout == "edited only":
        return edited
    source = source.resize(edited.size, Image.BICUBIC) if source.size != edited.size else source
    width, height = edited.size
    if layout == "side by side":
        shown = Image.new("RGB", (2 * width, height))
        shown.paste(source, (0, 0))
        shown.paste(edited, (width, 0))
        return shown
    if layout != "before / after":
        raise E2GANError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    cut = round(width * min(max(split, 0.0), 1.0))
    shown = edited.copy()
    shown.paste(source.crop((0, 0, cut, height)), (0, 0))
    if 0 < cut < width:
        ImageDraw.Draw(shown).line([(cut, 0), (cut, height)], fill=(255, 255, 255), width=2)
    return shown


def adapt(state: LiveState, seconds: float, used: int | None = None) -> None:
    """Lower the size when edits run over the budget, raise it back toward the setting when they
    are well under it (both smoothed, so one slow frame changes nothing). `used`: the short side
    this edit ran at (a small camera's frames are never upscaled), which a lowering starts from.
    A stream's first `WARM_UP_FRAMES` are not judged: they carry one-off costs."""
    if state.frames <= WARM_UP_FRAMES:
        return
    state.smoothed_seconds = (seconds if state.smoothed_seconds is None else
                              SMOOTHING * seconds + (1 - SMOOTHING) * state.smoothed_seconds)
    smoothed, used = state.smoothed_seconds, min(used or state.size, state.size)
    if smoothed > FRAME_BUDGET_SECONDS and used > MIN_LIVE_SIZE:
        state.size = max(MIN_LIVE_SIZE, (used * 3 // 4) // SIZE_STEP * SIZE_STEP)
        state.smoothed_seconds = None  # judge the new size on its own frames
        state.note = (f"lowered from {state.wanted} px: frames took "
                      f"{smoothed * 1000:.0f} ms, over the {FRAME_BUDGET_SECONDS * 1000:.0f} ms budget")
    elif smoothed < FRAME_BUDGET_SECONDS / 2 and state.size < state.wanted:
        state.size = min(state.wanted, (state.size * 5 // 4 + SIZE_STEP - 1) // SIZE_STEP * SIZE_STEP)
        state.smoothed_seconds = None
        state.note = "" if state.size == state.wanted else f"raised back toward {state.wanted} px"


def live_text(state: LiveState, edited: Image.Image, seconds: float, label: str,
              device: str) -> str:
    fps = state.frames_per_second()
    rate = f"{fps:.1f} fps" if fps is not None else "fps: counting…"
    line = (f"**{label}** · frames at **{edited.width}×{edited.height} px** · **{rate}** · "
            f"latency {seconds * 1000:.0f} ms an edit on {device}")
    return line + (f" · size {state.note}" if state.note else "")


def live_frame(workspace: Workspace, frame: Image.Image | None, choice: str | None,
               strength: float, wanted_size: int | None, layout: str, split: float,
               state: LiveState | None, base_dir: Path, device: str = "this device",
               adaptive: bool = True) -> tuple[Image.Image, str, LiveState]:
    """One webcam frame through the chosen model: (the image to show, the status line, the
    stream's state for its next frame). The frame is edited at the state's current short side
    (never above the frame's own); that size then adapts for the next frame."""
    if frame is None:
        raise E2GANError("no camera frame yet: allow the camera and press record")
    check_adapter_scale(strength)
    wanted = check_edit_size(wanted_size) or DEFAULT_SIZE
    if state is None or state.wanted != wanted:
        state = LiveState(size=wanted, wanted=wanted, error=state.error if state else "")
    model = live_model(workspace, choice, base_dir)
    frame = to_rgb(frame, "the camera frame")
    size = edit_size(frame.width, frame.height, state.size)
    edited, seconds = edit_frame(model, frame, strength, size)
    state.arrivals.append(time.perf_counter())
    state.frames += 1
    text = live_text(state, edited, seconds, model.label, device)
    if adaptive:
        adapt(state, seconds, size)
    return compose(frame, edited, layout, split), text, state
