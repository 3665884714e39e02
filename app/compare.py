"""Step 5, Compare: one image through the teacher, the base and the adapters, with latencies.

Pipelines are cached per adapter file (keyed by its path and modification time, so a retrained
adapter is reloaded) because loading the base is the slow part of an edit; a lock per pipeline
keeps two sessions from switching one generator's adapter under each other.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import OrderedDict
from pathlib import Path

from PIL import Image

from e2gan.errors import E2GANError
from e2gan.files import MIN_IMAGE_SIDE, to_rgb
from e2gan.hub.adapters import hub_reference, resolve_adapter
from e2gan.paths import default_base_dir
from e2gan.evaluation.profiling import count_macs
from e2gan.inference.pipeline import EditPipeline
from e2gan.teachers import TEACHERS
from e2gan.teachers.cost import TEACHER_ARCHITECTURES, teacher_cost

from app import gpu
from app.baseline import has_pix2pix, pix2pix_dir, pix2pix_label, pix2pix_metrics
from app.concepts import get_teacher, teacher_prompt
from app.settings import SETTINGS
from app.workspace import ConceptFolder, Workspace

_CACHE_SIZE = 6
_cache: OrderedDict[tuple, tuple[EditPipeline, threading.Lock]] = OrderedDict()
_cache_lock = threading.Lock()


def cached_pipeline(model_dir: Path, adapter_file: Path | None = None
                    ) -> tuple[EditPipeline, threading.Lock]:
    """A pipeline of `model_dir` (+ `adapter_file`), cached, and the lock to hold while using it.
    The key holds the files' modification times, so a retrained model or adapter is reloaded."""
    weights = model_dir / "model.safetensors"
    device = gpu.device(SETTINGS.device)  # the lent GPU inside a ZeroGPU call, the studio's device elsewhere
    key = (str(model_dir), weights.stat().st_mtime_ns if weights.is_file() else 0,
           str(adapter_file), adapter_file.stat().st_mtime_ns if adapter_file else 0, device)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    pipeline = EditPipeline.from_pretrained(model_dir, device=device)
    if adapter_file is not None:
        pipeline.load_adapter(adapter_file)
    with _cache_lock:
        _cache[key] = (pipeline, threading.Lock())
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
        return _cache[key]


def adapter_pipeline(adapter_file: Path, base_dir=None) -> tuple[EditPipeline, threading.Lock]:
    """A pipeline with `adapter_file` loaded on the base (cached), and its lock."""
    return cached_pipeline(Path(base_dir or default_base_dir()), adapter_file)


def pix2pix_edit(folder: ConceptFolder, image: Image.Image, size: int) -> tuple[Image.Image, float]:
    """The concept's pix2pix baseline on the image (it takes no prompt)."""
    pipeline, lock = cached_pipeline(pix2pix_dir(folder))
    with lock:
        started = time.perf_counter()
        edited = pipeline([to_rgb(image)], "", size=size)[0]
        return edited, time.perf_counter() - started


def apply_adapter(adapter_file: Path, image: Image.Image, scale: float = 1.0,
                  size: int | None = None, base_dir=None, adapter_on: bool = True
                  ) -> tuple[Image.Image, float]:
    """(edited image, seconds) for one image through base + adapter at `scale`."""
    if image is None:
        raise E2GANError("pick or upload an image first")
    if not 0.0 <= scale <= 2.0:
        raise E2GANError(f"adapter strength must lie in [0, 2], got {scale}")
    pipeline, lock = adapter_pipeline(Path(adapter_file), base_dir)
    name = next(iter(pipeline.adapters))
    prompt = pipeline.adapters[name].prompt
    with lock:
        pipeline.use_adapter(name if adapter_on else None, scale)
        started = time.perf_counter()
        edited = pipeline([to_rgb(image)], prompt, size=size)[0]
        seconds = time.perf_counter() - started
        pipeline.use_adapter(name, 1.0)
    return edited, seconds


def teacher_edit(folder: ConceptFolder, image: Image.Image, shape: tuple[int, int]
                 ) -> tuple[Image.Image | None, float, str]:
    """The concept's teacher on the image at the compared (width, height), or None and why not."""
    spec = folder.spec()
    try:
        teacher = get_teacher(spec.teacher, spec.teacher_params)
        small = image.resize(shape)
        started = time.perf_counter()
        edited = teacher.edit([small], teacher_prompt(spec), [spec.seed])[0]
        return edited, time.perf_counter() - started, ""
    except E2GANError as error:
        return None, 0.0, str(error)


def shown_size(image: Image.Image) -> int:
    """The shorter side an image is edited at in Compare: its own, unless that puts the long side
    over `SETTINGS.max_edit_side` (the generator is fully convolutional; the cap bounds the time
    and memory of one edit)."""
    long_side, short_side = max(image.size), min(image.size)
    if long_side <= SETTINGS.max_edit_side:
        return short_side
    return max(MIN_IMAGE_SIDE, short_side * SETTINGS.max_edit_side // long_side)


def adapter_files(workspace: Workspace) -> dict[str, Path]:
    """Every adapter in this workspace, by concept name."""
    return {folder.name: folder.adapter_file for folder in workspace.concepts() if folder.has_adapter()}


def other_adapter(workspace: Workspace, other: str) -> Path:
    """The adapter to compare with: one of this workspace's concepts, or one on the Hugging Face
    Hub by its id (`user/name`; from the local cache, else downloaded into it)."""
    files = adapter_files(workspace)
    if other in files:
        return files[other]
    if hub_reference(other) is None:
        raise E2GANError(f"no adapter {other!r} in this workspace (one on the Hub: user/name)")
    return resolve_adapter(other)


def compare(workspace: Workspace, image: Image.Image, scale: float = 1.0,
            other: str | None = None, size: int | None = None, base_dir=None) -> dict:
    """Teacher, base, this concept's adapter, its pix2pix baseline where one was trained (and
    another adapter, of this workspace or on the Hub) on one image, at the image's own size
    (`shown_size`) unless `size` says.

    Returns {"images": {label: image}, "latency": {label: seconds}, "notes": [...]}. With a
    diffusion teacher this is one GPU call on a ZeroGPU Space (`compare_on_gpu`).
    """
    if image is None:
        raise E2GANError("pick or upload an image first")
    folder = workspace.current()
    if not folder.has_adapter():
        raise E2GANError(f"concept {folder.name!r} has no adapter yet: fine-tune first")
    image = to_rgb(image)
    if other and other != folder.name:
        other_adapter(workspace, other)  # a Hub adapter downloads here, not in a GPU call
    if gpu.teacher_needs_gpu(folder.spec().teacher):
        return gpu.outcome(compare_on_gpu(workspace, image, scale, other, size, base_dir))
    return edit_with_every_model(workspace, image, scale, other, size, base_dir)


def edit_with_every_model(workspace: Workspace, image: Image.Image, scale: float,
                          other: str | None, size: int | None, base_dir) -> dict:
    """`compare`'s work, where the GPU is."""
    folder = workspace.current()
    images, latency, notes = {}, {}, []
    if size is None:
        size = shown_size(image)
        if size < min(image.size):
            notes.append(f"edited at a long side of {SETTINGS.max_edit_side} px (the photo is "
                         f"{image.width}x{image.height}); E2GAN_MAX_EDIT_SIDE sets that cap")
    base, base_seconds = apply_adapter(folder.adapter_file, image, scale, size, base_dir,
                                       adapter_on=False)
    # The teacher at the size the generator's edits come back at (the photo's own, or the
    # capped one), so every picture lines up.
    teacher, seconds, why = teacher_edit(folder, image, base.size)
    if teacher is not None:
        images["teacher"], latency["teacher"] = teacher, seconds
    else:
        notes.append(f"teacher: {why}")
    images["base model"], latency["base model"] = base, base_seconds
    label = f"{folder.name} (strength {scale:g})"
    images[label], latency[label] = apply_adapter(folder.adapter_file, image, scale, size, base_dir)
    replaced = replaced_teacher_note(folder, teacher is not None, images[label].size,
                                     latency[label], base_dir)
    if replaced:
        notes.append(replaced)
    if has_pix2pix(folder):
        baseline = pix2pix_label(folder)
        images[baseline], latency[baseline] = pix2pix_edit(folder, image, size)
    if other and other != folder.name:
        images[other], latency[other] = apply_adapter(other_adapter(workspace, other), image, 1.0,
                                                      size, base_dir)
    return {"images": images, "latency": latency, "notes": notes, "adapter_label": label}


# What Compare shows a concept replaces when its own teacher is no diffusion model: the studio's
# default diffusion editor with its default settings.
REPLACED_TEACHER = "instruct-pix2pix"


@functools.lru_cache(maxsize=4)
def _generator_macs_per_pixel(model_dir: str) -> float:
    """The generator's multiply-adds per output pixel, counted once at 256 px: its convolutions
    scale with the pixels and its bottleneck attention is a small share."""
    pipeline, lock = cached_pipeline(Path(model_dir))
    with lock:
        pipeline.use_adapter(None)
        return count_macs(pipeline.generator, 256)["macs"] / 256**2


def replaced_teacher_note(folder: ConceptFolder, teacher_measured: bool, size: tuple[int, int],
                          adapter_seconds: float, base_dir) -> str | None:
    """What a diffusion teacher would take here, estimated, when Compare did not just measure
    one: its counted multiply-adds over the rate this device achieved on the adapter's edit."""
    spec = folder.spec()
    diffusion = gpu.teacher_needs_gpu(spec.teacher)
    if diffusion and teacher_measured:
        return None  # its time is in the list, measured
    name = spec.teacher if diffusion else REPLACED_TEACHER
    if name not in TEACHER_ARCHITECTURES or adapter_seconds <= 0:
        return None
    settings = {**TEACHERS.get(name).defaults, **(spec.teacher_params if diffusion else {})}
    cost = teacher_cost(name, settings)
    model_dir = str(Path(base_dir or default_base_dir()))
    rate = _generator_macs_per_pixel(model_dir) * size[0] * size[1] / adapter_seconds
    seconds = cost.macs / rate
    what = "this concept's teacher" if diffusion else "a diffusion teacher"
    return (f"{what} ({cost.describe()}) would take about {_duration(seconds)} an image on "
            f"{SETTINGS.device_label}: an estimate, from its counted multiply-adds at the "
            f"{rate / 1e9:.0f} G multiply-adds per second the adapter's edit just ran at")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# Loading one generator (base, adapter, pix2pix) and editing one photo with it, on a GPU.
MODEL_SECONDS = 2.0


def compare_seconds(workspace: Workspace, image: Image.Image, scale: float = 1.0,
                    other: str | None = None, size: int | None = None, base_dir=None) -> float:
    """GPU seconds of one comparison: the teacher's load and edit, then each generator."""
    folder = workspace.current()
    spec = folder.spec()
    load, per_image = gpu.teacher_image_seconds(spec.teacher, spec.teacher_params)
    models = 2 + has_pix2pix(folder) + bool(other and other != folder.name)
    return (gpu.CALL_START_SECONDS + load + per_image + models * MODEL_SECONDS) * gpu.SAFETY


compare_on_gpu = gpu.call_task(compare_seconds, edit_with_every_model)


def metric_rows(folder: ConceptFolder) -> list[dict]:
    """The concept's metrics table: the fine-tune's rows, then the pix2pix baseline's if any."""
    rows = list((folder.training() or {}).get("metrics", []))
    baseline = pix2pix_metrics(folder)
    if baseline and "psnr" in baseline:
        rows.append({**baseline, "model": pix2pix_label(folder)})
    return rows
