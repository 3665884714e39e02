"""A video file through a concept, frame by frame (`e2gan edit-video`).

PyAV (FFmpeg's libraries) decodes and encodes: the frames go through any image maker (a list of
PIL images -> their edits, e.g. an `EditPipeline` with its adapter) in small batches, the audio is
copied packet by packet as it is, and the frames keep their timestamps, so the edit plays in
sync with its sound. What a run reports besides the file:

- throughput, frames per second of the whole loop (decode, edit, encode);
- flicker: the mean absolute change from one frame to the next (grey levels, on a small grey
  copy), of the output and of the input. A per-frame editor adds flicker where its output
  changes more than its input does; the ratio says how much (1: as steady as the source).

The file is written under a temporary name beside `output` and takes its name only when the run
ends: a finished run, or a stopped one (`should_stop`), leaves a playable file of the frames done;
an error leaves nothing. H.264 in yuv420p wants even sides: an odd width or height loses its last
column or row.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import av
import numpy as np
from PIL import Image

from e2gan.errors import E2GANError

Maker = Callable[[list[Image.Image]], list[Image.Image]]
FLICKER_SIDE = 64  # frames are compared on a grey copy this wide: motion, not noise, dominates
VIDEO_CODEC = "libx264"
# x264's constant quality: 18 is near transparent, so the file shows the edit, not the codec
VIDEO_OPTIONS = {"crf": "18", "preset": "veryfast"}


@dataclass(frozen=True)
class VideoProgress:
    """After each batch of frames: how far the edit is."""

    frames_done: int
    frames_total: int | None  # what the file's header says (None when it does not)
    seconds: float

    @property
    def frames_per_second(self) -> float:
        return self.frames_done / self.seconds if self.seconds > 0 else 0.0

    @property
    def eta_seconds(self) -> float | None:
        rate = self.frames_per_second
        if not self.frames_total or rate <= 0:
            return None
        return max(self.frames_total - self.frames_done, 0) / rate


@dataclass
class VideoResult:
    output: str | None  # None when no frame was written (a stop before the first)
    frames: int
    seconds: float
    frames_per_second: float
    width: int
    height: int
    frame_rate: float
    audio: bool  # the source's audio was copied
    stopped: bool
    flicker_output: float | None  # mean absolute frame-to-frame change, grey levels 0-255
    flicker_input: float | None

    @property
    def flicker_ratio(self) -> float | None:
        if not self.flicker_output or not self.flicker_input:
            return None
        return self.flicker_output / self.flicker_input

    def to_dict(self) -> dict:
        ratio = self.flicker_ratio
        return {**asdict(self), "seconds": round(self.seconds, 2),
                "frames_per_second": round(self.frames_per_second, 2),
                "flicker_output": _rounded(self.flicker_output),
                "flicker_input": _rounded(self.flicker_input),
                "flicker_ratio": None if ratio is None else round(ratio, 3)}


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


class _Flicker:
    """Running mean of |frame_t - frame_t-1| on small grey copies."""

    def __init__(self) -> None:
        self.previous: np.ndarray | None = None
        self.total, self.count = 0.0, 0

    def add(self, image: Image.Image) -> None:
        height = max(1, round(image.height * FLICKER_SIDE / image.width))
        grey = np.asarray(image.convert("L").resize((FLICKER_SIDE, height)), dtype=np.float32)
        if self.previous is not None and self.previous.shape == grey.shape:
            self.total += float(np.abs(grey - self.previous).mean())
            self.count += 1
        self.previous = grey

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None


def edit_video(source: str | os.PathLike, output: str | os.PathLike, edit: Maker,
               batch_size: int = 4, on_progress: Callable[[VideoProgress], None] | None = None,
               should_stop: Callable[[], bool] | None = None) -> VideoResult:
    """Edit every frame of the video `source` with `edit` into `output` (its container from the
    suffix: .mp4, .mkv, .mov), copying the audio. See the module docstring."""
    source, output = Path(source), Path(output)
    if not source.is_file():
        raise E2GANError(f"no video file at {source}")
    if batch_size < 1:
        raise E2GANError(f"batch size must be at least 1, got {batch_size}")
    if output.resolve() == source.resolve():
        raise E2GANError("the edited video needs another file than its source")
    try:
        reader = av.open(str(source))
    except av.error.FFmpegError as error:
        raise E2GANError(f"{source.name} is not a video FFmpeg can read ({error})") from None
    partial = output.with_name(f".{output.stem}.partial{output.suffix}")
    output.parent.mkdir(parents=True, exist_ok=True)
    with reader:
        if not reader.streams.video:
            raise E2GANError(f"{source.name} has no video stream")
        video = reader.streams.video[0]
        audio = reader.streams.audio[0] if reader.streams.audio else None
        rate = video.average_rate or video.guessed_rate
        if not rate:
            raise E2GANError(f"{source.name} does not say its frame rate")
        try:
            writer = av.open(str(partial), mode="w")
        except (av.error.FFmpegError, ValueError) as error:
            raise E2GANError(f"cannot write a video as {output.name} ({error}): use .mp4, "
                             ".mkv or .mov") from None
        try:
            result = _transcode(reader, video, audio, rate, writer, edit, batch_size,
                                on_progress, should_stop)
        except BaseException:
            writer.close()
            partial.unlink(missing_ok=True)
            raise
        writer.close()
    if result.frames:
        os.replace(partial, output)
        result.output = str(output)
    else:
        partial.unlink(missing_ok=True)
    return result


def _transcode(reader, video, audio, rate, writer, edit: Maker, batch_size: int,
               on_progress, should_stop) -> VideoResult:
    copied_audio = writer.add_stream_from_template(audio) if audio is not None else None
    encoder = None
    total = video.frames or (int(float(video.duration * video.time_base) * rate)
                             if video.duration else None)
    flicker_in, flicker_out = _Flicker(), _Flicker()
    started, done, stopped = time.perf_counter(), 0, False
    batch: list[av.VideoFrame] = []
    # Audio that comes before the first edited frame waits: the video stream's size is known only
    # then, and a container takes no new stream once it has written a packet.
    waiting_audio: list[av.Packet] = []

    def flush(frames: list[av.VideoFrame]) -> None:
        nonlocal encoder, done
        pictures = [frame.to_image() for frame in frames]
        edited = edit(pictures)
        for frame, picture, result in zip(frames, pictures, edited):
            if encoder is None:
                encoder = writer.add_stream(VIDEO_CODEC, rate=rate)
                encoder.width, encoder.height = result.width // 2 * 2, result.height // 2 * 2
                encoder.pix_fmt = "yuv420p"
                encoder.options = dict(VIDEO_OPTIONS)
                encoder.time_base = video.time_base
                for packet in waiting_audio:
                    writer.mux(packet)
                waiting_audio.clear()
            if result.size != (encoder.width, encoder.height):
                result = result.crop((0, 0, encoder.width, encoder.height))
            out = av.VideoFrame.from_image(result.convert("RGB"))
            out.pts, out.time_base = frame.pts, frame.time_base
            writer.mux(encoder.encode(out))
            flicker_in.add(picture)
            flicker_out.add(result)
            done += 1
        if on_progress is not None:
            on_progress(VideoProgress(done, total, time.perf_counter() - started))

    streams = [video] + ([audio] if audio is not None else [])
    for packet in reader.demux(*streams):
        if packet.stream is audio:
            if packet.dts is not None:  # the demuxer's empty flush packet carries none
                packet.stream = copied_audio
                if encoder is None:
                    waiting_audio.append(packet)
                else:
                    writer.mux(packet)
            continue
        for frame in packet.decode():
            batch.append(frame)
            if len(batch) == batch_size:
                flush(batch)
                batch = []
                if should_stop is not None and should_stop():
                    stopped = True
                    break
        if stopped:
            break
    if batch and not stopped:
        flush(batch)
    if encoder is not None:
        writer.mux(encoder.encode(None))  # the frames the encoder still holds
    seconds = time.perf_counter() - started
    return VideoResult(None, done, seconds, done / seconds if seconds > 0 else 0.0,
                       encoder.width if encoder else 0, encoder.height if encoder else 0,
                       float(rate), copied_audio is not None, stopped, flicker_out.mean,
                       flicker_in.mean)
