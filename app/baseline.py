"""The paper's baseline for one concept: pix2pix (9 residual blocks) trained from scratch on the
concept's pairs for a wall-clock budget, so Compare can set E2GAN's adapter beside it.

Trained by the engine's `train_pix2pix` as a stoppable job (its loop polls the stop flag and its
model folder is written atomically, config.json last), into the concept's `pix2pix/` folder;
training again continues from its saved state. When it ends it is judged like the other rows of
the concept's metrics (held-out pairs; FID/KID on request, `complete_pix2pix_fid`), and the row is
saved beside the model.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator

from e2gan.errors import E2GANError
from e2gan.files import atomic_write_json
from e2gan.inference.pipeline import EditPipeline
from e2gan.training.events import StepsLogged
from e2gan.training.recipes import TrainingSettings, train_pix2pix
from e2gan.training.settings import wall_clock_steps

from app.concept_metrics import judge
from app.events import Evaluating, JobEvent, TrainingProgress
from app.jobs import BOARD
from app.library import training_size
from app.settings import SETTINGS
from app.workspace import ConceptFolder, Workspace, read_json

PIX2PIX_ROW = "pix2pix (from scratch)"


def pix2pix_dir(folder: ConceptFolder) -> Path:
    return folder.root / "pix2pix"


def has_pix2pix(folder: ConceptFolder) -> bool:
    return (pix2pix_dir(folder) / "config.json").is_file()  # written last: the model is whole


def pix2pix_metrics(folder: ConceptFolder) -> dict | None:
    """The baseline's saved metrics row, or None."""
    return read_json(pix2pix_dir(folder) / "metrics.json") if has_pix2pix(folder) else None


def pix2pix_label(folder: ConceptFolder) -> str:
    seconds = (pix2pix_metrics(folder) or {}).get("train_seconds", 0.0)
    trained = f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"
    return f"pix2pix ({trained} from scratch)"


def stream_pix2pix(workspace: Workspace, minutes: float, size: int | None = None,
                   generator_config: dict | None = None) -> Iterator[JobEvent]:
    """Train the current concept's pix2pix baseline for `minutes` (more, when run again) at `size`
    (default: the adapter's training size);
    yields `TrainingProgress` events, `Evaluating`, then `JobDone` with the metrics row."""
    if not minutes > 0:
        raise E2GANError(f"training minutes must be positive, got {minutes}")
    folder = workspace.current()
    dataset = folder.require_dataset()
    # the adapter's size when there is one: the two are then judged on equal terms
    size = int(size or (training_size(folder) if folder.has_adapter() else SETTINGS.train_size))
    budget = float(minutes) * 60.0
    settings = TrainingSettings(size=size, steps=wall_clock_steps(), batch_size=SETTINGS.batch_size,
                                device=SETTINGS.device, max_seconds=budget, checkpoint_every=0)
    out = pix2pix_dir(folder)
    trained_before = (pix2pix_metrics(folder) or {}).get("train_seconds", 0.0)

    def work(report, should_stop) -> dict[str, Any]:
        def relay(event) -> None:
            if isinstance(event, StepsLogged):
                report(TrainingProgress(event.step, event.seconds, budget, event.eta_seconds,
                                        dict(event.losses)))

        outcome = train_pix2pix(dataset, out, settings, generator_config=generator_config,
                                resume=True, on_event=relay, should_stop=should_stop)
        report(Evaluating())
        pipeline = EditPipeline.from_pretrained(out, device=SETTINGS.device)
        row = {"model": PIX2PIX_ROW, "steps": outcome.result.steps_done,
               "train_seconds": round(trained_before + outcome.result.seconds, 1),
               "finished": time.strftime("%Y-%m-%d %H:%M")}
        if dataset.split("test"):
            row.update(judge(lambda images: pipeline(images, ""), folder, size, fid=False))
        atomic_write_json(out / "metrics.json", row)
        return row

    yield TrainingProgress(step=0, seconds=0.0, budget=budget, eta_seconds=budget)
    yield from BOARD.stream(workspace.id, "pix2pix training", work)


def complete_pix2pix_fid(folder: ConceptFolder) -> dict | None:
    """Add FID/KID to the baseline's metrics row when it lacks them (the Compare tab's button)."""
    row = pix2pix_metrics(folder)
    if not row or "psnr" not in row or "fid" in row:
        return row
    pipeline = EditPipeline.from_pretrained(pix2pix_dir(folder), device=SETTINGS.device)
    judged = judge(lambda images: pipeline(images, ""), folder, int(row["size"]), True,
                   int(row["pairs"]))
    if "fid_note" in judged:
        raise E2GANError(judged["fid_note"])
    row = {**row, **judged}
    atomic_write_json(pix2pix_dir(folder) / "metrics.json", row)
    return row
