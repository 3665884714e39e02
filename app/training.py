"""Step 4, Fine-tune: LoRA on the crucial layers of the base, from the curated pairs, live.

One engine trainer (`finetune_job`) stays alive for the whole run and is driven in time slices.
Each slice ends by writing the adapter and the resumable state atomically, so the studio can draw
sample outputs from the adapter as it improves. Stop ends the current step, writes the adapter
and returns (evaluation is then the Compare tab's to do, on request); "continue" resumes the
exact state (weights, optimiser moments, data order) of the previous run. On a ZeroGPU Space the
run is one GPU call (`finetune_on_gpu`, see `app.gpu`) whose training time is what the call's
booking leaves; "continue" trains on from there.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Iterator

from e2gan.models import lora
from e2gan.checkpoint import load_generator, read_adapter
from e2gan.checks import check_ranks
from e2gan.limits import MAX_STUDIO_TRAINING_MINUTES
from e2gan.errors import E2GANError
from e2gan.files import atomic_save_image, atomic_write_json
from e2gan.paths import default_base_dir
from e2gan.evaluation.pictures import held_out_sheet
from e2gan.inference.pipeline import EditPipeline
from e2gan.training.events import EndReason, StepsLogged
from e2gan.training.job import SliceEnded
from e2gan.training.recipes import (LORA_EMA_DECAY, TrainingSettings, default_lora_ranks,
                                    finetune_job)
from e2gan.training.settings import wall_clock_steps

from app import gpu
from app.concept_metrics import concept_metrics
from app.curation import is_stale
from app.events import Evaluating, JobEvent, SamplesDrawn, TrainingProgress
from app.form import finite_number, whole_number
from app.jobs import BOARD
from app.settings import SETTINGS
from app.versions import archive_current, better_version
from app.workspace import ConceptFolder, Workspace

FINETUNE_JOB = "fine-tuning"  # the job board's name for this kind of job
SLICE_SECONDS = 45.0  # how often samples refresh
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

    @classmethod
    def from_form(cls, minutes: Any, epochs: Any, size: Any, learning_rate: Any, rank: Any,
                  continue_previous: Any) -> FinetuneRequest:
        """A request from the form's (or a raw API call's) values, each checked to be a finite
        number first: JSON from a script may carry NaN or Infinity where the page cannot."""
        request = cls(minutes=finite_number(minutes, "training minutes"),
                      epochs=whole_number(epochs or 0, "epochs"), size=whole_number(size, "training size"),
                      learning_rate=finite_number(learning_rate, "learning rate"),
                      rank=whole_number(rank or 0, "rank"), continue_previous=bool(continue_previous))
        request.check()
        return request

    def check(self) -> None:
        if not self.minutes > 0:
            raise E2GANError(f"training minutes must be positive, got {self.minutes}")
        # minutes, not seconds: the limit's unit ("minutes"), shown as the user typed it
        MAX_STUDIO_TRAINING_MINUTES.check(math.ceil(self.minutes) if math.isfinite(self.minutes)
                                          else 10**18, f"a fine-tune of {self.minutes} minutes")
        if self.epochs < 0:
            raise E2GANError(f"epochs must not be negative, got {self.epochs}")
        if self.size < 32 or self.size % 4:
            raise E2GANError(f"training size must be a multiple of 4 and at least 32, got {self.size}")
        if self.rank < 0:
            raise E2GANError(f"rank must not be negative, got {self.rank}")
        if self.rank:  # before any work: the engine's own check, on every crucial layer
            check_ranks({"(every crucial layer)": self.rank})
        TrainingSettings(size=self.size, batch_size=self.batch_size, learning_rate=self.learning_rate)


def training_ids(folder: ConceptFolder) -> tuple[list[str], str]:
    """The curated pairs, or every training pair when nothing was selected (and say which)."""
    selection = folder.selection()
    dataset = folder.require_dataset()
    if selection and selection.get("ids"):
        known = {record.id for record in dataset.split("train")}
        if not set(selection["ids"]) <= known:
            raise E2GANError("the curated selection names pairs that are gone: select again on "
                             "the Curate step")
        stale = " (a stale selection, made before the pairs changed)" if is_stale(folder, selection) else ""
        return list(selection["ids"]), f"{len(selection['ids'])} curated pairs{stale}"
    ids = [record.id for record in dataset.split("train")]
    return ids, f"all {len(ids)} training pairs (no selection made)"


def _ranks(base_dir, rank: int) -> dict[str, int] | None:
    if rank == 0:
        return None  # the engine's recipe: the base's searched table and the texture layers
    generator = load_generator(base_dir).generator
    return {**default_lora_ranks(generator, base_dir),
            **{name: rank for name in lora.crucial_layers(generator)}}


def stream_finetune(workspace: Workspace, request: FinetuneRequest,
                    base_dir=None) -> Iterator[JobEvent]:
    """Fine-tune the current concept; yields `TrainingProgress` (step 0 first), `SamplesDrawn`
    after each slice, `Evaluating`, then `JobDone` with the training summary."""
    request.check()
    folder = workspace.current()
    folder.require_dataset()
    _, described = training_ids(folder)
    base_dir = base_dir or default_base_dir()
    budget = training_budget(request, gpu.booking(finetune_seconds, workspace, request, base_dir))

    def work(report, should_stop) -> dict[str, Any]:
        return gpu.run_job(finetune_on_gpu, fine_tune, (workspace, request, base_dir), report,
                           should_stop)

    yield TrainingProgress(step=0, seconds=0.0, budget=budget, eta_seconds=budget)
    yield from BOARD.stream(workspace.id, FINETUNE_JOB, work)


# Besides the training itself, a fine-tune loads the base and decodes the pairs, and at the end
# measures the adapter on the held-out pairs (seconds on a GPU; estimates, with a margin).
LOAD_SECONDS = 10.0
EVALUATION_SECONDS = 20.0


def _overhead_seconds() -> float:
    return gpu.CALL_START_SECONDS + (LOAD_SECONDS + EVALUATION_SECONDS) * gpu.SAFETY


def finetune_seconds(workspace: Workspace, request: FinetuneRequest, base_dir=None,
                     stop_file: str | None = None) -> float:
    """GPU seconds a fine-tune needs: its training minutes, plus starting, loading and judging."""
    return _overhead_seconds() + request.minutes * 60.0


def training_budget(request: FinetuneRequest, booked: int | None) -> float:
    """Seconds of training: the minutes asked for, or what a ZeroGPU booking of `booked` seconds
    leaves after starting, loading and judging (a longer run is continued by "continue")."""
    budget = request.minutes * 60.0
    if booked is None:
        return budget
    return min(budget, max(10.0, booked - _overhead_seconds()))


def fine_tune(workspace: Workspace, request: FinetuneRequest, base_dir, report,
              should_stop) -> dict[str, Any]:
    """The fine-tune itself, run where the GPU is (`finetune_on_gpu`): everything it needs is
    rebuilt from the workspace, and it reports through `report` and stops on `should_stop`."""
    folder = workspace.current()
    dataset = folder.require_dataset()
    ids, described = training_ids(folder)
    ranks = _ranks(base_dir, request.rank)
    previous = (folder.training() or {}) if request.continue_previous else {}
    steps_per_epoch = max(1, math.floor(len(ids) / request.batch_size))
    # No epochs asked for: the time budget ends the run, the step count never does.
    total_steps = request.epochs * steps_per_epoch if request.epochs else wall_clock_steps()
    budget = training_budget(request, gpu.booked_seconds())
    settings = TrainingSettings(size=request.size, steps=total_steps, batch_size=request.batch_size,
                                learning_rate=request.learning_rate, ema_decay=LORA_EMA_DECAY,
                                seed=request.seed, device=gpu.device(SETTINGS.device),
                                checkpoint_every=0, log_every=1)  # the page shows the first step

    # One trainer for the whole run: the base, the adapter and the decoded pairs load once;
    # each slice ends with the adapter written, so samples show it and Stop keeps it.
    # A fresh run keeps the adapter it replaces as a version ("continue" extends it instead).
    archived = None if request.continue_previous else archive_current(folder)
    job = finetune_job(base_dir, dataset, folder.adapter_file, settings, ranks=ranks, ids=ids)
    resumed = request.continue_previous and job.trainer.resume()
    history: list[dict] = list(previous.get("history", [])) if resumed else []
    offset = float(previous.get("train_seconds", 0.0)) if resumed else 0.0
    pipeline = EditPipeline(job.model, device=job.trainer.accelerator.device)
    trained, started, result = 0.0, time.perf_counter(), None

    def summary(state: str) -> dict[str, Any]:
        """training.json: written as "running" after every slice, so a studio killed mid
        fine-tune leaves a record of the adapter and state it wrote last (see `run_state`)."""
        return {"state": state, "request": asdict(request), "pairs": described,
                "steps": result.steps_done if result else 0,
                "train_seconds": round(offset + trained, 1),
                "wall_seconds": round(time.perf_counter() - started, 1),
                "stopped": state == "stopped", "adapter": str(folder.adapter_file),
                "adapter_bytes": (folder.adapter_file.stat().st_size
                                  if folder.adapter_file.is_file() else 0),
                "history": history, "settings": settings.to_dict(),
                "precision": job.trainer.precision,
                "finished": time.strftime("%Y-%m-%d %H:%M"), "metrics": []}

    def relay(event) -> None:
        if not isinstance(event, StepsLogged):
            return
        seconds = trained + event.seconds
        history.append({"step": event.step, "seconds": round(offset + seconds, 2),
                        **{k: round(v, 4) for k, v in event.losses.items()}})
        # Over the whole run, not the slice (the trainer's own ETA ends with its slice): the
        # time budget left, or the steps left at this speed when epochs end it sooner.
        steps_left = (settings.steps - event.step) * settings.batch_size
        steps_eta = steps_left / max(event.images_per_second, 1e-9)
        report(TrainingProgress(event.step, seconds, budget,
                                max(0.0, min(budget - seconds, steps_eta)), dict(event.losses)))

    def draw_samples(ended: SliceEnded) -> None:
        nonlocal trained, result
        trained, result = ended.seconds, ended.result
        if result.reason is EndReason.STOPPED:
            return  # Stop returns now: no samples, no evaluation (Compare measures on request)
        atomic_write_json(folder.training_file, summary("running"))
        pipeline.show_grain(read_adapter(folder.adapter_file).grain)  # fitted as it was written
        with job.trainer.averaged_weights():
            adapter = ("adapter", lambda images: pipeline(images, dataset.info.prompt))
            grid = held_out_sheet(dataset, request.size, [("teacher", None), adapter], SAMPLE_COUNT)
        atomic_save_image(folder.root / "samples.png", grid)
        report(SamplesDrawn(str(folder.root / "samples.png"), result.steps_done, trained, budget,
                            list(history)))

    # A slice every SLICE_SECONDS of training, the last one ending with the budget.
    slices = math.ceil(budget / SLICE_SECONDS)
    marks = [min(budget, SLICE_SECONDS * k) for k in range(1, slices + 1)]
    job.run_in_slices(marks, draw_samples, on_event=relay, should_stop=should_stop)
    if result is None:
        raise E2GANError("training was stopped before it started")
    stopped = result.reason is EndReason.STOPPED
    final = summary("stopped" if stopped else "finished")
    final["archived_previous_as"] = archived
    if not stopped:
        report(Evaluating())
        final["metrics"] = concept_metrics(folder, base_dir, request.size)
    atomic_write_json(folder.training_file, final)
    better = better_version(folder)
    final["better_version"] = better and {k: better[k] for k in ("version", "psnr")}
    return final


finetune_on_gpu = gpu.generator_task(finetune_seconds, fine_tune)


def run_state(folder: ConceptFolder) -> str:
    """What became of the concept's last fine-tune: "none", "running" (a job of this studio
    process is at it), "interrupted" (training.json says running but no job is: the studio was
    killed; "continue" resumes from the last slice), "stopped" or "finished"."""
    training = folder.training()
    if not training:
        return "none"
    state = training.get("state") or ("stopped" if training.get("stopped") else "finished")
    if state == "running":
        workspace_id = folder.root.parent.parent.name
        busy = any(job.workspace_id == workspace_id for job in BOARD.running())
        return "running" if busy else "interrupted"
    return state
