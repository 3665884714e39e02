"""Step 4, Fine-tune: LoRA on the crucial layers of the base, from the curated pairs, live.

The engine's `finetune` is run in short time slices. Each slice resumes the previous one's exact
state (weights, optimiser moments, data order) and ends by writing the adapter atomically, so the
studio can draw sample outputs from the adapter as it improves, and Stop (which ends the current
slice cleanly) always leaves the last good adapter on disk; "continue" picks up from there.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Iterator

from PIL import Image

from e2gan import lora
from e2gan.checkpoint import load_generator, load_rank_table
from e2gan.data.torch_data import resize_and_center_crop
from e2gan.errors import E2GANError
from e2gan.files import atomic_save_image, atomic_write_json
from e2gan.paths import default_base_dir
from e2gan.pipeline import EditPipeline
from e2gan.training.recipes import TrainingSettings, finetune

from app.concept_metrics import concept_metrics
from app.jobs import BOARD
from app.settings import SETTINGS
from app.workspace import ConceptFolder, Workspace

SLICE_SECONDS = 45.0  # how often samples refresh; each slice costs ~1 s of reloading
SAMPLE_COUNT = 4


@dataclass
class FinetuneRequest:
    minutes: float = SETTINGS.train_minutes  # wall-clock training budget
    epochs: int = 0  # 0: no epoch limit, the time budget ends training
    size: int = SETTINGS.train_size
    learning_rate: float = SETTINGS.learning_rate
    batch_size: int = SETTINGS.batch_size
    rank: int = 0  # 0: the base's searched per-layer ranks; else this rank on every crucial layer
    continue_previous: bool = False
    seed: int = 0

    def check(self) -> None:
        if not self.minutes > 0:
            raise E2GANError(f"training minutes must be positive, got {self.minutes}")
        if self.epochs < 0:
            raise E2GANError(f"epochs must not be negative, got {self.epochs}")
        if self.size < 32 or self.size % 4:
            raise E2GANError(f"training size must be a multiple of 4 and at least 32, got {self.size}")
        if self.rank < 0:
            raise E2GANError(f"rank must not be negative, got {self.rank}")
        TrainingSettings(size=self.size, batch_size=self.batch_size, learning_rate=self.learning_rate)


def training_ids(folder: ConceptFolder) -> tuple[list[str], str]:
    """The curated pairs, or every training pair when nothing was selected (and say which)."""
    selection = folder.selection()
    dataset = folder.require_dataset()
    if selection and selection.get("ids"):
        return list(selection["ids"]), f"{len(selection['ids'])} curated pairs"
    ids = [record.id for record in dataset.split("train")]
    return ids, f"all {len(ids)} training pairs (no selection made)"


def _ranks(base_dir, rank: int) -> dict[str, int] | None:
    if rank == 0:
        return load_rank_table(base_dir)  # None falls back to the engine's default
    generator = load_generator(base_dir).generator
    return {name: rank for name in lora.crucial_layers(generator)}


def sample_grid(folder: ConceptFolder, base_dir, size: int) -> Image.Image:
    """Rows of held-out pairs: source | teacher | adapter, at the training size."""
    dataset = folder.require_dataset()
    records = (dataset.split("test") or dataset.split("train"))[:SAMPLE_COUNT]
    pairs = [dataset.load_pair(record) for record in records]
    sources = [resize_and_center_crop(source, size) for source, _ in pairs]
    targets = [resize_and_center_crop(edited, size) for _, edited in pairs]
    pipeline = EditPipeline.from_pretrained(base_dir, device=SETTINGS.device)
    pipeline.load_adapter(folder.adapter_file)
    outputs = pipeline(sources, pipeline.adapters[next(iter(pipeline.adapters))].prompt)
    sheet = Image.new("RGB", (size * 3, size * len(records)), "white")
    for row, images in enumerate(zip(sources, targets, outputs)):
        for column, image in enumerate(images):
            sheet.paste(image.resize((size, size)), (column * size, row * size))
    return sheet


def stream_finetune(workspace: Workspace, request: FinetuneRequest,
                    base_dir=None) -> Iterator[dict[str, Any]]:
    """Fine-tune the current concept; yields step events, {"samples": path} after each slice,
    then {"done": True, "result": training summary}."""
    request.check()
    folder = workspace.current()
    dataset = folder.require_dataset()
    ids, described = training_ids(folder)
    base_dir = base_dir or default_base_dir()
    ranks = _ranks(base_dir, request.rank)
    state_file = folder.adapter_file.with_name(folder.adapter_file.name + ".training_state.pt")
    resume = request.continue_previous and state_file.is_file()
    previous = (folder.training() or {}) if resume else {}
    steps_per_epoch = max(1, math.floor(len(ids) / request.batch_size))
    total_steps = request.epochs * steps_per_epoch if request.epochs else 1_000_000
    budget = request.minutes * 60.0

    def work(report, should_stop) -> dict[str, Any]:
        history: list[dict] = list(previous.get("history", []))
        trained = 0.0
        offset = float(previous.get("train_seconds", 0.0))
        started = time.perf_counter()
        first, outcome = True, None
        while trained < budget - 0.5 and not should_stop():
            settings = TrainingSettings(
                size=request.size, steps=total_steps, batch_size=request.batch_size,
                learning_rate=request.learning_rate, seed=request.seed, device=SETTINGS.device,
                max_seconds=min(SLICE_SECONDS, budget - trained), checkpoint_every=0)

            def relay(event: dict, done_before=trained) -> None:
                seconds = done_before + event["seconds"]
                row = {"step": event["step"], "seconds": round(offset + seconds, 2),
                       **{k: round(v, 4) for k, v in event["losses"].items()}}
                history.append(row)
                steps_left = (total_steps - event["step"]) * request.batch_size / max(event["images_per_second"], 1e-9)
                report({"step": event["step"], "seconds": seconds, "budget": budget,
                        "eta_seconds": min(budget - seconds, steps_left), "losses": event["losses"]})

            outcome = finetune(base_dir, dataset, folder.adapter_file, settings, ranks=ranks,
                               ids=ids, resume=resume or not first, on_progress=relay,
                               should_stop=should_stop)
            first = False
            trained += outcome.result.seconds
            atomic_save_image(folder.root / "samples.png", sample_grid(folder, base_dir, request.size))
            report({"samples": str(folder.root / "samples.png"), "step": outcome.result.steps_done,
                    "seconds": trained, "budget": budget, "history": history})
            if outcome.result.steps_done >= total_steps:
                break
        if outcome is None:
            raise E2GANError("training was stopped before it started")
        summary = {"request": asdict(request), "pairs": described, "steps": outcome.result.steps_done,
                   "train_seconds": round(offset + trained, 1),
                   "wall_seconds": round(time.perf_counter() - started, 1),
                   "stopped": bool(should_stop()), "adapter": str(folder.adapter_file),
                   "adapter_bytes": folder.adapter_file.stat().st_size, "history": history,
                   "finished": time.strftime("%Y-%m-%d %H:%M")}
        report({"evaluating": True})
        summary["metrics"] = concept_metrics(folder, base_dir, request.size)
        atomic_write_json(folder.training_file, summary)
        return summary

    yield {"step": 0, "seconds": 0.0, "budget": budget, "eta_seconds": budget, "pairs": described}
    yield from BOARD.stream(workspace.id, "fine-tuning", work)
