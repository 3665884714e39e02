"""Compare's video: the current concept's adapter over a whole video file, as a job of the
workspace (progress with time left, Stop, a reloaded page follows it), on the engine's
`edit_video` (`e2gan.inference.video`: the audio kept, a stopped run still a playable file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import av

from e2gan.checks import check_adapter_scale, check_edit_size
from e2gan.errors import E2GANError
from e2gan.inference.video import edit_video

from app.compare import adapter_pipeline
from app.events import JobEvent
from app.jobs import BOARD
from app.settings import MAX_VIDEO_FRAMES, SETTINGS
from app.workspace import Workspace

VIDEO_JOB = "video edit"  # the job board's name for this kind of job


def video_shape(path: str | Path) -> tuple[int, int, int]:
    """(width, height, frames) of a video file, from its header; refused by name if unreadable."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise E2GANError(f"{Path(path).name} has no video stream")
            stream = container.streams.video[0]
            frames = stream.frames  # 0 where the header does not count them: from the duration
            if not frames and stream.duration and stream.average_rate:
                frames = int(float(stream.duration * stream.time_base) * float(stream.average_rate))
            return stream.width, stream.height, frames
    except av.error.FFmpegError as error:
        raise E2GANError(f"{Path(path).name} is not a video FFmpeg can read ({error})") from None


def edit_size(width: int, height: int, wanted: int | None) -> int:
    """The short side frames are edited at: `wanted` (default 256), no larger than the frame's own
    and never putting the long side over `SETTINGS.max_edit_side`, as Compare's photos."""
    short, long = min(width, height), max(width, height)
    cap = short if long <= SETTINGS.max_edit_side else short * SETTINGS.max_edit_side // long
    return max(32, min(check_edit_size(wanted or 256), cap))


def stream_video_edit(workspace: Workspace, video_path: str | Path, strength: float = 1.0,
                      size: int | None = None, base_dir=None) -> Iterator[JobEvent]:
    """Edit the video with the current concept's adapter at `strength`; yields the engine's
    `VideoProgress` after each batch of frames, then `JobDone` with the run's report (its
    `output` is the edited file in the concept's `videos/`)."""
    folder = workspace.current()
    if not folder.has_adapter():
        raise E2GANError(f"concept {folder.name!r} has no adapter yet: fine-tune it first "
                         "(4 · Fine-tune)")
    check_adapter_scale(strength)
    if not video_path:
        raise E2GANError("upload a video first")
    width, height, frames = video_shape(video_path)
    MAX_VIDEO_FRAMES.check(frames, f"video {Path(video_path).name} has {frames} frames")
    short_side = edit_size(width, height, size)
    output = folder.root / "videos" / f"{Path(video_path).stem}-{folder.name}.mp4"

    def work(report, should_stop) -> dict[str, Any]:
        pipeline, lock = adapter_pipeline(folder.adapter_file, base_dir)
        name = next(iter(pipeline.adapters))
        prompt = pipeline.adapters[name].prompt

        def edit(images):
            with lock:  # the cached pipeline is shared with Compare: its strength is ours per batch
                pipeline.use_adapter(name, strength)
                try:
                    return pipeline(images, prompt, size=short_side)
                finally:
                    pipeline.use_adapter(name, 1.0)

        result = edit_video(video_path, output, edit, on_progress=report, should_stop=should_stop)
        return {**result.to_dict(), "short_side": short_side, "strength": strength}

    yield from BOARD.stream(workspace.id, VIDEO_JOB, work)
