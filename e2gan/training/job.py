"""A training job's lifecycle, written once: resume -> train in slices -> write after each slice
-> (the caller samples or judges) -> forget the resumable state when the job is done.

Every way of training runs through it: the recipes' commands (`run_to_end`, one slice to the step
target or the time limit), the studio's fine-tune (slices of 45 s, samples drawn after each), the
benchmark (one slice per milestone, judged after each) and pix2pix's baseline runs. A recipe
(`e2gan.training.recipes`) builds the `TrainingJob`: its trainer, where the result goes and how
to write it.

A slice's end is a typed `SliceEnded`, handed to the caller's `after_slice`; the trainer's own
events (`StepsLogged`, `CheckpointSaved`, `RunEnded`) go to `on_event` as they happen.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from e2gan.checkpoint import LoadedGenerator
from e2gan.devices import hardware_description
from e2gan.errors import E2GANError
from e2gan.files import remove_stale_temporaries
from e2gan.training.events import EndReason, EventCallback, RunSummary
from e2gan.training.trainer import Trainer

StopCheck = Callable[[], bool]


@dataclass(frozen=True)
class SliceEnded:
    """One slice of a job trained and its result was written."""

    index: int  # which slice of this `run_in_slices` call, from 0
    result: RunSummary  # the slice's own run: its steps (counted from the job's start), its end
    seconds: float  # training seconds so far: `start_seconds` plus every slice of this call
    summary: dict[str, Any]  # what was written with the result (`TrainingJob.summary`)

    @property
    def last(self) -> bool:
        """Nothing follows: a Stop, or the job's step target reached."""
        return self.result.reason is not EndReason.TIME


# `after_slice` may return False to end the run after this slice (None or True: go on).
AfterSlice = Callable[[SliceEnded], "bool | None"]


@dataclass
class TrainingOutcome:
    output: Path
    result: RunSummary
    trainable_parameters: int
    summary: dict[str, Any] = field(default_factory=dict)
    is_main_process: bool = True  # False on the other processes of a distributed run


@dataclass
class TrainingJob:
    """A recipe's trainer, where its result goes and how to write it.

    `writer(summary)` writes the trained model from the trainer's current weights; `write` calls
    it on the main process only, with the EMA weights swapped in when EMA is on.
    """

    kind: str
    trainer: Trainer
    output: Path
    pairs: int
    writer: Callable[[dict[str, Any]], None]
    details: dict[str, Any] = field(default_factory=dict)
    model: LoadedGenerator | None = None  # a fine-tune's base, its adapter live: for sampling

    def __post_init__(self) -> None:
        # A run killed while writing (the model, or its resumable state) left temporaries that
        # no later write would replace; this job is now their one writer.
        if self.trainer.is_main_process:
            remove_stale_temporaries(self.output)
            state = self.trainer.state_dir
            if state is not None:
                shutil.rmtree(state.with_name(state.name + ".partial"), ignore_errors=True)

    @property
    def trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.trainer.trainable)

    def summary(self, result: RunSummary) -> dict[str, Any]:
        accelerator = self.trainer.accelerator
        return {"kind": self.kind, "settings": self.trainer.settings.to_dict(), "pairs": self.pairs,
                "steps": result.steps_done, "stopped_early": result.stopped_early,
                "end_reason": result.reason.value, "seconds": round(result.seconds, 2),
                "images_per_second": round(result.images_per_second, 2),
                "processes": accelerator.num_processes,
                "global_batch_size": self.trainer.settings.batch_size * accelerator.num_processes,
                "precision": self.trainer.precision,
                "trainable_parameters": self.trainable_parameters,
                "hardware": hardware_description(accelerator.device),
                "final_losses": {k: round(v, 4) for k, v in result.last_losses.items()},
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **self.details}

    def write(self, result: RunSummary) -> dict[str, Any]:
        summary = self.summary(result)
        if self.trainer.is_main_process:
            with self.trainer.averaged_weights():
                self.writer(summary)
        self.trainer.accelerator.wait_for_everyone()
        return summary

    def run_in_slices(self, budgets: Iterable[float | None], after_slice: AfterSlice | None = None,
                      on_event: EventCallback | None = None, should_stop: StopCheck | None = None,
                      start_seconds: float = 0.0) -> SliceEnded | None:
        """Train one slice per budget and write the result after each, then hand the slice to
        `after_slice`. A budget is a mark on the job's training clock, in seconds from its start
        (`start_seconds` were trained before this call): each slice trains up to its mark; None
        trains to the step target or the settings' time limit. A Stop, the step target, or
        `after_slice` returning False ends the run early. When the step target is reached the
        resumable state is deleted (optimiser moments: 3x the model); otherwise it stays, so the
        job continues later. Returns the last slice (None when no budget was given)."""
        trained, ended = start_seconds, None
        for index, mark in enumerate(budgets):
            seconds = None if mark is None else max(0.0, mark - trained)
            result = self.trainer.run(seconds=seconds, on_event=on_event, should_stop=should_stop)
            trained += result.seconds
            ended = SliceEnded(index, result, trained, self.write(result))
            go_on = after_slice(ended) if after_slice is not None else None
            if ended.last or go_on is False:
                break
        if ended is not None and ended.result.reason is EndReason.STEPS:
            self.trainer.forget_state()
        return ended

    def run_to_end(self, resume: bool = True, on_event: EventCallback | None = None,
                   should_stop: StopCheck | None = None) -> TrainingOutcome:
        """Resume (when asked and a state exists), train to the step target or time limit,
        write the result (one slice). A stopped or timed-out job keeps its resumable state, so
        rerunning the command continues. A finished result at the output (nothing left to resume)
        is refused rather than silently trained again from step 0 over it; `resume=False`
        (`--restart`) replaces it."""
        finished = self.output.is_file() or (self.output / "config.json").is_file()
        if resume and not self.trainer.resume() and finished:
            raise E2GANError(f"{self.output} is already a finished result and there is no saved "
                             "state to continue from; use --restart to train again from scratch "
                             "and replace it, or choose another output")
        ended = self.run_in_slices([None], on_event=on_event, should_stop=should_stop)
        self.trainer.close()
        return TrainingOutcome(self.output, ended.result, self.trainable_parameters, ended.summary,
                               self.trainer.is_main_process)
